/*
 * realloc_grow — buffers grown with realloc, as string builders and dynamic
 * arrays do. Phase 1: `strings` buffers grown side by side from nothing to
 * `small` bytes by appends of 1..32 bytes (many reallocs that stay within
 * or near a size class). Phase 2, `rounds` times: two buffers grown in turn
 * from 8 bytes to `big` bytes by about a quarter each step, so one cannot
 * simply extend into the space after the other: this is where moving pages
 * (mremap) instead of copying bytes pays.
 *
 * Every byte appended is written with a pattern that depends on its offset,
 * and each buffer is checked whole before it is freed: a realloc that loses
 * or shifts contents fails the run.
 */
#include "bench.h"

static unsigned char pat(uint64_t tag, size_t i)
{
    return (unsigned char)(tag + i * 131 + (i >> 9));
}

static void strings_phase(size_t count, size_t limit, uint64_t *seed, uint64_t *reallocs)
{
    unsigned char **buf = calloc(count, sizeof *buf);
    size_t *len = calloc(count, sizeof *len);
    if (buf == NULL || len == NULL)
        bench_fail("out of memory");
    size_t done = 0;
    while (done < count) {
        done = 0;
        for (size_t k = 0; k < count; k++) {
            if (len[k] >= limit) {
                done++;
                continue;
            }
            size_t add = 1 + (size_t)(bench_rand(seed) % 32);
            unsigned char *nb = realloc(buf[k], len[k] + add);
            if (nb == NULL)
                bench_fail("realloc to %zu returned NULL", len[k] + add);
            (*reallocs)++;
            for (size_t i = len[k]; i < len[k] + add; i++)
                nb[i] = pat(k, i);
            buf[k] = nb;
            len[k] += add;
        }
    }
    for (size_t k = 0; k < count; k++) {
        for (size_t i = 0; i < len[k]; i++)
            if (buf[k][i] != pat(k, i))
                bench_fail("string %zu lost byte %zu of %zu", k, i, len[k]);
        free(buf[k]);
    }
    free(buf);
    free(len);
}

/* Big buffers grow in whole words, so the pattern is written word by word. */
static uint64_t word(uint64_t tag, size_t k)
{
    return tag ^ ((uint64_t)k * 0x9E3779B97F4A7C15ULL);
}

struct big {
    uint64_t *w;
    size_t words;
    uint64_t tag;
};

static void grow(struct big *b, size_t words, uint64_t *reallocs)
{
    uint64_t *nw = realloc(b->w, words * 8);
    if (nw == NULL)
        bench_fail("realloc to %zu bytes returned NULL", words * 8);
    (*reallocs)++;
    /* Spot-check what was there: the first and last old words moved too. */
    if (b->words > 0 && (nw[0] != word(b->tag, 0) || nw[b->words - 1] != word(b->tag, b->words - 1)))
        bench_fail("realloc from %zu to %zu bytes lost contents", b->words * 8, words * 8);
    for (size_t k = b->words; k < words; k++)
        nw[k] = word(b->tag, k);
    b->w = nw;
    b->words = words;
}

static void check_free(struct big *b)
{
    for (size_t k = 0; k < b->words; k++)
        if (b->w[k] != word(b->tag, k))
            bench_fail("buffer of %zu bytes lost word %zu", b->words * 8, k);
    free(b->w);
    b->w = NULL;
    b->words = 0;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"strings", "small", "rounds", "big", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    size_t strings = (size_t)bench_opt(&a, "strings", 128, 32);
    size_t small = (size_t)bench_opt(&a, "small", 256 << 10, 16 << 10);
    unsigned rounds = (unsigned)bench_opt(&a, "rounds", 2, 1);
    size_t big = (size_t)bench_opt(&a, "big", 256 << 20, 16 << 20);
    if (strings == 0 || small == 0 || big < 16)
        bench_fail("need strings > 0, small > 0, big >= 16");

    uint64_t seed = bench_seed(5);
    uint64_t reallocs = 0;
    strings_phase(strings, small, &seed, &reallocs);

    for (unsigned r = 0; r < rounds; r++) {
        struct big b[2] = {{NULL, 0, bench_rand(&seed)}, {NULL, 0, bench_rand(&seed)}};
        size_t limit = big / 8;
        for (int turn = 0; b[0].words < limit || b[1].words < limit; turn ^= 1) {
            struct big *x = &b[turn];
            if (x->words >= limit)
                continue;
            size_t next = x->words + x->words / 4 + 1 + (size_t)(bench_rand(&seed) % 8);
            grow(x, next < limit ? next : limit, &reallocs);
        }
        check_free(&b[0]);
        check_free(&b[1]);
    }
    printf("realloc_grow: %zu strings to %zu bytes, %u rounds of 2 buffers to %zu bytes, %llu reallocs: ok\n",
           strings, small, rounds, big, (unsigned long long)reallocs);
    return 0;
}
