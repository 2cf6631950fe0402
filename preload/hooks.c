/*
 * hooks.c — the preload's start-up and exit: reads the PFALLOC_* variables,
 * installs the report signal's handler (only where the signal still has its
 * default action: a program's own handler wins), starts the interval timer
 * (timer_create with a signal, so no thread is added to the program), and
 * writes the exit report with the leak section from a destructor, which the
 * loader runs after the program's atexit handlers and destructors. libc's
 * calls that read or set a signal's action are here too, so none of them
 * shows the program the handler pfalloc puts on a terminating signal.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "alloc.h"
#include "callsite.h"
#include "check.h"
#include "config.h"
#include "emit.h"
#include "family.h"
#include "lock.h"
#include "report.h"
#include "stats.h"
#include "sites.h"

/* The interval timer's signal: a real-time signal programs rarely use. */
#define INTERVAL_SIGNAL (SIGRTMAX - 3)

static timer_t interval_timer;
static int interval_on;
/* One interval, as a one-shot timer setting: the timer is armed again at
 * the end of each interval report, so the program runs for a whole
 * interval between two of them however long one takes to write. */
static struct itimerspec interval_once;

/* Set by whoever starts the exit report: the destructor, or the handler of
 * a terminating signal; the other then leaves it alone. */
static int exit_started;

/* The signals that end a process by default and that people send to stop
 * it (systemd and docker send SIGTERM, a terminal SIGINT and SIGHUP): the
 * exit report is written before the process dies of them. SIGQUIT is left
 * alone: it asks for a core dump of the process as it is. */
static const int term_signals[] = {SIGTERM, SIGINT, SIGHUP};
#define TERM_SIGNALS (sizeof(term_signals) / sizeof(term_signals[0]))
/* Those of them that carry pfalloc's handler, which the program sees as
 * the default (see sigaction below), and that handler's action. */
static sigset_t term_mine;
static struct sigaction term_action;
/* What the program is shown where pfalloc's handler is, per signal of
 * term_signals: the default as it was, or as the program set it since. */
static struct sigaction term_shown[TERM_SIGNALS];
/* The handlers were not installed because this process was the first of a
 * PID namespace: its fork children, which the kernel does not shield,
 * install them. */
static int term_at_pid1;

static int term_index(int sig)
{
    for (int i = 0; i < (int)TERM_SIGNALS; i++)
        if (term_signals[i] == sig)
            return i;
    return -1;
}
/* The process that installed the handler, or the fork child that took it
 * over: a vfork child (or a clone that ran no fork handler) shares the
 * parent's memory and must not write the parent's report. */
static pid_t term_pid;

/* glibc's own entry point, which its weak `sigaction` aliases. */
extern int __sigaction(int signo, const struct sigaction *act, struct sigaction *old);

/* What a report needs from the frame that took the signal or the exit,
 * for its part on pfalloc's own stack (pf_os_on_own_stack: the thread's
 * stack may be as small as the C library allows, and only the signal
 * frame and the handler's own frame go on it). */
struct report_job {
    uintptr_t from; /* the program's part of the thread's stack begins here */
    uintptr_t scan;        /* the leak walk reads the stack from here (0: from) */
    const uintptr_t *regs; /* with scan: the registers of the program's code there, or NULL */
    size_t nregs;          /* how many */
    int timer;      /* on_signal: the interval timer's */
    int with_leaks; /* on_term: the leak walk can be made */
    struct pf_leaks leaks;
};

static void signal_report(void *arg)
{
    struct report_job *j = arg;
    const char *reason = j->timer ? "interval" : "signal";
    /* As at exit: none (nor its walk, with PFALLOC_REACH_SIGNAL) where
     * nobody would read it. */
    if (pf_emit_nowhere())
        return;
    /* On request, the leak section too, classified by reachability: what
     * a daemon holds while it runs. Given up when the allocator is busy
     * where the signal landed. */
    if (pf_config.reach_signal && pf_leaks_collect_signal(NULL, j->from) == 0) {
        pf_emit_report(reason, PF_EMIT_LEAKS_NOW);
        pf_leaks_done();
    } else {
        pf_emit_report(reason, 0);
    }
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    uintptr_t from;
    PF_OS_PROGRAM_STACK(from);
    int saved = errno;
    int timer = si && si->si_code == SI_TIMER;
    struct report_job j = {.from = from, .timer = timer};
    pf_os_on_own_stack(signal_report, &j, from);
    if (timer && __atomic_load_n(&interval_on, __ATOMIC_ACQUIRE))
        timer_settime(interval_timer, 0, &interval_once, NULL);
    errno = saved;
}

/* fn on signo, unless its action is not the default. */
static void install_handler(int signo, void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction old, sa;
    /* Only a signal whose action is still the default is ours: one ignored
     * or handled (with sa_handler or an SA_SIGINFO sa_sigaction) by a
     * library whose constructor ran first stays as it is. */
    if (__sigaction(signo, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    __sigaction(signo, &sa, NULL);
}

static void install(int signo)
{
    install_handler(signo, on_signal);
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
    memset(&interval_once, 0, sizeof(interval_once));
    interval_once.it_value.tv_sec = (time_t)(ms / 1000);
    interval_once.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    __atomic_store_n(&interval_on, 1, __ATOMIC_RELEASE);
    if (timer_settime(interval_timer, 0, &interval_once, NULL) != 0)
        __atomic_store_n(&interval_on, 0, __ATOMIC_RELEASE);
}

/* The text and JSON of an exit report whose leak section could not be
 * collected: a signal, or a handler that called exit, interrupted the
 * allocator in this thread. */
#define PF_LEAKS_INTERRUPTED "the signal interrupted the allocator"
static void leaks_skipped(struct pf_fmt *f, int json, void *ctx)
{
    (void)ctx;
    pf_leaks_write_skipped(f, json, PF_LEAKS_INTERRUPTED);
}

static void leaks_busy(struct pf_fmt *f, int json, void *ctx)
{
    (void)ctx;
    pf_leaks_write_skipped(f, json, PF_LEAKS_BUSY);
}

/* Whether there is an exit report to make: asked for, and going where
 * someone may read it (not to /dev/null, say: a shell script's
 * `cmd 2>/dev/null`, where the walk was most of a short command's cost). */
static int exit_report_read(void)
{
    return (pf_config.report & PF_REPORT_EXIT) && !pf_emit_nowhere();
}

/* The exit report, leaks included unless !with_leaks; fills *leaks. The
 * destructor and the handler of a terminating signal both write it here;
 * only the destructor's process surely ends (at_exit: the leak walk's
 * memory is left to the end): the init of a PID namespace outlives a
 * default-action signal it raises itself. */
static int exit_report(struct pf_leaks *leaks, int with_leaks, uintptr_t stack_from, int at_exit,
                       const uintptr_t *regs, size_t nregs)
{
    int report = exit_report_read();
    int collected = with_leaks && (report || pf_config.leak_exit_code);
    int busy = collected && pf_leaks_collect_exit(leaks, stack_from, at_exit, regs, nregs) != 0;
    if (report)
        pf_emit_report_with("exit", busy ? leaks_busy : with_leaks ? pf_leaks_write : leaks_skipped);
    if (collected && !busy)
        pf_leaks_exit_written();
    return busy;
}

/* Whether no family lock is held, waiting up to 200 ms for each one that
 * is: a thread that holds one gives it back soon, unless it is the thread
 * the signal interrupted, which cannot until the handler returns. */
static int family_locks_free(void)
{
    uint64_t t0 = pf_os_now_ms();
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++) {
        struct pf_family *f = pf_family_at(i);
        while (atomic_load_explicit(&f->lock.state, memory_order_acquire)) {
            if (pf_lock_mine(&f->lock))
                return 0; /* the interrupted code of this very thread holds it */
            if (pf_os_now_ms() - t0 > 200)
                return 0;
            sched_yield();
        }
    }
    return 1;
}

static void term_report(void *arg)
{
    struct report_job *j = arg;
    /* As at exit: the checking mode's quarantine is emptied and every
     * block's canary verified before the leak walk (or the report would
     * count the quarantine's blocks as live and miss an overflow). Only
     * where the walk may run: the signal interrupted no locked path. */
    if (j->with_leaks)
        pf_check_exit();
    exit_report(&j->leaks, j->with_leaks, j->scan ? j->scan : j->from, 0, j->regs, j->nregs);
}

/* A terminating signal whose action was the default: the exit report, then
 * the default action, so the process dies of that very signal. A second
 * one arriving in another thread meanwhile ends the process at once. */
static void on_term(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    uintptr_t from;
    PF_OS_PROGRAM_STACK(from);
    int saved = errno;
    /* In a vfork child (which shares the parent's memory and flags) the
     * report is not this process's to write: it dies of the signal. */
    if (getpid() == term_pid && !__atomic_exchange_n(&exit_started, 1, __ATOMIC_ACQ_REL)) {
        struct report_job j = {.from = from, .with_leaks = !pf_lock_any_mine() && family_locks_free()};
#if defined(__x86_64__)
        /* The interrupted code's stack is read from its stack pointer
         * (less the 128 bytes below it that a function may use without
         * moving it), and its registers from the signal's context: what
         * lies between that and this frame (the signal frame, its padding,
         * dead frames of earlier calls) is no root, and its stale pointers
         * made lost blocks look reachable. Only when that stack pointer is
         * on this stack, a little above (not on an alternate stack). */
        static uintptr_t regs[NGREG + 32]; /* the general registers, then the 16 SSE ones */
        const ucontext_t *u = uc;
        uintptr_t sp = u ? (uintptr_t)u->uc_mcontext.gregs[REG_RSP] - 128 : 0;
        if (u && sp > from && sp - from <= ((uintptr_t)1 << 20)) {
            size_t n = 0;
            for (int i = 0; i < NGREG; i++)
                regs[n++] = (uintptr_t)u->uc_mcontext.gregs[i];
            if (u->uc_mcontext.fpregs) {
                memcpy(regs + n, u->uc_mcontext.fpregs->_xmm, 32 * sizeof(uintptr_t));
                n += 32;
            }
            j.scan = sp;
            j.regs = regs;
            j.nregs = n;
        }
#else
        (void)uc;
#endif
        pf_os_on_own_stack(term_report, &j, from);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    __sigaction(sig, &dfl, NULL); /* the default itself, not pfalloc's in its place */
    /* Blocked while this handler runs: delivered, with its default action,
     * as soon as the handler returns. */
    raise(sig);
    errno = saved;
}

/* x86-64's kernel: the flags it keeps of an action (others, and
 * SA_UNSUPPORTED, which programs ask with, read back cleared), and the one
 * glibc adds to every action it sets, with its restorer. */
#define KEPT_FLAGS (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | 0x800 | SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_RESETHAND)
#define GLIBC_RESTORER_FLAG 0x04000000
static void (*glibc_restorer)(void); /* read back from pfalloc's own action */

/* act as the kernel keeps it once glibc has set it. */
static struct sigaction as_kept(const struct sigaction *act)
{
    struct sigaction k = *act;
    k.sa_flags = (act->sa_flags & KEPT_FLAGS) | GLIBC_RESTORER_FLAG;
    k.sa_restorer = glibc_restorer;
    sigdelset(&k.sa_mask, SIGKILL);
    sigdelset(&k.sa_mask, SIGSTOP);
    return k;
}

/* pfalloc's handler, which is only ever on a signal of term_signals, as
 * the program is shown it. */
static void hide_term(int signo, struct sigaction *old)
{
    int i = term_index(signo);
    if (i >= 0 && (old->sa_flags & SA_SIGINFO) && old->sa_sigaction == on_term)
        *old = term_shown[i];
}

/* The handler pfalloc puts on a terminating signal is not the program's
 * business: asked for the action, the program sees the default it would
 * see without pfalloc (CPython, for one, installs its KeyboardInterrupt
 * handler for SIGINT only when the action is the default). Setting an
 * action replaces pfalloc's as usual. */
__attribute__((visibility("default"))) int sigaction(int signo, const struct sigaction *act,
                                                     struct sigaction *old)
{
    /* The program sets the default where pfalloc's handler was: that
     * handler is the default as the program sees it (the report, then the
     * default's death), and comes back. A program that saves the action
     * (shown as the default), sets its own and restores the saved one kept
     * no report. */
    int i = act && act->sa_handler == SIG_DFL && signo > 0 && signo < NSIG &&
                    sigismember(&term_mine, signo) == 1 && !term_at_pid1 ? term_index(signo) : -1;
    /* One call, so no signal finds the default in between and no other
     * thread's action is overwritten; what it shows is made as the kernel
     * would keep the program's. */
    struct sigaction shown;
    if (i >= 0) {
        shown = as_kept(act);
        act = &term_action;
    }
    int rc = __sigaction(signo, act, old);
    if (rc == 0 && old)
        hide_term(signo, old);
    if (rc == 0 && i >= 0)
        term_shown[i] = shown;
    return rc;
}

/* glibc's other ways of setting an action (signal and its aliases,
 * sysv_signal, sigset) call __sigaction, not the symbol above, and so
 * returned pfalloc's handler as the old action: `signal(SIGTERM, SIG_IGN)`
 * gave the program a handler it never installed. They are pfalloc's too,
 * with glibc's semantics exactly (its sysdeps/posix signal.c,
 * sysv_signal.c, sigset.c, siginterrupt.c), over the sigaction above. */

/* The signals whose system calls signal() does not restart: glibc keeps
 * the set siginterrupt writes and signal reads out of reach, so with
 * signal pfalloc's, siginterrupt is too. Written and read by the program's
 * own calls, as glibc's set is. */
static sigset_t interrupting;

/* A handler for sig with these flags, the signal itself added to its mask
 * when mask_self; the old handler as the program would see it. */
static __sighandler_t set_handler(int sig, __sighandler_t handler, int flags, int mask_self)
{
    if (handler == SIG_ERR || sig < 1 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof(act));
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    if (mask_self)
        sigaddset(&act.sa_mask, sig); /* fails for glibc's internal signals, as sigaction will */
    act.sa_flags = flags;
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* BSD semantics: the handler stays, the signal is blocked while it runs,
 * interrupted system calls restart unless siginterrupt(sig, 1) said not. */
__attribute__((visibility("default"))) __sighandler_t signal(int sig, __sighandler_t handler)
{
    int intr = sig >= 1 && sig < NSIG && sigismember(&interrupting, sig) == 1;
    return set_handler(sig, handler, intr ? 0 : SA_RESTART, 1);
}

__attribute__((visibility("default"))) __sighandler_t ssignal(int sig, __sighandler_t handler)
{
    return signal(sig, handler);
}

extern __sighandler_t bsd_signal(int sig, __sighandler_t handler); /* X/Open before 2008 only */

__attribute__((visibility("default"))) __sighandler_t bsd_signal(int sig, __sighandler_t handler)
{
    return signal(sig, handler);
}

/* System V semantics, what `signal` means in strict ISO C (<signal.h>
 * redirects it here): one delivery, then the default again; the signal is
 * not blocked in its handler; no system call restarted. */
__attribute__((visibility("default"))) __sighandler_t __sysv_signal(int sig, __sighandler_t handler)
{
    return set_handler(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}

__attribute__((visibility("default"))) __sighandler_t sysv_signal(int sig, __sighandler_t handler)
{
    return __sysv_signal(sig, handler);
}

/* SIG_HOLD blocks the signal and leaves its action; any other disposition
 * is installed (no flags, nothing masked) and unblocks it. SIG_HOLD comes
 * back when the signal was blocked. glibc checks no SIG_ERR here. */
__attribute__((visibility("default"))) __sighandler_t sigset(int sig, __sighandler_t disp)
{
    sigset_t set, oset;
    sigemptyset(&set);
    if (sigaddset(&set, sig) < 0)
        return SIG_ERR;
    struct sigaction act, old;
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &set, &oset) < 0)
            return SIG_ERR;
        if (sigismember(&oset, sig) == 1)
            return SIG_HOLD;
        if (sigaction(sig, NULL, &old) < 0)
            return SIG_ERR;
        return old.sa_handler;
    }
    memset(&act, 0, sizeof(act));
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    if (sigprocmask(SIG_UNBLOCK, &set, &oset) < 0)
        return SIG_ERR;
    return sigismember(&oset, sig) == 1 ? SIG_HOLD : old.sa_handler;
}

/* Whether signal() restarts system calls after sig, and SA_RESTART of its
 * action now (pfalloc's own handler included: it stays the default's). */
__attribute__((visibility("default"))) int siginterrupt(int sig, int interrupt)
{
    struct sigaction act;
    if (__sigaction(sig, NULL, &act) < 0)
        return -1;
    if (interrupt) {
        sigaddset(&interrupting, sig);
        act.sa_flags &= ~SA_RESTART;
    } else {
        sigdelset(&interrupting, sig);
        act.sa_flags |= SA_RESTART;
    }
    if (__sigaction(sig, &act, NULL) < 0)
        return -1;
    /* Where pfalloc's handler is, the default the program sees changes
     * alike, and stays so when the program sets the default again. */
    int i = term_index(sig);
    if (i >= 0 && (act.sa_flags & SA_SIGINFO) && act.sa_sigaction == on_term) {
        /* as glibc's siginterrupt sets it again */
        term_shown[i].sa_flags =
            (term_shown[i].sa_flags & ~SA_RESTART) | (act.sa_flags & SA_RESTART) | GLIBC_RESTORER_FLAG;
        term_shown[i].sa_restorer = glibc_restorer;
        term_action.sa_flags = (term_action.sa_flags & ~SA_RESTART) | (act.sa_flags & SA_RESTART);
    }
    return 0;
}

/* Whether signo's action is the default (with whatever flags: SA_SIGINFO
 * and a null handler is the default too); *now, as the kernel keeps it. */
static int plain_default(int signo, struct sigaction *now)
{
    return __sigaction(signo, NULL, now) == 0 && now->sa_handler == SIG_DFL;
}

/* pfalloc's handler on the terminating signals of term_mine whose action is
 * the default now (the program's own handler, or an ignored signal, stays
 * as it is). known: the actions as just read, one per signal of
 * term_signals (at start-up, where nothing can have changed them since),
 * or NULL to read them here. */
static void term_handlers_on(const struct sigaction *known)
{
    term_pid = getpid();
    for (size_t i = 0; i < TERM_SIGNALS; i++) {
        struct sigaction now, mine;
        if (known)
            now = known[i];
        if (sigismember(&term_mine, term_signals[i]) == 1 &&
            (known ? now.sa_handler == SIG_DFL : plain_default(term_signals[i], &now)) &&
            __sigaction(term_signals[i], &term_action, NULL) == 0) {
            term_shown[i] = now;
            if (!glibc_restorer && __sigaction(term_signals[i], NULL, &mine) == 0)
                glibc_restorer = mine.sa_restorer;
        }
    }
}

/* The program's default back where pfalloc's handler is, exactly as it
 * was shown: by the system call itself, since glibc adds its restorer. */
static void term_handlers_off(void)
{
    for (size_t i = 0; i < TERM_SIGNALS; i++) {
        struct sigaction now;
        if (__sigaction(term_signals[i], NULL, &now) != 0 || !(now.sa_flags & SA_SIGINFO) ||
            now.sa_sigaction != on_term)
            continue;
        struct {
            void (*handler)(int);
            unsigned long flags;
            void (*restorer)(void);
            uint64_t mask;
        } k = {term_shown[i].sa_handler, (unsigned long)term_shown[i].sa_flags, term_shown[i].sa_restorer, 0};
        memcpy(&k.mask, &term_shown[i].sa_mask, sizeof(k.mask));
        syscall(SYS_rt_sigaction, term_signals[i], &k, NULL, sizeof(k.mask));
    }
}

static void install_term(void)
{
    memset(&term_action, 0, sizeof(term_action));
    term_action.sa_sigaction = on_term;
    term_action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&term_action.sa_mask);
    for (size_t i = 0; i < TERM_SIGNALS; i++)
        sigaddset(&term_action.sa_mask, term_signals[i]);
    /* No periodic or asked-for report in the middle of the exit report. */
    sigaddset(&term_action.sa_mask, INTERVAL_SIGNAL);
    if (pf_config.signo)
        sigaddset(&term_action.sa_mask, pf_config.signo);
    /* pfalloc's, from now on, wherever the action is the default at the
     * start: one ignored or handled by a library whose constructor ran
     * first stays as it is. */
    struct sigaction now[TERM_SIGNALS] = {0};
    for (size_t i = 0; i < TERM_SIGNALS; i++)
        if (plain_default(term_signals[i], &now[i]))
            sigaddset(&term_mine, term_signals[i]);
    /* Not in the init of a PID namespace (a container's first process):
     * the kernel drops a signal sent to it whose action is the default, and
     * a handler would let it in (EINTR in the program's calls, a report
     * while it runs on, and none at its real exit). Its fork children,
     * which the kernel does not shield, put it on (fork_child). */
    term_at_pid1 = getpid() == 1;
    if (!term_at_pid1)
        term_handlers_on(now); /* read just above: not again */
}

/* glibc's exit() runs the exiting thread's thread_local destructors before
 * the atexit handlers; one registered for the main thread is how the exit
 * report learns that the exit has begun while fd 2 is still open. Weak: a
 * libc without it simply gives no copy. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) __attribute__((weak));
extern void *__dso_handle;

static void exit_begins(void *unused)
{
    (void)unused;
    pf_emit_exit_begins();
}

/* A thread of the parent may have been inside the leak walk when the
 * process forked; in the child nobody is. A process with one thread keeps
 * its state: only its own interrupted code can be in it, and it goes on.
 * (The report's own flag is reset by report.c, for the static library
 * too.) */
PF_FORK_CHILD static void fork_child(void)
{
    /* A fork child writes its own report. One that is the first process
     * of a PID namespace (unshare(CLONE_NEWPID), then fork) takes the
     * handlers off; a child of such a process puts them on. */
    term_pid = getpid();
    if (term_pid == 1 && !term_at_pid1) {
        term_at_pid1 = 1;
        term_handlers_off();
    } else if (term_pid != 1 && term_at_pid1) {
        term_at_pid1 = 0;
        term_handlers_on(NULL);
    }
    pf_sites_fork_child(); /* objects from now on are the child's own */
    if (pf_lock_fork_taken())
        pf_leaks_fork_child();
    pf_callsite_fork_child();
    /* Timers are not inherited: the interval timer was the parent's (and
     * its id, deleted at exit, may be a timer of the child's). A child
     * that runs on (a worker, a subshell) gets its own, as any process
     * started with PFALLOC_INTERVAL does. */
    if (__atomic_load_n(&interval_on, __ATOMIC_ACQUIRE) && __atomic_exchange_n(&interval_on, 0, __ATOMIC_ACQ_REL))
        start_interval(pf_config.interval_ms);
}

__attribute__((constructor(101))) static void preload_start(void)
{
    int saved = errno;
    pf_alloc_init();
    pf_os_atfork(NULL, NULL, fork_child);
    pf_report_init();
    /* Warnings only on the stderr the process started with: a library's
     * constructor, run before this one, may have opened a file of its own
     * that took a closed 2. */
    pf_config_load(pf_os_maybe_start_stderr(2) ? 2 : -1);
    pf_emit_init();
    if ((pf_config.report & PF_REPORT_EXIT) && __cxa_thread_atexit_impl) {
        /* glibc keeps the record in a calloc'ed block of four pointers and
         * stops the process when that calloc fails: register only once a
         * block of that size has been had (and freed, so the next calloc
         * of its class reuses it without a mapping). Out of memory this
         * early, the exit report simply makes no copy of fd 2. */
        void *probe = pf_calloc_in(1, 4 * sizeof(void *));
        if (probe) {
            pf_free(probe);
            __cxa_thread_atexit_impl(exit_begins, NULL, &__dso_handle);
        }
    }
    /* The leak status needs sites to tell the program's objects from the
     * runtime's, so it turns recording on too. */
    if (pf_config.sites || pf_config.leak_exit_code) {
        if (pf_sites_enable() != 0) {
            static const char msg[] = "pfalloc: PFALLOC_SITES: no memory for the call-site tables (no sites are recorded)\n";
            pf_emit_warn((const char *const[]){msg}, 1);
        }
        pf_callsite_init();
    }
    if (pf_config.check && pf_check_enable() != 0) {
        static const char msg[] = "pfalloc: PFALLOC_CHECK: no memory for the checking mode (it stays off)\n";
        pf_emit_warn((const char *const[]){msg}, 1);
    }
    if ((pf_config.report & PF_REPORT_EXIT) || pf_config.leak_exit_code)
        pf_leaks_reserve();
    if ((pf_config.report & PF_REPORT_SIGNAL) && pf_config.signo)
        install(pf_config.signo);
    if (pf_config.interval_ms)
        start_interval(pf_config.interval_ms);
    /* After the report signal: PFALLOC_SIGNAL=HUP keeps HUP a report signal. */
    if ((pf_config.report & PF_REPORT_EXIT) && pf_config.term_report)
        install_term();
    errno = saved;
}

static void final_report(void *arg)
{
    struct report_job *j = arg;
    /* An exit called from a handler of the program's that interrupted
     * pfalloc in this thread (an allocation, or a report signal's walk)
     * with a lock held: neither the check nor the walk can take it, as
     * for a terminating signal (term_report). */
    int with_leaks = !pf_lock_any_mine();
    if (with_leaks)
        pf_check_exit(); /* before the leak walk: the quarantine is emptied */
    int busy = exit_report(&j->leaks, with_leaks, j->scan ? j->scan : j->from, 1, j->regs, j->nregs);
    /* Said even without a report: a check that reads the exit status
     * alone must not take an exit left unchecked for one without leaks. */
    if ((busy || !with_leaks) && pf_config.leak_exit_code && !pf_sites_forked()) {
        const char *const line[] = {"pfalloc: PFALLOC_LEAK_EXIT_CODE: leaks not collected (",
                                    busy ? PF_LEAKS_BUSY : PF_LEAKS_INTERRUPTED,
                                    "): the exit status is the program's\n"};
        pf_emit_warn(line, sizeof(line) / sizeof(line[0]));
    }
    pf_emit_exit_done();
}

__attribute__((destructor(101))) static void preload_exit(void)
{
    uintptr_t from;
    PF_OS_PROGRAM_STACK(from);
    int saved = errno;
    if (__atomic_exchange_n(&interval_on, 0, __ATOMIC_ACQ_REL))
        timer_delete(interval_timer);
    if (__atomic_exchange_n(&exit_started, 1, __ATOMIC_ACQ_REL)) {
        errno = saved;
        return;
    }
    /* Nothing to report, collect or verify (PFALLOC_REPORT=off or a report
     * nobody reads, no leak status, no checking mode): no stack of
     * pfalloc's is mapped for it, which would be a mapping, an mprotect
     * and a page faulted in for every short process. */
    if (!exit_report_read() && !pf_config.leak_exit_code && !pf_check_on) {
        pf_emit_exit_done();
        errno = saved;
        return;
    }
    struct report_job j = {.from = from};
    /* The stack is read from the frame that called exit up: below it lie
     * the C library's and the loader's frames of the exit, laid over the
     * program's dead ones (main's locals, once main has returned), whose
     * stale pointers made leaks look reachable. That frame's callee-saved
     * registers, which those frames kept for it, are read instead. Only
     * when the frame is found on this stack, a little above this one, and
     * where there is a walk to make (nothing live: none, and no unwind
     * tables read by a short process). */
    static uintptr_t regs[PF_UNWIND_KEPT];
    uintptr_t sp = 0;
    if (pf_config.reach && pf_stats_live_objects() != 0 && pf_callsite_program_frame(&sp, regs) && sp > from &&
        sp - from <= ((uintptr_t)1 << 20)) {
        j.scan = sp;
        j.regs = regs;
        j.nregs = PF_UNWIND_KEPT;
    }
    pf_os_on_own_stack(final_report, &j, from);
    /* A process forked without exec is a part of its parent's program (a
     * subshell, a worker): its exit status is read by that program's own
     * logic, so the leak status is the image's first process's to give.
     * Its report still shows its own leaks apart from the inherited. */
    /* Only lost objects are the program's leaks: still reachable and
     * indirectly lost ones (freed with their lost owner) do not count. */
    if (pf_config.leak_exit_code && j.leaks.program_lost && !pf_sites_forked()) {
        fflush(NULL);
        _exit(pf_config.leak_exit_code);
    }
    errno = saved;
}
