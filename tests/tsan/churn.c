/*
 * churn — the allocator core under ThreadSanitizer (built with
 * -fsanitize=thread by CMake when the compiler can, run as the ctest
 * `tsan_churn`): threads allocate and free small and large blocks, hand
 * some to a neighbour (cross-thread frees and transfer batches), trim now
 * and then, exit and are replaced (caches adopted), in two rounds: one with
 * as many threads as may own spans on this machine, one with more (shared
 * spans, closed bins). Any data race ThreadSanitizer sees fails the run
 * (halt_on_error, set by the test); the program itself checks that every
 * block keeps its stamp while it is live.
 *
 * usage: churn [iterations per thread]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfalloc.h"

#define LIVE 400
#define MAX_THREADS 64

static void *mailbox[MAX_THREADS][LIVE];
static unsigned nthreads;
static long iters = 200000;

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The first 8 bytes of a block (all blocks here have at least 8) hold its
 * address, so a block handed out twice or written by the allocator shows. */
static void put(void *p)
{
    memcpy(p, &p, sizeof p);
}

static void drop(void *p)
{
    if (!p)
        return;
    void *was;
    memcpy(&was, p, sizeof was);
    if (was != p) {
        fprintf(stderr, "churn: block %p changed while live\n", p);
        abort();
    }
    pf_free(p);
}

static void *work(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t x = 0x9E3779B97F4A7C15ull * (id + 1);
    void **live = calloc(LIVE, sizeof *live);
    if (!live)
        abort();
    for (long i = 0; i < iters; i++) {
        uint64_t r = next(&x);
        unsigned j = (unsigned)(r % LIVE);
        drop(live[j]);
        /* Mostly small; one in 64 up to 100 000 bytes (big classes, large blocks). */
        size_t n = (r >> 20) % 64 ? 8 + (r >> 26) % 1024 : 8 + (r >> 26) % 100000;
        live[j] = pf_malloc(n);
        if (!live[j])
            abort();
        put(live[j]);
        if ((r >> 40) % 8 == 0) { /* to the neighbour */
            void *old = __atomic_exchange_n(&mailbox[(id + 1) % nthreads][j], live[j], __ATOMIC_ACQ_REL);
            live[j] = NULL;
            drop(old);
        }
        drop(__atomic_exchange_n(&mailbox[id][j], NULL, __ATOMIC_ACQ_REL));
        if (i % 50000 == 0)
            pf_trim();
    }
    for (unsigned j = 0; j < LIVE; j++)
        drop(live[j]);
    free(live);
    return NULL;
}

static void run(unsigned n)
{
    pthread_t t[MAX_THREADS];
    nthreads = n;
    for (unsigned i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, work, (void *)(uintptr_t)i) != 0)
            abort();
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (unsigned i = 0; i < MAX_THREADS; i++)
        for (unsigned j = 0; j < LIVE; j++)
            drop(__atomic_exchange_n(&mailbox[i][j], NULL, __ATOMIC_ACQ_REL));
}

int main(int argc, char **argv)
{
    if (argc > 1)
        iters = atol(argv[1]);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned owners = (unsigned)(cpus > 0 ? cpus : 1) * 4; /* PF_OWNERS_PER_CPU */
    unsigned few = owners < 8 ? owners : 8, many = owners + 4;
    if (many > MAX_THREADS)
        many = MAX_THREADS;
    run(few);
    run(many);
    pf_trim();
    printf("churn: ok, %u then %u threads x %ld iterations\n", few, many, iters);
    return 0;
}
