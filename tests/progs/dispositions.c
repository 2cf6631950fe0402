/*
 * dispositions — every libc way of reading or setting a signal's action
 * (sigaction, signal, ssignal, bsd_signal, sysv_signal, __sysv_signal,
 * sigset, siginterrupt) tells the same story, plain and preloaded: what
 * each returns for SIGTERM, SIGINT and SIGHUP, which the program has not
 * touched, and the action each installs, read back with sigaction and
 * delivered. Each call is tried in a child of its own, so each finds the
 * signals as the process started with them. One line per fact on stdout.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Old calls, old programs: these are what they use. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* Declared only for X/Open before 2008; still in every glibc. */
extern __sighandler_t bsd_signal(int sig, __sighandler_t handler);

static volatile sig_atomic_t caught;

static void on(int sig)
{
    caught = sig;
}

static const char *name(__sighandler_t h)
{
    if (h == SIG_DFL)
        return "SIG_DFL";
    if (h == SIG_IGN)
        return "SIG_IGN";
    if (h == SIG_ERR)
        return "SIG_ERR";
    if (h == SIG_HOLD)
        return "SIG_HOLD";
    return h == on ? "the program's handler" : "a handler the program never installed";
}

static void said(const char *call, int sig, __sighandler_t h)
{
    int e = errno;
    printf("%s(%d): %s", call, sig, name(h));
    if (h == SIG_ERR)
        printf(" (%s)", strerror(e));
    printf("\n");
}

/* The action in force, read with sigaction; for a handler of the
 * program's, its flags and mask too. */
static void action(int sig)
{
    struct sigaction a;
    if (sigaction(sig, NULL, &a) != 0) {
        printf("  sigaction(%d): %s\n", sig, strerror(errno));
        return;
    }
    printf("  action of %d: %s", sig, name(a.sa_handler));
    if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) {
        printf(", flags %#x, mask", (unsigned)a.sa_flags);
        for (int s = 1; s < NSIG; s++)
            if (sigismember(&a.sa_mask, s) == 1)
                printf(" %d", s);
    }
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("%s\n", sigismember(&now, sig) == 1 ? ", blocked" : "");
}

/* The signal sent to the process, with what became of it. */
static void deliver(int sig)
{
    caught = 0;
    raise(sig);
    printf("  raised %d: %s\n", sig, caught == sig ? "caught" : "not caught");
    action(sig);
}

typedef __sighandler_t (*setter)(int, __sighandler_t);

static __sighandler_t hold(int sig, __sighandler_t h)
{
    (void)h;
    return sigset(sig, SIG_HOLD);
}

static const struct {
    const char *call;
    setter set;
} setters[] = {
    {"signal", signal},
    {"ssignal", ssignal},
    {"bsd_signal", bsd_signal},
    {"sysv_signal", sysv_signal},
    {"__sysv_signal", __sysv_signal},
    {"sigset", sigset},
    {"sigset SIG_HOLD", hold},
};

static const int term[] = {SIGTERM, SIGINT, SIGHUP};

static void in_child(void (*fn)(size_t), size_t i)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn(i);
        exit(0);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "dispositions: child %zu failed\n", i);
        exit(1);
    }
}

static void one_setter(size_t i)
{
    for (size_t k = 0; k < sizeof(term) / sizeof(term[0]); k++)
        said(setters[i].call, term[k], setters[i].set(term[k], SIG_IGN));
    said(setters[i].call, SIGTERM, setters[i].set(SIGTERM, on));
    action(SIGTERM);
    if (setters[i].set != hold)
        deliver(SIGTERM);
    /* Bad requests fail as glibc's own calls fail. */
    said(setters[i].call, 0, setters[i].set(0, on));
    said(setters[i].call, SIGKILL, setters[i].set(SIGKILL, on));
    said(setters[i].call, NSIG, setters[i].set(NSIG, on));
    said(setters[i].call, SIGRTMIN - 1, setters[i].set(SIGRTMIN - 1, on));
    said(setters[i].call, SIGUSR2, setters[i].set(SIGUSR2, SIG_ERR));
}

static void interrupting(size_t i)
{
    (void)i;
    /* siginterrupt's choice is what signal() installs later. */
    printf("siginterrupt(%d, 1): %d\n", SIGUSR2, siginterrupt(SIGUSR2, 1));
    said("signal", SIGUSR2, signal(SIGUSR2, on));
    action(SIGUSR2);
    printf("siginterrupt(%d, 0): %d\n", SIGUSR2, siginterrupt(SIGUSR2, 0));
    said("signal", SIGUSR2, signal(SIGUSR2, on));
    action(SIGUSR2);
    printf("siginterrupt(%d, 1): %d\n", SIGTERM, siginterrupt(SIGTERM, 1));
    said("signal", SIGTERM, signal(SIGTERM, on));
    action(SIGTERM);
    int rc = siginterrupt(NSIG, 1);
    printf("siginterrupt(%d, 1): %d (%s)\n", NSIG, rc, strerror(errno));
}

static void read_only(size_t i)
{
    (void)i;
    for (size_t k = 0; k < sizeof(term) / sizeof(term[0]); k++)
        action(term[k]);
}

int main(void)
{
    in_child(read_only, 0);
    for (size_t i = 0; i < sizeof(setters) / sizeof(setters[0]); i++)
        in_child(one_setter, i);
    in_child(interrupting, 0);
    return 0;
}
