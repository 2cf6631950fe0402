/*
 * test_sites.c — the call-site table and the leak walk, white-box:
 *  - concurrent first uses of sites whose slots collide, half of them the
 *    runtime's and half the program's: every object keeps the class its
 *    site was interned with, and the leak walk's program count is exact,
 *    rep after rep;
 *  - concurrent first uses of the same multi-frame stacks: every thread's
 *    id reads back with the class the stack was interned with;
 *  - successive leak walks: each groups only the objects live at its own
 *    time (a walk clears only the groups the last one took).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "pagemap.h"
#include "pfalloc.h"
#include "sites.h"
#include "span.h"

#define THREADS 8
#define OBJECTS 200
#define REPS 300

/* The table's hash of a site address (the slot its probe starts at). */
static uint32_t slot_hash(uintptr_t a)
{
    return (uint32_t)((a * 0x9E3779B97F4A7C15ull) >> 48);
}

/* THREADS addresses whose probes all start at slot h. */
static void colliding(uint32_t h, uintptr_t *out)
{
    int n = 0;
    for (uintptr_t a = 0x10000000; n < THREADS; a += 16)
        if (slot_hash(a) == h)
            out[n++] = a;
}

struct first_use {
    pthread_barrier_t *go;
    uintptr_t addr;
    int runtime;
    void *objs[OBJECTS];
    uint32_t id;
};

static void *first_use_thread(void *arg)
{
    struct first_use *u = arg;
    for (int i = 0; i < OBJECTS; i++)
        u->objs[i] = pf_malloc(48);
    pthread_barrier_wait(u->go);
    u->id = pf_sites_intern(u->addr, u->runtime);
    for (int i = 0; i < OBJECTS; i++)
        pf_sites_store(u->objs[i], u->id);
    return NULL;
}

Test(sites, concurrent_first_uses_keep_their_class)
{
    pf_sites_enable();
    cr_assert(pf_sites_on);
    struct pf_leaks base;
    pf_leaks_collect(&base, 0, 0, NULL, 0);
    for (int rep = 0; rep < REPS; rep++) {
        uintptr_t addrs[THREADS];
        colliding((uint32_t)(rep * 200 + 7), addrs);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, THREADS);
        struct first_use u[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            u[i] = (struct first_use){.go = &go, .addr = addrs[i], .runtime = i & 1};
            pthread_create(&t[i], NULL, first_use_thread, &u[i]);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < THREADS; i++)
            cr_assert_eq(pf_sites_runtime(u[i].id), u[i].runtime,
                         "rep %d: site %d interned as %s, reads back as %s", rep, i,
                         u[i].runtime ? "runtime" : "program", u[i].runtime ? "program" : "runtime");
        struct pf_leaks now;
        pf_leaks_collect(&now, 0, 0, NULL, 0);
        cr_assert_eq(now.program_objects - base.program_objects, (uint64_t)(THREADS / 2) * OBJECTS,
                     "rep %d: %llu program objects, want %d", rep,
                     (unsigned long long)(now.program_objects - base.program_objects), THREADS / 2 * OBJECTS);
        cr_assert_eq(now.objects - base.objects, (uint64_t)THREADS * OBJECTS);
        for (int i = 0; i < THREADS; i++)
            for (int k = 0; k < OBJECTS; k++)
                pf_free(u[i].objs[k]);
    }
}

#define STACKS 4
#define STACK_FRAMES 6

struct stack_use {
    pthread_barrier_t *go;
    uintptr_t (*pcs)[STACK_FRAMES];
    uint32_t ids[STACKS];
};

static void *stack_thread(void *arg)
{
    struct stack_use *u = arg;
    pthread_barrier_wait(u->go);
    for (int k = 0; k < STACKS; k++)
        u->ids[k] = pf_sites_intern_stack(u->pcs[k], STACK_FRAMES, 1, k & 1);
    return NULL;
}

Test(sites, concurrent_stacks_keep_their_class)
{
    pf_sites_enable();
    for (int rep = 0; rep < 200; rep++) {
        uintptr_t pcs[STACKS][STACK_FRAMES];
        for (int k = 0; k < STACKS; k++)
            for (int f = 0; f < STACK_FRAMES; f++)
                pcs[k][f] = 0x20000000 + (uintptr_t)rep * 0x10000 + (uintptr_t)k * 0x100 + (uintptr_t)f * 8;
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, THREADS);
        struct stack_use u[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            u[i] = (struct stack_use){.go = &go, .pcs = pcs};
            pthread_create(&t[i], NULL, stack_thread, &u[i]);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < THREADS; i++)
            for (int k = 0; k < STACKS; k++) {
                cr_assert(u[i].ids[k] != 0);
                cr_assert_eq(pf_sites_runtime(u[i].ids[k]), k & 1, "rep %d thread %d stack %d", rep, i, k);
            }
    }
}

/* The leak section of a walk just collected, as JSON. */
static void leak_text(char *buf, size_t cap)
{
    struct pf_fmt f;
    pf_fmt_init(&f, buf, cap, -1);
    pf_leaks_write(&f, 1, NULL); /* JSON: every frame with its address */
    pf_fmt_cstr(&f);
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

Test(sites, each_walk_groups_only_what_is_live_at_its_time)
{
    pf_sites_enable();
    static char text[64 * 1024];
    uint32_t ids[12];
    for (int k = 0; k < 12; k++)
        ids[k] = pf_sites_intern(0x30000000 + (uintptr_t)k * 0x40, 0);
    /* Walk w keeps objects at sites w .. w + 7 only: each walk's groups
     * differ from the last one's in the sites that came and went. */
    for (int w = 0; w < 4; w++) {
        void *objs[8][3];
        for (int k = 0; k < 8; k++)
            for (int i = 0; i < 3; i++) {
                objs[k][i] = pf_malloc(200 + (size_t)w);
                pf_sites_store(objs[k][i], ids[w + k]);
            }
        pf_leaks_collect(NULL, 0, 0, NULL, 0);
        leak_text(text, sizeof text);
        for (int k = 0; k < 12; k++) {
            char addr[32];
            snprintf(addr, sizeof addr, "\"address\":\"0x%lx\"", (unsigned long)(0x30000000 + (uintptr_t)k * 0x40));
            int want = k >= w && k < w + 8;
            cr_assert_eq(count_of(text, addr) > 0, want, "walk %d: site %d %s:\n%s", w, k,
                         want ? "missing" : "left over from an earlier walk", text);
        }
        for (int k = 0; k < 8; k++)
            for (int i = 0; i < 3; i++)
                pf_free(objs[k][i]);
    }
}

/* A walk that is not the exit's (pf_leaks_collect) holds other threads'
 * frees while it reads the heap, as the exit's does, and gives them back
 * to the caches when it is over: the span of a block made before it sends
 * its frees to its class's bin again. The hold's release gave back the
 * allocations only, and left every span's frees on the slow path for
 * good. */
Test(sites, a_walk_gives_the_frees_back_to_the_caches)
{
    void *p = pf_malloc(48);
    cr_assert_not_null(p);
    struct pf_span *s = pf_pagemap_get(p);
    cr_assert(s && s->kind == PF_SPAN_SMALL && s->cached);
    uint32_t bin = s->bin;
    cr_assert_neq(bin, PF_BIN_NONE, "the class's span sends its frees to a bin");
    pf_leaks_collect(NULL, 0, 0, NULL, 0);
    cr_assert_eq(s->bin, bin, "after the walk: bin %u, before it %u", s->bin, bin);
    pf_free(p);
}
