/*
 * large_blocks — malloc/free of large blocks, min..max bytes (64 KiB ..
 * 64 MiB by default) with sizes spread evenly on a log scale, through
 * `live` slots replaced at random. Each new block gets one word written in
 * every 4 KiB page, as a program that uses its buffer would: an allocator
 * that maps and unmaps every block pays a page fault per page each time,
 * one that keeps freed blocks for reuse does not (and holds more memory).
 *
 * Every written word is checked before its block is freed.
 */
#include "bench.h"

#define STEP 4096

static void touch(unsigned char *p, size_t n, uint64_t tag)
{
    for (size_t off = 0; off + 8 <= n; off += STEP) {
        uint64_t w = tag ^ off;
        memcpy(p + off, &w, 8);
    }
    bench_stamp(p, n, tag);
}

static int touched_ok(const unsigned char *p, size_t n, uint64_t tag)
{
    if (!bench_stamp_ok(p, n, tag))
        return 0;
    /* The stamp overwrote the first word and the last 8 bytes; check the rest. */
    for (size_t off = STEP; off + 8 <= n - 8; off += STEP) {
        uint64_t w;
        memcpy(&w, p + off, 8);
        if (w != (tag ^ off))
            return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"iters", "live", "min", "max", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    uint64_t iters = bench_opt(&a, "iters", 1000, 100);
    size_t live = (size_t)bench_opt(&a, "live", 8, 8);
    size_t min = (size_t)bench_opt(&a, "min", 64 << 10, 64 << 10);
    size_t max = (size_t)bench_opt(&a, "max", 64 << 20, 8 << 20);
    if (live == 0 || min < 32 || max < min)
        bench_fail("need live > 0 and 32 <= min <= max");

    unsigned char **ptr = calloc(live, sizeof *ptr);
    size_t *size = calloc(live, sizeof *size);
    uint64_t *tag = calloc(live, sizeof *tag);
    if (ptr == NULL || size == NULL || tag == NULL)
        bench_fail("out of memory");
    uint64_t seed = bench_seed(6);
    unsigned octaves = 0; /* whole powers of two between min and max */
    while (octaves < 48 && (min << (octaves + 1)) <= max)
        octaves++;
    uint64_t checked = 0, bytes = 0;
    for (uint64_t i = 0; i < iters + live; i++) {
        size_t j = (size_t)(bench_rand(&seed) % live);
        if (i >= iters)
            j = (size_t)(i - iters); /* the last `live` steps free every slot */
        if (ptr[j] != NULL) {
            if (!touched_ok(ptr[j], size[j], tag[j]))
                bench_fail("block %p (%zu bytes) changed while live", (void *)ptr[j], size[j]);
            checked++;
            free(ptr[j]);
            ptr[j] = NULL;
        }
        if (i >= iters)
            continue;
        /* Log-uniform without libm: a random octave, then a uniform point in it. */
        uint64_t r = bench_rand(&seed);
        size_t base = octaves == 0 ? min : min << (r % octaves);
        size_t n = base + (size_t)((r >> 16) % base);
        if (n > max)
            n = max;
        if (n > max)
            n = max;
        unsigned char *p = bench_malloc(n);
        tag[j] = bench_rand(&seed);
        touch(p, n, tag[j]);
        ptr[j] = p;
        size[j] = n;
        bytes += n;
    }
    if (checked != iters)
        bench_fail("checked %llu blocks, allocated %llu", (unsigned long long)checked, (unsigned long long)iters);
    printf("large_blocks: %llu blocks of %zu..%zu bytes (%llu MiB in all), live %zu: ok\n",
           (unsigned long long)iters, min, max, (unsigned long long)(bytes >> 20), live);
    free(ptr);
    free(size);
    free(tag);
    return 0;
}
