/*
 * malloc_live — single thread, malloc/free of mixed small sizes (1..max
 * bytes, skewed small) with a large live set: `live` blocks stay allocated
 * and each step replaces one chosen at random. The set is far larger than
 * the caches, so the time shows how many cache and TLB misses the
 * allocator's metadata and free lists add to each operation.
 *
 * Every freed block's stamp is checked first; every block is checked again
 * before the final frees.
 */
#include "bench.h"

int main(int argc, char **argv)
{
    static const char *const keys[] = {"iters", "live", "max", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    uint64_t iters = bench_opt(&a, "iters", 8000000, 200000);
    size_t live = (size_t)bench_opt(&a, "live", 1000000, 20000);
    size_t max = (size_t)bench_opt(&a, "max", 256, 256);
    if (live == 0 || max == 0)
        bench_fail("need live > 0 and max > 0");

    void **ptr = calloc(live, sizeof *ptr);
    uint32_t *size = calloc(live, sizeof *size);
    uint64_t *tag = calloc(live, sizeof *tag);
    if (ptr == NULL || size == NULL || tag == NULL)
        bench_fail("out of memory for the slot table");

    uint64_t seed = bench_seed(2);
    uint64_t bytes = 0;
    for (size_t j = 0; j < live; j++) {
        size_t n = bench_small_size(bench_rand(&seed), max);
        void *p = bench_malloc(n);
        tag[j] = bench_rand(&seed);
        bench_stamp(p, n, tag[j]);
        ptr[j] = p;
        size[j] = (uint32_t)n;
        bytes += n;
    }
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t r = bench_rand(&seed);
        size_t j = (size_t)(r % live);
        if (!bench_stamp_ok(ptr[j], size[j], tag[j]))
            bench_fail("block %p (%u bytes) changed while live", ptr[j], size[j]);
        free(ptr[j]);
        bytes -= size[j];
        size_t n = bench_small_size(r >> 20, max);
        void *p = bench_malloc(n);
        tag[j] = r;
        bench_stamp(p, n, r);
        ptr[j] = p;
        size[j] = (uint32_t)n;
        bytes += n;
    }
    uint64_t check = 0;
    for (size_t j = 0; j < live; j++) {
        if (!bench_stamp_ok(ptr[j], size[j], tag[j]))
            bench_fail("block %p (%u bytes) changed while live", ptr[j], size[j]);
        check += size[j];
        free(ptr[j]);
    }
    if (check != bytes)
        bench_fail("live bytes %llu, expected %llu", (unsigned long long)check, (unsigned long long)bytes);
    printf("malloc_live: %llu replacements in a live set of %zu blocks (%llu bytes): ok\n",
           (unsigned long long)iters, live, (unsigned long long)bytes);
    free(ptr);
    free(size);
    free(tag);
    return 0;
}
