/* tlsplug — a library that reach loads with dlopen: its thread-local
 * variable is in dynamic TLS, a block the loader allocates for each thread
 * that touches it. tlsplug_keep keeps a block of 77 bytes only there. */
#include <stdlib.h>

static __thread void *volatile slot;

__attribute__((noinline)) void tlsplug_keep(void)
{
    slot = malloc(77);
    if (!slot)
        abort();
}
