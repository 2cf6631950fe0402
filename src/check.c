/*
 * check.c — the checking mode (PFALLOC_CHECK=1), for finding a program's
 * memory errors. While it is on, no thread has a fast-path cache
 * (pf_tc_fast stays pf_tc_none), so every allocation and free reaches a
 * slow path, which calls in here; blocks come from the locked paths.
 *  - canary: the bytes from the requested size to the end of the slot (at
 *    least CANARY_MIN) all hold one byte, which also records the alignment
 *    asked for; verified at free, realloc and exit.
 *  - large blocks end at a PROT_NONE guard page (the block is placed at the
 *    end of its pages, the canary filling the gap).
 *  - freed blocks are filled with FREE_BYTE (small) or made PROT_NONE
 *    (large) and wait in a bounded FIFO, the quarantine, before they are
 *    really freed; a small block's fill is verified when it leaves. A
 *    second free while it waits finds a free slot state: a double free.
 *  - zero-byte requests get distinct 16-byte cells of a PROT_NONE reserve.
 * Every error is one line naming the block's family and, when call sites
 * are recorded, the site that allocated it; then abort.
 * check_lock guards the quarantine, the large-block table and the zero
 * reserve's bitmap; under it no other lock is taken and no syscall made.
 */
#include "check.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"
#include "family.h"
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
#define BIG_SLOTS (1u << 16)      /* table of large blocks (open addressing) */
#define BIG_MAX (BIG_SLOTS / 4 * 3)
#define ZERO_CELLS (1u << 20)
#define ZERO_BYTES ((size_t)ZERO_CELLS * 16)

int pf_check_on;
static pf_lock_t check_lock = PF_LOCK_INIT;

/* A large block of the checking mode: [s->start, s->start + room) holds
 * the block at p and its canary; the guard page follows. */
struct big {
    uintptr_t p;       /* what the program got; 0: empty entry */
    struct pf_span *s; /* the large span */
    size_t n;          /* bytes requested */
    size_t room;       /* bytes before the guard page */
    uint32_t site;     /* call-site id */
    uint8_t guarded;   /* the guard page is PROT_NONE */
    uint8_t freed;     /* in the quarantine */
};
static struct big *bigs;
static uint32_t nbigs; /* entries in use (and reserved for blocks being made) */

/* A block in the quarantine. */
struct qent {
    uintptr_t p;
    struct pf_span *s;
    uint32_t idx;   /* small: slot index */
    uint32_t waste; /* small: slot size - requested */
    size_t bytes;   /* small: slot bytes filled; large: room */
    uint8_t large;
    uint8_t sealed; /* large: made PROT_NONE while it waits */
};
static struct qent *quar;
static uint32_t qhead, qcount; /* oldest entry, entries */
static size_t qbytes;

static uintptr_t zero_base;  /* ZERO_BYTES of PROT_NONE */
static uint64_t *zero_bits;  /* bit set: cell live */
static uint32_t *zero_sites; /* call-site id per cell */
static uint32_t zero_next;   /* next cell to try: freed cells are reused late */

/* ---- messages -------------------------------------------------------------- */
struct msg {
    char buf[512];
    size_t n;
};

static void put(struct msg *m, const char *s)
{
    while (*s && m->n < sizeof(m->buf) - 2)
        m->buf[m->n++] = *s++;
}

static void put_hex(struct msg *m, uintptr_t v)
{
    char tmp[16];
    int k = 0;
    do
        tmp[k++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    put(m, "0x");
    while (k && m->n < sizeof(m->buf) - 2)
        m->buf[m->n++] = tmp[--k];
}

static void put_u64(struct msg *m, uint64_t v)
{
    char tmp[20];
    int k = 0;
    do
        tmp[k++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (k && m->n < sizeof(m->buf) - 2)
        m->buf[m->n++] = tmp[--k];
}

/* "(family F, allocated at func+0x1c in prog)": the site only when known. */
static void put_owner(struct msg *m, const char *family, uint32_t site)
{
    put(m, " (family ");
    put(m, family && *family ? family : "?");
    uintptr_t addr = site ? pf_sites_addr(site) : 0;
    if (addr) {
        Dl_info info;
        put(m, ", allocated at ");
        if (dladdr((void *)addr, &info) && info.dli_fbase) {
            const char *mod = info.dli_fname ? strrchr(info.dli_fname, '/') : NULL;
            mod = mod ? mod + 1 : info.dli_fname ? info.dli_fname : "?";
            if (info.dli_sname && info.dli_saddr) {
                put(m, info.dli_sname);
                put(m, "+");
                put_hex(m, addr - (uintptr_t)info.dli_saddr);
            } else {
                put_hex(m, addr - (uintptr_t)info.dli_fbase);
            }
            put(m, " in ");
            put(m, mod);
        } else {
            put_hex(m, addr);
        }
    }
    put(m, ")");
}

__attribute__((noreturn, cold)) static void fail(struct msg *m, const char *family, uint32_t site)
{
    put_owner(m, family, site);
    m->buf[m->n++] = '\n';
    pf_os_die(m->buf, m->n);
}

/* "pfalloc: <what> 0x<p>" */
static void start(struct msg *m, const char *what, uintptr_t p)
{
    m->n = 0;
    put(m, "pfalloc: ");
    put(m, what);
    put_hex(m, p);
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
        put(&m, " of ");
        put_u64(&m, n);
        put(&m, " bytes was written past its end (byte +");
        put_u64(&m, n + bad);
        put(&m, " changed)");
        fail(&m, family, site);
    }
    return (size_t)1 << (b - CANARY_BASE + 4);
}

static void put_align(struct msg *m, size_t align)
{
    if (align <= 16)
        put(m, "default");
    else
        put_u64(m, align);
}

/* The caller's claims (C++ sized and aligned delete) against the block. */
static void verify_claim(uintptr_t p, size_t n, size_t got_align, size_t size, size_t align,
                         const char *family, uint32_t site)
{
    struct msg m;
    if (size != PF_CHECK_ANY_SIZE && size != n) {
        start(&m, "sized delete of ", p);
        put(&m, " says ");
        put_u64(&m, size);
        put(&m, " bytes, but ");
        put_u64(&m, n);
        put(&m, " were allocated");
        fail(&m, family, site);
    }
    if (align && align_log(align) != align_log(got_align)) {
        start(&m, "aligned delete of ", p);
        put(&m, " says alignment ");
        put_align(&m, align);
        put(&m, ", but it was allocated with alignment ");
        put_align(&m, got_align);
        fail(&m, family, site);
    }
}

/* ---- the large-block table ---------------------------------------------------- */
static uint32_t big_hash(uintptr_t p)
{
    return (uint32_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> 48) & (BIG_SLOTS - 1);
}

/* Under check_lock. */
static struct big *big_find(uintptr_t p)
{
    for (uint32_t i = big_hash(p);; i = (i + 1) & (BIG_SLOTS - 1)) {
        if (bigs[i].p == p)
            return &bigs[i];
        if (bigs[i].p == 0)
            return NULL;
    }
}

/* Under check_lock; a place was reserved in nbigs. */
static void big_insert(const struct big *b)
{
    uint32_t i = big_hash(b->p);
    while (bigs[i].p)
        i = (i + 1) & (BIG_SLOTS - 1);
    bigs[i] = *b;
}

/* Under check_lock: removes e, moving later entries of its probe run back. */
static void big_remove(struct big *e)
{
    uint32_t i = (uint32_t)(e - bigs);
    for (uint32_t j = i;;) {
        j = (j + 1) & (BIG_SLOTS - 1);
        if (bigs[j].p == 0)
            break;
        uint32_t h = big_hash(bigs[j].p);
        if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
            continue; /* still reachable from its home */
        bigs[i] = bigs[j];
        i = j;
    }
    bigs[i].p = 0;
    nbigs--;
}

static size_t page_round(size_t n)
{
    size_t ps = pf_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

/* A large block ending at a guard page: [start, start + room) then the
 * guard, the block placed as late in room as its alignment allows. */
static void *big_alloc(size_t n, size_t align, int zero, struct pf_family *f)
{
    size_t ps = pf_os_page_size();
    size_t body = (n + CANARY_MIN + 15) & ~(size_t)15;
    size_t room = page_round(body);
    if (body < n || room < body || room + ps < room || align > ((size_t)1 << 30)) {
        errno = align > ((size_t)1 << 30) ? EINVAL : ENOMEM;
        return NULL;
    }
    if (!f)
        f = pf_family_large();
    pf_lock(&check_lock);
    int table = nbigs < BIG_MAX;
    nbigs += (uint32_t)table;
    pf_unlock(&check_lock);
    if (!table) /* table full: a plain block (its canary is never checked) */
        return pf_large_alloc(f, n, align, zero);
    void *m = pf_large_alloc(f, room + ps, align, zero);
    struct pf_span *s = m ? pf_pagemap_get(m) : NULL;
    if (!s) {
        pf_lock(&check_lock);
        nbigs--;
        pf_unlock(&check_lock);
        return NULL;
    }
    struct big b = {0, s, n, room, 0, 0, 0};
    b.p = s->start + ((room - body) & ~(uintptr_t)(align - 1));
    memset((void *)(b.p + n), canary_byte(align), s->start + room - b.p - n);
    b.guarded = pf_os_protect((void *)(s->start + room), ps, 0) == 0;
    /* Counted as what the program asked for, not the padded block. */
    size_t total = s->req;
    s->req = n;
    pf_family_resize_large(f, s, s->bytes, total);
    pf_lock(&check_lock);
    big_insert(&b);
    pf_unlock(&check_lock);
    return (void *)b.p;
}

/* Really frees a large block of the table (not locked; no lock held). */
static void big_release(uintptr_t p, struct pf_span *s, size_t room)
{
    pf_os_protect((void *)s->start, room + pf_os_page_size(), 1);
    pf_lock(&check_lock);
    struct big *e = big_find(p);
    if (e)
        big_remove(e);
    pf_unlock(&check_lock);
    pf_large_free(s);
}

/* ---- zero-size blocks ----------------------------------------------------------- */
static void *zero_take(void)
{
    void *r = NULL;
    pf_lock(&check_lock);
    uint32_t w0 = zero_next / 64, nw = ZERO_CELLS / 64;
    for (uint32_t k = 0; k < nw; k++) {
        uint32_t w = (w0 + k) % nw;
        if (zero_bits[w] != ~0ull) {
            unsigned bit = (unsigned)__builtin_ctzll(~zero_bits[w]);
            zero_bits[w] |= 1ull << bit;
            uint32_t cell = w * 64 + bit;
            zero_sites[cell] = 0;
            zero_next = (cell + 1) % ZERO_CELLS;
            r = (void *)(zero_base + (uintptr_t)cell * 16);
            break;
        }
    }
    pf_unlock(&check_lock);
    return r;
}

static int is_zero(uintptr_t p)
{
    return zero_base && p - zero_base < ZERO_BYTES;
}

static void zero_free(uintptr_t p, size_t size, size_t align)
{
    uint32_t cell = (uint32_t)((p - zero_base) / 16);
    struct msg m;
    pf_lock(&check_lock);
    int live = (p & 15) == 0 && (zero_bits[cell / 64] >> (cell % 64) & 1);
    uint32_t site = zero_sites[cell];
    if (live) {
        pf_unlock(&check_lock);
        verify_claim(p, 0, 16, size, align, "zero-size", site);
        pf_lock(&check_lock);
        zero_bits[cell / 64] &= ~(1ull << (cell % 64));
    }
    pf_unlock(&check_lock);
    if (!live) {
        start(&m, (p & 15) ? "free of interior pointer " : "double free of ", p);
        fail(&m, "zero-size", site);
    }
}

/* ---- the quarantine --------------------------------------------------------------- */
/* Verifies and really frees a block that leaves the quarantine. */
static void release(const struct qent *q)
{
    struct pf_span *s = q->s;
    if (q->large) {
        big_release(q->p, s, q->bytes);
        return;
    }
    size_t bad = first_not((const uint8_t *)q->p, q->bytes, FREE_BYTE);
    if (bad < q->bytes) {
        struct msg m;
        start(&m, "write after free to block ", q->p);
        put(&m, " of ");
        put_u64(&m, s->slot_size - q->waste);
        put(&m, " bytes (byte +");
        put_u64(&m, bad);
        put(&m, " changed)");
        fail(&m, s->family->name, s->sites ? s->sites[q->idx] : 0);
    }
    if (s->sites)
        s->sites[q->idx] = 0;
    pf_family_free_locked(s, q->idx, q->waste);
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
static void big_free(struct big *e, size_t size, size_t align)
{
    /* Under check_lock, taken by the caller. */
    struct big b = *e;
    if (b.freed) {
        pf_unlock(&check_lock);
        struct msg m;
        start(&m, "double free of ", b.p);
        fail(&m, b.s->family->name, b.site);
    }
    e->freed = 1;
    pf_unlock(&check_lock);
    const char *fam = b.s->family->name;
    size_t got = verify_canary(b.p, b.n, b.s->start + b.room - b.p, fam, b.site);
    verify_claim(b.p, b.n, got, size, align, fam, b.site);
    if (b.room > Q_BYTES / 4) { /* too big to hold back */
        big_release(b.p, b.s, b.room);
        return;
    }
    struct qent q = {b.p, b.s, 0, 0, b.room, 1, 0};
    q.sealed = pf_os_protect((void *)b.s->start, b.room, 0) == 0;
    quarantine(&q);
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

__attribute__((noreturn)) static void freed_slot(uintptr_t p, struct pf_span *s, uint32_t idx,
                                                 const char *what)
{
    if (!in_quarantine(p))
        pf_alloc_bad_pointer((void *)p);
    struct msg m;
    start(&m, what, p);
    fail(&m, s->family->name, s->sites ? s->sites[idx] : 0);
}

static void small_free(uintptr_t p, struct pf_span *s, uint32_t idx, size_t size, size_t align)
{
    uint16_t st = __atomic_load_n(&s->state[idx], __ATOMIC_RELAXED);
    /* The slot becomes free for one caller only: two threads freeing it
     * at once make a double free, not a corrupted quarantine. */
    if (st < PF_SLOT_LIVE || !__atomic_compare_exchange_n(&s->state[idx], &st, PF_SLOT_DIRTY, 0,
                                                          __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        freed_slot(p, s, idx, "double free of ");
    uint32_t waste = st - PF_SLOT_LIVE;
    size_t n = s->slot_size - waste;
    uint32_t site = s->sites ? s->sites[idx] : 0;
    size_t got = verify_canary(p, n, s->slot_size, s->family->name, site);
    verify_claim(p, n, got, size, align, s->family->name, site);
    memset((void *)p, FREE_BYTE, s->slot_size);
    struct qent q = {p, s, idx, waste, s->slot_size, 0, 0};
    quarantine(&q);
}

void pf_check_free(void *ptr, size_t size, size_t align)
{
    int saved = errno;
    uintptr_t p = (uintptr_t)ptr;
    if (is_zero(p)) {
        zero_free(p, size, align);
        errno = saved;
        return;
    }
    pf_lock(&check_lock);
    struct big *e = big_find(p);
    if (e) {
        big_free(e, size, align); /* unlocks */
        errno = saved;
        return;
    }
    pf_unlock(&check_lock);
    struct pf_span *s;
    int64_t idx = slot_of(p, &s);
    if (idx >= 0)
        small_free(p, s, (uint32_t)idx, size, align);
    else if (s && s->kind == PF_SPAN_LARGE && s->start == p) /* made before the mode was on */
        pf_large_free(s);
    else
        pf_alloc_bad_pointer(ptr);
    errno = saved;
}

/* ---- allocation -------------------------------------------------------------------- */
void *pf_check_alloc(size_t n, size_t align, int zero, struct pf_family *f)
{
    int saved = errno;
    if (align < 16)
        align = 16;
    if (n == 0 && align == 16 && !f) {
        void *z = zero_take();
        if (z)
            return z;
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
    void *p = big_alloc(n, align, zero, f);
    if (p)
        errno = saved;
    return p;
}

/* Requested bytes and family of live block p; 0 when p is not one (with
 * *fam NULL), or a freed one. */
static int live_block(uintptr_t p, size_t *n, struct pf_family **fam)
{
    *fam = NULL;
    if (is_zero(p)) {
        uint32_t cell = (uint32_t)((p - zero_base) / 16);
        *n = 0;
        return (p & 15) == 0 && (__atomic_load_n(&zero_bits[cell / 64], __ATOMIC_RELAXED) >> (cell % 64) & 1);
    }
    pf_lock(&check_lock);
    struct big *e = big_find(p);
    int live = e && !e->freed;
    if (e) {
        *n = e->n;
        *fam = e->s->family;
    }
    pf_unlock(&check_lock);
    if (e)
        return live;
    struct pf_span *s;
    int64_t idx = slot_of(p, &s);
    if (idx >= 0) {
        uint16_t st = __atomic_load_n(&s->state[idx], __ATOMIC_RELAXED);
        *fam = s->family;
        *n = s->slot_size - (size_t)(st - PF_SLOT_LIVE);
        return st >= PF_SLOT_LIVE;
    }
    if (s && s->kind == PF_SPAN_LARGE && s->start == p) {
        *n = s->req;
        *fam = s->family;
        return 1;
    }
    return 0;
}

void *pf_check_realloc(void *p, size_t n)
{
    if (!p)
        return pf_check_alloc(n, 16, 0, NULL);
    size_t old;
    struct pf_family *f;
    if (!live_block((uintptr_t)p, &old, &f)) {
        struct pf_span *s;
        int64_t idx = slot_of((uintptr_t)p, &s);
        if (idx >= 0)
            freed_slot((uintptr_t)p, s, (uint32_t)idx, "realloc of freed block ");
        if (f) {
            struct msg m;
            start(&m, "realloc of freed block ", (uintptr_t)p);
            fail(&m, f->name, 0);
        }
        pf_alloc_bad_pointer(p);
    }
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
    return p && live_block((uintptr_t)p, &n, &f) ? n : 0;
}

int pf_check_site(const void *ptr, uint32_t id)
{
    uintptr_t p = (uintptr_t)ptr;
    int done = 0;
    pf_lock(&check_lock);
    if (is_zero(p)) {
        zero_sites[(p - zero_base) / 16] = id;
        done = 1;
    } else {
        struct big *e = big_find(p);
        if (e) {
            e->site = id;
            done = 1;
        }
    }
    pf_unlock(&check_lock);
    return done;
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
                    fn(s, k, s->slot_size - (size_t)(st - PF_SLOT_LIVE));
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

static void fork_prepare(void)
{
    pf_lock(&check_lock);
}

static void fork_parent(void)
{
    pf_unlock(&check_lock);
}

static void fork_child(void)
{
    pf_lock_reset(&check_lock);
}

int pf_check_enable(void)
{
    if (pf_check_on)
        return 0;
    bigs = pf_os_map_meta(sizeof(struct big) * BIG_SLOTS);
    quar = pf_os_map_meta(sizeof(struct qent) * Q_SLOTS);
    zero_bits = pf_os_map_meta(ZERO_CELLS / 8 + sizeof(uint32_t) * ZERO_CELLS);
    void *z = pf_os_reserve(ZERO_BYTES);
    if (!bigs || !quar || !zero_bits || !z)
        return -1;
    zero_sites = (uint32_t *)((char *)zero_bits + ZERO_CELLS / 8);
    zero_base = (uintptr_t)z;
    /* From here on no thread takes the fast paths: this one gives its
     * cached slots back, and none makes a cache (the checked paths never
     * ask for one). */
    pf_tcache_drain();
    pf_tc_fast = (struct pf_tcache *)&pf_tc_none;
    /* Blocks allocated before: their slack becomes their canary. */
    each_live_slot(paint);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    pf_check_on = 1;
    return 0;
}

void pf_check_exit(void)
{
    if (!pf_check_on)
        return;
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
    pf_lock(&check_lock);
    for (uint32_t i = 0; i < BIG_SLOTS; i++) {
        struct big b = bigs[i];
        if (b.p && !b.freed) {
            pf_unlock(&check_lock);
            verify_canary(b.p, b.n, b.s->start + b.room - b.p, b.s->family->name, b.site);
            pf_lock(&check_lock);
        }
    }
    pf_unlock(&check_lock);
}
