/*
 * emit.c — opening the report destination and writing a report to it.
 * Only async-signal-safe calls: getpid, open (O_NOFOLLOW: a symlink planted
 * at the report path is refused, not followed), write, close.
 */
#include "emit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "report.h"
#include "sites.h"

static int warned;

/* A copy of the stderr the process started with: programs built on gnulib's
 * closeout (sort, ls, ...) close fd 2 in an atexit handler, before the exit
 * report. It is only used while it is still that file (device and inode
 * recorded), so a program that closed it and reused the number never gets
 * our text. */
static int err_copy = -1;
static dev_t err_dev;
static ino_t err_ino;

void pf_emit_init(void)
{
    struct stat st;
    if (err_copy >= 0 || fstat(2, &st) != 0)
        return;
    err_copy = fcntl(2, F_DUPFD_CLOEXEC, 200);
    err_dev = st.st_dev;
    err_ino = st.st_ino;
}

static int stderr_fd(void)
{
    struct stat st;
    if (err_copy < 0 || (fstat(2, &st) == 0 && st.st_dev == err_dev && st.st_ino == err_ino))
        return 2;
    if (fstat(err_copy, &st) == 0 && st.st_dev == err_dev && st.st_ino == err_ino)
        return err_copy;
    return 2;
}

static int open_out(void)
{
    const char *src = pf_config.out;
    if (!src[0])
        return stderr_fd();
    char path[sizeof(pf_config.out) + 24];
    size_t n = 0;
    for (; *src && n < sizeof(path) - 24; src++) {
        if (src[0] == '%' && src[1] == 'p') {
            char digits[24];
            int k = 0;
            unsigned long pid = (unsigned long)getpid();
            do
                digits[k++] = (char)('0' + pid % 10);
            while ((pid /= 10) != 0);
            while (k)
                path[n++] = digits[--k];
            src++;
        } else {
            path[n++] = *src;
        }
    }
    path[n] = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED)) {
        int e = errno;
        const char *why = e == ELOOP ? "it is a symbolic link"
                          : e == EACCES ? "permission denied"
                          : e == ENOENT ? "no such directory"
                          : e == EISDIR ? "it is a directory"
                          : e == EROFS ? "read-only file system" : "cannot be opened";
        char msg[sizeof(path) + 96];
        size_t m = 0;
        const char *parts[] = {"pfalloc: PFALLOC_OUT ", path, ": ", why, "; reports go to stderr\n"};
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
            for (const char *c = parts[i]; *c && m < sizeof(msg) - 1; c++)
                msg[m++] = *c;
        pf_os_write_all(stderr_fd(), msg, m);
    }
    return fd < 0 ? stderr_fd() : fd;
}

int pf_emit_report(const char *reason, int with_leaks)
{
    int saved = errno;
    int fd = open_out();
    int rc = pf_report_write_ex(fd, pf_config.json, reason, with_leaks ? pf_leaks_write : NULL, NULL);
    /* The exit report is not skipped for a signal report that happens to be
     * under way in another thread: wait for it (up to a second). */
    for (int tries = 0; with_leaks == PF_EMIT_LEAKS_EXIT && rc != 0 && errno == EAGAIN && tries < 100; tries++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        rc = pf_report_write_ex(fd, pf_config.json, reason, pf_leaks_write, NULL);
    }
    if (pf_config.out[0] && fd != 2 && fd != err_copy)
        close(fd);
    errno = saved;
    return rc;
}

int pf_report(void)
{
    return pf_emit_report("request", 0);
}
