/*
 * test_keys.c — a program that uses up every pthread key before it starts
 * its threads (linked statically with libpfalloc.a). pfalloc must keep
 * working in those threads and never touch a key that is not its own:
 * every key's value stays what the program set, and no destructor of the
 * program's or its runtime's receives a pointer it did not store (pfalloc
 * once stored into key 0, not its own, when it found no key left, and that
 * key's destructor handed pfalloc's pointer to libc's free).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pfalloc.h"

#define MAX_KEYS 4096

static pthread_key_t keys[MAX_KEYS];
static int nkeys;
/* The one value each thread stores in every key of the program's. */
static char marker;
static atomic_int foreign_values; /* destructor calls with a value not the marker */
static atomic_int bad_reads;      /* a key read back with a value the thread did not set */

static void destructor(void *v)
{
    if (v != &marker)
        atomic_fetch_add(&foreign_values, 1);
}

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (int k = 0; k < nkeys; k++)
        pthread_setspecific(keys[k], &marker);
    void *held[256] = {0};
    for (int round = 0; round < 20000; round++) {
        int i = (int)((round * 7 + id) % 256);
        pf_free(held[i]);
        held[i] = pf_malloc(16 + (size_t)(round % 900));
        cr_assert(held[i] != NULL);
        memset(held[i], (int)id, 16);
    }
    for (int i = 0; i < 256; i++)
        pf_free(held[i]);
    for (int k = 0; k < nkeys; k++)
        if (pthread_getspecific(keys[k]) != &marker)
            atomic_fetch_add(&bad_reads, 1);
    return NULL;
}

Test(keys, threads_work_when_the_program_used_every_key)
{
    while (nkeys < MAX_KEYS && pthread_key_create(&keys[nkeys], destructor) == 0)
        nkeys++;
    cr_assert(nkeys < MAX_KEYS, "the key limit was not reached");
    pthread_key_t extra;
    cr_assert(pthread_key_create(&extra, NULL) == EAGAIN);
    for (int k = 0; k < nkeys; k++)
        pthread_setspecific(keys[k], &marker);

    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        cr_assert(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);

    for (int k = 0; k < nkeys; k++)
        cr_assert(pthread_getspecific(keys[k]) == &marker, "key %u changed in the main thread",
                  (unsigned)keys[k]);
    cr_expect(atomic_load(&bad_reads) == 0, "%d keys read back a value the thread did not set",
              atomic_load(&bad_reads));
    cr_expect(atomic_load(&foreign_values) == 0,
              "the program's key destructors received %d values it never stored",
              atomic_load(&foreign_values));
    /* pfalloc still works, and its counters still balance. */
    void *p = pf_malloc(100);
    cr_assert(p != NULL);
    pf_free(p);
}
