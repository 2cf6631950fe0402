/*
 * threads_churn — several threads, each allocating and freeing only its own
 * blocks (mixed sizes 1..max, skewed small) through a private set of `live`
 * slots replaced at random. Nothing crosses threads, so an allocator with
 * per-thread caches should scale; one with shared locks or shared cache
 * lines between threads shows it here. Each thread checks every block's
 * stamp before freeing it.
 */
#include "bench.h"

#include <pthread.h>

struct worker {
    pthread_t thread;
    unsigned id;
    uint64_t iters;
    size_t live;
    size_t max;
    uint64_t checked; /* out: blocks whose stamp was verified */
} __attribute__((aligned(64))); /* a line each: the workers share no line of their own */

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t checked = 0;
    void **ptr = calloc(w->live, sizeof *ptr);
    size_t *size = calloc(w->live, sizeof *size);
    uint64_t *tag = calloc(w->live, sizeof *tag);
    if (ptr == NULL || size == NULL || tag == NULL)
        bench_fail("out of memory for the slot table");
    uint64_t seed = bench_seed(100 + w->id);
    for (uint64_t i = 0; i < w->iters; i++) {
        uint64_t r = bench_rand(&seed);
        size_t j = (size_t)(r % w->live);
        if (ptr[j] != NULL) {
            if (!bench_stamp_ok(ptr[j], size[j], tag[j]))
                bench_fail("thread %u: block %p (%zu bytes) changed while live", w->id, ptr[j], size[j]);
            checked++;
            free(ptr[j]);
        }
        size_t n = bench_small_size(r >> 24, w->max);
        void *p = bench_malloc(n);
        bench_stamp(p, n, r);
        ptr[j] = p;
        size[j] = n;
        tag[j] = r;
    }
    for (size_t j = 0; j < w->live; j++) {
        if (ptr[j] == NULL)
            continue;
        if (!bench_stamp_ok(ptr[j], size[j], tag[j]))
            bench_fail("thread %u: block %p (%zu bytes) changed while live", w->id, ptr[j], size[j]);
        checked++;
        free(ptr[j]);
    }
    w->checked = checked;
    free(ptr);
    free(size);
    free(tag);
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"threads", "iters", "live", "max", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    unsigned nthreads = (unsigned)bench_opt(&a, "threads", 4, 4);
    uint64_t iters = bench_opt(&a, "iters", 25000000, 100000); /* per thread */
    size_t live = (size_t)bench_opt(&a, "live", 2000, 500);
    size_t max = (size_t)bench_opt(&a, "max", 1024, 1024);
    if (nthreads == 0 || nthreads > 256 || live == 0 || max == 0)
        bench_fail("need 0 < threads <= 256, live > 0, max > 0");

    struct worker *w = bench_lines(nthreads, sizeof *w);
    for (unsigned t = 0; t < nthreads; t++) {
        w[t].id = t;
        w[t].iters = iters;
        w[t].live = live;
        w[t].max = max;
        if (pthread_create(&w[t].thread, NULL, work, &w[t]) != 0)
            bench_fail("pthread_create failed");
    }
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(w[t].thread, NULL);
        if (w[t].checked != iters)
            bench_fail("thread %u checked %llu blocks, allocated %llu", t, (unsigned long long)w[t].checked,
                       (unsigned long long)iters);
    }
    printf("threads_churn: %u threads x %llu malloc/free pairs, live %zu each: ok\n", nthreads,
           (unsigned long long)iters, live);
    free(w);
    return 0;
}
