/*
 * fork_busy [FORKS] — three threads allocate and free without pause while
 * the main thread forks FORKS children (default 40), one after another.
 * Each child (no exec) allocates 4 objects of its own, keeps them in a
 * global and calls exit(0), which writes its exit report. Prints how many
 * children exited with status 0. A fork often lands while another thread
 * is inside malloc; whatever that allocation was is the parent's, and a
 * child's report must count as its own exactly its 4 objects.
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define OWN 4
#define THREADS 3

static atomic_int stop;
void *volatile child_keep[OWN];

static void *churn(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg;
    void *p[64];
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++)
            p[i] = malloc(16 + (k * 31 + (unsigned)i * 37) % 200);
        for (int i = 0; i < 64; i++)
            free(p[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 40;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i) != 0)
            return 2;
    int ok = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            for (int k = 0; k < OWN; k++)
                child_keep[k] = malloc(24);
            exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("fork_busy: %d of %d children exited with 0\n", ok, forks);
    return 0;
}
