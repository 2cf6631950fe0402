/*
 * exit_two — two threads end the process at once, as perl does when a
 * thread calls exit while others run: the main thread builds a heap of
 * many small objects (so the exit report's walk takes a while) and calls
 * exit(0); the other thread, once it sees that, allocates and frees until
 * one of its allocations has waited (the exit report holds other threads'
 * allocations while it reads the heap), then formats its last words (as
 * perl prints "exited with active threads") and calls exit(3). The C
 * library's exit in the second thread finds no handler left and ends the
 * process at once, whatever the first is doing: unless its allocations
 * wait until the report is written, it cuts the report off.
 * usage: exit_two [objects]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heaplist.h"

static atomic_int exiting;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *last_words(void *arg)
{
    (void)arg;
    while (!atomic_load(&exiting))
        ;
    /* Until an allocation waited (40 ms: the walk of the heap main built
     * takes longer, a preemption rarely does). */
    for (;;) {
        double t0 = now_ms();
        char *volatile s = malloc(64);
        double waited = now_ms() - t0;
        if (!s)
            abort();
        free(s);
        if (waited > 40)
            break;
    }
    char *volatile s = malloc(64);
    if (!s)
        abort();
    snprintf(s, 64, "exit_two: exited with %d active threads", 1);
    exit(3);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (heaplist_build(n, 0, 'x') != 0)
        return 2;
    pthread_t t;
    if (pthread_create(&t, NULL, last_words, NULL) != 0)
        return 2;
    printf("exit_two: %ld objects\n", n);
    fflush(stdout);
    atomic_store(&exiting, 1);
    exit(0);
}
