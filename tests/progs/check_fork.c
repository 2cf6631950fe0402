/*
 * check_fork — forks while another thread allocates: a thread makes and
 * frees zeroed blocks of 100 000 bytes without a pause while the main
 * thread forks N children (default 300), each of which exits at once
 * through exit(), and counts those that did not exit 0. Prints "N of M
 * children failed" (and each failure); exits 1 when any did.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        char *p = calloc(1, 100000);
        if (!p)
            abort();
        p[0] = 1;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int forks = argc > 1 ? atoi(argv[1]) : 300;
    pthread_t t;
    if (pthread_create(&t, NULL, churn, NULL) != 0)
        return 2;
    int bad = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0)
            exit(0);
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) != pid)
            return 2;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("fork %d: child %s %d\n", i, WIFSIGNALED(st) ? "died of signal" : "exited",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            bad++;
        }
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("%d of %d children failed\n", bad, forks);
    return bad != 0;
}
