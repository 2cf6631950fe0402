/*
 * joined.h — for the test programs: four threads that run at once (each
 * calls joined_wait, which returns when all four have called it, so their
 * stacks are all in use together), then all joined. The C library keeps
 * the exited threads' stacks, each with its descriptor and DTV, for reuse.
 */
#ifndef PF_PROGS_JOINED_H
#define PF_PROGS_JOINED_H

#include <pthread.h>
#include <stdlib.h>

static pthread_barrier_t joined_together;

static void joined_wait(void)
{
    pthread_barrier_wait(&joined_together);
}

static void joined_run(void *(*worker)(void *))
{
    pthread_t t[4];
    if (pthread_barrier_init(&joined_together, NULL, 4) != 0)
        abort();
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            abort();
    for (int i = 0; i < 4; i++)
        if (pthread_join(t[i], NULL) != 0)
            abort();
    pthread_barrier_destroy(&joined_together);
}

#endif
