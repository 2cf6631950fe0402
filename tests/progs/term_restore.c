/*
 * term_restore readback — sets SIGTERM's default action with SA_RESTART,
 * SA_NODEFER and SIGUSR1 in its mask, reads it back and prints what it
 * reads: "term_restore: handler default, flags 0x..., SIGUSR1 masked 1".
 *
 * term_restore signal|sigaction — saves SIGINT's action while setting a
 * handler of its own (with signal(), or with sigaction()), puts the saved
 * action back, then raises SIGINT: the process dies of it, with the exit
 * report a default action gives under pfalloc. Keeps a block, so the
 * report has a leak to list. Prints "term_restore: raising" first.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile kept;

static void on_int(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    kept = malloc(100);
    if (strcmp(argv[1], "readback") == 0) {
        struct sigaction sa, back;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sa.sa_flags = SA_RESTART | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaddset(&sa.sa_mask, SIGUSR1);
        if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGTERM, NULL, &back) != 0)
            return 2;
        printf("term_restore: handler %s, flags %#x, SIGUSR1 masked %d\n",
               back.sa_handler == SIG_DFL ? "default" : "other", (unsigned)back.sa_flags,
               sigismember(&back.sa_mask, SIGUSR1));
        /* What the kernel keeps of an action: no SIGKILL or SIGSTOP in the
         * mask, no flag it does not know (0x400, SA_UNSUPPORTED, is how a
         * program asks), glibc's own restorer. */
        sigfillset(&sa.sa_mask);
        sa.sa_flags = 0x400;
        if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGINT, NULL, &back) != 0)
            return 2;
        printf("term_restore: flags %#x, SIGKILL masked %d, SIGSTOP masked %d, SIGUSR1 masked %d\n",
               (unsigned)back.sa_flags, sigismember(&back.sa_mask, SIGKILL), sigismember(&back.sa_mask, SIGSTOP),
               sigismember(&back.sa_mask, SIGUSR1));
        /* siginterrupt (which programs still call) on a default the
         * program never set. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        int interrupted = siginterrupt(SIGHUP, 1);
#pragma GCC diagnostic pop
        if (interrupted != 0 || sigaction(SIGHUP, NULL, &back) != 0)
            return 2;
        printf("term_restore: after siginterrupt, flags %#x, restorer %s\n", (unsigned)back.sa_flags,
               back.sa_restorer ? "set" : "none");
        return 0;
    }
    if (strcmp(argv[1], "signal") == 0) {
        void (*old)(int) = signal(SIGINT, on_int);
        if (old == SIG_ERR || signal(SIGINT, old) == SIG_ERR)
            return 2;
    } else if (strcmp(argv[1], "sigaction") == 0) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_int;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGINT, &sa, &old) != 0 || sigaction(SIGINT, &old, NULL) != 0)
            return 2;
    } else {
        return 2;
    }
    printf("term_restore: raising\n");
    fflush(stdout);
    raise(SIGINT);
    return 3;
}
