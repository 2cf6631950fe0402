/*
 * churners — a process that calls exit() while its other threads still
 * allocate and move their pointers about, as a server does when one thread
 * ends it: what the exit report's leak section says of objects the
 * threads were handling.
 *
 * Each of `threads` workers (default 3) owns a table of 65 536 slots,
 * itself a block, kept from a global. A step allocates a block (malloc, or
 * calloc every other step), puts it in a random slot, freeing the block
 * that was there, and swaps two other slots. Every block is reachable from
 * the globals whenever a worker calls the allocator. main first builds a
 * list of `objects` blocks (default 200 000, so the report's reachability
 * pass takes a while), starts the workers, lets them run `ms` milliseconds
 * (default 200) and calls exit(0) while they go on.
 *
 * Every block is the program's and reachable at exit: an exit report that
 * says some are lost, or leaves some unclassified, read them while the
 * workers changed the tables under it.
 * usage: churners [threads [objects [ms]]]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 65536
#define MAX_THREADS 16

struct node {
    struct node *next;
    uintptr_t value;
};

static struct node *volatile list;
static void **volatile tables[MAX_THREADS];
static atomic_long steps;

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    void **t = tables[id];
    uint64_t x = 0x9e3779b97f4a7c15ull * (id + 1);
    for (unsigned long n = 0;; n++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t size = 16 + (size_t)(x >> 58) * 8;
        void *b = n & 1 ? calloc(1, size) : malloc(size);
        if (!b)
            abort();
        memset(b, (int)n, sizeof(void *));
        unsigned i = (unsigned)(x & (SLOTS - 1)), j = (unsigned)((x >> 16) & (SLOTS - 1)),
                 k = (unsigned)((x >> 32) & (SLOTS - 1));
        void *old = t[i];
        t[i] = b;
        free(old);
        void *s = t[j];
        t[j] = t[k];
        t[k] = s;
        atomic_fetch_add_explicit(&steps, 1, memory_order_relaxed);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 3;
    long objects = argc > 2 ? atol(argv[2]) : 200000;
    long ms = argc > 3 ? atol(argv[3]) : 200;
    if (threads < 1 || threads > MAX_THREADS || objects < 0 || ms < 0)
        return 2;
    for (long i = 0; i < objects; i++) {
        struct node *n = malloc(sizeof *n);
        if (!n)
            return 1;
        n->value = (uintptr_t)i;
        n->next = list;
        list = n;
    }
    for (int i = 0; i < threads; i++) {
        tables[i] = calloc(SLOTS, sizeof(void *));
        if (!tables[i])
            return 1;
    }
    pthread_t t;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t, NULL, worker, (void *)(uintptr_t)i) != 0)
            return 1;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    printf("churners: %d threads, %ld objects, %s steps\n", threads, objects,
           atomic_load(&steps) > 0 ? "some" : "no");
    fflush(stdout);
    exit(0);
}
