/*
 * oomreuse — memory freed is there for other sizes when the address space
 * runs out. The program limits its own address space (RLIMIT_AS) to what it
 * has mapped now plus 192 MiB, then:
 *   large  fills it with 1 MiB blocks until malloc fails, frees them all,
 *          then needs 10000 small blocks of 16..1024 bytes (every class,
 *          5 MiB in all): prints "big N" and "small ok" or
 *          "small failed at I";
 *   small  fills up to 160 MiB with 16-byte blocks (until malloc fails),
 *          frees them all, then counts the 1 MiB blocks that fit: prints
 *          "small N" and "big M";
 *   tight  has only 16 MiB more, and keeps 8 MiB of 64-byte blocks live in
 *          a list through themselves (glibc needs about 11 MiB for them):
 *          prints "tight ok" or "tight failed at I MiB".
 * Every block is written; the counts are compared with glibc's by the test.
 *
 * usage: oomreuse large|small|tight
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "runtime.h"

#define BIG ((size_t)1 << 20)
#define BIG_MAX 1024

static void *big[BIG_MAX];

static int fill_big(void)
{
    int n = 0;
    while (n < BIG_MAX && (big[n] = malloc(BIG)) != NULL) {
        memset(big[n], n, BIG);
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "large";
    setvbuf(stdout, NULL, _IONBF, 0); /* stdio allocates nothing later */
    long kib = vm_kib();
    if (kib <= 0)
        return 3;
    int tight = strcmp(mode, "tight") == 0;
    struct rlimit rl = {(rlim_t)kib * 1024 + ((rlim_t)(tight ? 16 : 192) << 20), RLIM_INFINITY};
    rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 3;
    if (strcmp(mode, "large") == 0) {
        int n = fill_big();
        for (int i = 0; i < n; i++)
            free(big[i]);
        printf("big %d\n", n);
        static void *small[10000];
        for (int i = 0; i < 10000; i++) {
            size_t sz = (size_t)(i % 64 + 1) * 16;
            small[i] = malloc(sz);
            if (!small[i]) {
                printf("small failed at %d\n", i);
                return 0;
            }
            memset(small[i], 1, sz);
        }
        printf("small ok\n");
        return 0;
    }
    if (tight) {
        void *head = NULL;
        for (size_t i = 0; i < ((size_t)8 << 20) / 64; i++) {
            void **p = malloc(64);
            if (!p) {
                printf("tight failed at %zu MiB\n", i * 64 >> 20);
                return 0;
            }
            memset(p, 1, 64);
            p[0] = head;
            head = p;
        }
        printf("tight ok\n");
        return 0;
    }
    /* 16-byte blocks in a list through themselves: no array to hold them. */
    void *head = NULL;
    size_t n = 0;
    while (n < ((size_t)160 << 20) / 16) {
        void **p = malloc(16);
        if (!p)
            break;
        p[0] = head;
        p[1] = NULL;
        head = p;
        n++;
    }
    while (head) {
        void *next = *(void **)head;
        free(head);
        head = next;
    }
    printf("small %zu\n", n);
    printf("big %d\n", fill_big());
    return 0;
}
