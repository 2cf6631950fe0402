/*
 * test_span.c — spans and the pool: the magic-number slot index against
 * plain division, span geometry and pagemap entries, the take/give
 * invariant (used + nfree + (nslots - bump) == nslots) under random
 * traffic, clean/dirty slots (fresh spans read as zero, pooled ones do not
 * claim to, decommitted ones are fresh again), pool reuse and splitting, the
 * cache bound, trim giving regions back, trim in one thread while others
 * decommit spans (no region is unmapped under a decommit, counters stay
 * exact), the joining of pooled neighbours (and never of a span being
 * decommitted, which no shorter-span fallback takes either), the hole a
 * region leaves above a 4 GiB boundary, the longest free run, and the
 * metadata allocator.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pfalloc.h"
#include "span.h"

#include "faults.h"

static struct pf_os_counts counts(void)
{
    struct pf_os_counts oc;
    pf_os_counts(&oc);
    return oc;
}

static uint32_t popcount_bits(const struct pf_span *s)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < (s->nslots + 63) / 64; w++)
        n += (uint32_t)__builtin_popcountll(s->freebits[w]);
    return n;
}

static void check_span(const struct pf_span *s)
{
    cr_assert_eq(s->used + s->nfree + (s->nslots - s->bump), s->nslots,
                 "used %u + nfree %u + untouched %u != nslots %u", s->used, s->nfree,
                 s->nslots - s->bump, s->nslots);
    cr_assert_eq(popcount_bits(s), s->nfree);
    cr_assert_leq(s->bump, s->nslots);
    /* Takes start at the hint: no free slot below it. */
    for (uint32_t w = 0; w < s->hint && w < (s->nslots + 63) / 64; w++)
        cr_assert_eq(s->freebits[w], 0, "free slots in word %u, below the hint %u", w, s->hint);
}

static uint32_t slot_of(const struct pf_span *s, void *p)
{
    uintptr_t off = (uintptr_t)p - s->start;
    cr_assert_lt(off, (uintptr_t)s->nslots * s->slot_size, "slot %p outside its span", p);
    cr_assert_eq(off % s->slot_size, 0, "slot %p not on a slot boundary", p);
    return (uint32_t)(off / s->slot_size);
}

/* The fast free's test that off is a slot boundary of s. */
static int boundary(const struct pf_span *s, uintptr_t off)
{
    return (uint64_t)((unsigned __int128)off * s->magic) < s->magic;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

Test(span, index_is_exact_below_one_megabyte_for_every_class)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        struct pf_span *s = pf_span_get(c);
        cr_assert_not_null(s);
        uint32_t slot = s->slot_size;
        uintptr_t limit = (uintptr_t)1 << 20;
        for (uintptr_t idx = 0; idx * slot < limit; idx++) {
            uintptr_t base = idx * slot;
            if (pf_span_index(s, base) != idx)
                cr_assert_fail("class %u: slot start %lu gives index %u, not %lu", c,
                         (unsigned long)base, pf_span_index(s, base), (unsigned long)idx);
            if (!boundary(s, base))
                cr_assert_fail("class %u: slot start %lu not taken for a boundary", c, (unsigned long)base);
            for (uintptr_t r = 1; r < slot && base + r < limit; r++) {
                if (pf_span_index(s, base + r) != idx)
                    cr_assert_fail("class %u: offset %lu gives index %u, not %lu", c,
                             (unsigned long)(base + r), pf_span_index(s, base + r),
                             (unsigned long)idx);
                if (boundary(s, base + r))
                    cr_assert_fail("class %u: offset %lu taken for a slot boundary", c,
                                   (unsigned long)(base + r));
            }
        }
    }
}

/* Free's fast path: the slot index and the boundary test from one
 * multiplication stay exact for every offset below 2^47 (a pointer in the
 * user range, at any distance from the span's start), and a magic of 0
 * passes nothing. */
Test(span, boundary_test_is_exact_below_2_to_the_47_for_every_class)
{
    struct pf_span z = {.magic = 0};
    for (uintptr_t off = 0; off < ((uintptr_t)1 << 47); off = off * 3 + 1)
        cr_assert(!boundary(&z, off));
    uint64_t rng = 88172645463325252ull;
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        uint32_t slot = pf_class_size[c];
        struct pf_span s = {.magic = PF_SPAN_MAGIC(slot), .slot_size = slot};
        for (int i = 0; i < 200000; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            uintptr_t off = rng & (((uintptr_t)1 << 47) - 1);
            if (i & 1)
                off -= off % slot; /* a boundary half the time */
            if (i % 7 == 0)
                off = ((uintptr_t)1 << 47) - 1 - (off & 0xfffff); /* near the top */
            uint64_t idx = (uint64_t)(((unsigned __int128)off * s.magic) >> 64);
            if (boundary(&s, off) != (off % slot == 0) || idx != off / slot)
                cr_assert_fail("class %u (slot %u): offset %lu", c, slot, (unsigned long)off);
        }
    }
}

Test(span, get_gives_an_aligned_span_of_the_class_in_the_pagemap)
{
    struct pf_span *sp[PF_NCLASSES];
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        struct pf_span *s = sp[c] = pf_span_get(c);
        cr_assert_not_null(s);
        cr_assert_eq(s->kind, PF_SPAN_SMALL);
        cr_assert_eq(s->cls, c);
        cr_assert_eq(s->slot_size, pf_class_size[c]);
        cr_assert_eq(s->bytes, pf_class_span_bytes(c));
        cr_assert_eq(s->nchunks, s->bytes / PF_CHUNK);
        cr_assert_eq(s->nslots, s->bytes / s->slot_size, "class %u", c);
        cr_assert_eq(s->start % PF_CHUNK, 0);
        cr_assert_eq(s->used, 0);
        cr_assert_eq(s->bump, 0);
        cr_assert(s->fresh, "a span from a new region is fresh");
        for (uintptr_t a = s->start; a < s->start + s->bytes; a += PF_CHUNK / 2)
            cr_assert_eq(pf_pagemap_get((void *)a), s);
        cr_assert_eq(pf_pagemap_get((void *)(s->start + s->bytes - 1)), s);
        check_span(s);
    }
    for (unsigned a = 0; a < PF_NCLASSES; a++)
        for (unsigned b = a + 1; b < PF_NCLASSES; b++)
            cr_assert(sp[a]->start + sp[a]->bytes <= sp[b]->start ||
                          sp[b]->start + sp[b]->bytes <= sp[a]->start,
                      "spans of classes %u and %u overlap", a, b);
    /* Slots handed out are inside the span and 16-byte aligned. */
    for (unsigned c = 0; c < PF_NCLASSES; c += 5) {
        struct pf_span *s = sp[c];
        for (uint32_t i = 0; i < s->nslots; i++) {
            int clean;
            void *p = pf_span_take(s, &clean);
            cr_assert_eq((uintptr_t)p % 16, 0);
            cr_assert_eq(slot_of(s, p), i);
        }
        cr_assert_eq(s->used, s->nslots);
        check_span(s);
    }
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void random_traffic(unsigned cls, int ops)
{
    struct pf_span *s = pf_span_get(cls);
    cr_assert_not_null(s);
    static uint32_t out[PF_MAX_SLOTS];
    static unsigned char is_out[PF_MAX_SLOTS], ever[PF_MAX_SLOTS];
    uint32_t nout = 0;
    memset(is_out, 0, sizeof is_out);
    memset(ever, 0, sizeof ever);
    for (int op = 0; op < ops; op++) {
        int take = nout == 0 || (nout < s->nslots && next_rand() % 100 < 55);
        if (take) {
            int clean = -1;
            void *p = pf_span_take(s, &clean);
            uint32_t idx = slot_of(s, p);
            cr_assert_not(is_out[idx], "class %u: slot %u handed out twice", cls, idx);
            cr_assert_eq(clean, !ever[idx], "class %u: slot %u clean=%d, used before=%d", cls,
                         idx, clean, ever[idx]);
            is_out[idx] = ever[idx] = 1;
            out[nout++] = idx;
        } else {
            uint32_t k = (uint32_t)(next_rand() % nout);
            uint32_t idx = out[k];
            out[k] = out[--nout];
            is_out[idx] = 0;
            s->state[idx] = PF_SLOT_DIRTY; /* what free does before giving back */
            pf_span_give(s, idx);
        }
        cr_assert_eq(s->used, nout);
        check_span(s);
    }
}

Test(span, a_small_span_keeps_its_states_on_one_page_and_its_bits_beside_others)
{
    /* Each span touches its free bits and the states of the slots it has
     * used. A span of up to 2048 slots keeps its states on one page, so it
     * touches one page of them; the bits of neighbouring chunks share
     * pages, instead of each span's bits taking a page of their own after
     * its states. */
    size_t ps = pf_os_page_size();
    struct pf_span *a = pf_span_get(pf_size_class(64));
    struct pf_span *b = pf_span_get(pf_size_class(64));
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    for (struct pf_span *x = a; x; x = x == a ? b : NULL) {
        cr_assert_eq((uintptr_t)x->state % 64, 0, "states start a cache line");
        cr_assert_eq((uintptr_t)x->state / ps, ((uintptr_t)(x->state + x->nslots) - 1) / ps,
                     "the states of %u slots lie on one page", x->nslots);
    }
    uintptr_t lo = (uintptr_t)a->freebits < (uintptr_t)b->freebits ? (uintptr_t)a->freebits
                                                                   : (uintptr_t)b->freebits;
    uintptr_t hi = (uintptr_t)a->freebits ^ (uintptr_t)b->freebits ^ lo;
    cr_assert_leq(hi - lo, ((a->start > b->start ? a->start - b->start : b->start - a->start) / PF_CHUNK) *
                               (PF_MAX_SLOTS / 8),
                  "the bits of chunks side by side are %lu bytes apart", (unsigned long)(hi - lo));
    cr_assert((uintptr_t)a->freebits + PF_MAX_SLOTS / 8 <= (uintptr_t)a->state ||
                  (uintptr_t)a->freebits >= (uintptr_t)(a->state + a->nslots),
              "bits and states do not overlap");
    pf_span_put(a);
    pf_span_put(b);
}

Test(span, spans_of_big_slots_keep_their_states_side_by_side)
{
    /* A chunk of slots of PF_COARSE_SLOT bytes or more has at most
     * PF_COARSE_STATES of them: the states of neighbouring chunks lie in
     * slices of that many entries side by side, four chunks to a page,
     * instead of a page each. */
    struct pf_span *a = pf_span_get(pf_size_class(PF_COARSE_SLOT));
    struct pf_span *b = pf_span_get(pf_size_class(2048));
    struct pf_span *c = pf_span_get(pf_size_class(PF_COARSE_SLOT / 2));
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_not_null(c);
    cr_assert_leq(a->nslots, (uint32_t)a->nchunks * PF_COARSE_STATES);
    cr_assert_eq(a->region, b->region, "two spans made one after the other share a region");
    intptr_t chunks = ((intptr_t)b->start - (intptr_t)a->start) / (intptr_t)PF_CHUNK;
    size_t slice = PF_COARSE_STATES * sizeof(uint16_t);
    for (struct pf_span *x = a; x; x = x == a ? b : NULL)
        cr_assert_eq((uintptr_t)x->state / slice, ((uintptr_t)(x->state + x->nslots) - 1) / slice,
                     "the states of a chunk of %u slots lie in its slice", x->nslots);
    cr_assert_eq((intptr_t)(b->state - a->state) / (intptr_t)PF_COARSE_STATES, chunks,
                 "states %ld bytes apart for chunks %ld apart", (long)((intptr_t)b->state - (intptr_t)a->state),
                 (long)chunks);
    size_t ps = pf_os_page_size();
    cr_assert_eq((uintptr_t)c->state / ps, ((uintptr_t)(c->state + c->nslots) - 1) / ps,
                 "smaller slots keep their states on a page of the chunk's own");
    pf_span_put(a);
    pf_span_put(b);
    pf_span_put(c);
}

Test(span, spans_side_by_side_keep_their_states_on_different_cache_lines)
{
    /* A thread reuses the first slots of each class's span most (its bins
     * are stacks), so their states are what free reads and malloc writes.
     * Each chunk's states start a page; left at the front, every span's
     * first states would share the same sets of a cache. A span of 64-byte
     * slots uses half a page of states, so there is room for 32 lines of
     * offset: spans in chunks fewer than 32 apart start theirs on different
     * lines. */
    enum { N = 12 };
    struct pf_span *sp[N];
    for (int i = 0; i < N; i++) {
        sp[i] = pf_span_get(pf_size_class(64));
        cr_assert_not_null(sp[i]);
    }
    int pairs = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            uintptr_t ci = sp[i]->start / PF_CHUNK, cj = sp[j]->start / PF_CHUNK;
            if ((ci > cj ? ci - cj : cj - ci) >= 32)
                continue;
            pairs++;
            uintptr_t li = (uintptr_t)sp[i]->state % pf_os_page_size() / 64;
            uintptr_t lj = (uintptr_t)sp[j]->state % pf_os_page_size() / 64;
            cr_assert_neq(li, lj, "spans %lu chunks apart start their states on line %lu of a page",
                          (unsigned long)(ci > cj ? ci - cj : cj - ci), (unsigned long)li);
        }
    cr_assert_gt(pairs, 0, "no two of %d spans within 32 chunks of each other", N);
    for (int i = 0; i < N; i++)
        pf_span_put(sp[i]);
}

Test(span, take_and_give_keep_the_invariant_and_never_hand_out_a_slot_twice)
{
    random_traffic(0, 20000);   /* 4096 slots of 16 bytes */
    random_traffic(19, 5000);   /* 64 slots of 1024 bytes */
    random_traffic(PF_NCLASSES - 1, 500); /* 8 slots of 128 KiB */
}

/* The same traffic with slots taken in bunches (what a refill does): each
 * bunch holds distinct slots not out already in descending addresses (free
 * ones below bump last), and a slot's state says whether it was ever handed
 * out. */
static void random_bunches(unsigned cls, int ops)
{
    struct pf_span *s = pf_span_get(cls);
    cr_assert_not_null(s);
    static uint32_t out[PF_MAX_SLOTS];
    static struct pf_cached got[PF_MAX_SLOTS], back[71];
    static unsigned char is_out[PF_MAX_SLOTS], ever[PF_MAX_SLOTS];
    uint32_t nout = 0;
    memset(is_out, 0, sizeof is_out);
    memset(ever, 0, sizeof ever);
    for (int op = 0; op < ops; op++) {
        if (nout == 0 || (nout < s->nslots && next_rand() % 100 < 50)) {
            uint32_t want = 1 + (uint32_t)(next_rand() % 70);
            uint32_t room = s->nslots - nout, nfree = s->nfree, bump = s->bump;
            uint32_t n = pf_span_take_many(s, got, want, NULL);
            cr_assert_eq(n, want < room ? want : room);
            for (uint32_t i = 0; i < n; i++) {
                uint32_t idx = (uint32_t)(got[i].state - s->state);
                cr_assert_lt(idx, s->nslots);
                cr_assert_eq((uintptr_t)got[i].p, s->start + (uintptr_t)idx * s->slot_size,
                             "class %u: slot %u's address", cls, idx);
                cr_assert_not(is_out[idx], "class %u: slot %u handed out twice", cls, idx);
                /* Filled from the end, in descending addresses: a bin pops
                 * from its top, so the mallocs walk up through memory. */
                uint32_t taken = nfree < n ? nfree : n;
                cr_assert_eq(idx < bump, i >= n - taken, "class %u: free slots below bump come last", cls);
                cr_assert(i == 0 || (uintptr_t)got[i].p < (uintptr_t)got[i - 1].p,
                          "class %u: slot %u of a bunch is above the one before it", cls, i);
                cr_assert_eq(s->state[idx], ever[idx] ? PF_SLOT_DIRTY : PF_SLOT_CLEAN,
                             "class %u: slot %u state %u, used before=%d", cls, idx, s->state[idx], ever[idx]);
                is_out[idx] = ever[idx] = 1;
                out[nout++] = idx;
            }
        } else {
            /* Back one at a time or, every other time, as one batch. */
            int many = next_rand() % 2;
            uint32_t nback = 0;
            for (uint32_t g = 1 + (uint32_t)(next_rand() % 70); g && nout; g--) {
                uint32_t k = (uint32_t)(next_rand() % nout);
                uint32_t idx = out[k];
                out[k] = out[--nout];
                is_out[idx] = 0;
                s->state[idx] = PF_SLOT_DIRTY;
                if (many)
                    back[nback++] = (struct pf_cached){(void *)(s->start + (uintptr_t)idx * s->slot_size),
                                                       &s->state[idx]};
                else
                    pf_span_give(s, idx);
            }
            if (many) {
                /* A slot of another span ends the run. */
                static uint16_t other_state;
                back[nback] = (struct pf_cached){&other_state, &other_state};
                cr_assert_eq(pf_span_give_run(s, back, nback + 1), nback);
            }
        }
        cr_assert_eq(s->used, nout);
        check_span(s);
    }
}

Test(span, taking_slots_in_bunches_keeps_the_invariant_and_never_hands_out_a_slot_twice)
{
    random_bunches(0, 5000);
    random_bunches(19, 2000);
    random_bunches(PF_NCLASSES - 1, 300);
}

Test(span, fresh_span_slots_read_as_zero)
{
    unsigned cls[] = {0, 7, 19, 30, PF_NCLASSES - 1};
    for (unsigned i = 0; i < sizeof cls / sizeof cls[0]; i++) {
        struct pf_span *s = pf_span_get(cls[i]);
        cr_assert_not_null(s);
        for (uint32_t k = 0; k < s->nslots; k++) {
            int clean = 0;
            void *p = pf_span_take(s, &clean);
            cr_assert(clean, "class %u slot %u not clean", cls[i], k);
            cr_assert_eq(s->state[k], PF_SLOT_CLEAN);
            cr_assert(all_zero(p, s->slot_size), "class %u slot %u not zero", cls[i], k);
        }
    }
}

/* Empties s (slots 0..n-1 out, written) and puts it in the pool. */
static void dirty_and_put(struct pf_span *s, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        int clean;
        void *p = pf_span_take(s, &clean);
        memset(p, 0xAB, s->slot_size);
    }
    for (uint32_t k = 0; k < n; k++) {
        s->state[k] = PF_SLOT_DIRTY;
        pf_span_give(s, k);
    }
    cr_assert_eq(s->used, 0);
    pf_span_put(s);
}

/* Where take_batch puts the slots it takes. */
static struct pf_cached batch_got[256];

/* A fresh span of class cls. batch_got is written first, so that its
 * page is resident before any take whose faults are counted. */
static struct pf_span *fresh_span(unsigned cls)
{
    memset(batch_got, 0, sizeof batch_got);
    struct pf_span *s = pf_span_get(cls);
    cr_assert_not_null(s);
    cr_assert(s->fresh);
    return s;
}

/* Takes up to `batch` (at most 256) slots out of s, what they name to
 * make resident into *a. Returns how many (at least one). */
static uint32_t take_batch(struct pf_span *s, uint32_t batch, struct pf_ahead *a)
{
    struct pf_cached *got = batch_got;
    cr_assert_leq(batch, 256);
    memset(a, 0, sizeof *a);
    uint32_t n = pf_span_take_many(s, got, batch, a);
    cr_assert_gt(n, 0);
    return n;
}

/* Takes batches of `batch` slots out of a fresh span of class cls until
 * it is used up. Each take names pages of slots to make resident: the
 * first take the first slot's only, later ones those of their own slots,
 * never a page twice nor one past the span. A range of two pages or more
 * is resident once made so, a range of one page is not (it is left to
 * fault: pf_os_populate); the same for the pages of states the take
 * writes. Taking them and writing every slot on the pages named takes a
 * fault for each such single page at most (where perf events count
 * them): none where every range was longer. */
static void ahead_batches(unsigned cls, uint32_t batch, int fd)
{
    size_t ps = pf_os_page_size();
    struct pf_span *s = fresh_span(cls);
    cr_assert_gt(s->nslots, PF_FEW_SLOTS);
    uintptr_t slot = s->slot_size;
    uintptr_t end = s->start + (((uintptr_t)s->nslots * slot + ps - 1) & ~(uintptr_t)(ps - 1));
    uintptr_t named = s->start; /* pages named so far: [start, named) */
    uint32_t written = 0;       /* slots written so far: [0, written) */
    while (s->bump < s->nslots) {
        uint32_t b = s->bump;
        uint32_t want = batch < s->nslots - b ? batch : s->nslots - b;
        uintptr_t sfrom = (uintptr_t)&s->state[b] & ~(uintptr_t)(ps - 1);
        uintptr_t sto = ((uintptr_t)&s->state[b + want - 1] & ~(uintptr_t)(ps - 1)) + ps;
        int absent = 0; /* pages of the states to write that are not resident */
        for (uintptr_t p = sfrom; p < sto; p += ps)
            absent += !page_resident((void *)p);
        uint64_t allowed = absent == 1; /* faults the take and the writes may take */
        struct pf_ahead a;
        uint64_t f0 = faults(fd);
        uint32_t n = take_batch(s, batch, &a);
        cr_assert_eq(n, want);
        uintptr_t hi = s->start + (uintptr_t)(b + n) * slot; /* the end of the slots taken */
        if (hi <= named) {
            cr_assert_eq(a.n, 0, "class %u, slots from %u: their pages were named before", cls, b);
        } else {
            cr_assert_eq(a.n, 1, "class %u, slots from %u", cls, b);
            cr_assert_eq(a.r[0].from, named, "class %u, slots from %u: no page named twice", cls, b);
            uintptr_t to = a.r[0].to;
            cr_assert_eq(to % ps, 0);
            cr_assert_leq(to, end, "class %u: a page past the span's slots", cls);
            if (b == 0) {
                cr_assert_eq(to, s->start + ps, "class %u: the first take names the first page only", cls);
            } else {
                cr_assert_eq(to, (hi + ps - 1) & ~(uintptr_t)(ps - 1),
                             "class %u, slots from %u: the pages of the slots taken", cls, b);
            }
            for (uintptr_t p = named; p < to; p += ps)
                cr_assert_not(page_resident((void *)p), "class %u: page %lu resident before it was named", cls,
                              (unsigned long)((p - s->start) / ps));
            pf_span_ahead_apply(&a);
            int single = to - named == ps;
            for (uintptr_t p = named; p < to; p += ps)
                cr_assert_eq(page_resident((void *)p), !single, "class %u, slots from %u: page %lu of a range of %lu",
                             cls, b, (unsigned long)((p - s->start) / ps), (unsigned long)((to - named) / ps));
            allowed += (uint64_t)single;
            if (to < end)
                cr_assert_not(page_resident((void *)to), "class %u: a page past the named ones resident", cls);
            named = to;
        }
        /* Every slot wholly on a named page written, as a program would. */
        for (; written < s->nslots && s->start + (uintptr_t)(written + 1) * slot <= named && written < b + n;
             written++)
            memset((void *)(s->start + (uintptr_t)written * slot), 0x5A, slot);
        uint64_t taken = faults(fd) - f0;
        cr_assert_leq(taken, allowed, "class %u, slots from %u: %llu faults", cls, b, (unsigned long long)taken);
    }
    cr_assert_eq(named, end, "class %u: the pages of a span used up were all named", cls);
    for (uint32_t k = 0; k < s->nslots; k++)
        cr_assert_eq(s->state[k], PF_SLOT_CLEAN, "class %u slot %u", cls, k);
}

Test(span, takes_of_fresh_small_slots_name_the_pages_they_are_about_to_touch)
{
    /* A refill of fresh slots makes their pages, and their states',
     * resident in one call each instead of a fault each page (two pages
     * or more: one is left to fault). */
    int fd = fault_counter();
    if (fd < 0)
        cr_log_warn("perf events not allowed (%s): pages checked, faults not counted", strerror(errno));
    ahead_batches(pf_size_class(16), 64, fd);
    ahead_batches(pf_size_class(48), 32, fd);
    ahead_batches(pf_size_class(1000), 8, fd);
    ahead_batches(pf_size_class(PF_AHEAD_SLOT_MAX), 1, fd);
    if (fd >= 0)
        close(fd);
}

/* Takes batches of `batch` slots of class cls (above PF_AHEAD_SLOT_MAX)
 * out of a fresh span until it is used up. Each take names the page each
 * of its slots starts on, no other: pages a take names after one another
 * in one range, never a page named before. The pages of a range of two or
 * more are resident once made so, the page of a range of one is not (it
 * is left to fault: pf_os_populate), the next page of a slot longer than a
 * page is not, and writing the first bytes of every slot takes a fault for
 * each range of one page, no other (where perf events count them). */
static void ahead_starts(unsigned cls, uint32_t batch, int fd)
{
    size_t ps = pf_os_page_size();
    uintptr_t mask = ~(uintptr_t)(ps - 1);
    struct pf_span *s = fresh_span(cls);
    uintptr_t slot = s->slot_size;
    cr_assert_gt(slot, PF_AHEAD_SLOT_MAX);
    uintptr_t named = s->start; /* past the last page named so far */
    while (s->bump < s->nslots) {
        uint32_t b = s->bump;
        struct pf_ahead a;
        uint32_t n = take_batch(s, batch, &a);
        /* The pages the slots start on, not named before, in ranges. */
        struct pf_ahead want = {0};
        for (uint32_t i = b; i < b + n; i++) {
            uintptr_t from = (s->start + i * slot) & mask;
            if (from < named)
                continue;
            if (want.n && want.r[want.n - 1].to == from)
                want.r[want.n - 1].to = from + ps;
            else if (want.n < PF_AHEAD_RANGES) {
                want.r[want.n].from = from;
                want.r[want.n].to = from + ps;
                want.n++;
            } else
                break;
            named = from + ps;
        }
        cr_assert_eq(a.n, want.n, "class %u, slots from %u: %d ranges, %d wanted", cls, b, a.n, want.n);
        for (int r = 0; r < a.n; r++) {
            cr_assert_eq(a.r[r].from, want.r[r].from, "class %u, slots from %u, range %d", cls, b, r);
            cr_assert_eq(a.r[r].to, want.r[r].to, "class %u, slots from %u, range %d", cls, b, r);
            for (uintptr_t p = a.r[r].from; p < a.r[r].to; p += ps)
                cr_assert_not(page_resident((void *)p), "class %u: a page resident before it was named", cls);
        }
        pf_span_ahead_apply(&a);
        uint64_t singles = 0;
        for (int r = 0; r < a.n; r++) {
            int single = a.r[r].to - a.r[r].from == ps;
            singles += (uint64_t)single;
            for (uintptr_t p = a.r[r].from; p < a.r[r].to; p += ps)
                cr_assert_eq(page_resident((void *)p), !single, "class %u, slots from %u, range %d", cls, b, r);
        }
        uint64_t f0 = faults(fd);
        for (uint32_t i = b; i < b + n; i++) {
            unsigned char *p = (unsigned char *)(s->start + i * slot);
            if (((uintptr_t)p & mask) >= named)
                continue; /* past what the take could name */
            if (slot > ps && (((uintptr_t)p + ps) & mask) < (s->start + (i + 1) * slot))
                cr_assert_not(page_resident(p + ps), "class %u slot %u: its second page resident", cls, i);
            memset(p, 0x5A, 64);
        }
        uint64_t taken = faults(fd) - f0;
        if (fd >= 0)
            cr_assert_eq(taken, singles, "class %u, slots from %u: %llu faults, %llu pages left to fault", cls, b,
                         (unsigned long long)taken, (unsigned long long)singles);
    }
    cr_assert_geq(named, ((s->start + (uintptr_t)(s->nslots - 1) * slot) & mask) + ps,
                  "class %u: the page of the span's last slot was named", cls);
}

Test(span, takes_of_fresh_big_slots_name_the_page_each_starts_on)
{
    /* A program writes the start of a block it is handed (a header, the
     * first bytes of a buffer), not necessarily the rest: the pages slots
     * start on are made resident in one call per range of two or more
     * instead of a fault each, the others left to fault. */
    int fd = fault_counter();
    if (fd < 0)
        cr_log_warn("perf events not allowed (%s): pages checked, faults not counted", strerror(errno));
    ahead_starts(pf_size_class(PF_AHEAD_SLOT_MAX + 1), 8, fd); /* a page holds several: one range */
    ahead_starts(pf_size_class(3000), 5, fd);                  /* starts on every page */
    ahead_starts(pf_size_class(8192), 2, fd);                  /* every other page */
    ahead_starts(pf_size_class(20000), 6, fd);                 /* more slots than ranges */
    ahead_starts(pf_size_class(100000), 1, fd);
    if (fd >= 0)
        close(fd);
}

Test(span, takes_name_no_page_of_a_span_that_is_not_fresh)
{
    struct pf_ahead a = {0};
    struct pf_cached got[8];
    /* A pooled span whose pages stayed resident. */
    unsigned cls = pf_size_class(64);
    struct pf_span *s = pf_span_get(cls);
    uintptr_t start = s->start;
    dirty_and_put(s, 10);
    struct pf_span *t = pf_span_get(cls);
    cr_assert_eq(t->start, start);
    cr_assert_not(t->fresh);
    cr_assert_eq(pf_span_take_many(t, got, 8, &a), 8);
    cr_assert_eq(pf_span_take_many(t, got, 8, &a), 8);
    cr_assert_eq(a.n, 0);
}

Test(span, put_then_get_reuses_the_span_and_does_not_claim_it_clean)
{
    struct pf_span *s = pf_span_get(5);
    uintptr_t start = s->start;
    size_t bytes = s->bytes;
    cr_assert_eq(pf_span_cached_bytes(), 0);
    dirty_and_put(s, 10);
    cr_assert_eq(pf_span_cached_bytes(), bytes);
    uint64_t maps = counts().mmap_calls;
    struct pf_span *t = pf_span_get(5);
    cr_assert_eq(t->start, start, "the pooled span is reused");
    cr_assert_eq(counts().mmap_calls, maps, "no new mapping for a pooled span");
    cr_assert_eq(pf_span_cached_bytes(), 0);
    cr_assert_eq(t->used, 0);
    cr_assert_eq(t->bump, 0);
    cr_assert_eq(t->nfree, 0);
    check_span(t);
    cr_assert_not(t->fresh, "a pooled span with resident pages is not fresh");
    for (uint32_t k = 0; k < 10; k++) {
        int clean = 1;
        void *p = pf_span_take(t, &clean);
        cr_assert_not(clean, "slot %u was written before; it must not be called clean", k);
        cr_assert_eq(((unsigned char *)p)[0], 0xAB, "pages stay resident while pooled");
    }
}

Test(span, decommitted_pooled_span_is_fresh_again)
{
    struct pf_span *keep = pf_span_get(0); /* holds the region */
    int clean;
    pf_span_take(keep, &clean);
    struct pf_span *s = pf_span_get(3);
    uintptr_t start = s->start;
    dirty_and_put(s, 50);
    uint64_t madv = counts().madvise_calls;
    size_t released = pf_span_trim();
    cr_assert_geq(released, s->bytes);
    cr_assert_gt(counts().madvise_calls, madv);
    cr_assert_eq(pf_span_cached_bytes(), 0);
    cr_assert_eq(pf_pagemap_get((void *)keep->start), keep, "a region in use stays mapped");
    struct pf_span *t = pf_span_get(3);
    cr_assert_eq(t->start, start);
    cr_assert(t->fresh);
    for (uint32_t k = 0; k < t->nslots; k++) {
        void *p = pf_span_take(t, &clean);
        cr_assert(clean);
        cr_assert(all_zero(p, t->slot_size), "slot %u of a decommitted span is not zero", k);
    }
}

Test(span, pool_splits_a_bigger_span_and_maps_the_rest)
{
    unsigned big = PF_NCLASSES - 1;
    size_t big_chunks = pf_class_span_bytes(big) / PF_CHUNK;
    cr_assert_gt(big_chunks, 1);
    struct pf_span *s = pf_span_get(big);
    uintptr_t start = s->start;
    dirty_and_put(s, 1);
    uint64_t maps = counts().mmap_calls;
    struct pf_span *t = pf_span_get(0); /* one chunk, split off the pooled run */
    cr_assert_eq(counts().mmap_calls, maps);
    cr_assert_eq(t->start, start);
    cr_assert_eq(t->bytes, PF_CHUNK);
    cr_assert_eq(t->nslots, PF_CHUNK / 16);
    cr_assert_eq(pf_pagemap_get((void *)t->start), t);
    struct pf_span *rest = pf_pagemap_get((void *)(start + PF_CHUNK));
    cr_assert_not_null(rest);
    cr_assert_neq(rest, t);
    cr_assert_eq(rest->kind, PF_SPAN_FREE);
    cr_assert_eq(rest->start, start + PF_CHUNK);
    cr_assert_eq(rest->bytes, (big_chunks - 1) * PF_CHUNK);
    cr_assert_eq(pf_pagemap_get((void *)(start + big_chunks * PF_CHUNK - 1)), rest);
    cr_assert_eq(pf_span_cached_bytes(), rest->bytes);
    /* The tail serves the next request of its size. */
    struct pf_span *u = pf_span_get(0);
    cr_assert_eq(u->start, start + PF_CHUNK);
    struct pf_span *tail = pf_pagemap_get((void *)(start + 2 * PF_CHUNK));
    cr_assert_eq(tail->kind, PF_SPAN_FREE);
    cr_assert_eq(pf_pagemap_get((void *)(start + big_chunks * PF_CHUNK - 1)), tail);
    check_span(t);
    check_span(u);
}

Test(span, pool_keeps_the_cache_limit_resident_and_more_for_a_while, .timeout = 30)
{
    struct pf_span *keep = pf_span_get(0);
    int clean;
    pf_span_take(keep, &clean);
    struct pf_span *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = pf_span_get(1); /* one chunk each */
    pf_span_set_cache_limit(2 * PF_CHUNK);
    uint64_t madv = counts().madvise_calls;
    dirty_and_put(s[0], 4);
    dirty_and_put(s[1], 4);
    dirty_and_put(s[2], 4);
    cr_assert_eq(pf_span_cached_bytes(), 3 * PF_CHUNK, "beyond the limit, spans stay warm a while");
    cr_assert_eq(counts().madvise_calls, madv, "nothing is given back at once");
    pf_span_tick();
    cr_assert_eq(pf_span_cached_bytes(), 3 * PF_CHUNK, "nor by a tick before they decay");
    sleep(PF_POOL_DECAY_SECONDS + 1);
    pf_span_tick();
    cr_assert_eq(pf_span_cached_bytes(), 2 * PF_CHUNK, "decayed: back to the limit");
    cr_assert_eq(counts().madvise_calls, madv + 1);
    /* The decayed span reads as zero when it comes back. */
    struct pf_span *back = NULL;
    for (int i = 0; i < 3 && !(back && back->fresh); i++)
        back = pf_span_get(1);
    cr_assert(back->fresh, "one of the three pooled spans was decommitted");

    pf_span_set_cache_limit(0);
    struct pf_span *t = pf_span_get(2);
    dirty_and_put(t, 4);
    cr_assert_eq(pf_span_cached_bytes(), 0, "limit 0 keeps nothing resident");
    /* Every pooled span is now decommitted: the next ones are fresh. */
    for (int i = 0; i < 4; i++) {
        struct pf_span *f = pf_span_get(0);
        cr_assert(f->fresh, "span %d", i);
        void *p = pf_span_take(f, &clean);
        cr_assert(clean);
        cr_assert(all_zero(p, 16));
    }
}

/* The first class whose spans are n chunks. */
static unsigned class_of_chunks(size_t n)
{
    unsigned c = 0;
    while (c < PF_NCLASSES && pf_class_span_bytes(c) != n * PF_CHUNK)
        c++;
    cr_assert_lt(c, PF_NCLASSES, "no class of %zu chunks", n);
    return c;
}

/* A span of two chunks of a class whose one slot needs both: no warm span
 * of one chunk serves it (pool_take), so it is two pooled neighbours
 * joined or fresh pages. */
static struct pf_span *get_two_wide(void)
{
    unsigned cls = pf_size_class(PF_CHUNK + 1);
    cr_assert_gt(pf_class_size[cls], PF_CHUNK);
    cr_assert_leq(pf_class_size[cls], 2 * PF_CHUNK);
    return pf_span_get_sized(cls, 2 * PF_CHUNK);
}

/* Three warm one-chunk spans in the pool, each followed by a span in use
 * (no two pooled spans are neighbours, so none can be joined), after a
 * span that holds the region; `dirty` slots of each were written. */
static void pooled_apart(struct pf_span **s, uint32_t dirty)
{
    int clean;
    pf_span_take(pf_span_get(0), &clean);
    for (int i = 0; i < 3; i++) {
        s[i] = pf_span_get(1); /* one chunk each */
        pf_span_take(pf_span_get(1), &clean);
    }
    for (int i = 0; i < 3; i++)
        dirty_and_put(s[i], dirty);
    cr_assert_eq(pf_span_cached_bytes(), 3 * PF_CHUNK);
}

Test(span, a_fresh_span_makes_the_warm_excess_go_at_once)
{
    struct pf_span *s[3];
    pf_span_set_cache_limit(PF_CHUNK);
    pooled_apart(s, 4);
    uint64_t madv = counts().madvise_calls;
    /* No warm span of two chunks, nor two warm neighbours: this one is
     * faulted in anew, so the warm one-chunk spans beyond the limit give
     * their pages back now. */
    struct pf_span *t = get_two_wide();
    cr_assert(t->fresh);
    cr_assert_eq(pf_span_cached_bytes(), PF_CHUNK);
    cr_assert_eq(counts().madvise_calls, madv + 2);
    /* A request the warm pool serves leaves it alone. */
    struct pf_span *u = pf_span_get(1);
    cr_assert_not(u->fresh);
    cr_assert_eq(pf_span_cached_bytes(), 0);
    cr_assert_eq(counts().madvise_calls, madv + 2);
}

/* Spans of the given chunk counts side by side, in that order (retried
 * until the pool and the regions give them so; the misses stay in use). */
static void spans_side_by_side(struct pf_span **s, const uint32_t *chunks, int n)
{
    for (int i = 0, tries = 0; i < n; tries++) {
        cr_assert_lt(tries, 64, "no spans of the chunk counts asked side by side");
        struct pf_span *t = pf_span_get(class_of_chunks(chunks[i]));
        if (i == 0 || t->start == s[i - 1]->start + s[i - 1]->bytes) {
            s[i++] = t;
        } else if (chunks[i] == chunks[0]) {
            s[0] = t; /* t can be the first */
            i = 1;
        } else {
            i = 0; /* from the first again, after t */
        }
    }
}

/* n one-chunk spans side by side, after a span kept in use (it holds the
 * region). A run that reaches the end of a region is left in use and
 * started again in the next (each region is bigger than the last). */
static void neighbours(struct pf_span **s, int n)
{
    static const uint32_t ones[] = {1, 1, 1, 1, 1, 1, 1, 1};
    cr_assert_leq(n, (int)(sizeof ones / sizeof ones[0]));
    int clean;
    pf_span_take(pf_span_get(0), &clean);
    spans_side_by_side(s, ones, n);
}

/* Four pooled one-chunk spans side by side serve a request for four chunks:
 * joined, their resident pages reused (no mapping, no fault, not claimed
 * zero), the pagemap naming the new span in every chunk. */
Test(span, pool_joins_neighbouring_spans_for_a_bigger_class)
{
    unsigned four = class_of_chunks(4);
    struct pf_span *s[5];
    neighbours(s, 5);
    uintptr_t start = s[0]->start;
    for (int i = 0; i < 4; i++)
        dirty_and_put(s[i], 3);
    cr_assert_eq(pf_span_cached_bytes(), 4 * PF_CHUNK);
    uint64_t maps = counts().mmap_calls;
    struct pf_span *t = pf_span_get(four);
    cr_assert_eq(t->start, start, "the four pooled neighbours are joined");
    cr_assert_eq(t->bytes, 4 * PF_CHUNK);
    cr_assert_eq(counts().mmap_calls, maps);
    cr_assert_eq(pf_span_cached_bytes(), 0);
    cr_assert_not(t->fresh, "resident pages are not claimed zero");
    for (int c = 0; c < 4; c++)
        cr_assert_eq(pf_pagemap_get((void *)(start + (uintptr_t)c * PF_CHUNK + 100)), t, "chunk %d", c);
    cr_assert_eq(pf_pagemap_get((void *)s[4]->start), s[4], "the span in use after them is untouched");
    check_span(t);
    for (uint32_t k = 0; k < t->nslots; k++) {
        int clean = 1;
        void *p = pf_span_take(t, &clean);
        cr_assert_not(clean, "slot %u", k);
        memset(p, 0xCD, t->slot_size); /* every page of the run is writable */
    }
    /* Back in the pool whole, it serves one chunk again (split). */
    for (uint32_t k = 0; k < t->nslots; k++)
        pf_span_give(t, k);
    pf_span_put(t);
    struct pf_span *u = pf_span_get(1);
    cr_assert_eq(u->start, start);
    cr_assert_eq(pf_span_cached_bytes(), 3 * PF_CHUNK);
}

/* Only spans pooled alike are joined, and only neighbours: a span in use
 * between two pooled ones, or a cold one beside a warm one, keeps them
 * apart, and the request takes fresh pages. Two cold neighbours are joined
 * and read as zero. */
Test(span, pool_joins_only_pooled_neighbours_alike)
{
    struct pf_span *s[5];
    neighbours(s, 5);
    uintptr_t start = s[0]->start, end = s[4]->start + PF_CHUNK;
    dirty_and_put(s[0], 2); /* s[1] stays in use */
    dirty_and_put(s[2], 2);
    cr_assert_geq(pf_span_trim(), 2 * PF_CHUNK); /* both cold now */
    dirty_and_put(s[3], 2);                      /* warm, beside the cold s[2] */
    struct pf_span *t = get_two_wide();
    cr_assert(t->start >= end, "joined across a span in use or warm with cold: %#lx", (unsigned long)t->start);
    cr_assert(t->fresh);
    cr_assert_eq(pf_pagemap_get((void *)s[3]->start), s[3]);
    cr_assert_eq(s[3]->kind, PF_SPAN_FREE);
    /* s[3] goes cold too: s[2] and s[3] are joined, and read as zero. */
    cr_assert_geq(pf_span_trim(), PF_CHUNK);
    struct pf_span *u = get_two_wide();
    cr_assert_eq(u->start, start + 2 * PF_CHUNK);
    cr_assert(u->fresh);
    int clean;
    for (uint32_t k = 0; k < u->nslots; k++) {
        void *p = pf_span_take(u, &clean);
        cr_assert(clean);
        cr_assert(all_zero(p, u->slot_size), "slot %u", k);
    }
}

/* A class whose slots fit in one chunk, asked for a span of two when the
 * pool holds warm one-chunk spans but no two of them side by side, takes
 * one of them, its pages resident, instead of fresh pages: the span is
 * smaller than its class's spans usually are, and whole. (Before, the warm
 * spans stayed in the pool and the request faulted in two fresh chunks.)
 * A class whose one slot needs two chunks takes fresh pages. */
Test(span, a_warm_span_too_short_for_the_class_serves_before_fresh_pages)
{
    unsigned two = class_of_chunks(2);
    cr_assert_leq(pf_class_size[two], PF_CHUNK);
    struct pf_span *s[3];
    pooled_apart(s, 2);
    uint64_t maps = counts().mmap_calls;
    struct pf_span *t = pf_span_get(two);
    cr_assert(t == s[0] || t == s[1] || t == s[2], "a warm one-chunk span, not fresh pages at %#lx",
              (unsigned long)t->start);
    cr_assert_not(t->fresh, "resident pages are not claimed zero");
    cr_assert_eq(t->bytes, PF_CHUNK);
    cr_assert_eq(t->nslots, PF_CHUNK / pf_class_size[two]);
    cr_assert_eq(t->slot_size, pf_class_size[two]);
    cr_assert_eq(pf_pagemap_get((void *)(t->start + PF_CHUNK - 1)), t);
    cr_assert_eq(pf_span_cached_bytes(), 2 * PF_CHUNK);
    cr_assert_eq(counts().mmap_calls, maps);
    check_span(t);
    for (uint32_t k = 0; k < t->nslots; k++) {
        int clean;
        void *p = pf_span_take(t, &clean);
        cr_assert_not(clean, "slot %u", k);
        memset(p, 0xCE, t->slot_size); /* every slot lies within the chunk */
    }
    cr_assert_eq(t->used, t->nslots);
    /* A class whose one slot needs two chunks is not served by one. */
    struct pf_span *u = get_two_wide();
    cr_assert(u->fresh, "a span of two chunks, not a warm one of one, at %#lx", (unsigned long)u->start);
    cr_assert_eq(u->bytes, 2 * PF_CHUNK);
    cr_assert_eq(pf_span_cached_bytes(), 2 * PF_CHUNK, "the warm spans stay pooled");
}

/* A shorter warm span that serves, like fresh pages, makes the warm spans
 * beyond PFALLOC_CACHE give their pages back at once: it keeps the pages
 * its last class wrote, which its new slots may never touch, and the pool
 * would hold the rest of them besides until their decay. */
Test(span, a_shorter_warm_span_makes_the_warm_excess_go_at_once)
{
    struct pf_span *s[3];
    pf_span_set_cache_limit(PF_CHUNK);
    pooled_apart(s, 4);
    uint64_t madv = counts().madvise_calls;
    struct pf_span *t = pf_span_get(class_of_chunks(2));
    cr_assert(t == s[0] || t == s[1] || t == s[2], "a warm one-chunk span serves");
    cr_assert_eq(pf_span_cached_bytes(), PF_CHUNK, "the warm excess beyond the limit went");
    cr_assert_eq(counts().madvise_calls, madv + 1);
}

/* Runs are joined from their first span, whatever order the pool lists
 * them in: five pooled neighbours serve two chunks, then three, with no
 * fresh pages (joined from the middle, they would leave two and one). */
Test(span, pool_joins_a_run_from_its_start)
{
    unsigned three = class_of_chunks(3);
    struct pf_span *s[6];
    neighbours(s, 6); /* s[5] stays in use: the run ends there */
    uintptr_t start = s[0]->start;
    static const int order[] = {0, 1, 3, 4, 2}; /* the middle one listed first */
    for (int i = 0; i < 5; i++)
        dirty_and_put(s[order[i]], 1);
    struct pf_span *a = get_two_wide();
    cr_assert_eq(a->start, start);
    struct pf_span *b = pf_span_get(three);
    cr_assert_eq(b->start, start + 2 * PF_CHUNK);
    cr_assert_not(b->fresh);
    cr_assert_eq(pf_span_cached_bytes(), 0);
}

/* A run of pooled spans longer than a span may be still serves one: 9 + 8
 * + 8 chunks pooled side by side serve 16 with the last two (from the run's
 * first span alone, 9 + 8 is too long and 9 too short, so the request took
 * fresh pages). */
Test(span, pool_joins_the_part_of_a_run_that_fits_a_span)
{
    static const uint32_t chunks[] = {9, 8, 8};
    struct pf_span *s[3];
    spans_side_by_side(s, chunks, 3);
    int clean;
    pf_span_take(pf_span_get(class_of_chunks(1)), &clean); /* the region's next span: in use */
    uintptr_t nine = s[0]->start, eights = s[1]->start;
    for (int i = 0; i < 3; i++)
        dirty_and_put(s[i], 1);
    struct pf_span *t = pf_span_get(class_of_chunks(16));
    cr_assert_eq(t->start, eights, "16 chunks at %#lx, not the two pooled spans of 8 at %#lx",
                 (unsigned long)t->start, (unsigned long)eights);
    cr_assert_eq(t->bytes, 16 * PF_CHUNK);
    cr_assert_not(t->fresh);
    check_span(t);
    cr_assert_eq(pf_pagemap_get((void *)nine), s[0], "the span of 9 stays pooled as it was");
    cr_assert_eq(s[0]->kind, PF_SPAN_FREE);
    cr_assert_eq(pf_span_cached_bytes(), 9 * PF_CHUNK);
}

/* A join that found nothing is not looked for again until a span is
 * pooled: a pool of many one-chunk spans, each between two in use, costs
 * its walk once, not on every request for two chunks that follows; and
 * once two pooled spans are neighbours, the next request joins them. */
Test(span, a_failed_join_is_looked_for_again_only_after_a_span_is_pooled)
{
    enum { K = 40 };
    unsigned one = class_of_chunks(1);
    struct pf_span *pooled[K], *busy[K];
    int clean;
    for (int i = 0; i < K; i++) {
        pooled[i] = pf_span_get(one);
        busy[i] = pf_span_get(one);
        pf_span_take(busy[i], &clean);
    }
    for (int i = 0; i < K; i++)
        dirty_and_put(pooled[i], 1);
    uint64_t before = pf_span_join_looks();
    struct pf_span *t = get_two_wide();
    cr_assert(t->fresh, "no two pooled spans are neighbours");
    cr_assert_geq(pf_span_join_looks() - before, K, "the first request looks at every pooled span");
    int checked = 0;
    for (int i = 0; i < 8; i++) {
        before = pf_span_join_looks();
        struct pf_span *u = get_two_wide();
        cr_assert(u->fresh);
        /* Carved right after t: no new region, so nothing was pooled. */
        if (u->region == t->region && u->start == t->start + t->bytes) {
            cr_assert_eq(pf_span_join_looks(), before, "request %d walked the pool again", i);
            checked++;
        }
        t = u;
    }
    cr_assert_gt(checked, 0, "every request needed a new region");
    /* A busy span goes back right after its pooled neighbour: the two are
     * neighbours, warm alike. */
    int next = -1;
    for (int i = 0; i < K && next < 0; i++)
        if (busy[i]->start == pooled[i]->start + PF_CHUNK)
            next = i;
    cr_assert_geq(next, 0);
    uintptr_t start = pooled[next]->start;
    pf_span_give(busy[next], 0);
    pf_span_put(busy[next]);
    struct pf_span *j = get_two_wide();
    cr_assert_eq(j->start, start, "the new neighbours are joined");
    cr_assert_not(j->fresh);
}

/* A span of few slots (a class of 13 chunks holds 8) keeps their free bits
 * and states in its own struct: spans of many chunks fault in no page of
 * the region's bits and states, which are laid out by chunk. 64 of them,
 * every slot handed out: less than a page of metadata each (it was about
 * three: a page of bits, one of states, and half a page of span structs). */
Test(span, spans_of_few_slots_fault_in_no_page_of_bits_or_states)
{
    unsigned cls = class_of_chunks(13);
    int clean;
    struct pf_span *first = pf_span_get(cls);
    cr_assert_leq(first->nslots, PF_FEW_SLOTS);
    uint64_t all, before, after;
    pf_os_resident(&all, &before);
    for (int i = 0; i < 64; i++) {
        struct pf_span *s = pf_span_get(cls);
        cr_assert_not_null(s);
        for (uint32_t k = 0; k < s->nslots; k++)
            cr_assert_not_null(pf_span_take(s, &clean));
        check_span(s);
    }
    pf_os_resident(&all, &after);
    cr_assert_lt(after - before, (uint64_t)64 * 4096, "%llu bytes of metadata resident for 64 spans",
                 (unsigned long long)(after - before));
}

Test(span, trim_unmaps_regions_with_nothing_in_use)
{
    struct pf_span *s = pf_span_get(4);
    uintptr_t start = s->start;
    dirty_and_put(s, 3);
    struct pf_os_counts before = counts();
    size_t released = pf_span_trim();
    struct pf_os_counts after = counts();
    cr_assert_geq(released, PF_REGION_MIN_CHUNKS * PF_CHUNK);
    cr_assert_geq(before.mapped_bytes - after.mapped_bytes, PF_REGION_MIN_CHUNKS * PF_CHUNK,
                  "mapped bytes dropped by %lu",
                  (unsigned long)(before.mapped_bytes - after.mapped_bytes));
    cr_assert_gt(after.munmap_calls, before.munmap_calls);
    cr_assert_null(pf_pagemap_get((void *)start), "the region's chunks leave the pagemap");
    cr_assert_eq(pf_span_cached_bytes(), 0);
    /* Nothing more to give back. */
    cr_assert_eq(pf_span_trim(), 0);
    cr_assert_eq(counts().mapped_bytes, after.mapped_bytes);
    /* And spans can still be had afterwards. */
    struct pf_span *t = pf_span_get(4);
    cr_assert_not_null(t);
    cr_assert(t->fresh);
    cr_assert_eq(pf_pagemap_get((void *)t->start), t);
}

/* ---- trim racing with decommits in other threads ----------------------------- */

/* Workers fill whole regions with objects of several classes through
 * pf_malloc, free them all and trim, as a program calling malloc_trim after
 * each phase does. With the cache limit at 0 every span that empties is
 * decommitted as it goes back to the pool, the pool lock dropped around the
 * madvise, and the last span of a region to go back leaves the region with
 * nothing else in use. Meanwhile another thread trims in a loop, unmapping
 * every region with nothing in use: a region must not go while one of its
 * spans is being decommitted (the span would then be pooled from unmapped
 * metadata, and its pages handed out from a region that is gone). */
enum { TRIM_WORKERS = 2, TRIM_RUN_MS = 2000, TRIM_MAX_OBJS = 64 * 1024 };

/* Sizes of several classes, one-, two- and three-chunk spans among them;
 * each gets about 2 MiB a round, so a worker's round covers 12 MiB. */
static const size_t trim_sizes[] = {48, 256, 1000, 3000, 12000, 20000};
#define TRIM_NSIZES (sizeof trim_sizes / sizeof trim_sizes[0])
#define TRIM_BYTES_PER_SIZE ((size_t)2 << 20)

struct trim_worker {
    pthread_t tid;
    unsigned id;
    uint64_t rounds;
    uint64_t allocs, frees;
    uint64_t damaged; /* objects whose tags changed while live */
    uint64_t failed;  /* NULL returns */
    void *obj[TRIM_MAX_OBJS];
    size_t size[TRIM_MAX_OBJS];
};

static atomic_int trim_stop;

/* A tag on every page the object covers, so its pages are dirty and a
 * decommit has work to do. */
static void trim_tag(unsigned char *p, size_t n, uint64_t tag)
{
    for (size_t off = 0; off + sizeof tag <= n; off += 4096)
        memcpy(p + off, &tag, sizeof tag);
}

static int trim_tag_ok(const unsigned char *p, size_t n, uint64_t tag)
{
    for (size_t off = 0; off + sizeof tag <= n; off += 4096) {
        uint64_t t;
        memcpy(&t, p + off, sizeof t);
        if (t != tag)
            return 0;
    }
    return 1;
}

/* One round: allocate about 2 MiB of each size, interleaved, tag them,
 * check and free them all. Returns the objects allocated. */
static size_t trim_round(struct trim_worker *w, uint64_t serial)
{
    size_t want[TRIM_NSIZES], n = 0;
    for (unsigned k = 0; k < TRIM_NSIZES; k++)
        want[k] = TRIM_BYTES_PER_SIZE / trim_sizes[k];
    for (int more = 1; more;) {
        more = 0;
        for (unsigned k = 0; k < TRIM_NSIZES; k++) {
            if (!want[k])
                continue;
            want[k]--;
            more = 1;
            if (n == TRIM_MAX_OBJS)
                continue; /* not reached: a round is about 55000 objects */
            unsigned char *p = pf_malloc(trim_sizes[k]);
            if (!p) {
                w->failed++;
                continue;
            }
            w->allocs++;
            trim_tag(p, trim_sizes[k], serial + n);
            w->obj[n] = p;
            w->size[n++] = trim_sizes[k];
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!trim_tag_ok(w->obj[i], w->size[i], serial + i))
            w->damaged++;
        pf_free(w->obj[i]);
        w->frees++;
    }
    return n;
}

static void *trim_work(void *arg)
{
    struct trim_worker *w = arg;
    uint64_t serial = (uint64_t)(w->id + 1) << 48;
    while (!atomic_load_explicit(&trim_stop, memory_order_relaxed)) {
        serial += trim_round(w, serial);
        w->rounds++;
        /* As a program calling malloc_trim after each phase: this thread's
         * cache and the families' kept empty spans go back to the pool
         * (decommitted there) while the other trimmer unmaps regions. */
        pf_trim();
    }
    return NULL;
}

static void *trim_loop(void *arg)
{
    uint64_t *trims = arg;
    while (!atomic_load_explicit(&trim_stop, memory_order_relaxed)) {
        pf_trim();
        (*trims)++;
    }
    return NULL;
}

static int trim_ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

static void trim_check_balanced(const struct pf_stats *before, const char *when)
{
    static struct pf_stats after;
    cr_assert_eq(pf_stats_get(&after), 0);
    cr_assert_eq(after.truncated, 0);
    for (uint32_t i = 0; i < after.nfamilies; i++) {
        const struct pf_family_stats *a = &after.fam[i];
        const struct pf_family_stats *b = NULL;
        for (uint32_t j = 0; j < before->nfamilies && !b; j++)
            if (strcmp(before->fam[j].name, a->name) == 0)
                b = &before->fam[j];
        uint64_t ba = b ? b->allocs : 0, bf = b ? b->frees : 0, bl = b ? b->live_objects : 0;
        uint64_t bb = b ? b->live_bytes : 0;
        cr_assert_eq(a->allocs - ba, a->frees - bf, "%s: %s: %lu allocs but %lu frees", when,
                     a->name, (unsigned long)(a->allocs - ba), (unsigned long)(a->frees - bf));
        cr_assert_eq(a->live_objects, bl, "%s: %s: live %lu, was %lu", when, a->name,
                     (unsigned long)a->live_objects, (unsigned long)bl);
        cr_assert_eq(a->live_bytes, bb, "%s: %s: live_bytes %lu, was %lu", when, a->name,
                     (unsigned long)a->live_bytes, (unsigned long)bb);
    }
    cr_assert_eq(after.totals.live_objects, before->totals.live_objects,
                 "%s: live objects %lu, was %lu", when, (unsigned long)after.totals.live_objects,
                 (unsigned long)before->totals.live_objects);
}

Test(span, trim_in_a_loop_never_unmaps_a_region_under_a_decommit, .timeout = 60)
{
    static struct trim_worker w[TRIM_WORKERS];
    static struct pf_stats before;
    pf_span_set_cache_limit(0); /* every span that empties is decommitted at once */
    cr_assert_eq(pf_stats_get(&before), 0);
    uint64_t madv0 = counts().madvise_calls, unmap0 = counts().munmap_calls;
    uint64_t trims = 0;
    pthread_t trimmer;
    atomic_store(&trim_stop, 0);
    for (unsigned t = 0; t < TRIM_WORKERS; t++) {
        w[t].id = t;
        cr_assert_eq(pthread_create(&w[t].tid, NULL, trim_work, &w[t]), 0);
    }
    cr_assert_eq(pthread_create(&trimmer, NULL, trim_loop, &trims), 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (trim_ms_since(&t0) < TRIM_RUN_MS)
        usleep(20 * 1000);
    atomic_store(&trim_stop, 1);
    cr_assert_eq(pthread_join(trimmer, NULL), 0);
    uint64_t rounds = 0, allocs = 0, frees = 0;
    for (unsigned t = 0; t < TRIM_WORKERS; t++) {
        cr_assert_eq(pthread_join(w[t].tid, NULL), 0);
        cr_assert_eq(w[t].failed, 0, "worker %u: %lu allocations failed", t,
                     (unsigned long)w[t].failed);
        cr_assert_eq(w[t].damaged, 0, "worker %u: %lu objects changed while live", t,
                     (unsigned long)w[t].damaged);
        rounds += w[t].rounds;
        allocs += w[t].allocs;
        frees += w[t].frees;
    }
    cr_assert_eq(allocs, frees);
    /* The race was really run: spans were decommitted and regions unmapped
     * while the workers went round. */
    cr_assert_geq(rounds, 2 * TRIM_WORKERS, "only %lu rounds in %d ms", (unsigned long)rounds,
                  TRIM_RUN_MS);
    cr_assert_gt(trims, 100, "only %lu trims", (unsigned long)trims);
    cr_assert_gt(counts().madvise_calls - madv0, 1000, "only %lu decommits",
                 (unsigned long)(counts().madvise_calls - madv0));
    cr_assert_gt(counts().munmap_calls - unmap0, 10, "only %lu unmaps",
                 (unsigned long)(counts().munmap_calls - unmap0));
    trim_check_balanced(&before, "after the race");

    /* The pool is sound: trim gives everything back, and memory can be had
     * and written again, every object in a span of its size in the pagemap. */
    pf_trim();
    cr_assert_eq(pf_span_cached_bytes(), 0);
    struct trim_worker *m = &w[0];
    memset(m, 0, sizeof *m);
    size_t n = trim_round(m, (uint64_t)7 << 56);
    cr_assert_eq(m->failed, 0, "%lu allocations failed after the race", (unsigned long)m->failed);
    cr_assert_eq(m->damaged, 0, "%lu objects changed while live after the race",
                 (unsigned long)m->damaged);
    cr_assert_gt(n, 0);
    for (unsigned k = 0; k < TRIM_NSIZES; k++) {
        unsigned char *p = pf_malloc(trim_sizes[k]);
        cr_assert_not_null(p);
        struct pf_span *s = pf_pagemap_get(p);
        cr_assert_not_null(s, "size %lu: %p not in the pagemap", (unsigned long)trim_sizes[k], p);
        cr_assert_eq(s->kind, PF_SPAN_SMALL);
        cr_assert_geq(s->slot_size, trim_sizes[k]);
        cr_assert((uintptr_t)p >= s->start && (uintptr_t)p + s->slot_size <= s->start + s->bytes);
        memset(p, 0xA5, trim_sizes[k]);
        pf_free(p);
    }
    trim_check_balanced(&before, "after the check");
}

/* ---- longest free run ------------------------------------------------------- */
static uint32_t model_run(const unsigned char *is_free, uint32_t n)
{
    uint32_t best = 0, run = 0;
    for (uint32_t i = 0; i < n; i++) {
        run = is_free[i] ? run + 1 : 0;
        best = run > best ? run : best;
    }
    return best;
}

static void give_range(struct pf_span *s, unsigned char *is_free, uint32_t a, uint32_t b)
{
    for (uint32_t i = a; i < b; i++) {
        s->state[i] = PF_SLOT_DIRTY;
        pf_span_give(s, i);
        is_free[i] = 1;
    }
}

Test(span, largest_free_run_on_hand_made_patterns)
{
    struct pf_span *s = pf_span_get(0);
    uint32_t n = s->nslots;
    int clean;
    cr_assert_eq(pf_span_largest_free_run(s), n, "an untouched span is one free run");
    for (uint32_t i = 0; i < 100; i++)
        pf_span_take(s, &clean);
    cr_assert_eq(pf_span_largest_free_run(s), n - 100, "slots never handed out count as free");
    static unsigned char is_free[PF_MAX_SLOTS];
    give_range(s, is_free, 99, 100);
    cr_assert_eq(pf_span_largest_free_run(s), n - 99, "a freed slot joins the untouched tail");
    while (s->used < n)
        pf_span_take(s, &clean);
    memset(is_free, 0, sizeof is_free);
    cr_assert_eq(pf_span_largest_free_run(s), 0, "a full span has no free run");

    give_range(s, is_free, 10, 20);
    cr_assert_eq(pf_span_largest_free_run(s), 10);
    give_range(s, is_free, 60, 131); /* crosses two word boundaries */
    cr_assert_eq(pf_span_largest_free_run(s), 71);
    give_range(s, is_free, n - 96, n); /* the end of the span */
    cr_assert_eq(pf_span_largest_free_run(s), 96);
    give_range(s, is_free, 131, 200); /* joins [60,131) */
    cr_assert_eq(pf_span_largest_free_run(s), 140);
    give_range(s, is_free, 0, 1);
    cr_assert_eq(pf_span_largest_free_run(s), 140);
    check_span(s);

    /* Random patterns against a model. */
    for (int trial = 0; trial < 60; trial++) {
        while (s->used < n)
            pf_span_take(s, &clean);
        memset(is_free, 0, sizeof is_free);
        uint32_t pos = (uint32_t)(next_rand() % 64);
        while (pos < n) {
            uint32_t len = (uint32_t)(next_rand() % (trial < 30 ? 8 : 300)) + 1;
            if (pos + len > n)
                len = n - pos;
            give_range(s, is_free, pos, pos + len);
            pos += len + 1 + (uint32_t)(next_rand() % 40);
        }
        cr_assert_eq(pf_span_largest_free_run(s), model_run(is_free, n), "trial %d", trial);
        check_span(s);
    }
}

/* ---- metadata memory ------------------------------------------------------------ */
Test(span, meta_alloc_is_zeroed_aligned_and_disjoint)
{
    struct { char *p; size_t n; } got[64];
    uint64_t meta0 = counts().metadata_bytes;
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)(i * 97 % 3000) + 1;
        char *p = pf_meta_alloc(n);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 16, 0);
        cr_assert(all_zero(p, n));
        memset(p, 0x5A, n);
        got[i].p = p;
        got[i].n = n;
    }
    for (int i = 0; i < 64; i++)
        for (int j = i + 1; j < 64; j++)
            cr_assert(got[i].p + got[i].n <= got[j].p || got[j].p + got[j].n <= got[i].p,
                      "metadata blocks %d and %d overlap", i, j);
    cr_assert_gt(counts().metadata_bytes, meta0);
    /* A big request gets memory of its own, zeroed. */
    char *big = pf_meta_alloc((size_t)3 << 20);
    cr_assert_not_null(big);
    cr_assert(all_zero(big, (size_t)3 << 20));
    cr_assert_geq(counts().metadata_bytes - meta0, (size_t)3 << 20);
}

/* Zero but for what free's fast path reads before the kind: a state array
 * (one clean entry) and the bin that is always full. */
static int new_large_span(const struct pf_span *s)
{
    struct pf_span c;
    memcpy(&c, s, sizeof c);
    if (c.state != pf_state_none || c.bin != PF_BIN_NONE)
        return 0;
    c.state = NULL;
    c.bin = 0;
    return all_zero(&c, sizeof c);
}

Test(span, large_span_structs_are_recycled_zeroed)
{
    struct pf_span *a = pf_span_meta_new();
    cr_assert_not_null(a);
    cr_assert(new_large_span(a));
    a->start = 12345;
    a->bytes = 999;
    a->kind = PF_SPAN_LARGE;
    pf_span_meta_free(a);
    struct pf_span *b = pf_span_meta_new();
    cr_assert_eq(b, a, "a freed struct is reused");
    cr_assert(new_large_span(b), "and comes back zeroed");
    struct pf_span *c = pf_span_meta_new();
    cr_assert_neq(c, b);
}

/* ---- a span being decommitted is not pooled ------------------------------ */
/* madvise, for this binary (pfalloc is linked in): when `gate` names the
 * range, the call waits until `gate_open`, so a test can act while a
 * decommit has the pool lock down. Any other call goes straight through. */
static _Atomic uintptr_t gate;
static atomic_int gate_reached, gate_open;

int madvise(void *p, size_t n, int advice)
{
    uintptr_t want = atomic_load(&gate);
    if (want && (uintptr_t)p == want && atomic_compare_exchange_strong(&gate, &want, 0)) {
        atomic_store(&gate_reached, 1);
        while (!atomic_load(&gate_open))
            usleep(1000);
    }
    return (int)syscall(SYS_madvise, p, n, advice);
}

static void *trim_once(void *arg)
{
    *(size_t *)arg = pf_span_trim();
    return NULL;
}

/* get()'s span, asked for while a pf_span_trim in another thread is inside
 * the madvise of the span at `victim`; the trim's released bytes into
 * *released (unless NULL) once it is over. */
static struct pf_span *during_trim(uintptr_t victim, struct pf_span *(*get)(void), size_t *released)
{
    atomic_store(&gate, victim);
    pthread_t trimmer;
    size_t bytes = 0;
    cr_assert_eq(pthread_create(&trimmer, NULL, trim_once, &bytes), 0);
    while (!atomic_load(&gate_reached))
        usleep(1000);
    struct pf_span *t = get();
    atomic_store(&gate_open, 1);
    cr_assert_eq(pthread_join(trimmer, NULL), 0);
    if (released)
        *released = bytes;
    return t;
}

/* Spans handed out next lie outside t. */
static void assert_none_inside(const struct pf_span *t)
{
    for (int i = 0; i < 8; i++) {
        struct pf_span *u = pf_span_get(class_of_chunks(1));
        cr_assert(u->start + u->bytes <= t->start || u->start >= t->start + t->bytes,
                  "a span handed out inside another");
    }
}

static struct pf_span *get_two(void)
{
    return pf_span_get(class_of_chunks(2)); /* a class of two-chunk spans whose slot fits in one */
}

/* While pf_span_trim decommits a warm span (the pool lock down for the
 * madvise), a request that joins pooled neighbours must not take that span
 * for one: it would be handed out, zeroed under its new owner by the
 * madvise, and pooled again by the trim, so handed out twice. */
Test(span, a_span_trim_is_decommitting_is_not_joined)
{
    pf_span_set_cache_limit((size_t)64 << 20);
    struct pf_span *s[3];
    neighbours(s, 3);
    uintptr_t a = s[0]->start, b = s[1]->start;
    dirty_and_put(s[0], 1);
    dirty_and_put(s[1], 1); /* listed first: trim's first victim */
    struct pf_span *t = during_trim(b, get_two_wide, NULL);
    cr_assert(t->start != a && t->start != b, "joined a span that trim was decommitting");
    cr_assert_leq(pf_span_cached_bytes(), 2 * PF_CHUNK, "pool bytes counted twice: %zu",
                  pf_span_cached_bytes());
    assert_none_inside(t);
}

static uintptr_t proc_maps[4096][2];

/* The process's mappings, in address order, into proc_maps[]; how many. */
static size_t read_maps(void)
{
    size_t n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    char line[4096];
    while (n < 4096 && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2) {
            proc_maps[n][0] = a;
            proc_maps[n][1] = b;
            n++;
        }
    }
    fclose(f);
    return n;
}

/* Every gap of the address space in [lo, hi) but [keep, keep + keep_len)
 * filled with an inaccessible mapping: the next mappings go below lo, or
 * into the gap kept when they fit in it. */
static void fill_gaps(uintptr_t lo, uintptr_t hi, uintptr_t keep, size_t keep_len)
{
    size_t n = read_maps();
    uintptr_t at = lo;
    for (size_t i = 0; i <= n && at < hi; i++) {
        uintptr_t next = i < n && proc_maps[i][0] < hi ? proc_maps[i][0] : hi;
        uintptr_t piece[2][2] = {{at, next < keep ? next : keep}, {at > keep + keep_len ? at : keep + keep_len, next}};
        for (int k = 0; k < 2; k++)
            if (piece[k][0] < piece[k][1])
                cr_assert_neq(mmap((void *)piece[k][0], piece[k][1] - piece[k][0], PROT_NONE,
                                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0),
                              MAP_FAILED, "filling [%#lx, %#lx): %s", (unsigned long)piece[k][0],
                              (unsigned long)piece[k][1], strerror(errno));
        if (i < n && proc_maps[i][1] > at)
            at = proc_maps[i][1];
    }
}

/* Whether nothing is mapped in [lo, hi). */
static int range_free(uintptr_t lo, uintptr_t hi)
{
    for (size_t i = 0, n = read_maps(); i < n; i++)
        if (proc_maps[i][0] < hi && proc_maps[i][1] > lo)
            return 0;
    return 1;
}

/* A region across a 4 GiB boundary makes no span of the chunk right above
 * it (see HOLE_ALIGN in span.c: words of the leak walk's roots point
 * there), and every other chunk of it serves. The address space is filled
 * so that the second region's metadata takes a gap kept for it and its 8
 * chunks go right below, 4 of them above the boundary. */
Test(span, no_span_takes_the_chunk_above_a_4_gib_boundary)
{
    const uintptr_t gib4 = (uintptr_t)1 << 32;
    unsigned cls = class_of_chunks(1);
    struct pf_span *first = pf_span_get(cls); /* the first region, of 4 chunks */
    cr_assert_not_null(first);
    void *probe = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(probe, MAP_FAILED);
    /* A boundary with nothing mapped near it: the test runner's thread may
     * have a C library arena there already (64 MiB aligned, so at a
     * boundary), and the region must lie across it. */
    uintptr_t top = (uintptr_t)probe, b = (top - ((uintptr_t)64 << 20)) & ~(gib4 - 1);
    while (!range_free(b - ((uintptr_t)4 << 20), b + ((uintptr_t)33 << 20)))
        b -= gib4;
    fill_gaps(b + ((uintptr_t)256 << 10), top, b + ((uintptr_t)32 << 20), (size_t)256 << 10);
    /* And below, but for the region's room right under the boundary: a
     * mapping another thread makes meanwhile (such an arena) goes
     * elsewhere. */
    fill_gaps(b - ((uintptr_t)4 << 20), b - ((uintptr_t)512 << 10), 0, 0);
    struct pf_region *second = NULL;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    size_t taken = 0;
    for (int i = 0; i < 64; i++) {
        struct pf_span *s = pf_span_get(cls);
        cr_assert_not_null(s);
        cr_assert(s->start + s->bytes <= b || s->start >= b + PF_CHUNK,
                  "a span of %zu bytes at %#lx holds the chunk at the boundary %#lx", s->bytes,
                  (unsigned long)s->start, (unsigned long)b);
        if (s->region == first->region)
            continue;
        if (!second)
            second = s->region;
        if (s->region != second)
            break; /* the second region is used up */
        lo = s->start < lo ? s->start : lo;
        hi = s->start + s->bytes > hi ? s->start + s->bytes : hi;
        taken += s->bytes;
    }
    cr_assert(second != NULL && lo < b && hi > b + PF_CHUNK,
              "the second region [%#lx, %#lx) does not lie across %#lx", (unsigned long)lo, (unsigned long)hi,
              (unsigned long)b);
    cr_assert_eq(taken, hi - lo - PF_CHUNK, "%zu bytes of [%#lx, %#lx) served: all but the hole", taken,
                 (unsigned long)lo, (unsigned long)hi);
}

/* While pf_span_trim decommits a warm span, a class whose spans are
 * usually longer takes a shorter warm span (pool_take's fallback): never
 * the one being decommitted, which would be zeroed under its new owner by
 * the madvise and pooled again by the trim. */
Test(span, a_span_trim_is_decommitting_does_not_serve_a_class_of_longer_spans)
{
    unsigned two = class_of_chunks(2);
    cr_assert_leq(pf_class_size[two], PF_CHUNK);
    pf_span_set_cache_limit((size_t)64 << 20);
    struct pf_span *s[3];
    pooled_apart(s, 2);
    uintptr_t first = s[2]->start; /* pooled last: listed first, trim's first victim */
    size_t released = 0;
    struct pf_span *t = during_trim(first, get_two, &released);
    cr_assert(t == s[0] || t == s[1], "served by %#lx, not a warm span the trim had not taken",
              (unsigned long)t->start);
    cr_assert_neq(t->start, first, "took the span trim was decommitting");
    cr_assert_not(t->fresh);
    cr_assert_eq(pf_span_cached_bytes(), 0, "the trim left warm bytes counted: %zu", pf_span_cached_bytes());
    cr_assert_eq(released, 2 * PF_CHUNK, "the trim gave back %zu bytes, want the two spans it took", released);
    assert_none_inside(t);
}
