/*
 * stacks — leaks through one shared wrapper from two callers, and through
 * strdup, from static functions (nothing here needs exported symbols):
 *   xalloc <- caller_one <- main   3 x 40 bytes
 *   xalloc <- caller_two <- main   4 x 40 bytes
 *   strdup <- dup_text <- main     1 x 12 bytes
 * A one-frame site report puts the first two on one line; the stack report
 * must keep them apart. Built -O2 -g without frame pointers, like the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink[16];
static int nsink;

__attribute__((noipa)) static void *xalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    return p;
}

__attribute__((noipa)) static void caller_one(void)
{
    for (int i = 0; i < 3; i++)
        sink[nsink++] = xalloc(40);
}

__attribute__((noipa)) static void caller_two(void)
{
    for (int i = 0; i < 4; i++)
        sink[nsink++] = xalloc(40);
}

__attribute__((noipa)) static void dup_text(void)
{
    char text[16];
    volatile char seed = 'h';
    snprintf(text, sizeof text, "%cello world", seed);
    sink[nsink++] = strdup(text);
}

int main(void)
{
    caller_one();
    caller_two();
    dup_text();
    printf("stacks: %d objects kept\n", nsink);
    return 0;
}
