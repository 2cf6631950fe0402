/*
 * daemonish — a long-running process that allocates a little: every 10 ms
 * it replaces a few of 200 kept blocks, until SECONDS have passed (default
 * 2; decimals allowed). It prints "daemonish: started" (flushed) when it is
 * running and "daemonish: done" when it ends, having freed everything.
 * Signals that interrupt its sleeps only shorten them; the deadline holds.
 * With "fork", a child forked after the start does the work (and prints
 * "daemonish: done", then exits), while the process waits for it. With
 * "quiet", it makes its 200 blocks before it prints that it started and
 * then only sleeps: a signal sent after the start never lands in the
 * allocator.
 * Usage: daemonish [SECONDS [fork|quiet]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEPT 200

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    char *kept[KEPT];
    memset(kept, 0, sizeof kept);
    int quiet = argc > 2 && strcmp(argv[2], "quiet") == 0;
    for (int i = 0; quiet && i < KEPT; i++)
        if (!(kept[i] = malloc(16 + (size_t)i * 15)))
            return 2;
    printf("daemonish: started\n");
    fflush(stdout);
    if (argc > 2 && strcmp(argv[2], "fork") == 0) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid > 0) {
            int st;
            while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                    return 2;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
        }
    }
    double end = now() + seconds;
    unsigned long tick = 0;
    while (now() < end) {
        for (int k = 0; k < 5 && !quiet; k++) {
            unsigned i = (unsigned)((tick * 7 + (unsigned long)k * 13) % KEPT);
            free(kept[i]);
            size_t n = 16 + (tick * 37 + (unsigned long)k * 101) % 3000;
            kept[i] = malloc(n);
            if (!kept[i]) {
                fprintf(stderr, "daemonish: out of memory\n");
                return 2;
            }
            memset(kept[i], (int)(tick & 0xff), n);
        }
        tick++;
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            return 2;
    }
    for (int i = 0; i < KEPT; i++)
        free(kept[i]);
    printf("daemonish: done\n");
    return 0;
}
