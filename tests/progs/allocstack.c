/*
 * allocstack — how much stack the allocator's calls take below their
 * caller. A thread on a stack of 256 KiB calls each allocation function
 * once (so nothing after that binds a symbol lazily), paints the stack
 * below its frame, then runs a fixed mix that reaches the allocator's slow
 * paths: small blocks through full thread caches and their flushes, blocks
 * the main thread allocated and this one frees, sizes across every class,
 * large blocks grown and shrunk by realloc, aligned blocks, and
 * malloc_trim between rounds. It prints the deepest byte any call touched,
 * as bytes below the thread's frame ("allocstack: N bytes below the
 * caller"), and exits 0.
 *
 *   allocstack altstack   a handler that allocates, on an alternate stack of the
 *                         kernel's signal frame and 4 KiB
 *   allocstack stats      pf_stats_get, pf_report, pf_print_families and
 *                         pf_print_totals (looked up at run time: pfalloc's
 *                         when preloaded) in a handler on an alternate stack
 *                         of the kernel's signal frame and 2 KiB; then
 *                         pf_print_family and mm_print_memory_usage on a
 *                         thread, and how much of its stack they used
 *   allocstack thread     how much of a thread's stack a thread that does
 *                         nothing uses, and one that allocates once
 *
 * An allocator called from a signal handler on an alternate stack (where
 * crash handlers print and allocate) has what the kernel's signal frame
 * leaves of it; sizes like the historical SIGSTKSZ of 8 KiB are common.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "painted.h"
#include "pfalloc.h"

enum { STACK = 256 * 1024, SLOTS = 4096, FOREIGN = 20000 };

static char *g_stack;
static void *g_foreign[FOREIGN];
static size_t g_deepest; /* bytes below the worker's frame */
static void *volatile g_sink;

static uint64_t g_rng = 0x9e3779b97f4a7c15u;
static uint64_t next(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static size_t pick_size(void)
{
    unsigned k = (unsigned)(next() % 100);
    if (k < 70)
        return next() % 256 + 1;
    if (k < 90)
        return next() % 8192 + 1;
    if (k < 98)
        return next() % 131072 + 1;
    return next() % 1048576 + 1;
}

/* One call of the mix on a random entry of slot[SLOTS]: a realloc, a
 * calloc, an aligned allocation or a malloc (after a free of the entry). */
static void one_op(void **slot)
{
    unsigned s = (unsigned)(next() % SLOTS);
    size_t n = pick_size();
    switch (next() % 8) {
    case 0:
    case 1:
        slot[s] = realloc(slot[s], n);
        break;
    case 2:
        free(slot[s]);
        slot[s] = calloc(1, n);
        break;
    case 3:
        free(slot[s]);
        slot[s] = aligned_alloc((size_t)64 << (next() % 8), n);
        break;
    default:
        free(slot[s]);
        slot[s] = malloc(n);
    }
    if (slot[s])
        *(volatile char *)slot[s] = 1;
}

/* Each function once, kept in a volatile so the compiler calls it: the
 * program's calls bind now, and the lazy binding's own use of the stack
 * (about 3 KB with AVX-512) is not counted against the allocator. */
static void bind_all(void)
{
    g_sink = malloc(16);
    g_sink = realloc(g_sink, 32);
    free(g_sink);
    g_sink = calloc(1, 16);
    free(g_sink);
    g_sink = aligned_alloc(64, 64);
    free(g_sink);
    void *w;
    if (posix_memalign(&w, 64, 64) == 0)
        free(w);
    g_sink = memalign(64, 64);
    free(g_sink);
    malloc_trim(0);
}

/* Paints [g_stack, top) with a pattern, from a frame of its own that lies
 * above top (the caller passes a top well below its own frame). */
__attribute__((noinline)) static void paint(char *top)
{
    memset(g_stack, PAINT, (size_t)(top - g_stack));
}

static void *worker(void *arg)
{
    (void)arg;
    char *frame = __builtin_frame_address(0);
    bind_all();
    paint(frame - 512);

    static void *slot[SLOTS];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 200000; i++)
            one_op(slot);
        /* Blocks of another thread's, freed here. */
        for (int i = round * (FOREIGN / 4); i < (round + 1) * (FOREIGN / 4); i++)
            free(g_foreign[i]);
        for (int i = 0; i < SLOTS; i += 2) {
            free(slot[i]);
            slot[i] = NULL;
        }
        malloc_trim(0);
    }
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    malloc_trim(0);

    g_deepest = painted_used(g_stack, (size_t)(frame - g_stack));
    return NULL;
}

/* The handler of "allocstack altstack": 200 calls of the mix, on entries
 * of its own that stay from one signal to the next. */
static void on_signal(int sig)
{
    (void)sig;
    static void *held[SLOTS];
    for (int i = 0; i < 200; i++)
        one_op(held);
}

/* Makes fn the SIGUSR2 handler of this thread, on an alternate stack of
 * the kernel's signal frame (AT_MINSIGSTKSZ, at least 2 KiB) and `beyond`
 * bytes more, with a guard page right below it (an overflow faults there
 * instead of writing over whatever lies below); returns the stack's size,
 * or 0. */
static size_t handle_on_small_stack(size_t beyond, void (*fn)(int))
{
    size_t frame = (size_t)getauxval(AT_MINSIGSTKSZ);
    if (frame < 2048)
        frame = 2048;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), size = (frame + beyond + 63) & ~(size_t)63;
    size_t pages = (size + ps - 1) / ps * ps;
    char *map = mmap(NULL, ps + pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map, ps, PROT_NONE) != 0)
        return 0;
    stack_t ss = {.ss_sp = map + ps, .ss_size = size};
    struct sigaction sa = {.sa_handler = fn, .sa_flags = SA_ONSTACK};
    sigemptyset(&sa.sa_mask);
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGUSR2, &sa, NULL) != 0)
        return 0;
    return size;
}

static pthread_barrier_t g_lent;

/* The other thread of "allocstack altstack": allocates blocks of the sizes
 * the handler takes for the main thread to free, then waits (keeping its
 * cache, so the main thread's flushes sort another thread's slots out of
 * their batches) until the main thread is done. */
static void *lender(void *arg)
{
    (void)arg;
    for (int i = 0; i < FOREIGN; i++)
        g_foreign[i] = malloc(pick_size() % 1024 + 1);
    pthread_barrier_wait(&g_lent);
    pthread_barrier_wait(&g_lent);
    return NULL;
}

/* Raises SIGUSR2 2 000 times (400 000 calls of the mix in all) with its
 * handler on an alternate stack of the kernel's signal frame and 4 KiB,
 * and frees another thread's blocks in between; a handler that overflows
 * the stack dies of SIGSEGV. With the AVX-512 frame of 3.3 KB the stack is
 * 7.3 KB, less than the historical SIGSTKSZ of 8 KiB. The program's calls
 * are bound first. */
static int altstack(void)
{
    bind_all();
    size_t size = handle_on_small_stack(4096, on_signal);
    pthread_t t;
    if (!size || pthread_barrier_init(&g_lent, NULL, 2) != 0 || pthread_create(&t, NULL, lender, NULL) != 0)
        return 2;
    pthread_barrier_wait(&g_lent);
    for (int i = 0; i < 2000; i++) {
        raise(SIGUSR2);
        for (int k = 0; k < FOREIGN / 2000; k++)
            free(g_foreign[i * (FOREIGN / 2000) + k]);
    }
    pthread_barrier_wait(&g_lent);
    if (pthread_join(t, NULL) != 0)
        return 2;
    printf("allocstack: 2000 handlers on an alternate stack of %zu bytes\n", size);
    return 0;
}

static int (*g_stats_get)(struct pf_stats *);
static int (*g_report)(void);
static int (*g_print)(int);        /* pf_print_families, then pf_print_totals */
static int (*g_print_totals)(int);
static int (*g_print_family)(int, const char *);
static void (*g_mm_print)(const char *);
static struct pf_stats g_stats;
static volatile int g_stats_ok;
static int g_null = -1;

/* pfalloc's counters and printers that it says a signal handler may call:
 * each once per signal, in turn. */
static void on_stats(int sig)
{
    (void)sig;
    static unsigned n;
    int rc;
    switch (n++ % 4) {
    case 0:
        rc = g_stats_get(&g_stats);
        break;
    case 1:
        rc = g_report();
        break;
    case 2:
        rc = g_print(g_null);
        break;
    default:
        rc = g_print_totals(g_null);
    }
    if (rc == 0)
        g_stats_ok++;
}

/* The printers that are not for handlers (one family's spans; the Linux
 * Memory Manager's), on a thread whose stack is painted: each takes about
 * 11 KB of scratch space, where the smallest thread stack glibc allows is
 * 16 KiB. */
static void *print_small(void *arg)
{
    (void)arg;
    int out = dup(1);
    if (out < 0 || dup2(g_null, 1) < 0)
        return NULL;
    int rc = g_print_family(g_null, "malloc-16");
    g_mm_print(NULL);
    dup2(out, 1);
    close(out);
    return rc == 0 ? (void *)1 : NULL;
}

/* "allocstack stats": the counters and printers pfalloc says a signal
 * handler may call, called 1 000 times by a handler on an alternate stack
 * of the kernel's signal frame and 2 KiB (the historical MINSIGSTKSZ beyond
 * it), with blocks of many classes live in two threads' caches; then the
 * other printers on a thread. Prints "allocstack: pfalloc's counters and
 * printers in 1000 handlers on an alternate stack of N bytes: 1000 ok" and
 * "allocstack: the printers used N bytes of a thread's stack: ok".
 * Without pfalloc there are none: it says so. */
static int stats_on_altstack(void)
{
    g_stats_get = (int (*)(struct pf_stats *))dlsym(RTLD_DEFAULT, "pf_stats_get");
    g_report = (int (*)(void))dlsym(RTLD_DEFAULT, "pf_report");
    g_print = (int (*)(int))dlsym(RTLD_DEFAULT, "pf_print_families");
    g_print_totals = (int (*)(int))dlsym(RTLD_DEFAULT, "pf_print_totals");
    g_print_family = (int (*)(int, const char *))dlsym(RTLD_DEFAULT, "pf_print_family");
    g_mm_print = (void (*)(const char *))dlsym(RTLD_DEFAULT, "mm_print_memory_usage");
    if (!g_stats_get || !g_report || !g_print || !g_print_totals || !g_print_family || !g_mm_print) {
        printf("allocstack: no pf_stats_get\n");
        return 0;
    }
    g_null = open("/dev/null", O_WRONLY);
    if (g_null < 0 || dup2(g_null, g_null) < 0)
        return 2;
    close(dup(1)); /* binds what the printers' thread calls */
    pthread_t t;
    if (pthread_barrier_init(&g_lent, NULL, 2) != 0 || pthread_create(&t, NULL, lender, NULL) != 0)
        return 2;
    pthread_barrier_wait(&g_lent);
    static void *held[SLOTS];
    for (int i = 0; i < 20000; i++)
        one_op(held);
    g_stats_get(&g_stats);
    size_t size = handle_on_small_stack(2048, on_stats);
    if (!size)
        return 2;
    for (int i = 0; i < 1000; i++)
        raise(SIGUSR2);
    pthread_barrier_wait(&g_lent);
    if (pthread_join(t, NULL) != 0)
        return 2;
    printf("allocstack: pfalloc's counters and printers in 1000 handlers on an alternate stack of %zu bytes: "
           "%d ok\n",
           size, g_stats_ok);
    enum { SIZE = 64 * 1024 };
    char *stack = aligned_alloc(4096, SIZE);
    void *res = NULL;
    size_t used = stack ? painted_run(stack, SIZE, print_small, NULL, &res) : 0;
    if (!used)
        return 2;
    printf("allocstack: the printers used %zu bytes of a thread's stack: %s\n", used, res ? "ok" : "failed");
    return 0;
}

static void *idle(void *arg)
{
    if (arg) {
        g_sink = malloc(100);
        free(g_sink);
    }
    return NULL;
}

/* "allocstack thread": a thread that starts and ends, on a painted stack of
 * 64 KiB (a first one binds what threads call). Its TLS, the C library's
 * and each loaded object's, is carved out of the top of that stack, as it
 * is out of every thread's: the bytes used count it. Prints "allocstack: a
 * thread used N bytes of its stack, M with a malloc and a free". */
static int thread_use(void)
{
    enum { SIZE = 64 * 1024 };
    size_t used[2];
    g_sink = malloc(1); /* binds malloc and free here, not in a thread */
    free(g_sink);
    char *stack = aligned_alloc(4096, SIZE);
    if (!stack)
        return 2;
    for (int round = 0; round < 3; round++) {
        size_t u = painted_run(stack, SIZE, idle, round == 2 ? stack : NULL, NULL);
        if (!u)
            return 2;
        if (round > 0)
            used[round - 1] = u;
    }
    printf("allocstack: a thread used %zu bytes of its stack, %zu with a malloc and a free\n", used[0], used[1]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "thread") == 0)
        return thread_use();
    if (argc > 1 && strcmp(argv[1], "altstack") == 0)
        return altstack();
    if (argc > 1 && strcmp(argv[1], "stats") == 0)
        return stats_on_altstack();
    for (int i = 0; i < FOREIGN; i++)
        g_foreign[i] = malloc(16 + (size_t)(i % 64) * 16);
    g_stack = aligned_alloc(4096, STACK);
    pthread_attr_t attr;
    pthread_t t;
    if (!g_stack || pthread_attr_init(&attr) != 0 || pthread_attr_setstack(&attr, g_stack, STACK) != 0 ||
        pthread_create(&t, &attr, worker, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 2;
    printf("allocstack: %zu bytes below the caller\n", g_deepest);
    return 0;
}
