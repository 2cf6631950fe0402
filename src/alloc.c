/*
 * alloc.c — the public operations. The fast paths (small malloc and free on
 * a thread with a cache) are inline here: size -> class, pop or push the
 * thread's bin, one pagemap lookup to set or check the slot's state. Every
 * pointer is verified (pointer -> span -> slot -> state) before anything is
 * trusted; a bad one stops the process with one line (rule 3). free never
 * changes errno; every failure is NULL with ENOMEM (or EINVAL).
 */
#include "alloc.h"
#include "fastpath.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "family.h"
#include "fmt.h"
#include "large.h"
#include "sites.h"
#include "tcache.h"

/* The fork handlers keep glibc's own lock order (its stream-list lock,
 * __libc_single_threaded): another libc would need its own ordering. */
#if !defined(__GLIBC__) || !defined(__linux__)
#error "pfalloc supports Linux with glibc only: its fork handlers follow glibc's fork"
#endif

#define WASTE_MAX (65535u - PF_SLOT_LIVE)

/* ---- the fatal path ---------------------------------------------------------- */
/* "pfalloc: <a><b><c>0x<p><tail>[ (family F[, object at 0x<obj>][, allocated
 * at func+0x1c in prog])]": the site when the word `site` knows one. */
__attribute__((noreturn, cold)) static void die_site(const char *a, const char *b, const char *c,
                                                      const void *p, const char *tail,
                                                      const struct pf_family *f, const void *obj,
                                                      uint32_t site)
{
    /* Room for a site's long (mangled C++) name and its module, as the
     * checking mode's lines have. */
    char buf[512];
    struct pf_fmt m;
    /* fmt keeps len < cap, so buf[len] is free for the newline. */
    pf_fmt_init(&m, buf, sizeof(buf), -1);
    pf_fmt_str(&m, "pfalloc: ");
    pf_fmt_str(&m, a);
    pf_fmt_str(&m, b);
    pf_fmt_str(&m, c);
    pf_fmt_hex(&m, (uintptr_t)p);
    pf_fmt_str(&m, tail);
    if (f) {
        pf_fmt_str(&m, " (family ");
        pf_fmt_name(&m, f->name[0] ? f->name : "?");
        if (obj) {
            pf_fmt_str(&m, ", object at ");
            pf_fmt_hex(&m, (uintptr_t)obj);
        }
        pf_sites_fmt_allocated(&m, site);
        pf_fmt_str(&m, ")");
    }
    buf[m.len++] = '\n';
    pf_os_die(buf, m.len);
}

#define die(a, b, c, p, tail, f, obj) die_site((a), (b), (c), (p), (tail), (f), (obj), 0)

#define NEVER_RETURNED ", a pointer pfalloc never returned"

/* The freed-pointer line: "double free" when the operation frees (free,
 * realloc), "<op> of freed pointer" otherwise. */
__attribute__((noreturn, cold)) static void die_freed(const void *p, const char *op,
                                                       const struct pf_family *f, uint32_t site)
{
    if (op[0] == 'f')
        die_site("double ", op, " of ", p, "", f, NULL, site);
    die_site(op, " of freed pointer ", "", p, "", f, NULL, site);
}

/* p is in small span s (live, or pooled whole after its last object went):
 * an interior pointer, a slot freed before (a double free, or an interior
 * pointer that lands on a freed slot's start: not told apart), or a slot
 * never allocated since the span was made (state 0 or beyond the bump:
 * no double free, whatever the pointer was meant to be). */
__attribute__((noreturn, cold)) static void bad_small(const void *p, const char *op, struct pf_span *s)
{
    uintptr_t off = (uintptr_t)p - s->start;
    /* A pooled span keeps the fields of its last use, but one split off a
     * bigger pooled run describes no slots (slot_size 0). */
    if (!s->slot_size || s->nslots > PF_MAX_SLOTS || (size_t)s->nslots * s->slot_size > s->bytes ||
        off >= s->bytes)
        die(op, " of ", "", p, ", where no object is live", s->family, NULL);
    uint32_t idx = pf_span_index(s, off);
    if (idx >= s->nslots)
        die(op, " of ", "", p, NEVER_RETURNED, NULL, NULL);
    uintptr_t slot = s->start + (uintptr_t)idx * s->slot_size;
    /* A slot's site word outlives its block's free: it names the last
     * allocation of the slot, live or freed (0 when recording is off). */
    uint32_t site = s->sites && idx < s->bump ? s->sites[idx] : 0;
    if (slot != (uintptr_t)p)
        die_site(op, " of interior pointer ", "", p, "", s->family, (void *)slot, site);
    if (idx >= s->bump || s->state[idx] == PF_SLOT_CLEAN)
        die(op, " of ", "", p, ", a slot never allocated", s->family, NULL);
    die_freed(p, op, s->family, site);
}

/* The start of a freed large block that holds p, or 0, by the tombstones
 * of p's chunk (entry s) and of the chunk before: a block is at least a
 * chunk long, so it holds the rest of the chunk it starts in and as much of
 * the next one. (A single tombstone per chunk named every page-aligned
 * pointer of that chunk a double free.) */
static uintptr_t freed_large_at(const void *p, const struct pf_span *s)
{
    uintptr_t a = (uintptr_t)p;
    if (s && s->kind == PF_SPAN_GONE && pf_span_gone_start(p, s) <= a)
        return pf_span_gone_start(p, s);
    if (a < PF_CHUNK)
        return 0;
    const void *q = (const void *)(a - PF_CHUNK);
    const struct pf_span *t = pf_pagemap_get(q);
    if (t && t->kind == PF_SPAN_GONE && pf_span_gone_start(q, t) > a - PF_CHUNK)
        return pf_span_gone_start(q, t);
    return 0;
}

/* p, handed to `op` ("free" for free and realloc, which frees the block),
 * is not a live block's start: name what it is and stop. */
__attribute__((noreturn, cold)) static void bad_pointer(const void *p, const char *op)
{
    struct pf_span *s = pf_pagemap_get(p);
    /* The pagemap knows a large block by its first chunk only: a pointer
     * further in finds nothing (or a stale tombstone), so look for the block
     * that holds it. */
    if (!s || s->kind == PF_SPAN_GONE || (s->kind == PF_SPAN_LARGE && s->start != (uintptr_t)p)) {
        struct pf_span *b = pf_large_find(p);
        if (b && b->start != (uintptr_t)p) /* live: its span keeps its site (0 when off) */
            die_site(op, " of interior pointer ", "", p, "", b->family, (void *)b->start, b->site);
    }
    if (!s || s->kind == PF_SPAN_GONE) {
        uintptr_t gone = freed_large_at(p, s);
        if ((uintptr_t)p == gone)
            die_freed(p, op, pf_family_large(), 0);
        if (gone)
            die(op, " of interior pointer ", "", p, " of a freed block", pf_family_large(), (void *)gone);
        die(op, " of ", "", p, NEVER_RETURNED, NULL, NULL);
    }
    if (s->kind == PF_SPAN_LARGE) /* below the block that starts in this chunk */
        die(op, " of ", "", p, NEVER_RETURNED, NULL, NULL);
    if (s->kind == PF_SPAN_SMALL || (s->kind == PF_SPAN_FREE && s->family))
        bad_small(p, op, s);
    die(op, " of ", "", p, NEVER_RETURNED, NULL, NULL);
}

/* p failed the fast check (or is not in a small span): name what is wrong. */
void pf_alloc_bad_pointer(const void *p)
{
    bad_pointer(p, "free");
}

void pf_alloc_bad_pointer_op(const void *p, const char *op)
{
    bad_pointer(p, op);
}

/* ---- small allocations --------------------------------------------------------- */
void *pf_alloc_small_slow(size_t req, unsigned cls, int *clean)
{
    pf_family_hold_point();
    /* pf_small_alloc came here for a bin that was not empty while held
     * (and perhaps no longer held when it got here): pop it as it would.
     * pf_tc_none's bins and closed ones are empty. */
    struct pf_bin *b = &pf_tc_fast->bins[cls];
    if (b->top != b->base)
        return pf_bin_take(b, req, clean);
    int saved = errno;
    struct pf_tcache *tc = pf_tc ? pf_tc : pf_tcache_get();
    if (PF_UNLIKELY(cls >= PF_CACHED_CLASSES) && tc && !pf_tcache_bin_open(tc, cls))
        tc = NULL;
    void *p;
    if (PF_LIKELY(tc)) {
        struct pf_cached c = pf_tcache_refill(tc, cls);
        p = c.p;
        if (p) {
            pf_slot_mark_live(&tc->bins[cls], c.state, req, clean);
        }
    } else { /* a closed bin, or a thread past its exit hook: the shared, locked path */
        int c;
        p = pf_family_alloc_locked(pf_family_class(cls), cls, req, &c);
        if (clean)
            *clean = c;
    }
    errno = p ? saved : ENOMEM;
    return p;
}

/* Smallest class >= need whose slots are all `align`-aligned (spans start
 * on 64 KiB boundaries), or PF_NCLASSES. */
static unsigned aligned_class(size_t need, size_t align)
{
    unsigned cls = pf_size_class(need);
    while (cls < PF_NCLASSES && pf_class_size[cls] % align)
        cls++;
    return cls;
}

void *pf_alloc_large(size_t n, size_t align, int zero)
{
    int saved = errno;
    void *p = pf_large_alloc(pf_family_large(), n, align, zero);
    if (p)
        errno = saved;
    return p;
}

void *pf_malloc_slow(size_t n)
{
    if (PF_UNLIKELY(pf_check_on))
        return pf_check_alloc(n, 16, 0, NULL);
    if (PF_LIKELY(n <= PF_SMALL_MAX))
        return pf_small_alloc(n, pf_size_class(n), NULL);
    return pf_alloc_large(n, 0, 0);
}

/* calloc beyond malloc's direct path: held, checked or recorded
 * allocations, an empty bin, bigger blocks. */
static PF_NOINLINE void *calloc_slow(size_t bytes)
{
    if (PF_UNLIKELY(pf_check_on))
        return pf_check_alloc(bytes, 16, 1, NULL);
    if (PF_LIKELY(bytes <= PF_SMALL_MAX)) {
        int clean;
        void *p = pf_small_alloc(bytes, pf_size_class(bytes), &clean);
        if (p && !clean)
            memset(p, 0, bytes);
        return p;
    }
    return pf_alloc_large(bytes, 0, 1);
}

void *pf_calloc_in(size_t n, size_t size)
{
    size_t bytes;
    if (PF_UNLIKELY(__builtin_mul_overflow(n, size, &bytes))) {
        errno = ENOMEM;
        return NULL;
    }
    /* malloc's direct path: its table names no bin while the checking
     * mode is on, call sites are recorded or allocations are held, and
     * calloc_slow takes those. A slot never used holds the kernel's zeros. */
    if (PF_LIKELY(bytes <= PF_DIRECT_MAX)) {
        int clean;
        struct pf_tcache *tc = pf_tc_fast;
        void *p = pf_direct_pop(tc, tc->direct[bytes], bytes, &clean);
        if (PF_LIKELY(p != NULL))
            return clean ? p : memset(p, 0, bytes);
    }
    return calloc_slow(bytes);
}

static void *aligned(size_t align, size_t n)
{
    if (PF_UNLIKELY(pf_check_on))
        return pf_check_alloc(n, align, 0, NULL);
    if (align <= 16)
        return pf_fast_malloc(n);
    if (n <= PF_SMALL_MAX && align <= PF_CHUNK) {
        unsigned cls = aligned_class(n < align ? align : n, align);
        /* A slot whose waste the 16-bit state cannot hold (a few bytes at
         * 64 KiB alignment) would misstate the bytes asked for: such a
         * block takes the large path, which records them exactly. */
        if (cls < PF_NCLASSES && pf_class_size[cls] - n <= WASTE_MAX)
            return pf_small_alloc(n, cls, NULL);
    }
    /* Any power of two is a valid alignment: one no mapping can have is
     * ENOMEM (the large path checks size + alignment for overflow). */
    return pf_alloc_large(n, align, 0);
}

int pf_posix_memalign_in(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    int saved = errno;
    void *p = aligned(align, size);
    if (!p) {
        /* errno too, as glibc's posix_memalign leaves it (programs and
         * glibc's own tests read it). */
        errno = ENOMEM;
        return ENOMEM;
    }
    errno = saved;
    *out = p;
    return 0;
}

void *pf_aligned_alloc_in(size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, size);
}

void *pf_memalign_in(size_t align, size_t size)
{
    if (align & (align - 1)) { /* as glibc: round up to a power of two */
        if (align > ((size_t)1 << 63)) { /* none to round up to */
            errno = EINVAL;
            return NULL;
        }
        align = (size_t)1 << (64 - __builtin_clzl(align));
    }
    return aligned(align, size);
}

void *pf_valloc_in(size_t size)
{
    return aligned(pf_os_page_size(), size);
}

void *pf_pvalloc_in(size_t size)
{
    size_t ps = pf_os_page_size();
    size_t r = (size + ps - 1) & ~(ps - 1);
    if (r < size) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned(ps, r ? r : ps);
}

/* ---- free -------------------------------------------------------------------------- */
/* The slot index of p in small span s, with its state in *st; fatal (one
 * line, abort) unless p is a live slot's start. */
static uint32_t live_slot(const void *p, struct pf_span *s, uint32_t *st, const char *op)
{
    if (!s || s->kind != PF_SPAN_SMALL)
        bad_pointer(p, op);
    uintptr_t off = (uintptr_t)p - s->start;
    uint32_t idx = pf_span_index(s, off);
    if ((uintptr_t)idx * s->slot_size != off || idx >= s->nslots || s->state[idx] < PF_SLOT_LIVE)
        bad_pointer(p, op);
    *st = s->state[idx];
    return idx;
}

/* Every free that is not a live slot of a cached span into a bin with
 * room: NULL, large blocks, typed families, a full bin, a thread without a
 * cache, and bad pointers (named and fatal). */
/* Counts the free of slot idx of s (state st, already marked free) in the
 * thread's bin and caches the slot there, flushing the bin first when it
 * is full (which may change errno). */
static void bin_push(struct pf_tcache *tc, struct pf_span *s, uint32_t idx, void *p, uint32_t st)
{
    struct pf_bin *b = &tc->bins[s->cls];
    b->frees++;
    b->states -= st;
    if (b->top == b->limit)
        pf_tcache_flush(tc, s->cls);
    struct pf_cached *t = b->top;
    *t = (struct pf_cached){p, &s->state[idx]};
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* entry, then top: see pf_fast_free */
    b->top = t + 1;
}

void pf_free_slow(void *p)
{
    if (!p)
        return;
    /* Under the exit's walk, another thread's free waits (see
     * pf_family_frees_held): the walk's count and the totals after it see
     * the same objects. */
    pf_family_hold_point();
    if (PF_UNLIKELY(pf_check_on)) {
        pf_check_free(p, PF_CHECK_ANY_SIZE, 0);
        return;
    }
    struct pf_span *s = pf_pagemap_get(p);
    if (s && s->kind == PF_SPAN_LARGE && s->start == (uintptr_t)p) {
        pf_large_free(s);
        return;
    }
    uint32_t st;
    uint32_t idx = live_slot(p, s, &st, "free");
    s->state[idx] = PF_SLOT_DIRTY;
    int saved = errno;
    /* A thread that only frees (a consumer) gets a cache too, after a few
     * frees, so they go back in batches instead of one by one under the
     * family lock. */
    struct pf_tcache *tc = s->cached ? pf_tcache_for_free() : NULL;
    if (tc && PF_UNLIKELY(s->cls >= PF_CACHED_CLASSES) && !pf_tcache_bin_open_free(tc, s->cls))
        tc = NULL; /* a closed bin: see pf_tcache_bin_open_free */
    if (tc) {
        bin_push(tc, s, idx, p, st);
    } else {
        pf_family_free_locked(s, idx, pf_state_req(s->slot_size, st));
    }
    errno = saved;
}

void pf_free_slot_slow(void *p, struct pf_span *s, uint32_t idx, uint32_t st, size_t n, size_t align)
{
    pf_family_hold_point(); /* as pf_free_slow */
    /* A full bin of a live slot of a cached span: flushed, and the slot
     * pushed, without the slow path's second look-up and verification.
     * The rest (the checking mode, a state that is not live, a span whose
     * frees skip the caches, a thread without a cache, a closed bin) takes
     * the slow path. */
    struct pf_tcache *tc = pf_tc;
    if (PF_UNLIKELY(pf_check_on) || st < PF_SLOT_LIVE || !s->cached || !tc ||
        (s->cls >= PF_CACHED_CLASSES && !pf_tcache_bin_open_free(tc, s->cls))) {
        pf_free_slow_sized(p, n, align);
        return;
    }
    s->state[idx] = PF_SLOT_DIRTY;
    int saved = errno;
    bin_push(tc, s, idx, p, st);
    errno = saved;
}

/* C++ sized and aligned delete: only the checking mode looks at the claim. */
void pf_free_slow_sized(void *p, size_t n, size_t align)
{
    if (PF_UNLIKELY(pf_check_on) && p) {
        pf_check_free(p, n, align);
        return;
    }
    pf_free_slow(p);
}

void pf_free(void *p)
{
    pf_fast_free(p);
}

/* ---- realloc ------------------------------------------------------------------------- */
static void *typed_bytes(struct pf_family *f, size_t bytes, size_t align);
static size_t family_align(const struct pf_family *f);

/* One path for every block: resized where it is when it can be (a slot with
 * room, a large block by mremap), otherwise moved, copying min(new size, old
 * usable size). The old block holds no more than its usable size whatever
 * the new size is: an aligned request of 100 bytes may sit in a 64 KiB
 * mapping, and a new size of a small class is no bound on it. */
void *pf_realloc_in(void *p, size_t n)
{
    pf_family_hold_point(); /* not even in place: a large block may move */
    if (PF_UNLIKELY(pf_check_on))
        return pf_check_realloc(p, n);
    if (!p)
        return pf_fast_malloc(n);
    if (n == 0) {
        pf_free(p);
        return NULL;
    }
    struct pf_span *s = pf_pagemap_get(p);
    size_t usable;
    if (s && s->kind == PF_SPAN_LARGE && s->start == (uintptr_t)p) {
        usable = pf_large_usable(s);
        /* mremap may move the block to any page boundary: only for blocks
         * whose family asks no more than that. */
        if (n > PF_SMALL_MAX && family_align(s->family) <= pf_os_page_size()) {
            int saved = errno;
            void *q = pf_large_realloc(s, n);
            if (q)
                errno = saved;
            return q;
        }
    } else {
        uint32_t st;
        uint32_t idx = live_slot(p, s, &st, "free");
        uint32_t slot = s->slot_size;
        size_t old_req = pf_state_req(slot, st);
        if (n <= slot && n >= slot / 2 && slot - n <= WASTE_MAX) {
            /* In place: only the requested-bytes figure changes. */
            uint16_t now = pf_state_live(slot, n);
            s->state[idx] = now;
            struct pf_tcache *tc = pf_tc;
            if (s->cached && tc) {
                struct pf_bin *b = &tc->bins[s->cls];
                b->states += (uint64_t)now - st; /* as if freed and allocated again */
            } else {
                pf_family_requested(s->family, n > old_req ? n - old_req : 0,
                                    n > old_req ? 0 : old_req - n);
            }
            return p;
        }
        usable = slot;
    }
    struct pf_family *f = s->family;
    void *q = f->kind == PF_KIND_TYPED ? typed_bytes(f, n, family_align(f)) : pf_fast_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, n < usable ? n : usable);
    pf_free(p);
    return q;
}

void *pf_reallocarray_in(void *p, size_t n, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return pf_realloc_in(p, bytes);
}

/* A pointer that free would refuse is refused here too, with the same
 * kind of line: a program asking the size of what it does not own is as
 * broken as one freeing it. */
size_t pf_malloc_usable_size(const void *p)
{
    if (PF_UNLIKELY(pf_check_on))
        return pf_check_usable(p);
    if (!p)
        return 0;
    struct pf_span *s = pf_pagemap_get(p);
    if (s && s->kind == PF_SPAN_LARGE && s->start == (uintptr_t)p)
        return pf_large_usable(s);
    uint32_t st;
    live_slot(p, s, &st, "malloc_usable_size");
    return s->slot_size;
}

size_t pf_trim(void)
{
    int saved = errno;
    pf_tcache_drain();
    pf_family_trim();
    size_t r = pf_family_trim_pages() + pf_span_trim() + pf_large_trim();
    errno = saved;
    return r;
}

/* ---- typed allocation ------------------------------------------------------------------ */
/* The alignment a family's objects get: the largest any call asked of it.
 * A family made by name (which knows only the size) and used later by a
 * typed call that knows the type's alignment keeps that alignment for
 * every door from then on. */
static size_t family_align(const struct pf_family *f)
{
    return __atomic_load_n(&f->obj_align, __ATOMIC_RELAXED);
}

static size_t family_align_at_least(struct pf_family *f, size_t align)
{
    size_t cur = family_align(f);
    while (cur < align && !__atomic_compare_exchange_n(&f->obj_align, &cur, align, 1, __ATOMIC_RELAXED,
                                                       __ATOMIC_RELAXED)) {
    }
    return cur < align ? align : cur;
}

static void *typed_bytes(struct pf_family *f, size_t bytes, size_t align)
{
    if (PF_UNLIKELY(pf_check_on))
        return pf_check_alloc(bytes, align, 1, f);
    int saved = errno;
    void *p;
    if (bytes <= PF_SMALL_MAX && align <= PF_CHUNK) {
        unsigned cls = aligned_class(bytes < align ? align : bytes, align);
        if (cls < PF_NCLASSES && pf_class_size[cls] - bytes <= WASTE_MAX) { /* see aligned() */
            int clean;
            p = pf_family_alloc_locked(f, cls, bytes, &clean);
            if (!p) {
                errno = ENOMEM;
                return NULL;
            }
            if (!clean)
                memset(p, 0, bytes);
            errno = saved;
            return p;
        }
    }
    p = pf_large_alloc(f, bytes, align, 1);
    if (p)
        errno = saved;
    return p;
}

void *pf_family_alloc_in(pf_family_t *f, size_t n)
{
    size_t bytes;
    if (!f || n == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (__builtin_mul_overflow(n, f->obj_size, &bytes) || bytes > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return typed_bytes(f, bytes, family_align(f));
}

void *pf_typed_alloc(const char *key, size_t size, size_t align, size_t n)
{
    size_t bytes;
    if (!key || size == 0 || n == 0 || align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    if (__builtin_mul_overflow(n, size, &bytes) || bytes > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    struct pf_family *f = pf_family_typed(key, size, align < 16 ? 16 : align);
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = typed_bytes(f, bytes, family_align_at_least(f, align));
    pf_sites_note_caller(p, __builtin_return_address(0));
    return p;
}

/* ---- the public entry points ---------------------------------------------------------------- */
/* A program that calls these directly (or through uapi_mm.h's XCALLOC_MISC)
 * has its call site recorded when sites are on, as malloc's callers do;
 * pfalloc's own callers, among them the preload's malloc family (which
 * records a whole stack), use the _in forms. */
#define PF_NOTED(call)                                                           \
    void *p = (call);                                                            \
    pf_sites_note_caller(p, __builtin_return_address(0));                        \
    return p

void *pf_malloc(size_t n) { PF_NOTED(pf_fast_malloc(n)); }
void *pf_calloc(size_t n, size_t size) { PF_NOTED(pf_calloc_in(n, size)); }
void *pf_realloc(void *old, size_t n) { PF_NOTED(pf_realloc_in(old, n)); }
void *pf_reallocarray(void *old, size_t n, size_t size) { PF_NOTED(pf_reallocarray_in(old, n, size)); }
void *pf_aligned_alloc(size_t align, size_t size) { PF_NOTED(pf_aligned_alloc_in(align, size)); }
void *pf_memalign(size_t align, size_t size) { PF_NOTED(pf_memalign_in(align, size)); }
void *pf_valloc(size_t size) { PF_NOTED(pf_valloc_in(size)); }
void *pf_pvalloc(size_t size) { PF_NOTED(pf_pvalloc_in(size)); }
void *pf_family_alloc(pf_family_t *f, size_t n) { PF_NOTED(pf_family_alloc_in(f, n)); }

int pf_posix_memalign(void **out, size_t align, size_t size)
{
    int rc = pf_posix_memalign_in(out, align, size);
    pf_sites_note_caller(rc == 0 ? *out : NULL, __builtin_return_address(0));
    return rc;
}

/* ---- fork --------------------------------------------------------------------------------- */
/* libc's lock on its list of open streams (glibc exports it; weak, so
 * other libcs link). It is recursive: glibc's fork takes it again on the
 * same thread after the prepare handlers, and resets it in the child. */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

/* Whether the prepare handler took the checking mode's locks. */
static int fork_check;

static void fork_prepare(void)
{
    if (!pf_lock_threaded()) {
        pf_lock_fork_taken_set(0);
        return;
    }
    /* libc's fork takes the stream list's lock after the prepare handlers,
     * and a thread holding it (fflush(NULL)) may wait for a stream's lock
     * whose holder waits in malloc for ours: taking our locks first would
     * close that cycle. libc's own order — stream list, then malloc — is
     * kept by taking the list lock before any of ours. */
    if (_IO_list_lock)
        _IO_list_lock();
    /* Checked operations under way finish first: they take the locks
     * below. */
    fork_check = pf_check_on;
    if (fork_check)
        pf_check_fork_quiesce();
    /* Batches of slots other threads' caches move are in one place or the
     * other before the locks are taken (tcache.c). */
    pf_tcache_fork_prepare();
    pf_family_fork_lock();
    pf_large_fork_lock();
    pf_span_fork_lock();
    if (fork_check)
        pf_check_fork_lock();
    pf_lock_fork_taken_set(1);
}

static void fork_parent(void)
{
    if (!pf_lock_fork_taken())
        return;
    if (fork_check)
        pf_check_fork_unlock(0);
    pf_span_fork_unlock(0);
    pf_large_fork_unlock(0);
    pf_family_fork_unlock(0);
    pf_lock_fork_over();
    pf_tcache_fork_parent();
    if (fork_check)
        pf_check_fork_parent();
    if (_IO_list_unlock)
        _IO_list_unlock();
}

PF_FORK_CHILD static void fork_child(void)
{
    pf_os_fork_stacks();
    if (pf_check_on)
        pf_check_fork_child();
    if (!pf_lock_fork_taken())
        return;
    if (fork_check)
        pf_check_fork_unlock(1);
    pf_span_fork_unlock(1);
    pf_large_fork_unlock(1);
    pf_family_fork_unlock(1);
    pf_lock_fork_over();
    /* glibc resets the list lock in the child of a threaded process (before
     * the child handlers run), which drops our hold with its own; resetting
     * again is harmless and covers a libc that did not. */
    if (_IO_list_resetlock)
        _IO_list_resetlock();
    pf_tcache_fork_child();
    pf_os_fork_child();
}

void pf_alloc_init(void)
{
    static atomic_int done;
    int zero = 0;
    if (atomic_compare_exchange_strong(&done, &zero, 1)) {
        pf_os_note_initial();
        pf_tcache_init();
        pf_os_atfork(fork_prepare, fork_parent, fork_child);
    }
}

__attribute__((constructor)) static void alloc_ctor(void)
{
    pf_alloc_init();
}
