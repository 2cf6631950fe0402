/*
 * aligned — every aligned entry point over every power-of-two alignment from
 * 8 bytes to 1 MiB and a spread of sizes around each: the block must be
 * aligned, fully writable, keep its contents while neighbours are written,
 * and report a usable size of at least the request. Also the documented
 * error returns, and alignments above 1 GiB: 2 GiB is served, one no
 * mapping can have is ENOMEM, not EINVAL. Output is the same under any
 * correct allocator.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_ALIGN 8
#define MAX_ALIGN (1u << 20)
#define LIVE 6

enum fn { F_POSIX_MEMALIGN, F_ALIGNED_ALLOC, F_MEMALIGN, F_VALLOC, F_PVALLOC, F_COUNT };
static const char *const fn_name[F_COUNT] = {"posix_memalign", "aligned_alloc", "memalign",
                                             "valloc", "pvalloc"};

static size_t page;
static unsigned long failures;

static void *get(enum fn f, size_t align, size_t size)
{
    void *p = NULL;
    int rc;
    switch (f) {
    case F_POSIX_MEMALIGN:
        rc = posix_memalign(&p, align, size);
        if (rc != 0) {
            fprintf(stderr, "aligned: posix_memalign(%zu, %zu) = %d\n", align, size, rc);
            return NULL;
        }
        return p;
    case F_ALIGNED_ALLOC:
        return aligned_alloc(align, size);
    case F_MEMALIGN:
        return memalign(align, size);
    case F_VALLOC:
        return valloc(size);
    case F_PVALLOC:
        return pvalloc(size);
    default:
        return NULL;
    }
}

static void fail(const char *what, enum fn f, size_t align, size_t size)
{
    fprintf(stderr, "aligned: %s(align %zu, size %zu): %s\n", fn_name[f], align, size, what);
    failures++;
}

/* One round: LIVE blocks of sizes around `align`, all alive together, each
 * filled with its own byte, then all checked and freed. */
static unsigned round_of(enum fn f, size_t align)
{
    size_t want = (f == F_VALLOC || f == F_PVALLOC) ? page : align;
    size_t sizes[LIVE] = {1, align - 1 ? align - 1 : 1, align, align + 1, 3 * align + 5, 100};
    unsigned char *blocks[LIVE];
    unsigned good = 0;
    for (int i = 0; i < LIVE; i++) {
        blocks[i] = get(f, align, sizes[i]);
        if (!blocks[i]) {
            fail("returned NULL", f, align, sizes[i]);
            continue;
        }
        if ((uintptr_t)blocks[i] % want != 0)
            fail("misaligned", f, want, sizes[i]);
        size_t usable = malloc_usable_size(blocks[i]);
        size_t need = f == F_PVALLOC ? (sizes[i] + page - 1) / page * page : sizes[i];
        if (usable < need)
            fail("usable size below the request", f, align, sizes[i]);
        memset(blocks[i], 0x40 + i, need);
    }
    for (int i = 0; i < LIVE; i++) {
        if (!blocks[i])
            continue;
        size_t need = f == F_PVALLOC ? (sizes[i] + page - 1) / page * page : sizes[i];
        size_t bad = need;
        for (size_t j = 0; j < need; j++)
            if (blocks[i][j] != (unsigned char)(0x40 + i)) {
                bad = j;
                break;
            }
        if (bad != need)
            fail("contents overwritten by a neighbour", f, align, sizes[i]);
        else
            good++;
        free(blocks[i]);
    }
    return good;
}

static void errors(void)
{
    void *p = (void *)1;
    int rc = posix_memalign(&p, 3, 16);
    printf("posix_memalign(align 3): %s, result %s\n", rc == EINVAL ? "EINVAL" : "not EINVAL",
           p == (void *)1 ? "untouched" : "changed");
    p = (void *)1;
    rc = posix_memalign(&p, 4, 16);
    printf("posix_memalign(align 4): %s\n", rc == EINVAL ? "EINVAL" : "not EINVAL");
    p = (void *)1;
    rc = posix_memalign(&p, 0, 16);
    printf("posix_memalign(align 0): %s\n", rc == EINVAL ? "EINVAL" : "not EINVAL");
    volatile size_t huge = SIZE_MAX - 4096;
    p = (void *)1;
    rc = posix_memalign(&p, 64, huge);
    printf("posix_memalign(huge): %s\n", rc == ENOMEM ? "ENOMEM" : "not ENOMEM");
    errno = 0;
    p = aligned_alloc(64, huge);
    printf("aligned_alloc(huge): %s, errno %s\n", p ? "block" : "NULL",
           errno == ENOMEM ? "ENOMEM" : "other");
    errno = 0;
    p = memalign(4096, huge);
    printf("memalign(huge): %s, errno %s\n", p ? "block" : "NULL",
           errno == ENOMEM ? "ENOMEM" : "other");
    /* Size 0 gives a unique block that can be freed. */
    rc = posix_memalign(&p, 64, 0);
    printf("posix_memalign(size 0): %s\n", rc == 0 ? "ok" : "error");
    if (rc == 0)
        free(p);
}

static const char *err_name(int e)
{
    return e == 0 ? "0" : e == ENOMEM ? "ENOMEM" : e == EINVAL ? "EINVAL" : "other";
}

/* A power of two is a valid alignment however big it is. */
static void huge_alignments(void)
{
    const size_t g2 = (size_t)1 << 31;
    void *p = NULL;
    int rc = posix_memalign(&p, g2, 64);
    printf("posix_memalign(align 2 GiB): %s, %s\n", err_name(rc),
           rc == 0 && ((uintptr_t)p & (g2 - 1)) == 0 ? "aligned" : "no block");
    if (rc == 0)
        free(p);
    errno = 0;
    p = aligned_alloc(g2, 64);
    printf("aligned_alloc(align 2 GiB): %s, errno %s\n",
           p && ((uintptr_t)p & (g2 - 1)) == 0 ? "aligned" : p ? "misaligned" : "NULL", err_name(errno));
    free(p);
    p = (void *)1;
    rc = posix_memalign(&p, (size_t)1 << 62, 64);
    printf("posix_memalign(align 2^62): %s, result %s\n", err_name(rc), p == (void *)1 ? "untouched" : "changed");
    errno = 0;
    p = aligned_alloc((size_t)1 << 62, 64);
    printf("aligned_alloc(align 2^62): %s, errno %s\n", p ? "block" : "NULL", err_name(errno));
    errno = 0;
    p = memalign((size_t)1 << 63, 64);
    printf("memalign(align 2^63): %s, errno %s\n", p ? "block" : "NULL", err_name(errno));
}

int main(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    for (int f = 0; f < F_COUNT; f++) {
        unsigned alignments = 0, blocks = 0;
        for (size_t align = MIN_ALIGN; align <= MAX_ALIGN; align *= 2) {
            blocks += round_of((enum fn)f, align);
            alignments++;
        }
        printf("%s: %u alignments, %u of %u blocks aligned and intact\n", fn_name[f], alignments,
               blocks, alignments * LIVE);
    }
    errors();
    huge_alignments();
    printf("failures: %lu\n", failures);
    return failures == 0 ? 0 : 1;
}
