/*
 * giveback — how much of a freed heap goes back to the OS, the way a
 * long-running server sees it. Prints its resident memory (VmRSS from
 * /proc/self/statm, in KiB) at the points the test compares.
 *
 *   decay  allocates 256 MiB in small blocks (16..1024 bytes, every block
 *          written), frees them all ("freed N"), waits 3 s (longer than
 *          pfalloc's 2 s of decay) and makes a short burst of allocations
 *          of sizes it did not use before, which refills the thread's
 *          cache, the activity that lets the pool decay; then prints
 *          "decayed N".
 *
 * usage: giveback decay
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEAP ((size_t)256 << 20)

static void *volatile seen;

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = -1;
        fclose(f);
    }
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int decay(void)
{
    size_t n = HEAP / 520, got = 0;
    void **v = malloc(n * sizeof *v);
    if (!v)
        return 1;
    for (size_t i = 0; i < n; i++, got++) {
        size_t size = 16 + (i * 2654435761u) % 1009;
        if (!(v[i] = malloc(size)))
            break;
        memset(v[i], (int)i, size);
    }
    for (size_t i = 0; i < got; i++)
        free(v[i]);
    free(v);
    printf("freed %ld\n", rss_kib());
    fflush(stdout);
    sleep(3);
    /* Sizes not used above (above 1 KiB): each class's first malloc
     * refills. Each block is shown to `seen`, so none is optimised away. */
    for (int round = 0; round < 4; round++) {
        void *w[64];
        for (int i = 0; i < 64; i++)
            seen = w[i] = malloc(2048 + (size_t)i * 64 + (size_t)round * 4096);
        for (int i = 0; i < 64; i++)
            free(w[i]);
    }
    printf("decayed %ld\n", rss_kib());
    return got == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "decay") == 0)
        return decay();
    fprintf(stderr, "usage: giveback decay\n");
    return 2;
}
