/*
 * ownsignal — installs its own handler for a signal (SIGUSR1, or the number
 * given), raises it three times and prints how often its handler ran. A
 * preloaded pfalloc must leave the program's handler in place.
 * Usage: ownsignal [SIGNO]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t hits;

static void on_signal(int sig)
{
    (void)sig;
    hits++;
}

int main(int argc, char **argv)
{
    int signo = argc > 1 ? atoi(argv[1]) : SIGUSR1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, NULL) != 0) {
        perror("ownsignal: sigaction");
        return 2;
    }
    for (int i = 0; i < 3; i++) {
        char *p = malloc(64);
        raise(signo);
        free(p);
    }
    printf("ownsignal: handler ran %d times\n", (int)hits);
    return hits == 3 ? 0 : 1;
}
