/*
 * siglib_user — linked with libsiglib, whose constructor installs its own
 * SA_SIGINFO handler for SIGUSR1 before the program starts (and before a
 * preloaded library's constructor). It raises SIGUSR1 three times and
 * prints how often the library's handler ran.
 * Usage: siglib_user
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int siglib_hits(void);

int main(void)
{
    for (int i = 0; i < 3; i++) {
        char *p = malloc(64);
        raise(SIGUSR1);
        free(p);
    }
    printf("siglib_user: the library's handler ran %d times\n", siglib_hits());
    return siglib_hits() == 3 ? 0 : 1;
}
