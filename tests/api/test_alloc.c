/*
 * test_alloc.c — the untyped calls through the public header only, held to
 * glibc's semantics: alignment, sizes, contents, zeroing, errno on failure,
 * realloc in every direction, the aligned variants, and free's promises.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfalloc.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static int aligned_to(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

/* xorshift64*: a fixed seed keeps every run the same. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The byte at offset i of the block with tag t: differs between neighbours
 * and along the block, so a shifted or shared range shows. */
static unsigned char pattern(size_t t, size_t i)
{
    return (unsigned char)(t * 131u + i * 7u + (i >> 8) + 1u);
}

static void fill(unsigned char *p, size_t n, size_t t)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(t, i);
}

/* Offset of the first byte that differs from the pattern, or n. */
static size_t check(const unsigned char *p, size_t n, size_t t)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(t, i))
            return i;
    return n;
}

static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return i;
    return n;
}

/* Live objects of the family `name` (0 when it has none yet): lets a test
 * see that a call really freed something. */
static uint64_t live_in(const char *name)
{
    static struct pf_stats st;
    cr_assert_eq(pf_stats_get(&st), 0);
    for (uint32_t i = 0; i < st.nfamilies; i++)
        if (strcmp(st.fam[i].name, name) == 0)
            return st.fam[i].live_objects;
    return 0;
}

Test(alloc, every_size_aligned_and_usable)
{
    /* Every size from 0 to 70000 one at a time: aligned, usable covers the
     * request, first and last usable bytes writable. */
    for (size_t n = 0; n <= 70000; n++) {
        unsigned char *p = pf_malloc(n);
        cr_assert_not_null(p, "malloc(%zu)", n);
        cr_assert(aligned_to(p, 16), "malloc(%zu) = %p not 16-aligned", n, (void *)p);
        size_t u = pf_malloc_usable_size(p);
        cr_assert_geq(u, n, "usable_size %zu < %zu", u, n);
        if (u > 0) {
            p[0] = 0x5a;
            p[u - 1] = 0xa5;
            cr_assert(p[0] == 0x5a && p[u - 1] == 0xa5);
        }
        pf_free(p);
    }
}

Test(alloc, sizes_kept_live_do_not_overlap)
{
    /* Sizes 0..4096 step 1 and up to 70000 step 61, all live at once, each
     * filled over its whole usable size, checked after all are written. */
    enum { MAXN = 6000 };
    static unsigned char *blk[MAXN];
    static size_t use[MAXN];
    size_t count = 0;
    for (size_t n = 0; n <= 70000; n += (n < 4096 ? 1 : 61)) {
        cr_assert_lt(count, (size_t)MAXN);
        blk[count] = pf_malloc(n);
        cr_assert_not_null(blk[count]);
        cr_assert(aligned_to(blk[count], 16));
        use[count] = pf_malloc_usable_size(blk[count]);
        cr_assert_geq(use[count], n);
        fill(blk[count], use[count], count);
        count++;
    }
    for (size_t i = 0; i < count; i++) {
        size_t bad = check(blk[i], use[i], i);
        cr_assert_eq(bad, use[i], "block %zu (%p, usable %zu) overwritten at %zu", i,
                     (void *)blk[i], use[i], bad);
    }
    for (size_t i = 0; i < count; i++)
        pf_free(blk[i]);
}

static int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

Test(alloc, mixed_sizes_patterns_survive_churn)
{
    /* Many live blocks of mixed sizes, freed and replaced at random, then
     * every pattern checked and the address ranges proven disjoint. */
    enum { LIVE = 3000, ROUNDS = 20000 };
    static unsigned char *blk[LIVE];
    static size_t use[LIVE], tag[LIVE];
    static uintptr_t ranges[LIVE][2];
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    size_t next_tag = 1;
    for (size_t r = 0; r < LIVE + ROUNDS; r++) {
        size_t i = r < LIVE ? r : (size_t)(rng_next(&s) % LIVE);
        if (r >= LIVE) {
            cr_assert_eq(check(blk[i], use[i], tag[i]), use[i], "block %zu damaged", i);
            pf_free(blk[i]);
        }
        uint64_t k = rng_next(&s) % 1000;
        size_t n;
        if (k < 850)
            n = (size_t)(rng_next(&s) % 512);
        else if (k < 990)
            n = 512 + (size_t)(rng_next(&s) % (32 * KIB));
        else
            n = 128 * KIB + (size_t)(rng_next(&s) % (2 * MIB));
        blk[i] = pf_malloc(n);
        cr_assert_not_null(blk[i], "malloc(%zu)", n);
        cr_assert(aligned_to(blk[i], 16));
        use[i] = pf_malloc_usable_size(blk[i]);
        cr_assert_geq(use[i], n);
        tag[i] = next_tag++;
        fill(blk[i], use[i], tag[i]);
    }
    for (size_t i = 0; i < LIVE; i++) {
        size_t bad = check(blk[i], use[i], tag[i]);
        cr_assert_eq(bad, use[i], "block %zu (%p) overwritten at %zu", i, (void *)blk[i], bad);
        ranges[i][0] = (uintptr_t)blk[i];
        ranges[i][1] = (uintptr_t)blk[i] + (use[i] ? use[i] : 1);
    }
    qsort(ranges, LIVE, sizeof ranges[0], cmp_addr);
    for (size_t i = 1; i < LIVE; i++)
        cr_assert_leq(ranges[i - 1][1], ranges[i][0], "blocks at %#lx and %#lx overlap",
                      (unsigned long)ranges[i - 1][0], (unsigned long)ranges[i][0]);
    for (size_t i = 0; i < LIVE; i++)
        pf_free(blk[i]);
}

Test(alloc, malloc_zero_is_unique_and_freeable)
{
    enum { N = 200 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = pf_malloc(0);
        cr_assert_not_null(p[i]);
        cr_assert(aligned_to(p[i], 16));
        for (int j = 0; j < i; j++)
            cr_assert_neq(p[i], p[j], "malloc(0) returned %p twice", p[i]);
    }
    for (int i = 0; i < N; i++)
        pf_free(p[i]);
}

Test(alloc, calloc_zero_on_recycled_memory)
{
    static const size_t sizes[] = {1, 16, 24, 100, 512, 1000, 4096, 5000, 40000, 70000,
                                   300 * 1024, 3 * 1024 * 1024};
    enum { BATCH = 32, REPEAT = 8 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        for (int r = 0; r < REPEAT; r++) {
            unsigned char *p[BATCH];
            for (int i = 0; i < BATCH; i++) {
                p[i] = pf_malloc(n);
                cr_assert_not_null(p[i]);
                memset(p[i], 0xAB, pf_malloc_usable_size(p[i]));
            }
            for (int i = 0; i < BATCH; i++)
                pf_free(p[i]);
            for (int i = 0; i < BATCH; i++) {
                p[i] = pf_calloc(1, n);
                cr_assert_not_null(p[i]);
                cr_assert(aligned_to(p[i], 16));
                size_t b = first_nonzero(p[i], n);
                cr_assert_eq(b, n, "calloc(1, %zu): byte %zu is not zero", n, b);
                /* dirty it again so the next round recycles dirty memory */
                memset(p[i], 0xAB, n);
            }
            for (int i = 0; i < BATCH; i++)
                pf_free(p[i]);
        }
    }
    /* n * size split the other way, and calloc(0, x) */
    unsigned char *q = pf_calloc(1000, 3);
    cr_assert_not_null(q);
    cr_assert_eq(first_nonzero(q, 3000), 3000);
    pf_free(q);
    void *z = pf_calloc(0, 100);
    cr_assert_not_null(z, "calloc(0, n) returns a freeable pointer like glibc");
    pf_free(z);
}

Test(alloc, calloc_overflow_enomem)
{
    errno = 0;
    cr_assert_null(pf_calloc(SIZE_MAX / 2 + 1, 2));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(pf_calloc((size_t)1 << 33, (size_t)1 << 33));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(pf_calloc(3, SIZE_MAX / 3 + 1));
    cr_assert_eq(errno, ENOMEM);
}

Test(alloc, reallocarray_overflow_enomem_keeps_block)
{
    errno = 0;
    cr_assert_null(pf_reallocarray(NULL, SIZE_MAX / 4 + 1, 8));
    cr_assert_eq(errno, ENOMEM);

    unsigned char *p = pf_reallocarray(NULL, 10, 10);
    cr_assert_not_null(p);
    cr_assert_geq(pf_malloc_usable_size(p), 100);
    fill(p, 100, 7);
    errno = 0;
    cr_assert_null(pf_reallocarray(p, (size_t)1 << 40, (size_t)1 << 40));
    cr_assert_eq(errno, ENOMEM);
    /* the failed call left the block alone */
    cr_assert_eq(check(p, 100, 7), 100);
    unsigned char *q = pf_reallocarray(p, 50, 40);
    cr_assert_not_null(q);
    cr_assert_geq(pf_malloc_usable_size(q), 2000);
    cr_assert_eq(check(q, 100, 7), 100);
    pf_free(q);
}

Test(alloc, huge_requests_enomem)
{
    static const size_t bad[] = {SIZE_MAX, SIZE_MAX - 15, (size_t)PTRDIFF_MAX + 1,
                                 (size_t)PTRDIFF_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        errno = 0;
        void *p = pf_malloc(bad[k]);
        cr_assert_null(p, "malloc(%zu) succeeded", bad[k]);
        cr_assert_eq(errno, ENOMEM, "malloc(%zu): errno %d", bad[k], errno);
    }
    unsigned char *p = pf_malloc(64);
    cr_assert_not_null(p);
    fill(p, 64, 3);
    errno = 0;
    cr_assert_null(pf_realloc(p, SIZE_MAX));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(pf_realloc(p, (size_t)PTRDIFF_MAX + 1));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(check(p, 64, 3), 64, "a failed realloc damaged the block");
    pf_free(p);
}

Test(alloc, realloc_null_is_malloc)
{
    static const size_t sizes[] = {0, 1, 17, 100, 4000, 70000, 5 * MIB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        unsigned char *p = pf_realloc(NULL, sizes[k]);
        cr_assert_not_null(p);
        cr_assert(aligned_to(p, 16));
        cr_assert_geq(pf_malloc_usable_size(p), sizes[k]);
        fill(p, sizes[k], k);
        cr_assert_eq(check(p, sizes[k], k), sizes[k]);
        pf_free(p);
    }
}

Test(alloc, realloc_zero_frees_and_returns_null)
{
    char name[PF_NAME_MAX];
    void *p = pf_malloc(200);
    cr_assert_not_null(p);
    snprintf(name, sizeof name, "malloc-%zu", pf_malloc_usable_size(p));
    uint64_t before = live_in(name);
    cr_assert_geq(before, 1, "family %s does not count the live block", name);
    errno = 0;
    void *q = pf_realloc(p, 0);
    cr_assert_null(q, "glibc's realloc(p, 0) frees and returns NULL");
    cr_assert_eq(live_in(name), before - 1, "realloc(p, 0) did not free the block");

    /* the same with a large block */
    void *big = pf_malloc(64 * MIB);
    cr_assert_not_null(big);
    uint64_t lb = live_in("large");
    cr_assert_null(pf_realloc(big, 0));
    cr_assert_eq(live_in("large"), lb - 1);
}

Test(alloc, realloc_shrink_in_place)
{
    unsigned char *p = pf_malloc(100);
    cr_assert_not_null(p);
    fill(p, 100, 11);
    unsigned char *q = pf_realloc(p, 90);
    cr_assert_eq(q, p, "100 -> 90 moved the block");
    cr_assert_eq(check(q, 90, 11), 90);

    /* growing within the usable size never moves either */
    size_t u = pf_malloc_usable_size(q);
    unsigned char *r = pf_realloc(q, u);
    cr_assert_eq(r, q, "realloc to the usable size moved the block");
    cr_assert_eq(check(r, 90, 11), 90);
    pf_free(r);

    unsigned char *a = pf_malloc(1000);
    cr_assert_not_null(a);
    fill(a, 1000, 12);
    unsigned char *b = pf_realloc(a, 999);
    cr_assert_eq(b, a, "1000 -> 999 moved the block");
    cr_assert_eq(check(b, 999, 12), 999);
    pf_free(b);
}

/* Grow or shrink from `from` to `to` bytes, checking the kept prefix. */
static void realloc_keeps(size_t from, size_t to, size_t tag)
{
    unsigned char *p = pf_malloc(from);
    cr_assert_not_null(p);
    fill(p, from, tag);
    unsigned char *q = pf_realloc(p, to);
    cr_assert_not_null(q, "realloc %zu -> %zu", from, to);
    cr_assert(aligned_to(q, 16));
    cr_assert_geq(pf_malloc_usable_size(q), to);
    size_t keep = from < to ? from : to;
    size_t bad = check(q, keep, tag);
    cr_assert_eq(bad, keep, "realloc %zu -> %zu lost byte %zu", from, to, bad);
    /* the new tail is usable */
    memset(q + keep, 0x33, to - keep);
    cr_assert_eq(check(q, keep, tag), keep);
    pf_free(q);
}

Test(alloc, realloc_preserves_contents_every_direction)
{
    realloc_keeps(24, 200, 1);          /* small -> small */
    realloc_keeps(200, 24, 2);          /* small -> smaller */
    realloc_keeps(3000, 9000, 3);       /* small -> small, another class */
    realloc_keeps(1000, 64 * MIB, 4);   /* small -> large */
    realloc_keeps(8 * MIB, 96 * MIB, 5); /* large -> large */
    realloc_keeps(96 * MIB, 40 * MIB, 6); /* large -> smaller large */
    realloc_keeps(64 * MIB, 500, 7);    /* large -> small */

    /* a chain of growths through many classes keeps the first bytes */
    unsigned char *p = pf_malloc(1);
    cr_assert_not_null(p);
    p[0] = 0x42;
    size_t n = 1;
    while (n < 8 * MIB) {
        size_t m = n * 3 / 2 + 1;
        p = pf_realloc(p, m);
        cr_assert_not_null(p);
        cr_assert_eq(p[0], 0x42);
        cr_assert_eq(p[n - 1], n == 1 ? 0x42 : (unsigned char)n, "grow to %zu lost the tail", m);
        p[m - 1] = (unsigned char)m;
        n = m;
    }
    pf_free(p);
}

/* An aligned block of `from` bytes resized to `to`: the first min(from, to)
 * bytes are kept, and realloc never reads beyond the old block (a copy of
 * the new size from a block smaller than it would fault or read garbage). */
static void aligned_realloc_keeps(size_t align, size_t from, size_t to, size_t tag)
{
    void *out = NULL;
    cr_assert_eq(pf_posix_memalign(&out, align, from), 0, "posix_memalign(%zu, %zu)", align, from);
    unsigned char *p = out;
    fill(p, from, tag);
    unsigned char *q = pf_realloc(p, to);
    cr_assert_not_null(q, "realloc of memalign(%zu, %zu) to %zu", align, from, to);
    cr_assert_geq(pf_malloc_usable_size(q), to);
    size_t keep = from < to ? from : to;
    size_t bad = check(q, keep, tag);
    cr_assert_eq(bad, keep, "memalign(%zu, %zu) -> %zu lost byte %zu", align, from, to, bad);
    memset(q + keep, 0x5a, to - keep);
    pf_free(q);
}

Test(alloc, realloc_of_aligned_blocks_copies_only_the_old_block)
{
    /* A 128 KiB-aligned 100-byte block lives in a 64 KiB mapping; growing
     * it to 120000 bytes (a small class) must copy what it holds, not
     * 120000 bytes. */
    aligned_realloc_keeps((size_t)1 << 17, 100, 120000, 1);
    aligned_realloc_keeps((size_t)1 << 17, 100, 100000, 2);
    aligned_realloc_keeps((size_t)1 << 17, 100, 50, 3);
    aligned_realloc_keeps((size_t)1 << 17, 100, 300000, 4);    /* aligned large -> large */
    aligned_realloc_keeps((size_t)1 << 20, 70000, 131072, 5);  /* -> the largest class */
    aligned_realloc_keeps((size_t)1 << 20, 200000, 120000, 6); /* shrink into a class */
    aligned_realloc_keeps((size_t)1 << 21, 3 * MIB, 5 * MIB, 7);
    aligned_realloc_keeps(4096, 100, 120000, 8);               /* aligned small -> small */
    aligned_realloc_keeps(4096, 5000, 64, 9);
    aligned_realloc_keeps(64 * KIB, 100, 130000, 10);
    aligned_realloc_keeps(64 * KIB, 100, 1 * MIB, 11);

    /* the usable size of the old block is kept whole: a program may use it */
    void *out = NULL;
    cr_assert_eq(pf_posix_memalign(&out, (size_t)1 << 17, 100), 0);
    size_t u = pf_malloc_usable_size(out);
    cr_assert_geq(u, 100);
    fill(out, u, 12);
    unsigned char *q = pf_realloc(out, u + 5000);
    cr_assert_not_null(q);
    cr_assert_eq(check(q, u, 12), u);
    pf_free(q);
}

Test(alloc, posix_memalign_rejects_bad_alignment)
{
    static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4097, (size_t)3 << 20};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        void *out = (void *)0x1234;
        int rc = pf_posix_memalign(&out, bad[k], 64);
        cr_assert_eq(rc, EINVAL, "posix_memalign(align %zu) returned %d", bad[k], rc);
        cr_assert_eq(out, (void *)0x1234, "posix_memalign changed *out on failure");
    }
    void *out = (void *)0x1234;
    cr_assert_eq(pf_posix_memalign(&out, 64, SIZE_MAX), ENOMEM);
    cr_assert_eq(out, (void *)0x1234);
}

Test(alloc, posix_memalign_all_alignments)
{
    static const size_t sizes[] = {0, 1, 100, 5000, 300000};
    for (size_t a = sizeof(void *); a <= 4 * MIB; a <<= 1) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            void *out = NULL;
            int saved = errno = 777;
            cr_assert_eq(pf_posix_memalign(&out, a, sizes[k]), 0, "align %zu size %zu", a,
                         sizes[k]);
            cr_assert_eq(errno, saved, "posix_memalign changed errno on success");
            cr_assert_not_null(out);
            cr_assert(aligned_to(out, a), "align %zu size %zu: %p", a, sizes[k], out);
            cr_assert_geq(pf_malloc_usable_size(out), sizes[k]);
            memset(out, 0x77, sizes[k]);
            pf_free(out);
        }
    }
}

/* Every power-of-two alignment a size_t holds is valid: above 1 GiB the
 * answer is a block or ENOMEM, never EINVAL. A failed posix_memalign leaves
 * errno at ENOMEM too (glibc does, and its tests rely on it); a successful
 * one leaves errno alone. */
Test(alloc, huge_alignments_are_valid)
{
    for (size_t a = (size_t)1 << 30; a != 0; a <<= 1) {
        void *out = (void *)0x1234;
        errno = 777;
        int rc = pf_posix_memalign(&out, a, 100);
        cr_assert(rc == 0 || rc == ENOMEM, "posix_memalign(align %#zx) returned %d", a, rc);
        if (rc == 0) {
            cr_assert_eq(errno, 777, "posix_memalign changed errno on success");
            cr_assert(aligned_to(out, a), "align %#zx: %p", a, out);
            cr_assert_geq(pf_malloc_usable_size(out), 100);
            memset(out, 0x11, 100);
            pf_free(out);
        } else {
            cr_assert_eq(errno, ENOMEM, "posix_memalign(align %#zx) failed with errno %d", a, errno);
            cr_assert_eq(out, (void *)0x1234, "posix_memalign changed *out on failure");
        }
        void *fns[2] = {NULL, NULL};
        errno = 777;
        fns[0] = pf_memalign(a, 10);
        cr_assert(fns[0] || errno == ENOMEM, "memalign(%#zx, 10): errno %d", a, errno);
        errno = 777;
        fns[1] = pf_aligned_alloc(a, 10);
        cr_assert(fns[1] || errno == ENOMEM, "aligned_alloc(%#zx, 10): errno %d", a, errno);
        for (int k = 0; k < 2; k++)
            if (fns[k]) {
                cr_assert(aligned_to(fns[k], a));
                pf_free(fns[k]);
            }
    }
    /* 2 GiB of alignment fits anywhere a 64-bit process has room */
    void *out = NULL;
    cr_assert_eq(pf_posix_memalign(&out, (size_t)1 << 31, 100), 0);
    cr_assert(aligned_to(out, (size_t)1 << 31));
    pf_free(out);
    /* memalign rounds an alignment up to a power of two, as glibc does;
     * beyond the largest one there is none to round to */
    errno = 0;
    cr_assert_null(pf_memalign(((size_t)1 << 63) + 1, 10));
    cr_assert_eq(errno, EINVAL);
}

/* glibc's tst-malloc-too-large: sizes no process can have, with every
 * alignment, fail with ENOMEM (errno too, for posix_memalign). */
Test(alloc, too_large_with_any_alignment_is_enomem)
{
    static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX >> 1,
                                   (SIZE_MAX >> 1) + 1, (size_t)PTRDIFF_MAX + 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (size_t a = 1; a != 0; a <<= 1) {
            size_t n = sizes[k];
            if (a >= sizeof(void *)) {
                void *out = (void *)42;
                errno = 0;
                cr_assert_eq(pf_posix_memalign(&out, a, n), ENOMEM, "align %#zx size %#zx", a, n);
                cr_assert_eq(errno, ENOMEM, "posix_memalign(%#zx, %#zx): errno %d", a, n, errno);
                cr_assert_eq(out, (void *)42);
            }
            errno = 0;
            cr_assert_null(pf_aligned_alloc(a, n));
            cr_assert_eq(errno, ENOMEM, "aligned_alloc(%#zx, %#zx): errno %d", a, n, errno);
            errno = 0;
            cr_assert_null(pf_memalign(a, n));
            cr_assert_eq(errno, ENOMEM, "memalign(%#zx, %#zx): errno %d", a, n, errno);
        }
}

Test(alloc, aligned_alloc_and_memalign_all_powers_of_two)
{
    static const size_t sizes[] = {1, 16, 100, 4096, 70000, 2 * MIB};
    enum { KEEP = 23 * 6 * 2 };
    static void *keep[KEEP];
    size_t nk = 0;
    for (size_t a = 1; a <= 4 * MIB; a <<= 1) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = sizes[k];
            void *p = pf_aligned_alloc(a, n);
            cr_assert_not_null(p, "aligned_alloc(%zu, %zu)", a, n);
            cr_assert(aligned_to(p, a < 16 ? 16 : a), "aligned_alloc(%zu, %zu) = %p", a, n, p);
            cr_assert_geq(pf_malloc_usable_size(p), n);
            void *q = pf_memalign(a, n);
            cr_assert_not_null(q, "memalign(%zu, %zu)", a, n);
            cr_assert(aligned_to(q, a < 16 ? 16 : a), "memalign(%zu, %zu) = %p", a, n, q);
            cr_assert_geq(pf_malloc_usable_size(q), n);
            cr_assert_lt(nk + 2, (size_t)KEEP + 1);
            fill(p, n, nk);
            keep[nk++] = p;
            fill(q, n, nk);
            keep[nk++] = q;
        }
    }
    /* all kept live together: none overwrote another */
    size_t i = 0;
    for (size_t a = 1; a <= 4 * MIB; a <<= 1)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++, i += 2) {
            cr_assert_eq(check(keep[i], sizes[k], i), sizes[k]);
            cr_assert_eq(check(keep[i + 1], sizes[k], i + 1), sizes[k]);
        }
    for (size_t j = 0; j < nk; j++)
        pf_free(keep[j]);
}

Test(alloc, valloc_and_pvalloc)
{
    size_t pg = page_size();
    static const size_t sizes[] = {1, 100, 4095, 4096, 4097, 10000, 3 * MIB + 5};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        void *v = pf_valloc(n);
        cr_assert_not_null(v);
        cr_assert(aligned_to(v, pg), "valloc(%zu) = %p", n, v);
        cr_assert_geq(pf_malloc_usable_size(v), n);
        memset(v, 1, n);

        void *pv = pf_pvalloc(n);
        cr_assert_not_null(pv);
        cr_assert(aligned_to(pv, pg), "pvalloc(%zu) = %p", n, pv);
        size_t rounded = (n + pg - 1) / pg * pg;
        cr_assert_geq(pf_malloc_usable_size(pv), rounded, "pvalloc(%zu): usable %zu < %zu", n,
                      pf_malloc_usable_size(pv), rounded);
        memset(pv, 2, rounded);
        pf_free(v);
        pf_free(pv);
    }
}

Test(alloc, free_null_and_errno)
{
    errno = 1234;
    pf_free(NULL);
    cr_assert_eq(errno, 1234);
    cr_assert_eq(pf_malloc_usable_size(NULL), 0);

    static const size_t sizes[] = {0, 8, 100, 5000, 70000, 1 * MIB, 64 * MIB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        void *p = pf_malloc(sizes[k]);
        cr_assert_not_null(p);
        errno = 1234;
        pf_free(p);
        cr_assert_eq(errno, 1234, "free of a %zu-byte block changed errno to %d", sizes[k],
                     errno);
    }
    /* a batch, so frees also take the slow paths (flushes, span release) */
    enum { N = 20000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = pf_malloc((size_t)(i % 700) + 1);
        cr_assert_not_null(p[i]);
    }
    for (int i = 0; i < N; i++) {
        errno = 1234;
        pf_free(p[i]);
        cr_assert_eq(errno, 1234, "free #%d changed errno to %d", i, errno);
    }
    errno = 1234;
    pf_trim();
    void *q = pf_malloc(64 * MIB);
    cr_assert_not_null(q);
    errno = 1234;
    pf_free(q);
    cr_assert_eq(errno, 1234);
}
