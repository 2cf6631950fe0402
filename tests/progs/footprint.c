/*
 * footprint — what one small allocation costs a process: mallocs 100
 * bytes (after mlockall(MCL_FUTURE) with "lock"), writes to it, and prints
 * VmSize, VmRSS and VmLck in KiB as /proc/self/status has them, read
 * without stdio so the reading allocates nothing. Exits 2 when the
 * allocation fails (as under a tight `ulimit -v`).
 *
 * usage: footprint [lock]
 */
#include <fcntl.h>
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

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "lock") == 0 && mlockall(MCL_FUTURE) != 0)
        return 3;
    volatile char *p = malloc(100);
    if (!p)
        return 2;
    memset((char *)p, 1, 100);
    static char status[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, status, sizeof status - 1);
    if (n <= 0)
        return 4;
    status[n] = 0;
    long size = field(status, "VmSize:"), rss = field(status, "VmRSS:"), lck = field(status, "VmLck:");
    printf("VmSize %ld\nVmRSS %ld\nVmLck %ld\n", size, rss, lck);
    free((void *)p);
    return 0;
}
