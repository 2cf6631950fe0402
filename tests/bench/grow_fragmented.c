/*
 * grow_fragmented — a heap that grows past many freed medium blocks. The
 * program first allocates `pairs` pairs of medium blocks (40 000 and
 * 24 000 bytes, which a segregated allocator keeps one run of pages each
 * or so), then frees the first of every pair: the freed pages lie between
 * blocks still live, so no two of them are neighbours. Then it allocates
 * `grow` blocks of 100 000 bytes, which need longer runs of pages than any
 * one freed piece, writes a word at the start and end of each and checks
 * them all.
 * An allocator that looks through its freed pieces for neighbours to join
 * before it takes fresh pages pays that look on every new run: this is
 * where it shows. Most of the time is page faults, and their number is the
 * layout: blocks laid end to end share a page between one's last word and
 * the next one's first, blocks in slots of their own size class do not.
 */
#include "bench.h"

#define BIG 100000

/* A word at the start of the block and one at its end: two pages
 * faulted in, not all of them, so the time is the allocator's more than
 * the kernel's. */
static void fill(unsigned char *b, size_t n, uint64_t tag)
{
    memcpy(b, &tag, 8);
    memcpy(b + n - 8, &tag, 8);
}

static int filled(const unsigned char *b, size_t n, uint64_t tag)
{
    uint64_t w0, w1;
    memcpy(&w0, b, 8);
    memcpy(&w1, b + n - 8, 8);
    return w0 == tag && w1 == tag;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"pairs", "grow", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    size_t pairs = (size_t)bench_opt(&a, "pairs", 4000, 500);
    size_t grow = (size_t)bench_opt(&a, "grow", 30000, 2000);
    if (pairs == 0 || grow == 0 || pairs > 1000000 || grow > 1000000)
        bench_fail("need 0 < pairs, grow <= 1000000");
    void **freed = malloc(pairs * sizeof *freed), **kept = malloc(pairs * sizeof *kept);
    void **big = malloc(grow * sizeof *big);
    if (!freed || !kept || !big)
        bench_fail("out of memory for the tables");
    for (size_t i = 0; i < pairs; i++) {
        freed[i] = bench_malloc(40000);
        kept[i] = bench_malloc(24000);
        fill(freed[i], 40000, i);
        fill(kept[i], 24000, ~(uint64_t)i);
    }
    for (size_t i = 0; i < pairs; i++) {
        if (!filled(freed[i], 40000, i))
            bench_fail("block %zu of 40000 bytes changed while live", i);
        free(freed[i]);
    }
    for (size_t i = 0; i < grow; i++) {
        big[i] = bench_malloc(BIG);
        fill(big[i], BIG, i * 0x9E3779B97F4A7C15ULL);
    }
    for (size_t i = 0; i < grow; i++) {
        if (!filled(big[i], BIG, i * 0x9E3779B97F4A7C15ULL))
            bench_fail("block %zu of %d bytes changed while live", i, BIG);
        free(big[i]);
    }
    for (size_t i = 0; i < pairs; i++) {
        if (!filled(kept[i], 24000, ~(uint64_t)i))
            bench_fail("block %zu of 24000 bytes changed while live", i);
        free(kept[i]);
    }
    printf("grow_fragmented: %zu pairs, one of each freed, then %zu blocks of %d bytes: ok\n", pairs, grow, BIG);
    free(freed);
    free(kept);
    free(big);
    return 0;
}
