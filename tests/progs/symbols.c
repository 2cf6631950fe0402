/*
 * symbols — leaks from functions the program does not export, built the way
 * distributions build (-O2 -g, nothing exported), for the symbol tests:
 *   leak_static_a   2 x malloc(24), a static function
 *   leak_static_b   4 x malloc(40), another one
 *   leak_inlined    3 x malloc(56) through xalloc, a wrapper inlined into it
 *   leak_dup        1 x strdup of a 5-character string (6 bytes)
 * Its output never depends on addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the leaked pointers go, so the compiler keeps every allocation. */
static void *volatile sink[16];
static int nsink;

static void keep(void *p)
{
    if (!p) {
        fprintf(stderr, "symbols: out of memory\n");
        exit(2);
    }
    sink[nsink++] = p;
}

static inline __attribute__((always_inline)) void *xalloc(size_t n)
{
    void *p = malloc(n); /* symbols: the inlined allocation */
    if (!p)
        exit(2);
    return p;
}

static __attribute__((noinline)) void leak_static_a(void)
{
    for (int i = 0; i < 2; i++)
        keep(malloc(24)); /* symbols: leak_static_a's allocation */
}

static __attribute__((noinline)) void leak_static_b(void)
{
    for (int i = 0; i < 4; i++)
        keep(malloc(40)); /* symbols: leak_static_b's allocation */
}

static __attribute__((noinline)) void leak_inlined(void)
{
    for (int i = 0; i < 3; i++)
        keep(xalloc(56)); /* symbols: the call of the inlined wrapper */
}

static __attribute__((noinline)) void leak_dup(void)
{
    char text[8];
    volatile char seed = 'h';
    snprintf(text, sizeof text, "%cello", seed);
    keep(strdup(text)); /* symbols: leak_dup's allocation */
}

int main(void)
{
    leak_static_a();
    leak_static_b();
    leak_inlined();
    leak_dup();
    printf("symbols: %d objects kept\n", nsink);
    return 0;
}
