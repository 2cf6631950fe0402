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
 * usage: blocked calls|vfork|nodump
 *   calls   workers in read, poll, select, nanosleep, clock_nanosleep,
 *           sem_wait, a futex, pause, waitpid (for a child that outlives
 *           the process), a held mutex and pthread_cond_wait, and one in
 *           epoll_wait whose context a global also holds; a SIGCHLD
 *           handler that writes "SIGCHLD" if it ever runs (no child exits
 *           before the process does)
 *   vfork   the same, after a thread that blocks in vfork() while its child
 *           sleeps for 2 s (such a thread cannot be stopped meanwhile)
 *   nodump  the same, after prctl(PR_SET_DUMPABLE, 0) (no registers can be
 *           read from outside)
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { READ, POLL, SELECT, NANOSLEEP, CLOCK_NANOSLEEP, SEM_WAIT, FUTEX, PAUSE, WAITPID, MUTEX, COND, EPOLL, NCALLS };

struct ctx {
    long call;
    long returns;
    char name[32];
};

static int fds[2], ep, fut, started[2], lifeline[2];
static sem_t sem;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER, held = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile int cond_flag, fail_on_return = 1;
static struct ctx *volatile epoll_ctx;

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
    if (call == EPOLL)
        epoll_ctx = c;
    return c;
}

static void *worker(void *arg)
{
    char one = 1;
    if (write(started[1], &one, 1) != 1)
        abort();
    /* Straight from the return value into block(), which keeps it in a
     * callee-saved register: no frame of the worker's holds it. */
    block(new_ctx((long)arg));
}

static void *vforker(void *arg)
{
    (void)arg;
    char one = 1;
    if (write(started[1], &one, 1) != 1)
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

static void on_child(int sig)
{
    (void)sig;
    static const char msg[] = "SIGCHLD\n";
    if (write(1, msg, sizeof msg - 1) < 0)
        _exit(5);
}

static void start(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    char c;
    if (pthread_create(&t, NULL, fn, arg) != 0 || read(started[0], &c, 1) != 1)
        abort();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "calls";
    if (strcmp(mode, "calls") != 0 && strcmp(mode, "vfork") != 0 && strcmp(mode, "nodump") != 0) {
        fprintf(stderr, "usage: blocked calls|vfork|nodump\n");
        return 2;
    }
    if (strcmp(mode, "nodump") == 0 && prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) != 0)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, NULL);
    if (pipe(fds) != 0 || pipe(started) != 0 || sem_init(&sem, 0, 0) != 0)
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
    for (long i = 0; i < NCALLS; i++)
        start(worker, (void *)i);
    /* Every worker is in its call by now, or about to be. */
    struct timespec t = {0, 50 * 1000 * 1000};
    nanosleep(&t, NULL);
    printf("blocked: %d workers\n", NCALLS);
    return 0;
}
