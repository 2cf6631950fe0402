/*
 * textrel — a shared library with text relocations and no build-id: the
 * loader writes an address into its code when it loads it, so its code
 * in memory differs from its file in those words only.
 */
#include <stdlib.h>

long textrel_count;

__attribute__((noinline)) void *textrel_leak(size_t n)
{
    long *count = &textrel_count;
#if defined(__x86_64__)
    /* An absolute address in the code: a text relocation. */
    __asm__ volatile("movabs $textrel_count, %0" : "=r"(count));
#endif
    void *p = malloc(n);
    ++*count; /* after the call: not a tail call, so this frame is on its stack */
    return p;
}
