/*
 * check.c — the checking mode (PFALLOC_CHECK=1), for finding a program's
 * memory errors. While it is on, no thread has a fast-path cache
 * (pf_tc_fast stays pf_tc_none), so every allocation and free reaches a
 * slow path, which calls in here; blocks come from the locked paths.
 *  - canary: the bytes from the requested size to the end of the slot (at
 *    least CANARY_MIN) all hold one byte, which also records the alignment
 *    asked for; verified at free, realloc and exit.
 *  - large blocks end at a PROT_NONE guard page (guard.c).
 *  - freed blocks are filled with FREE_BYTE (small) or made PROT_NONE
 *    (large) and wait in a bounded FIFO, the quarantine, before they are
 *    really freed; a small block's fill is verified when it leaves. A
 *    second free while it waits finds a free slot state: a double free.
 *  - zero-byte requests get distinct cells of a PROT_NONE reserve (guard.c).
 * Every error is one line naming the block's family and, when call sites
 * are recorded, the site that allocated it; then abort.
 * check_lock guards the quarantine; under it no other lock is taken and no
 * syscall made.
 */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"
#include "family.h"
#include "fmt.h"
#include "guard.h"
#include "large.h"
#include "sites.h"
#include "tcache.h"

#define CANARY_MIN 8
#define CANARY_BASE 0xc0 /* canary byte: CANARY_BASE + log2(alignment) - 4 */
#define FREE_BYTE 0xdf
#define WASTE_MAX (65535u - PF_SLOT_LIVE)
#define Q_SLOTS 8192              /* blocks waiting in the quarantine at most */
#define Q_BYTES ((size_t)32 << 20) /* and their bytes */
#define Q_OUT 8                   /* blocks released by one free at most */

int pf_check_on;
static pf_lock_t check_lock = PF_LOCK_INIT;

/* A block in the quarantine. */
struct qent {
    uintptr_t p;
    struct pf_span *s;
    uint32_t idx;   /* small: slot index */
    uint32_t req;   /* small: bytes requested */
    size_t bytes;   /* small: slot bytes filled; large: room */
    uint8_t large;
};
static struct qent *quar;
static uint32_t qhead, qcount; /* oldest entry, entries */
static size_t qbytes;

/* Check operations under way. A small block is live before its canary is
 * written (pf_family_alloc_locked marks it, under its family's lock), and
 * a large one is sealed before the quarantine holds it: verified in
 * between, either would read as overflowed. busy_mine is a thread's own
 * count, for a signal handler on it; busy_all counts every thread's, for
 * the verification at exit and for a fork, which set a bit of `stopped`
 * and wait for it to drain; operations that start meanwhile wait outside
 * their window until the bit is cleared (the verifying or forking
 * thread's own go on). A fork in a window would leave the child a block
 * half made by a thread it does not have: a canary cut short, which its
 * exit took for an overflow; a slot marked free and in no list. */
static __thread int busy_mine __attribute__((tls_model("initial-exec")));
static __thread int i_verify __attribute__((tls_model("initial-exec")));
static __thread int i_fork __attribute__((tls_model("initial-exec")));
#define STOP_VERIFY 1
#define STOP_FORK 2
#define STOP_ENABLE 4
static atomic_int busy_all, stopped;

static void busy_in(void)
{
    for (;;) {
        busy_mine++;
        atomic_signal_fence(memory_order_seq_cst);
        atomic_fetch_add(&busy_all, 1);
        int st = atomic_load(&stopped);
        if (busy_mine > 1 || i_verify || i_fork || !st)
            return;
        atomic_fetch_sub(&busy_all, 1);
        atomic_signal_fence(memory_order_seq_cst);
        busy_mine--;
        pf_os_futex_wait_ms(&stopped, st, 1000); /* no cancellation point */
    }
}

/* Sets `bit` of `stopped` and waits for the operations under way in other
 * threads to leave their windows (microseconds; a thread stopped inside
 * one for two seconds is not waited for). */
static void stop_others(int bit)
{
    atomic_fetch_or(&stopped, bit);
    for (int i = 0; i < 2000 && atomic_load(&busy_all) > busy_mine; i++)
        pf_os_sleep_us(1000);
}

static void go_on(int bit)
{
    atomic_fetch_and(&stopped, ~bit);
    pf_os_futex_wake(&stopped, INT32_MAX);
}

static void busy_out(void)
{
    atomic_fetch_sub(&busy_all, 1);
    atomic_signal_fence(memory_order_seq_cst);
    busy_mine--;
}

/* ---- messages -------------------------------------------------------------- */
struct msg {
    struct pf_fmt f; /* text into buf; len < cap leaves room for the newline */
    char buf[512];
};

/* "(family F[, object at 0x<obj>], allocated at func+0x1c in prog)": the
 * object when obj is not 0, the site only when known. */
static void put_owner(struct msg *m, const char *family, uintptr_t obj, uint32_t site)
{
    pf_fmt_str(&m->f, " (family ");
    pf_fmt_name(&m->f, family && *family ? family : "?");
    if (obj) {
        pf_fmt_str(&m->f, ", object at ");
        pf_fmt_hex(&m->f, obj);
    }
    pf_sites_fmt_allocated(&m->f, site);
    pf_fmt_str(&m->f, ")");
}

__attribute__((noreturn, cold)) static void fail_in(struct msg *m, const char *family, uintptr_t obj,
                                                     uint32_t site)
{
    put_owner(m, family, obj, site);
    m->buf[m->f.len++] = '\n';
    pf_os_die(m->buf, m->f.len);
}

__attribute__((noreturn, cold)) static void fail(struct msg *m, const char *family, uint32_t site)
{
    fail_in(m, family, 0, site);
}

/* "pfalloc: <what>0x<p>" */
static void start(struct msg *m, const char *what, uintptr_t p)
{
    pf_fmt_init(&m->f, m->buf, sizeof(m->buf) - 1, -1);
    pf_fmt_str(&m->f, "pfalloc: ");
    pf_fmt_str(&m->f, what);
    pf_fmt_hex(&m->f, p);
}

/* ---- canaries ---------------------------------------------------------------- */
static unsigned align_log(size_t align)
{
    return align <= 16 ? 4 : (unsigned)__builtin_ctzl(align);
}

static uint8_t canary_byte(size_t align)
{
    return (uint8_t)(CANARY_BASE + align_log(align) - 4);
}

/* Offset of the first byte of [p, p + len) that is not c, or len. */
static size_t first_not(const uint8_t *p, size_t len, uint8_t c)
{
    size_t i = 0;
    uint64_t w = 0x0101010101010101ull * c;
    for (; i < len && ((uintptr_t)(p + i) & 7); i++)
        if (p[i] != c)
            return i;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (v != w)
            break;
    }
    for (; i < len; i++)
        if (p[i] != c)
            return i;
    return len;
}

/* The block at p of n bytes, canary up to p + end. Fatal when it was
 * written past its end; returns the alignment its canary records (16 for
 * a block without canary bytes). */
static size_t verify_canary(uintptr_t p, size_t n, size_t end, const char *family, uint32_t site)
{
    if (end <= n)
        return 16;
    const uint8_t *c = (const uint8_t *)p + n;
    uint8_t b = c[0];
    size_t bad = b >= CANARY_BASE && b < CANARY_BASE + 60 ? first_not(c, end - n, b) : 0;
    if (bad < end - n) {
        struct msg m;
        start(&m, "heap overflow: block ", p);
        pf_fmt_str(&m.f, " of ");
        pf_fmt_u64(&m.f, n);
        pf_fmt_str(&m.f, " bytes was written past its end (byte +");
        pf_fmt_u64(&m.f, n + bad);
        pf_fmt_str(&m.f, " changed)");
        fail(&m, family, site);
    }
    return (size_t)1 << (b - CANARY_BASE + 4);
}

static void put_align(struct msg *m, size_t align)
{
    if (align <= 16)
        pf_fmt_str(&m->f, "default");
    else
        pf_fmt_u64(&m->f, align);
}

/* The caller's claims (C++ sized and aligned delete) against the block. */
static void verify_claim(uintptr_t p, size_t n, size_t got_align, size_t size, size_t align,
                         const char *family, uint32_t site)
{
    struct msg m;
    if (size != PF_CHECK_ANY_SIZE && size != n) {
        start(&m, "sized delete of ", p);
        pf_fmt_str(&m.f, " says ");
        pf_fmt_u64(&m.f, size);
        pf_fmt_str(&m.f, " bytes, but ");
        pf_fmt_u64(&m.f, n);
        pf_fmt_str(&m.f, " were allocated");
        fail(&m, family, site);
    }
    if (align && align_log(align) != align_log(got_align)) {
        start(&m, "aligned delete of ", p);
        pf_fmt_str(&m.f, " says alignment ");
        put_align(&m, align);
        pf_fmt_str(&m.f, ", but it was allocated with alignment ");
        put_align(&m, got_align);
        fail(&m, family, site);
    }
}

/* ---- the quarantine --------------------------------------------------------------- */
/* Verifies and really frees a block that leaves the quarantine. */
static void release(const struct qent *q)
{
    struct pf_span *s = q->s;
    if (q->large) {
        struct pf_guarded g = {q->p, s, 0, q->bytes, 0, 1};
        pf_guard_release(&g);
        return;
    }
    size_t bad = first_not((const uint8_t *)q->p, q->bytes, FREE_BYTE);
    if (bad < q->bytes) {
        struct msg m;
        start(&m, "write after free to block ", q->p);
        pf_fmt_str(&m.f, " of ");
        pf_fmt_u64(&m.f, q->req);
        pf_fmt_str(&m.f, " bytes (byte +");
        pf_fmt_u64(&m.f, bad);
        pf_fmt_str(&m.f, " changed)");
        fail(&m, s->family->name, s->sites ? s->sites[q->idx] : 0);
    }
    if (s->sites)
        s->sites[q->idx] = 0;
    pf_family_free_locked(s, q->idx, q->req);
}

/* Adds q; releases (outside the lock) what it pushes out. */
static void quarantine(const struct qent *q)
{
    struct qent out[Q_OUT];
    int nout = 0;
    pf_lock(&check_lock);
    while (qcount && nout < Q_OUT && (qcount == Q_SLOTS || qbytes + q->bytes > Q_BYTES)) {
        out[nout++] = quar[qhead];
        qbytes -= quar[qhead].bytes;
        qhead = (qhead + 1) % Q_SLOTS;
        qcount--;
    }
    quar[(qhead + qcount) % Q_SLOTS] = *q;
    qcount++;
    qbytes += q->bytes;
    pf_unlock(&check_lock);
    for (int i = 0; i < nout; i++)
        release(&out[i]);
}

/* ---- free ------------------------------------------------------------------------- */
static void big_free(const struct pf_guarded *b, size_t size, size_t align)
{
    const char *fam = b->s->family->name;
    if (b->freed) {
        struct msg m;
        start(&m, "double free of ", b->p);
        fail(&m, fam, b->site);
    }
    size_t got = verify_canary(b->p, b->n, b->s->start + b->room - b->p, fam, b->site);
    verify_claim(b->p, b->n, got, size, align, fam, b->site);
    if (b->room > Q_BYTES / 4) { /* too big to hold back */
        pf_guard_release(b);
        return;
    }
    /* Any access while it waits faults (unless the kernel refused). */
    pf_guard_seal(b);
    struct qent q = {b->p, b->s, 0, 0, b->room, 1};
    quarantine(&q);
}

static void zero_free(uintptr_t p, size_t size, size_t align)
{
    uint32_t site;
    if (!pf_guard_zero_live(p, &site, 0)) {
        struct msg m;
        start(&m, (p & 15) ? "free of interior pointer " : "double free of ", p);
        fail(&m, "zero-size", site);
    }
    verify_claim(p, 0, 16, size, align, "zero-size", site);
    if (!pf_guard_zero_live(p, &site, 1)) { /* freed meanwhile by another thread */
        struct msg m;
        start(&m, "double free of ", p);
        fail(&m, "zero-size", site);
    }
    pf_family_count_cell(pf_family_class(0), 0);
}

/* Is small slot p (not live) waiting in the quarantine? */
static int in_quarantine(uintptr_t p)
{
    int found = 0;
    pf_lock(&check_lock);
    for (uint32_t i = 0; i < qcount && !found; i++)
        found = quar[(qhead + i) % Q_SLOTS].p == p;
    pf_unlock(&check_lock);
    return found;
}

/* A small slot's start with state st, or -1. */
static int64_t slot_of(uintptr_t p, struct pf_span **sp)
{
    struct pf_span *s = pf_pagemap_get((void *)p);
    *sp = s;
    if (!s || s->kind != PF_SPAN_SMALL)
        return -1;
    uintptr_t off = p - s->start;
    uint32_t idx = pf_span_index(s, off);
    if (idx >= s->nslots || (uintptr_t)idx * s->slot_size != off)
        return -1;
    return idx;
}

/* Small slot p is not live: the line `what` when it waits in the
 * quarantine (its site is still known), else alloc.c's line for `op`. */
__attribute__((noreturn)) static void freed_slot(uintptr_t p, struct pf_span *s, uint32_t idx,
                                                 const char *what, const char *op)
{
    if (!in_quarantine(p))
        pf_alloc_bad_pointer_op((void *)p, op);
    struct msg m;
    start(&m, what, p);
    fail(&m, s->family->name, s->sites ? s->sites[idx] : 0);
}

/* p, handed to `op` ("free" for free and realloc, or "malloc_usable_size"),
 * is no live block's start and no small slot's: name what holds it and
 * stop; `freed` starts the line for a freed block's own pointer. A guarded
 * block is named by the program's pointer, not its span's start (alloc.c's
 * line named the span's start as the object), and says whether it was
 * freed. One released lately (above Q_BYTES / 4 at its free, or out of the
 * quarantine) is still named when no live block has taken its place: a
 * second free of a block over 8 MiB was "a pointer pfalloc never
 * returned", with no family nor site. */
__attribute__((noreturn, cold)) static void bad(uintptr_t p, const char *op, const char *freed)
{
    struct pf_span *s = pf_pagemap_get((void *)p);
    int taken = (s && s->kind == PF_SPAN_SMALL) || pf_large_find((void *)p);
    struct pf_guard_owner o;
    if (pf_guard_owner(p, !taken, &o)) {
        struct msg m;
        if (o.p == p && o.freed) {
            start(&m, freed, p);
            fail(&m, o.f->name, o.site);
        }
        if (o.p != p) {
            start(&m, op[0] == 'f' ? "free of interior pointer "
                                   : "malloc_usable_size of interior pointer ", p);
            if (o.freed)
                pf_fmt_str(&m.f, " of a freed block");
            fail_in(&m, o.f->name, o.p, o.site);
        }
    }
    pf_alloc_bad_pointer_op((void *)p, op);
}

static void small_free(uintptr_t p, struct pf_span *s, uint32_t idx, size_t size, size_t align)
{
    uint16_t st = __atomic_load_n(&s->state[idx], __ATOMIC_RELAXED);
    /* The slot becomes free for one caller only: two threads freeing it
     * at once make a double free, not a corrupted quarantine. */
    if (st < PF_SLOT_LIVE || !__atomic_compare_exchange_n(&s->state[idx], &st, PF_SLOT_DIRTY, 0,
                                                          __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        freed_slot(p, s, idx, "double free of ", "free");
    uint32_t n = pf_state_req(s->slot_size, st);
    uint32_t site = s->sites ? s->sites[idx] : 0;
    size_t got = verify_canary(p, n, s->slot_size, s->family->name, site);
    verify_claim(p, n, got, size, align, s->family->name, site);
    memset((void *)p, FREE_BYTE, s->slot_size);
    struct qent q = {p, s, idx, n, s->slot_size, 0};
    quarantine(&q);
}

void pf_check_free(void *ptr, size_t size, size_t align)
{
    busy_in();
    int saved = errno;
    uintptr_t p = (uintptr_t)ptr;
    struct pf_guarded g;
    struct pf_span *s;
    int64_t idx;
    if (pf_guard_is_zero(p))
        zero_free(p, size, align);
    else if (pf_guard_find(p, &g, 1))
        big_free(&g, size, align);
    else if ((idx = slot_of(p, &s)) >= 0)
        small_free(p, s, (uint32_t)idx, size, align);
    else if (s && s->kind == PF_SPAN_LARGE && s->start == p) /* made before the mode was on */
        pf_large_free(s);
    else
        bad(p, "free", "double free of ");
    busy_out();
    errno = saved;
}

/* ---- allocation -------------------------------------------------------------------- */
static void *check_alloc(size_t n, size_t align, int zero, struct pf_family *f);

void *pf_check_alloc(size_t n, size_t align, int zero, struct pf_family *f)
{
    pf_family_hold_point(); /* its zero-size cells are made here */
    busy_in();
    void *p = check_alloc(n, align, zero, f);
    busy_out();
    return p;
}

static void *check_alloc(size_t n, size_t align, int zero, struct pf_family *f)
{
    int saved = errno;
    if (align < 16)
        align = 16;
    if (n == 0 && align == 16 && !f) {
        /* Counted as the smallest class's, whose slot malloc(0) takes
         * outside this mode: the totals and the leak walk see it. */
        void *z = pf_guard_zero_take();
        if (z) {
            pf_family_count_cell(pf_family_class(0), 1);
            return z;
        }
    }
    size_t need = n + CANARY_MIN;
    if (need > n && need <= PF_SMALL_MAX && align <= PF_CHUNK) {
        unsigned cls = pf_size_class(need < align ? align : need);
        while (cls < PF_NCLASSES && pf_class_size[cls] % align)
            cls++;
        if (cls < PF_NCLASSES && pf_class_size[cls] - n <= WASTE_MAX) {
            int clean;
            void *p = pf_family_alloc_locked(f ? f : pf_family_class(cls), cls, n, &clean);
            if (!p) {
                errno = ENOMEM;
                return NULL;
            }
            if (zero && !clean)
                memset(p, 0, n);
            memset((char *)p + n, canary_byte(align), pf_class_size[cls] - n);
            errno = saved;
            return p;
        }
    }
    void *p = pf_guard_alloc(n, align, zero, f, CANARY_MIN, canary_byte(align));
    if (p)
        errno = saved;
    return p;
}

/* Requested bytes and family of live block p; 0 when p is not one (with
 * *fam NULL), or a freed one. */
static int live_block(uintptr_t p, size_t *n, struct pf_family **fam)
{
    *fam = NULL;
    if (pf_guard_is_zero(p)) {
        uint32_t site;
        *n = 0;
        return pf_guard_zero_live(p, &site, 0);
    }
    struct pf_guarded g;
    if (pf_guard_find(p, &g, 0)) {
        *n = g.n;
        *fam = g.s->family;
        return !g.freed;
    }
    struct pf_span *s;
    int64_t idx = slot_of(p, &s);
    if (idx >= 0) {
        uint16_t st = __atomic_load_n(&s->state[idx], __ATOMIC_RELAXED);
        *fam = s->family;
        *n = pf_state_req(s->slot_size, st);
        return st >= PF_SLOT_LIVE;
    }
    if (s && s->kind == PF_SPAN_LARGE && s->start == p) {
        *n = s->req;
        *fam = s->family;
        return 1;
    }
    return 0;
}

/* p, handed to realloc or malloc_usable_size (`op`: "free" for realloc,
 * which frees the block, as alloc.c names it), is no live block: name
 * what it is, with its site when the block is still known, and stop. */
__attribute__((noreturn)) static void not_live(uintptr_t p, const char *op)
{
    int frees = op[0] == 'f';
    const char *freed = frees ? "realloc of freed block " : "malloc_usable_size of freed pointer ";
    const char *interior = frees ? "free of interior pointer " : "malloc_usable_size of interior pointer ";
    struct msg m;
    if (pf_guard_is_zero(p)) {
        uint32_t site;
        pf_guard_zero_live(p, &site, 0);
        start(&m, (p & 15) ? interior : freed, p);
        fail(&m, "zero-size", site);
    }
    struct pf_guarded g;
    if (pf_guard_find(p, &g, 0)) { /* freed, waiting in the quarantine */
        start(&m, freed, p);
        fail(&m, g.s->family->name, g.site);
    }
    struct pf_span *s;
    int64_t idx = slot_of(p, &s);
    if (idx >= 0)
        freed_slot(p, s, (uint32_t)idx, freed, op);
    bad(p, op, freed);
}

void *pf_check_realloc(void *p, size_t n)
{
    if (!p)
        return pf_check_alloc(n, 16, 0, NULL);
    size_t old;
    struct pf_family *f;
    if (!live_block((uintptr_t)p, &old, &f))
        not_live((uintptr_t)p, "free");
    if (n == 0) {
        pf_check_free(p, PF_CHECK_ANY_SIZE, 0);
        return NULL;
    }
    /* Always moves: a stale pointer to the old block then finds it in the
     * quarantine. */
    int typed = f && f->kind == PF_KIND_TYPED;
    void *q = pf_check_alloc(n, typed ? f->obj_align : 16, typed, typed ? f : NULL);
    if (!q)
        return NULL;
    memcpy(q, p, n < old ? n : old);
    pf_check_free(p, PF_CHECK_ANY_SIZE, 0);
    return q;
}

size_t pf_check_usable(const void *p)
{
    size_t n;
    struct pf_family *f;
    if (!p)
        return 0;
    /* Stops at a bad pointer as the default mode does (README): a program
     * asking the size of what it does not own is as broken as one freeing
     * it. It returned 0, and the program went on. */
    if (!live_block((uintptr_t)p, &n, &f))
        not_live((uintptr_t)p, "malloc_usable_size");
    return n;
}

int pf_check_site(const void *p, uint32_t id)
{
    return pf_guard_set_site((uintptr_t)p, id);
}

/* ---- on, and at exit ---------------------------------------------------------------- */
/* Calls fn on every live slot of every family, under the family's lock. */
static void each_live_slot(void (*fn)(struct pf_span *s, uint32_t idx, size_t n))
{
    uint32_t nf = pf_family_count();
    for (uint32_t i = 0; i < nf; i++) {
        struct pf_family *f = pf_family_at(i);
        pf_lock(&f->lock);
        for (struct pf_span *s = f->all; s; s = s->anext) {
            if (s->kind != PF_SPAN_SMALL)
                continue;
            for (uint32_t k = 0; k < s->bump; k++) {
                uint16_t st = s->state[k];
                if (st >= PF_SLOT_LIVE)
                    fn(s, k, pf_state_req(s->slot_size, st));
            }
        }
        pf_unlock(&f->lock);
    }
}

static void paint(struct pf_span *s, uint32_t idx, size_t n)
{
    uintptr_t p = s->start + (uintptr_t)idx * s->slot_size;
    memset((void *)(p + n), canary_byte(16), s->slot_size - n);
}

static void verify_slot(struct pf_span *s, uint32_t idx, size_t n)
{
    uintptr_t p = s->start + (uintptr_t)idx * s->slot_size;
    verify_canary(p, n, s->slot_size, s->family->name, s->sites ? s->sites[idx] : 0);
}

static void verify_big(const struct pf_guarded *g)
{
    verify_canary(g->p, g->n, g->s->start + g->room - g->p, g->s->family->name, g->site);
}

/* Called by alloc.c's fork handlers, after the family, large and span
 * locks and only in a process that has threads: the check and guard locks
 * are leaves (nothing is locked under them), and the leak walk takes the
 * guard lock under the family locks, so taken first they would make a fork
 * and a walk wait for each other. */
void pf_check_fork_quiesce(void)
{
    i_fork = 1;
    stop_others(STOP_FORK);
}

void pf_check_fork_lock(void)
{
    pf_guard_fork_lock();
    pf_lock(&check_lock);
}

void pf_check_fork_unlock(int child)
{
    child ? pf_lock_reset(&check_lock) : pf_unlock(&check_lock);
    pf_guard_fork_unlock(child);
}

void pf_check_fork_parent(void)
{
    i_fork = 0;
    go_on(STOP_FORK);
}

void pf_check_fork_child(void)
{
    /* A child forked by another thread while the parent verified at exit
     * is not ending: its operations must not wait for it (the fork
     * handlers stay registered to the end, pf_os_atfork). Only this
     * thread's own operations are under way. */
    i_fork = 0;
    atomic_store(&busy_all, busy_mine);
    atomic_store(&stopped, 0);
}

int pf_check_enable(void)
{
    if (pf_check_on)
        return 0;
    quar = pf_os_map_meta(sizeof(struct qent) * Q_SLOTS);
    if (!quar || pf_guard_init() != 0)
        return -1;
    /* From here on no thread takes the fast paths: this one gives its
     * cached slots back, and none makes a cache (the checked paths never
     * ask for one). Threads that made one before (started by a library's
     * constructor, which runs before pfalloc's) keep it, but their
     * mallocs go to the slow path, as when call sites are recorded, and
     * every span sends its frees there: a block they made or gave back
     * unchecked had no canary, which a checked free or the exit took for
     * an overflow. */
    pf_tcache_drain();
    pf_tc_fast = (struct pf_tcache *)&pf_tc_none;
    pf_tcache_direct_off();
    pf_family_frees_uncached();
    /* Blocks allocated before: their slack becomes their canary. Painted
     * once the mode is on, so that no unchecked block is made after, and
     * while other threads' checked operations wait, so that none frees a
     * block being painted or has its own canary painted over. */
    atomic_fetch_or(&stopped, STOP_ENABLE);
    pf_check_on = 1;
    stop_others(STOP_ENABLE);
    each_live_slot(paint);
    go_on(STOP_ENABLE);
    return 0;
}

void pf_check_exit(void)
{
    /* A terminating signal's handler that interrupted a check operation of
     * its own thread: that block is half made, and the operation cannot
     * finish while the handler waits. */
    if (!pf_check_on || busy_mine)
        return;
    i_verify = 1;
    stop_others(STOP_VERIFY);
    for (;;) {
        pf_lock(&check_lock);
        if (qcount == 0) {
            pf_unlock(&check_lock);
            break;
        }
        struct qent q = quar[qhead];
        qbytes -= q.bytes;
        qhead = (qhead + 1) % Q_SLOTS;
        qcount--;
        pf_unlock(&check_lock);
        release(&q);
    }
    each_live_slot(verify_slot);
    pf_guard_each_live(verify_big);
    /* The check is over: other threads go on (a library's destructor,
     * which runs after pfalloc's, may join a thread that allocates; it
     * waited here for good, and the process with it). */
    i_verify = 0;
    go_on(STOP_VERIFY);
}
