/*
 * pagemap.c — leaf creation. Leaves are published with a compare-exchange so
 * two threads creating the same leaf agree on one (the loser unmaps its own).
 */
#include "pagemap.h"

PF_BULK struct pf_pagemap pf_pagemap;
struct pf_pm_hot pf_pagemap_hot = {UINTPTR_MAX, 0, 0, PF_PM_VIEW_NONE};
PF_BULK struct pf_pm_view pf_pagemap_view[PF_PM_VIEW_CHUNKS] __attribute__((aligned(64)));
/* 1 once a span has claimed the placing of the view's window. */
static atomic_int view_placed;
/* 1 once a level-1 index holds PF_PM_HOT_MARK (or is being given it). */
static atomic_int hot_taken;

static uintptr_t rel_of(struct pf_span *s)
{
    return s ? (uintptr_t)s - (uintptr_t)&pf_pagemap.none : 0;
}

/* Before an entry of `hot` is set: its range for free's fast path (see
 * struct pf_pm_hot). Every setter makes sure of it, as one that finds
 * level 1's mark (at the start, or by losing level 1 to it) may come
 * before the thread that put it there has set the range. Stored once (the
 * same values, whoever stores them): the line is read by every free, and a
 * store would take it from every core. */
static void hot_published(uintptr_t top)
{
    if (atomic_load_explicit(&pf_pagemap_hot.limit, memory_order_acquire) == 0) {
        atomic_store_explicit(&pf_pagemap_hot.base, top << (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS), memory_order_release);
        atomic_store_explicit(&pf_pagemap_hot.top, top, memory_order_release);
        atomic_store_explicit(&pf_pagemap_hot.limit, (uintptr_t)1 << PF_PM_LEAF_BITS, memory_order_release);
    }
}

/* The leaf of top, which had none when looked at: `hot` if it is still
 * free, else a fresh mapping; whichever leaf level 1 names once the race
 * for it is over, or NULL. */
static pf_pm_leaf *leaf_made(uintptr_t top)
{
    /* The first leaf is pf_pagemap.hot. Two threads making leaves may both
     * get here, for one top or two: one takes `hot`, and whoever installs
     * a leaf for a top first is the leaf everyone uses for it. */
    int no = 0;
    if (atomic_compare_exchange_strong(&hot_taken, &no, 1)) {
        uint32_t expect = 0;
        if (atomic_compare_exchange_strong_explicit(&pf_pagemap.top[top], &expect, PF_PM_HOT_MARK,
                                                    memory_order_acq_rel, memory_order_acquire))
            return &pf_pagemap.hot;
        atomic_store(&hot_taken, 0); /* another thread's leaf came first: `hot` stays free */
        return pf_pagemap_leaf_at(expect);
    }
    pf_pm_leaf *fresh = pf_os_map_meta_aligned(sizeof(pf_pm_leaf), (size_t)1 << PF_PM_LEAF_ALIGN_SHIFT);
    if (!fresh)
        return NULL;
    uintptr_t e = (uintptr_t)fresh >> PF_PM_LEAF_ALIGN_SHIFT;
    if (e > UINT32_MAX) { /* beyond what an entry holds: not below 2^48 */
        pf_os_unmap_meta(fresh, sizeof(pf_pm_leaf));
        return NULL;
    }
    uint32_t expect = 0;
    if (atomic_compare_exchange_strong_explicit(&pf_pagemap.top[top], &expect, (uint32_t)e,
                                                memory_order_acq_rel, memory_order_acquire))
        return fresh;
    pf_os_unmap_meta(fresh, sizeof(pf_pm_leaf));
    return pf_pagemap_leaf_at(expect); /* may be `hot`: the claimer came first */
}

/* The leaf for a setter of top's entries. */
static pf_pm_leaf *leaf_for(uintptr_t top)
{
    pf_pm_leaf *leaf = pf_pagemap_leaf(top);
    if (!leaf)
        leaf = leaf_made(top);
    if (leaf == &pf_pagemap.hot)
        hot_published(top);
    return leaf;
}

int pf_pagemap_set(const void *p, size_t bytes, struct pf_span *s)
{
    uintptr_t first = (uintptr_t)p >> PF_CHUNK_SHIFT;
    uintptr_t last = ((uintptr_t)p + (bytes ? bytes - 1 : 0)) >> PF_CHUNK_SHIFT;
    for (uintptr_t c = first; c <= last; c++) {
        uintptr_t top = c >> PF_PM_LEAF_BITS;
        if (top >= (1u << PF_PM_TOP_BITS))
            return -1;
        pf_pm_leaf *leaf = leaf_for(top);
        if (!leaf)
            return -1;
        atomic_store_explicit(&(*leaf)[c & ((1u << PF_PM_LEAF_BITS) - 1)], rel_of(s), memory_order_release);
    }
    return 0;
}

void pf_pagemap_replace(const void *p, struct pf_span *from, struct pf_span *to)
{
    uintptr_t c = (uintptr_t)p >> PF_CHUNK_SHIFT;
    uintptr_t top = c >> PF_PM_LEAF_BITS;
    if (top >= (1u << PF_PM_TOP_BITS))
        return;
    pf_pm_leaf *leaf = pf_pagemap_leaf(top);
    if (!leaf)
        return;
    uintptr_t expect = rel_of(from);
    atomic_compare_exchange_strong_explicit(&(*leaf)[c & ((1u << PF_PM_LEAF_BITS) - 1)], &expect, rel_of(to),
                                            memory_order_acq_rel, memory_order_relaxed);
}

/* Places the view's window around the chunk at `start`: 7/8 of it below,
 * as the kernel maps downwards. Returns 0 when another caller claimed it
 * first (and may not have set it yet). */
static int view_window(uintptr_t start)
{
    int no = 0;
    if (!atomic_compare_exchange_strong(&view_placed, &no, 1))
        return atomic_load_explicit(&pf_pagemap_hot.view_base, memory_order_acquire) != PF_PM_VIEW_NONE;
    uintptr_t below = (uintptr_t)(PF_PM_VIEW_CHUNKS - PF_PM_VIEW_CHUNKS / 8) << PF_CHUNK_SHIFT;
    uintptr_t first = start & ~(PF_CHUNK - 1);
    atomic_store_explicit(&pf_pagemap_hot.view_base, first > below ? first - below : 0, memory_order_release);
    return 1;
}

void pf_pagemap_view_set(uintptr_t start, size_t bytes, uint64_t magic, uint16_t *state, uintptr_t bin)
{
    uintptr_t base = atomic_load_explicit(&pf_pagemap_hot.view_base, memory_order_acquire);
    if (base == PF_PM_VIEW_NONE) {
        if (magic == 0 || !view_window(start))
            return; /* no chunk has a view yet, or the window is being placed */
        base = atomic_load_explicit(&pf_pagemap_hot.view_base, memory_order_acquire);
    }
    for (uintptr_t a = start; a < start + bytes; a += PF_CHUNK) {
        uintptr_t c = (a - base) >> PF_CHUNK_SHIFT;
        if (c >= PF_PM_VIEW_CHUNKS)
            continue;
        struct pf_pm_view *v = &pf_pagemap_view[c];
        /* Cleared first even when set anew, so no free pairs this magic
         * with fields of another span. */
        __atomic_store_n(&v->magic, 0, __ATOMIC_RELEASE);
        if (magic == 0)
            continue;
        __atomic_store_n(&v->start, start, __ATOMIC_RELAXED);
        __atomic_store_n(&v->state, state, __ATOMIC_RELAXED);
        __atomic_store_n(&v->bin, bin, __ATOMIC_RELAXED);
        __atomic_store_n(&v->magic, magic, __ATOMIC_RELEASE);
    }
}
