/*
 * exit_in_walk — a handler of the program's calls exit while its thread is
 * in pfalloc's report-signal walk (PFALLOC_REACH_SIGNAL=1), as a SIGINT or
 * SIGALRM handler that calls exit does: main builds a heap of many small
 * objects and waits in pause; a helper thread sends it the report signal
 * and, once main has run 20 ms since (the walk, which takes far longer),
 * SIGUSR2, whose handler calls exit(3). The exit's report must not take
 * the locks or the tables of the walk it interrupted.
 * usage: exit_in_walk [objects]
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "heaplist.h"
#include "runtime.h"

static atomic_int main_tid;

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void on_usr2(int sig)
{
    (void)sig;
    exit(3);
}

static void *helper(void *arg)
{
    (void)arg;
    int tid = atomic_load(&main_tid);
    long long t0 = ran_ns(tid);
    syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
    for (int i = 0; ran_ns(tid) < t0 + 20000000; i++) {
        if (i == 60000)
            _exit(5);
        sleep_ms(1);
    }
    syscall(SYS_tgkill, getpid(), tid, SIGUSR2);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 3000000;
    atomic_store(&main_tid, (int)syscall(SYS_gettid));
    if (ran_ns(atomic_load(&main_tid)) < 0)
        return 4;
    signal(SIGUSR2, on_usr2);
    if (heaplist_build(n, 0, 'e') != 0)
        return 2;
    printf("exit_in_walk: %ld objects\n", n);
    fflush(stdout);
    pthread_t h;
    if (pthread_create(&h, NULL, helper, NULL) != 0)
        return 2;
    for (;;)
        pause();
}
