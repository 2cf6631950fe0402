/*
 * asleep.h — for the test programs: waiting until another thread of the
 * process is asleep in a system call (its /proc stat says S, its syscall
 * file names a call), so an exit report that follows finds it blocked, not
 * on its way there. Each thread tells its id (gettid) to the one that waits.
 */
#ifndef PF_PROGS_ASLEEP_H
#define PF_PROGS_ASLEEP_H

#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long asleep_tid(void)
{
    return syscall(SYS_gettid);
}

/* Whether thread `tid` sleeps in system call `nr` now (nr < 0: any). */
static int asleep_in(long tid, long nr)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ' || paren[2] != 'S')
        return 0;
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    long got = -1;
    int ok = fscanf(f, "%ld", &got) == 1;
    fclose(f);
    return ok && (nr < 0 || got == nr);
}

/* Waits (up to 10 s) until thread `tid` sleeps in system call `nr` (or any
 * when nr < 0); 0 then, -1 after the 10 s. */
static int asleep_wait(long tid, long nr)
{
    for (int i = 0; i < 10000; i++) {
        if (asleep_in(tid, nr))
            return 0;
        struct timespec t = {0, 1000 * 1000};
        nanosleep(&t, NULL);
    }
    return -1;
}

#endif
