/*
 * reach — objects in every reachability category, for comparing the leak
 * report's classification with valgrind memcheck's. One argument picks what
 * is built (the whole set with "all"):
 *   table     a table of 10 strings kept in a global: 11 still reachable
 *   tree      a tree of 15 nodes whose root pointer is dropped:
 *             1 definitely lost, 14 indirectly lost
 *   list      a list of 8 nodes whose head is dropped: 1 + 7
 *   cycle     a ring of 4 nodes, dropped: 1 definitely lost, 3 indirectly
 *   interior  a block kept only through a pointer 40 bytes into it:
 *             1 possibly lost
 *   strdup    3 strdup copies dropped, 1 kept: 3 definitely lost, 1 still
 *             reachable
 *   wrapper   a wrapper called from two functions: one drops 2 blocks
 *             (definitely lost), the other keeps 3 (still reachable)
 * and, apart from "all":
 *   tls       a block kept only in a thread-local variable: still reachable
 *   key       a block kept only as a thread-specific value: still reachable
 *   thread    a block kept only on the stack of another thread, blocked
 *             while the process exits: still reachable
 *   busy      the same with a thread that runs (spins) while the process
 *             exits: still reachable
 *   busy_lost the same, and a block of 5000 bytes dropped before the exit:
 *             1 definitely lost (the scan of the running thread's stack
 *             must not reach it through pfalloc's own metadata)
 *   regs      a block kept only in a register (r15) of another thread,
 *             blocked in read() while the process exits: still reachable
 *   mapped    a block kept only in memory the program mapped itself
 *             (anonymous, as an interpreter's arenas are), one kept only
 *             in a second such mapping placed right below the first, so
 *             the kernel lists the two as one, and one in a third placed
 *             right below a large block of 1 MiB kept in a global: 4 still
 *             reachable
 *   runs      the same as mapped's first block, and 17 000 pages touched
 *             20 pages apart in a mapping of 1.3 GiB: more pieces of
 *             resident memory than root ranges are kept; 1 still reachable
 *   huge      a block kept only in a mapping of 100 GiB (MAP_NORESERVE, a
 *             page 80 GiB into it touched): past what the exit report
 *             looks at (64 GiB), so the block is unclassified (a partial
 *             result), not lost
 *   bss_split a block dropped, after a page in the middle of the program's
 *             .bss was made read-only (the kernel then lists the .bss as
 *             three mappings, the last wholly inside the module): 1
 *             definitely lost, and a classification that is not partial
 *   main_busy a block kept only on the main thread's stack while the main
 *             thread runs (spins) and another thread calls exit() (and
 *             raises the signal, with "raise"): still reachable
 *   sparse_large a block of 64 MiB kept in a global, one page of it
 *             written: a pointer 40 MiB into it to a block of 40 bytes, its
 *             only pointer; 2 still reachable. At its end (after the
 *             signal report, with "raise") it prints how many of the large
 *             block's pages are resident: a walk that read the untouched
 *             ones would have mapped them
 *   many_large 10 000 large blocks of 200 000 bytes, every other one freed
 *             (so those left lie apart), the 5 000 left kept only in a
 *             mapping of the program's: more of pfalloc's mappings than
 *             its table of them held (4 096); 5 000 still reachable
 *   interleaved 2 000 mappings of the program's (256 KiB, as an
 *             interpreter's arenas) each holding the only pointer to a
 *             large block of 200 000 bytes mapped right after it: the
 *             kernel lists them all as one mapping, with more of pfalloc's
 *             pieces in it than one look at pfalloc's table took (512);
 *             2 000 still reachable
 *   shared    a block kept only in shared memory the program mapped
 *             (MAP_SHARED | MAP_ANONYMOUS, as python's mmap.mmap(-1, n)),
 *             one only in a memfd mapping, one only in POSIX shared memory
 *             (shm_open): 3 still reachable
 *   file      a block kept only in a private writable mapping of a file
 *             (as a dump file mapped and relocated in place): 1 still
 *             reachable
 *   file_cached  the same in a private mapping of a file of 128 MiB that
 *             is all in the page cache (written with write()), and a
 *             block kept only in a shared mapping of it (as a database's
 *             pages): 1 still reachable, 1 definitely lost (a file mapped
 *             shared is no root)
 *   ring_head a ring of 4 nodes (32 bytes) that each point into their head
 *             (128 bytes, made after them) at its second word, as a
 *             std::map's nodes point to the map's header, dropped: the head
 *             is what the program made first, and no node points to its
 *             start. 1 definitely lost (the head, 128 bytes: valgrind names
 *             the node at the lowest address, 32 bytes), 4 indirectly lost
 *   dltls     a block kept only in a thread-local variable of a library
 *             loaded with dlopen (libtlsplug.so, beside the program: dynamic
 *             TLS, a block the loader allocates), by a thread that has been
 *             joined since: 1 definitely lost (the C library keeps the
 *             exited thread's DTV and TLS block for reuse; nothing the
 *             program can run reads them)
 *   dltls_live the same by a thread blocked while the process exits: 1
 *             still reachable
 *   tls_exited a block kept only in a thread-local variable of the
 *             program's (static TLS), by a thread joined since: 1
 *             definitely lost
 *   dbmap     a shared writable mapping of a sparse 128 GiB file (a
 *             database's map: mostly holes, one page written), and a block
 *             dropped: 1 definitely lost; prints how many of the map's
 *             first 1 GiB of pages are resident at its end
 *   joined    four threads that run at once, each allocating and freeing,
 *             all joined: nothing of the program's is left (the C library
 *             keeps each exited thread's stack, descriptor and DTV for
 *             reuse: 4 objects of the runtime's, still reachable)
 * With a second argument "raise", it ends with raise(SIGUSR1) (the signal
 * report) before returning; with "fds", it opens /dev/null until no file
 * descriptor is left (its limit lowered to 64) before returning; with
 * "main_gone", main ends with pthread_exit and the process exits when a
 * thread it started returns 20 ms later; with "fork_fds", a thread forks
 * and the child (its only thread not the initial one, its id the process's)
 * uses up its descriptors and exits, then the parent prints "child exited
 * N" or "child died of signal N" and returns; with "noread", a seccomp
 * filter makes process_vm_readv and pread64 fail with ENOSYS before it
 * returns (so its memory can be read only in place).
 * Built like a distribution's binaries (-O2 -g, nothing exported). Pointers
 * that are dropped go through volatile globals and are cleared, and the
 * stack below main is scrubbed, so no stale copy keeps them reachable.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asleep.h"
#include "joined.h"
#include "noread.h"

struct tnode {
    struct tnode *left, *right;
    long value;
    long pad;
};

struct lnode {
    struct lnode *next;
    char payload[40];
};

static void *volatile g_table;
static void *volatile g_drop;
static char *volatile g_interior;
static char *volatile g_kept_string;
static void *volatile g_kept[3];

static void *must(void *p)
{
    if (!p)
        abort();
    return p;
}

__attribute__((noinline)) static void make_table(void)
{
    char **t = must(malloc(10 * sizeof(char *)));
    for (int i = 0; i < 10; i++) {
        t[i] = must(malloc(32));
        memset(t[i], 'a' + i, 31);
        t[i][31] = 0;
    }
    g_table = t;
}

__attribute__((noinline)) static struct tnode *tree(int depth, long v)
{
    if (!depth)
        return NULL;
    struct tnode *n = must(malloc(sizeof *n));
    n->value = v;
    n->pad = 0;
    n->left = tree(depth - 1, 2 * v);
    n->right = tree(depth - 1, 2 * v + 1);
    return n;
}

__attribute__((noinline)) static void make_tree(void)
{
    g_drop = tree(4, 1);
    g_drop = NULL;
}

__attribute__((noinline)) static void make_list(void)
{
    struct lnode *head = NULL;
    for (int i = 0; i < 8; i++) {
        struct lnode *n = must(malloc(sizeof *n));
        n->next = head;
        n->payload[0] = (char)i;
        head = n;
    }
    g_drop = head;
    g_drop = NULL;
}

__attribute__((noinline)) static void make_cycle(void)
{
    struct lnode *first = must(malloc(sizeof *first)), *last = first;
    for (int i = 1; i < 4; i++) {
        struct lnode *n = must(malloc(sizeof *n));
        n->next = last;
        last = n;
    }
    first->next = last;
    g_drop = first;
    g_drop = NULL;
}

struct rnode {
    struct rnode *next;
    struct rnode **owner; /* &head->first */
    long value;
    long pad;
};

struct rhead {
    long count;
    struct rnode *first;
    char name[112];
};

__attribute__((noinline)) static struct rnode *ring_node(long v)
{
    struct rnode *n = must(malloc(sizeof *n));
    n->value = v;
    n->pad = 0;
    return n;
}

__attribute__((noinline)) static struct rhead *ring_head(void)
{
    struct rhead *h = must(malloc(sizeof *h));
    memset(h, 0, sizeof *h);
    return h;
}

__attribute__((noinline)) static void make_ring_head(void)
{
    struct rnode *n[4];
    for (int i = 0; i < 4; i++)
        n[i] = ring_node(i);
    struct rhead *h = ring_head();
    for (int i = 0; i < 4; i++) {
        n[i]->next = n[(i + 1) % 4];
        n[i]->owner = &h->first;
    }
    h->first = n[0];
    h->count = 4;
    g_drop = h;
    g_drop = NULL;
}

__attribute__((noinline)) static void make_interior(void)
{
    char *p = must(malloc(100));
    memset(p, 0, 100);
    g_interior = p + 40;
}

__attribute__((noinline)) static void make_strdup(void)
{
    /* Built at run time so the compiler cannot turn strdup into malloc. */
    char text[32];
    volatile char seed = 'k';
    memset(text, seed, sizeof text - 1);
    text[sizeof text - 1] = 0;
    for (int i = 0; i < 3; i++) {
        g_drop = must(strdup(text));
        g_drop = NULL;
    }
    g_kept_string = must(strdup(text));
}

/* A project's own allocation wrapper, as xmalloc is. */
__attribute__((noinline)) static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    memset(p, 0, n);
    return p;
}

__attribute__((noinline)) static void wrapper_drops(void)
{
    for (int i = 0; i < 2; i++) {
        g_drop = xmalloc(64);
        g_drop = NULL;
    }
}

__attribute__((noinline)) static void wrapper_keeps(void)
{
    for (int i = 0; i < 3; i++)
        g_kept[i] = xmalloc(64);
}

static __thread void *volatile t_kept;

__attribute__((noinline)) static void make_tls(void)
{
    t_kept = must(malloc(24));
}

__attribute__((noinline)) static void make_key(void)
{
    static pthread_key_t key;
    if (pthread_key_create(&key, NULL) != 0 || pthread_setspecific(key, must(malloc(56))) != 0)
        abort();
}

static int ready[2], never[2];

static void (*tlsplug_keep)(void);

/* libtlsplug.so, from the program's own directory. */
static void load_tlsplug(void)
{
    char exe[4096], path[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        abort();
    exe[n] = 0;
    snprintf(path, sizeof path, "%s/libtlsplug.so", dirname(exe));
    void *h = dlopen(path, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        abort();
    }
    tlsplug_keep = (void (*)(void))dlsym(h, "tlsplug_keep");
    if (!tlsplug_keep)
        abort();
}

static void *keeps_in_dynamic_tls(void *arg)
{
    (void)arg;
    tlsplug_keep();
    return NULL;
}

static void *keeps_in_static_tls(void *arg)
{
    (void)arg;
    t_kept = must(malloc(24));
    return NULL;
}

__attribute__((noinline)) static void make_exited(void *(*fn)(void *))
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0 || pthread_join(t, NULL) != 0)
        abort();
}

/* Keeps a block in the library's TLS, then blocks until the process is gone. */
/* Tells its thread id on `ready`, then blocks until the process is gone:
 * nobody writes to `never`. */
static void tell_and_block(void)
{
    char c = 0;
    long tid = asleep_tid();
    if (write(ready[1], &tid, sizeof tid) != (ssize_t)sizeof tid)
        abort();
    while (read(never[0], &c, 1) != 0)
        ;
}

static void *dynamic_tls_holder(void *arg)
{
    (void)arg;
    tlsplug_keep();
    tell_and_block();
    return NULL;
}

static void *holder(void *arg)
{
    (void)arg;
    void *volatile kept = must(malloc(40));
    tell_and_block();
    return kept;
}

static volatile int spun;

static void *spinner(void *arg)
{
    (void)arg;
    void *volatile kept = must(malloc(40));
    char c = 0;
    if (write(ready[1], &c, 1) != 1)
        abort();
    for (;;)
        spun++;
    return kept;
}

__attribute__((noinline)) static void make_busy_thread(void)
{
    pthread_t t;
    char c;
    if (pipe(ready) != 0 || pthread_create(&t, NULL, spinner, NULL) != 0 || read(ready[0], &c, 1) != 1)
        abort();
}

/* Reads one byte from fd with the block p held in r15 and nowhere else
 * (the compiler's copy is cleared), retrying EINTR. */
static long read_holding_in_r15(int fd, void *p)
{
    long ret;
    char b;
    __asm__ __volatile__("mov %1, %%r15\n\t"
                         "xor %1, %1\n\t"
                         "0: xor %%eax, %%eax\n\t" /* read */
                         "mov %2, %%edi\n\t"
                         "lea %3, %%rsi\n\t"
                         "mov $1, %%edx\n\t"
                         "syscall\n\t"
                         "cmp $-4, %%rax\n\t" /* -EINTR */
                         "je 0b\n\t"
                         : "=&a"(ret), "+r"(p)
                         : "r"(fd), "m"(b)
                         : "r15", "rcx", "r11", "rdi", "rsi", "rdx", "memory");
    return ret;
}

static void *register_holder(void *arg)
{
    (void)arg;
    long tid = asleep_tid();
    if (write(ready[1], &tid, sizeof tid) != (ssize_t)sizeof tid)
        abort();
    /* Blocks until the process is gone: nobody writes to `never`. */
    read_holding_in_r15(never[0], must(malloc(40)));
    return NULL;
}


static void *volatile g_arena, *volatile g_big;

__attribute__((noinline)) static void make_mapped(void)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    char *a = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        abort();
    /* The second right below the first, with the same protection: one
     * mapping in the kernel's list (anywhere, where a tool that runs the
     * program refuses the address). */
    char *b = mmap(a - 4 * ps, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                   -1, 0);
    if (b == MAP_FAILED)
        b = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        abort();
    void *p = must(malloc(40)), *q = must(malloc(40));
    memcpy(a + 5 * ps + 8, &p, sizeof p);
    memcpy(b + ps + 16, &q, sizeof q);
    g_arena = a;
    /* A third right below a large block of the allocator's, whose mapping
     * the kernel then lists as one with it (where that address is free). */
    g_big = must(malloc(1 << 20));
    uintptr_t low = ((uintptr_t)g_big & ~(uintptr_t)(ps - 1)) - 2 * ps;
    char *c = mmap((void *)low, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                   -1, 0);
    if (c == MAP_FAILED)
        c = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED)
        abort();
    void *r = must(malloc(40));
    memcpy(c + ps + 24, &r, sizeof r);
}

static char *volatile g_sparse;
static char g_bss[16 * 4096] __attribute__((aligned(4096)));

__attribute__((noinline)) static void make_bss_split(void)
{
    g_bss[0] = 1;
    if (mprotect(g_bss + 8 * 4096, 4096, PROT_READ) != 0)
        abort();
    g_drop = must(malloc(100));
    g_drop = NULL;
}

/* A block kept only in a mapping of `bytes`, at `at` into it. */
__attribute__((noinline)) static void keep_in_mapping(size_t bytes, size_t at)
{
    char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        abort();
    void *p = must(malloc(40));
    memcpy(m + at, &p, sizeof p);
}

__attribute__((noinline)) static void make_runs(void)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    keep_in_mapping(16 * ps, 8 * ps);
    char *sparse = mmap(NULL, 17000 * 20 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        -1, 0);
    if (sparse == MAP_FAILED)
        abort();
    for (size_t i = 0; i < 17000; i++)
        sparse[i * 20 * ps] = 1;
    g_sparse = sparse;
}

__attribute__((noinline)) static void make_many_large(void)
{
    enum { N = 10000 };
    void **tab = mmap(NULL, N * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tab == MAP_FAILED)
        abort();
    for (int i = 0; i < N; i++) {
        tab[i] = must(malloc(200000));
        memset(tab[i], 1, 64);
    }
    for (int i = 1; i < N; i += 2) {
        free(tab[i]);
        tab[i] = NULL;
    }
}

__attribute__((noinline)) static void make_interleaved(void)
{
    for (int i = 0; i < 2000; i++) {
        char *arena = mmap(NULL, 256 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (arena == MAP_FAILED)
            abort();
        void *b = must(malloc(200000));
        memset(b, 1, 64);
        memcpy(arena + 128, &b, sizeof b);
    }
}

__attribute__((noinline)) static void make_shared(void)
{
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int fd = memfd_create("reach", 0);
    if (m == MAP_FAILED || fd < 0 || ftruncate(fd, 1 << 20) != 0)
        abort();
    char *f = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (f == MAP_FAILED)
        abort();
    close(fd);
    void *p = must(malloc(40)), *q = must(malloc(40)), *r = must(malloc(40));
    memcpy(m + (512 << 10), &p, sizeof p);
    memcpy(f + (256 << 10), &q, sizeof q);
    /* POSIX shared memory, where /dev/shm is there (else a global holds it,
     * with the same figures). */
    char name[64];
    snprintf(name, sizeof name, "/pfalloc-reach-%d", (int)getpid());
    int sfd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    char *sh = sfd >= 0 && ftruncate(sfd, 65536) == 0
                   ? mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0)
                   : MAP_FAILED;
    if (sfd >= 0) {
        close(sfd);
        shm_unlink(name);
    }
    if (sh != MAP_FAILED)
        memcpy(sh + 4096, &r, sizeof r);
    else
        g_kept[0] = r;
}

/* A file of `bytes` (written through write() when `cached`, so all of it
 * is in the page cache), mapped privately and writable with a block's
 * address written into one page; with `shared`, mapped shared too, with
 * another block's address in one page. */
__attribute__((noinline)) static void make_file(size_t bytes, int cached, int shared)
{
    char path[] = "/tmp/pfalloc-reach-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || unlink(path) != 0 || ftruncate(fd, (off_t)bytes) != 0)
        abort();
    if (cached) {
        static char chunk[1 << 16];
        memset(chunk, 0x5a, sizeof chunk);
        for (size_t at = 0; at < bytes; at += sizeof chunk)
            if (pwrite(fd, chunk, sizeof chunk, (off_t)at) != (ssize_t)sizeof chunk)
                abort();
    }
    char *priv = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (priv == MAP_FAILED)
        abort();
    void *p = must(malloc(40));
    memcpy(priv + 8192, &p, sizeof p);
    if (shared) {
        char *shar = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (shar == MAP_FAILED)
            abort();
        void *q = must(malloc(40));
        memcpy(shar + 40960, &q, sizeof q);
    }
    close(fd);
}

#define DBMAP_BYTES ((size_t)128 << 30)
#define DBMAP_LOOK ((size_t)1 << 30)
static char *g_dbmap;

__attribute__((noinline)) static void make_dbmap(void)
{
    char path[] = "/tmp/pfalloc-dbmap-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || unlink(path) != 0 || ftruncate(fd, (off_t)DBMAP_BYTES) != 0)
        abort();
    g_dbmap = mmap(NULL, DBMAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (g_dbmap == MAP_FAILED)
        abort();
    close(fd);
    memset(g_dbmap, 7, 4096);
    g_drop = must(malloc(40));
    memset(g_drop, 1, 40);
    g_drop = NULL;
}

#define SPARSE_BYTES ((size_t)64 << 20)
static char *volatile g_sparse_large;

__attribute__((noinline)) static void make_sparse_large(void)
{
    char *big = must(malloc(SPARSE_BYTES));
    void *p = must(malloc(40));
    memcpy(big + ((size_t)40 << 20), &p, sizeof p);
    g_sparse_large = big;
}

/* "NAME: N of PAGES pages resident" for the pages of [p, p + bytes). */
static void print_resident(const char *name, const void *p, size_t bytes)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(ps - 1);
    size_t len = (uintptr_t)p + bytes - a, pages = (len + ps - 1) / ps, n = 0;
    static unsigned char vec[DBMAP_LOOK / 4096 + 2];
    if (pages > sizeof vec || mincore((void *)a, len, vec) != 0)
        abort();
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    printf("%s: %zu of %zu pages resident\n", name, n, pages);
}

/* Raises the report signal too, if asked, from its own thread. */
static void *quitter(void *arg)
{
    char c;
    if (read(ready[0], &c, 1) != 1)
        abort();
    if (arg)
        raise(SIGUSR1);
    exit(0);
}

/* Never returns: the other thread ends the process while this one spins. */
__attribute__((noinline, noreturn)) static void main_busy(int sig)
{
    void *volatile kept = must(malloc(40));
    pthread_t t;
    char c = 0;
    if (pipe(ready) != 0 || pthread_create(&t, NULL, quitter, sig ? &t : NULL) != 0 ||
        write(ready[1], &c, 1) != 1)
        abort();
    for (;;)
        spun += kept != NULL;
}

/* Starts a thread that blocks for good in read() once it has its block
 * (`holder`, `register_holder`), and waits until it sleeps there. */
__attribute__((noinline)) static void make_thread(void *(*fn)(void *))
{
    pthread_t t;
    long tid;
    if (pipe(ready) != 0 || pipe(never) != 0 || pthread_create(&t, NULL, fn, NULL) != 0 ||
        read(ready[0], &tid, sizeof tid) != (ssize_t)sizeof tid || asleep_wait(tid, SYS_read) != 0)
        abort();
}

static void *worker(void *arg)
{
    char *p = must(malloc(100));
    memset(p, 1, 100);
    joined_wait();
    free(p);
    return arg;
}

/* Clears the stack below main, where the builders' frames were. */
static void *returns_later(void *arg)
{
    (void)arg;
    usleep(20000);
    return NULL;
}

static void no_descriptors_left(void)
{
    struct rlimit few = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &few) != 0)
        abort();
    while (open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0)
        ;
}

static void *forks(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid == 0) {
        no_descriptors_left();
        exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        abort();
    if (WIFSIGNALED(st))
        printf("child died of signal %d\n", WTERMSIG(st));
    else
        printf("child exited %d\n", WEXITSTATUS(st));
    return NULL;
}

__attribute__((noinline)) static void scrub(void)
{
    char buf[64 * 1024];
    explicit_bzero(buf, sizeof buf);
    __asm__ __volatile__("" : : "r"(buf) : "memory");
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int sig = argc > 2 && strcmp(argv[2], "raise") == 0;
    /* "fds": every file descriptor in use when the program exits. */
    int fds = argc > 2 && strcmp(argv[2], "fds") == 0;
    int all = strcmp(what, "all") == 0;
    if (all || strcmp(what, "table") == 0)
        make_table();
    if (all || strcmp(what, "tree") == 0)
        make_tree();
    if (all || strcmp(what, "list") == 0)
        make_list();
    if (all || strcmp(what, "cycle") == 0)
        make_cycle();
    if (all || strcmp(what, "interior") == 0)
        make_interior();
    if (all || strcmp(what, "strdup") == 0)
        make_strdup();
    if (all || strcmp(what, "wrapper") == 0) {
        wrapper_drops();
        wrapper_keeps();
    }
    if (strcmp(what, "tls") == 0)
        make_tls();
    if (strcmp(what, "key") == 0)
        make_key();
    if (strcmp(what, "thread") == 0)
        make_thread(holder);
    if (strcmp(what, "busy") == 0)
        make_busy_thread();
    if (strcmp(what, "regs") == 0)
        make_thread(register_holder);
    if (strcmp(what, "mapped") == 0)
        make_mapped();
    if (strcmp(what, "runs") == 0)
        make_runs();
    if (strcmp(what, "bss_split") == 0)
        make_bss_split();
    if (strcmp(what, "huge") == 0)
        keep_in_mapping((size_t)100 << 30, (size_t)80 << 30);
    if (strcmp(what, "joined") == 0)
        joined_run(worker);
    if (strcmp(what, "ring_head") == 0)
        make_ring_head();
    if (strcmp(what, "dltls") == 0 || strcmp(what, "dltls_live") == 0)
        load_tlsplug();
    if (strcmp(what, "dltls") == 0)
        make_exited(keeps_in_dynamic_tls);
    if (strcmp(what, "dltls_live") == 0)
        make_thread(dynamic_tls_holder);
    if (strcmp(what, "tls_exited") == 0)
        make_exited(keeps_in_static_tls);
    if (strcmp(what, "sparse_large") == 0)
        make_sparse_large();
    if (strcmp(what, "many_large") == 0)
        make_many_large();
    if (strcmp(what, "interleaved") == 0)
        make_interleaved();
    if (strcmp(what, "shared") == 0)
        make_shared();
    if (strcmp(what, "file") == 0)
        make_file((size_t)1 << 16, 0, 0);
    if (strcmp(what, "file_cached") == 0)
        make_file((size_t)128 << 20, 1, 1);
    if (strcmp(what, "dbmap") == 0)
        make_dbmap();
    if (strcmp(what, "main_busy") == 0)
        main_busy(sig);
    if (strcmp(what, "busy_lost") == 0) {
        make_busy_thread();
        g_drop = must(malloc(5000));
        memset(g_drop, 1, 5000);
        g_drop = NULL;
    }
    scrub();
    if (sig)
        raise(SIGUSR1);
    if (fds)
        no_descriptors_left();
    if (argc > 2 && strcmp(argv[2], "fork_fds") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, forks, NULL) != 0 || pthread_join(t, NULL) != 0)
            abort();
    }
    if (argc > 2 && strcmp(argv[2], "main_gone") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, returns_later, NULL) != 0)
            abort();
        pthread_exit(NULL);
    }
    if (g_sparse_large)
        print_resident("sparse_large", g_sparse_large, SPARSE_BYTES);
    if (g_dbmap)
        print_resident("dbmap", g_dbmap, DBMAP_LOOK);
    if (argc > 2 && strcmp(argv[2], "noread") == 0)
        forbid_reads(1);
    return 0;
}
