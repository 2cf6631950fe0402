/*
 * phases — a program whose objects change size between phases: `rounds`
 * rounds, each of two phases that fill `mb` MiB with blocks, write them,
 * check them and free them all. The first phase asks for small blocks
 * (16..256 bytes), the second for blocks of 16..48 KiB, which a segregated
 * allocator keeps in bigger runs of pages than the small ones. An allocator
 * whose freed pages of one size serve the next phase's other size reuses
 * resident memory; one that cannot faults in fresh pages every phase (and
 * gives the old ones back), so page faults (minflt) and system time show it.
 *
 * Every block is stamped, and each page of a big one written, when it is
 * allocated; all of it is checked before it is freed.
 */
#include "bench.h"

#define PAGE 4096

struct obj {
    void *p;
    uint32_t size;
};

static void fill(struct obj *o, uint64_t tag)
{
    unsigned char *b = o->p;
    for (size_t off = 8; off + 16 <= o->size; off += PAGE)
        memcpy(b + off, &tag, 8);
    bench_stamp(b, o->size, tag);
}

static int filled(const struct obj *o, uint64_t tag)
{
    const unsigned char *b = o->p;
    for (size_t off = 8; off + 16 <= o->size; off += PAGE) {
        uint64_t w;
        memcpy(&w, b + off, 8);
        if (w != tag)
            return 0;
    }
    return bench_stamp_ok(b, o->size, tag);
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"rounds", "mb", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    unsigned rounds = (unsigned)bench_opt(&a, "rounds", 20, 2);
    size_t mb = (size_t)bench_opt(&a, "mb", 32, 8);
    if (rounds == 0 || mb == 0 || mb > 4096)
        bench_fail("need rounds > 0 and 0 < mb <= 4096");
    size_t bytes = mb << 20;
    size_t cap = bytes / 16 + 1;
    struct obj *o = calloc(cap, sizeof *o);
    if (o == NULL)
        bench_fail("out of memory for the table");
    uint64_t seed = bench_seed(11), peak = 0, blocks = 0;
    for (unsigned r = 0; r < rounds; r++) {
        for (int phase = 0; phase < 2; phase++) {
            size_t lo = phase ? 16 << 10 : 16, hi = phase ? 48 << 10 : 256;
            size_t n = 0, live = 0;
            while (live < bytes && n < cap) {
                size_t sz = lo + (size_t)(bench_rand(&seed) % (hi - lo + 1));
                o[n].p = bench_malloc(sz);
                o[n].size = (uint32_t)sz;
                fill(&o[n], (uint64_t)(uintptr_t)&o[n] ^ r);
                live += sz;
                n++;
            }
            if (live > peak)
                peak = live;
            for (size_t i = 0; i < n; i++) {
                if (!filled(&o[i], (uint64_t)(uintptr_t)&o[i] ^ r))
                    bench_fail("round %u phase %d: block %zu (%u bytes) changed while live", r, phase, i,
                               o[i].size);
                free(o[i].p);
            }
            blocks += n;
        }
    }
    printf("phases: %u rounds of %zu MiB of small blocks, then of 16..48 KiB ones (%llu blocks): ok\n", rounds,
           mb, (unsigned long long)blocks);
    printf("live_bytes=%llu\n", (unsigned long long)(peak + cap * sizeof *o));
    free(o);
    return 0;
}
