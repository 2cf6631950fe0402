/*
 * span.h — spans and the regions they are carved from.
 *
 * A region is a mapping of 256 KiB (the first) doubling up to 16 MiB, split
 * into 64 KiB chunks; a small span is a
 * run of 1..16 chunks carved into equal slots of one class. All span
 * metadata is out of line, in the region's metadata mapping:
 *   state[i]  per slot: 0 free and known zero, 1 free (dirty), >= 2 live,
 *             with (state - 2) == slot size - requested bytes
 *   freebits  bit i set: slot i sits free in the span (i < bump)
 * Invariant: used + nfree + (nslots - bump) == nslots.
 * Empty spans go to a pool (split on demand, pages given back beyond a
 * bounded cache); a region whose chunks are all free is unmapped by trim.
 * A large block has a span of its own (kind PF_SPAN_LARGE) and a mapping of
 * its own.
 */
#ifndef PF_SPAN_H
#define PF_SPAN_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "pagemap.h"
#include "sizeclass.h"

#define PF_REGION_BYTES ((size_t)16 << 20) /* the biggest region */
#define PF_REGION_CHUNKS (PF_REGION_BYTES / PF_CHUNK)
#define PF_REGION_MIN_CHUNKS 4              /* the first region: 256 KiB */
#define PF_SPAN_MAX_CHUNKS 16
#define PF_MAX_SLOTS (PF_CHUNK / 16) /* 4096: a span never has more slots */
/* Spans of slots this big or bigger keep their states PF_COARSE_STATES to a
 * chunk, side by side with their neighbours' (see span.c). */
#define PF_FEW_SLOTS 16 /* slots whose bits and states a span struct holds itself */
#define PF_COARSE_STATES 512
#define PF_COARSE_SLOT (PF_CHUNK / PF_COARSE_STATES)

enum pf_span_kind { PF_SPAN_FREE = 0, PF_SPAN_SMALL = 1, PF_SPAN_LARGE = 2, PF_SPAN_GONE = 3 };
enum { PF_SLOT_CLEAN = 0, PF_SLOT_DIRTY = 1, PF_SLOT_LIVE = 2 };

/* A live slot's state says how many bytes were asked of it. Slots of up to
 * PF_STATE_REQ_SLOT bytes hold PF_SLOT_LIVE + requested, which malloc
 * writes with one addition to the request; bigger ones, whose requests do
 * not fit 16 bits, hold PF_SLOT_LIVE + slot - requested (the waste, which
 * their requests keep below 65534: WASTE_MAX in alloc.c). */
#define PF_STATE_REQ_SLOT 32768u

/* Whether the states of slots of `slot` bytes hold the request (else the
 * waste). */
PF_INLINE int pf_state_holds_req(uint32_t slot)
{
    return slot <= PF_STATE_REQ_SLOT;
}

/* The state of a live slot of `slot` bytes that req bytes were asked of. */
PF_INLINE uint16_t pf_state_live(uint32_t slot, size_t req)
{
    return (uint16_t)(pf_state_holds_req(slot) ? PF_SLOT_LIVE + req : PF_SLOT_LIVE + slot - req);
}

/* The bytes asked of a live slot of `slot` bytes whose state is st. */
PF_INLINE uint32_t pf_state_req(uint32_t slot, uint32_t st)
{
    return pf_state_holds_req(slot) ? st - PF_SLOT_LIVE : slot - (st - PF_SLOT_LIVE);
}

struct pf_family;
struct pf_own;
struct pf_region;

/* Frees of a span's slots go to the bin at byte offset s->bin of the
 * freeing thread's cache (bin i at i * PF_BIN_BYTES, see tcache.h).
 * PF_BIN_NONE is a bin that is always full: spans whose frees never go
 * through a cache (typed, large, pooled) name it, so free's fast path finds
 * them with the room test it makes anyway. */
#define PF_BIN_BYTES 64
#define PF_BIN_NONE ((uint32_t)PF_NCLASSES * PF_BIN_BYTES)

/* Every span free's fast path can find through the pagemap has a state
 * array (large and tombstone spans: pf_state_none, one clean entry, with
 * magic == 0 so every offset maps to index 0 and none is a slot boundary).
 * The fields free reads come first. */
struct pf_span {
    uintptr_t start;          /* first slot (or the large block) */
    uint64_t magic;           /* 2^64 / slot size rounded up (0: no pointer passes): for
                                 offset < 2^47, index == high half of offset * magic, and
                                 offset is a slot boundary iff the low half < magic */
    uint16_t *state;          /* per-slot state, see above */
    uint32_t *sites;          /* per-slot call-site ids, or NULL (recording off); a slot's
                                 word is 0 from its carving (bump) to its first allocation */
    uint32_t slot_size;       /* bytes per slot */
    uint32_t bin;             /* byte offset of the thread-cache bin for its frees, or PF_BIN_NONE */
    struct pf_family *family; /* owner; kept after release to name the family in errors */
    struct pf_span *next;     /* family's partial list, or the pool */
    struct pf_span *prev;
    struct pf_span *anext;    /* all spans of the family (leak walk, detail report) */
    struct pf_span *aprev;
    uint64_t *freebits;       /* free slots below bump */
    struct pf_own *owner;     /* the thread cache's spans it is one of (off the partial list), or NULL */
    struct pf_region *region; /* NULL for large spans */
    size_t bytes;             /* span bytes, or the large mapping's bytes */
    size_t req;               /* large: bytes requested */
    uint32_t nslots;          /* slots in the span */
    uint32_t used;            /* slots out of the span: live or in a thread cache */
    uint32_t nfree;           /* bits set in freebits */
    uint32_t bump;            /* slots [bump, nslots) never handed out since made */
    uint32_t hint;            /* first freebits word that may be non-zero */
    uint16_t nchunks;         /* chunks covered */
    uint8_t cls;              /* size class of the slots */
    uint8_t kind;             /* enum pf_span_kind */
    uint8_t fresh;            /* 1: slots >= bump read as zero */
    uint8_t cached;           /* 1: slots pass through thread caches */
    uint8_t listed;           /* on the family's partial list (1) or its owner's home list (2) */
    uint8_t committed;        /* pooled span whose pages are still resident */
    uint32_t site;            /* large: call-site id */
    uint32_t pooled_at;       /* pooled: seconds (monotonic) it went back to the pool */
    uint32_t ahead;           /* bytes from start below which carves named the pages
                                 to make resident (pf_span_take_many) */
    /* A span of up to PF_FEW_SLOTS slots keeps their free bits and states
     * here, in the struct it writes anyway: in the region's arrays, laid
     * out by chunk, a span of several chunks would fault in a page of bits
     * and one of states for a few words of each. */
    uint64_t few_bits;
    uint16_t few_states[PF_FEW_SLOTS];
};

/* Tombstones: the pagemap entry of a chunk where a large block started
 * that has been freed. One static span of kind PF_SPAN_GONE (so lookups
 * need no extra test) per 4 KiB of a chunk says where in it the block
 * started (blocks start on pages): a second free of that start is a double
 * free, a pointer less than a chunk above it points into the freed block
 * (a block is at least a chunk long). */
#define PF_GONE_UNIT ((size_t)4096)
#define PF_GONE_COUNT (PF_CHUNK / PF_GONE_UNIT)
PF_HIDDEN extern struct pf_span pf_span_gone[PF_GONE_COUNT];
#define PF_PM_FREED_LARGE(start) (&pf_span_gone[((uintptr_t)(start) & (PF_CHUNK - 1)) / PF_GONE_UNIT])

/* Where the freed block of tombstone s started, for p in its chunk. */
PF_INLINE uintptr_t pf_span_gone_start(const void *p, const struct pf_span *s)
{
    return ((uintptr_t)p & ~(uintptr_t)(PF_CHUNK - 1)) + (uintptr_t)(s - pf_span_gone) * PF_GONE_UNIT;
}

/* The state array of spans without slots. */
PF_HIDDEN extern const uint16_t pf_state_none[1];

_Static_assert(offsetof(struct pf_span, start) == offsetof(struct pf_span_head, start) &&
                   offsetof(struct pf_span, magic) == offsetof(struct pf_span_head, magic) &&
                   sizeof(struct pf_span_head) + sizeof pf_pagemap.pad >= offsetof(struct pf_span, family),
               "pagemap.h: the none span covers what free reads");

/* The magic of a slot size (>= 2): ceil(2^64 / slot). */
#define PF_SPAN_MAGIC(slot) (UINT64_MAX / (uint64_t)(slot) + 1)

/* Slot index of `off` bytes into the span (off < 2^47); 0 when magic is 0. */
PF_INLINE uint32_t pf_span_index(const struct pf_span *s, uintptr_t off)
{
    return (uint32_t)(((unsigned __int128)off * s->magic) >> 64);
}

/* A span of `cls` from the pool or a new region; NULL when the OS says no.
 * Takes the pool lock; makes syscalls only outside it. It has the chunks of
 * pf_class_span_bytes(cls), or fewer (at least one slot's worth) when a
 * warm pooled span that short serves instead of fresh pages: callers go by
 * s->bytes and s->nslots. */
PF_HIDDEN struct pf_span *pf_span_get(unsigned cls);
/* The same, of `bytes` (whole chunks, at most pf_class_span_bytes(cls)),
 * or fewer as above. */
PF_HIDDEN struct pf_span *pf_span_get_sized(unsigned cls, size_t bytes);
/* An empty span goes back to the pool (caller holds no lock). */
PF_HIDDEN void pf_span_put(struct pf_span *s);
/* Gives back a span just taken with pf_span_get and never used (no slot
 * taken): to the pool as warm or cold as it came. */
PF_HIDDEN void pf_span_unget(struct pf_span *s);
/* Takes one slot out of s (s->used < nslots), as pf_span_take_many takes
 * one naming no page; sets *clean when it reads as zero. Caller holds the
 * owning family's lock. */
PF_HIDDEN void *pf_span_take(struct pf_span *s, int *clean);
/* A slot out of its span with its state entry: what thread caches and
 * transfer caches hold, so malloc needs no pagemap lookup. */
struct pf_cached {
    void *p;
    uint16_t *state;
};
/* Pages to make resident in one call each, after the family's lock is
 * given back (pf_span_ahead_apply): what refills of fresh slots are about
 * to touch. */
#define PF_AHEAD_RANGES 4
struct pf_ahead {
    int n;
    struct {
        uintptr_t from, to;
    } r[PF_AHEAD_RANGES];
};
/* Slots up to this size are carved with their pages made resident ahead:
 * several to a page, so every page a refill carves is written soon. Of
 * bigger slots, the page each starts on (which a program writes first). */
#define PF_AHEAD_SLOT_MAX 1024
/* Takes up to `want` slots out of s at once (free ones below bump, then
 * fresh ones) into out[]; returns how many. out[] is filled from its end
 * (out[n - 1] is the lowest slot, out[0] the highest), so a thread cache,
 * which pops from its top, hands out a refill in ascending addresses, the
 * order a program's walk over its blocks and the prefetchers follow best.
 * The states stay as they are (fresh slots get CLEAN or DIRTY), so a later
 * malloc still tells a zeroed slot. Where fresh slots of a fresh span are
 * carved and `ahead` is not NULL, the pages of their states the carve
 * writes first are made resident at once, and `ahead` gets the pages no
 * carve named before, one call per range instead of a fault each page: of
 * small slots the pages they lie on (the first carve: the first slot's
 * only), of bigger ones the page each starts on. Caller holds the owning
 * family's lock. */
PF_HIDDEN uint32_t pf_span_take_many(struct pf_span *s, struct pf_cached *out, uint32_t want,
                                     struct pf_ahead *ahead);
/* Makes the pages a's ranges name resident (after the lock is given back;
 * the refill's slots keep their span, so its pages stay mapped). */
PF_HIDDEN void pf_span_ahead_apply(const struct pf_ahead *a);
/* Returns slot `idx` to s. Caller holds the owning family's lock. */
PF_HIDDEN void pf_span_give(struct pf_span *s, uint32_t idx);
/* Returns in[0], a slot of s, and the slots after it up to the first of
 * in[0, n) that is not s's, at once: what a pf_span_give of each would
 * do. Returns how many. Caller holds the owning family's lock. */
PF_HIDDEN uint32_t pf_span_give_run(struct pf_span *s, const struct pf_cached *in, uint32_t n);
/* Longest run of free slots (for reports). Caller holds the family's lock. */
PF_HIDDEN uint32_t pf_span_largest_free_run(const struct pf_span *s);
/* Decommits every pooled span, unmaps wholly free regions. Returns bytes released. */
PF_HIDDEN size_t pf_span_trim(void);
/* Pooled spans that joins have looked at so far (tests). */
PF_HIDDEN uint64_t pf_span_join_looks(void);
/* Bytes of pooled spans whose pages are still resident. */
PF_HIDDEN size_t pf_span_cached_bytes(void);
PF_HIDDEN void pf_span_set_cache_limit(size_t bytes);
/* Empty spans beyond PFALLOC_CACHE stay resident (up to the peak bytes of
 * live spans) for this long before their pages go back. */
#define PF_POOL_DECAY_SECONDS 2
/* A tick decommits up to this many bytes of pooled spans (about 10 ms of
 * madvise); while more are due, the next tick need not wait a second. */
#define PF_POOL_DECAY_STEP ((size_t)32 << 20)
/* Gives back the pages of spans pooled for PF_POOL_DECAY_SECONDS beyond
 * PFALLOC_CACHE, PF_POOL_DECAY_STEP bytes a pass; one load when there is
 * nothing to do, a coarse clock read and at most one pass a second
 * otherwise, or one a call while spans due are left. */
PF_HIDDEN void pf_span_tick(void);
/* Pages are being faulted in anew outside the pool (a large block grows):
 * warm pooled spans beyond PFALLOC_CACHE give theirs back now, as they do
 * when a fresh span is made, instead of staying resident for their 2 s
 * beside the new ones. Caller holds no lock. */
PF_HIDDEN void pf_span_shed_warm(void);
/* The function that gives back everything cached (empty spans, large
 * ranges, wholly free regions) when a mapping fails; set once by a layer
 * above. pf_span_reclaim runs it (pf_span_trim when none is set); the
 * caller holds no lock. */
PF_HIDDEN void pf_span_set_reclaim(void (*fn)(void));
PF_HIDDEN void pf_span_reclaim(void);
/* Regions made from now on carry per-slot call-site arrays. */
PF_HIDDEN void pf_span_enable_sites(void);

/* Large-span structs (from metadata memory, recycled). */
PF_HIDDEN struct pf_span *pf_span_meta_new(void);
PF_HIDDEN void pf_span_meta_free(struct pf_span *s);

/* Fork: the pool lock, held across fork by the prepare handler. */
PF_HIDDEN void pf_span_fork_lock(void);
PF_HIDDEN void pf_span_fork_unlock(int child);

/* Metadata memory: bump-allocated from mappings of pfalloc's own, zeroed,
 * 16-byte aligned, never returned. NULL when the OS says no. */
PF_HIDDEN void *pf_meta_alloc(size_t bytes);

#endif
