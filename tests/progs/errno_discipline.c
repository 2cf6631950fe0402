/*
 * errno_discipline — free never changes errno (whatever the pointer: NULL,
 * small, large, aligned, after a failed call), and failed allocations say
 * ENOMEM: malloc(SIZE_MAX), calloc whose n * size overflows, realloc and
 * reallocarray past any possible size (leaving the block untouched),
 * aligned_alloc and memalign of impossible sizes. Prints one line per check.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long failures;

static void expect(int ok, const char *what)
{
    printf("%s: %s\n", what, ok ? "yes" : "no");
    if (!ok)
        failures++;
}

/* Keeps the compiler from folding calls whose result it thinks it knows. */
static void *hide(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static size_t hide_size(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

static int free_keeps(void *p, int value)
{
    errno = value;
    free(p);
    return errno == value;
}

static void frees(void)
{
    expect(free_keeps(NULL, 1234), "free(NULL) keeps errno");
    expect(free_keeps(hide(malloc(24)), 1234), "free of a small block keeps errno");
    expect(free_keeps(hide(malloc(5000)), EINVAL), "free of a 5000-byte block keeps errno");
    expect(free_keeps(hide(malloc(8u << 20)), ENOENT), "free of an 8 MiB block keeps errno");
    expect(free_keeps(hide(aligned_alloc(4096, 4096)), 77), "free of an aligned block keeps errno");
    expect(free_keeps(hide(calloc(100, 100)), 0), "free keeps errno 0");

    /* A thousand frees, many of which empty whole spans or pages. */
    void *many[1000];
    for (int i = 0; i < 1000; i++)
        many[i] = hide(malloc((size_t)(i % 50 + 1) * 48));
    int kept = 1;
    for (int i = 0; i < 1000; i++)
        kept &= free_keeps(many[i], 4321);
    expect(kept, "1000 frees of mixed sizes keep errno");

    errno = 0;
    void *fail = malloc(hide_size(SIZE_MAX));
    expect(fail == NULL && errno == ENOMEM, "malloc(SIZE_MAX) is NULL with ENOMEM");
    expect(free_keeps(fail, ENOMEM), "free after the failure keeps ENOMEM");
}

static void failures_say_enomem(void)
{
    errno = 0;
    void *p = malloc(hide_size(SIZE_MAX / 2 + 1));
    expect(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX / 2 + 1) is NULL with ENOMEM");
    errno = 0;
    p = calloc(hide_size(SIZE_MAX / 2 + 1), hide_size(2));
    expect(p == NULL && errno == ENOMEM, "calloc(SIZE_MAX / 2 + 1, 2) is NULL with ENOMEM");
    errno = 0;
    p = calloc(hide_size((size_t)1 << 33), hide_size((size_t)1 << 31));
    expect(p == NULL && errno == ENOMEM, "calloc(2^33, 2^31) is NULL with ENOMEM");
    errno = 0;
    p = calloc(hide_size(SIZE_MAX), hide_size(SIZE_MAX));
    expect(p == NULL && errno == ENOMEM, "calloc(SIZE_MAX, SIZE_MAX) is NULL with ENOMEM");

    unsigned char *b = hide(malloc(64));
    if (!b)
        exit(2);
    memset(b, 0x5a, 64);
    errno = 0;
    p = realloc(hide(b), hide_size(SIZE_MAX));
    expect(p == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX) is NULL with ENOMEM");
    expect(b[0] == 0x5a && b[63] == 0x5a, "the block survives the failed realloc");
    errno = 0;
    p = reallocarray(hide(b), hide_size(SIZE_MAX / 4), hide_size(8));
    expect(p == NULL && errno == ENOMEM, "reallocarray overflow is NULL with ENOMEM");
    expect(b[0] == 0x5a && b[63] == 0x5a, "the block survives the failed reallocarray");
    expect(free_keeps(hide(b), ENOMEM), "freeing it keeps errno");

    errno = 0;
    p = aligned_alloc(64, hide_size(SIZE_MAX - 100));
    expect(p == NULL && errno == ENOMEM, "aligned_alloc(64, SIZE_MAX - 100) is NULL with ENOMEM");
    errno = 0;
    p = memalign(1 << 20, hide_size(SIZE_MAX - (1 << 19)));
    expect(p == NULL && errno == ENOMEM, "memalign(1 MiB, huge) is NULL with ENOMEM");
    errno = 0;
    p = valloc(hide_size(SIZE_MAX - 10));
    expect(p == NULL && errno == ENOMEM, "valloc(huge) is NULL with ENOMEM");
    errno = 0;
    p = pvalloc(hide_size(SIZE_MAX - 10));
    expect(p == NULL && errno == ENOMEM, "pvalloc(huge) is NULL with ENOMEM");
    void *q = (void *)&failures;
    int rc = posix_memalign(&q, 64, hide_size(SIZE_MAX - 100));
    expect(rc == ENOMEM && q == (void *)&failures,
           "posix_memalign(huge) returns ENOMEM, result untouched");
    errno = 0;
    rc = posix_memalign(&q, 64, hide_size(SIZE_MAX - 100));
    expect(rc == ENOMEM && errno == ENOMEM, "a failed posix_memalign leaves errno at ENOMEM");
    errno = 0;
    rc = posix_memalign(&q, hide_size((size_t)1 << 31), 100);
    expect(rc == 0 || (rc == ENOMEM && errno == ENOMEM),
           "posix_memalign(2 GiB alignment) is a block or ENOMEM");
    if (rc == 0)
        free(q);
    errno = 0;
    p = memalign(hide_size((size_t)1 << 40), 10);
    expect(p != NULL || errno == ENOMEM, "memalign(1 TiB alignment, 10) is a block or ENOMEM");
    free(p);
}

int main(void)
{
    frees();
    failures_say_enomem();
    printf("failures: %lu\n", failures);
    return failures == 0 ? 0 : 1;
}
