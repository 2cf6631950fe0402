/*
 * tcache.h — per-thread caches of free slots, one bin per size class, in
 * front of the shared spans. A bin is a stack of slot addresses; it is
 * refilled and flushed in batches under the class family's lock, so the
 * common malloc/free touches only the thread's own memory: no lock, no
 * atomic read-modify-write. Per-class counters live beside each bin and are
 * written with relaxed stores, so stats may sum them from any thread.
 * Cache structs are never freed: a thread that exits flushes its bins and
 * leaves the struct (and its counters) for the next new thread.
 */
#ifndef PF_TCACHE_H
#define PF_TCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "family.h"

/* PF_TC_MAX and struct pf_cached, what a cache trades with its family in
 * refills and flushes, are in family.h. */

/* One cache line per bin: a stack of cached slots, [base, top), at most
 * limit - base of them; pushing and popping move one pointer. The entry
 * below base is a wall whose p is NULL, which malloc's pop reads as empty.
 *   top == base: empty;  top == limit: full.
 * The counters are written by the owning thread only, with plain stores (so
 * an increment is one instruction); other threads read them with relaxed
 * atomic loads of aligned 64-bit words, which never tear on the platforms
 * pfalloc supports. */
struct pf_bin {
    struct pf_cached *top;    /* one past the newest cached slot */
    struct pf_cached *base;   /* the bin's store: cached slots are [base, top) */
    struct pf_cached *limit;  /* base + cap */
    uint64_t live_base;       /* 0 for a class whose states hold the request (see
                                 PF_STATE_REQ_SLOT), else slot size + PF_SLOT_LIVE:
                                 state == live_base - requested */
    uint64_t allocs;          /* allocations served by this thread */
    uint64_t frees;           /* frees made by this thread */
    uint64_t states;          /* live states written by allocations minus those found by
                                 frees (mod 2^64), so a free adds one word to it:
                                 requested bytes live == states - PF_SLOT_LIVE * (allocs - frees),
                                 or live_base * (allocs - frees) - states */
    uint64_t gc_seen;         /* allocs + frees when the cache's collection last looked */
} __attribute__((aligned(64)));

/* Requested bytes allocated minus freed through b (mod 2^64). */
PF_INLINE uint64_t pf_bin_req(uint64_t live_base, uint64_t allocs, uint64_t frees, uint64_t states)
{
    if (live_base == 0)
        return states - PF_SLOT_LIVE * (allocs - frees);
    return live_base * (allocs - frees) - states;
}

/* Slots cached in b, and the most it holds. */
PF_INLINE uint32_t pf_bin_count(const struct pf_bin *b) { return (uint32_t)(b->top - b->base); }
PF_INLINE uint32_t pf_bin_cap(const struct pf_bin *b) { return (uint32_t)(b->limit - b->base); }

/* Requests up to this many bytes find their bin in one load (direct[]),
 * indexed by the request itself: no rounding to the class's 16 bytes. */
#define PF_DIRECT_MAX 1024
#define PF_DIRECT_N (PF_DIRECT_MAX + 1)

/* Bytes of a cache kept for the preload's per-thread call-site memory. */
#define PF_TC_SITES_BYTES 1792 /* 1 752 used */

struct pf_tcache {
    struct pf_bin bins[PF_NCLASSES + 1]; /* the last is PF_BIN_NONE: always empty and full */
    /* Byte offset in the cache of the bin of a request of n bytes, for
     * each n <= PF_DIRECT_MAX (PF_BIN_NONE while it is off): 16 bits, so
     * the 1 025 of them take 2 KiB, and malloc addresses the bin's fields
     * with the cache and the offset, as free does with the span's. */
    uint16_t direct[PF_DIRECT_N];
    struct pf_own own[PF_NCLASSES];     /* the spans it owns of each class */
    struct pf_tcache *next_all; /* every cache ever made (append-only) */
    atomic_int in_use;          /* 1 while a live thread owns it */
    _Atomic long tid;           /* the owner's thread id (0: none yet, -1: being taken over) */
    uint32_t gc_next;           /* the bin the collection looks at next */
    atomic_uint moving;         /* moves of its slots under way (tcache.c, fork) */
    uint32_t xfer_seen[PF_NCLASSES]; /* batches moved in each class's transfer cache, at the last look */
    /* PF_TC_SITES_BYTES for the preload's per-thread memory of call sites
     * (its last stack, its unwinder's recent rules), touched only while
     * sites are recorded: kept with the cache, not in TLS, which glibc takes
     * out of every thread's stack; after the bins' stores, so that the
     * pages a thread touches without sites are those it touched before. */
    unsigned char *sites;
};

_Static_assert(sizeof(struct pf_bin) == PF_BIN_BYTES, "span.h: bin offsets");
_Static_assert(offsetof(struct pf_tcache, bins) == 0, "span.h: bin offsets");

_Static_assert(PF_BIN_NONE <= UINT16_MAX, "direct[] offsets fit 16 bits");

/* The bin direct[] names for a request of n <= PF_DIRECT_MAX bytes. */
PF_INLINE struct pf_bin *pf_tcache_direct_bin(const struct pf_tcache *t, size_t n)
{
    return (struct pf_bin *)((char *)t + t->direct[n]);
}

/* The calling thread's cache; NULL before pf_tcache_get and after exit. */
PF_HIDDEN extern __thread struct pf_tcache *pf_tc;
/* The same for the fast paths, but never NULL: until the thread has a cache
 * of its own (and after its exit) it is pf_tc_none, whose bins are all empty
 * and all full (top == base == limit), so the test for a cache is the test
 * for a slot or for room that the fast paths make anyway. */
PF_HIDDEN extern __thread struct pf_tcache *pf_tc_fast;
/* Read-only: the fast paths never write to a bin before its test. */
PF_HIDDEN extern const struct pf_tcache pf_tc_none;
/* From now on every cache's direct[] names its PF_BIN_NONE, so the
 * preload's mallocs take the slow path, which records call sites or checks
 * (once, at start-up). */
PF_HIDDEN void pf_tcache_direct_off(void);
/* The hold (family.h) taken (on 1) or given back (0) by the calling thread,
 * with every cache's direct table pointing at no bin meanwhile, so other
 * threads' mallocs reach pf_small_alloc, which waits, and every span's
 * frees sent to the slow path (pf_family_frees_held), which waits too. The
 * caller holds no family lock. */
PF_HIDDEN void pf_tcache_hold(int on);
/* Makes the thread-exit key (once; from start-up, before the program can
 * use up the keys). */
PF_HIDDEN void pf_tcache_init(void);
/* Creates (or adopts) the calling thread's cache; NULL when the thread is
 * exiting or memory is short (callers then take the locked path). */
PF_HIDDEN struct pf_tcache *pf_tcache_get(void);
/* The cache a free on the slow path should use: the thread's own, or for
 * a thread without one a new cache once it has made PF_FREE_ONLY_LOCKED
 * frees on the locked path (NULL until then). */
#define PF_FREE_ONLY_LOCKED 64
PF_HIDDEN struct pf_tcache *pf_tcache_for_free(void);
/* Each refill and each flush is also one step of the cache's collection
 * of unused bins: the step looks at the next bin in turn, and one that no
 * malloc or free went through since the step that looked at it a round
 * (PF_NCLASSES steps) before gives the older half of its slots back to
 * their spans, or when it is empty its spans back to the family, where an
 * empty one goes to the pool for any class; and if the thread ever used
 * the class and no transfer batch of it moved since the cache's look
 * before, one batch goes back to its spans. So a thread that moved on from
 * a size strands neither slots nor spans of it, while a class used in
 * bursts a little further apart than a round loses only part of them. */
/* Refills the bin and pops one slot (its p is NULL when memory is out). */
PF_HIDDEN struct pf_cached pf_tcache_refill(struct pf_tcache *tc, unsigned cls);
PF_HIDDEN void pf_tcache_flush(struct pf_tcache *tc, unsigned cls);
/* Gives every cached slot of the calling thread back (trim). */
PF_HIDDEN void pf_tcache_drain(void);
/* Fork of a process with threads: the prepare handler's wait, before it
 * takes any lock, for every move of slots between a cache and its family
 * under way in another thread to end, with new ones held until
 * pf_tcache_fork_parent (or the child's handler). */
PF_HIDDEN void pf_tcache_fork_prepare(void);
PF_HIDDEN void pf_tcache_fork_parent(void);
/* Lock-free walk for stats. */
PF_HIDDEN struct pf_tcache *pf_tcache_first(void);
/* Spans a thread cache may own: four per CPU the process may run on. */
#define PF_OWNERS_PER_CPU 4
/* 1 when more threads hold a cache than may own spans: refills then take
 * slots from shared spans (pf_family_refill with no owner). */
PF_HIDDEN int pf_tcache_crowded(void);
/* For a malloc of class cls >= PF_CACHED_CLASSES that found tc's bin
 * empty: closes the bin (cap 0, so frees of the class take the locked path
 * and park nothing) while crowded, opens it again (its full cap) when not.
 * Returns whether the bin is open. */
PF_HIDDEN int pf_tcache_bin_open(struct pf_tcache *tc, unsigned cls);
/* The same for a free of class cls >= PF_CACHED_CLASSES on the slow path
 * (its bin full or closed): while crowded an open bin closes, the slots it
 * holds and the spans the cache owns of the class going back, and the
 * free takes the locked path; a closed bin opens again only at a malloc
 * (pf_tcache_bin_open). A cache taken while crowded starts with those bins
 * closed. Returns whether the bin is open. */
PF_HIDDEN int pf_tcache_bin_open_free(struct pf_tcache *tc, unsigned cls);
/* Fork child: caches of threads that no longer exist are drained. */
PF_HIDDEN void pf_tcache_fork_child(void);

#endif
