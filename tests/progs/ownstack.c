/*
 * ownstack — a report that runs on pfalloc's own stack, interrupted there
 * by a handler of the program's. Thread A keeps a block of 1000 bytes only
 * in a local of its own and raises SIGUSR1; its report blocks writing to
 * stderr, a pipe that nobody reads, filled beforehand (the program starts
 * itself again with it as its stderr: reports go to the starting one).
 * Main waits until A is in that write, makes the pipe non-blocking (so
 * every later write gives up after pfalloc's bounded wait) and sends A
 * SIGALRM, whose handler then runs on the report's stack:
 *
 *   ownstack other     the handler waits for good; main calls exit(0):
 *                      the exit walk finds A on pfalloc's stack
 *   ownstack nested    the handler calls exit(0) itself
 *   ownstack fork      the handler (on a sigaltstack) forks; the child
 *                      raises pfalloc's interval signal (a report nested
 *                      in the interrupted one; run with PFALLOC_INTERVAL
 *                      set) and returns into the interrupted report; main
 *                      prints "child: exit N" or "child: signal N"
 *   ownstack bigframe  the handler uses 160 KB of stack, then returns;
 *                      main prints "bigframe: handler ran"
 *   ownstack running   the handler keeps a block of 4242 bytes only in a
 *                      local of its own (on pfalloc's stack) and spins;
 *                      main calls exit(0): the exit walk, which cannot
 *                      read a running thread's stack pointer, must scan
 *                      the stack the handler runs on
 *   ownstack abandon   five times a new thread A's handler leaves its
 *                      report for good (pthread_exit; the pipe is made
 *                      non-blocking only after); then a thread on a
 *                      stack of the smallest size raises SIGUSR1: prints
 *                      "abandon: N of M bytes, K without the signal"
 *   ownstack trace     main's report comes first (A's stack is mapped
 *                      below pfalloc's); the handler raises SIGTRAP, for
 *                      a debugger's backtrace from there (which must go
 *                      on through pfalloc's frames to A's `reporter`),
 *                      then returns
 *
 * Run with PFALLOC_LEAK_EXIT_CODE=9: A's block is still reachable (from
 * A's stack), so the exit status is 0 unless the walk missed A's stack.
 *
 *   ownstack storm     4 threads on stacks of the smallest size the C
 *                      library allows raise SIGUSR1 together, 200 times;
 *                      prints "storm: N of M bytes, K without the signal"
 *                      (the most any of them used, and a thread's use
 *                      without any signal)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "painted.h"

static const char *mode;
static volatile long tid_a;
static volatile pid_t parent, child;
static volatile int big_done;
static sem_t in_handler;

static void die(const char *what)
{
    dprintf(1, "ownstack: %s\n", what);
    _exit(2);
}

/* Runs the program again with a pipe nobody reads as its stderr (its read
 * end stays open in it). */
static void again_with_stderr_pipe(char **argv)
{
    int p[2];
    if (pipe(p) != 0 || dup2(p[1], 2) != 2)
        die("no pipe");
    close(p[1]);
    setenv("OWNSTACK_AGAIN", "1", 1);
    execv("/proc/self/exe", argv);
    die("no exec");
}

static void stderr_full(void)
{
    fcntl(2, F_SETFL, fcntl(2, F_GETFL) | O_NONBLOCK);
    char buf[4096];
    memset(buf, '.', sizeof buf);
    while (write(2, buf, sizeof buf) > 0) {
    }
    while (write(2, buf, 1) > 0) {
    }
    fcntl(2, F_SETFL, fcntl(2, F_GETFL) & ~O_NONBLOCK);
}

/* Until thread tid is in write(2) (up to 20 s). */
static void wait_in_write(long tid)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    for (int i = 0; i < 20000; i++) {
        int fd = open(path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            buf[n] = 0;
            if (strncmp(buf, "1 ", 2) == 0)
                return;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    die("the report never blocked in write");
}

static __attribute__((noinline)) void big_frame(int sig)
{
    volatile char big[160 * 1024];
    memset((char *)big, 1, sizeof big);
    big_done = big[sig];
}

static void on_alarm(int sig)
{
    (void)sig;
    if (!strcmp(mode, "other")) {
        sem_post(&in_handler);
        for (;;)
            pause();
    } else if (!strcmp(mode, "nested")) {
        exit(0);
    } else if (!strcmp(mode, "fork")) {
        pid_t p = fork();
        if (p == 0)
            raise(SIGRTMAX - 3);
        else
            child = p;
    } else if (!strcmp(mode, "running")) {
        char *volatile kept = malloc(4242);
        if (!kept)
            _exit(2);
        sem_post(&in_handler);
        for (;;)
            kept[sig]++;
    } else if (!strcmp(mode, "abandon")) {
        pthread_exit(NULL);
    } else if (!strcmp(mode, "trace")) {
        raise(SIGTRAP);
    } else {
        big_frame(sig);
    }
}

/* SIGUSR1 with the registers a report's frames might spill zeroed: the
 * block's address is then in A's own stack only (this frame saves them). */
static __attribute__((noinline)) void raise_clean(void)
{
    __asm__ volatile("xor %%ebx, %%ebx\n\txor %%r12d, %%r12d\n\txor %%r13d, %%r13d\n\t"
                     "xor %%r14d, %%r14d\n\txor %%r15d, %%r15d\n\txor %%ebp, %%ebp"
                     :
                     :
                     : "rbx", "rbp", "r12", "r13", "r14", "r15");
    raise(SIGUSR1);
}

static void *reporter(void *arg)
{
    (void)arg;
    /* On a sigaltstack: the handler does not run on pfalloc's stack then,
     * though it interrupts a report there. */
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    if (!strcmp(mode, "fork") && sigaltstack(&ss, NULL) != 0)
        die("no sigaltstack");
    char *volatile mine = malloc(1000);
    if (!mine)
        die("no memory");
    memset(mine, 7, 1000);
    tid_a = syscall(SYS_gettid);
    raise_clean();
    if (getpid() != parent) { /* the fork's child, out of the report it resumed */
        dprintf(1, "in child: the report resumed and returned\n");
        _exit(0);
    }
    int ok = mine[999] == 7;
    free(mine);
    return ok ? NULL : arg;
}

static pthread_barrier_t bar;

static void *raiser(void *arg)
{
    for (int i = 0; arg && i < 200; i++) {
        pthread_barrier_wait(&bar);
        raise(SIGUSR1);
    }
    return NULL;
}

/* A thread on a stack of the smallest size the C library allows, painted,
 * and how much of it a run used. */
struct small {
    char *stk;
    size_t size;
    pthread_t t;
};

static void small_start(struct small *m, void *(*fn)(void *), void *arg)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    long min = sysconf(_SC_THREAD_STACK_MIN);
    m->size = min > 16384 ? (size_t)min : 16384;
    m->size = (m->size + ps - 1) & ~(ps - 1);
    char *p = mmap(NULL, m->size + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p, ps, PROT_NONE) != 0)
        die("no stack");
    m->stk = p + ps;
    if (painted_start(&m->t, m->stk, m->size, fn, arg) != 0)
        die("no thread");
}

static size_t small_used(struct small *m)
{
    pthread_join(m->t, NULL);
    return painted_used(m->stk, m->size);
}

static void storm(void)
{
    enum { N = 4 };
    struct small t[N + 1];
    pthread_barrier_init(&bar, NULL, N);
    /* Thread N raises nothing: what a thread uses without the signal. */
    for (int i = 0; i <= N; i++)
        small_start(&t[i], raiser, i < N ? (void *)1 : NULL);
    size_t most = 0;
    for (int i = 0; i < N; i++) {
        size_t used = small_used(&t[i]);
        most = used > most ? used : most;
    }
    printf("storm: %zu of %zu bytes, %zu without the signal\n", most, t[0].size, small_used(&t[N]));
}

static void *raise_once(void *arg)
{
    if (arg)
        raise(SIGUSR1);
    return NULL;
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "storm")) {
        storm();
        return 0;
    }
    if (strcmp(mode, "other") && strcmp(mode, "nested") && strcmp(mode, "fork") && strcmp(mode, "bigframe") &&
        strcmp(mode, "trace") && strcmp(mode, "running") && strcmp(mode, "abandon"))
        die("usage: ownstack other|nested|fork|bigframe|running|abandon|trace|storm");
    if (!getenv("OWNSTACK_AGAIN"))
        again_with_stderr_pipe(argv);
    parent = getpid();
    sem_init(&in_handler, 0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART | (!strcmp(mode, "fork") ? SA_ONSTACK : 0);
    sigaction(SIGALRM, &sa, NULL);
    /* Only A takes SIGALRM. */
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    setvbuf(stdout, NULL, _IONBF, 0);
    /* A first report, written whole into the empty pipe, maps pfalloc's
     * stack: A's stack is mapped after it, below it (a debugger that
     * follows a frame to a lower stack takes it for a corrupt one). */
    if (!strcmp(mode, "trace"))
        raise(SIGUSR1);
    stderr_full();
    pthread_t a;
    sigset_t none;
    sigemptyset(&none);
    for (int round = 0; round < (!strcmp(mode, "abandon") ? 5 : 1); round++) {
        tid_a = 0;
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (pthread_create(&a, NULL, reporter, NULL) != 0)
            die("no thread");
        pthread_sigmask(SIG_BLOCK, &alrm, NULL);
        while (!tid_a)
            sched_yield();
        wait_in_write(tid_a);
        if (strcmp(mode, "abandon"))
            fcntl(2, F_SETFL, fcntl(2, F_GETFL) | O_NONBLOCK);
        pthread_kill(a, SIGALRM);
        if (!strcmp(mode, "abandon"))
            pthread_join(a, NULL);
    }
    if (!strcmp(mode, "abandon")) {
        fcntl(2, F_SETFL, fcntl(2, F_GETFL) | O_NONBLOCK);
        struct small t;
        small_start(&t, raise_once, (void *)1);
        size_t used = small_used(&t);
        small_start(&t, raise_once, NULL);
        printf("abandon: %zu of %zu bytes, %zu without the signal\n", used, t.size, small_used(&t));
        return 0;
    }
    if (!strcmp(mode, "other") || !strcmp(mode, "running")) {
        while (sem_wait(&in_handler) != 0 && errno == EINTR) {
        }
        exit(0);
    }
    if (!strcmp(mode, "nested")) {
        for (;;)
            pause();
    }
    pthread_join(a, NULL);
    if (!strcmp(mode, "trace"))
        return 0;
    if (!strcmp(mode, "bigframe")) {
        printf("bigframe: handler %s\n", big_done ? "ran" : "did not run");
        return 0;
    }
    if (!child)
        die("no child");
    int st;
    if (waitpid(child, &st, 0) != child)
        die("no status");
    printf("child: %s %d\n", WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return 0;
}
