/*
 * footprint — what one small allocation costs a process: mallocs 100
 * bytes (after mlockall(MCL_FUTURE) with "lock"), writes to it, and prints
 * VmSize, VmRSS and VmLck in KiB as /proc/self/status has them, read
 * without stdio so the reading allocates nothing. Exits 2 when the
 * allocation fails (as under a tight `ulimit -v`).
 *
 * With "walk" it prints VmHWM before and after raising SIGUSR1 instead:
 * what pfalloc's signal report (with PFALLOC_REACH_SIGNAL=1, its leak walk)
 * adds to the peak.
 *
 * usage: footprint [lock|walk]
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static long field(const char *status, const char *name)
{
    const char *p = strstr(status, name);
    return p ? strtol(p + strlen(name) + 1, NULL, 10) : -1;
}

static int read_status(char *status, size_t cap)
{
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, status, cap - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    status[n] = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "lock") == 0 && mlockall(MCL_FUTURE) != 0)
        return 3;
    volatile char *p = malloc(100);
    if (!p)
        return 2;
    memset((char *)p, 1, 100);
    static char status[8192];
    if (argc > 1 && strcmp(argv[1], "walk") == 0) {
        if (read_status(status, sizeof status) != 0)
            return 4;
        long before = field(status, "VmHWM:");
        raise(SIGUSR1);
        if (read_status(status, sizeof status) != 0)
            return 4;
        printf("VmHWM-before %ld\nVmHWM-after %ld\n", before, field(status, "VmHWM:"));
        free((void *)p);
        return 0;
    }
    if (read_status(status, sizeof status) != 0)
        return 4;
    long size = field(status, "VmSize:"), rss = field(status, "VmRSS:"), lck = field(status, "VmLck:");
    printf("VmSize %ld\nVmRSS %ld\nVmLck %ld\n", size, rss, lck);
    free((void *)p);
    return 0;
}
