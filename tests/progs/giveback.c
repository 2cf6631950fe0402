/*
 * giveback — how much of a freed heap goes back to the OS, the way a
 * long-running server sees it. Prints its resident memory (VmRSS from
 * /proc/self/statm, in KiB) at the points the test compares.
 *
 *   decay  allocates 256 MiB in small blocks (16..1024 bytes, every block
 *          written), frees them all ("freed N"), waits 3 s (longer than
 *          pfalloc's 2 s of decay) and makes a short burst of allocations
 *          of sizes it did not use before, which refills the thread's
 *          cache, the activity that lets the pool decay; then prints
 *          "decayed N".
 *   trim   allocates 256 MiB in blocks of 2000..2048 bytes (one size
 *          class), frees all but one in 32 (every span keeps a live
 *          block), prints "kept N" (resident), calls malloc_trim(0) and
 *          prints "trimmed N"; the live blocks must still hold what was
 *          written into them.
 *
 *   race   three threads replace blocks of 16..3016 bytes in a shared
 *          table (200 000 times each, one block in eight calloc'd, every
 *          block filled with a byte of its address and checked before it
 *          is freed) while the main thread calls malloc_trim(0) until they
 *          are done; prints "trims N" and "changed M" (bytes found
 *          changed).
 *   fork   keeps one 2 KiB block in 32 live of 32 MiB while a thread calls
 *          malloc_trim(0) again and again, and forks 50 times; each child
 *          frees every block, calls malloc_trim(0) and exits 1 when the
 *          blocks' family (no object live) still holds a span. Prints
 *          "children N" (children that found one) and "trims M".
 *   xfork  allocates and frees 4 096 blocks of 112 bytes (the only thread
 *          with a cache keeps its freed slots in the transfer cache) while
 *          a thread calls malloc_trim(0), which gives those batches back to
 *          their spans, and forks after each round, 1 000 times; each child
 *          calls malloc_trim(0) and exits 1 when the blocks' family (no
 *          object live) still holds a span. Prints "children N" and
 *          "trims M".
 *   cfork  a thread allocates blocks of 112 bytes into a ring and another
 *          frees them (its bin's overflow goes to the transfer cache, the
 *          first thread's refills take it back) while the main thread forks
 *          1 000 times; each child frees what the ring holds, calls
 *          malloc_trim(0) and exits 1 when the slots its spans count as
 *          used exceed its live blocks by a batch or more (a thread caught
 *          in its fast path at the fork may leave a slot or two). Prints
 *          "children N".
 *
 * usage: giveback decay|trim|race|fork|xfork|cfork
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pfalloc.h"

#define HEAP ((size_t)256 << 20)

static void *volatile seen;

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = -1;
        fclose(f);
    }
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int decay(void)
{
    size_t n = HEAP / 520, got = 0;
    void **v = malloc(n * sizeof *v);
    if (!v)
        return 1;
    for (size_t i = 0; i < n; i++, got++) {
        size_t size = 16 + (i * 2654435761u) % 1009;
        if (!(v[i] = malloc(size)))
            break;
        memset(v[i], (int)i, size);
    }
    for (size_t i = 0; i < got; i++)
        free(v[i]);
    free(v);
    printf("freed %ld\n", rss_kib());
    fflush(stdout);
    sleep(3);
    /* Sizes not used above (above 1 KiB): each class's first malloc
     * refills. Each block is shown to `seen`, so none is optimised away. */
    for (int round = 0; round < 4; round++) {
        void *w[64];
        for (int i = 0; i < 64; i++)
            seen = w[i] = malloc(2048 + (size_t)i * 64 + (size_t)round * 4096);
        for (int i = 0; i < 64; i++)
            free(w[i]);
    }
    printf("decayed %ld\n", rss_kib());
    return got == n ? 0 : 1;
}

static int trim(void)
{
    size_t n = HEAP / 2048, got = 0, bad = 0;
    unsigned char **v = malloc(n * sizeof *v);
    if (!v)
        return 1;
    for (size_t i = 0; i < n; i++, got++) {
        size_t size = 2000 + i % 49;
        if (!(v[i] = malloc(size)))
            break;
        memset(v[i], (int)(i & 0xff), size);
    }
    for (size_t i = 0; i < got; i++)
        if (i % 32 != 0)
            free(v[i]);
    printf("kept %ld\n", rss_kib());
    malloc_trim(0);
    printf("trimmed %ld\n", rss_kib());
    for (size_t i = 0; i < got; i += 32) {
        for (size_t k = 0; k < 2000; k++)
            bad += v[i][k] != (unsigned char)(i & 0xff);
        free(v[i]);
    }
    free(v);
    if (bad)
        printf("changed %zu\n", bad);
    return got == n && bad == 0 ? 0 : 1;
}

#define TABLE 8192
#define RACE_OPS 200000

static unsigned char *table[TABLE];
static size_t table_size[TABLE];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t changed;
static int workers_left = 3;

static unsigned char fill_of(const void *p)
{
    return (unsigned char)((uintptr_t)p >> 4);
}

static void *replacer(void *arg)
{
    uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    size_t bad = 0;
    for (int op = 0; op < RACE_OPS; op++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t i = x % TABLE, size = 16 + (x >> 20) % 3001;
        unsigned char *p = (x >> 40) % 8 ? malloc(size) : calloc(1, size);
        if (!p)
            abort();
        memset(p, fill_of(p), size);
        pthread_mutex_lock(&table_lock);
        unsigned char *old = table[i];
        size_t old_size = table_size[i];
        table[i] = p;
        table_size[i] = size;
        pthread_mutex_unlock(&table_lock);
        if (old) {
            for (size_t k = 0; k < old_size; k++)
                bad += old[k] != fill_of(old);
            free(old);
        }
    }
    pthread_mutex_lock(&table_lock);
    changed += bad;
    workers_left--;
    pthread_mutex_unlock(&table_lock);
    return NULL;
}

static int race(void)
{
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, replacer, (void *)(uintptr_t)(i + 1)) != 0)
            return 1;
    long trims = 0;
    for (;;) {
        pthread_mutex_lock(&table_lock);
        int left = workers_left;
        pthread_mutex_unlock(&table_lock);
        if (!left)
            break;
        malloc_trim(0);
        trims++;
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < TABLE; i++)
        free(table[i]);
    printf("trims %ld\nchanged %zu\n", trims, changed);
    return changed == 0 ? 0 : 1;
}

#define FORK_BLOCKS 16384 /* 32 MiB of 2 KiB blocks */
#define FORKS 50

static unsigned char *kept_blocks[FORK_BLOCKS];
static atomic_int trims_stop;

static void *trimmer(void *arg)
{
    (void)arg;
    long n = 0;
    while (!atomic_load(&trims_stop)) {
        malloc_trim(0);
        n++;
    }
    return (void *)n;
}

/* pfalloc's figures and its detail of one family, looked up at run time
 * (the program is not linked with pfalloc): NULL when not under it. */
static int (*stats_get)(struct pf_stats *);
static int (*print_family)(int, const char *);

/* Forks `forks` children one after another (before_each, when given,
 * running before each fork), each exiting with child()'s answer: 0, or 1
 * for a child that found slots lost. Returns how many did, or -1 when
 * before_each, a fork or a wait failed or a child gave another answer. */
static int fork_children(int forks, int (*child)(void), int (*before_each)(void))
{
    stats_get = (int (*)(struct pf_stats *))dlsym(RTLD_DEFAULT, "pf_stats_get");
    print_family = (int (*)(int, const char *))dlsym(RTLD_DEFAULT, "pf_print_family");
    int found = 0;
    for (int k = 0; k < forks; k++) {
        if (before_each && before_each() != 0)
            return -1;
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0)
            _exit(child());
        int ws;
        if (waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws) || WEXITSTATUS(ws) > 1)
            return -1;
        found += WEXITSTATUS(ws);
    }
    return found;
}

/* fork_children while another thread calls malloc_trim in a loop; prints
 * how many children found slots lost and how many trims ran: 0 when none
 * did. */
static int forks_while_trimming(int forks, int (*child)(void), int (*before_each)(void))
{
    pthread_t t;
    if (pthread_create(&t, NULL, trimmer, NULL) != 0)
        return 1;
    int found = fork_children(forks, child, before_each);
    atomic_store(&trims_stop, 1);
    void *n;
    pthread_join(t, &n);
    printf("children %d\ntrims %ld\n", found, (long)(intptr_t)n);
    return found != 0 ? 1 : 0;
}

/* After malloc_trim: whether the class family of `slot`-byte slots, with
 * no block live, still holds more than one span (0 when not under pfalloc). */
static int trimmed_class_keeps_spans(uint32_t slot)
{
    malloc_trim(0);
    static struct pf_stats st;
    if (!stats_get || stats_get(&st) != 0)
        return 0; /* not under pfalloc */
    for (uint32_t i = 0; i < st.nfamilies; i++) {
        const struct pf_family_stats *f = &st.fam[i];
        if (f->kind == PF_KIND_CLASS && f->slot_size == slot && f->live_objects == 0 && f->spans > 1)
            return 1;
    }
    return 0;
}

/* In a fork child: every block freed, what the blocks' family holds. */
static int fork_child(void)
{
    for (int i = 0; i < FORK_BLOCKS; i++)
        free(kept_blocks[i]);
    return trimmed_class_keeps_spans(2048);
}

static int forks(void)
{
    for (int i = 0; i < FORK_BLOCKS; i++) {
        if (!(kept_blocks[i] = malloc(2048)))
            return 1;
        memset(kept_blocks[i], i & 0xff, 2048);
    }
    for (int i = 0; i < FORK_BLOCKS; i++)
        if (i % 32 != 0) {
            free(kept_blocks[i]);
            kept_blocks[i] = NULL;
        }
    malloc_trim(0);
    return forks_while_trimming(FORKS, fork_child, NULL);
}

#define XFORK_BLOCKS 4096
#define XFORK_SIZE 112 /* a class nothing else in this program uses */
#define XFORKS 1000

static void *xfork_blocks[XFORK_BLOCKS];

/* In a fork child: whether the transfer batches' family, with no block
 * live, still holds a span after malloc_trim. */
static int xfork_child(void)
{
    return trimmed_class_keeps_spans(XFORK_SIZE);
}

/* Before each fork: a transfer batch's worth of blocks made and freed. */
static int xfork_churn(void)
{
    for (int i = 0; i < XFORK_BLOCKS; i++)
        if (!(xfork_blocks[i] = malloc(XFORK_SIZE)))
            return -1;
    for (int i = 0; i < XFORK_BLOCKS; i++)
        free(xfork_blocks[i]);
    return 0;
}

static int xforks(void)
{
    return forks_while_trimming(XFORKS, xfork_child, xfork_churn);
}

#define CFORK_RING 1024
#define CFORKS 1000
#define CFORK_BATCH 32 /* slots lost that only a lost batch explains */

static void *_Atomic cfork_ring[CFORK_RING];
static atomic_uint cfork_made; /* blocks the producer made, until it is a few rings on */

static void *cfork_producer(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load_explicit(&trims_stop, memory_order_relaxed); i++) {
        void *p = malloc(XFORK_SIZE);
        if (!p)
            abort();
        void *old = atomic_exchange(&cfork_ring[i % CFORK_RING], p);
        free(old); /* the consumer fell behind */
        if (i <= 8 * CFORK_RING)
            atomic_store_explicit(&cfork_made, i, memory_order_relaxed);
    }
    return NULL;
}

static void *cfork_consumer(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load_explicit(&trims_stop, memory_order_relaxed); i++)
        free(atomic_exchange(&cfork_ring[i % CFORK_RING], NULL));
    return NULL;
}

/* In a fork child: whether the class's spans count a batch or more of
 * used slots beyond its live blocks, once the ring is freed and trimmed
 * (the slots of the parent's other threads' caches given back). */
static int cfork_child(void)
{
    for (int i = 0; i < CFORK_RING; i++)
        free(atomic_exchange(&cfork_ring[i], NULL));
    malloc_trim(0);
    static struct pf_stats st;
    if (!stats_get || !print_family || stats_get(&st) != 0)
        return 0; /* not under pfalloc */
    long live = 0, used = 0;
    for (uint32_t i = 0; i < st.nfamilies; i++)
        if (st.fam[i].kind == PF_KIND_CLASS && st.fam[i].slot_size == XFORK_SIZE)
            live = (long)st.fam[i].live_objects;
    /* The family's spans, one a line after the header: first slot, bytes
     * (two words), slot, slots, used, free, largest free run. */
    int fd = memfd_create("family", 0);
    static char text[1 << 16];
    ssize_t n = fd >= 0 && print_family(fd, "malloc-112") == 0 ? pread(fd, text, sizeof text - 1, 0) : -1;
    if (n <= 0)
        return 2;
    text[n] = 0;
    char *line = strstr(text, "largest free run");
    while (line && (line = strchr(line, '\n')) != NULL && *++line) {
        unsigned long slot, slots, in_use;
        if (sscanf(line, " 0x%*x %*s %*s %lu %lu %lu", &slot, &slots, &in_use) == 3)
            used += (long)in_use;
    }
    return used - live >= CFORK_BATCH;
}

static int cforks(void)
{
    pthread_t t[2];
    if (pthread_create(&t[0], NULL, cfork_producer, NULL) != 0 ||
        pthread_create(&t[1], NULL, cfork_consumer, NULL) != 0)
        return 1;
    while (atomic_load_explicit(&cfork_made, memory_order_relaxed) < 8 * CFORK_RING)
        sched_yield();
    int found = fork_children(CFORKS, cfork_child, NULL);
    atomic_store(&trims_stop, 1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    printf("children %d\n", found);
    return found != 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "decay") == 0)
        return decay();
    if (argc == 2 && strcmp(argv[1], "trim") == 0)
        return trim();
    if (argc == 2 && strcmp(argv[1], "race") == 0)
        return race();
    if (argc == 2 && strcmp(argv[1], "fork") == 0)
        return forks();
    if (argc == 2 && strcmp(argv[1], "xfork") == 0)
        return xforks();
    if (argc == 2 && strcmp(argv[1], "cfork") == 0)
        return cforks();
    fprintf(stderr, "usage: giveback decay|trim|race|fork|xfork|cfork\n");
    return 2;
}
