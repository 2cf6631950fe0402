/*
 * maplimit — large blocks freed while the process holds as many mappings as
 * the kernel allows (vm.max_map_count). 64 blocks of 2 MiB are allocated
 * and written (mapped side by side, the kernel keeps them as one or a few
 * mappings); then the program takes every mapping left (every other page of
 * a PROT_NONE reservation made readable, until mprotect says ENOMEM), frees
 * every other block and calls malloc_trim(0). Unmapping a block from the
 * middle of a mapping splits it, which the kernel then refuses: the
 * allocator must still give the block's pages back. Prints "freed N MiB,
 * resident fell by M MiB", then gives the mappings back and frees the rest.
 * With the argument "shrink", the blocks are instead shrunk to half by
 * realloc at the limit (shrinking a block in the middle of a mapping splits
 * it too): a realloc that cannot give the tail back keeps the block where
 * it is, as glibc does, and never returns NULL. Prints "shrunk N of M, K
 * intact".
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime.h"

#define BLOCKS 64
#define BLOCK ((size_t)2 << 20)

/* Global, so the compiler keeps every allocation. */
void *maplimit_blocks[BLOCKS];

int main(int argc, char **argv)
{
    int shrink = argc > 1 && strcmp(argv[1], "shrink") == 0;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < BLOCKS; i++) {
        if (!(maplimit_blocks[i] = malloc(BLOCK))) {
            fprintf(stderr, "maplimit: out of memory\n");
            return 2;
        }
        memset(maplimit_blocks[i], i + 1, BLOCK);
    }
    /* Every mapping left: 70 000 pairs of pages are more than the default
     * limit (65 530) allows. */
    size_t pages = 140000, taken = 0;
    char *res = mmap(NULL, pages * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) {
        fprintf(stderr, "maplimit: no reservation\n");
        return 2;
    }
    while (2 * taken + 1 < pages && mprotect(res + (2 * taken + 1) * ps, ps, PROT_READ) == 0)
        taken++;
    if (2 * taken + 1 >= pages || errno != ENOMEM) {
        fprintf(stderr, "maplimit: the mapping limit was not reached (%zu taken)\n", taken);
        return 3;
    }
    if (shrink) {
        int shrunk = 0, intact = 0;
        for (int i = 1; i < BLOCKS; i += 2) {
            void *q = realloc(maplimit_blocks[i], BLOCK / 2);
            if (!q)
                continue;
            shrunk++;
            maplimit_blocks[i] = q;
            const unsigned char *b = q;
            size_t k = 0;
            while (k < BLOCK / 2 && b[k] == (unsigned char)(i + 1))
                k++;
            intact += k == BLOCK / 2;
        }
        munmap(res, pages * ps);
        printf("shrunk %d of %d, %d intact\n", shrunk, BLOCKS / 2, intact);
        for (int i = 0; i < BLOCKS; i++)
            free(maplimit_blocks[i]);
        return 0;
    }
    long before = resident_pages();
    for (int i = 0; i < BLOCKS; i += 2) {
        free(maplimit_blocks[i]);
        maplimit_blocks[i] = NULL;
    }
    malloc_trim(0);
    long after = resident_pages();
    munmap(res, pages * ps);
    printf("freed %zu MiB, resident fell by %ld MiB\n", BLOCKS / 2 * BLOCK >> 20, (before - after) * (long)ps >> 20);
    for (int i = 0; i < BLOCKS; i++)
        free(maplimit_blocks[i]);
    return 0;
}
