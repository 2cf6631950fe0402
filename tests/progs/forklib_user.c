/*
 * forklib_user — a program linking tests/progs/lib/forklib.c, whose fork
 * handlers allocate: with a second thread running, it forks once; the
 * child exits at once. Prints "forked" when the fork returned.
 *
 * With the argument "signal", the prepare handler allocates for 300 ms
 * while a timer fires SIGALRM every 50 microseconds, and the signal
 * handler, while that loop runs, allocates a large block too: undefined
 * behaviour where it interrupted malloc, which an allocator may stop but
 * must not let corrupt its heap.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "runtime.h"

int forklib_registered(void);
void forklib_spin(unsigned ms);
int forklib_spinning(void);

static void on_alarm(int sig)
{
    (void)sig;
    if (!forklib_spinning())
        return;
    char *p = malloc(300000);
    if (p) {
        p[0] = 1;
        free(p);
    }
}

int main(int argc, char **argv)
{
    if (!forklib_registered())
        return 2;
    if (argc > 1 && strcmp(argv[1], "signal") == 0) {
        forklib_spin(300);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sa.sa_flags = SA_RESTART;
        struct itimerval it = {{0, 50}, {0, 50}};
        if (sigaction(SIGALRM, &sa, NULL) != 0 || setitimer(ITIMER_REAL, &it, NULL) != 0)
            return 2;
    }
    if (threaded_fork_once() != 0)
        return 2;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("forked\n");
    return 0;
}
