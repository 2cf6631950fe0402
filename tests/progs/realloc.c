/*
 * realloc — one block grown from 1 byte to 256 MiB (every size up to 4 KiB,
 * then by steps of about an eighth), its contents checked after every step,
 * then shrunk back down the same way; plus realloc of NULL, reallocarray
 * overflow, and many small blocks growing side by side so in-place growth
 * into a neighbour would show. Output is the same under any correct
 * allocator.
 *
 * usage: realloc [max MiB]
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

static void fill(unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        p[i] = pattern(i);
}

/* First index below n whose byte is not the pattern's, or n. Blocks above
 * 1 MiB are checked at a stride (a prime, so every page offset gets its
 * turn) and in full over their last 64 KiB, where a copy would end. */
static size_t first_bad(const unsigned char *p, size_t n)
{
    size_t tail = n > (64u << 10) ? n - (64u << 10) : 0;
    size_t step = n > (1u << 20) ? 61 : 1;
    for (size_t i = 0; i < n; i += i < tail ? step : 1)
        if (p[i] != pattern(i))
            return i;
    return n;
}

static size_t next_size(size_t s)
{
    return s < 4096 ? s + 1 : s + s / 8 + 1;
}

static int grow_and_shrink(size_t max)
{
    unsigned char *p = realloc(NULL, 1);
    size_t size = 1, steps = 0;
    if (!p)
        return -1;
    fill(p, 0, 1);
    while (size < max) {
        size_t n = next_size(size);
        if (n > max)
            n = max;
        unsigned char *q = realloc(p, n);
        if (!q) {
            fprintf(stderr, "realloc: %zu -> %zu failed\n", size, n);
            free(p);
            return -1;
        }
        size_t bad = first_bad(q, size);
        if (bad != size) {
            fprintf(stderr, "realloc: growing %zu -> %zu lost byte %zu\n", size, n, bad);
            free(q);
            return -1;
        }
        if (malloc_usable_size(q) < n) {
            fprintf(stderr, "realloc: usable size of %zu-byte block is %zu\n", n,
                    malloc_usable_size(q));
            free(q);
            return -1;
        }
        fill(q, size, n);
        p = q;
        size = n;
        steps++;
    }
    printf("grew 1 -> %zu bytes in %zu steps, contents kept\n", size, steps);
    steps = 0;
    while (size > 1) {
        size_t n = size <= 4096 ? size - 1 : size - size / 8;
        unsigned char *q = realloc(p, n);
        if (!q) {
            fprintf(stderr, "realloc: shrinking %zu -> %zu failed\n", size, n);
            free(p);
            return -1;
        }
        size_t bad = first_bad(q, n);
        if (bad != n) {
            fprintf(stderr, "realloc: shrinking %zu -> %zu lost byte %zu\n", size, n, bad);
            free(q);
            return -1;
        }
        p = q;
        size = n;
        steps++;
    }
    printf("shrank back to 1 byte in %zu steps, contents kept\n", steps);
    free(p);
    return 0;
}

/* Many blocks grown in turn: each one's growth must not touch the others. */
static int side_by_side(void)
{
    enum { N = 200 };
    unsigned char *b[N];
    size_t sz[N];
    for (int i = 0; i < N; i++) {
        sz[i] = 8;
        b[i] = malloc(sz[i]);
        if (!b[i])
            return -1;
        memset(b[i], i, sz[i]);
    }
    for (int round = 0; round < 12; round++) {
        for (int i = 0; i < N; i++) {
            size_t n = sz[i] + 8 + (size_t)(i % 7) * (size_t)round * 3;
            unsigned char *q = realloc(b[i], n);
            if (!q)
                return -1;
            for (size_t j = 0; j < sz[i]; j++)
                if (q[j] != (unsigned char)i) {
                    fprintf(stderr, "realloc: block %d lost byte %zu in round %d\n", i, j, round);
                    return -1;
                }
            memset(q, i, n);
            b[i] = q;
            sz[i] = n;
        }
    }
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        for (size_t j = 0; j < sz[i]; j++)
            if (b[i][j] != (unsigned char)i) {
                fprintf(stderr, "realloc: block %d overwritten at byte %zu\n", i, j);
                return -1;
            }
        total += sz[i];
        free(b[i]);
    }
    printf("%d blocks grown side by side to %zu bytes in all, none overwritten\n", N, total);
    return 0;
}

/* The compiler must not reason about the block across a failing call. */
static unsigned char *hide(unsigned char *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void edges(void)
{
    unsigned char *p = malloc(100);
    if (!p)
        return;
    memset(p, 9, 100);
    volatile size_t big = SIZE_MAX / 2 + 1, huge = SIZE_MAX - 64;
    errno = 0;
    void *q = reallocarray(hide(p), big, 2);
    printf("reallocarray overflow: %s, errno %s, block %s\n", q ? "block" : "NULL",
           errno == ENOMEM ? "ENOMEM" : "other", p[0] == 9 && p[99] == 9 ? "kept" : "damaged");
    errno = 0;
    q = realloc(hide(p), huge);
    printf("realloc to SIZE_MAX - 64: %s, errno %s, block %s\n", q ? "block" : "NULL",
           errno == ENOMEM ? "ENOMEM" : "other", p[0] == 9 && p[99] == 9 ? "kept" : "damaged");
    q = reallocarray(hide(p), 50, 4);
    printf("reallocarray 50 x 4: %s\n", q && ((unsigned char *)q)[99] == 9 ? "ok" : "wrong");
    free(q ? q : hide(p));
}

int main(int argc, char **argv)
{
    size_t max_mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    if (max_mib == 0)
        return 2;
    if (grow_and_shrink(max_mib << 20) != 0)
        return 1;
    if (side_by_side() != 0)
        return 1;
    edges();
    return 0;
}
