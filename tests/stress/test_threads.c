/*
 * test_threads.c — many threads at once. Each object carries a pattern of its
 * own, checked before it is freed, so two threads handed the same memory show
 * up as damage. Objects also travel between threads (allocated in one, freed
 * in another). At the end the counters must balance: every family has as
 * many frees as allocations made during the test, and nothing is left live.
 * A process that forks while its threads flush their caches gives each child
 * a heap that never hands one slot out twice.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pfalloc.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

enum { THREADS = 8 };

struct msg {
    uint64_t tag;
    uint32_t words[6];
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Bytes of big objects are patterned on a stride, small ones in full. */
static size_t stride_of(size_t n)
{
    return n > 64 * KIB ? 61 : 1;
}

static unsigned char pat(uint64_t tag, size_t i)
{
    return (unsigned char)(tag ^ (tag >> 8) ^ (i * 31u) ^ (i >> 9));
}

static void write_pattern(unsigned char *p, size_t n, uint64_t tag)
{
    size_t st = stride_of(n);
    for (size_t i = 0; i < n; i += st)
        p[i] = pat(tag, i);
    if (n)
        p[n - 1] = pat(tag, n - 1);
}

static int pattern_ok(const unsigned char *p, size_t n, uint64_t tag)
{
    size_t st = stride_of(n);
    for (size_t i = 0; i < n; i += st)
        if (p[i] != pat(tag, i))
            return 0;
    return n == 0 || p[n - 1] == pat(tag, n - 1);
}

/* The bytes below `keep` of an object of n bytes patterned with `tag`. */
static int prefix_ok(const unsigned char *p, size_t n, size_t keep, uint64_t tag)
{
    size_t st = stride_of(n);
    for (size_t i = 0; i < keep; i += st)
        if (p[i] != pat(tag, i))
            return 0;
    return n == 0 || n - 1 >= keep || p[n - 1] == pat(tag, n - 1);
}

static int zero_ok(const unsigned char *p, size_t n)
{
    size_t st = stride_of(n);
    for (size_t i = 0; i < n; i += st)
        if (p[i] != 0)
            return 0;
    return n == 0 || p[n - 1] == 0;
}

/* Mostly small, some medium, a few large. */
static size_t random_size(uint64_t *s)
{
    uint64_t k = rng_next(s) % 1000;
    if (k < 900)
        return (size_t)(rng_next(s) % 256);
    if (k < 995)
        return 256 + (size_t)(rng_next(s) % (16 * KIB));
    return 256 * KIB + (size_t)(rng_next(s) % (2 * MIB));
}

/* ---- the balance check shared by every test ------------------------------- */

static struct pf_stats before, after;

static const struct pf_family_stats *find(const struct pf_stats *st, const char *name)
{
    for (uint32_t i = 0; i < st->nfamilies; i++)
        if (strcmp(st->fam[i].name, name) == 0)
            return &st->fam[i];
    return NULL;
}

/* Every family's allocations during the test were matched by frees. */
static void check_balanced(void)
{
    cr_assert_eq(pf_stats_get(&after), 0);
    cr_assert_eq(after.truncated, 0);
    for (uint32_t i = 0; i < after.nfamilies; i++) {
        const struct pf_family_stats *a = &after.fam[i];
        const struct pf_family_stats *b = find(&before, a->name);
        uint64_t ba = b ? b->allocs : 0, bf = b ? b->frees : 0, bl = b ? b->live_objects : 0;
        uint64_t bb = b ? b->live_bytes : 0, br = b ? b->live_requested : 0;
        cr_assert_eq(a->allocs - ba, a->frees - bf, "%s: %lu allocs but %lu frees", a->name,
                     (unsigned long)(a->allocs - ba), (unsigned long)(a->frees - bf));
        cr_assert_eq(a->live_objects, bl, "%s: live %lu, was %lu", a->name,
                     (unsigned long)a->live_objects, (unsigned long)bl);
        cr_assert_eq(a->live_bytes, bb, "%s: live_bytes %lu, was %lu", a->name,
                     (unsigned long)a->live_bytes, (unsigned long)bb);
        cr_assert_eq(a->live_requested, br, "%s: live_requested %lu, was %lu", a->name,
                     (unsigned long)a->live_requested, (unsigned long)br);
    }
    cr_assert_eq(after.totals.live_objects, before.totals.live_objects);
    cr_assert_eq(after.totals.live_bytes, before.totals.live_bytes);
    cr_assert_eq(after.totals.live_requested, before.totals.live_requested);
    cr_assert_eq(after.totals.allocs - before.totals.allocs,
                 after.totals.frees - before.totals.frees);
}

/* ---- 1: each thread churns its own live set ------------------------------ */

enum { LIVE = 256, OPS = 100000 };

struct worker {
    pthread_t tid;
    unsigned id;
    int realloc_too;      /* also grow and shrink with pf_realloc */
    uint64_t allocs;      /* successful allocating calls made */
    uint64_t frees;       /* pf_free calls made */
    uint64_t damaged;     /* objects whose pattern was wrong */
    uint64_t not_zeroed;  /* calloc results with a nonzero byte */
    uint64_t misaligned;  /* pointers not 16-byte aligned */
    uint64_t failed;      /* NULL returns */
    uint64_t live_at_pause; /* objects it held while parked at the barrier */
    unsigned char *obj[LIVE];
    size_t size[LIVE];
    uint64_t tag[LIVE];
};

/* Workers park here twice after their churn, holding their live sets, so
 * the main thread can read the counters of a quiet process. */
static pthread_barrier_t pause_bar;

static void *churn(void *arg)
{
    struct worker *w = arg;
    uint64_t s = 0x1234567ULL * (w->id + 1) + 99;
    uint64_t serial = (uint64_t)w->id << 40;
    for (unsigned op = 0; op < OPS; op++) {
        unsigned i = (unsigned)(rng_next(&s) % LIVE);
        if (w->obj[i]) {
            if (!pattern_ok(w->obj[i], w->size[i], w->tag[i]))
                w->damaged++;
            if (w->realloc_too && rng_next(&s) % 4 == 0) {
                /* not 0: realloc(p, 0) frees, like glibc's */
                size_t n = random_size(&s) + 1;
                unsigned char *q = pf_realloc(w->obj[i], n);
                if (!q) {
                    w->failed++;
                    continue;
                }
                size_t keep = n < w->size[i] ? n : w->size[i];
                if (!prefix_ok(q, w->size[i], keep, w->tag[i]))
                    w->damaged++;
                if ((uintptr_t)q % 16)
                    w->misaligned++;
                w->obj[i] = q;
                w->size[i] = n;
                w->tag[i] = ++serial;
                write_pattern(q, n, w->tag[i]);
                continue;
            }
            pf_free(w->obj[i]);
            w->frees++;
            w->obj[i] = NULL;
            continue;
        }
        size_t n = random_size(&s);
        int zeroed = rng_next(&s) % 8 == 0;
        unsigned char *p = zeroed ? pf_calloc(1, n) : pf_malloc(n);
        if (!p) {
            w->failed++;
            continue;
        }
        w->allocs++;
        if ((uintptr_t)p % 16)
            w->misaligned++;
        if (zeroed && !zero_ok(p, n))
            w->not_zeroed++;
        w->obj[i] = p;
        w->size[i] = n;
        w->tag[i] = ++serial;
        write_pattern(p, n, w->tag[i]);
    }
    for (unsigned i = 0; i < LIVE; i++)
        w->live_at_pause += w->obj[i] != NULL;
    pthread_barrier_wait(&pause_bar);
    pthread_barrier_wait(&pause_bar);
    for (unsigned i = 0; i < LIVE; i++) {
        if (!w->obj[i])
            continue;
        if (!pattern_ok(w->obj[i], w->size[i], w->tag[i]))
            w->damaged++;
        pf_free(w->obj[i]);
        w->frees++;
        w->obj[i] = NULL;
    }
    return NULL;
}

static void run_churn(int realloc_too)
{
    static struct worker w[THREADS];
    memset(w, 0, sizeof w);
    cr_assert_eq(pthread_barrier_init(&pause_bar, NULL, THREADS + 1), 0);
    cr_assert_eq(pf_stats_get(&before), 0);
    for (unsigned t = 0; t < THREADS; t++) {
        w[t].id = t;
        w[t].realloc_too = realloc_too;
        cr_assert_eq(pthread_create(&w[t].tid, NULL, churn, &w[t]), 0);
    }
    /* every worker parked with its live set: counts exact across threads */
    pthread_barrier_wait(&pause_bar);
    cr_assert_eq(pf_stats_get(&after), 0);
    pthread_barrier_wait(&pause_bar);
    uint64_t held = 0;
    for (unsigned t = 0; t < THREADS; t++)
        held += w[t].live_at_pause;
    cr_assert_eq(after.totals.live_objects - before.totals.live_objects, held,
                 "%lu objects live in the parked threads, counters say %lu", (unsigned long)held,
                 (unsigned long)(after.totals.live_objects - before.totals.live_objects));
    cr_assert_geq(after.totals.threads, THREADS, "%lu threads counted while %d were alive",
                  (unsigned long)after.totals.threads, THREADS);
    uint64_t allocs = 0, frees = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        cr_assert_eq(pthread_join(w[t].tid, NULL), 0);
        cr_assert_eq(w[t].damaged, 0, "thread %u: %lu objects damaged", t,
                     (unsigned long)w[t].damaged);
        cr_assert_eq(w[t].not_zeroed, 0, "thread %u: calloc not zero", t);
        cr_assert_eq(w[t].misaligned, 0, "thread %u: misaligned pointers", t);
        cr_assert_eq(w[t].failed, 0, "thread %u: %lu allocations failed", t,
                     (unsigned long)w[t].failed);
        allocs += w[t].allocs;
        frees += w[t].frees;
    }
    cr_assert_eq(allocs, frees);
    check_balanced();
    if (!realloc_too) {
        /* without realloc every allocation and free is one the threads made */
        cr_assert_eq(after.totals.allocs - before.totals.allocs, allocs);
        cr_assert_eq(after.totals.frees - before.totals.frees, frees);
    }
    pthread_barrier_destroy(&pause_bar);
}

Test(threads, private_live_sets)
{
    run_churn(0);
}

Test(threads, private_live_sets_with_realloc)
{
    run_churn(1);
}

/* ---- 2: allocated in one thread, freed in another ------------------------ */

enum { PRODUCERS = 4, CONSUMERS = 4, PER_PRODUCER = 40000, QCAP = 1024 };

struct item {
    unsigned char *p;
    size_t size;
    uint64_t tag;
    int typed; /* a struct msg array from PF_NEW, size in objects */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct item ring[QCAP];
    size_t head, count;
    unsigned producers_left;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
       {{0}}, 0, 0, PRODUCERS};

static void put(struct item it)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == QCAP)
        pthread_cond_wait(&q.not_full, &q.lock);
    q.ring[(q.head + q.count) % QCAP] = it;
    q.count++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* 0 when every producer is done and the queue is empty. */
static int take(struct item *it)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.lock);
    if (q.count == 0) {
        pthread_mutex_unlock(&q.lock);
        return 0;
    }
    *it = q.ring[q.head];
    q.head = (q.head + 1) % QCAP;
    q.count--;
    pthread_cond_signal(&q.not_full);
    pthread_mutex_unlock(&q.lock);
    return 1;
}

struct side {
    pthread_t tid;
    unsigned id;
    uint64_t moved;   /* objects produced, or consumed */
    uint64_t damaged; /* consumer: wrong pattern; producer: typed memory not zero */
    uint64_t failed;  /* NULL returns */
};

static void *produce(void *arg)
{
    struct side *sd = arg;
    uint64_t s = 0xabcdef12345ULL + sd->id * 7919u;
    for (unsigned k = 0; k < PER_PRODUCER; k++) {
        struct item it = {NULL, 0, ((uint64_t)sd->id << 48) | k, 0};
        if (rng_next(&s) % 5 == 0) {
            it.size = (size_t)(rng_next(&s) % 4) + 1;
            struct msg *m = PF_NEW(struct msg, it.size);
            if (!m) {
                sd->failed++;
                continue;
            }
            if (!zero_ok((const unsigned char *)m, it.size * sizeof *m))
                sd->damaged++;
            it.p = (unsigned char *)m;
            it.typed = 1;
            write_pattern(it.p, it.size * sizeof *m, it.tag);
        } else {
            it.size = random_size(&s);
            it.p = pf_malloc(it.size);
            if (!it.p) {
                sd->failed++;
                continue;
            }
            write_pattern(it.p, it.size, it.tag);
        }
        put(it);
        sd->moved++;
    }
    pthread_mutex_lock(&q.lock);
    q.producers_left--;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void *consume(void *arg)
{
    struct side *sd = arg;
    struct item it;
    while (take(&it)) {
        size_t bytes = it.typed ? it.size * sizeof(struct msg) : it.size;
        if (!pattern_ok(it.p, bytes, it.tag))
            sd->damaged++;
        pf_free(it.p);
        sd->moved++;
    }
    return NULL;
}

Test(threads, freed_by_another_thread)
{
    static struct side prod[PRODUCERS], cons[CONSUMERS];
    cr_assert_eq(pf_stats_get(&before), 0);
    const struct pf_family_stats *mb = find(&before, "struct msg");
    uint64_t msg_allocs_before = mb ? mb->allocs : 0;
    for (unsigned t = 0; t < CONSUMERS; t++) {
        cons[t].id = t;
        cr_assert_eq(pthread_create(&cons[t].tid, NULL, consume, &cons[t]), 0);
    }
    for (unsigned t = 0; t < PRODUCERS; t++) {
        prod[t].id = t;
        cr_assert_eq(pthread_create(&prod[t].tid, NULL, produce, &prod[t]), 0);
    }
    uint64_t made = 0, eaten = 0;
    for (unsigned t = 0; t < PRODUCERS; t++) {
        cr_assert_eq(pthread_join(prod[t].tid, NULL), 0);
        cr_assert_eq(prod[t].failed, 0);
        cr_assert_eq(prod[t].damaged, 0, "producer %u: PF_NEW memory not zero", t);
        made += prod[t].moved;
    }
    for (unsigned t = 0; t < CONSUMERS; t++) {
        cr_assert_eq(pthread_join(cons[t].tid, NULL), 0);
        cr_assert_eq(cons[t].damaged, 0, "consumer %u: %lu objects damaged", t,
                     (unsigned long)cons[t].damaged);
        eaten += cons[t].moved;
    }
    cr_assert_eq(made, (uint64_t)PRODUCERS * PER_PRODUCER);
    cr_assert_eq(eaten, made);
    check_balanced();
    cr_assert_eq(after.totals.allocs - before.totals.allocs, made);
    cr_assert_eq(after.totals.frees - before.totals.frees, made);
    const struct pf_family_stats *ma = find(&after, "struct msg");
    cr_assert_not_null(ma, "no family \"struct msg\"");
    cr_assert_eq(ma->kind, PF_KIND_TYPED);
    cr_assert_gt(ma->allocs - msg_allocs_before, 0);
}

/* ---- 3: fork while other threads flush their caches ---------------------- */

/* Flushers allocate a batch bigger than a thread cache's bin and free it
 * again, so their bins empty and overflow all the time. The sizes are small
 * ones with small bins (32 to 64 slots), so every 16 to 32 frees a flush
 * hands half a bin to the transfer cache or the spans. The main thread
 * forks meanwhile, at whatever point of a flush the flushers are. A child
 * drains the caches of the threads it lacks back into the spans: a slot
 * that a flusher's bin held at the fork and that had already gone back to
 * its span or the transfer cache, or that the bin held twice, would be
 * handed out twice there. Each child takes many more objects of every
 * flushed size than the flushers ever hold, and checks that no two share
 * a slot. */
enum { FLUSHERS = 3, FORKS = 300, FLUSH_BATCH = 300, CHILD_OBJS = 5000 };

static const size_t flush_sizes[] = {512, 768, 1024};
#define NFLUSH_SIZES (sizeof flush_sizes / sizeof flush_sizes[0])

struct flusher {
    pthread_t tid;
    unsigned id;
    uint64_t rounds;
    uint64_t allocs, frees;
    uint64_t damaged; /* objects whose tag changed while live */
    uint64_t failed;  /* NULL returns */
};

static atomic_int flushers_stop;

static void *flush_churn(void *arg)
{
    struct flusher *fl = arg;
    uint64_t *held[FLUSH_BATCH];
    uint64_t serial = (uint64_t)(fl->id + 1) << 48;
    while (!atomic_load_explicit(&flushers_stop, memory_order_relaxed)) {
        size_t n = flush_sizes[(fl->rounds + fl->id) % NFLUSH_SIZES];
        for (unsigned i = 0; i < FLUSH_BATCH; i++) {
            held[i] = pf_malloc(n);
            if (!held[i]) {
                fl->failed++;
                continue;
            }
            fl->allocs++;
            held[i][0] = serial + i;
        }
        for (unsigned i = 0; i < FLUSH_BATCH; i++) {
            if (!held[i])
                continue;
            if (held[i][0] != serial + i)
                fl->damaged++;
            pf_free(held[i]);
            fl->frees++;
        }
        serial += FLUSH_BATCH;
        fl->rounds++;
    }
    return NULL;
}

/* Child exit statuses. */
enum { CHILD_OK = 0, CHILD_SHARED = 1, CHILD_NO_MEMORY = 2 };

static uint64_t *child_obj[CHILD_OBJS];

static uint64_t child_tag(unsigned k, unsigned i)
{
    return ((uint64_t)(k + 1) << 32 | i) * 0x9E3779B97F4A7C15ULL;
}

/* In the forked child of a multithreaded process: only pf_malloc (made
 * fork-safe by the library's own fork handlers), plain memory and _exit;
 * no stdio. Every object gets a tag of its own; two objects sharing a slot
 * show up as one holding the other's tag. */
static int child_run(void)
{
    alarm(5); /* a heap damaged badly enough to hang the child fails it too */
    for (unsigned k = 0; k < NFLUSH_SIZES; k++) {
        for (unsigned i = 0; i < CHILD_OBJS; i++) {
            uint64_t *p = pf_malloc(flush_sizes[k]);
            if (!p)
                return CHILD_NO_MEMORY;
            p[0] = child_tag(k, i);
            child_obj[i] = p;
        }
        for (unsigned i = 0; i < CHILD_OBJS; i++)
            if (child_obj[i][0] != child_tag(k, i))
                return CHILD_SHARED;
    }
    return CHILD_OK;
}

Test(threads, fork_during_flushes_never_hands_a_slot_out_twice_in_the_child, .timeout = 120)
{
    static struct flusher fl[FLUSHERS];
    memset(fl, 0, sizeof fl);
    atomic_store(&flushers_stop, 0);
    cr_assert_eq(pf_stats_get(&before), 0);
    for (unsigned t = 0; t < FLUSHERS; t++) {
        fl[t].id = t;
        cr_assert_eq(pthread_create(&fl[t].tid, NULL, flush_churn, &fl[t]), 0);
    }
    unsigned shared = 0, no_memory = 0, died = 0, other = 0, forked = 0;
    int first_bad = -1;
    for (unsigned k = 0; k < FORKS; k++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_run());
        if (pid < 0)
            break;
        forked++;
        int st;
        while (waitpid(pid, &st, 0) < 0)
            cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
        if (WIFEXITED(st) && WEXITSTATUS(st) == CHILD_OK)
            continue;
        if (first_bad < 0)
            first_bad = st;
        if (WIFSIGNALED(st))
            died++;
        else if (WEXITSTATUS(st) == CHILD_SHARED)
            shared++;
        else if (WEXITSTATUS(st) == CHILD_NO_MEMORY)
            no_memory++;
        else
            other++;
    }
    atomic_store(&flushers_stop, 1);
    uint64_t rounds = 0;
    for (unsigned t = 0; t < FLUSHERS; t++) {
        cr_assert_eq(pthread_join(fl[t].tid, NULL), 0);
        cr_assert_eq(fl[t].failed, 0, "flusher %u: %lu allocations failed", t,
                     (unsigned long)fl[t].failed);
        cr_assert_eq(fl[t].damaged, 0, "flusher %u: %lu objects damaged", t,
                     (unsigned long)fl[t].damaged);
        cr_assert_eq(fl[t].allocs, fl[t].frees);
        rounds += fl[t].rounds;
    }
    cr_assert_eq(forked, FORKS, "fork failed after %u children", forked);
    cr_assert_eq(shared + no_memory + died + other, 0,
                 "of %u children, %u were handed one slot twice, %u ran out of memory, %u died "
                 "of a signal, %u exited otherwise (first: %s %d)",
                 forked, shared, no_memory, died, other,
                 WIFSIGNALED(first_bad) ? "signal" : "exit status",
                 WIFSIGNALED(first_bad) ? WTERMSIG(first_bad) : WEXITSTATUS(first_bad));
    cr_assert_gt(rounds, FORKS, "the flushers made only %lu rounds", (unsigned long)rounds);
    check_balanced();
}
