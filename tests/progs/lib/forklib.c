/*
 * forklib — a library the program links that registers fork handlers in its
 * constructor (before pfalloc's, whose constructor runs after it), and
 * allocates in them: glibc runs its prepare handler after pfalloc's. It
 * allocates a large block there (which no thread cache can serve without
 * a lock).
 */
#include <pthread.h>
#include <stdlib.h>

static void *held;

static void prepare(void)
{
    held = malloc(200000);
}

static void after(void)
{
    free(held);
    held = NULL;
}

static int registered;

__attribute__((constructor)) static void forklib_start(void)
{
    registered = pthread_atfork(prepare, after, after) == 0;
}

/* Whether the handlers are registered (and a reason to link the library). */
int forklib_registered(void)
{
    return registered;
}
