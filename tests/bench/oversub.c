/*
 * oversub — many more threads than cores (64 by default), all allocating
 * into one shared table of slots and freeing whatever block they replace,
 * which another thread most likely allocated. Nearly every free crosses
 * threads and the shared paths (refills, flushes, the large cache) are
 * busy from every thread at once, so an allocator whose locks keep
 * spinning or yielding while the holder is descheduled burns the cores
 * that the holder needs. Each thread checks a block's stamp before it
 * frees it; a few blocks are large, so large allocation paths contend too.
 */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>

struct slot {
    _Atomic(uintptr_t) block; /* the block, or 0 */
};

/* A block stores its own size and tag in its first 16 bytes: the thread
 * that frees it did not allocate it. */
struct head {
    uint64_t size;
    uint64_t tag;
};

static struct slot *table;
static size_t nslots;

struct worker {
    pthread_t thread;
    unsigned id;
    uint64_t iters;
    size_t max;
    uint64_t checked; /* out: replaced blocks whose stamp was verified */
} __attribute__((aligned(64))); /* a line each: the workers share no line of their own */

static void check_and_free(uintptr_t b, unsigned id)
{
    struct head h;
    memcpy(&h, (void *)b, sizeof h);
    if (!bench_stamp_ok((char *)b + sizeof h, h.size - sizeof h, h.tag))
        bench_fail("thread %u: block %p (%llu bytes) changed while live", id, (void *)b,
                   (unsigned long long)h.size);
    free((void *)b);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t seed = bench_seed(700 + w->id);
    for (uint64_t i = 0; i < w->iters; i++) {
        uint64_t r = bench_rand(&seed);
        /* One request in 256 is large (64..512 KiB). */
        size_t n = (r & 255) == 0 ? (size_t)(65536 + (r >> 20) % (448 * 1024))
                                  : bench_small_size(r >> 8, w->max);
        if (n < 2 * sizeof(struct head))
            n = 2 * sizeof(struct head);
        char *p = bench_malloc(n);
        struct head h = {n, r};
        memcpy(p, &h, sizeof h);
        bench_stamp(p + sizeof h, n - sizeof h, r);
        size_t j = (size_t)((r >> 32) % nslots);
        uintptr_t old = atomic_exchange_explicit(&table[j].block, (uintptr_t)p, memory_order_acq_rel);
        if (old != 0) {
            check_and_free(old, w->id);
            w->checked++;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"threads", "iters", "live", "max", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    unsigned nthreads = (unsigned)bench_opt(&a, "threads", 64, 64);
    uint64_t iters = bench_opt(&a, "iters", 400000, 5000); /* per thread */
    nslots = (size_t)bench_opt(&a, "live", 20000, 2000);
    size_t max = (size_t)bench_opt(&a, "max", 2048, 2048);
    if (nthreads == 0 || nthreads > 1024 || nslots == 0 || max == 0)
        bench_fail("need 0 < threads <= 1024, live > 0, max > 0");

    table = calloc(nslots, sizeof *table);
    struct worker *w = bench_lines(nthreads, sizeof *w);
    if (table == NULL)
        bench_fail("out of memory");
    for (unsigned t = 0; t < nthreads; t++) {
        w[t].id = t;
        w[t].iters = iters;
        w[t].max = max;
        if (pthread_create(&w[t].thread, NULL, work, &w[t]) != 0)
            bench_fail("pthread_create failed");
    }
    uint64_t checked = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(w[t].thread, NULL);
        checked += w[t].checked;
    }
    uint64_t left = 0;
    for (size_t j = 0; j < nslots; j++) {
        uintptr_t b = atomic_load_explicit(&table[j].block, memory_order_relaxed);
        if (b != 0) {
            check_and_free(b, nthreads);
            left++;
        }
    }
    /* Every block allocated was either replaced (and checked) or left in the table. */
    if (checked + left != (uint64_t)nthreads * iters)
        bench_fail("%llu blocks checked, %llu allocated", (unsigned long long)(checked + left),
                   (unsigned long long)nthreads * iters);
    printf("oversub: %u threads x %llu mallocs into %zu shared slots: ok\n", nthreads,
           (unsigned long long)iters, nslots);
    free(table);
    free(w);
    return 0;
}
