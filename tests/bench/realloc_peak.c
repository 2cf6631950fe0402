/*
 * realloc_peak — the memory a growing buffer costs: one buffer grown by
 * realloc from 16 bytes to `final` bytes, each step adding an eighth of
 * its size (at least `step` bytes), every new byte written, as a reader
 * appending a file or a vector doubling slowly would; then freed, and
 * grown again, `rounds` times (a program that reads one file after
 * another, and an allocator that keeps freed big blocks for reuse has
 * the last one at hand while the next one grows). Nothing else is
 * live, so peak RSS divided by the final size (printed as final_bytes=N,
 * which the suite reads as `rss/final`) is what growth costs on top of the
 * bytes themselves: an allocator that copies into a new block, or keeps
 * the old block's pages while the new one fills, holds about twice.
 *
 * Every byte appended gets a pattern that depends on its offset; after
 * each step the first and last bytes of the old contents are checked, and
 * the whole buffer at the end: a realloc that loses or shifts contents
 * fails the run.
 */
#include "bench.h"

static unsigned char pat(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 12) + 7);
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"final", "step", "rounds", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    size_t final = (size_t)bench_opt(&a, "final", 90 << 20, 8 << 20);
    size_t step = (size_t)bench_opt(&a, "step", 4096, 4096);
    unsigned rounds = (unsigned)bench_opt(&a, "rounds", 10, 10);
    if (final < 16 || step == 0 || rounds == 0)
        bench_fail("need final >= 16, step > 0, rounds > 0");

    uint64_t reallocs = 0;
    for (unsigned r = 0; r < rounds; r++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        while (len < final) {
            size_t add = len / 8 > step ? len / 8 : step;
            size_t next = final - len < add ? final : len + add;
            if (len == 0)
                next = 16;
            unsigned char *nb = realloc(buf, next);
            if (nb == NULL)
                bench_fail("realloc to %zu bytes returned NULL", next);
            reallocs++;
            if (len > 0 && (nb[0] != pat(0) || nb[len - 1] != pat(len - 1)))
                bench_fail("realloc from %zu to %zu bytes lost contents", len, next);
            for (size_t i = len; i < next; i++)
                nb[i] = pat(i);
            buf = nb;
            len = next;
        }
        for (size_t i = 0; i < len; i++)
            if (buf[i] != pat(i))
                bench_fail("buffer of %zu bytes lost byte %zu", len, i);
        /* Freed, so the next round grows where a cache of freed ranges
         * may serve it. */
        free(buf);
    }
    printf("realloc_peak: %u rounds of one buffer grown to %zu bytes, %llu reallocs: ok\n", rounds, final,
           (unsigned long long)reallocs);
    printf("final_bytes=%zu\n", final);
    return 0;
}
