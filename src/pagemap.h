/*
 * pagemap.h — pointer -> span in O(1): a two-level radix over 64 KiB chunks
 * of the 47-bit user address space. Level 1 is static (zero pages cost
 * nothing until touched); leaves are mapped on first use and never freed, so
 * a lookup needs no lock: a reader sees the empty leaf or a valid one.
 * Level 1 holds each leaf's address relative to the empty leaf (a static
 * leaf of NULL entries, never written), so 0 means "no leaf" and a lookup
 * reads through it instead of testing for it.
 * Invariant: entry(c) == s  for every chunk c that a live small span s covers,
 *            and for the chunk holding the first byte of a large block.
 */
#ifndef PF_PAGEMAP_H
#define PF_PAGEMAP_H

#include <stdatomic.h>
#include <stdint.h>

#include "os.h"
#include <stddef.h>

/* Level 1 spans 47 bits: the user address space of x86-64 Linux, where
 * mmap never returns more without a hint above it. Elsewhere pointers would
 * alias each other's chunks. */
#if !defined(__x86_64__) || !defined(__LP64__) || !defined(__linux__)
#error "pfalloc supports x86-64 Linux only: the pagemap covers its 47-bit user address space"
#endif

struct pf_span;

#define PF_CHUNK_SHIFT 16
#define PF_CHUNK ((size_t)1 << PF_CHUNK_SHIFT)
#define PF_PM_LEAF_BITS 16
#define PF_PM_TOP_BITS (47 - PF_CHUNK_SHIFT - PF_PM_LEAF_BITS)

typedef struct pf_span *_Atomic pf_pm_leaf[1u << PF_PM_LEAF_BITS];
struct pf_pagemap {
    _Atomic uintptr_t top[1u << PF_PM_TOP_BITS]; /* leaf address - (uintptr_t)&empty; 0: none */
    pf_pm_leaf empty;                             /* every entry NULL, never written */
};
PF_HIDDEN extern struct pf_pagemap pf_pagemap;

/* The leaf of level-1 index `top` (the empty leaf when it has none). */
PF_INLINE pf_pm_leaf *pf_pagemap_leaf(uintptr_t top)
{
    uintptr_t rel = atomic_load_explicit(&pf_pagemap.top[top], memory_order_acquire);
    /* One base register for both levels: the compiler is kept from folding
     * the constant offset of `empty` into the index arithmetic. */
    char *x = (char *)&pf_pagemap + rel;
    __asm__("" : "+r"(x));
    return (pf_pm_leaf *)(x + offsetof(struct pf_pagemap, empty));
}

/* Tombstone: the chunk held a large block that has been freed (a static
 * span of kind PF_SPAN_GONE, so lookups need no extra test). */
PF_HIDDEN extern struct pf_span pf_span_gone;
#define PF_PM_FREED_LARGE (&pf_span_gone)

/* pf_pagemap_get without the bound test, for free's fast path: the top
 * index is masked, so a pointer beyond the 47-bit user range finds the span
 * (or NULL) of the chunk it aliases. Such a pointer lies at least 2^47 bytes
 * past that span's start, so it never passes the caller's check that it is
 * a slot boundary within the first MiB (offset == index * slot size). */
PF_INLINE struct pf_span *pf_pagemap_find(const void *p)
{
    uintptr_t c = (uintptr_t)p >> PF_CHUNK_SHIFT;
    uintptr_t top = (c >> PF_PM_LEAF_BITS) & ((1u << PF_PM_TOP_BITS) - 1);
    pf_pm_leaf *leaf = pf_pagemap_leaf(top);
    return atomic_load_explicit(&(*leaf)[c & ((1u << PF_PM_LEAF_BITS) - 1)], memory_order_relaxed);
}

PF_INLINE struct pf_span *pf_pagemap_get(const void *p)
{
    if (PF_UNLIKELY((uintptr_t)p >> (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS + PF_PM_TOP_BITS)))
        return NULL;
    return pf_pagemap_find(p);
}

/* Sets the entries of every chunk in [p, p + bytes). Returns 0, or -1 when a
 * leaf could not be mapped. */
PF_HIDDEN int pf_pagemap_set(const void *p, size_t bytes, struct pf_span *s);
/* Sets the entry of p's chunk to `to` only if it still holds `from` (one
 * compare-exchange; a chunk without a leaf holds NULL). */
PF_HIDDEN void pf_pagemap_replace(const void *p, struct pf_span *from, struct pf_span *to);

#endif
