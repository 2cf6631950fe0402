/*
 * blocked — a process that exits while its other threads are blocked in
 * system calls, as a server does whose main() returns while its workers
 * wait. Each worker allocates a context and loops on one blocking call,
 * counting in the context after each return, so the compiler keeps the
 * only pointer to it in a callee-saved register across the call (at -O2 it
 * does: the C library's wrappers do not save those registers on the stack).
 * A call that returns (a stop that read the thread's registers showing
 * through as EINTR) ends the process with status 3 at once, except for
 * pthread_cond_wait, which may wake spuriously and waits again.
 *
 * usage: blocked calls|vfork|running|starved|nodump|filtered
 *   calls   workers in read, poll, select, nanosleep, clock_nanosleep,
 *           sem_wait, a futex, pause, waitpid (for a child that outlives
 *           the process), a held mutex, pthread_cond_wait, epoll_wait, a
 *           read of a socket with a receive timeout, and a write of 1 MiB
 *           to a pipe nobody reads (its context a global also holds); a
 *           SIGCHLD handler that writes "SIGCHLD" if it ever runs (no child
 *           exits before the process does)
 *   vfork   the same, after a thread that blocks in vfork() while its child
 *           sleeps for 2 s (such a thread cannot be stopped meanwhile)
 *   running the same, and one more thread that computes, never blocking,
 *           its context only in a register
 *   starved the same as running, the computing thread at nice 19 (set by
 *           itself): run on one CPU beside busier processes, it waits long
 *           for the CPU, and so for its stop at the exit
 *   nodump  the same, after prctl(PR_SET_DUMPABLE, 0) (no registers can be
 *           read from outside)
 *   filtered the same, and the exit comes from another thread, which has a
 *           seccomp filter of its own that kills the process on a clone that
 *           starts no thread (see filtered_exit)
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "asleep.h"

enum {
    READ,
    POLL,
    SELECT,
    NANOSLEEP,
    CLOCK_NANOSLEEP,
    SEM_WAIT,
    FUTEX,
    PAUSE,
    WAITPID,
    MUTEX,
    COND,
    EPOLL,
    TIMED_RECV,
    LONG_WRITE,
    NCALLS
};

struct ctx {
    long call;
    long returns;
    char name[32];
};

static int fds[2], ep, fut, started[2], lifeline[2], sock[2], full[2];
static sem_t sem;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER, held = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile int cond_flag, fail_on_return = 1;
static struct ctx *volatile write_ctx;

static void returned(void)
{
    _exit(3);
}

/* The worker's loop: one blocking call of its kind after another. The
 * loop and the calls are in one function, so `c` stays in a register
 * across each call instead of being saved by a callee's prologue. */
__attribute__((noinline, noreturn)) static void block(struct ctx *c)
{
    for (;; c->returns++) {
        switch (c->call) {
        case READ: {
            char b;
            if (read(fds[0], &b, 1) != 0)
                returned();
            break;
        }
        case POLL: {
            struct pollfd p = {fds[0], POLLIN, 0};
            poll(&p, 1, -1);
            break;
        }
        case SELECT: {
            fd_set s;
            FD_ZERO(&s);
            FD_SET(fds[0], &s);
            select(fds[0] + 1, &s, NULL, NULL, NULL);
            break;
        }
        case NANOSLEEP: {
            struct timespec t = {3600, 0};
            nanosleep(&t, NULL);
            break;
        }
        case CLOCK_NANOSLEEP: {
            struct timespec t = {3600, 0};
            clock_nanosleep(CLOCK_MONOTONIC, 0, &t, NULL);
            break;
        }
        case SEM_WAIT:
            sem_wait(&sem);
            break;
        case FUTEX:
            syscall(SYS_futex, &fut, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
            break;
        case PAUSE:
            pause();
            break;
        case WAITPID: {
            int st;
            waitpid(-1, &st, 0); /* the children exit after the process */
            break;
        }
        case MUTEX:
            pthread_mutex_lock(&held);
            break;
        case COND:
            /* A condition variable may wake spuriously: waits again. */
            pthread_mutex_lock(&mu);
            while (!cond_flag)
                pthread_cond_wait(&cv, &mu);
            pthread_mutex_unlock(&mu);
            break;
        case EPOLL: {
            struct epoll_event e;
            epoll_wait(ep, &e, 1, -1);
            break;
        }
        case TIMED_RECV: {
            /* A socket with a receive timeout: a stop makes the call fail
             * with EINTR, where it restarts others. */
            char b;
            if (read(sock[0], &b, 1) < 0 && errno != EAGAIN)
                returned();
            break;
        }
        case LONG_WRITE: {
            /* 1 MiB into a pipe nobody reads: blocked with 64 KiB written,
             * which a stop would make it return. */
            static char big[1 << 20];
            if (write(full[1], big, sizeof big) != (ssize_t)sizeof big)
                returned();
            break;
        }
        }
        /* Read through a volatile, so the compiler keeps `c` live past
         * every call (it does not know that nothing returns). */
        if (fail_on_return)
            returned();
    }
}

__attribute__((noinline)) static struct ctx *new_ctx(long call)
{
    struct ctx *c = malloc(sizeof *c);
    if (!c)
        abort();
    memset(c, 0, sizeof *c);
    c->call = call;
    snprintf(c->name, sizeof c->name, "worker %ld", call);
    /* A thread in the middle of a long write is not stopped, so its
     * registers are not read: its context is kept in a global too. */
    if (call == LONG_WRITE)
        write_ctx = c;
    return c;
}

static void *worker(void *arg)
{
    long tid = asleep_tid();
    if (write(started[1], &tid, sizeof tid) != (ssize_t)sizeof tid)
        abort();
    /* Straight from the return value into block(), which keeps it in a
     * callee-saved register: no frame of the worker's holds it. */
    block(new_ctx((long)arg));
}

/* The "running" mode's thread: a loop of its own, no call, `c` in a
 * register all along. */
__attribute__((noinline, noreturn)) static void compute(struct ctx *c)
{
    for (;;) {
        c->returns++;
        __asm__ volatile("" ::: "memory");
    }
}

static void *runner(void *arg)
{
    /* Linux: the calling thread's own nice value. */
    if (arg && setpriority(PRIO_PROCESS, 0, 19) != 0)
        abort();
    struct ctx *c = malloc(sizeof *c);
    if (!c)
        abort();
    memset(c, 0, sizeof *c);
    /* Told once the context is made, so the exit comes after it. */
    long tid = asleep_tid();
    if (write(started[1], &tid, sizeof tid) != (ssize_t)sizeof tid)
        abort();
    compute(c);
}

static void *vforker(void *arg)
{
    (void)arg;
    long tid = asleep_tid();
    if (write(started[1], &tid, sizeof tid) != (ssize_t)sizeof tid)
        abort();
    pid_t pid = vfork();
    if (pid == 0) {
        /* Its own copies of the descriptors: the pipes the process's
         * output goes to close when the process exits, not 2 s later. */
        close(1);
        close(2);
        struct timespec t = {2, 0};
        nanosleep(&t, NULL);
        _exit(0);
    }
    return NULL;
}

/* The "filtered" mode's last thread: a seccomp filter on itself alone
 * (the process's first thread has none) that kills the process on a clone
 * that starts no thread, then exit(): where the exit report's helper were
 * started anyway, the process would die of SIGSYS. */
static void *filtered_exit(void *arg)
{
    (void)arg;
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(2);
    printf("blocked: %d workers\n", NCALLS);
    exit(0);
}

static void on_child(int sig)
{
    (void)sig;
    static const char msg[] = "SIGCHLD\n";
    if (write(1, msg, sizeof msg - 1) < 0)
        _exit(5);
}

/* Starts fn(arg) and returns its thread id once it has told it. */
static long start(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    long tid;
    if (pthread_create(&t, NULL, fn, arg) != 0 || read(started[0], &tid, sizeof tid) != (ssize_t)sizeof tid)
        abort();
    return tid;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "calls";
    if (strcmp(mode, "calls") != 0 && strcmp(mode, "vfork") != 0 && strcmp(mode, "nodump") != 0 &&
        strcmp(mode, "filtered") != 0 && strcmp(mode, "running") != 0 && strcmp(mode, "starved") != 0) {
        fprintf(stderr, "usage: blocked calls|vfork|running|starved|nodump|filtered\n");
        return 2;
    }
    if (strcmp(mode, "nodump") == 0 && prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) != 0)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, NULL);
    if (pipe(fds) != 0 || pipe(started) != 0 || pipe(full) != 0 || sem_init(&sem, 0, 0) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, sock) != 0)
        return 2;
    struct timeval hour = {3600, 0};
    if (setsockopt(sock[0], SOL_SOCKET, SO_RCVTIMEO, &hour, sizeof hour) != 0)
        return 2;
    ep = epoll_create1(0);
    struct epoll_event e = {EPOLLIN, {0}};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &e) != 0)
        return 2;
    pthread_mutex_lock(&held);
    /* A child for waitpid to wait for: it exits when the process has
     * (end of file on the lifeline), without a report of its own. */
    if (pipe(lifeline) != 0)
        return 2;
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        char c;
        close(lifeline[1]);
        close(1);
        close(2);
        while (read(lifeline[0], &c, 1) != 0) {
        }
        _exit(0);
    }
    close(lifeline[0]);
    if (strcmp(mode, "vfork") == 0)
        start(vforker, NULL);
    if (strcmp(mode, "running") == 0 || strcmp(mode, "starved") == 0)
        start(runner, strcmp(mode, "starved") == 0 ? (void *)1 : NULL);
    long tids[NCALLS];
    for (long i = 0; i < NCALLS; i++)
        tids[i] = start(worker, (void *)i);
    /* Every worker asleep in its call (the vfork parent waits otherwise). */
    for (long i = 0; i < NCALLS; i++)
        if (asleep_wait(tids[i], -1) != 0)
            return 2;
    if (strcmp(mode, "filtered") == 0) {
        pthread_t last;
        if (pthread_create(&last, NULL, filtered_exit, NULL) != 0)
            return 2;
        for (;;)
            pause();
    }
    printf("blocked: %d workers\n", NCALLS);
    return 0;
}
