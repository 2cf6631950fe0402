/*
 * runtime.h — for the test programs: how long a thread of this process has
 * run, which tells that it is busy (in a walk of the heap, say) on a
 * loaded machine as well as on an idle one.
 */
#ifndef PF_PROGS_RUNTIME_H
#define PF_PROGS_RUNTIME_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The time thread tid has run, in ns (its schedstat's first field), or -1. */
static long long ran_ns(int tid)
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

#endif
