/*
 * threads — many threads allocating, checking and freeing random sizes, and
 * handing some blocks to a neighbour thread to free (cross-thread frees).
 *
 * Every block is filled with a pattern derived from its own seed and checked
 * before it is freed or grown, so a slot handed out twice or corrupted shows
 * as a content error. Output depends only on the per-thread random streams,
 * so a plain run and a preloaded run print the same bytes. Exit 0 = no error.
 *
 * usage: threads [threads] [ops per thread]
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 1024
#define MAX_THREADS 64
#define MAILBOX 256

struct block {
    unsigned char *p;
    size_t size;
    uint32_t seed;
};

struct mailbox {
    pthread_mutex_t lock;
    struct block items[MAILBOX];
    int count;
};

struct worker {
    int id;
    unsigned long ops;
    uint64_t rng;
    unsigned long allocs, frees, reallocs, handed;
    uint64_t checksum;
    pthread_t thread;
};

static int nthreads;
static struct mailbox boxes[MAX_THREADS];
static atomic_ulong content_errors;
static atomic_ulong received;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static unsigned char pattern(uint32_t seed, size_t i)
{
    return (unsigned char)(seed + i * 131u + (i >> 8));
}

/* Positions filled and checked: all of a small block, head, tail and a
 * stride of a big one. */
static size_t stride_of(size_t size)
{
    return size <= 8192 ? 1 : 509;
}

static void fill(struct block *b)
{
    size_t step = stride_of(b->size);
    for (size_t i = 0; i < b->size; i += (i < 256 || b->size - i <= 256) ? 1 : step)
        b->p[i] = pattern(b->seed, i);
}

/* Checks the first `upto` bytes of the block's pattern. */
static int check(const struct block *b, size_t upto, const char *when)
{
    size_t step = stride_of(b->size);
    if (upto > b->size)
        upto = b->size;
    for (size_t i = 0; i < upto; i += (i < 256 || b->size - i <= 256) ? 1 : step) {
        if (b->p[i] != pattern(b->seed, i)) {
            fprintf(stderr,
                    "threads: content error %s: block of %zu bytes, byte %zu is %u, want %u\n",
                    when, b->size, i, b->p[i], pattern(b->seed, i));
            atomic_fetch_add(&content_errors, 1);
            return -1;
        }
    }
    return 0;
}

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = next_rand(rng);
    unsigned kind = (unsigned)(r % 100);
    r >>= 8;
    if (kind < 70)
        return 1 + r % 128;
    if (kind < 90)
        return 129 + r % (4096 - 128);
    if (kind < 99)
        return 4097 + r % (65536 - 4096);
    return 65537 + r % (1u << 20);
}

static void drain(int id)
{
    struct mailbox *m = &boxes[id];
    struct block local[MAILBOX];
    int n;
    pthread_mutex_lock(&m->lock);
    n = m->count;
    memcpy(local, m->items, (size_t)n * sizeof local[0]);
    m->count = 0;
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < n; i++) {
        check(&local[i], local[i].size, "after hand-over");
        free(local[i].p);
        atomic_fetch_add(&received, 1);
    }
}

/* Gives the block to the next thread. When its mailbox is full the sender
 * empties it itself, so how many blocks change hands never depends on timing. */
static void hand_over(int id, const struct block *b)
{
    int to = (id + 1) % nthreads;
    struct mailbox *m = &boxes[to];
    for (;;) {
        pthread_mutex_lock(&m->lock);
        if (m->count < MAILBOX) {
            m->items[m->count++] = *b;
            pthread_mutex_unlock(&m->lock);
            return;
        }
        pthread_mutex_unlock(&m->lock);
        drain(to);
    }
}

static void release(struct worker *w, struct block *b)
{
    check(b, b->size, "before free");
    if (next_rand(&w->rng) % 20 == 0) {
        hand_over(w->id, b);
        w->handed++;
    } else {
        free(b->p);
    }
    w->frees++;
    b->p = NULL;
}

static int acquire(struct worker *w, struct block *b)
{
    size_t size = pick_size(&w->rng);
    uint32_t seed = (uint32_t)next_rand(&w->rng);
    unsigned how = (unsigned)(next_rand(&w->rng) % 10);
    unsigned char *p;
    if (how < 6) {
        p = malloc(size);
    } else if (how < 8) {
        p = calloc(1, size);
        if (p) {
            size_t step = stride_of(size);
            for (size_t i = 0; i < size; i += step)
                if (p[i] != 0) {
                    fprintf(stderr, "threads: calloc of %zu bytes not zero at %zu\n", size, i);
                    atomic_fetch_add(&content_errors, 1);
                    break;
                }
        }
    } else if (how < 9) {
        size_t align = (size_t)16 << (next_rand(&w->rng) % 8);
        void *q = NULL;
        p = posix_memalign(&q, align, size) == 0 ? q : NULL;
        if (p && ((uintptr_t)p & (align - 1)) != 0) {
            fprintf(stderr, "threads: posix_memalign(%zu) gave a misaligned block\n", align);
            atomic_fetch_add(&content_errors, 1);
        }
    } else {
        p = realloc(NULL, size);
    }
    if (!p) {
        fprintf(stderr, "threads: allocation of %zu bytes failed: %s\n", size, strerror(errno));
        return -1;
    }
    b->p = p;
    b->size = size;
    b->seed = seed;
    fill(b);
    w->allocs++;
    w->checksum = w->checksum * 1099511628211ull + size + seed;
    return 0;
}

static int grow(struct worker *w, struct block *b)
{
    size_t size = pick_size(&w->rng);
    check(b, b->size, "before realloc");
    unsigned char *p = realloc(b->p, size);
    if (!p) {
        fprintf(stderr, "threads: realloc to %zu bytes failed\n", size);
        return -1;
    }
    struct block nb = {p, size, b->seed};
    /* The common prefix must have survived, wherever the block went. */
    size_t keep = size < b->size ? size : b->size;
    size_t step = stride_of(b->size);
    for (size_t i = 0; i < keep; i += (i < 256 || b->size - i <= 256) ? 1 : step) {
        if (p[i] != pattern(b->seed, i)) {
            fprintf(stderr, "threads: realloc %zu -> %zu lost byte %zu\n", b->size, size, i);
            atomic_fetch_add(&content_errors, 1);
            break;
        }
    }
    *b = nb;
    fill(b);
    w->reallocs++;
    w->checksum = w->checksum * 1099511628211ull + size;
    return 0;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    static __thread struct block slots[SLOTS];
    for (unsigned long op = 0; op < w->ops; op++) {
        struct block *b = &slots[next_rand(&w->rng) % SLOTS];
        if (b->p) {
            if (next_rand(&w->rng) % 8 == 0) {
                if (grow(w, b) != 0)
                    exit(2);
            } else {
                release(w, b);
            }
        } else if (acquire(w, b) != 0) {
            exit(2);
        }
        if ((op & 255) == 0)
            drain(w->id);
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p)
            release(w, &slots[i]);
    drain(w->id);
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atoi(argv[1]) : 8;
    unsigned long ops = argc > 2 ? strtoul(argv[2], NULL, 10) : 60000;
    if (nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "threads: 1..%d threads\n", MAX_THREADS);
        return 2;
    }
    static struct worker workers[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_init(&boxes[i].lock, NULL);
        workers[i].id = i;
        workers[i].ops = ops;
        workers[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    }
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&workers[i].thread, NULL, run, &workers[i]) != 0) {
            fprintf(stderr, "threads: pthread_create failed\n");
            return 2;
        }
    unsigned long handed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(workers[i].thread, NULL);
        handed += workers[i].handed;
    }
    /* A thread that finished early may have received blocks after its last drain. */
    for (int i = 0; i < nthreads; i++)
        drain(i);
    for (int i = 0; i < nthreads; i++) {
        struct worker *w = &workers[i];
        printf("thread %d: allocs %lu frees %lu reallocs %lu handed %lu checksum %016llx\n", w->id,
               w->allocs, w->frees, w->reallocs, w->handed, (unsigned long long)w->checksum);
    }
    unsigned long got = atomic_load(&received);
    printf("handed over %lu, freed by the receiver %lu\n", handed, got);
    printf("content errors: %lu\n", atomic_load(&content_errors));
    return atomic_load(&content_errors) == 0 && got == handed ? 0 : 1;
}
