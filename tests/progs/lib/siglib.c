/*
 * siglib — a shared library whose constructor installs an SA_SIGINFO
 * handler for SIGUSR1, as libraries that use the signal for their own ends
 * do; siglib_hits says how often it ran.
 */
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t hits;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    hits++;
}

__attribute__((constructor)) static void siglib_start(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

int siglib_hits(void)
{
    return (int)hits;
}
