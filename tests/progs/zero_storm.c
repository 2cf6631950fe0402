/*
 * zero_storm — malloc(0) and free in a loop while a second thread sends
 * the report signal (SIGUSR1) to the looping thread every millisecond, so
 * that reports land inside the allocator's handling of zero-size blocks.
 * Prints how many signals it sent.
 * usage: zero_storm [signals]
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_t looper;
static atomic_int done;

static void *storm(void *arg)
{
    long n = *(long *)arg;
    struct timespec ms = {0, 1000 * 1000};
    for (long i = 0; i < n; i++) {
        pthread_kill(looper, SIGUSR1);
        nanosleep(&ms, NULL);
    }
    atomic_store(&done, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200;
    void *volatile kept = malloc(0);
    looper = pthread_self();
    pthread_t t;
    if (!kept || pthread_create(&t, NULL, storm, &n) != 0)
        return 2;
    while (!atomic_load(&done)) {
        void *volatile p = malloc(0);
        if (!p)
            return 2;
        free(p);
    }
    pthread_join(t, NULL);
    printf("zero_storm: %ld signals\n", n);
    return 0;
}
