/*
 * fragment — fragmentation: `rounds` rounds; round k allocates `count`
 * blocks of sizes in [min << k, min << (k + 1)), then frees every other
 * one. The survivors stay live to the end, so each round's holes are too
 * small for the next round's blocks: an allocator that cannot reuse or
 * release the holes keeps growing. A last round allocates `count` / 2
 * blocks of round 0's sizes again, which fit the oldest holes exactly.
 *
 * Peak RSS against live_bytes=N (the most ever live at once, printed for
 * the suite) shows the waste. Every survivor is checked at the end.
 */
#include "bench.h"

struct obj {
    void *p;
    uint32_t size;
};

int main(int argc, char **argv)
{
    static const char *const keys[] = {"count", "rounds", "min", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    size_t count = (size_t)bench_opt(&a, "count", 1500000, 100000);
    unsigned rounds = (unsigned)bench_opt(&a, "rounds", 4, 4);
    size_t min = (size_t)bench_opt(&a, "min", 16, 16);
    if (count < 2 || rounds == 0 || rounds > 16 || min == 0)
        bench_fail("need count >= 2, 0 < rounds <= 16, min > 0");

    size_t total = count * rounds + count / 2;
    struct obj *o = calloc(total, sizeof *o);
    if (o == NULL)
        bench_fail("out of memory for the table");
    uint64_t seed = bench_seed(8);
    uint64_t live = 0, peak = 0;
    size_t used = 0;
    for (unsigned k = 0; k <= rounds; k++) {
        size_t lo = k < rounds ? min << k : min;
        size_t n_round = k < rounds ? count : count / 2;
        size_t first = used;
        for (size_t i = 0; i < n_round; i++) {
            size_t n = lo + (size_t)(bench_rand(&seed) % lo);
            void *p = bench_malloc(n);
            bench_stamp(p, n, (uint64_t)(uintptr_t)&o[used]);
            o[used].p = p;
            o[used].size = (uint32_t)n;
            used++;
            live += n;
        }
        if (live > peak)
            peak = live;
        if (k == rounds)
            break;
        for (size_t i = first; i < used; i += 2) {
            if (!bench_stamp_ok(o[i].p, o[i].size, (uint64_t)(uintptr_t)&o[i]))
                bench_fail("round %u: block %zu changed while live", k, i);
            free(o[i].p);
            o[i].p = NULL;
            live -= o[i].size;
        }
    }
    size_t survivors = 0;
    for (size_t i = 0; i < used; i++) {
        if (o[i].p == NULL)
            continue;
        if (!bench_stamp_ok(o[i].p, o[i].size, (uint64_t)(uintptr_t)&o[i]))
            bench_fail("block %zu (%u bytes) changed while live", i, o[i].size);
        free(o[i].p);
        live -= o[i].size;
        survivors++;
    }
    if (live != 0 || survivors != (count - (count + 1) / 2) * rounds + count / 2)
        bench_fail("accounting: %llu bytes and %zu blocks left", (unsigned long long)live, survivors);
    printf("fragment: %u rounds of %zu blocks from %zu bytes up, every other one freed: ok\n", rounds, count, min);
    printf("live_bytes=%llu\n", (unsigned long long)(peak + total * sizeof *o));
    free(o);
    return 0;
}
