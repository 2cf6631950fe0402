/*
 * small_live — memory overhead: `count` small blocks (1..max bytes, skewed
 * small) allocated and all kept live at once, then freed. Peak RSS divided
 * by the bytes requested (printed as live_bytes=N, which the suite reads)
 * is the allocator's overhead per live byte: headers, size-class rounding,
 * metadata, and pages held but not used.
 *
 * Every block is stamped when allocated and checked before it is freed.
 */
#include "bench.h"

int main(int argc, char **argv)
{
    static const char *const keys[] = {"count", "max", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    size_t count = (size_t)bench_opt(&a, "count", 5000000, 200000);
    size_t max = (size_t)bench_opt(&a, "max", 128, 128);
    if (count == 0 || max == 0)
        bench_fail("need count > 0 and max > 0");

    void **ptr = malloc(count * sizeof *ptr);
    if (ptr == NULL)
        bench_fail("out of memory for the pointer table");
    /* Sizes and tags are recomputed from the seed instead of stored, so the
     * table above is the only memory the program adds to the blocks. */
    uint64_t seed = bench_seed(7);
    uint64_t bytes = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t r = bench_rand(&seed);
        size_t n = bench_small_size(r, max);
        void *p = bench_malloc(n);
        bench_stamp(p, n, r);
        ptr[i] = p;
        bytes += n;
    }
    seed = bench_seed(7);
    for (size_t i = 0; i < count; i++) {
        uint64_t r = bench_rand(&seed);
        size_t n = bench_small_size(r, max);
        if (!bench_stamp_ok(ptr[i], n, r))
            bench_fail("block %zu (%zu bytes) changed while live", i, n);
        free(ptr[i]);
    }
    free(ptr);
    printf("small_live: %zu blocks of 1..%zu bytes live at once: ok\n", count, max);
    /* What the program itself needed at the peak: the blocks plus its table. */
    printf("live_bytes=%llu\n", (unsigned long long)(bytes + count * sizeof(void *)));
    return 0;
}
