/*
 * cancelled — a thread cancelled while pfalloc writes a report for it.
 *
 *   cancelled printer   the thread calls pf_print_families into a pipe that
 *                       nobody reads, until the pipe is full and the call
 *                       waits in write(2);
 *   cancelled signal    the thread takes SIGUSR1 reports until one waits in
 *                       write(2) the same way: the program must start with
 *                       stderr a pipe whose read end is its descriptor 3
 *                       (reports go only to the stderr a process started
 *                       with).
 *
 * In the first case main first calls pf_report, which must be skipped with
 * EAGAIN. main cancels the thread while it waits there, then reads the pipe empty
 * so the write can end, and joins the thread. Then it asks for the totals
 * (pf_print_totals on /dev/null) and a report (pf_report on stderr), both
 * of which must work, leaks one block of 4242 bytes and exits: the exit
 * report must be whole, with its leak section. Prints what it saw; exits 1
 * when a call failed or the thread was not cancelled.
 *
 * pfalloc's entry points are looked up at run time (the program is not
 * linked with pfalloc; under the preload the names resolve to it). Built
 * -O2 -g like the others.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int (*g_print_families)(int);
static int (*g_print_totals)(int);
static int (*g_report)(void);
static int pipe_w;
static atomic_long calls; /* printer calls begun */

static void *sym(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) {
        fprintf(stderr, "cancelled: no %s (run it under the preload)\n", name);
        exit(2);
    }
    return f;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *printer(void *arg)
{
    (void)arg;
    for (;;) {
        atomic_fetch_add(&calls, 1);
        g_print_families(pipe_w);
        pthread_testcancel();
    }
    return NULL;
}

/* Waits for the signals outside any cancellable call: a report that
 * interrupts one (nanosleep, say) runs with the cancellation type glibc
 * makes asynchronous there, and the thread then ends as the report does,
 * with a result glibc leaves NULL instead of PTHREAD_CANCELED. */
static void *signalled(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_testcancel();
        sched_yield();
    }
    return NULL;
}

static int pipe_fill(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

int main(int argc, char **argv)
{
    int by_signal = argc > 1 && strcmp(argv[1], "signal") == 0;
    if (argc > 1 && !by_signal && strcmp(argv[1], "printer") != 0) {
        fprintf(stderr, "usage: cancelled [printer|signal]\n");
        return 2;
    }
    g_print_families = (int (*)(int))sym("pf_print_families");
    g_print_totals = (int (*)(int))sym("pf_print_totals");
    g_report = (int (*)(void))sym("pf_report");

    int p[2] = {3, 2};
    if (!by_signal && pipe(p) != 0)
        return 2;
    if (by_signal && pipe_fill(3) < 0) {
        fprintf(stderr, "cancelled: descriptor 3 is not the read end of stderr's pipe\n");
        return 2;
    }
    pipe_w = p[1];
    fcntl(p[0], F_SETFL, O_NONBLOCK);

    pthread_t t;
    if (pthread_create(&t, NULL, by_signal ? signalled : printer, NULL) != 0)
        return 2;
    /* Until the pipe is full and stays so: the thread waits in write(2). */
    int last = -1, still = 0;
    for (int i = 0; i < 20000 && still < 50; i++) {
        if (by_signal)
            pthread_kill(t, SIGUSR1);
        sleep_ms(1);
        int n = pipe_fill(p[0]);
        still = n == last && n > 0 ? still + 1 : 0;
        last = n;
    }
    if (still < 50) {
        fprintf(stderr, "cancelled: the pipe never filled\n");
        return 2;
    }
    if (!by_signal) {
        /* The thread's report holds pfalloc's report buffer: this one is
         * skipped with a notice, and says so. */
        errno = 0;
        int rc = g_report();
        printf("pf_report while another waits: %d%s\n", rc,
               rc ? (errno == EAGAIN ? " (EAGAIN)" : " (error)") : "");
    }
    long before = atomic_load(&calls);
    pthread_cancel(t);
    sleep_ms(50);
    /* Read the pipe empty until the thread is gone. */
    char buf[4096];
    void *ret = NULL;
    int joined = 0;
    for (int i = 0; i < 10000 && !joined; i++) {
        while (read(p[0], buf, sizeof buf) > 0)
            ;
        joined = pthread_tryjoin_np(t, &ret) == 0;
        if (!joined)
            sleep_ms(1);
    }
    if (!joined) {
        fprintf(stderr, "cancelled: the thread never ended\n");
        return 1;
    }
    int ok = ret == PTHREAD_CANCELED;
    printf("thread %s after %s\n", ok ? "cancelled" : "not cancelled", by_signal ? "signal reports" : "printer calls");
    if (!ok)
        printf("thread returned %p\n", ret);
    if (!by_signal && atomic_load(&calls) != before) {
        printf("printer called again after the cancel\n");
        ok = 0;
    }

    int devnull = open("/dev/null", O_WRONLY);
    errno = 0;
    int rc = g_print_totals(devnull);
    printf("pf_print_totals: %d%s\n", rc, rc ? (errno == EAGAIN ? " (EAGAIN)" : " (error)") : "");
    ok &= rc == 0;
    errno = 0;
    rc = g_report();
    printf("pf_report: %d%s\n", rc, rc ? (errno == EAGAIN ? " (EAGAIN)" : " (error)") : "");
    ok &= rc == 0;
    close(devnull);

    static void *volatile leak;
    leak = malloc(4242);
    memset((void *)leak, 7, 4242);
    leak = NULL;
    fflush(stdout);
    return ok ? 0 : 1;
}
