/*
 * aliases — leaks through glibc's internal allocation names, which some
 * programs and libraries call directly, from static functions, into slots
 * that an ordinary malloc used (and freed) first:
 *   __libc_memalign <- via_memalign <- main   2 x 48 bytes, 16-aligned
 *   __libc_valloc   <- via_valloc   <- main   1 page
 *   __libc_pvalloc  <- via_pvalloc  <- main   1 page
 * Each must be named by its own caller, never by the malloc that had the slot
 * before. Built -O2 -g without frame pointers, like the rest.
 */
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_memalign(size_t align, size_t n);
extern void *__libc_valloc(size_t n);
extern void *__libc_pvalloc(size_t n);

static void *volatile sink[8];
static int nsink;

__attribute__((noipa)) static void churn(void)
{
    void *p[64];
    for (int i = 0; i < 64; i++)
        if (!(p[i] = malloc(48)))
            abort();
    for (int i = 0; i < 64; i++)
        free(p[i]);
}

__attribute__((noipa)) static void via_memalign(void)
{
    for (int i = 0; i < 2; i++)
        if (!(sink[nsink++] = __libc_memalign(16, 48)))
            abort();
}

__attribute__((noipa)) static void via_valloc(void)
{
    if (!(sink[nsink++] = __libc_valloc(4096)))
        abort();
}

__attribute__((noipa)) static void via_pvalloc(void)
{
    if (!(sink[nsink++] = __libc_pvalloc(100)))
        abort();
}

int main(void)
{
    churn();
    via_memalign();
    via_valloc();
    via_pvalloc();
    printf("aliases: %d objects kept\n", nsink);
    return 0;
}
