/*
 * pid1 — run as the first process of a new PID namespace (unshare -fp):
 * a child sends it SIGTERM, SIGINT and SIGHUP after 300 ms while it waits
 * in select() for 1 s. The kernel drops those signals, whose action is the
 * default, so select times out: prints "pid1: select 0" (or the error that
 * interrupted it), and keeps a block for its exit report. The child, a
 * process like any other, then keeps a block and dies of a SIGTERM it
 * sends itself, with its own exit report; pid1 prints how it ended.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept;

int main(void)
{
    kept = malloc(100);
    if (getpid() != 1) {
        printf("pid1: not the first process (pid %ld)\n", (long)getpid());
        return 4;
    }
    pid_t child = fork();
    if (child == 0) {
        usleep(300000);
        kill(1, SIGTERM);
        kill(1, SIGINT);
        kill(1, SIGHUP);
        kept = malloc(200);
        kill(getpid(), SIGTERM);
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
