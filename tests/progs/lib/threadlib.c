/*
 * threadlib — a library the program links, with a worker thread of its own
 * (a logger's, a pool's): its constructor starts the worker, which
 * allocates at once, so the worker has an allocator cache before
 * pfalloc's constructor runs (a library the program links is set up
 * before the preload); its destructor, which runs after pfalloc's, stops
 * the worker and joins it, and the worker allocates as it winds down.
 * Meanwhile the worker hands blocks of 100 bytes, all written, to the
 * program through threadlib_take.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 64
static void *_Atomic handoff[SLOTS];
static atomic_int ready, taking, stopping;
static pthread_t worker_thread;

static void *worker(void *arg)
{
    (void)arg;
    void *volatile first = malloc(100);
    free(first);
    atomic_store(&ready, 1);
    while (!atomic_load(&stopping)) {
        if (atomic_load(&taking))
            for (int i = 0; i < SLOTS; i++) {
                if (atomic_load(&handoff[i]))
                    continue;
                char *p = malloc(100);
                if (!p)
                    abort();
                memset(p, 'x', 100);
                atomic_store(&handoff[i], p);
            }
        usleep(200);
    }
    /* Winding down, after the program's exit. */
    char *volatile last = malloc(64);
    memset(last, 0, 64);
    free(last);
    return NULL;
}

__attribute__((constructor)) static void threadlib_start(void)
{
    if (pthread_create(&worker_thread, NULL, worker, NULL) != 0)
        abort();
    while (!atomic_load(&ready))
        usleep(100);
}

__attribute__((destructor)) static void threadlib_stop(void)
{
    atomic_store(&stopping, 1);
    pthread_join(worker_thread, NULL);
}

/* A block the worker made, or NULL; the caller frees it. */
void *threadlib_take(void)
{
    atomic_store(&taking, 1);
    for (int i = 0; i < SLOTS; i++) {
        void *p = atomic_exchange(&handoff[i], NULL);
        if (p)
            return p;
    }
    return NULL;
}
