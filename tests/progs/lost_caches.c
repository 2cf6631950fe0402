/*
 * lost_caches — threads that never give their allocator state back the
 * usual way, one after another:
 *   key    a thread's first allocations are made in glibc's last round of
 *          key destructors (a destructor sets its key again until then),
 *          where a key set by the allocator is dropped without a call;
 *   exit   a thread allocates, then ends with a bare exit system call,
 *          which runs no destructor at all.
 * Every block is freed. Prints "N threads (MODE): ok"; the test reads the
 * number of threads holding a cache from the exit report.
 *
 * usage: lost_caches key|exit [threads]
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_key_t key;

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
    pthread_setspecific(key, (void *)1L);
    return NULL;
}

static void *bare_exit(void *arg)
{
    (void)arg;
    churn();
    syscall(SYS_exit, 0);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "key";
    int n = argc > 2 ? atoi(argv[2]) : 200;
    void *(*fn)(void *) = strcmp(mode, "exit") == 0 ? bare_exit : keyed;
    if (pthread_key_create(&key, again) != 0)
        return 2;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, fn, NULL) != 0 || pthread_join(t, NULL) != 0)
            return 2;
    }
    printf("%d threads (%s): ok\n", n, mode);
    return 0;
}
