/*
 * crowd_frees — threads that free blocks above 32 KiB they did not
 * allocate, in a crowd (more threads holding a cache than may own spans:
 * four per CPU). A crowd of idle threads that have allocated (so they hold
 * caches) waits; then `consumers` threads (default 4) each free `blocks`
 * blocks of 100 000 bytes (default 200) that the main thread allocates and
 * hands them one at a time. With every thread still alive, prints the
 * figures of the blocks' family: "live L spans S slots N" (N: slots a span
 * of the class holds), or "no pfalloc" when run plainly.
 *
 * usage: crowd_frees [consumers [blocks]]
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfalloc.h"

#define SIZE 100000
#define MAX_CONSUMERS 16

static void *_Atomic box[MAX_CONSUMERS];
static int blocks = 200;
static pthread_barrier_t crowd_ready, freed, go;

static void *idle(void *arg)
{
    (void)arg;
    void *_Atomic kept = malloc(64); /* holds a cache from now on */
    if (!atomic_load(&kept))
        abort();
    pthread_barrier_wait(&crowd_ready);
    pthread_barrier_wait(&freed);
    pthread_barrier_wait(&go);
    free(atomic_load(&kept));
    return NULL;
}

static void *consumer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < blocks; i++) {
        void *p;
        while ((p = atomic_exchange(&box[id], NULL)) == NULL)
            sched_yield();
        if (((unsigned char *)p)[SIZE - 1] != (unsigned char)id)
            abort();
        free(p);
    }
    pthread_barrier_wait(&freed);
    pthread_barrier_wait(&go);
    return NULL;
}

int main(int argc, char **argv)
{
    int consumers = argc > 1 ? atoi(argv[1]) : 4;
    blocks = argc > 2 ? atoi(argv[2]) : 200;
    if (consumers < 1 || consumers > MAX_CONSUMERS)
        return 2;
    int (*stats_get)(struct pf_stats *) = (int (*)(struct pf_stats *))dlsym(RTLD_DEFAULT, "pf_stats_get");
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    int crowd = 4 * cpus + 4;
    unsigned all = (unsigned)(crowd + consumers) + 1;
    pthread_t *t = calloc((size_t)(crowd + consumers), sizeof *t);
    if (!t || pthread_barrier_init(&crowd_ready, NULL, (unsigned)crowd + 1) != 0 ||
        pthread_barrier_init(&freed, NULL, all) != 0 || pthread_barrier_init(&go, NULL, all) != 0)
        return 2;
    for (int i = 0; i < crowd; i++)
        if (pthread_create(&t[i], NULL, idle, NULL) != 0)
            return 2;
    pthread_barrier_wait(&crowd_ready);
    for (int i = 0; i < consumers; i++)
        if (pthread_create(&t[crowd + i], NULL, consumer, (void *)(intptr_t)i) != 0)
            return 2;
    for (int i = 0; i < blocks; i++)
        for (int c = 0; c < consumers; c++) {
            unsigned char *p = malloc(SIZE);
            if (!p)
                return 2;
            memset(p, c, SIZE);
            while (atomic_load(&box[c]) != NULL)
                sched_yield();
            atomic_store(&box[c], p);
        }
    pthread_barrier_wait(&freed); /* every block freed, every thread alive */
    static struct pf_stats st;
    if (!stats_get || stats_get(&st) != 0) {
        printf("no pfalloc\n");
    } else {
        for (uint32_t i = 0; i < st.nfamilies; i++) {
            const struct pf_family_stats *f = &st.fam[i];
            if (f->kind == PF_KIND_CLASS && f->slot_size >= SIZE && f->slot_size < SIZE + SIZE / 8)
                printf("live %llu spans %llu slots %llu\n", (unsigned long long)f->live_objects,
                       (unsigned long long)f->spans,
                       (unsigned long long)(f->spans ? f->mapped_bytes / f->spans / f->slot_size : 0));
        }
    }
    pthread_barrier_wait(&go);
    for (int i = 0; i < crowd + consumers; i++)
        pthread_join(t[i], NULL);
    free(t);
    return 0;
}
