/*
 * oom_leaks — leaks 94 objects of 100 bytes, then caps its address space at
 * what it uses (RLIMIT_AS) and allocates until malloc says no, keeping
 * everything, so it exits with no address space left. Prints (with write,
 * nothing buffered) how many objects it holds at the end: the 94 plus every
 * block the exhaustion got. The leak report and PFALLOC_LEAK_EXIT_CODE must
 * still be right in such a process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define LEAKS 94

void *volatile oom_sink[LEAKS];
static void *volatile *chain; /* blocks got while exhausting, linked through their first word */

static unsigned long exhaust(size_t size)
{
    unsigned long n = 0;
    for (;;) {
        void **p = malloc(size);
        if (!p)
            return n;
        *p = (void *)chain;
        chain = (void *volatile *)p;
        n++;
    }
}

int main(void)
{
    for (int i = 0; i < LEAKS; i++)
        oom_sink[i] = malloc(100);
    /* The address space in use now (statm's first field, in pages). */
    char buf[256];
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        return 2;
    fclose(f);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (4u << 20);
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 2;
    unsigned long n = exhaust(1 << 20);
    n += exhaust(4096);
    n += exhaust(64);
    int len = snprintf(buf, sizeof buf, "oom_leaks: %lu objects held\n", n + LEAKS);
    if (write(1, buf, (size_t)len) != len)
        return 2;
    return 0;
}
