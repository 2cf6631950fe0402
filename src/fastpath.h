/*
 * fastpath.h — the inline fast paths of malloc and free, shared by the
 * library's pf_malloc/pf_free and the preload's malloc/free so that neither
 * pays a call: size -> class, pop or push the thread's bin, one state entry
 * written (malloc) or checked and written (free, after pointer -> span ->
 * slot is verified). Everything unusual goes to a noinline slow path.
 */
#ifndef PF_FASTPATH_H
#define PF_FASTPATH_H

#include "tcache.h"

PF_HIDDEN PF_NOINLINE void *pf_alloc_small_slow(size_t req, unsigned cls, int *clean);
PF_HIDDEN PF_NOINLINE void *pf_alloc_large(size_t n, size_t align, int zero);
/* malloc beyond the direct case: any size, an empty bin, no cache yet. */
PF_HIDDEN PF_NOINLINE void *pf_malloc_slow(size_t n);
/* free of anything but a live slot of a cached span into a bin with room:
 * NULL, large blocks, typed families, a full bin, a thread without a cache,
 * and bad pointers (named and fatal). */
PF_HIDDEN PF_NOINLINE void pf_free_slow(void *p);
/* The same for a C++ delete that says the size (or PF_CHECK_ANY_SIZE) and
 * the alignment (1 for an unaligned one) the block was allocated with. */
PF_HIDDEN PF_NOINLINE void pf_free_slow_sized(void *p, size_t n, size_t align);
PF_HIDDEN __attribute__((noreturn)) void pf_alloc_bad_pointer(const void *p);
/* A free whose pointer the fast path verified as far as the state (p is
 * slot idx of small span s, whose state is st) but could not cache: a full
 * bin, a span whose frees skip the caches, a thread without a cache, or a
 * state that is not live. n and align as for pf_free_slow_sized (PF_CHECK_ANY_SIZE
 * and 0 for free). */
PF_HIDDEN PF_NOINLINE void pf_free_slot_slow(void *p, struct pf_span *s, uint32_t idx, uint32_t st,
                                             size_t n, size_t align);

/* Writes the live state `live` at st and counts it in b (malloc's
 * pf_direct_pop makes the same three writes in assembly). */
PF_INLINE void pf_slot_set_live(struct pf_bin *b, uint16_t *st, uint64_t live)
{
    *st = (uint16_t)live;
    b->allocs++;
    b->states += live;
}

/* Marks the slot at st live for req bytes and counts it in b. */
PF_INLINE void pf_slot_mark_live(struct pf_bin *b, uint16_t *st, size_t req, int *clean)
{
    if (clean)
        *clean = *st == PF_SLOT_CLEAN;
    pf_slot_set_live(b, st, b->live_base ? b->live_base - req : PF_SLOT_LIVE + req);
}

/* Pops a slot off b (not empty) for a request of req bytes: marks it live
 * and counts it. req <= the slot and slot - req <= WASTE_MAX. */
PF_INLINE void *pf_bin_take(struct pf_bin *b, size_t req, int *clean)
{
    struct pf_cached *t = --b->top;
    pf_slot_mark_live(b, t->state, req, clean);
    return t->p;
}

/* Pops a slot off the bin at byte offset off in tc, a bin of a class
 * whose states hold the request (malloc's direct classes: see
 * PF_STATE_REQ_SLOT), for req bytes, or returns NULL having changed
 * nothing when it is empty: the entry below every bin's bottom is a wall
 * (p NULL), so the load of the slot is the test and base is not read.
 * In assembly, so that each access to the bin is addressed with the cache
 * and the offset (the compiler otherwise adds them first) and the slot is
 * loaded into the register malloc returns it in; its writes are those of
 * pf_slot_set_live, with the live state PF_SLOT_LIVE + req. With clean
 * (calloc), *clean says whether the slot was never used (its memory is
 * the kernel's zeros); a constant NULL costs malloc nothing. */
PF_INLINE void *pf_direct_pop(struct pf_tcache *tc, uintptr_t off, size_t req, int *clean)
{
    struct pf_cached *t;
    void *p;
    __asm__("mov %c[top](%[tc],%[off]), %[t]\n\t"
            "mov %c[below](%[t]), %[p]"
            : [p] "=a"(p), [t] "=&r"(t)
            : [tc] "r"(tc), [off] "r"(off), [top] "i"(offsetof(struct pf_bin, top)),
              [below] "i"(offsetof(struct pf_cached, p) - sizeof(struct pf_cached))
            : "memory");
    if (PF_UNLIKELY(p == NULL))
        return NULL;
    uint16_t *st = t[-1].state;
    if (clean)
        *clean = *st == PF_SLOT_CLEAN;
    uint64_t live = PF_SLOT_LIVE + req;
    /* top = t - 1, then the state, then the counters, as pf_slot_set_live. */
    __asm__ volatile("subq %[one], %c[top](%[tc],%[off])\n\t"
                     "movw %w[live], (%[st])\n\t"
                     "addq $1, %c[allocs](%[tc],%[off])\n\t"
                     "addq %[live], %c[states](%[tc],%[off])"
                     :
                     : [tc] "r"(tc), [off] "r"(off), [st] "r"(st), [live] "r"(live),
                       [one] "i"(sizeof(struct pf_cached)), [top] "i"(offsetof(struct pf_bin, top)),
                       [allocs] "i"(offsetof(struct pf_bin, allocs)), [states] "i"(offsetof(struct pf_bin, states))
                     : "memory");
    return p;
}

/* req <= PF_SMALL_MAX, cls holds it and slot - req <= WASTE_MAX. While
 * held (family.h), to the slow path, which waits. */
PF_INLINE void *pf_small_alloc(size_t req, unsigned cls, int *clean)
{
    struct pf_bin *b = &pf_tc_fast->bins[cls];
    if (PF_LIKELY(b->top != b->base) && PF_LIKELY(!pf_held()))
        return pf_bin_take(b, req, clean);
    return pf_alloc_small_slow(req, cls, clean);
}

/* The common malloc: n <= PF_DIRECT_MAX and its bin has a slot. While
 * call sites are recorded every direct[] entry is the cache's PF_BIN_NONE,
 * empty, so that test sends each malloc to the slow path that records
 * them. Returns 0 otherwise, having changed nothing, so the caller can
 * tail-call its slow path and keep no stack frame. */
PF_INLINE int pf_malloc_direct(size_t n, void **out)
{
    _Static_assert(PF_DIRECT_MAX <= PF_STATE_REQ_SLOT, "direct classes' states hold the request");
    if (PF_UNLIKELY(n > PF_DIRECT_MAX))
        return 0;
    struct pf_tcache *tc = pf_tc_fast;
    void *p = pf_direct_pop(tc, tc->direct[n], n, NULL);
    *out = p;
    return p != NULL;
}

PF_INLINE void *pf_fast_malloc(size_t n)
{
    void *p;
    if (PF_LIKELY(pf_malloc_direct(n, &p)))
        return p;
    return pf_malloc_slow(n);
}

/* Every case the fast free cannot take; `sized` is a constant, so free's
 * own code is the same with or without the sized variant. */
#define PF_FREE_SLOW(p, n, a, sized) ((sized) ? pf_free_slow_sized((p), (n), (a)) : pf_free_slow(p))

/* Whether p is a slot boundary of a span whose first slot is at start and
 * whose magic is magic (see struct pf_span), with its slot index in *idx:
 * one multiplication gives the index (high half) and the answer (low half
 * below the magic; exact as p is below 2^47 and in the span's chunks). A
 * magic of 0 passes no pointer. */
PF_INLINE int pf_slot_index_rel(uintptr_t rel, uint64_t magic, uintptr_t *idx)
{
    unsigned __int128 m = (unsigned __int128)rel * magic;
    *idx = (uintptr_t)(m >> 64);
    return (uint64_t)m < magic;
}

PF_INLINE int pf_slot_index(const void *p, uintptr_t start, uint64_t magic, uintptr_t *idx)
{
    return pf_slot_index_rel((uintptr_t)p - start, magic, idx);
}

/* The word `word` of the view entry at word w of the view (see
 * pf_pagemap_view_word), read as one instruction with w scaled by 8;
 * volatile, so the reads keep their order after the magic's. */
#define PF_VIEW_READ(view, w, word, out)                                                                               \
    __asm__ volatile("mov %c3(%1,%2,8), %0" : "=r"(out) : "r"(view), "r"(w), "i"((word) * 8))

/* Caches the slot p (state entry stp, live state st, now marked free) in
 * b at its top t, which has room, and counts the free. */
PF_INLINE void pf_bin_push(struct pf_bin *b, struct pf_cached *t, void *p, uint16_t *stp, uint32_t st)
{
    /* A 16-bit store of an immediate in one instruction (the compiler
     * otherwise goes through a register). */
    __asm__("movw %1, %0" : "=m"(*stp) : "i"(PF_SLOT_DIRTY));
    b->frees++;
    b->states -= st;
    *t = (struct pf_cached){p, stp};
    /* The entry before the top that exposes it: a fork from another thread
     * between the two stores must not leave the child a bin whose top
     * covers a stale entry (a copy of a slot already below). A compiler
     * barrier only; x86-64 makes stores visible in program order. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    /* b->top = t + 1, in one instruction on memory. */
    __asm__("addq %1, %0" : "+m"(b->top) : "i"(sizeof(struct pf_cached)));
}

PF_INLINE void pf_free_inline(void *p, size_t n, size_t a, int sized)
{
    /* The common case: p in the view's window, in a span of cached frees,
     * whose fields its chunk's view holds (see struct pf_pm_view). The checks
     * are those below; anything that fails one takes the span's path,
     * which makes them again and handles it. */
    uintptr_t w;
    if (PF_LIKELY(pf_pagemap_view_word(p, &w))) {
        /* The entry's fields are read as words of the view with w scaled,
         * each in one instruction (the compiler otherwise makes a pointer
         * to the entry, or an address for each field): magic first (an
         * aligned load on x86-64 is an acquire), then the others, in that
         * order (see PF_VIEW_READ). */
        const uint64_t *view = (const uint64_t *)pf_pagemap_view;
        uint64_t magic;
        uintptr_t rel = (uintptr_t)p, idx;
        PF_VIEW_READ(view, w, PF_PM_VIEW_MAGIC, magic);
        /* In the register the multiplication takes. */
        __asm__ volatile("sub %c3(%1,%2,8), %0" : "+a"(rel) : "r"(view), "r"(w), "i"(PF_PM_VIEW_START * 8));
        if (PF_LIKELY(pf_slot_index_rel(rel, magic, &idx))) {
            uint16_t *stp;
            uintptr_t bin;
            PF_VIEW_READ(view, w, PF_PM_VIEW_STATE, stp);
            PF_VIEW_READ(view, w, PF_PM_VIEW_BIN, bin);
            stp += idx;
            uint32_t st = *stp;
            struct pf_bin *b = (struct pf_bin *)((char *)pf_tc_fast + bin);
            struct pf_cached *t = b->top;
            if (PF_LIKELY(st >= PF_SLOT_LIVE && t != b->limit)) {
                pf_bin_push(b, t, p, stp, st);
                return;
            }
        }
    }
    /* NULL and pointers above the user range find no leaf; a chunk that is
     * not pfalloc's finds the pagemap's `none`, whose magic passes nothing. */
    struct pf_span *s;
    if (PF_UNLIKELY(!pf_pagemap_find(p, &s))) {
        PF_FREE_SLOW(p, n, a, sized);
        return;
    }
    /* Verify pointer -> span -> slot -> state before trusting anything.
     * The state is read only once p is known to be a slot boundary, so it
     * is in the state array. idx is below 2^32, but kept 64 bits wide: it
     * indexes as it is and is the slow path's third argument, so it needs
     * no copy. */
    uintptr_t idx;
    if (PF_UNLIKELY(!pf_slot_index(p, s->start, s->magic, &idx))) {
        PF_FREE_SLOW(p, n, a, sized);
        return;
    }
    uint16_t *stp = &s->state[idx];
    uint32_t st = *stp;
    /* Spans whose frees skip the caches, and threads without a cache,
     * find a bin with no room. */
    struct pf_bin *b = (struct pf_bin *)((char *)pf_tc_fast + s->bin);
    struct pf_cached *t = b->top;
    if (PF_UNLIKELY(st < PF_SLOT_LIVE || t == b->limit)) {
        pf_free_slot_slow(p, s, (uint32_t)idx, st, (sized) ? n : (size_t)-1, (sized) ? a : 0);
        return;
    }
    pf_bin_push(b, t, p, stp, st);
}

PF_INLINE void pf_fast_free(void *p)
{
    pf_free_inline(p, 0, 0, 0);
}

/* C++ sized and aligned delete: the same fast path; the checking mode
 * verifies the claim on the slow path. */
PF_INLINE void pf_fast_free_sized(void *p, size_t n, size_t align)
{
    pf_free_inline(p, n, align, 1);
}

#endif
