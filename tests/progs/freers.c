/*
 * freers — a process that calls exit() while its other threads free: each
 * of `threads` workers (default 2) builds a list of `batch` blocks (default
 * 1 000 000; of 48 to 1 056 bytes in turn, 64 size classes), then frees it
 * block by block, and again. main first builds a list of
 * `objects` blocks (default 200 000, so the exit report's walk takes a
 * while), starts the workers, lets them run `ms` milliseconds (default
 * 200) and calls exit(0) while they go on. The exit report's totals and
 * its leak section must count the same objects: frees that go on between
 * the walk and the totals make them differ. With "once" the workers build
 * their lists, main waits for them all, and the workers start freeing
 * (once, then sleep) `ms` milliseconds before main calls exit(0): the exit
 * comes while they only free.
 * usage: freers [threads [objects [ms [batch [once]]]]]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "heaplist.h"

static long batch = 1000000;
static int once;
static _Atomic int built, go;

/* A list of `batch` blocks of 64 sizes in turn: frees of many classes. */
static struct heaplist_node *build(void)
{
    struct heaplist_node *head = NULL;
    for (long i = 0; i < batch; i++) {
        struct heaplist_node *n = malloc(sizeof *n + (size_t)(i % 64) * 16);
        if (!n)
            abort();
        n->next = head;
        head = n;
    }
    return head;
}

static void free_all(struct heaplist_node *head)
{
    while (head) {
        struct heaplist_node *n = head->next;
        free(head);
        head = n;
    }
}

static void *work(void *arg)
{
    (void)arg;
    if (once) {
        struct heaplist_node *head = build();
        built++;
        while (!go) {
            struct timespec t = {0, 100000};
            nanosleep(&t, NULL);
        }
        free_all(head);
        for (;;)
            pause();
    }
    for (;;)
        free_all(build());
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long objects = argc > 2 ? atol(argv[2]) : 200000;
    long ms = argc > 3 ? atol(argv[3]) : 200;
    if (argc > 4)
        batch = atol(argv[4]);
    once = argc > 5 && strcmp(argv[5], "once") == 0;
    if (heaplist_build(objects, 0, 'k') != 0)
        return 2;
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, work, NULL) != 0)
            return 2;
    }
    if (once) {
        while (built < threads) {
            struct timespec t = {0, 100000};
            nanosleep(&t, NULL);
        }
        go = 1;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    printf("freers: %d threads\n", threads);
    fflush(stdout);
    exit(0);
}
