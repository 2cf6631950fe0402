/*
 * guarded — a mapping of the program's own with a guard region in it
 * (MADV_GUARD_INSTALL, Linux 6.13: a page that faults when read, though
 * /proc/self/maps shows the mapping whole and readable), holding the only
 * pointers to three blocks: one before the guard page, one in the word
 * right after it, one in the mapping's last word. A block of 100 bytes is
 * dropped (definitely lost). The leak walk must read past the guard page:
 * all three blocks still reachable, the dropped one lost, and the process
 * alive. Prints "guard 1" when the kernel made the guard region ("guard 0"
 * when it has none: the mapping is then read whole), then "ok".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dropped.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define OWN ((size_t)1 << 20)
#define GUARD_AT ((size_t)256 << 10)

/* In a function of its own: no copy of the blocks' addresses is left in
 * main's frame. */
__attribute__((noinline)) static int fill(void)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    char *own = mmap(NULL, OWN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *small = malloc(40), *medium = malloc(5000), *large = malloc(200000);
    if (own == MAP_FAILED || !small || !medium || !large)
        return -1;
    memset(own, 0, OWN);
    memset(small, 1, 40);
    memset(medium, 2, 5000);
    memset(large, 3, 4096);
    int guard = madvise(own + GUARD_AT, ps, MADV_GUARD_INSTALL) == 0;
    uintptr_t *before = (uintptr_t *)(void *)(own + 8);
    uintptr_t *after = (uintptr_t *)(void *)(own + GUARD_AT + ps);
    uintptr_t *last = (uintptr_t *)(void *)(own + OWN - sizeof(uintptr_t));
    *before = (uintptr_t)small;
    *after = (uintptr_t)medium;
    *last = (uintptr_t)large;
    printf("guard %d\n", guard);
    return 0;
}

int main(void)
{
    if (fill() != 0 || drop(100) != 0)
        return 2;
    printf("ok\n");
    return 0;
}
