/*
 * runtime.h — for the test programs: facts of the running process from
 * /proc. How long a thread of this process has run, which tells that it is
 * busy (in a walk of the heap, say) on a loaded machine as well as on an
 * idle one; and its address space.
 */
#ifndef PF_PROGS_RUNTIME_H
#define PF_PROGS_RUNTIME_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The time thread tid has run, in ns (its schedstat's first field), or -1. */
static inline long long ran_ns(int tid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return atoll(buf);
}

/* The process's address space (VmSize) in KiB, or -1. Through stdio,
 * which allocates. */
static inline long vm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmSize:", 7) == 0)
            kib = strtol(line + 7, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

#endif
