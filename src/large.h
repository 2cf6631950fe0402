/*
 * large.h — blocks above PF_SMALL_MAX (or with alignment no class gives):
 * one mapping each, its own span struct, the pagemap entry of the chunk
 * holding its first byte. At most one large block starts in any 64 KiB
 * chunk (each is longer than a chunk and mappings never overlap), so that
 * entry is unambiguous whatever the block's alignment.
 * Freed blocks up to 32 MiB are kept in a small cache (at most 64 MiB, and
 * no more than the large bytes still live) and reused, resized with mremap,
 * for the next large request, sparing the munmap/mmap pair and the page
 * faults of a fresh mapping.
 */
#ifndef PF_LARGE_H
#define PF_LARGE_H

#include <stddef.h>

#include "family.h"

/* A block of req bytes aligned to align (power of two), counted in f;
 * zeroed when `zero` (fresh mappings are; a reused one is cleared). */
PF_HIDDEN void *pf_large_alloc(struct pf_family *f, size_t req, size_t align, int zero);
/* Unmaps the cached blocks. Returns the bytes released. */
PF_HIDDEN size_t pf_large_trim(void);
PF_HIDDEN size_t pf_large_cached_bytes(void);
PF_HIDDEN void pf_large_fork_lock(void);
PF_HIDDEN void pf_large_fork_unlock(int child);
PF_HIDDEN void pf_large_free(struct pf_span *s);
/* Resizes in place or moves with mremap; NULL (block untouched) on failure. */
PF_HIDDEN void *pf_large_realloc(struct pf_span *s, size_t req);
PF_INLINE size_t pf_large_usable(const struct pf_span *s)
{
    return s->bytes - s->align_off;
}

#endif
