/*
 * reused_slots — every entry point of the malloc family, called from a
 * function of its own, allocates into slots that another function's
 * mallocs used and freed just before (churn: 64 blocks of the same size,
 * freed in the order taken, so the next allocations of that class take
 * them back). A freed slot keeps the site word of its last allocation, so
 * each entry point must store its own:
 *   malloc, calloc, realloc (new and moved), realloc in place,
 *   reallocarray, posix_memalign, aligned_alloc, memalign, valloc,
 *   pvalloc, __libc_malloc, __libc_calloc, __libc_realloc
 * each 2 x SIZE bytes (a page for valloc and pvalloc), every one kept.
 * Built -O2 -g without frame pointers, like the rest.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE 48
#define EACH 2

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t s);
extern void *__libc_realloc(void *p, size_t n);

static void *volatile sink[64];
static int nsink;

static void keep(void *p)
{
    if (!p)
        abort();
    sink[nsink++] = p;
}

__attribute__((noipa)) static void churn(size_t n)
{
    void *p[64];
    for (int i = 0; i < 64; i++)
        if (!(p[i] = malloc(n)))
            abort();
    for (int i = 0; i < 64; i++)
        free(p[i]);
}

/* Blocks reallocated by the via_realloc_* functions, allocated here. */
__attribute__((noipa)) static void *churn_one(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    memset(p, 1, n);
    return p;
}

#define VIA(name, n, call)                                                  \
    __attribute__((noipa)) static void name(void)                          \
    {                                                                       \
        churn(n);                                                           \
        for (int i = 0; i < EACH; i++)                                      \
            keep(call);                                                     \
    }

VIA(via_malloc, SIZE, malloc(SIZE))
VIA(via_calloc, SIZE, calloc(1, SIZE))
VIA(via_realloc_new, SIZE, realloc(NULL, SIZE))
VIA(via_reallocarray, SIZE, reallocarray(NULL, 3, SIZE / 3))
VIA(via_aligned_alloc, SIZE, aligned_alloc(16, SIZE))
VIA(via_memalign, SIZE, memalign(16, SIZE))
VIA(via_valloc, 4096, valloc(4096))
VIA(via_pvalloc, 4096, pvalloc(4000))
VIA(via_libc_malloc, SIZE, __libc_malloc(SIZE))
VIA(via_libc_calloc, SIZE, __libc_calloc(SIZE, 1))
VIA(via_libc_realloc, SIZE, __libc_realloc(NULL, SIZE))

__attribute__((noipa)) static void via_posix_memalign(void)
{
    churn(SIZE);
    for (int i = 0; i < EACH; i++) {
        void *p = NULL;
        if (posix_memalign(&p, 16, SIZE) != 0)
            abort();
        keep(p);
    }
}

/* Moved: a block of 16 bytes grown to SIZE lands in a churned slot. */
__attribute__((noipa)) static void via_realloc_moved(void)
{
    void *small[EACH];
    for (int i = 0; i < EACH; i++)
        small[i] = churn_one(16);
    churn(SIZE);
    for (int i = 0; i < EACH; i++)
        keep(realloc(small[i], SIZE));
}

/* In place: a block of SIZE bytes from churn_one shrunk where it is. */
__attribute__((noipa)) static void via_realloc_in_place(void)
{
    for (int i = 0; i < EACH; i++) {
        void *p = churn_one(SIZE);
        void *q = realloc(p, SIZE - 8);
        if (q != p)
            abort(); /* a shrink within its slot stays */
        keep(q);
    }
}

int main(void)
{
    via_malloc();
    via_calloc();
    via_realloc_new();
    via_realloc_moved();
    via_realloc_in_place();
    via_reallocarray();
    via_posix_memalign();
    via_aligned_alloc();
    via_memalign();
    via_valloc();
    via_pvalloc();
    via_libc_malloc();
    via_libc_calloc();
    via_libc_realloc();
    printf("reused_slots: %d objects kept\n", nsink);
    return 0;
}
