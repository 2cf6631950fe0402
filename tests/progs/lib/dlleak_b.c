/* dlleak_b — a library loaded after dlleak_a is unloaded, likely at its
 * address: dlleak_a's leaks must not be named after it. It has the same
 * layout, so its code sits where dlleak_a's did. */
#include <stdlib.h>

void *volatile dlleak_b_sink[8];

__attribute__((noinline)) void dlleak_b_touch(int n)
{
    for (int i = 0; i < n && i < 8; i++)
        dlleak_b_sink[i] = malloc(24);
    for (int i = 0; i < n && i < 8; i++)
        free(dlleak_b_sink[i]);
}
