/*
 * hooks.c — the preload's start-up and exit: reads the PFALLOC_* variables,
 * installs the report signal's handler (only where the signal still has its
 * default action: a program's own handler wins), starts the interval timer
 * (timer_create with a signal, so no thread is added to the program), and
 * writes the exit report with the leak section from a destructor, which the
 * loader runs after the program's atexit handlers and destructors.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "callsite.h"
#include "config.h"
#include "emit.h"
#include "preload.h"
#include "report.h"
#include "sites.h"

/* The interval timer's signal: a real-time signal programs rarely use. */
#define INTERVAL_SIGNAL (SIGRTMAX - 3)

static timer_t interval_timer;
static int interval_on;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    int saved = errno;
    const char *reason = si && si->si_code == SI_TIMER ? "interval" : "signal";
    /* On request, the leak section too, classified by reachability: what
     * a daemon holds while it runs. Given up when the allocator is busy
     * where the signal landed. */
    if (pf_config.reach_signal && pf_leaks_collect_signal(NULL) == 0) {
        pf_emit_report(reason, PF_EMIT_LEAKS_NOW);
        pf_leaks_done();
    } else {
        pf_emit_report(reason, 0);
    }
    errno = saved;
}

static void install(int signo)
{
    struct sigaction old, sa;
    if (sigaction(signo, NULL, &old) != 0)
        return;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL)
        return; /* ignored or handled before we ran: leave it */
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}

static void start_interval(uint64_t ms)
{
    install(INTERVAL_SIGNAL);
    struct sigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = INTERVAL_SIGNAL;
    if (timer_create(CLOCK_MONOTONIC, &ev, &interval_timer) != 0)
        return;
    struct itimerspec its;
    its.it_value.tv_sec = (time_t)(ms / 1000);
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    its.it_interval = its.it_value;
    if (timer_settime(interval_timer, 0, &its, NULL) == 0)
        interval_on = 1;
}

/* A thread of the parent may have been inside a report or mallinfo when the
 * process forked; in the child nobody is. */
static void fork_child(void)
{
    pf_report_fork_child();
    pf_introspect_fork_child();
}

__attribute__((constructor(101))) static void preload_start(void)
{
    int saved = errno;
    pf_alloc_init();
    pthread_atfork(NULL, NULL, fork_child);
    pf_report_init();
    pf_config_load();
    if (pf_config.report)
        pf_emit_init();
    /* The leak status needs sites to tell the program's objects from the
     * runtime's, so it turns recording on too. */
    if (pf_config.sites || pf_config.leak_exit_code) {
        pf_sites_enable();
        pf_callsite_init();
    }
    if ((pf_config.report & PF_REPORT_SIGNAL) && pf_config.signo)
        install(pf_config.signo);
    if (pf_config.interval_ms)
        start_interval(pf_config.interval_ms);
    errno = saved;
}

__attribute__((destructor(101))) static void preload_exit(void)
{
    int saved = errno;
    if (interval_on) {
        timer_delete(interval_timer);
        interval_on = 0;
    }
    struct pf_leaks leaks = {0};
    if ((pf_config.report & PF_REPORT_EXIT) || pf_config.leak_exit_code)
        pf_leaks_collect(&leaks);
    if (pf_config.report & PF_REPORT_EXIT)
        pf_emit_report("exit", PF_EMIT_LEAKS_EXIT);
    /* Only lost objects are the program's leaks: still reachable and
     * indirectly lost ones (freed with their lost owner) do not count. */
    if (pf_config.leak_exit_code && leaks.program_lost) {
        fflush(NULL);
        _exit(pf_config.leak_exit_code);
    }
    errno = saved;
}
