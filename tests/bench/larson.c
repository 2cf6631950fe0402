/*
 * larson — a server simulation in the manner of Larson and Krishnan's
 * benchmark. `threads` chains of workers run side by side. A worker owns an
 * array of `slots` blocks of random sizes (min..max) and replaces a random
 * slot `ops` times (check the old block's stamp, free it, allocate and
 * stamp a new one). Then it swaps its array for a random one from a shared
 * pool of spare arrays, starts its successor with that array, and exits.
 * So threads come and go all the time, and most frees hit blocks that a
 * thread which has since exited (or is running elsewhere) allocated.
 *
 * Each block holds its size and tag in its first 16 bytes, and the array
 * keeps each slot's tag: a block handed out twice or overwritten shows a
 * wrong tag or size when it is replaced. Only the head is touched, as in
 * the original, so the time is the allocator's and the misses on its own
 * metadata, not the program's on the blocks. At the end every block left
 * is checked and freed, and the counts must add up.
 */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>

struct head {
    uint64_t size;
    uint64_t tag;
};

struct array {
    void **block;
    uint64_t *tag; /* tag[k]: the tag block[k] was made with */
};

static unsigned nchains;
static uint64_t generations, ops;
static size_t nslots, min_size, max_size;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct array **pool; /* nchains spare arrays */

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned chains_done;

static atomic_ullong total_allocs, total_frees;

struct job {
    unsigned chain;
    uint64_t generation;
    struct array *arr;
    uint64_t seed;
};

static void *make(size_t n, uint64_t tag)
{
    char *p = bench_malloc(n);
    struct head h = {n, tag};
    memcpy(p, &h, sizeof h);
    return p;
}

static size_t pick_size(uint64_t r)
{
    return min_size + (size_t)(r % (max_size - min_size + 1));
}

static void check_free(void *b, uint64_t tag)
{
    struct head h;
    memcpy(&h, b, sizeof h);
    if (h.tag != tag || h.size != pick_size(tag))
        bench_fail("block %p (%llu bytes) changed while live", b, (unsigned long long)h.size);
    free(b);
}

static void *work(void *arg)
{
    struct job *j = arg;
    void **blk = j->arr->block;
    uint64_t *tags = j->arr->tag;
    uint64_t seed = j->seed;
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t r = bench_rand(&seed);
        size_t k = (size_t)((r >> 40) % nslots);
        check_free(blk[k], tags[k]);
        blk[k] = make(pick_size(r), r);
        tags[k] = r;
    }
    atomic_fetch_add_explicit(&total_allocs, ops, memory_order_relaxed);
    atomic_fetch_add_explicit(&total_frees, ops, memory_order_relaxed);
    /* Hand the array over: put it in the pool, take a random one out. */
    pthread_mutex_lock(&pool_lock);
    size_t pick = (size_t)(bench_rand(&seed) % (nchains + 1));
    struct array *next = j->arr;
    if (pick < nchains) {
        next = pool[pick];
        pool[pick] = j->arr;
    }
    pthread_mutex_unlock(&pool_lock);
    if (++j->generation == generations) {
        pthread_mutex_lock(&done_lock);
        pool[nchains + j->chain] = next; /* the main thread frees what is left */
        chains_done++;
        pthread_cond_signal(&done_cond);
        pthread_mutex_unlock(&done_lock);
        free(j);
        return NULL;
    }
    /* The successor reuses the job record: one more block freed by a thread
     * other than the one that allocated it. */
    struct job *succ = malloc(sizeof *succ);
    if (succ == NULL)
        bench_fail("out of memory");
    *succ = *j;
    succ->arr = next;
    succ->seed = seed;
    free(j);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, work, succ) != 0)
        bench_fail("pthread_create failed");
    pthread_attr_destroy(&at);
    return NULL;
}

static struct array *new_array(uint64_t *seed)
{
    struct array *a = malloc(sizeof *a);
    if (a == NULL || (a->block = malloc(nslots * sizeof(void *))) == NULL ||
        (a->tag = malloc(nslots * sizeof(uint64_t))) == NULL)
        bench_fail("out of memory");
    for (size_t k = 0; k < nslots; k++) {
        uint64_t r = bench_rand(seed);
        a->block[k] = make(pick_size(r), r);
        a->tag[k] = r;
    }
    return a;
}

int main(int argc, char **argv)
{
    static const char *const keys[] = {"threads", "generations", "ops", "slots", "min", "max", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    nchains = (unsigned)bench_opt(&a, "threads", 4, 4);
    generations = bench_opt(&a, "generations", 200, 10);
    ops = bench_opt(&a, "ops", 40000, 5000);
    nslots = (size_t)bench_opt(&a, "slots", 2000, 1000);
    min_size = (size_t)bench_opt(&a, "min", 16, 16);
    max_size = (size_t)bench_opt(&a, "max", 1000, 1000);
    if (nchains == 0 || nchains > 1024 || generations == 0 || nslots == 0 || min_size < sizeof(struct head) ||
        max_size < min_size)
        bench_fail("need 0 < threads <= 1024, generations, slots > 0, 16 <= min <= max");

    uint64_t seed = bench_seed(4141);
    /* Spares in pool[0, nchains); chains leave their last array in
     * pool[nchains + chain]. */
    pool = calloc(2 * (size_t)nchains, sizeof *pool);
    if (pool == NULL)
        bench_fail("out of memory");
    for (unsigned c = 0; c < nchains; c++)
        pool[c] = new_array(&seed);
    for (unsigned c = 0; c < nchains; c++) {
        struct job *j = malloc(sizeof *j);
        if (j == NULL)
            bench_fail("out of memory");
        j->chain = c;
        j->generation = 0;
        j->arr = new_array(&seed);
        j->seed = bench_seed(100 + c);
        pthread_t t;
        if (pthread_create(&t, NULL, work, j) != 0)
            bench_fail("pthread_create failed");
        pthread_detach(t);
    }
    pthread_mutex_lock(&done_lock);
    while (chains_done < nchains)
        pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);

    uint64_t left = 0;
    for (unsigned c = 0; c < 2 * nchains; c++) {
        for (size_t k = 0; k < nslots; k++) {
            check_free(pool[c]->block[k], pool[c]->tag[k]);
            left++;
        }
        free(pool[c]->block);
        free(pool[c]->tag);
        free(pool[c]);
    }
    uint64_t allocs = atomic_load(&total_allocs), frees = atomic_load(&total_frees);
    if (allocs != (uint64_t)nchains * generations * ops || frees != allocs ||
        left != 2 * (uint64_t)nchains * nslots)
        bench_fail("%llu replacements, %llu frees, %llu blocks left", (unsigned long long)allocs,
                   (unsigned long long)frees, (unsigned long long)left);
    printf("larson: %u chains x %llu threads x %llu replacements of %zu slots: ok\n", nchains,
           (unsigned long long)generations, (unsigned long long)ops, nslots);
    free(pool);
    return 0;
}
