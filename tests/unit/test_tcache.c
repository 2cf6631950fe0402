/*
 * test_tcache.c — per-thread caches: made on a thread's first malloc or
 * after its first few frees (never by frees made after its key destructors
 * ran), LIFO bins that never exceed their cap, family out_bytes equal to the
 * slots held by the program plus those parked in bins and transfer caches,
 * a thread's exit handing its cache back (flushed, in_use cleared) for the
 * next thread to adopt with its counters, so stats stay exact; drain empties
 * only the calling thread's bins; a thread past its exit hook allocates on
 * the locked path; threads that keep to their own blocks keep to their own
 * spans, and threads that hand blocks on share them; an empty bin shows malloc's pop a wall, and turning the direct
 * path off (call sites) reaches every cache.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <time.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "family.h"
#include "fastpath.h"
#include "tcache.h"

#include "faults.h"

static struct pf_stats stats;

/* The stats entry of family `name`, or NULL. */
static const struct pf_family_stats *fam_stats(const char *name)
{
    cr_assert_eq(pf_stats_get(&stats), 0);
    for (uint32_t i = 0; i < stats.nfamilies; i++)
        if (strcmp(stats.fam[i].name, name) == 0)
            return &stats.fam[i];
    return NULL;
}

static void check_bins(const struct pf_tcache *tc)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        const struct pf_bin *b = &tc->bins[c];
        cr_assert_geq(pf_bin_cap(b), 2, "class %u", c);
        cr_assert_leq(pf_bin_cap(b), PF_TC_MAX, "class %u", c);
        if (pf_bin_count(b) > pf_bin_cap(b))
            cr_assert_fail("class %u: %u slots cached, cap %u", c, pf_bin_count(b), pf_bin_cap(b));
    }
}

/* ---- a thread's first malloc ---------------------------------------------------- */
struct first_use {
    struct pf_tcache *before, *after;
    int in_use;
    uint64_t allocs;
    uint32_t count_after_malloc, count_after_free;
    void *p, *top, *again;
};

static void *first_use_thread(void *arg)
{
    struct first_use *r = arg;
    unsigned cls = pf_size_class(32);
    r->before = pf_tc;
    r->p = pf_malloc(32);
    r->after = pf_tc;
    if (!r->after)
        return NULL;
    r->in_use = atomic_load(&r->after->in_use);
    r->allocs = r->after->bins[cls].allocs;
    r->count_after_malloc = pf_bin_count(&r->after->bins[cls]);
    pf_free(r->p);
    r->count_after_free = pf_bin_count(&r->after->bins[cls]);
    r->top = r->after->bins[cls].base[r->count_after_free - 1].p;
    r->again = pf_malloc(32);
    pf_free(r->again);
    return NULL;
}

Test(tcache, first_malloc_on_a_thread_makes_its_cache)
{
    struct first_use r;
    memset(&r, 0, sizeof r);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, first_use_thread, &r), 0);
    pthread_join(t, NULL);
    cr_assert_null(r.before, "no cache before the first malloc");
    cr_assert_not_null(r.after, "a cache after it");
    cr_assert_not_null(r.p);
    cr_assert_eq(r.in_use, 1);
    cr_assert_eq(r.allocs, 1);
    cr_assert_gt(r.count_after_malloc, 0, "a refill brings a batch");
    cr_assert_eq(r.count_after_free, r.count_after_malloc + 1, "free pushes on the bin");
    cr_assert_eq(r.top, r.p);
    cr_assert_eq(r.again, r.p, "the bin is LIFO: the slot just freed comes back first");
    cr_assert_eq(atomic_load(&r.after->in_use), 0, "the cache is handed back at exit");
}

/* ---- a thread that only frees ---------------------------------------------------- */
#define FREE_ONLY_N (PF_FREE_ONLY_LOCKED + 10)
struct free_only {
    void *p[FREE_ONLY_N];
    struct pf_tcache *before, *at_threshold, *after;
    uint32_t count;
    uint64_t frees;
};

static void *free_only_thread(void *arg)
{
    struct free_only *r = arg;
    r->before = pf_tc;
    for (int i = 0; i < FREE_ONLY_N; i++) {
        pf_free(r->p[i]);
        if (i == PF_FREE_ONLY_LOCKED - 1)
            r->at_threshold = pf_tc;
    }
    r->after = pf_tc;
    if (r->after) {
        r->count = pf_bin_count(&r->after->bins[pf_size_class(48)]);
        r->frees = r->after->bins[pf_size_class(48)].frees;
    }
    return NULL;
}

Test(tcache, a_thread_that_only_frees_gets_a_cache_after_its_first_frees)
{
    static struct free_only r;
    for (int i = 0; i < FREE_ONLY_N; i++)
        r.p[i] = pf_malloc(48);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_only_thread, &r), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_null(r.before);
    cr_assert_null(r.at_threshold, "its first frees take the locked path");
    cr_assert_not_null(r.after, "later frees made the cache");
    cr_assert_eq(r.count, 10, "those went to its bin, not one by one to the spans");
    cr_assert_eq(r.frees, 10);
    const struct pf_family_stats *fs = fam_stats("malloc-48");
    cr_assert_eq(fs->live_objects, 0);
    cr_assert_eq(fs->frees, FREE_ONLY_N);
}

/* A thread that never allocated frees in the last round of key destructors,
 * after pfalloc's own destructor could run (as glibc frees its per-thread
 * buffers after every destructor): no cache is made that nothing would
 * give back. */
struct late_free {
    void *p[10];
    struct pf_tcache *tc;
    int rounds;
};
static pthread_key_t late_free_key;

static void late_free_destructor(void *arg)
{
    struct late_free *l = arg;
    if (++l->rounds < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_free_key, l); /* run again next round */
        return;
    }
    for (int i = 0; i < 10; i++)
        pf_free(l->p[i]);
    l->tc = pf_tc;
}

static void *late_free_thread(void *arg)
{
    pthread_setspecific(late_free_key, arg);
    return NULL;
}

Test(tcache, frees_after_the_last_key_destructor_make_no_cache)
{
    static struct late_free l;
    cr_assert_eq(pthread_key_create(&late_free_key, late_free_destructor), 0);
    for (int i = 0; i < 10; i++)
        l.p[i] = pf_malloc(48);
    const struct pf_family_stats *fs = fam_stats("malloc-48");
    uint64_t live = fs->live_objects;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, late_free_thread, &l), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(l.rounds, PTHREAD_DESTRUCTOR_ITERATIONS);
    cr_assert_null(l.tc, "the late frees made no cache");
    fs = fam_stats("malloc-48");
    cr_assert_eq(fs->live_objects, live - 10, "and were counted");
    for (struct pf_tcache *c = pf_tcache_first(); c; c = c->next_all)
        if (atomic_load(&c->in_use))
            cr_assert_eq(c, pf_tc, "no cache but the main thread's is owned");
}

/* ---- bins, caps and exact figures ---------------------------------------------------- */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Per class: out_bytes == (objects the program holds + slots in the bin +
 * slots in the class's transfer cache) * slot. */
static void check_out_bytes(const struct pf_tcache *tc, const uint32_t *held)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        struct pf_family *f = pf_family_class(c);
        uint64_t want = (uint64_t)(held[c] + pf_bin_count(&tc->bins[c]) + pf_family_transfer_slots(c)) * pf_class_size[c];
        if (f->out_bytes != want)
            cr_assert_fail("class %u: out_bytes %lu, expected %lu (%u held, %u cached)", c,
                     (unsigned long)f->out_bytes, (unsigned long)want, held[c],
                     pf_bin_count(&tc->bins[c]));
    }
}

Test(tcache, bins_stay_within_cap_and_figures_stay_exact)
{
    enum { NPTR = 3000 };
    static void *p[NPTR];
    static size_t sz[NPTR];
    static uint32_t held[PF_NCLASSES];
    pf_free(pf_malloc(1));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    for (int op = 0; op < 40000; op++) {
        int i = (int)(next_rand() % NPTR);
        if (p[i]) {
            pf_free(p[i]);
            held[pf_size_class(sz[i])]--;
            p[i] = NULL;
        } else {
            /* Mostly small sizes, some up to the largest class. */
            uint64_t r = next_rand();
            sz[i] = (r & 7) ? (size_t)(r >> 8) % 600 : (size_t)(r >> 8) % (PF_SMALL_MAX + 1);
            p[i] = pf_malloc(sz[i]);
            cr_assert_not_null(p[i]);
            memset(p[i], 0x33, sz[i] < 64 ? sz[i] : 64);
            held[pf_size_class(sz[i])]++;
        }
        check_bins(tc);
        if (op % 97 == 0)
            check_out_bytes(tc, held);
    }
    check_out_bytes(tc, held);
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        char name[32];
        snprintf(name, sizeof name, "malloc-%u", pf_class_size[c]);
        const struct pf_family_stats *fs = fam_stats(name);
        if (!fs) {
            cr_assert_eq(held[c], 0, "%s holds objects but has no stats", name);
            continue;
        }
        cr_assert_eq(fs->live_objects, held[c], "%s", name);
        cr_assert_eq(fs->live_objects, fs->allocs - fs->frees, "%s", name);
        cr_assert_eq(fs->live_bytes, (uint64_t)held[c] * pf_class_size[c], "%s", name);
    }
    for (int i = 0; i < NPTR; i++)
        pf_free(p[i]);
}

Test(tcache, bin_stores_are_packed_to_their_caps)
{
    /* A thread touches the stores of the classes it uses: stores laid end
     * to end, each the size of its cap, put the small classes' stores on a
     * few pages instead of one store of PF_TC_MAX slots per class. */
    pf_free(pf_malloc(16));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    size_t total = 0;
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        const struct pf_bin *b = &tc->bins[c];
        if (c + 1 < PF_NCLASSES)
            cr_assert_eq(tc->bins[c + 1].base, b->limit + 1, "class %u's store follows class %u's and its wall",
                         c + 1, c);
        total += 1 + pf_bin_cap(b);
    }
    cr_assert_lt(total * sizeof(struct pf_cached), sizeof(struct pf_cached) * PF_NCLASSES * PF_TC_MAX / 3,
                 "stores of %zu slots in all", total);
}

/* What malloc's pop reads for a bin with nothing in it: the entry below
 * top, whose p must be NULL. */
static void check_walls(const struct pf_tcache *tc, const char *which)
{
    for (unsigned c = 0; c <= PF_NCLASSES; c++) {
        const struct pf_bin *b = &tc->bins[c];
        cr_assert_not_null(b->base, "%s: bin %u has a store", which, c);
        if (b->base[-1].p != NULL)
            cr_assert_fail("%s: bin %u: the entry below its store is %p, not a wall", which, c, b->base[-1].p);
    }
    const struct pf_bin *none = &tc->bins[PF_NCLASSES];
    cr_assert(none->top == none->base && none->top == none->limit, "%s: PF_BIN_NONE is empty and full", which);
}

Test(tcache, every_bin_has_a_wall_below_its_slots)
{
    /* malloc pops without reading base: an empty bin must show it a NULL
     * slot, in a cache of its own and in pf_tc_none (threads without one). */
    pf_free(pf_malloc(16));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    check_walls(tc, "a thread's cache");
    /* pf_tc_none: malloc's pop reads below the top only of the bin its
     * direct[] names; every bin is empty and full, for pf_small_alloc's
     * test and free's. */
    for (unsigned i = 0; i < PF_DIRECT_N; i++) {
        const struct pf_bin *b = pf_tcache_direct_bin(&pf_tc_none, i);
        cr_assert_eq(b, &pf_tc_none.bins[PF_NCLASSES]);
        cr_assert_not_null(b->top);
        cr_assert_null(b->top[-1].p, "pf_tc_none: the entry below its PF_BIN_NONE is not a wall");
    }
    for (unsigned c = 0; c <= PF_NCLASSES; c++) {
        const struct pf_bin *b = &pf_tc_none.bins[c];
        cr_assert(b->top == b->base && b->top == b->limit, "pf_tc_none: bin %u is empty and full", c);
    }

    /* Emptied, a bin's next malloc is served (its refill), and a slot
     * freed back is the next one popped. */
    unsigned cls = pf_size_class(48);
    pf_tcache_drain();
    cr_assert_eq(pf_bin_count(&tc->bins[cls]), 0);
    void *p = pf_malloc(48);
    cr_assert_not_null(p);
    cr_assert_gt(pf_bin_count(&tc->bins[cls]), 0, "refilled");
    pf_free(p);
    cr_assert_eq(pf_malloc(48), p);
    pf_free(p);
    check_walls(tc, "after a drain and refill");
}

Test(tcache, every_request_up_to_the_direct_limit_finds_its_class_s_bin)
{
    /* direct[] is indexed by the request itself: each of the 1 025 sizes
     * names the bin of its own class (an entry off by one at a class's
     * edge would hand out a slot too small by up to 15 bytes, or count
     * in another class), and malloc of that size is served by that bin. */
    pf_free(pf_malloc(16));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    for (unsigned n = 0; n <= PF_DIRECT_MAX; n++) {
        unsigned cls = pf_size_class(n);
        cr_assert_eq(pf_tcache_direct_bin(tc, n), &tc->bins[cls], "size %u: the bin of class %u", n, cls);
        uint64_t allocs = tc->bins[cls].allocs;
        void *p = pf_malloc(n);
        cr_assert_not_null(p);
        cr_assert_eq(tc->bins[cls].allocs, allocs + 1, "size %u served by class %u's bin", n, cls);
        cr_assert_geq(pf_malloc_usable_size(p), n ? n : 1, "size %u", n);
        cr_assert_eq(pf_malloc_usable_size(p), pf_class_size[cls], "size %u", n);
        memset(p, 0xA5, n);
        pf_free(p);
    }
    cr_assert_eq(pf_tcache_direct_bin(tc, PF_DIRECT_MAX), &tc->bins[pf_size_class(PF_DIRECT_MAX)]);
    cr_assert_neq(pf_size_class(PF_DIRECT_MAX + 1), pf_size_class(PF_DIRECT_MAX), "the limit ends a class");
}

Test(tcache, the_initial_thread_s_cache_is_made_resident_through_every_direct_class_s_store)
{
    /* The initial thread's cache is made resident in one call, from its
     * first page to the end of the stores of the classes malloc finds in
     * one load (a short process touches most of them: one call instead of
     * a fault for each page). The end is read from the cache being made,
     * before its direct table is filled in, so it must come from the
     * class table. */
    cr_assert(pf_os_initial_thread(), "the test runs on its process's initial thread");
    pf_free(pf_malloc(16));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    size_t ps = pf_os_page_size();
    char *from = (char *)((uintptr_t)tc & ~(ps - 1));
    char *to = (char *)tc->bins[pf_size_class(PF_DIRECT_MAX)].limit;
    cr_assert_gt(to - from, (ptrdiff_t)(8 * ps), "the direct classes' stores take pages");
    size_t pages = (size_t)(to - from + ps - 1) / ps;
    unsigned char *vec = calloc(pages, 1);
    cr_assert_not_null(vec);
    cr_assert_eq(mincore(from, (size_t)(to - from), vec), 0);
    for (size_t i = 0; i < pages; i++)
        cr_assert(vec[i] & 1, "page %zu of %zu not resident", i, pages);
    free(vec);
}

Test(tcache, refills_of_fresh_small_slots_make_no_page_past_them_resident)
{
    /* A refill of fresh slots makes the pages they lie on resident in one
     * call (span.h, pf_span_take_many) where they are two or more, and
     * leaves a single page to fault (pf_os_populate): 1 000 blocks of 48
     * bytes lie on 12 pages; the page past the last refill's slots is not
     * resident, and writing the blocks takes one fault for each of their
     * pages not resident before, no other (where perf events count them). */
    static unsigned char *p[1000];
    memset(p, 0, sizeof p);
    unsigned cls = pf_size_class(48);
    pf_free(pf_malloc(48)); /* the cache and the class's span made */
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    int fd = fault_counter();
    if (fd < 0)
        cr_log_warn("perf events not allowed (%s): pages checked, faults not counted", strerror(errno));
    size_t ps = pf_os_page_size();
    for (int i = 0; i < 1000; i++) {
        p[i] = pf_malloc(48);
        cr_assert_not_null(p[i]);
    }
    /* (handed out in ascending addresses) */
    uint64_t absent = 0;
    uintptr_t last = 0;
    for (int i = 0; i < 1000; i++) {
        uintptr_t page = (uintptr_t)p[i] & ~(uintptr_t)(ps - 1);
        cr_assert_geq(page, last, "block %d", i);
        if (page != last && !page_resident((void *)page))
            absent++;
        last = page;
    }
    /* The highest slot the refills carved is the last block or one left in
     * the bin: the page after its own is no refill's. */
    uintptr_t high = (uintptr_t)p[999];
    for (struct pf_cached *c = tc->bins[cls].base; c < tc->bins[cls].top; c++)
        if ((uintptr_t)c->p > high)
            high = (uintptr_t)c->p;
    uintptr_t past = ((high + 48 + ps - 1) & ~(uintptr_t)(ps - 1));
    cr_assert_not(page_resident((void *)past), "a page past the refills' slots is resident");
    uint64_t f0 = faults(fd);
    for (int i = 0; i < 1000; i++)
        memset(p[i], 0x5A, 48);
    uint64_t taken = faults(fd) - f0;
    for (int i = 0; i < 1000; i++)
        pf_free(p[i]);
    if (fd >= 0)
        cr_assert_eq(taken, absent, "%llu page faults for 1 000 blocks of 48 bytes, %llu pages not resident",
                     (unsigned long long)taken, (unsigned long long)absent);
    if (fd >= 0)
        close(fd);
}

Test(tcache, refills_leave_the_pages_of_fresh_big_slots_to_fault)
{
    /* Blocks of 100 000 bytes, 26 pages to a slot: the page each starts
     * on lies apart from the next one's, a range of one page, which costs
     * more to make resident than to fault in (pf_os_populate): neither it
     * nor the page the block ends on (a program may never reach it) is
     * resident before the program writes it, and writing the first bytes
     * of each takes one fault each (where perf events count them). */
    enum { N = 40, SIZE = 100000 };
    static unsigned char *p[N];
    memset(p, 0, sizeof p);
    pf_free(pf_malloc(SIZE)); /* the cache and the class's span made */
    int fd = fault_counter();
    if (fd < 0)
        cr_log_warn("perf events not allowed (%s): pages checked, faults not counted", strerror(errno));
    for (int i = 0; i < N; i++) {
        p[i] = pf_malloc(SIZE);
        cr_assert_not_null(p[i]);
    }
    uint64_t f0 = faults(fd);
    for (int i = 0; i < N; i++) {
        cr_assert_not(page_resident(p[i]), "block %d: its first page resident before it is written", i);
        cr_assert_not(page_resident(p[i] + SIZE - 1), "block %d: its last page resident", i);
        memset(p[i], 0x5A, 64);
    }
    uint64_t taken = faults(fd) - f0;
    for (int i = 0; i < N; i++)
        pf_free(p[i]);
    if (fd >= 0)
        cr_assert_eq(taken, N, "%llu page faults writing the starts of %d blocks", (unsigned long long)taken, N);
    if (fd >= 0)
        close(fd);
}

/* calloc(1, n) after a block of n bytes was filled and freed: the block
 * comes back zeroed, counted once in its class's bin with n requested. */
static void calloc_recycles_zeroed(struct pf_tcache *tc, size_t n, const char *how)
{
    struct pf_bin *b = &tc->bins[pf_size_class(n)];
    unsigned char *d = pf_malloc(n);
    cr_assert_not_null(d);
    memset(d, 0xA5, pf_malloc_usable_size(d));
    pf_free(d);
    uint64_t allocs = b->allocs, req = pf_bin_req(b->live_base, b->allocs, b->frees, b->states);
    unsigned char *p = pf_calloc(1, n);
    cr_assert_eq(p, d, "%s, size %zu: the slot just freed", how, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(p[i], 0, "%s, size %zu: byte %zu not zeroed", how, n, i);
    cr_assert_eq(b->allocs, allocs + 1, "%s, size %zu: counted once", how, n);
    cr_assert_eq(pf_bin_req(b->live_base, b->allocs, b->frees, b->states), req + n, "%s, size %zu", how, n);
    pf_free(p);
}

Test(tcache, calloc_zeroes_and_counts_every_size_on_the_direct_path_and_off_it)
{
    /* calloc takes malloc's direct path up to its limit, and the slow
     * path when the table names no bin (call sites recorded, checks, a
     * hold): both zero a recycled slot and count it exactly. */
    pf_free(pf_malloc(16));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    for (size_t n = 0; n <= PF_DIRECT_MAX + 64; n++)
        calloc_recycles_zeroed(tc, n, "direct");
    pf_tcache_direct_off();
    for (size_t n = 0; n <= PF_DIRECT_MAX + 64; n++)
        calloc_recycles_zeroed(tc, n, "direct off");
}

static void *direct_thread(void *arg)
{
    unsigned cls = pf_size_class(100);
    void *p = pf_malloc(100);
    struct pf_tcache **out = arg;
    *out = pf_tc;
    int counted = p && pf_tc && pf_tc->bins[cls].allocs == 1;
    pf_free(p);
    return counted ? out : NULL;
}

Test(tcache, direct_off_sends_every_cache_s_small_mallocs_to_the_slow_path)
{
    /* Recording call sites turns the direct path off: every cache, the
     * ones that exist and the ones made later, finds an empty bin there,
     * and small mallocs still come from their class's bin. */
    pf_free(pf_malloc(16));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    cr_assert_neq(pf_tcache_direct_bin(tc, 1), &tc->bins[PF_NCLASSES]);
    pf_tcache_direct_off();
    unsigned cls = pf_size_class(100);
    uint64_t allocs = tc->bins[cls].allocs;
    void *p = pf_malloc(100);
    cr_assert_not_null(p);
    cr_assert_eq(tc->bins[cls].allocs, allocs + 1, "served by its class's bin all the same");
    pf_free(p);
    pthread_t t;
    struct pf_tcache *other = NULL;
    void *ok = NULL;
    cr_assert_eq(pthread_create(&t, NULL, direct_thread, &other), 0);
    pthread_join(t, &ok);
    cr_assert_not_null(other);
    cr_assert_not_null(ok, "a new thread's malloc is served and counted");
    for (unsigned i = 0; i < PF_DIRECT_N; i++) {
        cr_assert_eq(pf_tcache_direct_bin(tc, i), &tc->bins[PF_NCLASSES], "entry %u", i);
        cr_assert_eq(pf_tcache_direct_bin(other, i), &other->bins[PF_NCLASSES], "entry %u of a cache made after", i);
    }
}

Test(tcache, a_fork_child_finishes_turning_the_direct_path_off)
{
    /* A fork from another thread while pf_tcache_direct_off walks the
     * caches: the caches not reached yet must not stay on the direct path
     * in the child, where their mallocs would record no call site. */
    pf_free(pf_malloc(16));
    struct pf_tcache *tc = pf_tc;
    cr_assert_not_null(tc);
    pf_tcache_direct_off();
    for (unsigned i = 0; i < PF_DIRECT_N; i++) /* as if the walk had not got here */
        tc->direct[i] = (uint16_t)(pf_size_class(i) * sizeof(struct pf_bin));
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        for (unsigned i = 0; i < PF_DIRECT_N; i++)
            if (pf_tcache_direct_bin(tc, i) != &tc->bins[PF_NCLASSES])
                _exit(1);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's direct path is on (status 0x%x)", status);
}

/* Fills the calling thread's bin of 256-byte slots and frees past it:
 * the bin never exceeds its cap; returns the slots of the class then in the
 * transfer cache. */
static uint32_t overflow_a_bin(void)
{
    unsigned cls = pf_size_class(256);
    static void *p[1024];
    pf_free(pf_malloc(256));
    struct pf_tcache *tc = pf_tc;
    uint32_t cap = pf_bin_cap(&tc->bins[cls]);
    uint32_t n = 4 * cap;
    cr_assert_leq(n, 1024);
    for (uint32_t i = 0; i < n; i++)
        p[i] = pf_malloc(256);
    uint32_t most = 0;
    for (uint32_t i = 0; i < n; i++) {
        pf_free(p[i]);
        uint32_t c = pf_bin_count(&tc->bins[cls]);
        cr_assert_leq(c, cap, "after free %u: %u cached, cap %u", i, c, cap);
        most = c > most ? c : most;
    }
    cr_assert_eq(most, cap, "the bin fills up to its cap before it flushes");
    struct pf_family *f = pf_family_class(cls);
    uint32_t held = pf_family_transfer_slots(cls);
    cr_assert_eq(f->out_bytes, (uint64_t)(pf_bin_count(&tc->bins[cls]) + held) * 256);
    const struct pf_family_stats *fs = fam_stats("malloc-256");
    cr_assert_eq(fs->live_objects, 0);
    cr_assert_eq(fs->allocs, n + 1);
    return held;
}

/* The only thread with a cache: no other thread could take its slots, so
 * its flushes keep them in the transfer cache (a copy, not the spans'
 * bitmaps). */
Test(tcache, a_full_bin_flushes_and_never_overflows)
{
    cr_assert_gt(overflow_a_bin(), 0, "a lone thread's flushed batches wait in the transfer cache");
}

/* ---- the collection of unused bins ------------------------------------------------ */
/* Refills and flushes of the class of `size` only, each a step of the
 * cache's collection: `cycles` times, 4 caps of blocks allocated, then
 * freed (two refills and two flushes at least). */
static void churn_class(size_t size, unsigned cycles, size_t also)
{
    static void *q[1024];
    unsigned cls = pf_size_class(size);
    pf_free(pf_malloc(size));
    uint32_t n = 4 * pf_bin_cap(&pf_tc->bins[cls]);
    cr_assert_leq(n, 1024);
    for (unsigned k = 0; k < cycles; k++) {
        for (uint32_t i = 0; i < n; i++)
            q[i] = pf_malloc(size);
        for (uint32_t i = 0; i < n; i++)
            pf_free(q[i]);
        if (also)
            pf_free(pf_malloc(also));
    }
}

/* Slots of 256 bytes cached in this thread's bin, from a span it owns. */
static struct pf_span *cache_some_256(uint32_t *cached)
{
    static void *p[100];
    unsigned cls = pf_size_class(256);
    for (int i = 0; i < 100; i++)
        p[i] = pf_malloc(256);
    for (int i = 0; i < 100; i++)
        pf_free(p[i]);
    *cached = pf_bin_count(&pf_tc->bins[cls]);
    cr_assert_gt(*cached, 0);
    cr_assert(pf_tc->own[cls].active, "the cache owns the span it refilled from");
    return pf_pagemap_get(p[0]);
}

Test(tcache, an_unused_bin_gives_its_slots_and_spans_back)
{
    unsigned cls = pf_size_class(256);
    uint32_t cached;
    struct pf_span *s = cache_some_256(&cached);
    /* A look a round after the bin's last use takes its older half, and
     * leaves it its spans. */
    unsigned cycles = 0;
    while (pf_bin_count(&pf_tc->bins[cls]) == cached && cycles++ < 100)
        churn_class(64, 1, 0);
    cr_assert_eq(pf_bin_count(&pf_tc->bins[cls]), cached / 2, "%u cached, %u before", pf_bin_count(&pf_tc->bins[cls]),
                 cached);
    cr_assert(pf_tc->own[cls].active);
    churn_class(64, 400, 0); /* thousands of steps: every bin looked at many times */
    cr_assert_eq(pf_bin_count(&pf_tc->bins[cls]), 0, "an unused bin keeps no slot");
    cr_assert_not(pf_tc->own[cls].active, "nor its spans");
    cr_assert_null(s->owner);
    cr_assert_eq(pf_family_class(cls)->out_bytes, 0, "every slot is back in its span");
    cr_assert_eq(pf_family_transfer_slots(cls), 0);
    check_bins(pf_tc);
}

Test(tcache, a_bin_in_use_keeps_its_slots_and_spans)
{
    unsigned cls = pf_size_class(256);
    uint32_t cached;
    cache_some_256(&cached);
    churn_class(64, 400, 256); /* one malloc and free of 256 bytes a cycle */
    cr_assert_eq(pf_bin_count(&pf_tc->bins[cls]), cached);
    cr_assert(pf_tc->own[cls].active);
}

/* A lone thread's flushes wait in the transfer cache; once the class goes
 * unused, they go back to their spans too, a batch a look. */
Test(tcache, unused_transfer_batches_go_back_to_their_spans)
{
    unsigned cls = pf_size_class(256);
    uint32_t held = overflow_a_bin();
    cr_assert_gt(held, 0);
    unsigned cycles = 0;
    while (pf_family_transfer_slots(cls) == held && cycles++ < 100)
        churn_class(64, 1, 0);
    cr_assert_eq(pf_family_transfer_slots(cls), held - pf_bin_cap(&pf_tc->bins[cls]) / 2, "one batch at the first look");
    churn_class(64, 400, 0);
    cr_assert_eq(pf_family_transfer_slots(cls), 0);
    cr_assert_eq(pf_bin_count(&pf_tc->bins[cls]), 0);
    cr_assert_eq(pf_family_class(cls)->out_bytes, 0);
}

static void *churn_64(void *arg)
{
    (void)arg;
    churn_class(64, 400, 0);
    return NULL;
}

/* A thread's collection leaves alone the transfer batches of a class it
 * never used: they are other threads', which may be about to take them. */
Test(tcache, a_thread_collects_no_transfer_batch_of_a_class_it_never_used)
{
    unsigned cls = pf_size_class(256);
    uint32_t held = overflow_a_bin();
    cr_assert_gt(held, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, churn_64, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(pf_family_transfer_slots(cls), held);
}

static void *hold_a_cache(void *arg)
{
    pf_free(pf_malloc(16));
    pthread_barrier_wait(arg); /* it holds a cache */
    pthread_barrier_wait(arg); /* until the main thread is done */
    return NULL;
}

/* With another thread holding a cache, a thread's own flushed slots go
 * back to its spans: in the transfer cache the other's refill would take
 * them, and the two threads would share spans from then on. */
Test(tcache, with_two_threads_a_flush_keeps_its_own_slots)
{
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, hold_a_cache, &b), 0);
    pthread_barrier_wait(&b);
    cr_assert_eq(overflow_a_bin(), 0, "the thread's own slots wait for it in its spans");
    pthread_barrier_wait(&b);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&b);
}

/* ---- thread exit and adoption ------------------------------------------------------- */
struct exiter {
    struct pf_tcache *tc;
    int in_use_inside;
    uint64_t allocs_inside;
    void *keep[40];
    void *extra;
};

static void *exiter_a(void *arg)
{
    struct exiter *e = arg;
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = pf_malloc(48);
    for (int i = 0; i < 60; i++)
        pf_free(p[i]);
    memcpy(e->keep, p + 60, sizeof e->keep);
    e->tc = pf_tc;
    e->in_use_inside = atomic_load(&pf_tc->in_use);
    return NULL;
}

static void *exiter_b(void *arg)
{
    struct exiter *e = arg;
    e->extra = pf_malloc(48);
    e->tc = pf_tc;
    e->in_use_inside = atomic_load(&pf_tc->in_use);
    e->allocs_inside = pf_tc->bins[pf_size_class(48)].allocs;
    /* Frees of objects another thread allocated. */
    for (int i = 0; i < 40; i++)
        pf_free(e->keep[i]);
    pf_free(e->extra);
    return NULL;
}

Test(tcache, an_exiting_thread_hands_its_cache_to_the_next)
{
    pf_free(pf_malloc(8)); /* the main thread owns a cache of its own */
    struct pf_tcache *mine = pf_tc;
    unsigned cls = pf_size_class(48);
    struct pf_family *f = pf_family_class(cls);

    struct exiter a, b;
    memset(&a, 0, sizeof a);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, exiter_a, &a), 0);
    pthread_join(t, NULL);
    cr_assert_not_null(a.tc);
    cr_assert_neq(a.tc, mine);
    cr_assert_eq(a.in_use_inside, 1);
    cr_assert_eq(atomic_load(&a.tc->in_use), 0, "in_use cleared at exit");
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        cr_assert_eq(pf_bin_count(&a.tc->bins[c]), 0, "class %u: bin flushed at exit", c);
        cr_assert(!a.tc->own[c].cur && !a.tc->own[c].home && !a.tc->own[c].active,
                  "class %u: owned spans given back at exit", c);
    }
    cr_assert_eq(f->out_bytes, 40 * 48, "only the 40 live objects are out of the spans");
    const struct pf_family_stats *fs = fam_stats("malloc-48");
    cr_assert_not_null(fs);
    cr_assert_eq(fs->allocs, 100);
    cr_assert_eq(fs->frees, 60);
    cr_assert_eq(fs->live_objects, 40, "counters survive the thread");
    cr_assert_eq(stats.totals.threads, 1);

    memset(&b, 0, sizeof b);
    memcpy(b.keep, a.keep, sizeof b.keep);
    cr_assert_eq(pthread_create(&t, NULL, exiter_b, &b), 0);
    pthread_join(t, NULL);
    cr_assert_eq(b.tc, a.tc, "the new thread adopts the cache the old one left");
    cr_assert_eq(b.in_use_inside, 1);
    cr_assert_eq(b.allocs_inside, 101, "with its counters");
    cr_assert_eq(atomic_load(&b.tc->in_use), 0);
    fs = fam_stats("malloc-48");
    cr_assert_eq(fs->allocs, 101);
    cr_assert_eq(fs->frees, 101);
    cr_assert_eq(fs->live_objects, 0);
    cr_assert_eq(fs->live_bytes, 0);
    cr_assert_eq(fs->live_requested, 0);
    cr_assert_eq(f->out_bytes, 0);
    cr_assert_eq(stats.totals.threads, 1);
    cr_assert_eq(pf_tc, mine);
}

/* ---- drain ---------------------------------------------------------------------------- */
static pthread_barrier_t bar;
static struct pf_tcache *other_tc;
static uint32_t other_count;

static void *other_thread(void *arg)
{
    (void)arg;
    void *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = pf_malloc(32);
    for (int i = 0; i < 10; i++)
        pf_free(p[i]);
    other_tc = pf_tc;
    other_count = pf_bin_count(&pf_tc->bins[pf_size_class(32)]);
    pthread_barrier_wait(&bar); /* main drains now */
    pthread_barrier_wait(&bar);
    return NULL;
}

Test(tcache, drain_empties_only_the_calling_threads_bins)
{
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
    pthread_barrier_wait(&bar);

    size_t sizes[] = {16, 32, 100, 1000, 5000, 70000};
    static void *p[6][20];
    for (int k = 0; k < 6; k++)
        for (int i = 0; i < 20; i++)
            p[k][i] = pf_malloc(sizes[k]);
    for (int k = 0; k < 6; k++)
        for (int i = 0; i < 20; i++)
            pf_free(p[k][i]);
    struct pf_tcache *tc = pf_tc;
    for (int k = 0; k < 6; k++)
        cr_assert_gt(pf_bin_count(&tc->bins[pf_size_class(sizes[k])]), 0);
    pf_tcache_drain();
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        cr_assert_eq(pf_bin_count(&tc->bins[c]), 0, "class %u", c);
        cr_assert(!tc->own[c].cur && !tc->own[c].home && !tc->own[c].active, "class %u: owned spans given back", c);
    }
    for (int k = 0; k < 6; k++) {
        unsigned c = pf_size_class(sizes[k]);
        if (sizes[k] != 32)
            cr_assert_eq(pf_family_class(c)->out_bytes, (uint64_t)pf_family_transfer_slots(c) * pf_class_size[c],
                         "only slots in the transfer cache are still out");
    }
    cr_assert_eq(pf_family_class(pf_size_class(32))->out_bytes, (uint64_t)other_count * 32,
                 "the other thread's parked slots are still out");
    cr_assert_eq(pf_bin_count(&other_tc->bins[pf_size_class(32)]), other_count,
                 "drain leaves other threads' bins alone");
    cr_assert_gt(other_count, 0);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    cr_assert_eq(pf_family_class(pf_size_class(32))->out_bytes, 0);
    pthread_barrier_destroy(&bar);
}

/* ---- a thread past its exit hook ---------------------------------------------------- */
static pthread_key_t late_key;
static struct pf_tcache *late_tc = (struct pf_tcache *)1;
static void *late_p;

static void late_destructor(void *arg)
{
    (void)arg;
    late_tc = pf_tc;
    late_p = pf_malloc(200);
    if (late_p)
        memset(late_p, 1, 200);
    pf_free(late_p);
}

static void *late_thread(void *arg)
{
    (void)arg;
    pf_free(pf_malloc(16));
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

Test(tcache, a_thread_past_its_exit_hook_uses_the_locked_path)
{
    pf_free(pf_malloc(16)); /* creates pfalloc's exit key before ours */
    cr_assert_eq(pthread_key_create(&late_key, late_destructor), 0);
    unsigned cls = pf_size_class(200);
    struct pf_family *f = pf_family_class(cls);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, late_thread, NULL), 0);
    pthread_join(t, NULL);
    cr_assert_null(late_tc, "after its exit hook a thread has no cache");
    cr_assert_not_null(late_p);
    cr_assert_eq(f->allocs, 1, "counted on the locked path");
    cr_assert_eq(f->frees, 1);
    cr_assert_eq(f->out_bytes, 0);
    const struct pf_family_stats *fs = fam_stats(f->name);
    cr_assert_not_null(fs);
    cr_assert_eq(fs->live_objects, 0);
    cr_assert_eq(stats.totals.threads, 1, "no cache stays claimed by the dead thread");
}

/* Threads that each make a cache, then (all of them holding one) allocate
 * `nobj` blocks of `size` bytes, let the main thread look, and free them. */
struct crowd {
    pthread_barrier_t *go;
    size_t size;
    int nobj;
    void *p[4];
    struct pf_tcache *tc;
    uint32_t cached_after_free; /* slots of the class in the bin once freed */
};

static void *crowd_thread(void *arg)
{
    struct crowd *c = arg;
    pf_free(pf_malloc(16)); /* a cache of its own */
    pthread_barrier_wait(c->go);
    for (int i = 0; i < c->nobj; i++)
        c->p[i] = pf_malloc(c->size);
    c->tc = pf_tc;
    pthread_barrier_wait(c->go); /* the main thread looks */
    pthread_barrier_wait(c->go);
    for (int i = 0; i < c->nobj; i++)
        pf_free(c->p[i]);
    c->cached_after_free = pf_bin_count(&pf_tc->bins[pf_size_class(c->size)]);
    return NULL;
}

/* Runs n crowd threads; between their allocations and their frees, check(). */
static void crowd_run(unsigned n, size_t size, int nobj, struct crowd *c, void (*check)(struct crowd *, unsigned))
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, n + 1);
    pthread_t *t = calloc(n, sizeof *t);
    cr_assert_not_null(t);
    for (unsigned i = 0; i < n; i++) {
        c[i] = (struct crowd){.go = &go, .size = size, .nobj = nobj};
        cr_assert_eq(pthread_create(&t[i], NULL, crowd_thread, &c[i]), 0);
    }
    pthread_barrier_wait(&go); /* every thread holds a cache */
    pthread_barrier_wait(&go); /* and has allocated */
    check(c, n);
    pthread_barrier_wait(&go);
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
    pthread_barrier_destroy(&go);
}

/* Room for eight more threads than may own spans (*n of them). */
static struct crowd *crowd_of_more_than_four_per_cpu(unsigned *n)
{
    *n = PF_OWNERS_PER_CPU * pf_os_ncpus() + 8;
    if (*n > 2048)
        cr_skip_test("%u threads", *n);
    struct crowd *c = calloc(*n, sizeof *c);
    cr_assert_not_null(c);
    return c;
}

/* Spans of class cls that hold `slots` taken in order: a family's spans
 * start at one slot's chunks and double (pf_class_next_span_bytes). */
static uint64_t spans_for(unsigned cls, uint32_t slots)
{
    uint64_t k = 0;
    for (; slots; k++) {
        uint32_t in = (uint32_t)(pf_class_next_span_bytes(cls, k) / pf_class_size[cls]);
        slots -= in < slots ? in : slots;
    }
    return k;
}

static void check_shared(struct crowd *c, unsigned n)
{
    unsigned cls = pf_size_class(c[0].size);
    cr_assert(pf_tcache_crowded(), "%u threads hold caches, more than %u per CPU", n, PF_OWNERS_PER_CPU);
    for (unsigned i = 0; i < n; i++)
        cr_assert(!c[i].tc->own[cls].cur && !c[i].tc->own[cls].home, "thread %u owns a span", i);
    /* Each refill took half a bin; shared spans fill up one after another. */
    uint32_t per_span = (uint32_t)(pf_class_span_bytes(cls) / pf_class_size[cls]);
    uint32_t taken = n * (pf_bin_cap_of(cls) / 2);
    const struct pf_family_stats *fs = fam_stats(pf_family_class(cls)->name);
    cr_assert_not_null(fs);
    cr_log_info("%u threads: %llu spans of %u slots for %u slots taken", n, (unsigned long long)fs->spans,
                per_span, taken);
    cr_assert_leq(fs->spans, spans_for(cls, taken) + 1, "%llu spans for %u slots of up to %u a span",
                  (unsigned long long)fs->spans, taken, per_span);
}

/* Past four threads per CPU, a cache owns no span: each would hold a span
 * of every class it uses (64 threads on 2 CPUs: 125 MB peak against
 * glibc's 77 in the oversub benchmark; 81 MB once they share). */
Test(tcache, threads_past_four_per_cpu_share_spans)
{
    unsigned n;
    struct crowd *c = crowd_of_more_than_four_per_cpu(&n);
    crowd_run(n, 1000, 4, c, check_shared);
    cr_assert_not(pf_tcache_crowded(), "the threads are gone");
    free(c);
}

static void check_uncached(struct crowd *c, unsigned n)
{
    unsigned cls = pf_size_class(c[0].size);
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(pf_bin_cap(&c[i].tc->bins[cls]), 0, "thread %u: bin of %zu-byte slots open", i, c[0].size);
        cr_assert(!c[i].tc->own[cls].cur && !c[i].tc->own[cls].home, "thread %u owns a span of %zu-byte slots", i,
                  c[0].size);
    }
    uint32_t per_span = (uint32_t)(pf_class_span_bytes(cls) / pf_class_size[cls]);
    uint32_t live = n * (uint32_t)c[0].nobj;
    const struct pf_family_stats *fs = fam_stats(pf_family_class(cls)->name);
    cr_assert_not_null(fs);
    cr_assert_eq(fs->live_objects, live);
    cr_assert_leq(fs->spans, spans_for(cls, live) + 1, "%llu spans for %u live slots of up to %u a span",
                  (unsigned long long)fs->spans, live, per_span);
}

/* Past four threads per CPU, slots above PF_CACHED_MAX are parked in no
 * bin: taken from shared spans and given back under the family lock (two
 * slots of up to 128 KiB a bin, 8 classes, 64 threads: up to 128 MiB). With
 * few threads they are cached as before. */
Test(tcache, crowded_threads_park_no_slot_above_32_kib)
{
    cr_assert_lt(pf_size_class(PF_CACHED_MAX), PF_CACHED_CLASSES);
    cr_assert_eq(pf_class_size[PF_CACHED_CLASSES - 1], PF_CACHED_MAX);
    unsigned cls = pf_size_class(100000);
    cr_assert_geq(cls, PF_CACHED_CLASSES);
    unsigned n;
    struct crowd *c = crowd_of_more_than_four_per_cpu(&n);
    crowd_run(n, 100000, 2, c, check_uncached);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(c[i].cached_after_free, 0, "thread %u parked a freed slot", i);
    struct pf_family *f = pf_family_class(cls);
    cr_assert_eq(f->out_bytes, 0, "every slot back in its span");
    const struct pf_family_stats *fs = fam_stats(f->name);
    cr_assert_eq(fs->live_objects, 0);
    cr_assert_eq(fs->allocs, 2 * n);
    cr_assert_eq(fs->frees, 2 * n);
    free(c);

    /* The threads are gone: a bin of the class opens again. */
    void *p = pf_malloc(100000), *q = pf_malloc(100000);
    pf_free(p);
    pf_free(q);
    cr_assert_eq(pf_bin_count(&pf_tc->bins[cls]), 2, "few threads: freed slots are cached again");
}

/* The main thread's blocks of a class above PF_CACHED_MAX, allocated
 * before the crowd came, and what its own spans of the class look like
 * once a crowded malloc of the class has closed its bin. */
#define BIG 40000
static void *owner_blocks[64];
static struct pf_own owner_seen;

static void check_owner_gives_up(struct crowd *c, unsigned n)
{
    (void)c;
    (void)n;
    unsigned cls = pf_size_class(BIG);
    cr_assert(pf_tcache_crowded());
    cr_assert_eq(pf_bin_count(&pf_tc->bins[cls]), 0);
    void *p = pf_malloc(BIG); /* finds the bin empty: closes it */
    cr_assert_not_null(p);
    cr_assert_eq(pf_bin_cap(&pf_tc->bins[cls]), 0);
    owner_seen = pf_tc->own[cls];
    pf_free(p);
}

/* A thread whose bin of a big class closes takes the shared spans from
 * then on: the spans it owned must not stay its own, part free and used by
 * no one (its frees would put them on its home list). */
Test(tcache, a_bin_that_closes_gives_its_spans_back)
{
    unsigned cls = pf_size_class(BIG);
    cr_assert_geq(cls, PF_CACHED_CLASSES);
    int k = 0;
    do
        owner_blocks[k++] = pf_malloc(BIG);
    while (k < 64 && pf_bin_count(&pf_tc->bins[cls]) > 0);
    cr_assert_eq(pf_bin_count(&pf_tc->bins[cls]), 0, "%d mallocs left slots in the bin", k);
    cr_assert(pf_tc->own[cls].active && pf_tc->own[cls].cur, "the main thread owns a span of the class");
    unsigned n;
    struct crowd *c = crowd_of_more_than_four_per_cpu(&n);
    crowd_run(n, 1000, 1, c, check_owner_gives_up);
    free(c);
    cr_assert(!owner_seen.active && !owner_seen.cur && !owner_seen.home,
              "after its bin closed the thread still owns spans (active %d, cur %p, %u at home)",
              owner_seen.active, (void *)owner_seen.cur, owner_seen.nhome);
    for (int i = 0; i < k; i++)
        pf_free(owner_blocks[i]);
    cr_assert_eq(pf_family_class(cls)->out_bytes, (uint64_t)pf_bin_count(&pf_tc->bins[cls]) * pf_class_size[cls]);
}

/* ---- threads keep to their own spans ---------------------------------------------- */
/* n threads, thread i running fn(base + i * size), all joined. */
static void run_each(unsigned n, void *(*fn)(void *), void *base, size_t size)
{
    pthread_t t[8];
    cr_assert_leq(n, 8);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, fn, (char *)base + i * size), 0);
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* A thread that allocates and frees only its own blocks, long enough for
 * its bins to overflow and refill many times over, then (all of them
 * still running) checks that each of its live blocks and each slot in its
 * bins is in a span it owns. */
#define OWN_LIVE 1500
#define OWN_ITERS 400000
struct keeper {
    pthread_barrier_t *done;
    unsigned id;
    uint64_t foreign; /* out: blocks or cached slots in a span it does not own */
    uint64_t seen;
};

static void *keeper_thread(void *arg)
{
    struct keeper *k = arg;
    static __thread void *live[OWN_LIVE];
    uint64_t x = 0x9E3779B97F4A7C15ull * (k->id + 1);
    /* All of them hold a cache before any churns: a thread that runs alone
     * parks its flushed slots in the transfer cache (no other thread is
     * there to take them), and threads that come later may take those. */
    pf_free(pf_malloc(16));
    pthread_barrier_wait(k->done);
    for (int i = 0; i < OWN_ITERS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned j = (unsigned)(x % OWN_LIVE);
        pf_free(live[j]);
        /* Sizes of up to 1 KiB, most of them small, as programs have them. */
        size_t n = (x >> 20) & 1 ? 1 + (x >> 24) % 64 : 1 + (x >> 24) % 1024;
        live[j] = pf_malloc(n);
        cr_assert_not_null(live[j]);
    }
    pthread_barrier_wait(k->done); /* every thread is done churning */
    for (int j = 0; j < OWN_LIVE; j++) {
        struct pf_span *s = pf_pagemap_get(live[j]);
        k->seen++;
        k->foreign += s->owner != &pf_tc->own[s->cls];
    }
    for (unsigned c = 0; c < PF_NCLASSES; c++)
        for (struct pf_cached *e = pf_tc->bins[c].base; e < pf_tc->bins[c].top; e++) {
            struct pf_span *s = pf_pagemap_get(e->p);
            k->seen++;
            k->foreign += s->owner != &pf_tc->own[c];
        }
    pthread_barrier_wait(k->done); /* no thread exits while another looks */
    for (int j = 0; j < OWN_LIVE; j++)
        pf_free(live[j]);
    return NULL;
}

/* Slots a thread flushed went to the transfer cache, and spans it used up
 * to the shared partial lists, where any thread's refill took them: over a
 * long run, threads that never touch each other's blocks ended up with
 * blocks and state entries side by side on the same cache lines. */
Test(tcache, threads_that_keep_to_their_own_blocks_keep_to_their_own_spans)
{
    enum { N = 4 };
    pthread_barrier_t done;
    pthread_barrier_init(&done, NULL, N);
    struct keeper k[N];
    for (unsigned i = 0; i < N; i++)
        k[i] = (struct keeper){.done = &done, .id = i};
    run_each(N, keeper_thread, k, sizeof k[0]);
    pthread_barrier_destroy(&done);
    cr_assert_not(pf_tcache_crowded(), "%d threads on %u CPUs own spans", N, pf_os_ncpus());
    for (unsigned i = 0; i < N; i++) {
        cr_assert_geq(k[i].seen, OWN_LIVE);
        cr_assert_eq(k[i].foreign, 0, "thread %u: %llu of %llu blocks and cached slots in spans of others", i,
                     (unsigned long long)k[i].foreign, (unsigned long long)k[i].seen);
    }
}

/* ---- ownership by need (family.h) --------------------------------------------------- */

/* Threads in a ring, as the sh6bench and sh8bench programs run them: each
 * allocates a batch, frees half of it itself and mails the other half to
 * the next thread, which frees what it gets. The slots travel, so the
 * class is shared: every thread owned spans of it, each used as far as
 * its own share of the slots in flight ever went, and a batch_xfree of
 * four threads peaked at 7.1 MB instead of 5.5. */
#define RING_N 4
#define RING_BATCH 256
#define RING_ROUNDS 600
#define RING_SIZE 48
struct ringer {
    pthread_barrier_t *done;
    unsigned id;
    void **_Atomic box;      /* half a batch mailed to this thread, or NULL */
    void *out[RING_BATCH / 2]; /* the half this thread mails (free again once the next box is empty) */
    int owns;                /* out: the thread owns spans of the class at the end */
    uint32_t owned, spans;   /* out (thread 0): spans of the class an owner holds, of all */
};
static struct ringer ringers[RING_N];
static atomic_uint ring_finished;

static void ring_drain(struct ringer *r)
{
    void **got = atomic_load_explicit(&r->box, memory_order_acquire);
    if (!got)
        return;
    for (int i = 0; i < RING_BATCH / 2; i++) {
        cr_assert_eq(*(uint64_t *)got[i], (uint64_t)i, "a mailed block changed");
        pf_free(got[i]);
    }
    atomic_store_explicit(&r->box, NULL, memory_order_release);
}

static void *ring_thread(void *arg)
{
    struct ringer *r = arg, *next = &ringers[(r->id + 1) % RING_N];
    struct pf_family *f = pf_family_class(pf_size_class(RING_SIZE));
    void *mine[RING_BATCH];
    pf_free(pf_malloc(16)); /* every thread holds a cache before any mails */
    pthread_barrier_wait(r->done);
    for (int round = 0; round < RING_ROUNDS; round++) {
        for (int i = 0; i < RING_BATCH; i++) {
            mine[i] = pf_malloc(RING_SIZE);
            cr_assert_not_null(mine[i]);
            *(uint64_t *)mine[i] = (uint64_t)(i % (RING_BATCH / 2));
        }
        for (int i = 0; i < RING_BATCH / 2; i++)
            pf_free(mine[i]);
        while (atomic_load_explicit(&next->box, memory_order_acquire)) {
            ring_drain(r); /* no deadlock: empty our own while we wait */
            sched_yield();
        }
        memcpy(r->out, mine + RING_BATCH / 2, sizeof r->out);
        atomic_store_explicit(&next->box, r->out, memory_order_release);
        ring_drain(r);
    }
    /* Until every thread mailed its last, one may still wait for our box. */
    atomic_fetch_add_explicit(&ring_finished, 1, memory_order_release);
    while (atomic_load_explicit(&ring_finished, memory_order_acquire) < RING_N) {
        ring_drain(r);
        sched_yield();
    }
    ring_drain(r);
    pthread_barrier_wait(r->done); /* every box is empty */
    r->owns = pf_tc->own[pf_size_class(RING_SIZE)].active;
    if (r->id == 0) {
        pf_lock(&f->lock);
        for (struct pf_span *sp = f->all; sp; sp = sp->anext) {
            r->spans++;
            r->owned += sp->owner && sp->owner->active;
        }
        pf_unlock(&f->lock);
    }
    pthread_barrier_wait(r->done); /* no thread exits while another looks */
    return NULL;
}

Test(tcache, threads_that_hand_blocks_on_share_the_spans_of_the_class)
{
    pthread_barrier_t done;
    pthread_barrier_init(&done, NULL, RING_N);
    atomic_store(&ring_finished, 0);
    for (unsigned i = 0; i < RING_N; i++)
        ringers[i] = (struct ringer){.done = &done, .id = i};
    run_each(RING_N, ring_thread, ringers, sizeof ringers[0]);
    pthread_barrier_destroy(&done);
    cr_assert_not(pf_tcache_crowded(), "%d threads on %u CPUs own spans", RING_N, pf_os_ncpus());
    for (unsigned i = 0; i < RING_N; i++)
        cr_assert_not(ringers[i].owns, "thread %u still owns spans of a class whose slots travel", i);
    cr_assert_gt(ringers[0].spans, 0);
    cr_assert_eq(ringers[0].owned, 0, "%u of the class's %u spans held by an owner", ringers[0].owned,
                 ringers[0].spans);
}

/* ---- the hold (family.h) ---------------------------------------------------------- */

/* One allocation of kind `how` in a thread of its own: 0 malloc, 1 calloc,
 * 2 realloc of a small block, 3 a large malloc, 4 an aligned one; `done`
 * is set once it returned. */
struct held_job {
    int how;
    atomic_int done;
    void *p;
};

static void *held_thread(void *arg)
{
    struct held_job *j = arg;
    void *small = j->how == 2 ? pf_malloc(40) : NULL;
    if (small)
        atomic_store(&j->done, -1); /* made before the hold was seen: not held yet */
    switch (j->how) {
    case 0: j->p = pf_malloc(64); break;
    case 1: j->p = pf_calloc(3, 20); break;
    case 2: j->p = pf_realloc(small, 4000); break;
    case 3: j->p = pf_malloc(1 << 20); break;
    default: j->p = pf_aligned_alloc(256, 512); break;
    }
    atomic_store(&j->done, 1);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

Test(tcache, a_hold_makes_other_threads_allocations_wait_until_it_ends)
{
    static const char *const names[] = {"malloc", "calloc", "realloc", "large malloc", "aligned_alloc"};
    for (int how = 0; how < 5; how++) {
        /* The other thread has a cache with slots in its bins already. */
        struct held_job j = {.how = how};
        if (how == 2) {
            pf_tcache_hold(1);
        } else {
            pf_free(pf_malloc(64));
            pf_tcache_hold(1);
        }
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, held_thread, &j), 0);
        sleep_ms(150);
        cr_assert_neq(atomic_load(&j.done), 1, "%s went on while held", names[how]);
        /* The holder allocates as usual. */
        void *mine = pf_malloc(64);
        cr_assert_not_null(mine);
        pf_free(mine);
        pf_tcache_hold(0);
        pthread_join(t, NULL);
        cr_assert_eq(atomic_load(&j.done), 1);
        cr_assert_not_null(j.p, "%s", names[how]);
        pf_free(j.p);
        for (unsigned i = 0; i < PF_DIRECT_N; i++)
            cr_assert_neq(pf_tcache_direct_bin(pf_tc, i), &pf_tc->bins[PF_NCLASSES], "direct entry %u given back", i);
    }
}

Test(tcache, a_hold_ends_for_waiters_after_its_time)
{
    /* A holder that never gives the hold back (blocked on a lock a waiter
     * holds) lets its waiters go after PF_HOLD_MAX_MS, once, not per wait. */
    pf_free(pf_malloc(64));
    pf_tcache_hold(1);
    struct held_job j = {.how = 0};
    pthread_t t;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(pthread_create(&t, NULL, held_thread, &j), 0);
    pthread_join(t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    cr_assert_geq(ms, PF_HOLD_MAX_MS - 50, "went on after %ld ms", ms);
    cr_assert_not_null(j.p);
    /* Later allocations, past the deadline, do not wait again. */
    j.how = 1;
    atomic_store(&j.done, 0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(pthread_create(&t, NULL, held_thread, &j), 0);
    pthread_join(t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    cr_assert_lt(ms, PF_HOLD_MAX_MS / 2, "waited %ld ms again", ms);
    pf_tcache_hold(0);
}

Test(tcache, the_slow_path_pops_a_bin_that_is_not_empty)
{
    /* pf_small_alloc sends a malloc whose bin has slots to the slow path
     * while held; when the hold ends before the slow path looks, it must
     * pop the bin, not refill it: a refill writes half a cap above the top
     * of a full bin, past its limit into the next bin's wall. */
    static void *v[1024];
    unsigned cls = pf_size_class(64);
    for (int i = 0; i < 1024; i++)
        v[i] = pf_malloc(64);
    struct pf_bin *b = &pf_tc->bins[cls];
    int i = 0;
    while (b->top != b->limit && i < 1024)
        pf_free(v[i++]);
    uint32_t count = pf_bin_count(b);
    cr_assert_eq(count, pf_bin_cap(b), "the bin is full");
    void *p = pf_alloc_small_slow(64, cls, NULL);
    cr_assert_not_null(p);
    cr_assert_eq(pf_bin_count(b), count - 1, "popped");
    cr_assert(b->top <= b->limit);
    cr_assert_null(pf_tc->bins[cls + 1].base[-1].p, "the next bin's wall is whole");
    pf_free(p);
    for (; i < 1024; i++)
        pf_free(v[i]);
}

/* pf_lock_any_mine tells a signal handler whether it interrupted a locked
 * path: every path that takes locks (refills, flushes, large blocks, a
 * thread's exit, fork's handlers) gives the count back, a failed try
 * leaves it, and a fork child's resets of the forking thread's locks take
 * them off it. */
static void *lock_churn(void *arg)
{
    (void)arg;
    void *p[600];
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < 600; i++)
            p[i] = pf_malloc((size_t)(i % 300) * 8 + 1);
        for (int i = 0; i < 600; i++)
            pf_free(p[i]);
        pf_free(pf_malloc(1 << 20));
    }
    return (void *)(intptr_t)pf_lock_depth;
}

Test(tcache, the_count_of_locks_held_goes_back_to_zero)
{
    cr_assert_eq(pf_lock_depth, 0);
    cr_assert_eq((intptr_t)lock_churn(NULL), 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, lock_churn, NULL), 0);
    for (int i = 0; i < 2; i++) {
        void *depth;
        pthread_join(t[i], &depth);
        cr_assert_eq((intptr_t)depth, 0, "a thread ended holding %ld", (long)(intptr_t)depth);
    }
    cr_assert(!pf_lock_any_mine());
    pf_lock_t l = PF_LOCK_INIT;
    pf_lock(&l);
    cr_assert(pf_lock_any_mine());
    cr_assert_eq(pf_lock_try(&l, 3), 0, "held by this thread: the try fails");
    cr_assert_eq(pf_lock_depth, 1);
    pf_unlock(&l);
    cr_assert_eq(pf_lock_depth, 0);
    /* The process has threads: fork takes and resets every lock. */
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        pf_free(pf_malloc(100));
        _exit(pf_lock_depth == 0 ? 0 : 10 + (pf_lock_depth & 63));
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %d", WEXITSTATUS(st));
    cr_assert_eq(pf_lock_depth, 0, "parent: %d", pf_lock_depth);
}

/* A thread that sets a class family up between fork's prepare handler and
 * the parent's (its first allocation of that size) made the parent give
 * back a lock the prepare had not taken, and the forking thread's count of
 * locks held went below zero. */
static void *make_class(void *arg)
{
    return pf_family_class((unsigned)(uintptr_t)arg);
}

Test(tcache, fork_gives_back_only_the_locks_it_took)
{
    unsigned cls = PF_NCLASSES - 1; /* one nobody here used */
    pf_family_fork_lock();
    int held = pf_lock_depth;
    cr_assert(held > 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, make_class, (void *)(uintptr_t)cls), 0);
    pthread_join(t, NULL);
    pf_family_fork_unlock(0);
    cr_assert_eq(pf_lock_depth, 0, "%d locks counted as held after the fork's handlers", pf_lock_depth);
}

/* ---- ownership comes back (family.h) ------------------------------------------- */

/* Four threads of one class: with `travel`, each first hands its blocks to
 * the next thread for BACK_TRAVEL rounds (the class is shared), then every
 * thread allocates and frees its own batch for BACK_ROUNDS rounds; each
 * records whether it owned spans of the class after each of the last half
 * of those rounds. Once the shared refills run out, a class whose threads
 * keep to their own objects must return to owned spans and stay there, as
 * it does for threads that never handed a block on: before, the threads
 * went on trading transfer batches, owning none (0 of 20 000 rounds), or
 * counted the slots the sharing left with them as travelled and shared the
 * class again. */
#define BACK_N 4
#define BACK_BATCH 256
#define BACK_TRAVEL 50
#define BACK_ROUNDS 40000
#define BACK_SIZE 48
struct backer {
    pthread_barrier_t *bar;
    unsigned id;
    int travel;           /* in: hand blocks on first */
    int shared;           /* out: the thread owned no span of the class after handing on */
    uint32_t owned, seen; /* out: late rounds after which the thread owned spans */
};
static void *back_mail[BACK_N][BACK_BATCH];

static void *back_thread(void *arg)
{
    struct backer *k = arg;
    unsigned cls = pf_size_class(BACK_SIZE);
    void *mine[BACK_BATCH];
    pf_free(pf_malloc(16));
    pthread_barrier_wait(k->bar);
    for (int r = 0; k->travel && r < BACK_TRAVEL; r++) {
        for (int i = 0; i < BACK_BATCH; i++)
            back_mail[k->id][i] = pf_malloc(BACK_SIZE);
        pthread_barrier_wait(k->bar);
        for (int i = 0; i < BACK_BATCH; i++)
            pf_free(back_mail[(k->id + 1) % BACK_N][i]);
        pthread_barrier_wait(k->bar);
    }
    k->shared = !pf_tc->own[cls].active;
    for (int r = 0; r < BACK_ROUNDS; r++) {
        for (int i = 0; i < BACK_BATCH; i++)
            mine[i] = pf_malloc(BACK_SIZE);
        for (int i = 0; i < BACK_BATCH; i++)
            pf_free(mine[i]);
        if (r >= BACK_ROUNDS / 2) {
            k->seen++;
            k->owned += pf_tc->own[cls].active;
        }
    }
    pthread_barrier_wait(k->bar);
    return NULL;
}

static void back_run(int travel, struct backer *k)
{
    pthread_barrier_t back_bar;
    pthread_barrier_init(&back_bar, NULL, BACK_N);
    for (unsigned i = 0; i < BACK_N; i++)
        k[i] = (struct backer){.bar = &back_bar, .id = i, .travel = travel};
    run_each(BACK_N, back_thread, k, sizeof k[0]);
    pthread_barrier_destroy(&back_bar);
}

Test(tcache, threads_that_keep_to_their_own_blocks_never_handed_on_own_spans)
{
    struct backer k[BACK_N];
    back_run(0, k);
    for (unsigned i = 0; i < BACK_N; i++)
        cr_assert_eq(k[i].owned, k[i].seen, "thread %u owned spans after %u of %u late rounds", i, k[i].owned,
                     k[i].seen);
}

Test(tcache, threads_that_handed_blocks_on_then_keep_to_their_own_own_spans_again)
{
    struct backer k[BACK_N];
    back_run(1, k);
    for (unsigned i = 0; i < BACK_N; i++)
        cr_assert(k[i].shared, "thread %u still owned spans of a class whose slots travelled", i);
    for (unsigned i = 0; i < BACK_N; i++)
        cr_assert_geq(k[i].owned * 4, k[i].seen * 3, "thread %u owned spans after %u of %u late rounds", i,
                      k[i].owned, k[i].seen);
}
