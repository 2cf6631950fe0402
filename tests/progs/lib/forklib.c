/*
 * forklib — a library the program links that registers fork handlers in its
 * constructor (before pfalloc's, whose constructor runs after it), and
 * allocates in them: glibc runs its prepare handler after pfalloc's. It
 * allocates a large block there (which no thread cache can serve without
 * a lock), and small blocks, more than a thread's cache holds, so that its
 * cache refills and flushes, and frees them; with forklib_spin(ms), it
 * goes on allocating and freeing large blocks for that long first.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

static void *held;
static void *small[512];
static unsigned spin_ms;
static volatile sig_atomic_t spinning;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void prepare(void)
{
    double end = now_ms() + spin_ms;
    spinning = spin_ms != 0;
    for (unsigned i = 0; spin_ms && now_ms() < end; i++) {
        char *p = malloc(200000 + i % 4096);
        if (p) {
            p[0] = 1;
            free(p);
        }
    }
    spinning = 0;
    held = malloc(200000);
    for (int i = 0; i < 512; i++)
        small[i] = malloc(48);
    for (int i = 0; i < 512; i++)
        free(small[i]);
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

void forklib_spin(unsigned ms)
{
    spin_ms = ms;
}

/* Whether the prepare handler is in its loop (for a signal handler). */
int forklib_spinning(void)
{
    return spinning;
}

/* Whether the handlers are registered (and a reason to link the library). */
int forklib_registered(void)
{
    return registered;
}
