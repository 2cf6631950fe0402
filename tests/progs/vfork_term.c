/*
 * vfork_term — a vfork child that, as CPython's subprocess does before
 * exec, resets every terminating signal whose action is neither the
 * default nor ignored, then gets SIGTERM before its exec: it dies of it.
 * The child shares the parent's memory until then. The parent prints its
 * pid and how the child ended, keeps a block and exits 0: its exit report
 * is its own, written at its exit.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept;

int main(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    kept = malloc(100);
    pid_t pid = vfork();
    if (pid == 0) {
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
            struct sigaction old;
            if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
                struct sigaction dfl;
                memset(&dfl, 0, sizeof dfl);
                dfl.sa_handler = SIG_DFL;
                sigaction(sigs[i], &dfl, NULL);
            }
        }
        kill(getpid(), SIGTERM);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return 2;
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 2;
    printf("vfork_term: parent %ld, child %s %d\n", (long)getpid(),
           WIFSIGNALED(status) ? "died of signal" : "exited", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return 0;
}
