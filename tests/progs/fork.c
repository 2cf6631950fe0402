/*
 * fork — the main thread forks repeatedly while other threads allocate and
 * free. Each child allocates, checks and frees blocks of every kind (small,
 * zeroed, grown, large, aligned), frees a block the parent allocated before
 * the fork, then _exit(0). A child stuck on a lock left held by a thread
 * that does not exist in the child is killed by its own alarm, so a fork
 * handling bug shows as a failed child, not a hang.
 *
 * usage: fork [forks] [threads]
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void *churn(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *held[64] = {0};
    unsigned long rounds = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned i = (unsigned)(next_rand(&rng) % 64);
        if (held[i]) {
            free(held[i]);
            held[i] = NULL;
        } else {
            size_t size = 1 + next_rand(&rng) % (next_rand(&rng) % 16 == 0 ? 300000 : 2048);
            held[i] = malloc(size);
            if (!held[i])
                abort();
            memset(held[i], (int)(size & 0xff), size);
        }
        rounds++;
    }
    for (unsigned i = 0; i < 64; i++)
        free(held[i]);
    return (void *)(uintptr_t)rounds;
}

static int check_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return -1;
    return 0;
}

/* Runs in the child: nonzero exit code names the failed step. */
static int child_work(unsigned char *inherited, size_t inherited_size, int round)
{
    alarm(30);
    if (check_bytes(inherited, inherited_size, (unsigned char)round))
        return 10;
    free(inherited);

    static const size_t sizes[] = {1, 16, 24, 100, 512, 3000, 4096, 40000, 200000, 4u << 20};
    void *blocks[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        blocks[i] = malloc(sizes[i]);
        if (!blocks[i])
            return 11;
        memset(blocks[i], (int)i + 1, sizes[i]);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (check_bytes(blocks[i], sizes[i], (unsigned char)(i + 1)))
            return 12;
        free(blocks[i]);
    }
    unsigned char *z = calloc(1000, 10);
    if (!z || check_bytes(z, 10000, 0))
        return 13;
    memset(z, 7, 10000);
    z = realloc(z, 1 << 20);
    if (!z || check_bytes(z, 10000, 7))
        return 14;
    free(z);
    void *a = NULL;
    if (posix_memalign(&a, 4096, 5000) != 0 || ((uintptr_t)a & 4095) != 0)
        return 15;
    free(a);
    return 0;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 40;
    int nthreads = argc > 2 ? atoi(argv[2]) : 3;
    if (forks < 1 || nthreads < 0 || nthreads > 32)
        return 2;
    pthread_t threads[32];
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&threads[i], NULL, churn, (void *)(uintptr_t)(i + 1)) != 0)
            return 2;

    int ok = 0, failed = 0;
    for (int round = 0; round < forks; round++) {
        size_t isize = 64 + (size_t)round * 997;
        unsigned char *inherited = malloc(isize);
        if (!inherited)
            return 2;
        memset(inherited, round & 0xff, isize);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "fork: fork failed: %s\n", strerror(errno));
            return 2;
        }
        if (pid == 0)
            _exit(child_work(inherited, isize, round & 0xff));
        /* The parent keeps allocating while the child runs. */
        for (int i = 0; i < 50; i++)
            free(malloc(32 + (size_t)i * 40));
        free(inherited);
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "fork: waitpid: %s\n", strerror(errno));
                return 2;
            }
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            ok++;
        } else {
            failed++;
            if (WIFEXITED(status))
                fprintf(stderr, "fork: child %d failed at step %d\n", round, WEXITSTATUS(status));
            else
                fprintf(stderr, "fork: child %d killed by signal %d\n", round, WTERMSIG(status));
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    printf("forks %d, threads %d\n", forks, nthreads);
    printf("children ok %d, failed %d\n", ok, failed);
    return failed == 0 ? 0 : 1;
}
