/*
 * span.c — regions, the pool of empty spans, slot take/give, and pfalloc's
 * own metadata memory. Owns the pool lock; never calls into families.
 * No syscall is made while the pool lock is held: decide under the lock,
 * map or give pages back after it.
 */
#include "span.h"

#include <string.h>

#include "list.h"
#include "lock.h"

const uint16_t pf_state_none[1];
#define GONE {.kind = PF_SPAN_GONE, .state = (uint16_t *)pf_state_none, .bin = PF_BIN_NONE}
_Static_assert(PF_GONE_COUNT == 16, "one tombstone per 4 KiB of a 64 KiB chunk");
struct pf_span pf_span_gone[PF_GONE_COUNT] = {GONE, GONE, GONE, GONE, GONE, GONE, GONE, GONE,
                                              GONE, GONE, GONE, GONE, GONE, GONE, GONE, GONE};
#undef GONE

/* ---- metadata memory ------------------------------------------------------ */
/* The first chunk is small, so a program that allocates little maps
 * little; later ones are bigger, so many threads' caches share mappings. */
#define META_FIRST ((size_t)64 << 10)
#define META_CHUNK ((size_t)1 << 20)
static pf_lock_t meta_lock = PF_LOCK_INIT;
static char *meta_cur, *meta_end;
static int meta_grown; /* a chunk has been mapped: later ones are META_CHUNK */

void *pf_meta_alloc(size_t bytes)
{
    bytes = (bytes + 15) & ~(size_t)15;
    pf_lock(&meta_lock);
    if ((size_t)(meta_end - meta_cur) < bytes) {
        size_t chunk = meta_grown ? META_CHUNK : META_FIRST;
        pf_unlock(&meta_lock);
        if (bytes > chunk / 2)
            return pf_os_map_meta(bytes); /* big ones get a mapping to themselves */
        char *m = pf_os_map_meta(chunk);
        if (!m)
            return NULL;
        pf_lock(&meta_lock);
        /* The remainder of the old chunk is dropped; requests are small
         * next to a chunk, so little is lost. */
        meta_cur = m;
        meta_end = m + chunk;
        meta_grown = 1;
    }
    void *p = meta_cur;
    meta_cur += bytes;
    pf_unlock(&meta_lock);
    return p;
}

/* ---- regions and the pool --------------------------------------------------- */
typedef uint64_t slotbits[PF_MAX_SLOTS / 64];
typedef uint16_t slotstates[PF_MAX_SLOTS];

/* A region's metadata is one mapping: this header, then spans[nchunks],
 * bits[nchunks], from the next page boundary states[nchunks], then
 * coarse[nchunks]. A span touches the free bits of its slots and the
 * states of the slots it has used, the bits from the start of its array and
 * the states from a few cache lines in (state_colour), never past the page
 * they start in: with the bits of eight chunks in 4 KiB and each chunk's
 * states starting a page, a span of up to 2048 slots costs one page of states and a
 * share of one page of bits, where states and bits side by side would cost
 * it two pages, often three. A span whose slots are PF_COARSE_SLOT bytes or
 * more has at most PF_COARSE_STATES slots per chunk: its states go in the
 * coarse array instead, PF_COARSE_STATES entries per chunk side by side (a
 * span of n chunks takes the n entries of its chunks), so four chunks of
 * such slots share one page of states instead of taking a page each. A
 * span of up to PF_FEW_SLOTS slots uses neither: its bits and states are
 * in its struct. */
typedef uint16_t coarsestates[PF_COARSE_STATES];
struct pf_region {
    uintptr_t base;          /* first chunk, 64 KiB aligned */
    struct pf_region *next;  /* all regions */
    uint32_t nchunks;        /* chunks in the region */
    uint32_t carved;         /* chunks [0, carved) have been made into spans (or are the hole) */
    uint32_t hole;           /* the chunk never made into a span (see HOLE_ALIGN), or nchunks */
    uint32_t in_use;         /* chunks held by live (non-pooled) spans */
    uint32_t *sites;         /* PF_MAX_SLOTS call-site ids per chunk, or NULL */
    struct pf_span *spans;   /* span of the run starting at chunk i */
    slotbits *bits;          /* free bits of the span at chunk i */
    slotstates *states;      /* slot states of the span at chunk i (page aligned) */
    coarsestates *coarse;    /* slot states of a span of big slots at chunk i */
};

/* A region never makes a span of the chunk that starts at a 4 GiB boundary
 * (its hole). Words whose low half is 0 or a small number and whose high
 * half is an address's are common in memory the leak walk reads as roots:
 * an int stored into a slot that held an address (glibc's setjmp before
 * main writes its mask flag so, in a frame that lives until the exit)
 * points at the first bytes above the boundary below the libraries, where
 * the kernel puts the heap. A leaked object there was reported still
 * reachable, with everything it points to. No slot lies in those 64 KiB,
 * so such words point at nothing. */
#define HOLE_ALIGN ((uintptr_t)1 << 32)

static pf_lock_t pool_lock = PF_LOCK_INIT;
static struct pf_region *regions;     /* newest first; the head is carved from */
/* Empty spans by chunk count: warm ones (pages resident) and cold ones
 * (pages given back, reading as zero). Reuse prefers warm. */
static struct pf_span *warm[PF_SPAN_MAX_CHUNKS + 1];
static struct pf_span *cold[PF_SPAN_MAX_CHUNKS + 1];
static size_t pool_committed;         /* bytes of pooled spans still resident */
/* pool_committed and last_tick are written under pool_lock and read
 * without it (pf_span_tick's quick look). */
static size_t pool_limit = (size_t)8 << 20;
static size_t chunks_in_use, chunks_peak; /* chunks held by live spans, and their high-water mark */
static uint64_t last_tick;
static int decay_more; /* a tick stopped at PF_POOL_DECAY_STEP with spans still due */
static struct pf_span *large_free;    /* recycled large-span structs */
static int sites_on;                  /* new regions get call-site arrays */
/* Chunks of the next region: regions start small and double up to
 * PF_REGION_CHUNKS, so the first allocation maps a few hundred KiB and a
 * big heap still takes few mappings. */
static uint32_t next_chunks = PF_REGION_MIN_CHUNKS;
/* Gives back what the layers above cache, when the OS refuses a mapping. */
static void (*reclaim)(void);

void pf_span_set_reclaim(void (*fn)(void)) { __atomic_store_n(&reclaim, fn, __ATOMIC_RELEASE); }

void pf_span_reclaim(void)
{
    void (*fn)(void) = __atomic_load_n(&reclaim, __ATOMIC_ACQUIRE);
    if (fn)
        fn();
    else
        pf_span_trim();
}

static size_t sites_bytes(const struct pf_region *r)
{
    return (size_t)r->nchunks * PF_MAX_SLOTS * sizeof(uint32_t);
}

static size_t states_offset(uint32_t nchunks)
{
    size_t ps = pf_os_page_size();
    size_t head = sizeof(struct pf_region) + nchunks * (sizeof(struct pf_span) + sizeof(slotbits));
    return (head + ps - 1) & ~(ps - 1);
}

static size_t region_meta_bytes(uint32_t nchunks)
{
    return states_offset(nchunks) + nchunks * (sizeof(slotstates) + sizeof(coarsestates));
}

static size_t region_bytes(const struct pf_region *r)
{
    return (size_t)r->nchunks * PF_CHUNK;
}

void pf_span_set_cache_limit(size_t bytes) { pool_limit = bytes; }

size_t pf_span_cached_bytes(void)
{
    return __atomic_load_n(&pool_committed, __ATOMIC_RELAXED);
}

static struct pf_span **pool_head(const struct pf_span *s)
{
    return s->committed ? &warm[s->nchunks] : &cold[s->nchunks];
}

/* Pushes onto the pool so far: only a push can make a run of pooled spans
 * that a join could use, so a failed join need not be looked for again
 * until the next one. */
static uint64_t pool_pushes;
/* The join that failed last: at pool_pushes == join_failed_at - 1, no run
 * of join_failed_n chunks or more could be joined. */
static uint64_t join_failed_at;
static uint32_t join_failed_n;
static uint64_t join_looks; /* pooled spans a join looked at (tests) */

static void pool_push(struct pf_span *s)
{
    struct pf_span **head = pool_head(s);
    pool_pushes++;
    s->kind = PF_SPAN_FREE;
    if (s->bin != PF_BIN_NONE)
        pf_pagemap_view_set(s->start, s->bytes, 0, NULL, 0);
    s->bin = PF_BIN_NONE;
    PF_LIST_PUSH(head, s, next, prev);
    if (s->committed)
        PF_RELAXED_ADD(pool_committed, s->bytes);
}

static void pool_unlink(struct pf_span *s)
{
    PF_LIST_UNLINK(pool_head(s), s, next, prev);
    if (s->committed)
        PF_RELAXED_ADD(pool_committed, -s->bytes);
}

/* Where in its chunk's array a span's states start, in entries. Each
 * chunk's array starts a page (the coarse ones a 1 KiB slice), and spans
 * take their slots from the front: left at the front, the states a
 * thread's classes use most would all share the same few cache sets, and a
 * program with a dozen classes in use would miss on them (a fifth of frees
 * on `malloc_small` in a simulated 32 KiB L1). A span with room to spare
 * starts a whole number of 64-byte lines in, by its chunk's number, as far
 * as keeps it in the page (or slice) it would start in. */
static uint32_t state_colour(const struct pf_span *s)
{
    uint32_t per = s->slot_size >= PF_COARSE_SLOT ? PF_COARSE_STATES
                                                  : (uint32_t)(pf_os_page_size() / sizeof *s->state);
    uint32_t line = 64 / sizeof *s->state;
    if (s->nslots + line > per)
        return 0;
    uint32_t colours = (per - s->nslots) / line + 1;
    return (uint32_t)((s->start >> PF_CHUNK_SHIFT) % colours) * line;
}

static struct pf_span *span_at(struct pf_region *r, uint32_t chunk, uint32_t nchunks)
{
    struct pf_span *s = &r->spans[chunk];
    s->start = r->base + (uintptr_t)chunk * PF_CHUNK;
    s->region = r;
    s->nchunks = (uint16_t)nchunks;
    s->bytes = (size_t)nchunks * PF_CHUNK;
    s->state = r->states[chunk];
    s->freebits = r->bits[chunk];
    s->sites = r->sites ? r->sites + (size_t)chunk * PF_MAX_SLOTS : NULL;
    return s;
}

static void shrink_warm(size_t bound);

static void note_in_use(uint32_t n)
{
    chunks_in_use += n;
    if (chunks_in_use > chunks_peak)
        chunks_peak = chunks_in_use;
}

/* Resident bytes of empty spans the pool may hold right now: PFALLOC_CACHE
 * for as long as they are not needed and, while PFALLOC_CACHE is not 0, up
 * to the peak bytes of live spans for PF_POOL_DECAY_SECONDS (a program whose
 * objects come and go in waves reuses warm pages instead of giving them
 * back and faulting them in again, and one that frees everything at its
 * end makes no madvise for it). */
static size_t pool_bound(void)
{
    size_t soft = chunks_peak * PF_CHUNK;
    return pool_limit == 0 || soft < pool_limit ? pool_limit : soft;
}

#define JOIN_LOOK_MAX 1024

/* t is pooled as s is (both warm, or both cold): the two may be joined. */
static int pooled_alike(const struct pf_span *t, const struct pf_span *s)
{
    return t->kind == PF_SPAN_FREE && t->committed == s->committed;
}

/* Under the pool lock, when no pooled span has `n` chunks or more: pooled
 * spans side by side in a region (pooled alike: warm with warm, cold with
 * cold) that make `n` chunks or more, at most PF_SPAN_MAX_CHUNKS, joined
 * and pooled again as one span; 0 if there are none. A run of pooled spans
 * is looked at from its first span, and the first stretch of it from the
 * left that fits is taken, so the leftovers stay long (joined from the
 * middle, a run leaves pieces too short to use). Spans are joined only
 * here, where the alternative is fresh pages: until then a pooled span
 * keeps the fields of its last use, so a late double free into it is
 * still named as one. Spans tile a region's carved chunks, so the span
 * after s starts at s's end; one that is being decommitted is marked small
 * meanwhile, so it is not taken for pooled. */
static int join_run(struct pf_span **lists, uint32_t n)
{
    int looked = 0; /* a bounded look: a pool of many cold spans costs no long walk */
    for (uint32_t k = 1; k < n; k++)
        for (struct pf_span *s = lists[k]; s && looked < JOIN_LOOK_MAX; s = s->next, looked++) {
            struct pf_region *r = s->region;
            uint32_t chunk = (uint32_t)((s->start - r->base) / PF_CHUNK);
            if (chunk > 0) { /* not the first of its run: seen from there */
                const struct pf_span *left = pf_pagemap_get((void *)(s->start - 1));
                if (left && pooled_alike(left, s))
                    continue;
            }
            /* The stretch [lo, hi) of the run, grown on the right and cut
             * on the left while longer than a span may be. */
            uint32_t lo = chunk, hi = chunk, run = 0;
            while (run < n && hi < r->carved) {
                const struct pf_span *t = &r->spans[hi];
                if (!pooled_alike(t, s))
                    break;
                hi += t->nchunks;
                run += t->nchunks;
                while (run > PF_SPAN_MAX_CHUNKS) {
                    run -= r->spans[lo].nchunks;
                    lo += r->spans[lo].nchunks;
                }
            }
            if (run < n)
                continue;
            struct pf_span *first = &r->spans[lo];
            uint32_t pooled_at = first->pooled_at;
            pool_unlink(first);
            for (uint32_t c = lo + first->nchunks; c < hi;) {
                struct pf_span *t = &r->spans[c];
                pool_unlink(t);
                if (t->pooled_at > pooled_at)
                    pooled_at = t->pooled_at;
                c += t->nchunks;
            }
            first->nchunks = (uint16_t)run;
            first->bytes = (size_t)run * PF_CHUNK;
            first->pooled_at = pooled_at;
            pf_pagemap_set((void *)first->start, first->bytes, first);
            pool_push(first);
            join_looks += (uint64_t)looked + 1;
            return 1;
        }
    join_looks += (uint64_t)looked;
    return 0;
}

/* Under the pool lock: join_run for n, warm spans first, unless a join of
 * n chunks or fewer has failed since the last push. */
static int join_pooled(uint32_t n)
{
    if (join_failed_at == pool_pushes + 1 && n >= join_failed_n)
        return 0;
    if (join_run(warm, n) || join_run(cold, n))
        return 1;
    join_failed_at = pool_pushes + 1;
    join_failed_n = n;
    return 0;
}

uint64_t pf_span_join_looks(void)
{
    pf_lock(&pool_lock);
    uint64_t n = join_looks;
    pf_unlock(&pool_lock);
    return n;
}

/* Under the pool lock: chunks [r->carved, end) of r go to the pool as cold
 * spans (never touched, reading as zero), the hole stepped over. */
static void pool_uncarved(struct pf_region *r, uint32_t end)
{
    while (r->carved < end) {
        if (r->carved == r->hole) {
            r->carved++;
            continue;
        }
        uint32_t k = (r->hole > r->carved && r->hole < end ? r->hole : end) - r->carved;
        if (k > PF_SPAN_MAX_CHUNKS)
            k = PF_SPAN_MAX_CHUNKS;
        struct pf_span *s = span_at(r, r->carved, k);
        s->committed = 0;
        s->family = NULL;
        r->carved += k;
        pool_push(s);
        pf_pagemap_set((void *)s->start, s->bytes, s);
    }
}

/* Under the pool lock: an empty run of `n` chunks, or NULL. `join`: pooled
 * neighbours may be joined for it (not worth a look again right after a
 * new region was made for it). When neither the pool nor a join has `n`
 * chunks, the biggest warm span that holds a slot of `slot` bytes (0: no
 * such fallback) serves instead of fresh pages, a span smaller than the
 * class's spans usually are. A program whose phases ask for other sizes
 * (small blocks, then blocks of tens of KiB) otherwise left the first
 * phase's leftovers resident in the pool, runs too short to join, while the
 * second faulted fresh pages in beside them. The pages such a span has past
 * its last slot stay resident while it lives (up to 28 KiB of a chunk for
 * slots of 36 KiB); in the pool they were resident too, until their decay.
 * Giving them back at once cost more than it saved: 0.31 -> 0.52 s and
 * 13 K -> 22 K page faults in the phases benchmark, the pages faulting in
 * again when the span went back to the pool and served another class. */
static struct pf_span *pool_take(uint32_t n, int join, size_t slot)
{
again:
    for (uint32_t k = n; k <= PF_SPAN_MAX_CHUNKS; k++) {
        struct pf_span *s = warm[k] ? warm[k] : cold[k];
        if (!s)
            continue;
        pool_unlink(s);
        if (k > n) { /* split: the tail stays pooled */
            struct pf_region *r = s->region;
            uint32_t chunk = (uint32_t)((s->start - r->base) / PF_CHUNK);
            struct pf_span *rest = span_at(r, chunk + n, k - n);
            rest->committed = s->committed;
            rest->pooled_at = s->pooled_at;
            rest->family = s->family;
            rest->slot_size = 0; /* describes no slots: its struct may hold an earlier span's */
            pool_push(rest);
            pf_pagemap_set((void *)rest->start, rest->bytes, rest);
            s->nchunks = (uint16_t)n;
            s->bytes = (size_t)n * PF_CHUNK;
        }
        s->region->in_use += n;
        note_in_use(n);
        return s;
    }
    /* Neighbours that together are big enough: resident pages first. */
    if (join && n > 1 && join_pooled(n)) {
        join = 0; /* one join is enough: the lists now hold a span of n chunks or more */
        goto again;
    }
    for (uint32_t k = n - 1; slot && k > 0 && (size_t)k * PF_CHUNK >= slot; k--)
        if (warm[k]) {
            n = k; /* taken whole by the first loop, which looks at warm spans first */
            join = 0;
            slot = 0;
            goto again;
        }
    struct pf_region *r = regions;
    if (r && r->hole < r->nchunks && r->hole >= r->carved && r->hole < r->carved + n)
        pool_uncarved(r, r->hole + 1); /* the chunks before the hole are pooled, and it is stepped over */
    if (r && r->carved + n <= r->nchunks) {
        struct pf_span *s = span_at(r, r->carved, n);
        s->committed = 0; /* never touched: reads as zero */
        r->carved += n;
        r->in_use += n;
        note_in_use(n);
        return s;
    }
    return NULL;
}

/* A region of n chunks with its metadata, or NULL when either mapping (or
 * a pagemap leaf for it) cannot be had. */
static struct pf_region *region_map(uint32_t n)
{
    size_t meta = region_meta_bytes(n), bytes = (size_t)n * PF_CHUNK;
    struct pf_region *r = pf_os_map_meta(meta);
    if (!r)
        return NULL;
    void *base = pf_os_map(bytes, PF_CHUNK);
    /* Make the pagemap leaves exist now, so setting entries under the pool
     * lock never maps. */
    if (!base || pf_pagemap_set(base, bytes, NULL) != 0) {
        if (base)
            pf_os_unmap(base, bytes);
        pf_os_unmap_meta(r, meta);
        return NULL;
    }
    r->base = (uintptr_t)base;
    return r;
}

/* A region of at least min chunks: the next size of the doubling, or,
 * when the OS refuses that much (an address-space limit, a crowded
 * address space), half as much again and again down to min. A heap that
 * fits in what is left is not refused for the size its next region would
 * have had. */
static struct pf_region *region_new(uint32_t min)
{
    uint32_t n = __atomic_load_n(&next_chunks, __ATOMIC_RELAXED);
    if (n < min)
        n = min;
    struct pf_region *r;
    while ((r = region_map(n)) == NULL) {
        if (n == min)
            return NULL;
        n = n / 2 > min ? n / 2 : min;
    }
    r->nchunks = n;
    r->spans = (struct pf_span *)(r + 1);
    r->bits = (slotbits *)(r->spans + n);
    r->states = (slotstates *)((char *)r + states_offset(n));
    r->coarse = (coarsestates *)(r->states + n);
    uintptr_t edge = (r->base + HOLE_ALIGN - 1) & ~(HOLE_ALIGN - 1);
    r->hole = edge - r->base < (uintptr_t)n * PF_CHUNK ? (uint32_t)((edge - r->base) / PF_CHUNK) : n;
    if (r->hole < n)
        span_at(r, r->hole, 1)->kind = PF_SPAN_GONE; /* no span: joins stop at it */
    if (__atomic_load_n(&sites_on, __ATOMIC_RELAXED))
        r->sites = pf_os_map_meta(sites_bytes(r)); /* NULL: this region records none */
    if (n * 2 <= PF_REGION_CHUNKS && n * 2 > __atomic_load_n(&next_chunks, __ATOMIC_RELAXED))
        __atomic_store_n(&next_chunks, n * 2, __ATOMIC_RELAXED);
    return r;
}

/* Under the pool lock: the uncarved tail of the head region goes to the
 * pool as cold spans (never touched, reading as zero) before a new head
 * takes its place, so small regions waste nothing. */
static void pool_tail(struct pf_region *r)
{
    pool_uncarved(r, r->nchunks);
}

static struct pf_span *span_get(unsigned cls, uint32_t n)
{
    uint32_t slot = pf_class_size[cls];
    pf_lock(&pool_lock);
    struct pf_span *s = pool_take(n, 1, slot);
    int retried = 0;
    while (!s) {
        pf_unlock(&pool_lock);
        struct pf_region *r = region_new(n);
        if (!r && !retried) {
            /* Out of address space: what is cached (empty spans, large
             * ranges, wholly free regions) goes back, and one more try. */
            retried = 1;
            pf_span_reclaim();
            pf_lock(&pool_lock);
            s = pool_take(n, 1, slot);
            continue;
        }
        if (!r)
            return NULL;
        pf_lock(&pool_lock);
        if (regions)
            pool_tail(regions);
        r->next = regions;
        regions = r;
        s = pool_take(n, 0, 0);
    }
    s->kind = PF_SPAN_SMALL;
    s->cls = (uint8_t)cls;
    s->slot_size = slot;
    s->nslots = (uint32_t)(s->bytes / slot);
    uint32_t chunk = (uint32_t)((s->start - s->region->base) / PF_CHUNK);
    /* Every state outside live spans is free, in either array, so a span
     * may take whichever its slots fit; a span of few slots uses its own. */
    if (s->nslots <= PF_FEW_SLOTS) {
        s->state = s->few_states;
        s->freebits = &s->few_bits;
    } else {
        s->state = slot >= PF_COARSE_SLOT ? s->region->coarse[chunk] : s->region->states[chunk];
        s->state += state_colour(s);
        s->freebits = s->region->bits[chunk];
    }
    s->magic = PF_SPAN_MAGIC(slot);
    s->used = s->nfree = s->bump = s->hint = s->ahead = 0;
    s->fresh = !s->committed;
    s->bin = PF_BIN_NONE; /* the family sets it */
    s->owner = NULL;
    s->committed = 0;
    s->listed = 0;
    s->next = s->prev = NULL;
    memset(s->freebits, 0, ((s->nslots + 63) / 64) * sizeof(uint64_t));
    pf_pagemap_set((void *)s->start, s->bytes, s);
    /* The warm pool held nothing of this size, nor neighbours to join into
     * one: pages are being faulted in anew, or a shorter warm span serves,
     * so warm spans beyond PFALLOC_CACHE give theirs back now instead of at
     * their decay. (A shorter span keeps the pages its last class wrote,
     * which its new slots may never touch: a program that frees blocks of
     * 40 000 bytes, each written at its two ends, and then makes blocks of
     * 100 000 had the old pages of all of them held beside the new ones.) */
    if ((s->fresh || s->nchunks < n) && pool_committed > pool_limit)
        shrink_warm(pool_limit);
    pf_unlock(&pool_lock);
    return s;
}

struct pf_span *pf_span_get(unsigned cls)
{
    return span_get(cls, (uint32_t)(pf_class_span_bytes(cls) / PF_CHUNK));
}

struct pf_span *pf_span_get_sized(unsigned cls, size_t bytes)
{
    return span_get(cls, (uint32_t)(bytes / PF_CHUNK));
}

/* Under the pool lock: decommits victims[0..n) (unlinked) outside the lock
 * and pools them cold. A span whose madvise failed keeps its pages and goes
 * back warm: it must never pass for zero. Returns how many failed. */
static int decommit(struct pf_span **victims, int n)
{
    int ok[64], failed = 0;
    /* Meanwhile a victim is no pooled span to join (kind), and a trim in
     * another thread does not unmap its region (in_use). */
    for (int i = 0; i < n; i++) {
        victims[i]->kind = PF_SPAN_SMALL;
        victims[i]->region->in_use += victims[i]->nchunks;
    }
    pf_unlock(&pool_lock);
    for (int i = 0; i < n; i++)
        ok[i] = pf_os_decommit((void *)victims[i]->start, victims[i]->bytes) == 0;
    pf_lock(&pool_lock);
    for (int i = 0; i < n; i++) {
        victims[i]->region->in_use -= victims[i]->nchunks;
        victims[i]->committed = !ok[i];
        failed += !ok[i];
        pool_push(victims[i]);
    }
    return failed;
}

/* Under the pool lock: decommits warm spans, biggest first (a look at 16
 * list heads, never a walk), until at most `bound` bytes stay resident. A
 * span being decommitted is on no list, so nobody takes it meanwhile. Stops
 * at the first refusal (the span is back at the head of its list). */
static void shrink_warm(size_t bound)
{
    while (pool_committed > bound) {
        struct pf_span *victim = NULL;
        for (uint32_t k = PF_SPAN_MAX_CHUNKS; k >= 1 && !victim; k--)
            victim = warm[k];
        if (!victim)
            break;
        pool_unlink(victim);
        if (decommit(&victim, 1))
            break;
    }
}

static void span_back(struct pf_span *s, int committed)
{
    uint64_t now = pf_os_seconds();
    pf_lock(&pool_lock);
    s->region->in_use -= s->nchunks;
    chunks_in_use -= s->nchunks;
    s->committed = (uint8_t)committed;
    s->pooled_at = (uint32_t)now;
    pool_push(s);
    shrink_warm(pool_bound());
    pf_unlock(&pool_lock);
}

void pf_span_put(struct pf_span *s)
{
    span_back(s, 1);
}

void pf_span_unget(struct pf_span *s)
{
    span_back(s, !s->fresh);
}

void pf_span_shed_warm(void)
{
    if (__atomic_load_n(&pool_committed, __ATOMIC_RELAXED) <= pool_limit)
        return;
    pf_lock(&pool_lock);
    shrink_warm(pool_limit);
    pf_unlock(&pool_lock);
}

void pf_span_tick(void)
{
    if (__atomic_load_n(&pool_committed, __ATOMIC_RELAXED) <= pool_limit)
        return;
    uint64_t now = pf_os_seconds();
    if (now == __atomic_load_n(&last_tick, __ATOMIC_RELAXED) && !__atomic_load_n(&decay_more, __ATOMIC_RELAXED))
        return;
    struct pf_span *victims[64];
    pf_lock(&pool_lock);
    if (now == last_tick && !decay_more) { /* another thread's tick came first */
        pf_unlock(&pool_lock);
        return;
    }
    __atomic_store_n(&last_tick, now, __ATOMIC_RELAXED);
    __atomic_store_n(&decay_more, 0, __ATOMIC_RELAXED);
    /* Spans pooled long enough ago go, until the pool is back to
     * PFALLOC_CACHE, 64 at a time (decommit gives the lock up around its
     * madvise calls), up to PF_POOL_DECAY_STEP bytes a tick; the rest at
     * the next tick, which the next refill runs without waiting for the
     * next second. One batch a second gave back 4 MiB of one-chunk spans a
     * second: a heap of 1 GiB freed took four minutes of allocation
     * activity to decay instead of about 2 s; all of it in one tick made
     * that refill take 0.3 s. */
    size_t done = 0;
    for (;;) {
        int n = 0;
        for (uint32_t k = PF_SPAN_MAX_CHUNKS; k >= 1 && n < 64; k--)
            for (struct pf_span *t = warm[k], *nx; t && n < 64 && pool_committed > pool_limit; t = nx) {
                nx = t->next;
                if (now - t->pooled_at >= PF_POOL_DECAY_SECONDS) {
                    pool_unlink(t);
                    victims[n++] = t;
                    done += t->bytes;
                }
            }
        if (n == 0 || decommit(victims, n) || n < 64)
            break; /* nothing more to give back, or a refusal: the next second's tick tries again */
        if (done >= PF_POOL_DECAY_STEP) {
            __atomic_store_n(&decay_more, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    pf_unlock(&pool_lock);
}

void *pf_span_take(struct pf_span *s, int *clean)
{
    struct pf_cached c;
    pf_span_take_many(s, &c, 1, NULL);
    *clean = *c.state == PF_SLOT_CLEAN;
    return c.p;
}

/* Fresh slots [b, b + k) of s are being carved: see pf_span_take_many. */
static void plan_ahead(struct pf_span *s, uint32_t b, uint32_t k, struct pf_ahead *a)
{
    size_t slot = s->slot_size, page = pf_os_page_size();
    uintptr_t mask = ~(uintptr_t)(page - 1);
    /* The pages of states the carve is about to write first, now: its
     * writes would fault them in one by one, under the family's lock (a
     * single page is left to that fault: see pf_os_populate). */
    if (s->nslots > PF_FEW_SLOTS) {
        uintptr_t from = b == 0 ? (uintptr_t)&s->state[0] & mask : ((uintptr_t)&s->state[b - 1] & mask) + page;
        uintptr_t to = ((uintptr_t)&s->state[b + k - 1] & mask) + page;
        if (to > from)
            pf_os_populate((void *)from, to - from);
    }
    /* The pages of the slots, after the lock is given back: the first
     * carve's first page only (a class of which a program makes one block
     * touches no other; as a single page, left to fault), then the pages
     * of each carve's slots. A later carve comes once every slot carved
     * before is out of the span (taken before any fresh one): its own
     * slots are the next handed out. */
    if (slot <= PF_AHEAD_SLOT_MAX) {
        size_t hi = (size_t)(b + k) * slot;
        if (hi <= s->ahead)
            return;
        size_t to = b == 0 ? page : (hi + page - 1) & mask; /* past s->ahead: it is a page boundary below hi */
        if (a->n < PF_AHEAD_RANGES) {
            a->r[a->n].from = s->start + s->ahead;
            a->r[a->n].to = s->start + to;
            a->n++;
            s->ahead = (uint32_t)to;
        }
        return;
    }
    /* Bigger slots: the page each one starts on, which the program writes
     * first (a header, the first bytes of a buffer), such pages side by
     * side in one call (a lone one is left to fault); the rest of the slot
     * is left to fault, as the program reaches it. */
    for (uint32_t i = b; i < b + k; i++) {
        size_t from = ((size_t)i * slot) & mask, to = from + page;
        if (to <= s->ahead)
            continue;
        if (a->n && a->r[a->n - 1].to == s->start + from)
            a->r[a->n - 1].to = s->start + to;
        else if (a->n < PF_AHEAD_RANGES) {
            a->r[a->n].from = s->start + from;
            a->r[a->n].to = s->start + to;
            a->n++;
        } else
            return;
        s->ahead = (uint32_t)to;
    }
}

void pf_span_ahead_apply(const struct pf_ahead *a)
{
    for (int i = 0; i < a->n; i++)
        pf_os_populate((void *)a->r[i].from, a->r[i].to - a->r[i].from);
}

uint32_t pf_span_take_many(struct pf_span *s, struct pf_cached *out, uint32_t want, struct pf_ahead *ahead)
{
    uint32_t n = 0, room = s->nslots - s->used;
    if (want > room)
        want = room;
    uintptr_t start = s->start, slot = s->slot_size;
    uint16_t *state = s->state;
    /* Free slots word by word: one load and store of each bitmap word. */
    if (s->nfree) {
        uint32_t w = s->hint, nfree = s->nfree;
        while (n < want && nfree) {
            uint64_t bits = s->freebits[w];
            while (bits && n < want) {
                uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(bits);
                n++;
                out[want - n] = (struct pf_cached){(void *)(start + idx * slot), &state[idx]};
                bits &= bits - 1;
                nfree--;
            }
            s->freebits[w] = bits;
            if (!bits)
                w++;
        }
        s->nfree = nfree;
        s->hint = w;
    }
    /* Then slots never handed out since the span was made: consecutive. */
    if (n < want) {
        uint16_t st = s->fresh ? PF_SLOT_CLEAN : PF_SLOT_DIRTY;
        uint32_t b = s->bump, k = want - n;
        if (ahead && s->fresh)
            plan_ahead(s, b, k, ahead);
        /* A slot's site word outlives its block (the fatal line of a
         * double free names it), and the span's words are its chunk's,
         * left by whatever span last used the chunk: a slot carved now
         * starts with none, so a word below the bump is always this
         * span's own. */
        if (s->sites)
            memset(&s->sites[b], 0, (size_t)k * sizeof *s->sites);
        uintptr_t p = start + b * slot;
        uint16_t *e = &state[b];
        for (struct pf_cached *o = out + want - n; o > out; p += slot, e++) {
            *e = st;
            *--o = (struct pf_cached){(void *)p, e};
        }
        s->bump = b + k;
        n = want;
    }
    s->used += n;
    return n;
}

void pf_span_give(struct pf_span *s, uint32_t idx)
{
    s->freebits[idx >> 6] |= (uint64_t)1 << (idx & 63);
    s->nfree++;
    s->used--;
    if ((idx >> 6) < s->hint)
        s->hint = idx >> 6;
}

uint32_t pf_span_give_run(struct pf_span *s, const struct pf_cached *in, uint32_t n)
{
    uint64_t *bits = s->freebits;
    uintptr_t state = (uintptr_t)s->state, end = (uintptr_t)s->nslots * sizeof *s->state;
    uint32_t hint = s->hint, i = 0;
    uintptr_t off = (uintptr_t)in[0].state - state;
    for (;;) {
        uint32_t idx = (uint32_t)(off / sizeof *s->state);
        bits[idx >> 6] |= (uint64_t)1 << (idx & 63);
        if ((idx >> 6) < hint)
            hint = idx >> 6;
        if (++i == n)
            break;
        /* A state entry of another span's lies outside [0, end). */
        off = (uintptr_t)in[i].state - state;
        if (off >= end)
            break;
    }
    s->hint = hint;
    s->nfree += i;
    s->used -= i;
    return i;
}

uint32_t pf_span_largest_free_run(const struct pf_span *s)
{
    uint32_t best = 0, run = 0;
    for (uint32_t i = 0; i < s->nslots; i++) {
        int is_free = i >= s->bump || (s->freebits[i >> 6] >> (i & 63) & 1);
        run = is_free ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

size_t pf_span_trim(void)
{
    size_t released = 0;
    pf_lock(&pool_lock);
    /* 1. Give back the pages of every pooled span. */
    for (uint32_t k = 1; k <= PF_SPAN_MAX_CHUNKS; k++)
        while (warm[k]) {
            struct pf_span *victim = warm[k];
            pool_unlink(victim);
            if (decommit(&victim, 1))
                break; /* refused: it stays warm, at the head */
            released += victim->bytes;
        }
    /* 2. Unmap regions none of whose chunks are in use. */
    struct pf_region *dead = NULL;
    for (struct pf_region **rp = &regions; *rp;) {
        struct pf_region *r = *rp;
        if (r->in_use != 0) {
            rp = &r->next;
            continue;
        }
        for (uint32_t k = 1; k <= PF_SPAN_MAX_CHUNKS; k++)
            for (int w = 0; w < 2; w++)
                for (struct pf_span *t = w ? warm[k] : cold[k], *nx; t; t = nx) {
                    nx = t->next;
                    if (t->region == r)
                        pool_unlink(t);
                }
        pf_pagemap_set((void *)r->base, region_bytes(r), NULL);
        *rp = r->next;
        r->next = dead;
        dead = r;
    }
    pf_unlock(&pool_lock);
    while (dead) {
        struct pf_region *r = dead;
        dead = r->next;
        size_t bytes = region_bytes(r);
        pf_os_unmap((void *)r->base, bytes);
        if (r->sites)
            pf_os_unmap_meta(r->sites, sites_bytes(r));
        pf_os_unmap_meta(r, region_meta_bytes(r->nchunks));
        released += bytes;
    }
    return released;
}

void pf_span_enable_sites(void)
{
    /* Regions made before recording began get their arrays now (mapped
     * outside the lock), so every slot can carry a site from here on. */
    for (;;) {
        pf_lock(&pool_lock);
        __atomic_store_n(&sites_on, 1, __ATOMIC_RELAXED);
        struct pf_region *r = regions;
        while (r && r->sites)
            r = r->next;
        pf_unlock(&pool_lock);
        if (!r)
            return;
        uint32_t *m = pf_os_map_meta(sites_bytes(r));
        if (!m)
            return;
        pf_lock(&pool_lock);
        r->sites = m;
        for (uint32_t i = 0; i < r->nchunks; i++)
            r->spans[i].sites = m + (size_t)i * PF_MAX_SLOTS;
        pf_unlock(&pool_lock);
    }
}

struct pf_span *pf_span_meta_new(void)
{
    pf_lock(&pool_lock);
    struct pf_span *s = large_free;
    if (s)
        large_free = s->next;
    pf_unlock(&pool_lock);
    if (!s)
        s = pf_meta_alloc(sizeof(*s));
    else
        memset(s, 0, sizeof(*s));
    if (s) { /* free's fast path reads a state before it looks at the kind */
        s->state = (uint16_t *)pf_state_none;
        s->bin = PF_BIN_NONE;
    }
    return s;
}

void pf_span_meta_free(struct pf_span *s)
{
    pf_lock(&pool_lock);
    s->next = large_free;
    large_free = s;
    pf_unlock(&pool_lock);
}

void pf_span_fork_lock(void)
{
    pf_lock(&meta_lock);
    pf_lock(&pool_lock);
}

void pf_span_fork_unlock(int child)
{
    if (child) {
        pf_lock_reset(&pool_lock);
        pf_lock_reset(&meta_lock);
    } else {
        pf_unlock(&pool_lock);
        pf_unlock(&meta_lock);
    }
}
