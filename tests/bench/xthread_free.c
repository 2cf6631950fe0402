/*
 * xthread_free — cross-thread frees: `pairs` producer/consumer pairs. Each
 * producer allocates blocks of mixed sizes (1..max, skewed small), fills
 * them, and hands them over in batches through a bounded queue; its
 * consumer checks every byte and frees them. Every block, and every batch
 * array, is freed by a thread other than the one that allocated it: the
 * path where per-thread caches must send memory home.
 *
 * The consumer recomputes each block's contents from its sequence number,
 * and the totals of both sides must agree at the end.
 */
#include "bench.h"

#include <pthread.h>

struct batch {
    size_t count;
    uint64_t first;   /* sequence number of block 0 */
    void *block[];    /* `count` blocks, block i has sequence first + i */
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    pthread_cond_t nonfull;
    struct batch **ring;
    size_t cap, head, count;
};

struct pair {
    pthread_t producer, consumer;
    unsigned id;
    uint64_t objects;
    size_t batch;
    size_t max;
    struct queue q;
    /* out: the producer's and the consumer's counters on lines of their own */
    uint64_t produced_bytes __attribute__((aligned(64)));
    uint64_t consumed_bytes __attribute__((aligned(64)));
    uint64_t consumed;
} __attribute__((aligned(64)));

static size_t size_of(const struct pair *p, uint64_t seq)
{
    uint64_t s = bench_seed(seq ^ ((uint64_t)p->id << 40));
    return bench_small_size(bench_rand(&s), p->max);
}

static void push(struct queue *q, struct batch *b)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == q->cap)
        pthread_cond_wait(&q->nonfull, &q->lock);
    q->ring[(q->head + q->count) % q->cap] = b;
    q->count++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

static struct batch *pop(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0)
        pthread_cond_wait(&q->nonempty, &q->lock);
    struct batch *b = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    pthread_cond_signal(&q->nonfull);
    pthread_mutex_unlock(&q->lock);
    return b;
}

static void *produce(void *arg)
{
    struct pair *p = arg;
    uint64_t seq = 0;
    while (seq < p->objects) {
        size_t n = p->batch;
        if (n > p->objects - seq)
            n = (size_t)(p->objects - seq);
        struct batch *b = malloc(sizeof *b + n * sizeof(void *));
        if (b == NULL)
            bench_fail("malloc of a batch returned NULL");
        b->count = n;
        b->first = seq;
        for (size_t i = 0; i < n; i++, seq++) {
            size_t sz = size_of(p, seq);
            void *o = bench_malloc(sz);
            bench_fill(o, sz, seq);
            b->block[i] = o;
            p->produced_bytes += sz;
        }
        push(&p->q, b);
    }
    push(&p->q, NULL); /* end of stream */
    return NULL;
}

static void *consume(void *arg)
{
    struct pair *p = arg;
    uint64_t expect = 0;
    for (;;) {
        struct batch *b = pop(&p->q);
        if (b == NULL)
            break;
        if (b->first != expect)
            bench_fail("pair %u: batch starts at %llu, expected %llu", p->id, (unsigned long long)b->first,
                       (unsigned long long)expect);
        for (size_t i = 0; i < b->count; i++, expect++) {
            size_t sz = size_of(p, expect);
            if (!bench_fill_ok(b->block[i], sz, expect))
                bench_fail("pair %u: block %llu (%zu bytes) changed in transit", p->id,
                           (unsigned long long)expect, sz);
            p->consumed_bytes += sz;
            free(b->block[i]);
        }
        p->consumed += b->count;
        free(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"pairs", "objects", "batch", "depth", "max", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    unsigned npairs = (unsigned)bench_opt(&a, "pairs", 2, 2);
    uint64_t objects = bench_opt(&a, "objects", 10000000, 100000); /* per pair */
    size_t batch = (size_t)bench_opt(&a, "batch", 64, 64);
    size_t depth = (size_t)bench_opt(&a, "depth", 64, 64);
    size_t max = (size_t)bench_opt(&a, "max", 512, 512);
    if (npairs == 0 || npairs > 128 || batch == 0 || depth == 0 || max == 0)
        bench_fail("need 0 < pairs <= 128 and batch, depth, max > 0");

    struct pair *p = bench_lines(npairs, sizeof *p);
    for (unsigned i = 0; i < npairs; i++) {
        p[i].id = i;
        p[i].objects = objects;
        p[i].batch = batch;
        p[i].max = max;
        pthread_mutex_init(&p[i].q.lock, NULL);
        pthread_cond_init(&p[i].q.nonempty, NULL);
        pthread_cond_init(&p[i].q.nonfull, NULL);
        p[i].q.cap = depth;
        p[i].q.ring = calloc(depth, sizeof *p[i].q.ring);
        if (p[i].q.ring == NULL)
            bench_fail("out of memory");
        if (pthread_create(&p[i].consumer, NULL, consume, &p[i]) != 0 ||
            pthread_create(&p[i].producer, NULL, produce, &p[i]) != 0)
            bench_fail("pthread_create failed");
    }
    uint64_t bytes = 0;
    for (unsigned i = 0; i < npairs; i++) {
        pthread_join(p[i].producer, NULL);
        pthread_join(p[i].consumer, NULL);
        if (p[i].consumed != objects || p[i].consumed_bytes != p[i].produced_bytes)
            bench_fail("pair %u: consumed %llu blocks / %llu bytes, produced %llu / %llu", i,
                       (unsigned long long)p[i].consumed, (unsigned long long)p[i].consumed_bytes,
                       (unsigned long long)objects, (unsigned long long)p[i].produced_bytes);
        bytes += p[i].consumed_bytes;
        free(p[i].q.ring);
    }
    printf("xthread_free: %u pairs x %llu blocks (%llu bytes) freed by the other thread: ok\n", npairs,
           (unsigned long long)objects, (unsigned long long)bytes);
    free(p);
    return 0;
}
