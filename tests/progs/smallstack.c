/*
 * smallstack — reports on a thread with the smallest stack the C library
 * allows (sysconf(_SC_THREAD_STACK_MIN), at least 16 KiB, with a guard
 * page below it). The process keeps a large block of 64 MiB and a mapping
 * of its own of 64 MiB, so a report that classifies leaks walks both.
 *
 *   smallstack        a thread on such a stack raises SIGUSR1 itself; then
 *                     a second one, on the same stack painted afresh, only
 *                     starts and ends. The program prints how much of the
 *                     stack each used ("smallstack: N of M bytes, K without
 *                     the signal") and exits 0.
 *   smallstack exit   the thread calls exit(3): the exit report runs on it.
 *
 * A report that needs more stack than there is crashes the program.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "painted.h"

static char *volatile g_big;
static char *volatile g_mapped;

static int mode_exit;

static void *raiser(void *arg)
{
    if (mode_exit)
        exit(3);
    if (arg)
        raise(SIGUSR1);
    return NULL;
}

int main(int argc, char **argv)
{
    mode_exit = argc > 1 && strcmp(argv[1], "exit") == 0;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    long min = sysconf(_SC_THREAD_STACK_MIN);
    size_t size = min > 16384 ? (size_t)min : 16384;
    size = (size + ps - 1) & ~(ps - 1);
    g_big = malloc((size_t)64 << 20);
    g_mapped = mmap(NULL, (size_t)64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *stack = mmap(NULL, size + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!g_big || g_mapped == MAP_FAILED || stack == MAP_FAILED || mprotect(stack, ps, PROT_NONE) != 0)
        return 2;
    g_big[1 << 20] = 1;
    g_mapped[0] = 1;
    stack += ps;
    size_t used = painted_run(stack, size, raiser, (void *)1, NULL);
    size_t plain = painted_run(stack, size, raiser, NULL, NULL);
    if (!used || !plain)
        return 2;
    printf("smallstack: %zu of %zu bytes, %zu without the signal\n", used, size, plain);
    return 0;
}
