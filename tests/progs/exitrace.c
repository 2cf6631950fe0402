/*
 * exitrace — a process that exits while its other threads still run, as a
 * daemon does when one thread calls exit(): the exit report's reachability
 * pass then reads memory that those threads change under it.
 *
 *   - stack threads: each keeps starting short-lived threads (raw clone,
 *     no libc thread state, so the allocator's locks never hold them up)
 *     on stacks it maps itself, below a guard page as thread stacks are,
 *     each at a fresh address of a reserved area, and unmaps each stack as
 *     soon as its thread has exited: a stack seen in the process's maps is
 *     soon gone, and its address stays unmapped for a while;
 *   - large threads: each reallocates a large block (kept in a global,
 *     holding pointers to small objects) between sizes that make it move,
 *     and now and then frees it and allocates a new one;
 *   - the main thread builds a heap of many small objects reachable from a
 *     global table (so the pass takes a while), lets the others run for a
 *     moment, then calls exit(7) while they go on.
 *
 * With "noread" as the argument, a seccomp filter first makes
 * process_vm_readv fail with ENOSYS, as a sandbox may; with "noread-nopread",
 * pread64 too (so /proc/thread-self/mem cannot be read either).
 * usage: exitrace [noread|noread-nopread]
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "noread.h"

#define STACK_THREADS 2
#define LARGE_THREADS 2
#define SLOTS 256               /* stack addresses each stack thread cycles through */
#define SLOT_BYTES (64 * 1024)  /* a stack and its guard page */
#define SMALL_OBJECTS 200000

static void *volatile *table; /* the heap of small objects */
static void *volatile big[LARGE_THREADS];
static void *volatile kept_small;

static int child(void *arg)
{
    /* Pointers on this stack: the pass has something to find there. */
    volatile uintptr_t local[64];
    for (int i = 0; i < 64; i++)
        local[i] = (uintptr_t)arg;
    for (volatile int i = 0; i < 2000; i++) {
    }
    return (int)(local[0] & 0);
}

static void *stack_thread(void *arg)
{
    char *area = arg;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    for (unsigned k = 0;; k = (k + 1) % SLOTS) {
        char *want = area + (size_t)k * SLOT_BYTES;
        char *m = mmap(want, SLOT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                       -1, 0);
        if (m == MAP_FAILED)
            continue; /* something else took the place */
        if (m != want) {
            munmap(m, SLOT_BYTES);
            continue;
        }
        mprotect(m, ps, PROT_NONE);
        _Atomic pid_t tid = -1;
        int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                    CLONE_CHILD_CLEARTID;
        if (clone(child, m + SLOT_BYTES, flags, kept_small, NULL, NULL, &tid) < 0) {
            munmap(m, SLOT_BYTES);
            continue;
        }
        /* The kernel clears tid and wakes it when the thread is gone. */
        pid_t v;
        while ((v = atomic_load(&tid)) != 0)
            syscall(SYS_futex, &tid, FUTEX_WAIT, v, NULL, NULL, 0);
        munmap(m, SLOT_BYTES);
    }
    return NULL;
}

static void fill(void **b, size_t bytes)
{
    /* A pointer to a small object on every page. */
    for (size_t at = 0; at + sizeof(void *) <= bytes; at += 4096)
        b[at / sizeof(void *)] = table[at % SMALL_OBJECTS];
}

static void *large_thread(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    uint64_t x = 0x9E3779B97F4A7C15ull * (i + 1);
    for (unsigned round = 0;; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t bytes = ((size_t)256 << 10) + (size_t)(x % (8u << 20));
        if (round % 16 == 15) {
            free(big[i]);
            big[i] = NULL;
        }
        void *p = realloc(big[i], bytes);
        if (!p)
            continue;
        fill(p, bytes < 65536 ? bytes : 65536);
        big[i] = p;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "noread") == 0)
        forbid_reads(0);
    else if (argc > 1 && strcmp(argv[1], "noread-nopread") == 0)
        forbid_reads(1);
    table = malloc(sizeof(void *) * SMALL_OBJECTS);
    if (!table)
        return 1;
    for (size_t i = 0; i < SMALL_OBJECTS; i++) {
        table[i] = malloc(16 + i % 100);
        if (!table[i])
            return 1;
    }
    kept_small = table[0];
    pthread_t t;
    for (uintptr_t i = 0; i < LARGE_THREADS; i++)
        if (pthread_create(&t, NULL, large_thread, (void *)i) != 0)
            return 1;
    for (int i = 0; i < STACK_THREADS; i++) {
        /* An address range that nothing else uses: reserved, then given back. */
        char *area = mmap(NULL, (size_t)SLOTS * SLOT_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area == MAP_FAILED)
            return 1;
        munmap(area, (size_t)SLOTS * SLOT_BYTES);
        if (pthread_create(&t, NULL, stack_thread, area) != 0)
            return 1;
    }
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    printf("exiting\n");
    fflush(stdout);
    exit(7);
}
