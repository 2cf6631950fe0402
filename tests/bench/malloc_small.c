/*
 * malloc_small — single thread, malloc/free of mixed small sizes (1..max
 * bytes, skewed small) through a ring of `live` slots: the live set stays
 * in cache, so the time is the cost of the allocator's fast path.
 *
 * Each iteration frees the oldest block in the ring after checking its
 * stamp, then allocates and stamps a new one: a block handed out twice or
 * overwritten by the allocator fails the run.
 *
 * mode=1 runs the same loop with fixed slots of a static arena instead of
 * malloc/free: the loop's own instruction count, which the suite subtracts
 * to get instructions per malloc/free pair under callgrind.
 */
#include "bench.h"

#define SIZE_TABLE 4096 /* power of two: indexed with a mask */
#define ARENA_BYTES (1u << 20)

static unsigned char arena[ARENA_BYTES];

struct ring {
    void **ptr;
    size_t *size;
    uint64_t *tag;
    size_t live;
};

static inline __attribute__((always_inline)) uint64_t run(struct ring *r, const size_t *sizes, uint64_t iters,
                                                          size_t max, int null_mode)
{
    uint64_t verified = 0;
    size_t j = 0;
    for (uint64_t i = 0; i < iters; i++) {
        void *old = r->ptr[j];
        if (old != NULL) {
            if (!bench_stamp_ok(old, r->size[j], r->tag[j]))
                bench_fail("block %p (%zu bytes) changed while live", old, r->size[j]);
            verified++;
            if (!null_mode)
                free(old);
        }
        size_t n = sizes[i & (SIZE_TABLE - 1)];
        void *p = null_mode ? (void *)(arena + j * max) : malloc(n);
        if (p == NULL)
            bench_fail("malloc(%zu) returned NULL", n);
        bench_check_align(p, n);
        uint64_t tag = i * 0x9E3779B97F4A7C15ULL;
        bench_stamp(p, n, tag);
        r->ptr[j] = p;
        r->size[j] = n;
        r->tag[j] = tag;
        if (++j == r->live)
            j = 0;
    }
    for (j = 0; j < r->live; j++) {
        if (r->ptr[j] == NULL)
            continue;
        if (!bench_stamp_ok(r->ptr[j], r->size[j], r->tag[j]))
            bench_fail("block %p (%zu bytes) changed while live", r->ptr[j], r->size[j]);
        verified++;
        if (!null_mode)
            free(r->ptr[j]);
        r->ptr[j] = NULL;
    }
    return verified;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"iters", "live", "max", "mode", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    uint64_t iters = bench_opt(&a, "iters", 100000000, 300000);
    size_t live = (size_t)bench_opt(&a, "live", 256, 256);
    size_t max = (size_t)bench_opt(&a, "max", 512, 512);
    int null_mode = (int)bench_opt(&a, "mode", 0, 0);

    if (live == 0 || max == 0 || max > 4096)
        bench_fail("need live > 0 and 0 < max <= 4096");
    if (null_mode && live * max > ARENA_BYTES)
        bench_fail("mode=1 needs live * max <= %u", ARENA_BYTES);

    static size_t sizes[SIZE_TABLE];
    uint64_t seed = bench_seed(1);
    for (size_t i = 0; i < SIZE_TABLE; i++)
        sizes[i] = bench_small_size(bench_rand(&seed), max);

    struct ring r;
    r.live = live;
    r.ptr = calloc(live, sizeof *r.ptr);
    r.size = calloc(live, sizeof *r.size);
    r.tag = calloc(live, sizeof *r.tag);
    if (r.ptr == NULL || r.size == NULL || r.tag == NULL)
        bench_fail("out of memory for the ring");

    uint64_t verified = null_mode ? run(&r, sizes, iters, max, 1) : run(&r, sizes, iters, max, 0);
    if (verified != iters)
        bench_fail("checked %llu blocks, allocated %llu", (unsigned long long)verified,
                   (unsigned long long)iters);
    printf("malloc_small: %llu malloc/free pairs, live %zu, sizes 1..%zu: ok\n", (unsigned long long)iters, live,
           max);
    free(r.ptr);
    free(r.size);
    free(r.tag);
    return 0;
}
