/*
 * bigbss — a program with a 64 MiB static array it barely uses, as programs
 * keep a buffer sized for the worst case: one page in its middle holds the
 * only pointer to a block of 40 bytes (still reachable), and a block of 100
 * bytes is dropped (definitely lost). With the argument "raise" it ends
 * with raise(SIGUSR1) before it exits, for a signal report's walk (which
 * finds the modules from /proc/self/maps) before the exit's (which asks
 * the loader). Prints "ok".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dropped.h"

#define BIG ((size_t)64 << 20)

/* Not static: a store to an array nothing in this file reads would be
 * left out. */
char big[BIG];

/* In a function of its own: no copy of the address is left in main's
 * frame (the dropped block's: dropped.h). */
__attribute__((noinline)) static int keep_in_big(void)
{
    void *kept = malloc(40);
    if (!kept)
        return -1;
    memcpy(big + BIG / 2 + 24, &kept, sizeof kept);
    return 0;
}

int main(int argc, char **argv)
{
    if (keep_in_big() != 0 || drop(100) != 0)
        return 2;
    printf("ok\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "raise") == 0)
        raise(SIGUSR1);
    return 0;
}
