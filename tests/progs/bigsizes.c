/*
 * bigsizes — a block or two of each of many sizes above 8 KiB, the way a
 * Python starting up makes them: the address space it takes. Prints
 * "grew N KiB" (VmSize after the blocks, all live, against before them)
 * and "blocks B KiB" (what they hold).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

int main(void)
{
    static void *keep[64];
    size_t total = 0;
    int n = 0;
    long before = vm_kib();
    for (size_t size = 9000; size <= 128000 && n < 64; size += 6000) {
        for (int k = 0; k < 2; k++) {
            char *p = malloc(size);
            if (!p)
                return 1;
            memset(p, k + 1, size);
            keep[n++] = p;
            total += size;
        }
    }
    long after = vm_kib();
    printf("grew %ld KiB\nblocks %zu KiB\n", after - before, total / 1024);
    for (int i = 0; i < n; i++)
        free(keep[i]);
    return 0;
}
