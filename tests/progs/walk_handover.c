/*
 * walk_handover — the exit takes the heap walk over from a signal report
 * that is only writing, and no other walk may start under it. Run with
 * PFALLOC_REACH_SIGNAL=1 (report signals walk the heap in their handler).
 * The program runs itself again as a child, with a pipe as its stderr
 * that nothing reads until it is full and:
 *   1. thread w1 takes a report signal: its walk ends, its report blocks
 *      writing into the full pipe;
 *   2. main calls exit(7): the exit report waits for that walk (2 s), sees
 *      it only writing, and makes its own walk of the heap (many objects,
 *      so that it takes a while);
 *   3. once main has run for a while since (its walk), the child tells
 *      the parent to drain the pipe (to stdout, less the filler), so w1's
 *      report ends, and sends report signals to thread w2 every
 *      millisecond: none of their handlers may begin a walk of its own
 *      under the exit's.
 * The parent exits with the child's status, or 3 after "killed by signal
 * N" when a signal ended it.
 * usage: walk_handover [objects]
 * stdout: "walk_handover: N objects, exiting", then the reports.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heaplist.h"
#include "runtime.h"

static atomic_int w1, w2, main_tid, exiting;
static int go = -1; /* the child: tells the parent to drain */

static void sleep_us(long us)
{
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

static void die(const char *what)
{
    dprintf(1, "walk_handover: %s\n", what);
    _exit(2);
}

static long read_proc(int tid, const char *what, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/%s", tid, what);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return n;
}

static void *walker(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    atomic_store((atomic_int *)arg, (int)syscall(SYS_gettid));
    for (;;)
        pause();
    return NULL;
}

/* The parent: runs the child with stderr on a pipe, drains it to stdout,
 * less the filler, once told (or once the child has gone), and exits as
 * the child did. */
static int parent(char **argv)
{
    int e[2], c[2];
    if (pipe(e) != 0 || pipe(c) != 0)
        die("no pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("no fork");
    if (pid == 0) {
        char fd[16];
        if (dup2(e[1], 2) != 2)
            _exit(126);
        snprintf(fd, sizeof fd, "%d", c[1]);
        setenv("WALK_HANDOVER_GO", fd, 1);
        close(e[0]);
        close(e[1]);
        close(c[0]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(e[1]);
    close(c[1]);
    char b, buf[65536], out[65536];
    (void)!read(c[0], &b, 1);
    ssize_t n;
    while ((n = read(e[0], buf, sizeof buf)) > 0) {
        size_t k = 0;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != '\1')
                out[k++] = buf[i];
        if (fwrite(out, 1, k, stdout) != k)
            die("no stdout");
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        die("no child");
    if (WIFSIGNALED(st)) {
        printf("walk_handover: killed by signal %d\n", WTERMSIG(st));
        return 3;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}

static void *helper(void *arg)
{
    (void)arg;
    int tid = atomic_load(&main_tid);
    long long from = ran_ns(tid);
    while (!atomic_load(&exiting)) {
        from = ran_ns(tid);
        sleep_us(1000);
    }
    /* The exit's wait sleeps a millisecond at a time, 2 000 times, which
     * takes it a few tens of milliseconds to run; its walk of the heap
     * takes a second or more: 150 ms run since the exit began is the walk
     * (on a loaded machine too). Up to 60 s. */
    for (int i = 0; ran_ns(tid) - from < 150000000; i++) {
        if (i == 60000)
            die("the exit's walk was never seen");
        sleep_us(1000);
    }
    if (write(go, "d", 1) != 1)
        die("no parent");
    for (int i = 0; i < 3000; i++) {
        syscall(SYS_tgkill, getpid(), atomic_load(&w2), SIGUSR1);
        sleep_us(1000);
    }
    return NULL;
}

/* Until thread tid is in write(2) (up to 30 s). */
static void wait_in_write(int tid)
{
    char buf[64];
    for (int i = 0; i < 30000; i++) {
        if (read_proc(tid, "syscall", buf, sizeof buf) > 0 && strncmp(buf, "1 ", 2) == 0)
            return;
        sleep_us(1000);
    }
    die("the signal report never blocked in write");
}

int main(int argc, char **argv)
{
    const char *again = getenv("WALK_HANDOVER_GO");
    if (!again)
        return parent(argv);
    go = atoi(again);
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    atomic_store(&main_tid, (int)syscall(SYS_gettid));
    if (ran_ns(atomic_load(&main_tid)) < 0)
        die("no schedstat");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the walkers take it */
    if (heaplist_build(n, 0, 'w') != 0)
        die("out of memory");
    pthread_t a, b, h;
    if (pthread_create(&a, NULL, walker, &w1) != 0 || pthread_create(&b, NULL, walker, &w2) != 0 ||
        pthread_create(&h, NULL, helper, NULL) != 0)
        die("no thread");
    while (!atomic_load(&w1) || !atomic_load(&w2))
        sleep_us(1000);
    int fl = fcntl(2, F_GETFL);
    fcntl(2, F_SETFL, fl | O_NONBLOCK);
    char x[4096];
    memset(x, 1, sizeof x);
    while (write(2, x, sizeof x) > 0) {
    }
    while (write(2, x, 1) > 0) {
    }
    fcntl(2, F_SETFL, fl);
    syscall(SYS_tgkill, getpid(), atomic_load(&w1), SIGUSR1);
    wait_in_write(atomic_load(&w1));
    printf("walk_handover: %ld objects, exiting\n", n);
    fflush(stdout);
    atomic_store(&exiting, 1);
    exit(7);
}
