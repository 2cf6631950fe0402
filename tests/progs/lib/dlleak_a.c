/* dlleak_a — a library that leaks: loaded, used and unloaded by dlclose_leaks. */
#include <stdlib.h>

void *volatile dlleak_a_sink[8];

__attribute__((noinline)) void dlleak_a_leak(int n)
{
    for (int i = 0; i < n && i < 8; i++)
        dlleak_a_sink[i] = malloc(72);
}
