/*
 * forkstdio — fork from threads while other threads use stdio, the way an
 * ordinary multi-threaded program does. One thread runs fflush(NULL) in a
 * loop (it holds libc's list of open streams while it takes each stream's
 * lock), others open, write and close streams (they allocate and free
 * buffers while holding a stream's lock; a memory stream's buffer grows
 * to large blocks; one holds a stream's lock with flockfile while it
 * allocates), others allocate and free, and two threads fork. libc's fork takes the stream list's lock after the
 * atfork prepare handlers have run, so an allocator whose prepare handler
 * takes its own locks first can close a cycle: forker (allocator locks) ->
 * list lock (flushing thread) -> a stream's lock (writing thread) ->
 * allocator lock. A run that ends prints "forks N ok"; a deadlock is a hang.
 *
 * usage: forkstdio [forks per forking thread]   (default 300)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKERS 2
#define WRITERS 2
#define CHURNERS 2

static atomic_int stop;
static atomic_int failed;
static long forks_each = 300;

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        fflush(NULL);
    return NULL;
}

static void *writer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&stop)) {
        FILE *f = fopen("/dev/null", "w");
        if (!f) {
            atomic_store(&failed, 1);
            break;
        }
        /* The first write allocates the stream's buffer under its lock;
         * a bigger one later may reallocate it. */
        fprintf(f, "writer %u\n", id);
        setvbuf(f, NULL, _IOFBF, 0);
        fputs("some text that goes nowhere\n", f);
        fclose(f);
        /* A memory stream grows its buffer with realloc under its lock,
         * up to large blocks. */
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (!m) {
            atomic_store(&failed, 1);
            break;
        }
        for (unsigned k = 0; k < 2000; k++)
            fprintf(m, "line %u of a growing memory stream\n", k);
        fclose(m);
        free(buf);
    }
    return NULL;
}

/* Holds a stream's lock while it allocates, as a program printing a list
 * under flockfile does. */
static void *locker(void *arg)
{
    (void)arg;
    FILE *f = fopen("/dev/null", "w");
    if (!f) {
        atomic_store(&failed, 1);
        return NULL;
    }
    while (!atomic_load(&stop)) {
        flockfile(f);
        for (unsigned k = 0; k < 16; k++) {
            char *p = malloc(k % 2 ? 300000 : 40 + k);
            if (!p)
                abort();
            p[0] = 'x';
            fputc(p[0], f);
            free(p);
        }
        funlockfile(f);
    }
    fclose(f);
    return NULL;
}

static void *churner(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *held[64] = {0};
    while (!atomic_load(&stop)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned i = (unsigned)(x % 64);
        free(held[i]);
        held[i] = malloc(1 + (size_t)(x >> 20) % ((x >> 8) % 8 == 0 ? 200000 : 5000));
    }
    for (unsigned i = 0; i < 64; i++)
        free(held[i]);
    return NULL;
}

static void *forker(void *arg)
{
    (void)arg;
    for (long i = 0; i < forks_each && !atomic_load(&failed); i++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child allocates too: the locks must be usable in it. */
            free(malloc(100));
            free(malloc(300000));
            _exit(0);
        }
        if (pid < 0) {
            atomic_store(&failed, 2);
            break;
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            atomic_store(&failed, 3);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        forks_each = atol(argv[1]);
    pthread_t busy[2 + WRITERS + CHURNERS], forkers[FORKERS];
    unsigned n = 0;
    pthread_create(&busy[n++], NULL, flusher, NULL);
    pthread_create(&busy[n++], NULL, locker, NULL);
    for (unsigned i = 0; i < WRITERS; i++)
        pthread_create(&busy[n++], NULL, writer, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < CHURNERS; i++)
        pthread_create(&busy[n++], NULL, churner, (void *)(uintptr_t)(i + 1));
    for (unsigned i = 0; i < FORKERS; i++)
        pthread_create(&forkers[i], NULL, forker, NULL);
    for (unsigned i = 0; i < FORKERS; i++)
        pthread_join(forkers[i], NULL);
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < n; i++)
        pthread_join(busy[i], NULL);
    if (atomic_load(&failed)) {
        printf("failed (%d)\n", atomic_load(&failed));
        return 1;
    }
    printf("forks %ld ok\n", forks_each * FORKERS);
    return 0;
}
