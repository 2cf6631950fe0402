/*
 * faultwalk — a workload that keeps checking itself while mappings may fail
 * (PFALLOC_FAULT): small, medium and large malloc, calloc, realloc growth
 * and shrink across the size ranges, memalign/posix_memalign/aligned_alloc,
 * frees and malloc_trim. Every block is filled with a pattern of its own and
 * checked before it is freed and at the end. A failing call must return
 * NULL with errno ENOMEM (posix_memalign: ENOMEM returned), a failed realloc
 * must leave the old block whole, and pf_stats (when the preload is there)
 * must count exactly the objects and requested bytes the program holds,
 * relative to what it held before the workload.
 *
 * usage: faultwalk [plain|threads|fork]
 * Prints "failed N" (calls that returned NULL), "mappings M" (mmap, mremap
 * and madvise calls pfalloc made so far) and "ok"; any broken promise prints
 * "FAIL ..." and exits 1.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pfalloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NBLK 48

struct blk {
    unsigned char *p;
    size_t n;
    unsigned seed;
};

static int (*stats_get)(struct pf_stats *);
static _Atomic unsigned long failed;

static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    if (write(1, buf, (size_t)n) < 0)
        _exit(3);
}

#define FAIL(...)                    \
    do {                             \
        say("FAIL ");                \
        say(__VA_ARGS__);            \
        say("\n");                   \
        _exit(1);                    \
    } while (0)

static unsigned char pat(unsigned seed, size_t i)
{
    return (unsigned char)(seed * 131u + (unsigned)(i * 7u) + (unsigned)(i >> 12));
}

static void fill(struct blk *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->p[i] = pat(b->seed, i);
}

static void check(const struct blk *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (b->p[i] != pat(b->seed, i))
            FAIL("%s: block %p of %zu bytes corrupt at %zu", what, (void *)b->p, b->n, i);
}

/* A NULL result must come with ENOMEM. */
static int got(void *p, const char *what, size_t n)
{
    if (p)
        return 1;
    if (errno != ENOMEM)
        FAIL("%s(%zu) returned NULL with errno %d", what, n, errno);
    failed++;
    return 0;
}

static const size_t sizes[] = {16,    24,     100,    512,    1000,      2048, 5000, 40000,
                               70000, 131072, 200000, 300000, 600000, 1 << 20, 64,   9000};

static void take(struct blk *b, unsigned k)
{
    size_t n = sizes[k % (sizeof sizes / sizeof sizes[0])];
    b->seed = k * 2654435761u;
    b->n = n;
    errno = 0;
    switch (k % 5) {
    case 0:
    case 1:
        b->p = malloc(n);
        if (!got(b->p, "malloc", n))
            break;
        fill(b);
        break;
    case 2:
        b->p = calloc(1, n);
        if (!got(b->p, "calloc", n))
            break;
        for (size_t i = 0; i < n; i++)
            if (b->p[i])
                FAIL("calloc(%zu) not zero at %zu", n, i);
        fill(b);
        break;
    case 3: {
        size_t a = (size_t)64 << (k % 12); /* 64 B .. 128 KiB */
        void *p = NULL;
        int r = posix_memalign(&p, a, n);
        if (r != 0) {
            if (r != ENOMEM)
                FAIL("posix_memalign(%zu, %zu) returned %d", a, n, r);
            failed++;
            b->p = NULL;
            break;
        }
        b->p = p;
        if ((uintptr_t)p % a)
            FAIL("posix_memalign(%zu) gave %p", a, p);
        fill(b);
        break;
    }
    default: {
        size_t a = (size_t)16 << (k % 7);
        if (!(k & 1))
            b->n = n = (n + a - 1) / a * a; /* aligned_alloc wants a multiple */
        b->p = (k & 1) ? memalign(a, n) : aligned_alloc(a, n);
        if (!got(b->p, "memalign", n))
            break;
        if ((uintptr_t)b->p % a)
            FAIL("memalign(%zu) gave %p", a, (void *)b->p);
        fill(b);
        break;
    }
    }
    if (!b->p)
        b->n = 0;
}

static void drop(struct blk *b, const char *what)
{
    if (!b->p)
        return;
    check(b, b->n, what);
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

/* Grows or shrinks b to n: on failure the old block stays whole. */
static void resize(struct blk *b, size_t n)
{
    if (!b->p)
        return;
    errno = 0;
    unsigned char *q = realloc(b->p, n);
    if (!q) {
        if (errno != ENOMEM)
            FAIL("realloc(%zu -> %zu) returned NULL with errno %d", b->n, n, errno);
        failed++;
        check(b, b->n, "after failed realloc");
        return;
    }
    size_t keep = n < b->n ? n : b->n;
    b->p = q;
    check(b, keep, "realloc kept");
    b->n = n;
    fill(b);
}

static void workload(struct blk *set, unsigned base)
{
    for (unsigned k = 0; k < NBLK; k++)
        take(&set[k], base + k);
    for (unsigned k = 0; k < NBLK; k += 3)
        drop(&set[k], "free");
    for (unsigned k = 1; k < NBLK; k += 4)
        resize(&set[k], set[k].n * 3 + 100);
    for (unsigned k = 2; k < NBLK; k += 4)
        resize(&set[k], set[k].n / 3 + 1);
    for (unsigned k = 0; k < NBLK; k += 3)
        take(&set[k], base + k + 7);
    for (unsigned k = 5; k < NBLK; k += 6)
        drop(&set[k], "free");
    malloc_trim(0);
    /* Pages given back must read as zero, and pages that could not be
     * given back must not pass for zero: calloc of every size reuses them. */
    for (unsigned round = 0; round < 2; round++) {
        void *z[sizeof sizes / sizeof sizes[0] * 4];
        unsigned nz = 0;
        for (unsigned k = 0; k < sizeof z / sizeof z[0]; k++) {
            size_t n = sizes[k % (sizeof sizes / sizeof sizes[0])];
            errno = 0;
            unsigned char *p = calloc(1, n);
            if (!got(p, "calloc", n))
                continue;
            for (size_t i = 0; i < n; i++)
                if (p[i])
                    FAIL("calloc(%zu) after trim not zero at %zu", n, i);
            memset(p, 0xa5, n);
            z[nz++] = p;
        }
        while (nz)
            free(z[--nz]);
        malloc_trim(0);
    }
    for (unsigned k = 5; k < NBLK; k += 6)
        take(&set[k], base + k + 11);
    for (unsigned k = 0; k < NBLK; k += 8)
        resize(&set[k], 400000); /* small to large */
}

static void check_all(struct blk *set, const char *what)
{
    for (unsigned k = 0; k < NBLK; k++)
        if (set[k].p)
            check(&set[k], set[k].n, what);
}

struct held {
    uint64_t objects, requested;
};

static struct held held_of(struct blk *set)
{
    struct held h = {0, 0};
    for (unsigned k = 0; k < NBLK; k++)
        if (set[k].p) {
            h.objects++;
            h.requested += set[k].n;
        }
    return h;
}

static struct pf_stats st;

static struct held counted(void)
{
    struct held h = {0, 0};
    if (stats_get && stats_get(&st) == 0) {
        h.objects = st.totals.live_objects;
        h.requested = st.totals.live_requested;
    }
    return h;
}

static void *idle(void *arg)
{
    return arg;
}

static void *thread_main(void *arg)
{
    struct blk *set = arg;
    workload(set, (unsigned)(uintptr_t)set % 1000);
    check_all(set, "thread end");
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "plain";
    stats_get = (int (*)(struct pf_stats *))dlsym(RTLD_DEFAULT, "pf_stats_get");
    static struct blk set[NBLK], tset[2][NBLK];

    if (strcmp(mode, "threads") == 0) {
        /* glibc keeps a little for each thread stack it caches: let it
         * have those before the baseline. */
        pthread_t t[2];
        int started[2];
        for (int i = 0; i < 2; i++)
            for (int tries = 0; tries < 3 && !(started[i] = pthread_create(&t[i], NULL, idle, NULL) == 0);)
                tries++;
        for (int i = 0; i < 2; i++)
            if (started[i])
                pthread_join(t[i], NULL);
    }
    struct held before = counted();
    workload(set, 0);
    if (strcmp(mode, "threads") == 0) {
        pthread_t t[2];
        int started[2];
        for (int i = 0; i < 2; i++)
            started[i] = pthread_create(&t[i], NULL, thread_main, tset[i]) == 0;
        for (unsigned k = 0; k < NBLK; k += 2)
            resize(&set[k], set[k].n + 5000);
        for (int i = 0; i < 2; i++)
            if (started[i])
                pthread_join(t[i], NULL);
        /* Frees across threads: the main thread takes the threads' blocks. */
        for (int i = 0; i < 2; i++)
            for (unsigned k = 0; k < NBLK; k++)
                if (k % 2) {
                    drop(&tset[i][k], "cross-thread free");
                } else if (tset[i][k].p) {
                    check(&tset[i][k], tset[i][k].n, "thread block");
                }
    } else if (strcmp(mode, "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            static struct blk cset[NBLK];
            check_all(set, "inherited");
            workload(cset, 500);
            check_all(cset, "child end");
            for (unsigned k = 0; k < NBLK; k++) {
                drop(&cset[k], "child free");
                drop(&set[k], "child free inherited");
            }
            _exit(0);
        }
        if (pid > 0) {
            int status = 0;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                FAIL("fork child ended with status %#x", status);
        }
    }
    check_all(set, "end");

    struct held mine = held_of(set);
    for (int i = 0; i < 2; i++) {
        struct held h = held_of(tset[i]);
        mine.objects += h.objects;
        mine.requested += h.requested;
    }
    struct held now = counted();
    if (stats_get && (now.objects - before.objects != mine.objects ||
                      now.requested - before.requested != mine.requested))
        FAIL("counters: %llu objects, %llu bytes live; the program holds %llu objects, %llu bytes",
             (unsigned long long)(now.objects - before.objects),
             (unsigned long long)(now.requested - before.requested), (unsigned long long)mine.objects,
             (unsigned long long)mine.requested);
    for (unsigned k = 0; k < NBLK; k++) {
        drop(&set[k], "final free");
        drop(&tset[0][k], "final free");
        drop(&tset[1][k], "final free");
    }
    now = counted();
    if (stats_get && (now.objects != before.objects || now.requested != before.requested))
        FAIL("counters after freeing everything: %llu objects, %llu bytes; before %llu, %llu",
             (unsigned long long)now.objects, (unsigned long long)now.requested,
             (unsigned long long)before.objects, (unsigned long long)before.requested);
    say("failed %lu\n", (unsigned long)failed);
    if (stats_get)
        say("mappings %llu\n",
            (unsigned long long)(st.totals.mmap_calls + st.totals.mremap_calls + st.totals.madvise_calls));
    say("ok\n");
    return 0;
}
