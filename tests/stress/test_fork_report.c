/*
 * test_fork_report.c — linked statically (libpfalloc.a, no preload), a
 * process forks while another of its threads writes reports in a loop.
 * The child has no thread inside a report, so its own report must go out
 * at once, as it does under the preload: the report buffer's busy flag
 * must not come across the fork.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pfalloc.h"

static atomic_int stop;
static int devnull = -1;

static void *reporter(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        pf_print_totals(devnull);
    }
    return NULL;
}

Test(fork_report, child_reports_while_parent_thread_was_reporting)
{
    devnull = open("/dev/null", O_WRONLY);
    cr_assert(devnull >= 0);
    pthread_t t;
    cr_assert(pthread_create(&t, NULL, reporter, NULL) == 0);
    int bad = 0, forks = 200;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            alarm(30);
            /* Nobody else is in a report in the child: it must succeed. */
            _exit(pf_print_totals(devnull) == 0 ? 0 : (errno == EAGAIN ? 1 : 2));
        }
        int status;
        cr_assert(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bad++;
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    close(devnull);
    cr_assert(bad == 0, "%d of %d children could not write a report (busy flag inherited)", bad,
              forks);
}
