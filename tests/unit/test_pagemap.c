/*
 * test_pagemap.c — pointer -> span: round trips over many chunks and leaves,
 * chunk granularity (every byte of a chunk, never its neighbours), NULL for
 * what was never set and for addresses above the 47-bit user space (no
 * aliasing), leaves mapped once on first use, and lock-free readers that
 * only ever see NULL or the right span while writers create leaves; the
 * first leaf made is read without level 1; free's view of cached spans.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* Unoptimised (a Debug build), GCC 12 follows the constant addresses
 * above the user range that the tests pass into pf_pagemap_get's level-1
 * read, past the bounds test that returns first, and calls that read an
 * overflow of pf_pagemap. Optimised builds drop the dead read. */
#pragma GCC diagnostic ignored "-Wstringop-overflow"

#include "pagemap.h"
#include "span.h"

#define LEAF_SPAN ((uintptr_t)PF_CHUNK << PF_PM_LEAF_BITS) /* bytes one leaf covers: 4 GiB */

static struct pf_span fake[64];

static uint64_t meta_bytes(void)
{
    struct pf_os_counts oc;
    pf_os_counts(&oc);
    return oc.metadata_bytes;
}

/* The first leaf a process makes is the pagemap's own (pf_pagemap.hot),
 * which maps nothing: tests that count the leaves they map take it first,
 * in a 4 GiB no test uses. */
static void take_the_hot_leaf(void)
{
    cr_assert_eq(pf_pagemap_set((void *)(uintptr_t)0x600000000000, PF_CHUNK, &fake[63]), 0);
    cr_assert_neq(atomic_load(&pf_pagemap_hot.top), UINTPTR_MAX);
}

Test(pagemap, round_trip_over_many_chunks_and_leaves)
{
    /* 40 leaves, 25 chunks each at scattered places, then every chunk read back. */
    uintptr_t base = (uintptr_t)0x100000000000;
    for (uintptr_t l = 0; l < 40; l++)
        for (uintptr_t k = 0; k < 25; k++) {
            uintptr_t a = base + l * 3 * LEAF_SPAN + (k * 2617 % (1u << PF_PM_LEAF_BITS)) * PF_CHUNK;
            cr_assert_eq(pf_pagemap_set((void *)a, PF_CHUNK, &fake[(l + k) % 64]), 0);
        }
    for (uintptr_t l = 0; l < 40; l++)
        for (uintptr_t k = 0; k < 25; k++) {
            uintptr_t a = base + l * 3 * LEAF_SPAN + (k * 2617 % (1u << PF_PM_LEAF_BITS)) * PF_CHUNK;
            struct pf_span *want = &fake[(l + k) % 64];
            cr_assert_eq(pf_pagemap_get((void *)a), want, "leaf %lu chunk %lu", (unsigned long)l,
                         (unsigned long)k);
            cr_assert_eq(pf_pagemap_get((void *)(a + PF_CHUNK / 2)), want);
            cr_assert_eq(pf_pagemap_get((void *)(a + PF_CHUNK - 1)), want);
            /* A neighbour chunk in the same (existing) leaf was never set. */
            cr_assert_null(pf_pagemap_get((void *)(a + LEAF_SPAN / 2 + 7 * PF_CHUNK)));
        }
    /* Leaves in between were never created. */
    cr_assert_null(pf_pagemap_get((void *)(base + LEAF_SPAN)));
    cr_assert_null(pf_pagemap_get((void *)(base + 2 * LEAF_SPAN + 12345)));
}

Test(pagemap, ranges_set_every_chunk_they_touch_and_no_other)
{
    uintptr_t base = (uintptr_t)0x200000000000 + 100 * PF_CHUNK;
    /* 16 chunks exactly. */
    cr_assert_eq(pf_pagemap_set((void *)base, 16 * PF_CHUNK, &fake[1]), 0);
    cr_assert_null(pf_pagemap_get((void *)(base - 1)));
    for (uintptr_t a = base; a < base + 16 * PF_CHUNK; a += 4096)
        cr_assert_eq(pf_pagemap_get((void *)a), &fake[1]);
    cr_assert_eq(pf_pagemap_get((void *)(base + 16 * PF_CHUNK - 1)), &fake[1]);
    cr_assert_null(pf_pagemap_get((void *)(base + 16 * PF_CHUNK)));

    /* Two bytes straddling a chunk boundary touch both chunks. */
    uintptr_t b = base + 40 * PF_CHUNK - 1;
    cr_assert_eq(pf_pagemap_set((void *)b, 2, &fake[2]), 0);
    cr_assert_eq(pf_pagemap_get((void *)(b - 100)), &fake[2]);
    cr_assert_eq(pf_pagemap_get((void *)(b + 1)), &fake[2]);
    cr_assert_null(pf_pagemap_get((void *)(b + 1 + PF_CHUNK)));
    cr_assert_null(pf_pagemap_get((void *)(b - PF_CHUNK)));

    /* A range across a leaf boundary. */
    uintptr_t leaf_end = (base | (LEAF_SPAN - 1)) + 1;
    cr_assert_eq(pf_pagemap_set((void *)(leaf_end - 2 * PF_CHUNK), 4 * PF_CHUNK, &fake[3]), 0);
    for (int i = -2; i < 2; i++)
        cr_assert_eq(pf_pagemap_get((void *)(leaf_end + (intptr_t)i * (intptr_t)PF_CHUNK + 5)),
                     &fake[3], "chunk %d", i);
    cr_assert_null(pf_pagemap_get((void *)(leaf_end + 2 * PF_CHUNK)));
    cr_assert_null(pf_pagemap_get((void *)(leaf_end - 3 * PF_CHUNK)));

    /* Overwrite, then clear. */
    cr_assert_eq(pf_pagemap_set((void *)(base + 3 * PF_CHUNK), PF_CHUNK, &fake[4]), 0);
    cr_assert_eq(pf_pagemap_get((void *)(base + 3 * PF_CHUNK + 9)), &fake[4]);
    cr_assert_eq(pf_pagemap_get((void *)(base + 2 * PF_CHUNK + 9)), &fake[1]);
    cr_assert_eq(pf_pagemap_set((void *)base, 16 * PF_CHUNK, NULL), 0);
    for (uintptr_t a = base; a < base + 16 * PF_CHUNK; a += PF_CHUNK)
        cr_assert_null(pf_pagemap_get((void *)a));
}

Test(pagemap, never_set_and_out_of_range_addresses_are_null)
{
    cr_assert_null(pf_pagemap_get(NULL));
    cr_assert_null(pf_pagemap_get((void *)(uintptr_t)0x123456789000));
    cr_assert_null(pf_pagemap_get((void *)((uintptr_t)1 << 47)));
    cr_assert_null(pf_pagemap_get((void *)(((uintptr_t)1 << 47) + 5 * PF_CHUNK)));
    cr_assert_null(pf_pagemap_get((void *)(uintptr_t)0xffff800000000000));
    cr_assert_null(pf_pagemap_get((void *)UINTPTR_MAX));

    /* Set the first, a middle and the last chunk of the user space; the same
     * chunk numbers above 2^47 must not alias them. */
    uintptr_t lo[] = {0, (uintptr_t)0x3fff12340000, ((uintptr_t)1 << 47) - PF_CHUNK};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pf_pagemap_set((void *)lo[i], PF_CHUNK, &fake[10 + i]), 0);
        cr_assert_eq(pf_pagemap_get((void *)(lo[i] + 77)), &fake[10 + i]);
        for (int hi = 47; hi < 64; hi++)
            cr_assert_null(pf_pagemap_get((void *)(lo[i] | ((uintptr_t)1 << hi))),
                           "0x%lx with bit %d", (unsigned long)lo[i], hi);
    }
    /* Setting above the user space fails and leaves nothing behind. */
    cr_assert_eq(pf_pagemap_set((void *)((uintptr_t)1 << 47), PF_CHUNK, &fake[20]), -1);
    cr_assert_null(pf_pagemap_get((void *)((uintptr_t)1 << 47)));
    cr_assert_eq(pf_pagemap_get((void *)0), &fake[10], "chunk 0 was not overwritten");
    cr_assert_eq(pf_pagemap_set((void *)(((uintptr_t)1 << 47) - PF_CHUNK), 2 * PF_CHUNK, &fake[21]),
                 -1);
}

/* Free's lookup: 0 above the user range and where no leaf exists, the
 * pagemap's `none` (a magic that passes no pointer) for a chunk never set
 * in a leaf that exists, the span for one that is set. */
Test(pagemap, fast_find_gives_none_or_the_span)
{
    static struct pf_span real = {.start = 1};
    uintptr_t base = (uintptr_t)0x280000000000;
    struct pf_span *s = NULL;
    cr_assert_eq(pf_pagemap_find((void *)(base + 5), &s), 0, "no leaf yet");
    cr_assert_eq(pf_pagemap_set((void *)base, PF_CHUNK, &real), 0);
    cr_assert_eq(pf_pagemap_find((void *)(base + 5), &s), 1);
    cr_assert_eq(s, &real);
    cr_assert_eq(pf_pagemap_find((void *)(base + PF_CHUNK), &s), 1);
    cr_assert_eq(s->magic, 0, "an unset chunk finds a span no pointer passes");
    cr_assert_null(pf_pagemap_get((void *)(base + PF_CHUNK)));
    for (int hi = 47; hi < 64; hi++)
        cr_assert_eq(pf_pagemap_find((void *)(base | ((uintptr_t)1 << hi)), &s), 0, "bit %d", hi);
    cr_assert_eq(pf_pagemap_find(NULL, &s) && s->magic, 0);
}

Test(pagemap, leaves_are_mapped_once_on_first_use)
{
    uintptr_t base = (uintptr_t)0x300000000000;
    take_the_hot_leaf();
    uint64_t m0 = meta_bytes();
    cr_assert_eq(pf_pagemap_set((void *)base, PF_CHUNK, &fake[0]), 0);
    uint64_t m1 = meta_bytes();
    cr_assert_eq(m1 - m0, sizeof(pf_pm_leaf), "first set in a leaf maps %lu bytes",
                 (unsigned long)(m1 - m0));
    /* More entries in the same leaf map nothing. */
    for (uintptr_t k = 1; k < 1000; k++)
        cr_assert_eq(pf_pagemap_set((void *)(base + k * 37 * PF_CHUNK), PF_CHUNK, &fake[1]), 0);
    cr_assert_eq(meta_bytes(), m1);
    /* Reads of a leaf that does not exist do not create it. */
    for (uintptr_t k = 1; k < 100; k++)
        cr_assert_null(pf_pagemap_get((void *)(base + k * LEAF_SPAN)));
    cr_assert_eq(meta_bytes(), m1);
    /* A range over three leaves maps two more. */
    cr_assert_eq(pf_pagemap_set((void *)(base + LEAF_SPAN - PF_CHUNK), LEAF_SPAN + 2 * PF_CHUNK,
                                &fake[2]),
                 0);
    cr_assert_eq(meta_bytes() - m1, 2 * sizeof(pf_pm_leaf));
}

/* ---- concurrency ------------------------------------------------------------ */
#define CONC_LEAVES 192
#define CONC_BASE ((uintptr_t)0x400000000000)

static _Atomic uintptr_t published; /* entries [0, published) are set */
static atomic_int stop;

static uintptr_t conc_addr(uintptr_t i)
{
    /* One chunk per leaf, at a different place in each. */
    return CONC_BASE + i * LEAF_SPAN + (i * 811 % (1u << PF_PM_LEAF_BITS)) * PF_CHUNK;
}

static void *writer(void *arg)
{
    (void)arg;
    for (uintptr_t i = 0; i < CONC_LEAVES; i++) {
        if (pf_pagemap_set((void *)conc_addr(i), PF_CHUNK, &fake[i % 64]) != 0)
            return (void *)1;
        atomic_store_explicit(&published, i + 1, memory_order_release);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    uintptr_t bad = 0;
    int last;
    do { /* at least one whole pass after the writer has finished */
        last = atomic_load_explicit(&stop, memory_order_acquire);
        uintptr_t done = atomic_load_explicit(&published, memory_order_acquire);
        for (uintptr_t i = 0; i < CONC_LEAVES; i++) {
            struct pf_span *s = pf_pagemap_get((void *)(conc_addr(i) + 4096));
            if (i < done ? s != &fake[i % 64] : (s != NULL && s != &fake[i % 64]))
                bad++;
            /* The chunk after it was never set, leaf or no leaf. */
            if (pf_pagemap_get((void *)(conc_addr(i) + PF_CHUNK)) != NULL)
                bad++;
        }
    } while (!last);
    return (void *)bad;
}

Test(pagemap, readers_see_null_or_the_span_while_a_writer_creates_leaves)
{
    /* The writer's first leaf is the hot one: the readers meet it too, in
     * level 1 before its index is published. */
    cr_assert_eq(atomic_load(&pf_pagemap_hot.top), UINTPTR_MAX, "a leaf existed before the test");
    uint64_t m0 = meta_bytes();
    pthread_t w, r[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&r[i], NULL, reader, NULL), 0);
    cr_assert_eq(pthread_create(&w, NULL, writer, NULL), 0);
    void *wres;
    pthread_join(w, &wres);
    atomic_store_explicit(&stop, 1, memory_order_release);
    cr_assert_null(wres, "pf_pagemap_set failed");
    for (int i = 0; i < 2; i++) {
        void *bad;
        pthread_join(r[i], &bad);
        cr_assert_eq((uintptr_t)bad, 0, "reader %d saw %lu wrong entries", i,
                     (unsigned long)(uintptr_t)bad);
    }
    for (uintptr_t i = 0; i < CONC_LEAVES; i++)
        cr_assert_eq(pf_pagemap_get((void *)conc_addr(i)), &fake[i % 64]);
    cr_assert_eq(meta_bytes() - m0, (CONC_LEAVES - 1) * sizeof(pf_pm_leaf), "all but the hot leaf mapped");
}

/* Several writers race to create the same leaves: one leaf wins per slot of
 * the top level, nobody's entries are lost, the losers' leaves are unmapped. */
#define RACE_WRITERS 2
#define RACE_LEAVES 256
#define RACE_BASE ((uintptr_t)0x500000000000)

static atomic_uint race_arrived;

/* All writers meet before each leaf, so they reach its creation together. */
static void race_meet(unsigned round)
{
    atomic_fetch_add(&race_arrived, 1);
    /* Spin hot (a yield would let one run ahead), yield only if starved. */
    for (unsigned spin = 0; atomic_load(&race_arrived) < (round + 1) * RACE_WRITERS; spin++)
        if (spin > 100000)
            sched_yield();
}

static void *race_writer(void *arg)
{
    uintptr_t w = (uintptr_t)arg;
    /* Writers on different CPUs (when there are several), so they truly
     * run at once rather than take turns on one. */
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 1) {
        int nth = (int)(w % (uintptr_t)CPU_COUNT(&allowed)), cpu = 0;
        for (int seen = -1; cpu < CPU_SETSIZE; cpu++)
            if (CPU_ISSET(cpu, &allowed) && ++seen == nth)
                break;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        sched_setaffinity(0, sizeof one, &one);
    }
    for (uintptr_t l = 0; l < RACE_LEAVES; l++) {
        race_meet((unsigned)l);
        for (uintptr_t k = 0; k < 8; k++) {
            uintptr_t a = RACE_BASE + l * LEAF_SPAN + (w * 8 + k) * PF_CHUNK;
            if (pf_pagemap_set((void *)a, PF_CHUNK, &fake[w]) != 0)
                return (void *)1;
        }
    }
    return NULL;
}

Test(pagemap, writers_racing_for_a_leaf_keep_every_entry)
{
    take_the_hot_leaf();
    uint64_t m0 = meta_bytes();
    pthread_t t[RACE_WRITERS];
    for (uintptr_t w = 0; w < RACE_WRITERS; w++)
        cr_assert_eq(pthread_create(&t[w], NULL, race_writer, (void *)w), 0);
    for (int w = 0; w < RACE_WRITERS; w++) {
        void *res;
        pthread_join(t[w], &res);
        cr_assert_null(res);
    }
    for (uintptr_t l = 0; l < RACE_LEAVES; l++)
        for (uintptr_t w = 0; w < RACE_WRITERS; w++)
            for (uintptr_t k = 0; k < 8; k++) {
                uintptr_t a = RACE_BASE + l * LEAF_SPAN + (w * 8 + k) * PF_CHUNK;
                cr_assert_eq(pf_pagemap_get((void *)a), &fake[w], "leaf %lu writer %lu",
                             (unsigned long)l, (unsigned long)w);
            }
    cr_assert_eq(meta_bytes() - m0, RACE_LEAVES * sizeof(pf_pm_leaf),
                 "metadata grew by %lu bytes", (unsigned long)(meta_bytes() - m0));
}

/* Free's lookup reads the first leaf made, pf_pagemap.hot, at its fixed
 * place, not through level 1: with that leaf's level-1 entry cleared, its
 * chunks are still found, and a second leaf is found through level 1 as
 * before. The first leaf maps nothing; the second is a mapping. */
Test(pagemap, the_first_leaf_made_is_found_without_level_one)
{
    uintptr_t a = (uintptr_t)0x340000000000, b = (uintptr_t)0x350000000000;
    cr_assert_eq(atomic_load(&pf_pagemap_hot.top), UINTPTR_MAX, "a leaf existed before the test");
    uint64_t m0 = meta_bytes();
    cr_assert_eq(pf_pagemap_set((void *)a, PF_CHUNK, &fake[5]), 0);
    cr_assert_eq(meta_bytes(), m0, "the first leaf is the pagemap's own");
    cr_assert_eq(pf_pagemap_set((void *)b, PF_CHUNK, &fake[6]), 0);
    cr_assert_eq(meta_bytes() - m0, sizeof(pf_pm_leaf), "the second is mapped");
    uintptr_t ta = a >> (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.top), ta);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.base), ta << (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS));
    cr_assert_eq(atomic_load(&pf_pagemap_hot.limit), (uintptr_t)1 << PF_PM_LEAF_BITS);
    uint32_t saved = atomic_load(&pf_pagemap.top[ta]);
    cr_assert_eq(saved, PF_PM_HOT_MARK);
    cr_assert_eq(pf_pagemap_leaf(ta), &pf_pagemap.hot);
    cr_assert_eq(atomic_load(&pf_pagemap.hot[(uint32_t)a >> PF_CHUNK_SHIFT]),
                 (uintptr_t)&fake[5] - (uintptr_t)&pf_pagemap.none);

    atomic_store(&pf_pagemap.top[ta], 0);
    struct pf_span *s = NULL;
    cr_assert_eq(pf_pagemap_find((void *)(a + 5), &s), 1);
    cr_assert_eq(s, &fake[5]);
    cr_assert_eq(pf_pagemap_get((void *)(a + PF_CHUNK - 1)), &fake[5]);
    cr_assert_eq(pf_pagemap_find((void *)(a + PF_CHUNK), &s), 1);
    cr_assert_eq(s->magic, 0, "an unset chunk of the hot leaf finds `none`");
    atomic_store(&pf_pagemap.top[ta], saved);

    cr_assert_eq(pf_pagemap_find((void *)(b + 5), &s), 1);
    cr_assert_eq(s, &fake[6]);
    cr_assert_eq(pf_pagemap_find((void *)(b + 5 + LEAF_SPAN), &s), 0, "no leaf there");
    /* The hot index with bits above the user range is no pointer of it. */
    for (int hi = 47; hi < 64; hi++)
        cr_assert_eq(pf_pagemap_find((void *)(a | ((uintptr_t)1 << hi)), &s), 0, "bit %d", hi);
}

/* A thread that claims the hot leaf names it in level 1 before it sets the
 * range free's lookup reads; a second thread that sets a chunk in that
 * range meanwhile finds the leaf through level 1. That thread sets the
 * range too, before its entry, so free's lookup finds the chunk from then
 * on and no pointer outside the range finds it. */
#define HOT_A ((uintptr_t)0x370000000000 + 3 * PF_CHUNK)

Test(pagemap, a_chunk_set_in_the_hot_leaf_before_its_claimer_publishes_it_is_found_only_in_its_range)
{
    uintptr_t t = HOT_A >> (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.limit), 0, "a leaf existed before the test");
    atomic_store(&pf_pagemap.top[t], PF_PM_HOT_MARK); /* the claimer, between its two steps */
    cr_assert_eq(pf_pagemap_set((void *)HOT_A, PF_CHUNK, &fake[9]), 0);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.base), t << (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS),
                 "the setter did not set the hot leaf's range");
    cr_assert_eq(atomic_load(&pf_pagemap_hot.limit), (uintptr_t)1 << PF_PM_LEAF_BITS);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.top), t);
    struct pf_span *s = NULL;
    cr_assert_eq(pf_pagemap_find((void *)(HOT_A + 7), &s), 1);
    cr_assert_eq(s, &fake[9]);
    /* The same chunk index in other 4 GiB ranges: below, above the user
     * range, and where an unset range would have put `hot`. */
    uintptr_t low = HOT_A & (LEAF_SPAN - 1);
    uintptr_t alias[] = {low + 7, low + 7 + ((uintptr_t)1 << 63), HOT_A + 7 - LEAF_SPAN, HOT_A + 7 + LEAF_SPAN};
    for (unsigned i = 0; i < sizeof alias / sizeof alias[0]; i++)
        cr_assert(!pf_pagemap_find((void *)alias[i], &s) || s->magic == 0, "%p found a span", (void *)alias[i]);
}

/* The same, with free's lookup running meanwhile on pointers outside the
 * range: a lookup that reads the range's bounds while they are being set
 * must not pair the old start with the new entry. The reader stands aside
 * while the writer takes the hot leaf back to "no range yet", which the
 * allocator never does. */
static _Atomic int hot_phase; /* 0: run, 1: the writer asks the reader to stand aside, 2: it does */
static _Atomic long hot_bad;

static void *hot_alias_reader(void *arg)
{
    (void)arg;
    uintptr_t low = HOT_A & (LEAF_SPAN - 1);
    uintptr_t alias[] = {low + 16, low + 16 + ((uintptr_t)1 << 63)};
    unsigned i = 0;
    while (!atomic_load(&stop)) {
        if (atomic_load(&hot_phase) == 1) {
            atomic_store(&hot_phase, 2);
            while (atomic_load(&hot_phase) == 2 && !atomic_load(&stop))
                sched_yield();
            continue;
        }
        struct pf_span *s;
        if (pf_pagemap_find((void *)alias[i++ & 1], &s) && s->magic != 0)
            atomic_fetch_add(&hot_bad, 1);
    }
    return NULL;
}

Test(pagemap, no_pointer_outside_the_hot_range_finds_its_entry_while_the_range_is_being_set)
{
    uintptr_t t = HOT_A >> (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.limit), 0, "a leaf existed before the test");
    struct pf_span span = {.start = HOT_A, .magic = (uint64_t)1 << 60}; /* slots of 16 bytes */
    pthread_t r;
    cr_assert_eq(pthread_create(&r, NULL, hot_alias_reader, NULL), 0);
    for (int round = 0; round < 20000; round++) {
        atomic_store(&hot_phase, 1);
        while (atomic_load(&hot_phase) != 2)
            sched_yield();
        atomic_store(&pf_pagemap_hot.limit, 0);
        atomic_store(&pf_pagemap.hot[(uint32_t)HOT_A >> PF_CHUNK_SHIFT], 0);
        atomic_store(&pf_pagemap.top[t], 0);
        atomic_store(&pf_pagemap_hot.top, UINTPTR_MAX);
        atomic_store(&pf_pagemap_hot.base, (round & 1) ? (uintptr_t)1 << 63 : 0);
        atomic_store(&hot_phase, 0);
        for (volatile int k = 0; k < (round & 255); k++) {
        }
        atomic_store(&pf_pagemap.top[t], PF_PM_HOT_MARK);
        cr_assert_eq(pf_pagemap_set((void *)HOT_A, PF_CHUNK, &span), 0);
    }
    atomic_store(&stop, 1);
    pthread_join(r, NULL);
    cr_assert_eq(atomic_load(&hot_bad), 0, "a pointer outside the range found its span %ld times",
                 atomic_load(&hot_bad));
}

/* Threads that make the first leaves at once, each in its own 4 GiB: one of
 * them gets the hot leaf, and level 1 names it for that top only.
 * Each round runs in a child process, so each starts with no leaf. */
#define HOT_RACERS 4
static pthread_barrier_t hot_start;

static void *hot_racer(void *arg)
{
    uintptr_t a = (uintptr_t)0x360000000000 + (uintptr_t)arg * LEAF_SPAN;
    pthread_barrier_wait(&hot_start);
    return (void *)(intptr_t)pf_pagemap_set((void *)a, PF_CHUNK, &fake[(uintptr_t)arg]);
}

Test(pagemap, threads_racing_for_the_first_leaf_agree_on_the_hot_one)
{
    for (int round = 0; round < 40; round++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            pthread_t t[HOT_RACERS];
            pthread_barrier_init(&hot_start, NULL, HOT_RACERS);
            for (uintptr_t i = 0; i < HOT_RACERS; i++)
                if (pthread_create(&t[i], NULL, hot_racer, (void *)i) != 0)
                    _exit(2);
            for (int i = 0; i < HOT_RACERS; i++) {
                void *res;
                pthread_join(t[i], &res);
                if (res != NULL)
                    _exit(3);
            }
            uintptr_t top = atomic_load(&pf_pagemap_hot.top);
            uintptr_t first = (uintptr_t)0x360000000000 >> (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS);
            if (top < first || top >= first + HOT_RACERS)
                _exit(4);
            if (atomic_load(&pf_pagemap.top[top]) != PF_PM_HOT_MARK)
                _exit(5);
            if (atomic_load(&pf_pagemap_hot.base) != top << (PF_CHUNK_SHIFT + PF_PM_LEAF_BITS) ||
                atomic_load(&pf_pagemap_hot.limit) != (uintptr_t)1 << PF_PM_LEAF_BITS)
                _exit(8);
            for (uintptr_t i = 0; i < HOT_RACERS; i++) /* every other top has a mapped leaf */
                if (first + i != top && pf_pagemap_leaf(first + i) == &pf_pagemap.hot)
                    _exit(7);
            for (uintptr_t i = 0; i < HOT_RACERS; i++) {
                struct pf_span *s;
                uintptr_t a = (uintptr_t)0x360000000000 + i * LEAF_SPAN + 9;
                if (!pf_pagemap_find((void *)a, &s) || s != &fake[i])
                    _exit(6);
            }
            _exit(0);
        }
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: status 0x%x", round, status);
    }
}

/* ---- the view of cached spans ------------------------------------------------------ */
/* p's chunk index in the view's window, as free's fast path finds its entry. */
static int view_chunk(const void *p, uintptr_t *c)
{
    uintptr_t w;
    int in = pf_pagemap_view_word(p, &w);
    cr_assert_eq(w % PF_PM_VIEW_WORDS, 0, "an entry's first word");
    *c = w / PF_PM_VIEW_WORDS;
    cr_assert(!in || pf_pagemap_view_entry(w) == &pf_pagemap_view[*c]);
    return in;
}

Test(pagemap, the_first_span_given_a_view_places_its_window_mostly_below_it)
{
    const uintptr_t at = (uintptr_t)1 << 40; /* a chunk nothing maps: a view is not a mapping */
    const uintptr_t below = (uintptr_t)(PF_PM_VIEW_CHUNKS - PF_PM_VIEW_CHUNKS / 8) * PF_CHUNK;
    static uint16_t st[8];
    uintptr_t c;
    pf_pagemap_view_set(at, 2 * PF_CHUNK, 0, NULL, 0);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.view_base), PF_PM_VIEW_NONE, "a cleared view places no window");
    cr_assert_not(view_chunk((void *)at, &c), "no chunk has a view before the window is placed");
    for (uintptr_t a = 0; a < ((uintptr_t)1 << 47); a += (uintptr_t)1 << 40)
        cr_assert_not(view_chunk((void *)(a + 0x123450), &c), "no pointer is in the window before it is placed");
    cr_assert_not(view_chunk((void *)(((uintptr_t)1 << 47) - 1), &c));

    pf_pagemap_view_set(at, 2 * PF_CHUNK, 12345, st, 3 * PF_BIN_BYTES);
    uintptr_t base = atomic_load(&pf_pagemap_hot.view_base);
    cr_assert_eq(base, at - below, "7/8 of the window below the first span");
    for (uintptr_t a = at; a < at + 2 * PF_CHUNK; a += PF_CHUNK / 2 + 8) {
        cr_assert(view_chunk((void *)a, &c));
        cr_assert_eq(c, (a - base) / PF_CHUNK);
        cr_assert_eq(pf_pagemap_view[c].magic, 12345);
        cr_assert_eq(pf_pagemap_view[c].start, at, "every chunk's view holds the span's start");
        cr_assert_eq(pf_pagemap_view[c].state, st);
        cr_assert_eq(pf_pagemap_view[c].bin, 3 * PF_BIN_BYTES);
    }
    cr_assert(view_chunk((void *)(at - PF_CHUNK), &c));
    cr_assert_eq(pf_pagemap_view[c].magic, 0, "the chunk before the span has no view");
    cr_assert(view_chunk((void *)(at + 2 * PF_CHUNK), &c));
    cr_assert_eq(pf_pagemap_view[c].magic, 0, "the chunk after the span has no view");

    /* The window's edges. */
    cr_assert(view_chunk((void *)base, &c) && c == 0);
    uintptr_t end = base + (uintptr_t)PF_PM_VIEW_CHUNKS * PF_CHUNK;
    cr_assert(view_chunk((void *)(end - 1), &c) && c == PF_PM_VIEW_CHUNKS - 1);
    cr_assert_not(view_chunk((void *)end, &c), "the first address past the window");
    cr_assert_not(view_chunk((void *)(base - 1), &c), "the last address below it");
    cr_assert_not(view_chunk(NULL, &c));

    /* A span outside the window gets no view and moves nothing. */
    pf_pagemap_view_set(end, 4 * PF_CHUNK, 777, st, PF_BIN_BYTES);
    cr_assert_eq(atomic_load(&pf_pagemap_hot.view_base), base);
    for (uint32_t i = 0; i < PF_PM_VIEW_CHUNKS; i++)
        cr_assert(pf_pagemap_view[i].magic == 0 || pf_pagemap_view[i].magic == 12345);

    /* Cleared when its span goes back to the pool. */
    pf_pagemap_view_set(at, 2 * PF_CHUNK, 0, NULL, 0);
    for (uint32_t i = 0; i < PF_PM_VIEW_CHUNKS; i++)
        cr_assert_eq(pf_pagemap_view[i].magic, 0);
}
