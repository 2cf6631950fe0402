/*
 * amongmaps — a mapping of the program's own that lies among pfalloc's,
 * between two large blocks, full of pointers into itself (as a compiler's
 * collected heap is), and holding the only pointers to three blocks:
 *   - the start of a block of 48 bytes (still reachable),
 *   - the start of the first large block (still reachable),
 *   - a pointer 2 900 000 bytes into the second large block (3 MiB), in
 *     a 64 KiB chunk other than its first (possibly lost: nothing holds
 *     its start).
 * The mapping is 12 MiB and the last two pointers lie in its last 4 MiB:
 * a walk reads them after it has copied more than 4 MiB, with the bigger
 * buffer it reads with from then on.
 * A block of 100 bytes is dropped (definitely lost). Prints "among 1" when
 * the mapping does lie between the two large blocks, "apart N GiB" (how far
 * the blocks lie apart), then "ok". With the argument "far", 9 GiB of
 * address space are reserved between the mapping and the second block. With
 * "raise" it ends with raise(SIGUSR1) before it exits, for a signal
 * report's walk before the exit's.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dropped.h"

#define LARGE ((size_t)1 << 20)
#define LARGER ((size_t)3 << 20)
#define OWN ((size_t)12 << 20)
#define INTO 2900000
#define GAP ((size_t)9 << 30)

/* In a function of its own: no copy of an address is left in main's
 * frame, nor in a register main keeps (the dropped block's: dropped.h). */
__attribute__((noinline)) static char *fill(int far)
{
    char *first = malloc(LARGE);
    char *own = mmap(NULL, OWN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* "far": 9 GiB of address space reserved below the mapping, so the
     * second block lies that much further down. */
    if (far && mmap(NULL, GAP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED)
        return NULL;
    char *second = malloc(LARGER); /* more than the first's mapping has left */
    char *small = malloc(48);
    if (!first || own == MAP_FAILED || !second || !small)
        return NULL;
    memset(first, 1, 4096);
    memset(second, 2, 4096);
    memset(small, 3, 48);
    /* Every word of the mapping points into it, but three. */
    uintptr_t *w = (uintptr_t *)own;
    for (size_t i = 0; i < OWN / sizeof *w; i++)
        w[i] = (uintptr_t)(own + (i * 4096 + 8) % OWN);
    w[1000] = (uintptr_t)small;
    w[1100000] = (uintptr_t)first;
    w[1500000] = (uintptr_t)(second + INTO);
    uintptr_t lo = (uintptr_t)(first < second ? first : second), hi = (uintptr_t)(first < second ? second : first);
    printf("among %d\n", (uintptr_t)own > lo && (uintptr_t)own + OWN <= hi);
    printf("apart %zu GiB\n", (size_t)((hi - lo) >> 30));
    return own;
}

/* fill's frame, dead once it returns, is written over: a signal report's
 * walk reads the stack below main's frame too. */
__attribute__((noinline)) static void wipe(void)
{
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
}

int main(int argc, char **argv)
{
    int far = 0, raise_it = 0;
    for (int i = 1; i < argc; i++) {
        far |= strcmp(argv[i], "far") == 0;
        raise_it |= strcmp(argv[i], "raise") == 0;
    }
    if (!fill(far) || drop(100) != 0)
        return 2;
    wipe();
    printf("ok\n");
    fflush(stdout);
    if (raise_it)
        raise(SIGUSR1);
    return 0;
}
