/*
 * test_model.c — pfalloc against a model of what it should hold. Worker
 * threads make random malloc, calloc, realloc, memalign, posix_memalign,
 * aligned_alloc, free and malloc_usable_size calls, hand blocks to each other
 * through a mailbox (so frees cross threads), fork (the child checks every
 * block its thread holds and keeps allocating), and are interrupted by
 * report signals whose handler reads the statistics and prints a report.
 * The model is each thread's table of blocks: address, size, alignment, a
 * tag that patterns the contents. Every block is checked for its pattern and
 * alignment before it is used, and at each pause (all workers parked at a
 * barrier) the process's counters must equal the model's: live objects and
 * requested bytes, and as many frees as allocations since the start.
 * Runs PFALLOC_MODEL_SECONDS seconds (default 40); longer on request. A
 * second run does the same with more threads than may own spans (four per
 * CPU, plus four), 15 s by default.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pfalloc.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

enum { WORKERS = 4, WORKERS_MAX = 64, TABLE = 1024, MAILBOX = 64, ROUND_OPS = 20000 };

struct block {
    unsigned char *p;
    size_t size;  /* bytes asked for */
    size_t align; /* alignment asked for (16 when none) */
    uint64_t tag; /* patterns the contents */
};

struct worker {
    pthread_t tid;
    unsigned id;
    uint64_t rng;
    uint64_t serial;
    struct block b[TABLE];
    /* what went wrong, by kind; all must stay 0 */
    uint64_t damaged, misaligned, not_zeroed, bad_errno, bad_usable, bad_null, bad_child;
    uint64_t forks, ops;
};

static struct worker workers[WORKERS_MAX];
static unsigned nworkers; /* running: workers[0, nworkers) */

/* Blocks in transit between threads: guarded by a mutex of the C library
 * (the test's own, not pfalloc's). */
static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block mail[MAILBOX];
static unsigned nmail;

/* The model's counters: live blocks and the bytes they asked for. */
static atomic_long model_live;
static atomic_long model_req;

static pthread_barrier_t bar;
static atomic_int stop;
static int null_fd = -1;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Big blocks are patterned on a stride (and their last byte), small ones in full. */
static size_t stride_of(size_t n)
{
    return n > 64 * KIB ? 509 : 1;
}

static unsigned char pat(uint64_t tag, size_t i)
{
    return (unsigned char)(tag ^ (tag >> 11) ^ (i * 131u) ^ (i >> 7));
}

static void fill(unsigned char *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i += stride_of(n))
        p[i] = pat(tag, i);
    if (n)
        p[n - 1] = pat(tag, n - 1);
}

/* The first `keep` bytes of a block of n bytes patterned with tag. */
static int intact(const unsigned char *p, size_t n, size_t keep, uint64_t tag)
{
    for (size_t i = 0; i < keep; i += stride_of(n))
        if (p[i] != pat(tag, i))
            return 0;
    return keep == 0 || keep < n || p[n - 1] == pat(tag, n - 1);
}

static int zeroed(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += stride_of(n))
        if (p[i])
            return 0;
    return n == 0 || p[n - 1] == 0;
}

/* Mostly small, some medium, a few large (up to 3 MiB). */
static size_t random_size(uint64_t *s)
{
    uint64_t k = rng_next(s) % 1000;
    if (k < 850)
        return (size_t)(rng_next(s) % 512);
    if (k < 990)
        return 512 + (size_t)(rng_next(s) % (48 * KIB));
    return 128 * KIB + (size_t)(rng_next(s) % (3 * MIB));
}

static size_t random_align(uint64_t *s)
{
    uint64_t k = rng_next(s) % 100;
    if (k < 70)
        return (size_t)16 << (rng_next(s) % 5); /* 16 .. 256 */
    if (k < 97)
        return (size_t)512 << (rng_next(s) % 8); /* 512 .. 64 KiB */
    return (size_t)128 * KIB << (rng_next(s) % 5); /* 128 KiB .. 2 MiB */
}

static void check(struct worker *w, const struct block *b)
{
    if (!intact(b->p, b->size, b->size, b->tag))
        w->damaged++;
    if ((uintptr_t)b->p % b->align)
        w->misaligned++;
    size_t u = pf_malloc_usable_size(b->p);
    if (u < b->size)
        w->bad_usable++;
}

static void track(struct worker *w, struct block *b, unsigned char *p, size_t n, size_t align)
{
    b->p = p;
    b->size = n;
    b->align = align;
    b->tag = ++w->serial;
    fill(p, n, b->tag);
    atomic_fetch_add(&model_live, 1);
    atomic_fetch_add(&model_req, (long)n);
}

static void release(struct worker *w, struct block *b)
{
    check(w, b);
    errno = 4321;
    pf_free(b->p);
    if (errno != 4321) /* free never changes errno */
        w->bad_errno++;
    atomic_fetch_sub(&model_live, 1);
    atomic_fetch_sub(&model_req, (long)b->size);
    b->p = NULL;
}

/* One new block into slot b by a random allocating call. */
static void allocate(struct worker *w, struct block *b)
{
    size_t n = random_size(&w->rng);
    size_t align = 16;
    unsigned char *p = NULL;
    errno = 1234;
    switch (rng_next(&w->rng) % 8) {
    case 0:
    case 1:
    case 2:
        p = pf_malloc(n);
        break;
    case 3: {
        size_t k = 1 + rng_next(&w->rng) % 8;
        n = (n / k + 1) * k;
        p = pf_calloc(k, n / k);
        if (p && !zeroed(p, n))
            w->not_zeroed++;
        break;
    }
    case 4:
        align = random_align(&w->rng);
        p = pf_memalign(align, n);
        break;
    case 5: {
        align = random_align(&w->rng);
        void *q = NULL;
        int rc = pf_posix_memalign(&q, align, n);
        if (rc != 0)
            w->bad_null++;
        p = q;
        break;
    }
    case 6:
        align = random_align(&w->rng);
        p = pf_aligned_alloc(align, n);
        break;
    default:
        p = pf_realloc(NULL, n);
        break;
    }
    if (!p) {
        w->bad_null++; /* nothing here is too big for this machine */
        return;
    }
    if (errno != 1234) /* success leaves errno alone */
        w->bad_errno++;
    track(w, b, p, n, align);
}

static void resize(struct worker *w, struct block *b)
{
    check(w, b);
    size_t n = 1 + random_size(&w->rng); /* realloc(p, 0) frees: not modelled here */
    errno = 1234;
    unsigned char *q = pf_realloc(b->p, n);
    if (!q) {
        w->bad_null++;
        return;
    }
    if (errno != 1234)
        w->bad_errno++;
    size_t keep = n < b->size ? n : b->size;
    if (!intact(q, b->size, keep, b->tag))
        w->damaged++;
    if ((uintptr_t)q % 16)
        w->misaligned++;
    atomic_fetch_add(&model_req, (long)n - (long)b->size);
    b->p = q;
    b->size = n;
    b->align = 16; /* realloc keeps only the default alignment */
    b->tag = ++w->serial;
    fill(q, n, b->tag);
}

/* Hand a block to whichever thread looks next, or take one from the box. */
static void mailbox(struct block *b)
{
    pthread_mutex_lock(&mail_lock);
    if (b->p && nmail < MAILBOX) {
        mail[nmail++] = *b;
        b->p = NULL;
    } else if (!b->p && nmail > 0) {
        *b = mail[--nmail];
    }
    pthread_mutex_unlock(&mail_lock);
}

/* In the child of a fork made by this thread: every block it holds is
 * intact, and the heap keeps working. Exits with the number of faults. */
static void child(struct worker *w)
{
    uint64_t before = w->damaged + w->misaligned + w->bad_usable;
    for (unsigned i = 0; i < TABLE; i++)
        if (w->b[i].p)
            check(w, &w->b[i]);
    for (unsigned k = 0; k < 2000; k++) {
        struct block *b = &w->b[rng_next(&w->rng) % TABLE];
        if (b->p)
            release(w, b);
        else
            allocate(w, b);
    }
    for (unsigned i = 0; i < TABLE; i++)
        if (w->b[i].p)
            release(w, &w->b[i]);
    uint64_t faults = w->damaged + w->misaligned + w->bad_usable + w->bad_errno + w->bad_null -
                      before;
    _exit(faults ? 1 : 0);
}

static void maybe_fork(struct worker *w)
{
    w->forks++;
    pid_t pid = fork();
    if (pid == 0)
        child(w);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        w->bad_child++;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        for (unsigned op = 0; op < ROUND_OPS; op++) {
            struct block *b = &w->b[rng_next(&w->rng) % TABLE];
            uint64_t k = rng_next(&w->rng) % 100;
            if (k < 3)
                mailbox(b);
            else if (!b->p)
                allocate(w, b);
            else if (k < 20)
                resize(w, b);
            else if (k < 30)
                check(w, b);
            else
                release(w, b);
            if (w->id == 0 && op % 5000 == 4999)
                maybe_fork(w);
        }
        w->ops += ROUND_OPS;
        /* Pause: the main thread compares the counters while all are parked. */
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar);
        if (atomic_load(&stop))
            return NULL;
    }
}

/* The report signal's handler: statistics and a printed report, from
 * whatever point of an allocation the signal landed in. */
static __thread struct pf_stats sig_stats;
static atomic_long sig_bad;

static void on_report(int sig)
{
    (void)sig;
    int saved = errno;
    if (pf_stats_get(&sig_stats) != 0 ||
        sig_stats.totals.frees > sig_stats.totals.allocs)
        atomic_fetch_add(&sig_bad, 1);
    if (pf_print_totals(null_fd) != 0 && errno != EAGAIN)
        atomic_fetch_add(&sig_bad, 1);
    errno = saved;
}

static void *signaller(void *arg)
{
    (void)arg;
    uint64_t s = 77;
    while (!atomic_load(&stop)) {
        pthread_kill(workers[rng_next(&s) % nworkers].tid, SIGUSR2);
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct pf_stats start, snap;

/* The process's counters equal the model's (only this test allocates
 * through pf_*; the test runner uses the C library's malloc). */
static void compare(unsigned round)
{
    cr_assert_eq(pf_stats_get(&snap), 0);
    /* Blocks in the mailbox are live, and counted in the model. */
    cr_assert_eq(snap.totals.live_objects - start.totals.live_objects,
                 (uint64_t)atomic_load(&model_live), "round %u: %lu live, model %ld", round,
                 (unsigned long)(snap.totals.live_objects - start.totals.live_objects),
                 atomic_load(&model_live));
    cr_assert_eq(snap.totals.live_requested - start.totals.live_requested,
                 (uint64_t)atomic_load(&model_req), "round %u: %lu bytes asked for, model %ld",
                 round, (unsigned long)(snap.totals.live_requested - start.totals.live_requested),
                 atomic_load(&model_req));
    cr_assert_eq((snap.totals.allocs - start.totals.allocs) -
                     (snap.totals.frees - start.totals.frees),
                 (uint64_t)atomic_load(&model_live));
    uint64_t fam_live = 0;
    for (uint32_t i = 0; i < snap.nfamilies; i++) {
        const struct pf_family_stats *f = &snap.fam[i];
        cr_assert_eq(f->allocs - f->frees, f->live_objects, "%s", f->name);
        cr_assert_geq(f->live_bytes, f->live_requested, "%s", f->name);
        fam_live += f->live_objects;
    }
    cr_assert_eq(fam_live, snap.totals.live_objects);
}

/* n workers for `seconds` (PFALLOC_MODEL_SECONDS overrides it). */
static void run_model(unsigned n, double seconds)
{
    nworkers = n;
    const char *e = getenv("PFALLOC_MODEL_SECONDS");
    if (e && atof(e) > 0)
        seconds = atof(e);
    /* PFALLOC_MODEL_SEED repeats a run (the seed is logged). */
    uint64_t seed = (uint64_t)time(NULL);
    e = getenv("PFALLOC_MODEL_SEED");
    if (e && *e)
        seed = strtoull(e, NULL, 0);
    cr_log_info("model: seed %lu", (unsigned long)seed);
    null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert_geq(null_fd, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_report;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR2, &sa, NULL), 0);

    cr_assert_eq(pf_stats_get(&start), 0);
    pthread_barrier_init(&bar, NULL, nworkers + 1);
    for (unsigned i = 0; i < nworkers; i++) {
        workers[i].id = i;
        workers[i].rng = 0x9E3779B97F4A7C15ULL * (i + 1) + seed;
        cr_assert_eq(pthread_create(&workers[i].tid, NULL, work, &workers[i]), 0);
    }
    pthread_t sigt;
    cr_assert_eq(pthread_create(&sigt, NULL, signaller, NULL), 0);

    double t0 = now();
    unsigned rounds = 0;
    for (;;) {
        pthread_barrier_wait(&bar); /* every worker parked */
        rounds++;
        compare(rounds);
        int last = now() - t0 >= seconds;
        if (last)
            atomic_store(&stop, 1);
        pthread_barrier_wait(&bar);
        if (last)
            break;
    }
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i].tid, NULL);
    pthread_join(sigt, NULL);

    uint64_t ops = 0, forks = 0;
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        cr_expect_eq(w->damaged, 0, "worker %u: %lu blocks damaged", i, (unsigned long)w->damaged);
        cr_expect_eq(w->misaligned, 0, "worker %u: %lu misaligned", i,
                     (unsigned long)w->misaligned);
        cr_expect_eq(w->not_zeroed, 0, "worker %u: calloc not zeroed", i);
        cr_expect_eq(w->bad_errno, 0, "worker %u: errno changed %lu times", i,
                     (unsigned long)w->bad_errno);
        cr_expect_eq(w->bad_usable, 0, "worker %u: usable size short", i);
        cr_expect_eq(w->bad_null, 0, "worker %u: %lu failed calls", i, (unsigned long)w->bad_null);
        cr_expect_eq(w->bad_child, 0, "worker %u: %lu bad fork children", i,
                     (unsigned long)w->bad_child);
        ops += w->ops;
        forks += w->forks;
    }
    cr_expect_eq(atomic_load(&sig_bad), 0, "signal reports went wrong");

    /* Everything back: the counters return to where they started. */
    for (unsigned i = 0; i < nworkers; i++)
        for (unsigned k = 0; k < TABLE; k++)
            if (workers[i].b[k].p)
                release(&workers[i], &workers[i].b[k]);
    while (nmail)
        release(&workers[0], &mail[--nmail]);
    compare(rounds + 1);
    cr_assert_eq(atomic_load(&model_live), 0);
    cr_log_info("model: %u workers, %u rounds, %lu calls, %lu forks in %.0f s", nworkers, rounds,
                (unsigned long)ops, (unsigned long)forks, now() - t0);
}

Test(model, random_calls_threads_forks_and_signals_match_the_model, .timeout = 600)
{
    run_model(WORKERS, 40);
}

/* More threads than may own spans (four per CPU): refills share spans and
 * the bins of classes above 32 KiB are closed, so those blocks go through
 * the family locks; the counters must still match the model exactly. */
Test(model, more_threads_than_may_own_spans_match_the_model, .timeout = 600)
{
    cpu_set_t set;
    unsigned cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
    unsigned n = 4 * cpus + 4;
    if (n > WORKERS_MAX)
        cr_skip_test("%u CPUs: %u workers would be needed", cpus, n);
    run_model(n, 15);
}
