/*
 * pid1 — run as the first process of a new PID namespace (unshare -fp):
 * a child sends it SIGTERM and SIGINT after 300 ms while it waits in
 * select() for 1 s. The kernel drops those signals, whose action is the
 * default, so select times out: prints "pid1: select 0" (or the error that
 * interrupted it), and keeps a block for its exit report. pid1 has its own
 * handler on SIGHUP when it forks; the child, a process like any other,
 * sets SIGHUP's default action again, keeps a block and dies of a SIGHUP
 * it sends itself, with its own exit report; pid1 prints how it ended.
 *
 * pid1 unshare: makes the namespace itself (unshare(CLONE_NEWPID), which
 * needs privileges: "pid1: no namespace" and status 4 without them) and
 * forks its first process, which does the above without an exec; the
 * parent exits with that process's status.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept;

static void on_hup(int sig)
{
    (void)sig;
}

static int first(void)
{
    kept = malloc(100);
    struct sigaction intr;
    if (sigaction(SIGINT, NULL, &intr) == 0)
        printf("pid1: SIGINT flags %#x, restorer %s\n", (unsigned)intr.sa_flags, intr.sa_restorer ? "set" : "none");
    if (getpid() != 1) {
        printf("pid1: not the first process (pid %ld)\n", (long)getpid());
        return 4;
    }
    signal(SIGHUP, on_hup);
    pid_t child = fork();
    if (child == 0) {
        usleep(300000);
        kill(1, SIGTERM);
        kill(1, SIGINT);
        signal(SIGHUP, SIG_DFL);
        kept = malloc(200);
        kill(getpid(), SIGHUP);
        _exit(0);
    }
    if (child < 0)
        return 2;
    struct timeval tv = {1, 0};
    int r = select(0, NULL, NULL, NULL, &tv);
    if (r < 0)
        printf("pid1: select %s\n", strerror(errno));
    else
        printf("pid1: select %d\n", r);
    int status;
    if (waitpid(child, &status, 0) == child && WIFSIGNALED(status))
        printf("pid1: child died of signal %d\n", WTERMSIG(status));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "unshare") == 0) {
        fflush(stdout);
        if (unshare(CLONE_NEWPID) != 0) {
            printf("pid1: no namespace\n");
            return 4;
        }
        pid_t pid = fork();
        if (pid == 0)
            exit(first());
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
            return 2;
        return WEXITSTATUS(status);
    }
    return first();
}
