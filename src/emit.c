/*
 * emit.c — opening the report destination and writing a report to it.
 * Only async-signal-safe calls: getpid, getpgrp, open (O_NOFOLLOW: a symlink
 * planted at the report path is refused, not followed), fstat, fcntl,
 * tcgetpgrp, write, close, pthread_sigmask, sigpending, sigtimedwait (zero
 * timeout).
 */
#include "emit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fmt.h"
#include "report.h"
#include "sites.h"

static int warned;

static int emit(const char *reason, pf_report_extra_fn extra, int wait);

/* The stderr the process started with, by device and inode. Reports go to
 * descriptor 2 only while it is still that file: a program started with 2
 * closed, or one that closed it and opened a file of its own that took the
 * number, never gets our text in its file. No copy of it is kept during the
 * program's life (the descriptor table is the program's own); the exit path
 * takes one (exit_copy) before the program's atexit handlers run, since
 * programs built on gnulib's closeout (sort, ls, ...) close fd 2 in one. */
static int err_open;  /* 1: fd 2 was open at start */
static dev_t err_dev;
static ino_t err_ino;
static int err_tty;    /* 1: it was a character device (a terminal, perhaps) */
static dev_t err_rdev; /* which one */
static int exit_copy = -1; /* fd 2's copy for the exit report, or -1 */

void pf_emit_init(void)
{
    /* What fd 2 was before any constructor ran (one of a library linked by
     * the program runs before ours, and may open a file that takes a
     * closed 2), else what it is now. */
    struct stat st;
    int at_start = pf_os_start_stderr(&st);
    if (err_open || at_start == 0 || (at_start < 0 && fstat(2, &st) != 0))
        return;
    err_dev = st.st_dev;
    err_ino = st.st_ino;
    err_tty = S_ISCHR(st.st_mode);
    err_rdev = st.st_rdev;
    err_open = 1;
}

static int is_start_stderr(int fd)
{
    struct stat st;
    return err_open && fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == err_dev && st.st_ino == err_ino;
}

void pf_emit_exit_begins(void)
{
    if (exit_copy < 0 && is_start_stderr(2))
        exit_copy = fcntl(2, F_DUPFD_CLOEXEC, 3);
}

void pf_emit_exit_done(void)
{
    if (exit_copy >= 0) {
        close(exit_copy);
        exit_copy = -1;
    }
}

/* The descriptor that is the starting stderr, or -1 when there is none. */
static int stderr_fd(void)
{
    if (is_start_stderr(exit_copy))
        return exit_copy;
    return is_start_stderr(2) ? 2 : -1;
}

int pf_emit_nowhere(void)
{
    if (pf_config.out[0])
        return 0;
    if (!err_open || (err_tty && major(err_rdev) == 1 && minor(err_rdev) == 3))
        return 1; /* closed at the start, or /dev/null (character device 1, 3) */
    return !err_tty && stderr_fd() < 0;
}

/* The terminal the starting stderr was, opened again by its name, for the
 * exit report of a program that closed descriptor 2 during its life (tar,
 * xz and mawk close it before they exit, and nothing else reaches that
 * terminal then). Only a terminal whose foreground process group is the
 * process's own: a daemon that left its terminal, or a job in the
 * background, never writes to it. The name comes from the device number:
 * pseudo-terminals (/dev/pts/N) and virtual consoles (/dev/ttyN). -1 when
 * there is none. */
static int reopen_tty(void)
{
    if (!err_open || !err_tty)
        return -1;
    unsigned maj = major(err_rdev), min = minor(err_rdev);
    char path[32];
    struct pf_fmt f;
    pf_fmt_init(&f, path, sizeof(path), -1);
    if (maj >= 136 && maj <= 143) {
        pf_fmt_str(&f, "/dev/pts/");
        pf_fmt_u64(&f, (uint64_t)(maj - 136) * 256 + min);
    } else if (maj == 4 && min < 64) {
        pf_fmt_str(&f, "/dev/tty");
        pf_fmt_u64(&f, min);
    } else {
        return -1;
    }
    pf_fmt_cstr(&f);
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    pid_t fg = tcgetpgrp(fd);
    if (!is_start_stderr(fd) || fg < 0 || fg != getpgrp()) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One line on the starting stderr (when there is one), made of `parts`;
 * part `name` (when not -1) is a path, written as a name (pf_fmt_name: a
 * control character in it does not split the line). */
static void warn_named(const char *const *parts, size_t nparts, size_t name)
{
    char msg[sizeof(pf_config.out) + 160];
    struct pf_fmt f;
    pf_fmt_init(&f, msg, sizeof(msg), -1);
    for (size_t i = 0; i < nparts; i++) {
        if (i == name)
            pf_fmt_name(&f, parts[i]);
        else
            pf_fmt_str(&f, parts[i]);
    }
    msg[f.len - 1] = '\n'; /* the last part's, or the one a cut line lost */
    int err = stderr_fd();
    if (err >= 0)
        pf_os_write_quiet(err, msg, f.len);
}

void pf_emit_warn(const char *const *parts, size_t nparts)
{
    warn_named(parts, nparts, (size_t)-1);
}

/* Where a report goes; *own: the descriptor is the report's, closed after it. */
static int open_out(int at_exit, int *own)
{
    const char *src = pf_config.out;
    *own = 0;
    if (!src[0]) {
        int fd = stderr_fd();
        if (fd < 0 && at_exit && (fd = reopen_tty()) >= 0)
            *own = 1;
        return fd;
    }
    char path[sizeof(pf_config.out) + 24];
    struct pf_fmt p;
    pf_fmt_init(&p, path, sizeof(path), -1);
    /* Below sizeof(path) - 24 before each step, so a pid always fits. */
    for (; *src && p.len < sizeof(path) - 24; src++) {
        if (src[0] == '%' && src[1] == 'p') {
            pf_fmt_u64(&p, (uint64_t)getpid());
            src++;
        } else {
            pf_fmt_char(&p, *src);
        }
    }
    pf_fmt_cstr(&p);
    /* O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of
     * hanging the program, and a full one is waited on only for a bounded
     * time by pf_os_write_all; regular files ignore it. */
    int fd = -1, e = ENAMETOOLONG;
    if (!*src) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        e = errno;
    }
    if (fd < 0 && !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED)) {
        const char *why = e == ELOOP ? "it is a symbolic link"
                          : e == EACCES ? "permission denied"
                          : e == ENOENT ? "no such directory"
                          : e == EISDIR ? "it is a directory"
                          : e == ENXIO ? "no process is reading it"
                          : *src ? "the path is too long once %p is replaced"
                          : e == ENAMETOOLONG ? "the path is too long"
                          : e == EROFS ? "read-only file system"
                          : e == EMFILE ? "every file descriptor of the process is in use"
                          : e == ENFILE ? "the system's table of open files is full"
                          : e == ENOSPC ? "no space left on the device"
                          : e == EDQUOT ? "disk quota exceeded" : "cannot be opened";
        const char *parts[] = {"pfalloc: PFALLOC_OUT ", path, *src ? "..." : "", ": ", why,
                               " (reports go to stderr)\n"};
        warn_named(parts, sizeof(parts) / sizeof(parts[0]), 1);
    }
    *own = fd >= 0;
    return fd < 0 ? stderr_fd() : fd;
}

/* A report that could not be written: one line, once per process, on the
 * starting stderr unless that is where the writing failed. */
static void warn_write(int fd, int e)
{
    static int write_warned;
    if (fd == stderr_fd() || __atomic_exchange_n(&write_warned, 1, __ATOMIC_RELAXED))
        return;
    const char *why = e == ENOSPC ? "no space left on the device"
                      : e == EDQUOT ? "disk quota exceeded"
                      : e == EFBIG ? "the file is too big"
                      : e == EPIPE ? "the reader has gone"
                      : e == ETIMEDOUT ? "the reader did not read it in time"
                      : e == EIO ? "input/output error" : "write error";
    const char *parts[] = {"pfalloc: a report could not be written to PFALLOC_OUT ", pf_config.out, ": ",
                           why, " (it is lost)\n"};
    warn_named(parts, sizeof(parts) / sizeof(parts[0]), 1);
}

/* errno is left as it was; *err (when not NULL) is the report's own. */
static int emit_guarded(const char *reason, pf_report_extra_fn extra, int wait, int *err)
{
    int saved = errno;
    /* A write to a pipe whose reader has gone raises SIGPIPE, one past
     * RLIMIT_FSIZE SIGXFSZ; their default actions end the program: not
     * for a report's writes. */
    struct pf_os_quiet quiet;
    pf_os_quiet_begin(&quiet);
    int rc = emit(reason, extra, wait);
    int e = errno;
    pf_os_quiet_end(&quiet, rc != 0 ? e : 0);
    if (err)
        *err = e;
    errno = saved;
    return rc;
}

int pf_emit_report(const char *reason, int with_leaks)
{
    /* A signal report with leaks (PF_EMIT_LEAKS_NOW) never waits: it runs
     * in a handler, and the report under way may be the one it interrupted. */
    return emit_guarded(reason, with_leaks ? pf_leaks_write : NULL, with_leaks == PF_EMIT_LEAKS_EXIT, NULL);
}

int pf_emit_report_with(const char *reason, pf_report_extra_fn extra)
{
    return emit_guarded(reason, extra, extra != NULL, NULL);
}

static int emit(const char *reason, pf_report_extra_fn extra, int wait)
{
    int own;
    int fd = open_out(!strcmp(reason, "exit"), &own);
    if (fd < 0)
        return 0; /* no stderr of the process's own and no file: nowhere to write */
    /* The exit report (the one with a last section) is not skipped for a
     * signal report that happens to be under way in another thread: wait
     * for it, up to a second (a report the exit signal interrupted in this
     * very thread never ends: then one "skipped" notice is all). */
    int rc, tries = 0;
    for (;;) {
        for (; wait && tries < 100 && pf_report_busy(); tries++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        rc = pf_report_write_ex(fd, pf_config.json, reason, extra, NULL);
        if (!wait || rc == 0 || errno != EAGAIN || ++tries >= 100)
            break;
    }
    int e = errno;
    if (rc != 0 && e != EAGAIN)
        warn_write(fd, e);
    if (own)
        close(fd);
    errno = e;
    return rc;
}

/* On a stack of pfalloc's own, as the other reports: the program may call
 * it from a handler on a small alternate stack. */
struct request {
    int rc, err;
};

static void request_report(void *arg)
{
    struct request *q = arg;
    q->rc = emit_guarded("request", NULL, 0, &q->err);
}

int pf_report(void)
{
    uintptr_t from;
    PF_OS_PROGRAM_STACK(from);
    struct request q = {-1, 0};
    pf_os_on_own_stack(request_report, &q, from);
    /* The caller asked: a failure says why (EAGAIN when another report
     * was under way), as the printers do. */
    if (q.rc != 0)
        errno = q.err;
    return q.rc;
}
