/*
 * overflow — a linear overflow past a large block never reaches allocator
 * metadata. For each block size and overflow length, a child process
 * allocates small blocks (so regions and metadata exist), then a large
 * block, writes `len` bytes past its usable end, then keeps allocating:
 * every block must be aligned, outside the program's static array, usable
 * and freeable, and the counters must balance. The write may fault
 * (SIGSEGV: the child dies of it, which is fine) or land in user memory;
 * any other end (abort, wrong block) is a failure.
 * Prints one line per case: "size len: segv|ok|FAIL ..." and exits 1 on FAIL.
 *
 * usage: overflow
 */
#include <dlfcn.h>
#include <pfalloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <malloc.h>
#include <unistd.h>

static char arena[1 << 20]; /* the program's static array */

static int bad(void *p, size_t align)
{
    uintptr_t a = (uintptr_t)p;
    if (!p)
        return 1;
    if (a % align)
        return 2;
    if (a + 16 > (uintptr_t)arena && a < (uintptr_t)arena + sizeof arena)
        return 3;
    return 0;
}

static int child(size_t size, size_t len)
{
    int (*stats_get)(struct pf_stats *) = (int (*)(struct pf_stats *))dlsym(RTLD_DEFAULT, "pf_stats_get");
    static struct pf_stats st;
    void *warm[64];
    for (int i = 0; i < 64; i++)
        warm[i] = malloc((size_t)(i % 32 + 1) * 48);
    unsigned char *big = malloc(size);
    if (!big)
        return 10;
    size_t usable = malloc_usable_size(big);
    memset(big, 1, usable);
    volatile unsigned char *end = big + usable;
    for (size_t i = 0; i < len; i++)
        end[i] = 0xff; /* the overflow: faults, or lands somewhere */
    memset(arena, 0x5a, sizeof arena);
    uint64_t before = 0;
    if (stats_get && stats_get(&st) == 0)
        before = st.totals.live_objects;
    static void *blocks[4096];
    int n = 0;
    for (int round = 0; round < 4; round++)
        for (size_t sz = 16; sz <= 300000; sz = sz * 5 / 4 + 16) {
            size_t align = sz >= 4096 ? 4096 : 16;
            void *p = align > 16 ? aligned_alloc(align, (sz + align - 1) / align * align) : malloc(sz);
            int why = bad(p, align);
            if (why)
                return 20 + why;
            memset(p, 0xa5, sz);
            blocks[n++] = p;
        }
    for (size_t i = 0; i < sizeof arena; i++)
        if (arena[i] != 0x5a)
            return 30;
    if (stats_get && stats_get(&st) == 0 && st.totals.live_objects != before + (uint64_t)n)
        return 31;
    while (n)
        free(blocks[--n]);
    for (int i = 0; i < 64; i++)
        free(warm[i]);
    free(big);
    return 0;
}

int main(void)
{
    static const size_t sizes[] = {140000, 200000, 300001, 1 << 20, (4 << 20) + 5, 65536 * 3 - 1};
    static const size_t lens[] = {1, 8, 4096};
    int failed = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0)
                _exit(child(sizes[i], lens[j]));
            int status = 0;
            waitpid(pid, &status, 0);
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
                printf("%zu %zu: segv\n", sizes[i], lens[j]);
            } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                printf("%zu %zu: ok\n", sizes[i], lens[j]);
            } else {
                printf("%zu %zu: FAIL status %#x\n", sizes[i], lens[j], status);
                failed = 1;
            }
        }
    return failed;
}
