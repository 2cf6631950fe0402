/*
 * textrel_user — linked with libtextrel (text relocations, no build-id):
 * leaks three objects of 56 bytes allocated in it.
 * Usage: textrel_user
 */
#include <stdio.h>
#include <stdlib.h>

void *textrel_leak(size_t n);

static void *volatile keep;

int main(void)
{
    for (int i = 0; i < 3; i++)
        keep = textrel_leak(56);
    keep = NULL;
    puts("textrel_user: leaked");
    return 0;
}
