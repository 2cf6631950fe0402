/*
 * lost_caches — threads that never give their allocator state back the
 * usual way, one after another:
 *   key    a thread's first allocations are made in glibc's last round of
 *          key destructors (a destructor sets its key again until then),
 *          where a key set by the allocator is dropped without a call;
 *   exit   a thread allocates, then ends with a bare exit system call,
 *          which runs no destructor at all;
 *   burst  four threads per CPU the process may run on, and four more, all
 *          alive at once, allocate and end with a bare exit system call;
 *          then `threads` threads, one after another, allocate and end as
 *          threads do (each finds the cache the one before gave back).
 * Every block is freed. "One after another": the next thread starts once
 * the last is gone from the process, not only joined (pthread_join returns
 * when the kernel clears the thread's id, before the thread has left the
 * process: a thread started then still saw the last one alive). Prints "N
 * threads (MODE): ok"; the test reads the number of threads holding a
 * cache from the exit report.
 *
 * usage: lost_caches key|exit|burst [threads]
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_key_t key;
static _Atomic long last_tid; /* the thread id of the one-after-another thread running */

/* Records the calling thread's id for gone(). */
static void tell_tid(void)
{
    atomic_store(&last_tid, syscall(SYS_gettid));
}

/* Waits (up to 10 s) until the thread last_tid names has left the process. */
static void gone(void)
{
    long tid = atomic_load(&last_tid);
    for (int i = 0; tid > 0 && i < 10000 && syscall(SYS_tgkill, (long)getpid(), tid, 0) == 0; i++)
        usleep(1000);
}

static void churn(void)
{
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = malloc(100 + (size_t)i * 16);
        if (!p[i])
            abort();
        memset(p[i], i, 100);
    }
    for (int i = 0; i < 64; i++)
        free(p[i]);
}

static void again(void *v)
{
    long round = (long)v;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(key, (void *)(round + 1));
        return;
    }
    churn();
}

static void *keyed(void *arg)
{
    (void)arg;
    tell_tid();
    pthread_setspecific(key, (void *)1L);
    return NULL;
}

static void *bare_exit(void *arg)
{
    (void)arg;
    tell_tid();
    churn();
    syscall(SYS_exit, 0);
    return NULL;
}

static pthread_barrier_t all_alive;

static void *burst_exit(void *arg)
{
    (void)arg;
    churn();
    pthread_barrier_wait(&all_alive);
    syscall(SYS_exit, 0);
    return NULL;
}

static void *plain(void *arg)
{
    (void)arg;
    tell_tid();
    churn();
    return NULL;
}

/* The burst, then n threads one after another. */
static int burst(int n)
{
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    int k = 4 * cpus + 4;
    pthread_t *t = calloc((size_t)k, sizeof *t);
    if (!t || pthread_barrier_init(&all_alive, NULL, (unsigned)k) != 0)
        return 2;
    for (int i = 0; i < k; i++)
        if (pthread_create(&t[i], NULL, burst_exit, NULL) != 0)
            return 2;
    for (int i = 0; i < k; i++)
        if (pthread_join(t[i], NULL) != 0)
            return 2;
    free(t);
    for (int i = 0; i < n; i++) {
        pthread_t u;
        if (pthread_create(&u, NULL, plain, NULL) != 0 || pthread_join(u, NULL) != 0)
            return 2;
        gone();
    }
    printf("%d threads (burst of %d): ok\n", n, k);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "key";
    int n = argc > 2 ? atoi(argv[2]) : 200;
    if (strcmp(mode, "burst") == 0)
        return burst(n);
    void *(*fn)(void *) = strcmp(mode, "exit") == 0 ? bare_exit : keyed;
    if (pthread_key_create(&key, again) != 0)
        return 2;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, fn, NULL) != 0 || pthread_join(t, NULL) != 0)
            return 2;
        gone();
    }
    printf("%d threads (%s): ok\n", n, mode);
    return 0;
}
