/*
 * slow_walk — the process exits while another thread's signal report is
 * still reading the heap. Run with PFALLOC_REACH_SIGNAL=1, so that a
 * report signal walks the heap in its handler. Every thread is kept on
 * one CPU; one thread, at the lowest scheduling class (SCHED_IDLE), takes
 * the report signal, while a thread at the normal class spins beside it:
 * the starved handler's walk of the heap takes many seconds. Once it is
 * under way (the thread has run 2 ms since the signal: entering the
 * handler and taking the walk take microseconds), main calls exit(5),
 * whose exit report waits for the walk no longer than its bound and then
 * must not take the walk's tables from under it.
 * usage: slow_walk [objects]
 * Prints "slow_walk: N objects, walk under way" on stdout before it exits;
 * exits 4 where the thread cannot be starved (SCHED_IDLE refused, no
 * /proc/self/task/N/schedstat).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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

static atomic_int stop, walker_tid;

static void *spin(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        ;
    return NULL;
}

static void *walker(void *arg)
{
    (void)arg;
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
        exit(4);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    atomic_store(&walker_tid, (int)syscall(SYS_gettid));
    for (;;)
        pause();
    return NULL;
}

/* The scheduler state of thread tid ('S' asleep, 'R' running), or 0. */
static char state_of(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* after the command's name, which may hold anything */
    return p && p[1] == ' ' ? p[2] : 0;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 300000;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) /* inherited by the threads made next */
        return 2;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* only the walker takes it */
    if (heaplist_build(n, 0, 'w') != 0)
        return 2;
    pthread_t s, w;
    if (pthread_create(&w, NULL, walker, NULL) != 0 || pthread_create(&s, NULL, spin, NULL) != 0)
        return 2;
    while (!atomic_load(&walker_tid) || state_of(atomic_load(&walker_tid)) != 'S')
        sleep_ms(1);
    int tid = atomic_load(&walker_tid);
    long long t0 = ran_ns(tid);
    if (t0 < 0)
        return 4;
    kill(getpid(), SIGUSR1);
    /* It took the signal and runs the handler's walk. */
    for (int i = 0; ran_ns(tid) < t0 + 2000000; i++) {
        if (i == 60000)
            return 3;
        sleep_ms(1);
    }
    printf("slow_walk: %ld objects, walk under way\n", n);
    fflush(stdout);
    exit(5);
}
