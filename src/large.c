/*
 * large.c — large blocks. A block is a mapping of its own, or a piece of a
 * freed one: freed blocks stay mapped in a bounded cache of address ranges,
 * where neighbours coalesce, a request takes the smallest range that holds
 * it (the rest stays cached) and, when none does, the biggest range grows
 * with mremap, so only its new pages fault. realloc grows and shrinks with
 * mremap, which moves page tables instead of copying bytes; a growing block
 * first takes the cached range right after it, and growth elsewhere gives
 * back as many cached bytes, so a buffer grown after another was freed
 * does not hold both. The span struct
 * is unpublished (pagemap entry set to the freed-large tombstone) before
 * the range is cached or unmapped, so a second free of the same pointer is
 * named a double free.
 */
#include "large.h"

#include <errno.h>
#include <string.h>

#define CACHE_SLOTS PF_LARGE_CACHE_RANGES
#define CACHE_TOTAL_MAX PF_LARGE_CACHE_MAX
#define CACHE_DECAY_SECONDS PF_LARGE_DECAY_SECONDS
#define DROP_MAX 8
#define COPY_PIECE ((size_t)1 << 20)

struct cached {
    uintptr_t p;
    size_t bytes;  /* 0: empty slot */
    uint64_t when; /* seconds (monotonic) the range was last given back */
};

static pf_lock_t cache_lock = PF_LOCK_INIT;
PF_BULK static struct cached cache[CACHE_SLOTS];
static size_t cache_bytes;
/* cache_bytes and last_decay are written under cache_lock and read without
 * it (pf_large_tick's and pf_large_cached_bytes's quick looks). */
static uint64_t last_decay;
/* Bytes of large blocks live, and their high-water mark (all families). */
static _Atomic size_t large_live, large_peak;
static _Atomic uint64_t large_allocs; /* large blocks allocated so far */
/* A large block was freed; a large block was allocated after one was. */
static _Atomic int large_freed, large_again;
/* Bytes of the biggest large block there has been: no block holding a
 * pointer starts further below it (bounds pf_large_find's walk). */
static _Atomic size_t large_max;

static void note_block(size_t bytes)
{
    size_t m = atomic_load_explicit(&large_max, memory_order_relaxed);
    while (bytes > m && !atomic_compare_exchange_weak_explicit(&large_max, &m, bytes, memory_order_relaxed,
                                                               memory_order_relaxed)) {
    }
}

struct pf_span *pf_large_find(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    size_t max = atomic_load_explicit(&large_max, memory_order_relaxed);
    uintptr_t lowest = a > max ? a - max : 0;
    for (uintptr_t c = a >> PF_CHUNK_SHIFT;; c--) {
        struct pf_span *s = pf_pagemap_get((void *)(c << PF_CHUNK_SHIFT));
        /* Tombstones may be stale (a later block mapped over a freed one's
         * chunk): look past them. */
        if (s && s->kind != PF_SPAN_GONE) {
            if (s->kind != PF_SPAN_LARGE)
                return NULL; /* a region's chunk: no large block covers it, nor p above it */
            if (s->start <= a)
                return a - s->start < s->bytes ? s : NULL; /* blocks never overlap */
        }
        if ((c << PF_CHUNK_SHIFT) <= lowest || c == 0)
            return NULL;
    }
}

/* A cached range of `bytes`, or NULL; *got is what the block may use. The
 * smallest range that holds it is taken, split when the rest is at least a
 * chunk (so that no two blocks start in one chunk); failing that, the biggest
 * smaller one grows with mremap, so only its new pages fault, and *grew is
 * set to the bytes it grew by (else 0). */
static void *cache_take(size_t bytes, size_t *got, size_t *grew)
{
    *grew = 0;
    pf_lock(&cache_lock);
    int ge = -1, lt = -1;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        size_t b = cache[i].bytes;
        if (b == 0)
            continue;
        if (b >= bytes) {
            if (ge < 0 || b < cache[ge].bytes)
                ge = i;
        } else if (lt < 0 || b > cache[lt].bytes) {
            lt = i;
        }
    }
    if (ge >= 0) {
        struct cached *c = &cache[ge];
        uintptr_t p = c->p;
        if (c->bytes - bytes >= PF_CHUNK) {
            c->p += bytes;
            c->bytes -= bytes;
            *got = bytes;
        } else {
            *got = c->bytes;
            c->bytes = 0;
        }
        PF_RELAXED_ADD(cache_bytes, -*got);
        pf_unlock(&cache_lock);
        return (void *)p;
    }
    struct cached c = {0, 0, 0};
    if (lt >= 0) {
        c = cache[lt];
        cache[lt].bytes = 0;
        PF_RELAXED_ADD(cache_bytes, -c.bytes);
    }
    pf_unlock(&cache_lock);
    if (c.bytes == 0)
        return NULL;
    /* The range may span mappings that the kernel keeps apart; mremap then
     * refuses it and the range is given back. */
    void *p = pf_os_remap((void *)c.p, c.bytes, bytes, 1);
    if (!p)
        pf_os_unmap((void *)c.p, c.bytes);
    else
        *grew = bytes - c.bytes;
    *got = bytes;
    return p;
}

static void live_add(size_t bytes)
{
    size_t now = atomic_fetch_add_explicit(&large_live, bytes, memory_order_relaxed) + bytes;
    size_t peak = atomic_load_explicit(&large_peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(&large_peak, &peak, now, memory_order_relaxed,
                                                                memory_order_relaxed)) {
    }
}

static void live_sub(size_t bytes)
{
    atomic_fetch_sub_explicit(&large_live, bytes, memory_order_relaxed);
}

/* The bytes the cache may hold. A program that churns large blocks (it has
 * allocated PF_LARGE_CHURN or more, or one after it had freed one: a
 * buffer built, freed and built again) keeps live and cached large bytes
 * together within 1.25 x the high-water mark of live ones, so it gets
 * blocks back without page faults while its footprint stays near its peak;
 * one that has allocated only a few and freed none before them keeps no
 * more cached than it has live (a buffer used once and freed is not held).
 * Never more than CACHE_TOTAL_MAX. */
static size_t cache_limit(void)
{
    size_t live = atomic_load_explicit(&large_live, memory_order_relaxed);
    size_t room = live;
    if (atomic_load_explicit(&large_allocs, memory_order_relaxed) >= PF_LARGE_CHURN ||
        atomic_load_explicit(&large_again, memory_order_relaxed)) {
        size_t peak = atomic_load_explicit(&large_peak, memory_order_relaxed);
        size_t bound = peak + peak / 4;
        room = bound > live ? bound - live : 0;
    }
    return room < CACHE_TOTAL_MAX ? room : CACHE_TOTAL_MAX;
}

/* Under cache_lock, at most once a second: ranges nobody took for
 * CACHE_DECAY_SECONDS leave the cache, into drop[]. */
static void decay_locked(uint64_t now, struct cached *drop, int *ndrop)
{
    if (now == last_decay)
        return;
    __atomic_store_n(&last_decay, now, __ATOMIC_RELAXED);
    for (int i = 0; i < CACHE_SLOTS && *ndrop < DROP_MAX; i++)
        if (cache[i].bytes && now - cache[i].when >= CACHE_DECAY_SECONDS) {
            drop[(*ndrop)++] = cache[i];
            PF_RELAXED_ADD(cache_bytes, -cache[i].bytes);
            cache[i].bytes = 0;
        }
}

void pf_large_tick(void)
{
    if (__atomic_load_n(&cache_bytes, __ATOMIC_RELAXED) == 0)
        return;
    uint64_t now = pf_os_seconds();
    if (now == __atomic_load_n(&last_decay, __ATOMIC_RELAXED))
        return;
    struct cached drop[DROP_MAX];
    int ndrop = 0;
    pf_lock(&cache_lock);
    decay_locked(now, drop, &ndrop);
    pf_unlock(&cache_lock);
    for (int i = 0; i < ndrop; i++)
        pf_os_unmap((void *)drop[i].p, drop[i].bytes);
}

/* Under cache_lock: the smallest ranges leave the cache, whole, into drop[]
 * (which has room for `room`), until it holds no more than limit; the last
 * one only its tail when what stays can serve a block. A big range kept
 * whole serves a big request without growing (the new pages of a growth
 * fault), and a small request splits it: cutting the tails of the biggest
 * ranges instead, large_blocks took 111 K page faults and 1.16 s against
 * 75 K and 0.80 s, at the same peak RSS. */
static void shed_locked(size_t limit, struct cached *drop, int *ndrop, int room)
{
    size_t ps = pf_os_page_size();
    while (cache_bytes > limit && *ndrop < room) {
        int small = -1;
        for (int i = 0; i < CACHE_SLOTS; i++)
            if (cache[i].bytes && (small < 0 || cache[i].bytes < cache[small].bytes))
                small = i;
        if (small < 0)
            break;
        struct cached *c = &cache[small];
        size_t cut = (cache_bytes - limit + ps - 1) & ~(ps - 1);
        if (cut >= c->bytes || c->bytes - cut < PF_CHUNK)
            cut = c->bytes; /* what would stay is too small to serve a block */
        c->bytes -= cut;
        PF_RELAXED_ADD(cache_bytes, -cut);
        drop[(*ndrop)++] = (struct cached){c->p + c->bytes, cut, 0};
    }
}

/* A block has grown by `grew` bytes of fresh pages: as many cached bytes
 * are unmapped (and whatever is beyond the limit), so live and cached
 * bytes together do not grow while anything is cached. A freed buffer's
 * range kept warm while the next one grows elsewhere would otherwise hold
 * about twice the final size. With grew == 0, only what is beyond the
 * limit goes. */
static void cache_fit(size_t grew)
{
    size_t have = __atomic_load_n(&cache_bytes, __ATOMIC_RELAXED);
    if (have == 0)
        return;
    struct cached drop[DROP_MAX];
    int ndrop = 0;
    pf_lock(&cache_lock);
    size_t limit = cache_limit();
    if (cache_bytes - (grew < cache_bytes ? grew : cache_bytes) < limit)
        limit = cache_bytes - (grew < cache_bytes ? grew : cache_bytes);
    shed_locked(limit, drop, &ndrop, DROP_MAX);
    pf_unlock(&cache_lock);
    for (int i = 0; i < ndrop; i++)
        pf_os_unmap((void *)drop[i].p, drop[i].bytes);
}

/* A block ending at `end` grows by `need` bytes into the cached range
 * that starts there, if it holds them: its front joins the block, whose
 * pages are mapped and resident already, so growth costs no syscall and
 * no page fault, and a range freed by the last buffer serves the next one
 * as it grows instead of staying warm beside it. Returns the bytes taken
 * (the whole range when what would stay is less than a chunk), or 0. */
static size_t cache_extend(uintptr_t end, size_t need)
{
    size_t took = 0;
    pf_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct cached *c = &cache[i];
        if (c->bytes == 0 || c->p != end)
            continue;
        if (c->bytes >= need) {
            took = c->bytes - need >= PF_CHUNK ? need : c->bytes;
            c->p += took;
            c->bytes -= took;
            PF_RELAXED_ADD(cache_bytes, -took);
        }
        break; /* ranges never overlap: no other starts there */
    }
    pf_unlock(&cache_lock);
    return took;
}

/* Caches [p, p + bytes), coalesced with its cached neighbours. Decayed
 * ranges go first; beyond the limit, the smallest ranges go; all
 * are unmapped outside the lock. */
static void cache_put(uintptr_t p, size_t bytes)
{
    size_t limit = cache_limit();
    if (bytes > limit) {
        pf_os_unmap((void *)p, bytes);
        return;
    }
    uint64_t now = pf_os_seconds();
    size_t added = bytes;
    struct cached drop[DROP_MAX + 1];
    int ndrop = 0;
    pf_lock(&cache_lock);
    decay_locked(now, drop, &ndrop);
    int empty = -1, merged = -1;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct cached *c = &cache[i];
        if (c->bytes == 0) {
            if (empty < 0)
                empty = i;
            continue;
        }
        if (c->p + c->bytes == p) { /* the left neighbour takes the block in */
            c->bytes += bytes;
            p = c->p;
        } else if (p + bytes == c->p) { /* the block takes the right one in */
            c->p = p;
            c->bytes += bytes;
        } else {
            continue;
        }
        bytes = c->bytes;
        c->when = now;
        if (merged >= 0) /* joined two cached ranges: one slot goes */
            cache[merged].bytes = 0;
        merged = i;
    }
    if (merged >= 0 || empty >= 0) {
        if (merged < 0)
            cache[empty] = (struct cached){p, bytes, now};
        PF_RELAXED_ADD(cache_bytes, added);
    } else { /* every slot taken: the block goes back */
        drop[ndrop++] = (struct cached){p, bytes, 0};
    }
    shed_locked(limit, drop, &ndrop, DROP_MAX);
    pf_unlock(&cache_lock);
    for (int i = 0; i < ndrop; i++)
        pf_os_unmap((void *)drop[i].p, drop[i].bytes);
}

size_t pf_large_trim(void)
{
    /* DROP_MAX ranges at a time, in one pass over the slots: a trim runs
     * when a mapping failed, deep in a malloc on any thread's stack, so its
     * batch stays small. */
    size_t released = 0;
    for (int i = 0; i < CACHE_SLOTS;) {
        struct cached out[DROP_MAX];
        int n = 0;
        size_t took = 0;
        pf_lock(&cache_lock);
        for (; i < CACHE_SLOTS && n < DROP_MAX; i++)
            if (cache[i].bytes) {
                out[n++] = cache[i];
                took += cache[i].bytes;
                cache[i].bytes = 0;
            }
        PF_RELAXED_ADD(cache_bytes, -took);
        pf_unlock(&cache_lock);
        for (int k = 0; k < n; k++)
            pf_os_unmap((void *)out[k].p, out[k].bytes);
        released += took;
    }
    return released;
}

size_t pf_large_cached_bytes(void)
{
    return __atomic_load_n(&cache_bytes, __ATOMIC_RELAXED);
}

void pf_large_fork_lock(void)
{
    pf_lock(&cache_lock);
}

void pf_large_fork_unlock(int child)
{
    child ? pf_lock_reset(&cache_lock) : pf_unlock(&cache_lock);
}

static size_t round_pages(size_t n)
{
    size_t ps = pf_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

void pf_large_reclaim(void)
{
    pf_family_trim();
    pf_span_trim();
    pf_large_trim();
}

__attribute__((constructor)) static void large_init(void)
{
    pf_span_set_reclaim(pf_large_reclaim);
}

void *pf_large_alloc(struct pf_family *f, size_t req, size_t align, int zero)
{
    pf_family_hold_point();
    /* At least a chunk, so no two blocks start in the same chunk. */
    size_t bytes = round_pages(req < PF_CHUNK ? PF_CHUNK : req);
    if (bytes < req || req > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    struct pf_span *s = pf_span_meta_new();
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = NULL;
    size_t grew = 0;
    if (align <= pf_os_page_size() && (p = cache_take(bytes, &bytes, &grew)) != NULL && zero)
        memset(p, 0, req);
    int fresh = !p || grew; /* pages the cache did not hold */
    if (!p)
        p = pf_os_map(bytes, align);
    if (!p) { /* out of address space: give back what is cached, once more */
        pf_span_reclaim();
        p = pf_os_map(bytes, align);
    }
    if (!p || pf_pagemap_set(p, 1, s) != 0) {
        if (p)
            pf_os_unmap(p, bytes);
        pf_span_meta_free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->start = (uintptr_t)p;
    s->bytes = bytes;
    s->req = req;
    s->kind = PF_SPAN_LARGE;
    s->family = f;
    s->slot_size = 0;
    s->nslots = 1;
    s->used = 1;
    live_add(bytes);
    note_block(bytes);
    /* Pages mapped or grown for this block added live bytes and no cached
     * ones: what the cache holds beyond its limit now goes at once, not at
     * the next free, which may be a whole block's size away. (So too when
     * the cached range could not be grown, or the alignment asked for
     * kept the block out of the cache.) */
    if (fresh)
        cache_fit(0);
    atomic_fetch_add_explicit(&large_allocs, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&large_again, memory_order_relaxed) &&
        atomic_load_explicit(&large_freed, memory_order_relaxed))
        atomic_store_explicit(&large_again, 1, memory_order_relaxed);
    pf_family_add_large(f, s);
    return p;
}

void pf_large_free(struct pf_span *s)
{
    int saved = errno;
    void *p = (void *)s->start;
    pf_family_remove_large(s->family, s);
    pf_pagemap_set(p, 1, PF_PM_FREED_LARGE(p));
    live_sub(s->bytes);
    if (!atomic_load_explicit(&large_freed, memory_order_relaxed))
        atomic_store_explicit(&large_freed, 1, memory_order_relaxed);
    cache_put((uintptr_t)p, s->bytes);
    pf_span_meta_free(s);
    errno = saved;
}

/* Copies a block into its new place a piece at a time, giving back each
 * piece's old pages once copied: a block and its copy are never both
 * resident, so a copy costs time, not twice the memory. */
static void copy_out(void *to, void *from, size_t bytes)
{
    for (size_t off = 0; off < bytes; off += COPY_PIECE) {
        size_t n = bytes - off < COPY_PIECE ? bytes - off : COPY_PIECE;
        memcpy((char *)to + off, (char *)from + off, n);
        pf_os_decommit((char *)from + off, n); /* a refusal only keeps pages until the unmap */
    }
}

#define UNDO_FAILED "pfalloc: out of address space while undoing a failed realloc\n"

void *pf_large_realloc(struct pf_span *s, size_t req)
{
    size_t bytes = round_pages(req < PF_CHUNK ? PF_CHUNK : req);
    if (bytes < req || req > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t old_bytes = s->bytes, old_req = s->req;
    void *old = (void *)s->start;
    if (bytes > old_bytes) {
        size_t took = cache_extend(s->start + old_bytes, bytes - old_bytes);
        if (took) {
            bytes = old_bytes + took;
            note_block(bytes);
            s->bytes = bytes;
            live_add(bytes);
            live_sub(old_bytes);
            s->req = req;
            pf_family_resize_large(s->family, s, old_bytes, old_req);
            return old;
        }
    }
    if (bytes != old_bytes) {
        void *p = pf_os_remap(old, old_bytes, bytes, 1);
        int copy = 0;
        if (!p && bytes > old_bytes) {
            /* A block carved from coalesced cached ranges may span mappings
             * that mremap will not move as one: copy it instead. */
            p = pf_os_map(bytes, 0);
            copy = 1;
        }
        if (!p && bytes > old_bytes) {
            /* Out of address space: give back what is cached, once more. */
            pf_span_reclaim();
            p = pf_os_remap(old, old_bytes, bytes, 1);
            copy = 0;
            if (!p) {
                p = pf_os_map(bytes, 0);
                copy = 1;
            }
        }
        if (!p && bytes < old_bytes) {
            /* A shrink the kernel refused (splitting a mapping at the
             * mapping limit): the block stays where it is, at its size, as
             * a shrink in place would have left its head. */
            s->req = req;
            pf_family_resize_large(s->family, s, old_bytes, old_req);
            return old;
        }
        if (!p) {
            errno = ENOMEM;
            return NULL;
        }
        if (p != old) {
            if (pf_pagemap_set(p, 1, s) != 0) { /* no pagemap leaf for p: undo */
                if (copy)
                    pf_os_unmap(p, bytes);
                else if (!pf_os_remap_to(p, bytes, old_bytes, old)) /* back where it was */
                    pf_os_die(UNDO_FAILED, sizeof(UNDO_FAILED) - 1);
                errno = ENOMEM;
                return NULL;
            }
            if (copy) {
                /* The whole usable size: the program may have used it. */
                copy_out(p, old, old_bytes);
                pf_os_unmap(old, old_bytes);
            }
            /* The old range is unmapped now, and a block of another thread
             * may already start in its chunk: clear the entry only if it
             * still names this block. */
            pf_pagemap_replace(old, s, PF_PM_FREED_LARGE(old));
        }
        note_block(bytes);
        s->start = (uintptr_t)p;
        s->bytes = bytes;
        live_add(bytes);
        live_sub(old_bytes);
        if (bytes > old_bytes) {
            cache_fit(bytes - old_bytes);
            pf_span_shed_warm();
        }
    }
    s->req = req;
    pf_family_resize_large(s->family, s, old_bytes, old_req);
    return (void *)s->start;
}
