/*
 * runtime.h — for the test programs: facts of the running process from
 * /proc. How long a thread of this process has run, which tells that it is
 * busy (in a walk of the heap, say) on a loaded machine as well as on an
 * idle one; its address space; and a fork in a process with threads.
 */
#ifndef PF_PROGS_RUNTIME_H
#define PF_PROGS_RUNTIME_H

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A small file of /proc, read whole into buf (NUL-terminated) without
 * stdio, which allocates: 0, or -1. */
static inline int proc_read(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return 0;
}

/* The time thread tid has run, in ns (its schedstat's first field), or -1. */
static inline long long ran_ns(int tid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
    return proc_read(path, buf, sizeof buf) == 0 ? atoll(buf) : -1;
}

/* The process's resident pages (statm's second field), or -1. */
static inline long resident_pages(void)
{
    char buf[128];
    if (proc_read("/proc/self/statm", buf, sizeof buf) != 0)
        return -1;
    char *p = strchr(buf, ' ');
    return p ? atol(p + 1) : -1;
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

static void *sleeps_for_good(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* Starts a thread that only sleeps (so the process has threads, and a fork
 * takes the allocator's locks), forks once, the child ending at once, and
 * waits for it: 0, or -1 when a step failed. */
static inline int threaded_fork_once(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, sleeps_for_good, NULL) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    return pid > 0 && waitpid(pid, NULL, 0) == pid ? 0 : -1;
}

#endif
