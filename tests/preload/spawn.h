/*
 * spawn.h — run a real program, plainly or under LD_PRELOAD of libpfalloc.so,
 * and capture its exit status, stdout and stderr.
 *
 * The test runner itself is never preloaded: LD_PRELOAD is set only in the
 * child's environment (fork + execve). The child gets the runner's
 * environment minus LD_PRELOAD and every PFALLOC_* variable, plus what the
 * caller adds, so a plain run and a preloaded run differ only in the
 * preload. Output goes to temp files, read back into malloc'd buffers.
 * The child runs in its own process group, killed whole on timeout.
 */
#ifndef PF_TEST_SPAWN_H
#define PF_TEST_SPAWN_H

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PF_PRELOAD_LIB PF_BUILD_DIR "/libpfalloc.so"
#define PF_PROGS_DIR PF_BUILD_DIR "/progs"
#define PF_DATA_DIR PF_SOURCE_DIR "/tests/preload/data"

/* Asks the preloaded library for its report at exit (on stderr). The
 * report's first line names the process ("==== pfalloc report: pid N
 * (prog), reason exit"), which proves the library was live in that very
 * program, not only in some process that the program started. */
#define PF_REPORT_ENV "PFALLOC_REPORT=exit"
#define PF_REPORT_MARK "==== pfalloc report: pid "

#define PF_SPAWN_TIMEOUT_DEFAULT 300

enum pf_mode { PF_PLAIN = 0, PF_PRELOAD = 1 };

struct pf_spawn_opts {
    enum pf_mode mode;
    const char *const *env; /* extra "NAME=value" entries, NULL-terminated; may be NULL */
    const char *cwd;        /* working directory of the child; NULL: the runner's */
    const char *stdin_path; /* file for stdin; NULL: /dev/null */
    int timeout_s;          /* 0: PF_SPAWN_TIMEOUT_DEFAULT */
};

struct pf_run {
    int status;     /* raw waitpid status */
    int exited;     /* WIFEXITED */
    int code;       /* exit code when exited, else -1 */
    int signo;      /* terminating signal, else 0 */
    int timed_out;  /* 1 when the run was killed for taking too long */
    char *out;      /* stdout, NUL-terminated */
    size_t out_len; /* bytes of stdout */
    char *err;      /* stderr, NUL-terminated */
    size_t err_len; /* bytes of stderr */
};

static inline int pf_spawn_preload_present(void)
{
    return access(PF_PRELOAD_LIB, R_OK) == 0;
}

/* Full path of `name` looked up in PATH (or `name` itself when it has a '/'),
 * in a static buffer; NULL when not found or not executable. */
static inline const char *pf_which(const char *name)
{
    static char buf[4096];
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? name : NULL;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len == 0) {
            snprintf(buf, sizeof buf, "./%s", name);
        } else {
            snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, name);
        }
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
            return buf;
        if (!colon)
            break;
        path = colon + 1;
    }
    return NULL;
}

/* Skips the calling test unless the program exists. */
#define PF_REQUIRE_PROGRAM(name)                                                    \
    do {                                                                            \
        if (!pf_which(name))                                                        \
            cr_skip_test("%s is not installed (scripts/test installs it)", (name)); \
    } while (0)

/* Fails the calling test unless the preload object has been built (the
 * preload tests depend on it in the build, so it is never skipped). */
#define PF_REQUIRE_PRELOAD()                                                                       \
    cr_assert(pf_spawn_preload_present(), "%s has not been built", PF_PRELOAD_LIB)

static inline char *pf_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    cr_assert(buf != NULL);
    if (!f) {
        buf[0] = '\0';
        if (len_out)
            *len_out = 0;
        return buf;
    }
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf != NULL);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

static inline void pf_write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "cannot create %s: %s", path, strerror(errno));
    cr_assert(fwrite(data, 1, len, f) == len);
    cr_assert(fclose(f) == 0);
}

static inline int pf_env_dropped(const char *entry)
{
    return strncmp(entry, "LD_PRELOAD=", 11) == 0 || strncmp(entry, "PFALLOC_", 8) == 0;
}

/* The child's environment: the runner's, cleaned, then `extra`, then the
 * preload itself. Later entries of the same name win over earlier ones. */
static inline char **pf_build_env(const struct pf_spawn_opts *o)
{
    size_t n = 0, k = 0;
    for (char **e = environ; *e; e++)
        n++;
    if (o->env)
        for (const char *const *e = o->env; *e; e++)
            n++;
    char **env = calloc(n + 2, sizeof *env);
    cr_assert(env != NULL);
    if (o->env) {
        for (const char *const *e = o->env; *e; e++)
            env[k++] = (char *)*e;
    }
    for (char **e = environ; *e; e++) {
        if (pf_env_dropped(*e))
            continue;
        const char *eq = strchr(*e, '=');
        size_t nlen = eq ? (size_t)(eq - *e) + 1 : strlen(*e);
        int overridden = 0;
        for (size_t i = 0; i < k && !overridden; i++)
            overridden = strncmp(env[i], *e, nlen) == 0;
        if (!overridden)
            env[k++] = *e;
    }
    if (o->mode == PF_PRELOAD)
        env[k++] = (char *)"LD_PRELOAD=" PF_PRELOAD_LIB;
    env[k] = NULL;
    return env;
}

static inline void pf_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Runs argv[0] (looked up in PATH) with argv, fills *r. Asserts on failures
 * of the harness itself; the program's own failures are left in *r. */
static inline void pf_spawn(const char *const argv[], const struct pf_spawn_opts *o,
                            struct pf_run *r)
{
    static unsigned serial;
    const char *path = pf_which(argv[0]);
    cr_assert(path != NULL, "program not found: %s", argv[0]);
    char *exe = strdup(path);
    char dir[] = "/tmp/pf-spawn-XXXXXX";
    char out_path[64], err_path[64];
    const char *tmp = mkdtemp(dir);
    cr_assert(tmp != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(out_path, sizeof out_path, "%s/out.%u", tmp, serial);
    snprintf(err_path, sizeof err_path, "%s/err.%u", tmp, serial);
    serial++;

    char **env = pf_build_env(o);
    memset(r, 0, sizeof *r);

    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        /* A runner killed by Criterion's timeout takes its child with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open(o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        close(in);
        close(out);
        close(err);
        if (o->cwd && chdir(o->cwd) != 0)
            _exit(126);
        /* Criterion may leave signals blocked or ignored; the program gets defaults. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        execve(exe, (char *const *)argv, env);
        _exit(127);
    }
    setpgid(pid, pid);

    long limit_ms = 1000L * (o->timeout_s > 0 ? o->timeout_s : PF_SPAWN_TIMEOUT_DEFAULT);
    long waited = 0, step = 1;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        cr_assert(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (waited >= limit_ms && !r->timed_out) {
            r->timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
        pf_sleep_ms(step);
        waited += step;
        if (step < 50)
            step *= 2;
    }
    /* Whatever the program left behind in its group goes too. */
    kill(-pid, SIGKILL);

    r->status = status;
    r->exited = WIFEXITED(status);
    r->code = r->exited ? WEXITSTATUS(status) : -1;
    r->signo = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    r->out = pf_read_file(out_path, &r->out_len);
    r->err = pf_read_file(err_path, &r->err_len);
    unlink(out_path);
    unlink(err_path);
    rmdir(tmp);
    free(env);
    free(exe);
}

static inline void pf_run_free(struct pf_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* A short description of how a run ended, for assertion messages; four
 * buffers in turn, so that one message can describe two runs. */
static inline const char *pf_run_how(const struct pf_run *r)
{
    static char bufs[4][96];
    static unsigned turn;
    char *buf = bufs[turn++ % 4];
    if (r->timed_out)
        snprintf(buf, sizeof bufs[0], "timed out");
    else if (r->exited)
        snprintf(buf, sizeof bufs[0], "exit %d", r->code);
    else
        snprintf(buf, sizeof bufs[0], "signal %d (%s)", r->signo, strsignal(r->signo));
    return buf;
}

/* The last `max` bytes of a capture, for assertion messages. */
static inline const char *pf_tail(const char *s, size_t len, size_t max)
{
    return len > max ? s + (len - max) : s;
}

/* Runs python3 -c `script` with `arg`, stdin from `input_path`, plainly
 * (a checker of what a test's program wrote); asserts it exits 0 and
 * returns its stdout (malloc'd). */
static inline char *pf_python(const char *script, const char *arg, const char *input_path)
{
    PF_REQUIRE_PROGRAM("python3");
    const char *const argv[] = {"python3", "-c", script, arg, NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .stdin_path = input_path, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "python check failed (%s):\n%s%s", pf_run_how(&r),
              pf_tail(r.out, r.out_len, 2000), pf_tail(r.err, r.err_len, 2000));
    free(r.err);
    return r.out;
}

/* ---- temp directories ----------------------------------------------------- */

static inline int pf_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        return rmdir(path) == 0 ? 0 : (errno == ENOENT ? 0 : -1);
    return unlink(path) == 0 ? 0 : (errno == ENOENT ? 0 : -1);
}

/* A fresh directory under /tmp, its path malloc'd. */
static inline char *pf_tempdir(const char *tag)
{
    char tmpl[128];
    snprintf(tmpl, sizeof tmpl, "/tmp/pf-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    cr_assert(d != NULL, "mkdtemp: %s", strerror(errno));
    return strdup(d);
}

/* Removes the directory tree and frees the path. */
static inline void pf_tempdir_remove(char *dir)
{
    if (!dir)
        return;
    nftw(dir, pf_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* A malloc'd path "dir/name". */
static inline char *pf_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert(p != NULL);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A copy of the program at src, executable, as dir/name (a name a test
 * picks: a newline or a control character in it); the malloc'd path. */
static inline char *pf_copy_program(const char *src, const char *dir, const char *name)
{
    char *copy = pf_path(dir, name);
    size_t len = 0;
    char *bytes = pf_read_file(src, &len);
    cr_assert(bytes != NULL && len > 0, "cannot read %s", src);
    pf_write_file(copy, bytes, len);
    free(bytes);
    cr_assert(chmod(copy, 0755) == 0, "chmod %s: %s", copy, strerror(errno));
    return copy;
}

/* Occurrences of needle in hay (they may overlap). */
static inline size_t pf_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Writes the NUL-terminated text into dir/name. */
static inline void pf_write_in(const char *dir, const char *name, const char *text)
{
    char *path = pf_path(dir, name);
    pf_write_file(path, text, strlen(text));
    free(path);
}

/* ---- the usual comparison -------------------------------------------------- */

/* ---- a child that runs while the test talks to it ----------------------------
 * Started in its own process group, stdin from /dev/null, stdout and stderr
 * into files of a temp directory of its own; it dies with the test runner. */
struct pf_child {
    pid_t pid;
    char *dir;      /* temp directory for the captures */
    char *out_path; /* the child's stdout */
    char *err_path; /* the child's stderr */
};

/* In a forked child, its descriptors set: the program started with every
 * signal at its default and none blocked (ignored signals stay ignored
 * across exec), or exit status 127. */
static inline void pf_exec_child(const char *const argv[], char **envp)
{
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(argv[0], (char *const *)argv, envp);
    _exit(127);
}

static inline void pf_child_start(struct pf_child *c, const char *tag, const char *const argv[],
                                  const char *const *env, enum pf_mode mode)
{
    memset(c, 0, sizeof *c);
    c->dir = pf_tempdir(tag);
    c->out_path = pf_path(c->dir, "stdout");
    c->err_path = pf_path(c->dir, "stderr");
    struct pf_spawn_opts o = {.mode = mode, .env = env};
    char **envp = pf_build_env(&o);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        /* Gone with the test: a test that times out must not leave it running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(c->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(c->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        pf_exec_child(argv, envp);
    }
    setpgid(pid, pid);
    free(envp);
    c->pid = pid;
}

/* Frees the paths and removes the directory (the caller has reaped the child). */
/* Waits for the child (killing its group after timeout_s) and fills *r. */
static inline void pf_child_wait(struct pf_child *c, int timeout_s, struct pf_run *r)
{
    memset(r, 0, sizeof *r);
    int status = 0;
    long waited = 0;
    for (;;) {
        pid_t w = waitpid(c->pid, &status, WNOHANG);
        if (w == c->pid)
            break;
        cr_assert(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (waited >= timeout_s * 1000L && !r->timed_out) {
            r->timed_out = 1;
            kill(-c->pid, SIGKILL);
        }
        pf_sleep_ms(5);
        waited += 5;
    }
    kill(-c->pid, SIGKILL);
    r->status = status;
    r->exited = WIFEXITED(status);
    r->code = r->exited ? WEXITSTATUS(status) : -1;
    r->signo = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    r->out = pf_read_file(c->out_path, &r->out_len);
    r->err = pf_read_file(c->err_path, &r->err_len);
}

/* Whether process pid has a handler installed for signo (SigCgt). */
static inline int pf_catches(pid_t pid, int signo)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = pf_read_file(path, NULL);
    const char *p = strstr(s, "SigCgt:");
    unsigned long long mask = 0;
    int ok = p && sscanf(p + 7, "%llx", &mask) == 1;
    free(s);
    return ok && (mask >> (signo - 1)) & 1;
}

static inline void pf_child_free(struct pf_child *c)
{
    free(c->out_path);
    free(c->err_path);
    pf_tempdir_remove(c->dir);
    memset(c, 0, sizeof *c);
}

/* Waits until `path` contains `needle`; returns whether it did in time. */
static inline int pf_wait_for_text(const char *path, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        char *s = pf_read_file(path, NULL);
        int hit = strstr(s, needle) != NULL;
        free(s);
        if (hit)
            return 1;
        pf_sleep_ms(10);
    }
    return 0;
}

/* Asserts the run ended with exit code 0. */
static inline void pf_assert_ok(const struct pf_run *r, const char *what)
{
    cr_assert(r->exited && r->code == 0, "%s: %s; stderr ends with:\n%s", what, pf_run_how(r),
              pf_tail(r->err, r->err_len, 1500));
}

/* Whether stderr holds an exit report from a process named `prog`
 * (program_invocation_short_name), or from any process for NULL. */
static inline int pf_has_report(const char *err, const char *prog)
{
    for (const char *p = strstr(err, PF_REPORT_MARK); p; p = strstr(p + 1, PF_REPORT_MARK)) {
        const char *eol = strchr(p, '\n');
        size_t line = eol ? (size_t)(eol - p) : strlen(p);
        if (!prog)
            return 1;
        char want[256];
        snprintf(want, sizeof want, " (%s), reason exit", prog);
        const char *hit = strstr(p, want);
        if (hit && (size_t)(hit - p) < line)
            return 1;
    }
    return 0;
}

/* Asserts the preloaded run proved the library was live in `prog` (the
 * program's short name): its exit report, asked for with PF_REPORT_ENV,
 * is on stderr. */
static inline void pf_assert_preloaded(const struct pf_run *r, const char *prog)
{
    cr_assert(
        pf_has_report(r->err, prog),
        "no exit report from %s on stderr, the preload was not live in it; stderr ends with:\n%s",
        prog ? prog : "any process", pf_tail(r->err, r->err_len, 1500));
}

/* Asserts two runs ended the same way and wrote the same stdout. */
static inline void pf_assert_same(const struct pf_run *plain, const struct pf_run *pre,
                                  const char *what)
{
    cr_assert(plain->status == pre->status && plain->timed_out == pre->timed_out,
              "%s: plain run %s, preloaded run %s; preloaded stderr ends with:\n%s", what,
              pf_run_how(plain), pf_run_how(pre), pf_tail(pre->err, pre->err_len, 1500));
    if (plain->out_len != pre->out_len || memcmp(plain->out, pre->out, plain->out_len) != 0) {
        size_t i = 0;
        while (i < plain->out_len && i < pre->out_len && plain->out[i] == pre->out[i])
            i++;
        size_t from = i > 80 ? i - 80 : 0;
        cr_assert_fail("%s: stdout differs at byte %zu (plain %zu bytes, preloaded %zu bytes)\n"
                       "plain:     ...%.160s\npreloaded: ...%.160s",
                       what, i, plain->out_len, pre->out_len,
                       from < plain->out_len ? plain->out + from : "",
                       from < pre->out_len ? pre->out + from : "");
    }
}

/*
 * Runs argv plainly, then under the preload with the exit report on, and
 * asserts: both succeed (exit 0) unless allow_fail, same status, same stdout,
 * and the preloaded run shows the library live. `env` applies to both runs.
 * Leaves the captures in *plain and *pre for further checks.
 */
static inline void pf_compare_runs(const char *const argv[], const char *const *env,
                                   const char *cwd_plain, const char *cwd_pre,
                                   const char *stdin_path, struct pf_run *plain, struct pf_run *pre)
{
    const char *penv[64];
    size_t k = 0;
    if (env)
        for (; env[k]; k++) {
            cr_assert(k < 62);
            penv[k] = env[k];
        }
    penv[k++] = PF_REPORT_ENV;
    penv[k] = NULL;

    struct pf_spawn_opts po = {
        .mode = PF_PLAIN, .env = env, .cwd = cwd_plain, .stdin_path = stdin_path};
    struct pf_spawn_opts qo = {
        .mode = PF_PRELOAD, .env = penv, .cwd = cwd_pre, .stdin_path = stdin_path};
    pf_spawn(argv, &po, plain);
    pf_spawn(argv, &qo, pre);
    pf_assert_ok(plain, "plain run");
    pf_assert_ok(pre, "preloaded run");
    pf_assert_same(plain, pre, argv[0]);
    const char *base = strrchr(argv[0], '/');
    pf_assert_preloaded(pre, base ? base + 1 : argv[0]);
}

#endif /* PF_TEST_SPAWN_H */
