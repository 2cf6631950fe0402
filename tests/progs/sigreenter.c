/*
 * sigreenter — a single-threaded program whose main loop allocates and frees
 * (small, middling and large blocks, so the allocator's locked paths run
 * often) while an interval timer fires SIGALRM every 50 microseconds. What
 * the handler does is named by the argument:
 *
 *   fork    the handler forks; the child _exit(0)s at once, the parent
 *           waits for it. glibc allows this in a single-threaded process
 *           (its fork takes no malloc lock then), so the run must end, with
 *           "forks N ok" on stdout, whatever the signal interrupted.
 *   malloc  the handler mallocs and frees. That is undefined behaviour; an
 *           allocator may stop the process, but must not hang it.
 *
 * The run is bounded: it stops after `forks`/`signals` handled (argument 2,
 * default 400) or 20 s of allocation, whichever comes first. With a third
 * argument "forked", it first starts a thread that sleeps (so the process
 * has threads and a fork takes the allocator's locks) and forks once, the
 * child ending at once, before the timer starts.
 *
 * usage: sigreenter fork|malloc [count [forked]]
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

static volatile sig_atomic_t handled, failed, mode_fork;
/* Rounds of the main loop; the handler acts only when it has moved, so the
 * timer (faster than a fork) cannot starve the loop it means to interrupt. */
static volatile unsigned long rounds;
static unsigned long seen = (unsigned long)-1;
/* The count asked for: a timer firing between the loop's end and the
 * timer's stop must not act once more. */
static volatile long want = 400;

static void on_alarm(int sig)
{
    (void)sig;
    if (rounds == seen || handled >= want)
        return;
    seen = rounds;
    if (mode_fork) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            failed = 1;
            return;
        }
        int status;
        while (waitpid(pid, &status, 0) < 0) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 2;
    } else {
        /* Only large blocks: the handler meets the main loop on the
         * allocator's locks, never inside its thread cache. */
        char *p = malloc(300000 + (size_t)handled % 5000);
        if (p) {
            p[0] = 1;
            free(p);
        }
    }
    handled++;
}

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "fork") != 0 && strcmp(argv[1], "malloc") != 0)) {
        fprintf(stderr, "usage: sigreenter fork|malloc [count [forked]]\n");
        return 2;
    }
    mode_fork = strcmp(argv[1], "fork") == 0;
    if (argc > 2)
        want = atol(argv[2]);
    if (argc > 3 && strcmp(argv[3], "forked") == 0 && threaded_fork_once() != 0)
        return 2;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);

    uint64_t rng = 12345;
    void *held[32] = {0};
    double start = now();
    while (handled < want && !failed) {
        if ((rounds & 1023) == 0 && now() - start > 20)
            break;
        uint64_t r = next(&rng);
        unsigned i = (unsigned)(r % 32);
        free(held[i]);
        size_t size = (r >> 8) % 4 == 0 ? 70000 + (size_t)(r >> 16) % 200000
                                        : 1 + (size_t)(r >> 16) % 3000;
        held[i] = malloc(size);
        if (!held[i])
            abort();
        memset(held[i], 7, size < 64 ? size : 64);
        rounds++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    for (unsigned i = 0; i < 32; i++)
        free(held[i]);
    if (failed) {
        printf("handler failed (%d)\n", (int)failed);
        return 1;
    }
    printf("%s %ld ok\n", mode_fork ? "forks" : "signals", (long)handled);
    return 0;
}
