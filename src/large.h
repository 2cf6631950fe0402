/*
 * large.h — blocks above PF_SMALL_MAX (or with alignment no class gives):
 * one mapping each, its own span struct, the pagemap entry of the chunk
 * holding its first byte. At most one large block starts in any 64 KiB
 * chunk (each is longer than a chunk and mappings never overlap), so that
 * entry is unambiguous whatever the block's alignment.
 * Freed blocks stay mapped in a cache of address ranges (neighbours
 * coalesce) and serve the next large requests: the smallest range that
 * holds a request is split, or the biggest grows with mremap, sparing the
 * munmap/mmap pair and the page faults of a fresh mapping. Once a program
 * has allocated PF_LARGE_CHURN large blocks, or one after freeing one, live
 * and cached large bytes stay within 1.25 x the high-water mark of live
 * ones (before that, no more is cached than is live); at most
 * PF_LARGE_CACHE_MAX is cached, in at most PF_LARGE_CACHE_RANGES ranges,
 * and a range nobody takes for PF_LARGE_DECAY_SECONDS is unmapped at the
 * next large free or thread-cache refill (pf_large_tick). pf_trim unmaps
 * them all.
 */
#ifndef PF_LARGE_H
#define PF_LARGE_H

#include <stddef.h>

#include "family.h"

#define PF_LARGE_CACHE_MAX ((size_t)256 << 20)
#define PF_LARGE_CACHE_RANGES 64
#define PF_LARGE_DECAY_SECONDS 2
#define PF_LARGE_CHURN 8

/* A block of req bytes aligned to align (power of two), counted in f;
 * zeroed when `zero` (fresh mappings are; a reused one is cleared). */
PF_HIDDEN void *pf_large_alloc(struct pf_family *f, size_t req, size_t align, int zero);
/* Gives back everything cached when a mapping fails: the transfer caches
 * and empty spans of the families, the pool's pages and wholly free
 * regions, the cached large ranges. Caller holds no lock. */
PF_HIDDEN void pf_large_reclaim(void);
/* Unmaps the cached blocks. Returns the bytes released. */
PF_HIDDEN size_t pf_large_trim(void);
PF_HIDDEN size_t pf_large_cached_bytes(void);
/* Unmaps cached ranges that have decayed; cheap when there is nothing to do
 * (one load, or a coarse clock read at most). */
PF_HIDDEN void pf_large_tick(void);
PF_HIDDEN void pf_large_fork_lock(void);
PF_HIDDEN void pf_large_fork_unlock(int child);
PF_HIDDEN void pf_large_free(struct pf_span *s);
/* Resizes in place (into the cached range after the block when there is
 * one) or moves with mremap; NULL (block untouched) on failure. */
PF_HIDDEN void *pf_large_realloc(struct pf_span *s, size_t req);
/* The live large block whose bytes hold p (not necessarily at its start),
 * or NULL: a walk down the pagemap from p's chunk, over at most the size of
 * the biggest block there has been. For naming a bad pointer: lock-free,
 * and a block freed meanwhile may be seen. */
PF_HIDDEN struct pf_span *pf_large_find(const void *p);
PF_INLINE size_t pf_large_usable(const struct pf_span *s)
{
    return s->bytes;
}

#endif
