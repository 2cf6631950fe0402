/*
 * nocfi — allocates from code built without unwind tables (this file is
 * compiled with -fno-asynchronous-unwind-tables -fno-unwind-tables): the
 * stack walk finds no rule for these frames and must stop there, keeping
 * the site, never crash. Leaks 6 objects from nocfi_alloc (malloc) and 2
 * from nocfi_dup (strdup).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink[16];
static int nsink;

__attribute__((noipa)) static void nocfi_alloc(void)
{
    for (int i = 0; i < 6; i++)
        sink[nsink++] = malloc(56);
}

__attribute__((noipa)) static void nocfi_dup(void)
{
    char text[16];
    volatile char seed = 'n';
    snprintf(text, sizeof text, "%co tables", seed);
    for (int i = 0; i < 2; i++)
        sink[nsink++] = strdup(text);
}

int main(void)
{
    nocfi_alloc();
    nocfi_dup();
    printf("nocfi: %d objects kept\n", nsink);
    return 0;
}
