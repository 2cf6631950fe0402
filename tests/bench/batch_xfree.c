/*
 * batch_xfree — threads that allocate small blocks in batches and free most
 * of them in another thread. Each of `threads` workers runs `rounds` rounds;
 * a round allocates a batch of `batch` blocks and stamps them. Sizes sweep
 * from 1 byte up to `max`, each step half again the last, and each step
 * also goes down by halves; a size is asked for many times in a row, small
 * ones most often (250 times under 100 bytes, 50 under 1000, 10 above), so a
 * batch holds long runs of one size class. The worker then frees a share of
 * the batch itself — the oldest `keep` % first to last on even rounds, the
 * newest `keep` % last to first on odd ones — and mails the rest (with the
 * batch's own array) to the next worker, which checks and frees them. So
 * every thread frees its own blocks in either order and, in bulk, blocks
 * other threads allocated: the pattern of the classic sh6bench and sh8bench
 * programs.
 *
 * A worker that finds its neighbour's mailbox full empties its own while it
 * waits, so the ring never deadlocks and the blocks in flight stay bounded.
 * Every freed block's stamp is checked; counts and bytes of both sides must
 * agree at the end.
 */
#include "bench.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

struct batch {
    struct batch *next;
    uint32_t count;
    uint32_t from;   /* worker that allocated it */
    uint64_t tag0;   /* block i has tag tag0 + i */
    uint32_t *size;  /* size[i]: bytes of block i (after block[]) */
    void *block[];
};

struct mailbox {
    pthread_mutex_t lock;
    struct batch *head, *tail;
    unsigned count;
} __attribute__((aligned(64)));

struct worker {
    pthread_t thread;
    unsigned id;
    uint64_t made, made_bytes;     /* out: blocks allocated, their bytes */
    uint64_t freed, freed_bytes;   /* out: blocks freed by this thread */
} __attribute__((aligned(64)));

static unsigned nthreads, keep_pct, depth;
static uint64_t rounds;
static size_t batch_len, max_size;
static struct mailbox *box;
static struct worker *workers;
static atomic_uint finished;

/* The sweep of sizes: base grows by half, size halves from base down to
 * 1, and each size is repeated `left` times. */
struct sweep {
    size_t base, size;
    unsigned left;
};

static size_t next_size(struct sweep *sw)
{
    if (sw->left == 0) {
        sw->size /= 2;
        if (sw->size == 0) {
            sw->base = sw->base * 3 / 2 + 1;
            if (sw->base > max_size)
                sw->base = 1;
            sw->size = sw->base;
        }
        sw->left = sw->size < 100 ? 250 : sw->size < 1000 ? 50 : 10;
    }
    sw->left--;
    return sw->size;
}

static void check_free(struct worker *w, void *p, size_t n, uint64_t tag)
{
    if (!bench_stamp_ok(p, n, tag))
        bench_fail("worker %u: block %p (%zu bytes, tag %llx) changed while live", w->id, p, n,
                   (unsigned long long)tag);
    w->freed++;
    w->freed_bytes += n;
    free(p);
}

static struct batch *take_all(struct mailbox *m)
{
    pthread_mutex_lock(&m->lock);
    struct batch *b = m->head;
    m->head = m->tail = NULL;
    m->count = 0;
    pthread_mutex_unlock(&m->lock);
    return b;
}

/* Frees every block mailed to w, then the batch arrays. */
static int drain(struct worker *w)
{
    struct batch *b = take_all(&box[w->id]);
    int any = b != NULL;
    while (b) {
        struct batch *next = b->next;
        for (uint32_t i = 0; i < b->count; i++)
            if (b->block[i])
                check_free(w, b->block[i], b->size[i], b->tag0 + i);
        free(b);
        b = next;
    }
    return any;
}

static int try_mail(struct mailbox *m, struct batch *b)
{
    pthread_mutex_lock(&m->lock);
    int ok = m->count < depth;
    if (ok) {
        b->next = NULL;
        if (m->tail)
            m->tail->next = b;
        else
            m->head = b;
        m->tail = b;
        m->count++;
    }
    pthread_mutex_unlock(&m->lock);
    return ok;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    unsigned to = (w->id + 1) % nthreads;
    struct sweep sw = {1 + w->id % 7, 1 + w->id % 7, 0};
    size_t own = batch_len * keep_pct / 100;
    for (uint64_t r = 0; r < rounds; r++) {
        struct batch *b = malloc(sizeof *b + batch_len * (sizeof(void *) + sizeof(uint32_t)));
        if (b == NULL)
            bench_fail("malloc of a batch array returned NULL");
        b->count = (uint32_t)batch_len;
        b->from = w->id;
        b->tag0 = ((uint64_t)w->id << 48) | (r * batch_len);
        b->size = (uint32_t *)(b->block + batch_len);
        for (size_t i = 0; i < batch_len; i++) {
            uint64_t tag = b->tag0 + i;
            size_t n = next_size(&sw);
            void *p = bench_malloc(n);
            bench_stamp(p, n, tag);
            b->block[i] = p;
            b->size[i] = (uint32_t)n;
            w->made++;
            w->made_bytes += n;
        }
        /* This thread frees its share itself: the oldest blocks first to
         * last on even rounds, the newest last to first on odd ones. */
        if (r & 1) {
            for (size_t i = batch_len; i-- > batch_len - own;) {
                check_free(w, b->block[i], b->size[i], b->tag0 + i);
                b->block[i] = NULL;
            }
        } else {
            for (size_t i = 0; i < own; i++) {
                check_free(w, b->block[i], b->size[i], b->tag0 + i);
                b->block[i] = NULL;
            }
        }
        while (!try_mail(&box[to], b))
            if (!drain(w))
                sched_yield();
        drain(w);
    }
    atomic_fetch_add(&finished, 1);
    /* Others may still mail to this worker until they have all finished. */
    for (;;) {
        int all = atomic_load(&finished) == nthreads;
        if (!drain(w) && !all)
            sched_yield();
        if (all) {
            drain(w);
            break;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"threads", "rounds", "batch", "max", "keep", "depth", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    nthreads = (unsigned)bench_opt(&a, "threads", 4, 4);
    rounds = bench_opt(&a, "rounds", 6000, 200);
    batch_len = (size_t)bench_opt(&a, "batch", 1000, 1000);
    max_size = (size_t)bench_opt(&a, "max", 1000, 1000);
    keep_pct = (unsigned)bench_opt(&a, "keep", 50, 50);
    depth = (unsigned)bench_opt(&a, "depth", 8, 8);
    if (nthreads < 2 || nthreads > 256 || batch_len == 0 || max_size == 0 || keep_pct > 100 || depth == 0)
        bench_fail("need 2 <= threads <= 256, batch, max, depth > 0, keep <= 100");

    box = bench_lines(nthreads, sizeof *box);
    workers = bench_lines(nthreads, sizeof *workers);
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_mutex_init(&box[t].lock, NULL);
        workers[t].id = t;
    }
    for (unsigned t = 0; t < nthreads; t++)
        if (pthread_create(&workers[t].thread, NULL, work, &workers[t]) != 0)
            bench_fail("pthread_create failed");
    uint64_t made = 0, made_bytes = 0, freed = 0, freed_bytes = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(workers[t].thread, NULL);
        made += workers[t].made;
        made_bytes += workers[t].made_bytes;
        freed += workers[t].freed;
        freed_bytes += workers[t].freed_bytes;
    }
    for (unsigned t = 0; t < nthreads; t++)
        if (box[t].head != NULL)
            bench_fail("mailbox %u not empty at the end", t);
    if (made != (uint64_t)nthreads * rounds * batch_len || freed != made || freed_bytes != made_bytes)
        bench_fail("allocated %llu blocks (%llu bytes), freed %llu (%llu bytes)", (unsigned long long)made,
                   (unsigned long long)made_bytes, (unsigned long long)freed, (unsigned long long)freed_bytes);
    printf("batch_xfree: %u threads x %llu batches of %zu blocks (%llu bytes), %u%% freed by the "
           "allocating thread: ok\n",
           nthreads, (unsigned long long)rounds, batch_len, (unsigned long long)made_bytes, keep_pct);
    free(box);
    free(workers);
    return 0;
}
