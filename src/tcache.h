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
#include <stdint.h>

#include "family.h"

#define PF_TC_MAX 128

struct pf_bin {
    uint32_t count;   /* slots cached */
    uint32_t cap;     /* most slots this bin holds */
    void **slots;     /* slots[0..count) */
    uint64_t allocs;  /* allocations served by this thread */
    uint64_t frees;   /* frees made by this thread */
    uint64_t req_in;  /* bytes requested by those allocations (+ in-place growth) */
    uint64_t req_out; /* bytes requested of the freed objects (+ in-place shrink) */
};

struct pf_tcache {
    struct pf_bin bins[PF_NCLASSES];
    struct pf_tcache *next_all; /* every cache ever made (append-only) */
    atomic_int in_use;          /* 1 while a live thread owns it */
    void *store[PF_NCLASSES][PF_TC_MAX];
};

/* The calling thread's cache; NULL before pf_tcache_get and after exit. */
PF_HIDDEN extern __thread struct pf_tcache *pf_tc;
/* Creates (or adopts) the calling thread's cache; NULL when the thread is
 * exiting or memory is short (callers then take the locked path). */
PF_HIDDEN struct pf_tcache *pf_tcache_get(void);
PF_HIDDEN void *pf_tcache_refill(struct pf_tcache *tc, unsigned cls);
PF_HIDDEN void pf_tcache_flush(struct pf_tcache *tc, unsigned cls);
/* Gives every cached slot of the calling thread back (trim). */
PF_HIDDEN void pf_tcache_drain(void);
/* Lock-free walk for stats. */
PF_HIDDEN struct pf_tcache *pf_tcache_first(void);
/* Fork child: caches of threads that no longer exist are drained. */
PF_HIDDEN void pf_tcache_fork_child(void);

#endif
