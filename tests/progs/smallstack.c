/*
 * smallstack — the report signal handled on a thread with the smallest
 * stack the C library allows (sysconf(_SC_THREAD_STACK_MIN), at least
 * 16 KiB, with a guard page below it). The process keeps a large block of
 * 64 MiB and a mapping of its own of 64 MiB, so a report that classifies
 * leaks walks both. The thread raises SIGUSR1 itself; the program then
 * prints how much of the stack was used ("smallstack: N of M bytes") and
 * exits 0. A report that needs more stack than there is crashes it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *volatile g_big;
static char *volatile g_mapped;

static void *raiser(void *arg)
{
    (void)arg;
    raise(SIGUSR1);
    return NULL;
}

int main(void)
{
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
    memset(stack, 0xa5, size);
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstack(&attr, stack, size) != 0 ||
        pthread_create(&t, &attr, raiser, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 2;
    size_t untouched = 0;
    while (untouched < size && (unsigned char)stack[untouched] == 0xa5)
        untouched++;
    printf("smallstack: %zu of %zu bytes\n", size - untouched, size);
    return 0;
}
