/*
 * pagemap.h — pointer -> span in O(1): a two-level radix over 64 KiB chunks
 * of the 47-bit user address space. Level 1 is static (zero pages cost
 * nothing until touched); a leaf is mapped when pfalloc first maps memory in
 * the 4 GiB it covers and is never freed, so a lookup needs no lock: a
 * reader sees no leaf or a valid one.
 * A leaf entry holds its span's address relative to the pagemap's `none`,
 * a span no pointer passes: 0 (a fresh leaf) is that span, so free's fast
 * path reads through it without a test.
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


/* Leaves start on 64 KiB boundaries, so level 1 holds 32-bit entries (128
 * KiB for the 47-bit space) and turning one into an address is one shift. */
#define PF_PM_LEAF_ALIGN_SHIFT 16

typedef _Atomic uintptr_t pf_pm_leaf[1u << PF_PM_LEAF_BITS]; /* span - &pf_pagemap.none */

/* What free's fast path reads of a span, laid out as struct pf_span begins
 * (span.h checks it). */
struct pf_span_head {
    uintptr_t start;
    uint64_t magic;
};

struct pf_pagemap {
    _Atomic uint32_t top[1u << PF_PM_TOP_BITS]; /* leaf address >> PF_PM_LEAF_ALIGN_SHIFT, 0: none,
                                                   PF_PM_HOT_MARK: `hot` */
    struct pf_span_head none;                     /* chunks nobody set: magic 0 passes no pointer */
    uint64_t pad[6];                              /* the whole of a span's leading fields */
    pf_pm_leaf hot;                               /* the first leaf made (see pf_pagemap_hot) */
};
PF_HIDDEN extern struct pf_pagemap pf_pagemap;
/* Level 1's entry for the leaf `hot`, which is not on a 64 KiB boundary:
 * no leaf mapping is at address 1 << PF_PM_LEAF_ALIGN_SHIFT. */
#define PF_PM_HOT_MARK 1u

/* The first leaf pfalloc made, pf_pagemap.hot: where nearly every
 * program's heap lies (the kernel places mappings together), so free's
 * lookup reads that leaf at a fixed offset from the pagemap, without
 * reading level 1 or a leaf address. A line of its own: written once,
 * read by every free. */
struct pf_pm_hot {
    /* Its level-1 index: UINTPTR_MAX until set, which no pointer's index
     * equals. Set after level 1 holds PF_PM_HOT_MARK for it. */
    _Atomic uintptr_t top;
    /* For free's fast path: `hot` holds the entry of p's chunk when
     * (p - base) >> PF_CHUNK_SHIFT is below limit. base is top's first
     * address; limit is 0 until base is set, then the entries of a leaf.
     * base, top and limit are set in that order, before any entry of
     * `hot`, and free reads limit before base: a free that finds limit
     * set finds base set, and one that does not takes the slow path, so
     * no pointer outside top's range finds an entry of `hot`. */
    _Atomic uintptr_t base;
    _Atomic uintptr_t limit;
    /* The chunks that have a view (see struct pf_pm_view): view[c] is the
     * view of the chunk at view_base + c * PF_CHUNK for c below
     * PF_PM_VIEW_CHUNKS. view_base is PF_PM_VIEW_NONE until the first span
     * that sets a view places the window, once, before any view: from
     * PF_PM_VIEW_NONE every user pointer is past the window, so free reads
     * view_base alone and compares with a constant. */
    _Atomic uintptr_t view_base;
} __attribute__((aligned(64)));
PF_HIDDEN extern struct pf_pm_hot pf_pagemap_hot;

/* What free's fast path reads of a span, for each chunk of the view's
 * window (512 MiB around the first span that sets one, mostly below it,
 * where the kernel places later mappings) that a small span of cached
 * frees covers: the span's start, magic, state array and bin (see struct
 * pf_span), side by side in one 32-byte entry, so a free reads them as
 * soon as it has p's chunk instead of waiting for the span's address
 * first. magic is 0 for every other chunk (and until set), which no
 * pointer passes: free then takes the span's path through its pagemap
 * entry, as it does for chunks outside the window.
 * Invariant: view[c].magic != 0 only while chunk c is in a small span s
 * with s->bin != PF_BIN_NONE, and then view[c] holds s's fields. The span
 * sets it after its entries and bin, and clears it when it goes back to
 * the pool; its fields do not change in between, so the free of a live
 * block always reads them whole. magic is stored last when set and first
 * when cleared, and read first. A free that races the span's going back to
 * the pool frees a block that is not live (the span is empty) while the
 * view changes, and may pair fields of two spans: as with the fields of a
 * span struct that is being carved again, such a free is not promised to
 * be named. */
#define PF_PM_VIEW_CHUNKS 8192u
/* view_base before the window is placed: p - PF_PM_VIEW_NONE wraps to 2^63
 * or more for every pointer below 2^63, far past the window. */
#define PF_PM_VIEW_NONE ((uintptr_t)1 << 63)
struct pf_pm_view {
    uintptr_t start;
    uint64_t magic;
    uint16_t *state;
    uintptr_t bin;
};
PF_HIDDEN extern struct pf_pm_view pf_pagemap_view[PF_PM_VIEW_CHUNKS];

/* Sets the view of every chunk of [start, start + bytes) in the window to
 * the span's fields (magic not 0), or clears it (magic 0). The first call
 * that sets one places the window; a call that races it sets none (its
 * span's frees take the pagemap's path). */
PF_HIDDEN void pf_pagemap_view_set(uintptr_t start, size_t bytes, uint64_t magic, uint16_t *state,
                                   uintptr_t bin);

/* The leaf a level-1 entry names, or NULL. */
PF_INLINE pf_pm_leaf *pf_pagemap_leaf_at(uintptr_t e)
{
    return e == PF_PM_HOT_MARK ? &pf_pagemap.hot : (pf_pm_leaf *)(e << PF_PM_LEAF_ALIGN_SHIFT);
}

/* Tombstones (a chunk where a freed large block started): span.h. */

/* The leaf of level-1 index `top`, or NULL. */
PF_INLINE pf_pm_leaf *pf_pagemap_leaf(uintptr_t top)
{
    if (top == atomic_load_explicit(&pf_pagemap_hot.top, memory_order_acquire))
        return &pf_pagemap.hot;
    return pf_pagemap_leaf_at(atomic_load_explicit(&pf_pagemap.top[top], memory_order_acquire));
}

/* p's chunk index in a range of chunks starting at *base, and the range's
 * *limit in *lim (0 until *base is set): one instruction reads the limit,
 * then one subtracts the first address, so the limit is read first (see
 * struct pf_pm_hot). A pointer below the range wraps to an index past it. */
PF_INLINE uintptr_t pf_pm_index_in(const void *p, const _Atomic uintptr_t *limit, const _Atomic uintptr_t *base,
                                   uintptr_t *lim)
{
    uintptr_t c = (uintptr_t)p, l;
    __asm__ volatile("mov %2, %0\n\tsub %3, %1"
                     : "=&r"(l), "+r"(c)
                     : "m"(*(const uintptr_t *)limit), "m"(*(const uintptr_t *)base));
    *lim = l;
    return c >> PF_CHUNK_SHIFT;
}

/* For free's fast path: p's span, or the pagemap's `none` (magic 0) for a
 * chunk that is not pfalloc's; returns 0 for p above the 47-bit user range
 * or in 4 GiB without a leaf. A small span's pointers are then below 2^47
 * and at most 1 MiB past its start, which the slot check's arithmetic
 * needs. */
PF_INLINE int pf_pagemap_find(const void *p, struct pf_span **out)
{
    /* One register for level 1, `hot` and `none`; laundered, as the span
     * found is another object (see pf_pagemap_get). */
    char *base = (char *)&pf_pagemap;
    __asm__("" : "+r"(base));
    uintptr_t rel;
    /* The common case: p's chunk index in `hot`, found by subtracting the
     * range's first address; a pointer below it wraps to an index out of
     * range. The entry is the only load of the lookup besides `hot`'s
     * bounds, which share a line no one writes.
     * The loads are written as instructions: the compiler gives an atomic
     * load neither a memory operand of the subtraction nor the entry's
     * displacement, and costs an instruction for each. An aligned load on
     * x86-64 is atomic and an acquire, and loads are not reordered with
     * loads: one asm reads limit, then base (see struct pf_pm_hot). */
    uintptr_t lim, c = pf_pm_index_in(p, &pf_pagemap_hot.limit, &pf_pagemap_hot.base, &lim);
    if (PF_LIKELY(c < lim)) {
        __asm__ volatile("mov %1, %0" : "=r"(rel) : "m"(*(const uintptr_t *)&((struct pf_pagemap *)base)->hot[c]));
    } else {
        uintptr_t top = (uintptr_t)p >> (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS);
        if (PF_UNLIKELY(top >= (1u << PF_PM_TOP_BITS)))
            return 0;
        uintptr_t e = atomic_load_explicit(
            (_Atomic uint32_t *)(base + offsetof(struct pf_pagemap, top) + top * sizeof(uint32_t)),
            memory_order_acquire);
        pf_pm_leaf *leaf = pf_pagemap_leaf_at(e); /* the mark: `hot`, limit not yet set */
        if (PF_UNLIKELY(leaf == NULL))
            return 0;
        /* The low 32 bits, shifted: the chunk's index in its leaf in two
         * instructions, no mask. */
        rel = atomic_load_explicit(&(*leaf)[(uint32_t)(uintptr_t)p >> PF_CHUNK_SHIFT], memory_order_relaxed);
    }
    *out = (struct pf_span *)(base + offsetof(struct pf_pagemap, none) + rel);
    return 1;
}

/* For free's fast path: where p's view entry starts, in words from the
 * view's first (a multiple of 4, the entry's size in words), when p is in
 * the view's window. The chunk's index is computed times 4, so that the
 * entry's fields are read with it scaled by 8 and no other arithmetic. */
PF_INLINE int pf_pagemap_view_word(const void *p, uintptr_t *out)
{
    uintptr_t c = (uintptr_t)p;
    __asm__ volatile("sub %1, %0" : "+r"(c) : "m"(*(const uintptr_t *)&pf_pagemap_hot.view_base));
    c = (c >> (PF_CHUNK_SHIFT - 2)) & ~(uintptr_t)3;
    *out = c;
    return c < (uintptr_t)PF_PM_VIEW_CHUNKS * 4;
}
/* The words of a view entry, from pf_pagemap_view_word's answer. */
enum { PF_PM_VIEW_START, PF_PM_VIEW_MAGIC, PF_PM_VIEW_STATE, PF_PM_VIEW_BIN, PF_PM_VIEW_WORDS };
_Static_assert(sizeof(struct pf_pm_view) == PF_PM_VIEW_WORDS * sizeof(uint64_t) &&
                   offsetof(struct pf_pm_view, magic) == PF_PM_VIEW_MAGIC * sizeof(uint64_t) &&
                   offsetof(struct pf_pm_view, state) == PF_PM_VIEW_STATE * sizeof(uint64_t) &&
                   offsetof(struct pf_pm_view, bin) == PF_PM_VIEW_BIN * sizeof(uint64_t),
               "a view entry is four words in this order");

/* The entry a word of pf_pagemap_view_word starts. */
PF_INLINE struct pf_pm_view *pf_pagemap_view_entry(uintptr_t w)
{
    return &pf_pagemap_view[w / PF_PM_VIEW_WORDS];
}

/* p's span, or NULL when p is in no chunk pfalloc set. */
PF_INLINE struct pf_span *pf_pagemap_get(const void *p)
{
    uintptr_t top = (uintptr_t)p >> (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS);
    if (PF_UNLIKELY(top >= (1u << PF_PM_TOP_BITS)))
        return NULL;
    pf_pm_leaf *leaf = pf_pagemap_leaf(top);
    if (!leaf)
        return NULL;
    uintptr_t rel = atomic_load_explicit(&(*leaf)[(uint32_t)(uintptr_t)p >> PF_CHUNK_SHIFT], memory_order_relaxed);
    /* Laundered: the span is another object than the pagemap, and the
     * compiler must not conclude from where the address came from that it
     * differs from any other span's (the freed-large tombstone's). */
    char *base = (char *)&pf_pagemap.none;
    __asm__("" : "+r"(base));
    return rel ? (struct pf_span *)(base + rel) : NULL;
}

/* Sets the entries of every chunk in [p, p + bytes). Returns 0, or -1 when a
 * leaf could not be mapped. */
PF_HIDDEN int pf_pagemap_set(const void *p, size_t bytes, struct pf_span *s);
/* Sets the entry of p's chunk to `to` only if it still holds `from` (one
 * compare-exchange; a chunk without a leaf holds NULL). from is not NULL:
 * an entry that pf_pagemap_set made, so the hot leaf's range, if p is in
 * it, is set already. */
PF_HIDDEN void pf_pagemap_replace(const void *p, struct pf_span *from, struct pf_span *to);

#endif
