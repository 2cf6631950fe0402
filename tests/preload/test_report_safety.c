/*
 * Reports never harm the program, seen from outside: real programs
 * (tests/progs) run under LD_PRELOAD with hostile report destinations and
 * endings, and what they wrote, how they ended and what reached the report
 * destination are checked:
 *  - a report far bigger than the first report buffer reaches a shared
 *    PFALLOC_OUT whole, while other processes append theirs;
 *  - malloc_info with hundreds of families is well-formed XML;
 *  - stderr closed at start, stderr a pipe nobody reads, PFALLOC_OUT a FIFO
 *    nobody reads, a full device, an over-long path;
 *  - the program's descriptor table is its own;
 *  - a library's own SA_SIGINFO handler for the report signal is kept;
 *  - a program ended by SIGTERM, SIGINT or SIGHUP still writes its exit
 *    report, and still dies of that signal;
 *  - a thread cancelled while its report waits on a full pipe leaves the
 *    program's later reports whole.
 */
#include "spawn.h"

#include <sys/ioctl.h>
#include <sys/prctl.h>

#include <dirent.h>

TestSuite(report_safety);

#define PROG(name) PF_PROGS_DIR "/" name

/* ---- a report bigger than the first buffer, whole ----------------------------- */

/* Every line of stdin a JSON object; prints "N reports from M processes". */
static const char lines_py[] =
    "import json, sys\n"
    "pids = set()\n"
    "n = 0\n"
    "for i, line in enumerate(sys.stdin, 1):\n"
    "    try:\n"
    "        d = json.loads(line)\n"
    "    except ValueError as e:\n"
    "        print('BAD line %d: %s: %r' % (i, e, line[:200]))\n"
    "        sys.exit(1)\n"
    "    pids.add(d['pid'])\n"
    "    n += 1\n"
    "print('%d reports from %d processes' % (n, len(pids)))\n";

#define SHARERS 8

Test(report_safety, big_reports_of_several_processes_stay_whole, .timeout = 300)
{
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("bigshare");
    char *path = pf_path(dir, "all.jsonl");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", path);
    /* 510 families with names escaped to 6 bytes a character: ~500 KiB of
     * JSON per report, with leak sites. */
    const char *const env[] = {var, "PFALLOC_FORMAT=json", "PFALLOC_SITES=1", "PFALLOC_REPORT=exit", NULL};
    const char *const argv[] = {PROG("families"), "510", "wide", NULL};
    struct pf_child c[SHARERS];
    for (int i = 0; i < SHARERS; i++)
        pf_child_start(&c[i], "bigshare", argv, env, PF_PRELOAD);
    for (int i = 0; i < SHARERS; i++) {
        struct pf_run r;
        pf_child_wait(&c[i], 120, &r);
        pf_assert_ok(&r, "families");
        pf_run_free(&r);
        pf_child_free(&c[i]);
    }
    struct stat st;
    cr_assert(stat(path, &st) == 0);
    cr_assert(st.st_size > SHARERS * 400 * 1024, "reports of %lld bytes in all: not big enough to test",
              (long long)st.st_size);
    char *sum = pf_python(lines_py, "-", path);
    char want[64];
    snprintf(want, sizeof want, "%d reports from %d processes\n", SHARERS, SHARERS);
    cr_assert(strcmp(sum, want) == 0, "%s", sum);
    free(sum);
    free(path);
    pf_tempdir_remove(dir);
}

/* A report signal that arrives while the exit report waits in write(2) on
 * a full stderr pipe: its handler interrupts the write between two pieces
 * and finds the report under way. Its one-line notice was written there
 * and then, inside the report's text: the JSON line of the exit report
 * was cut in two by it. It must come after the report instead. */
Test(report_safety, a_skipped_notice_never_lands_inside_a_report_on_a_pipe, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("families"), "510", "wide", NULL};
    const char *const env[] = {"PFALLOC_FORMAT=json", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env};
    char **envp = pf_build_env(&o);
    int p[2];
    cr_assert(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(p[1], 2) < 0)
            _exit(126);
        close(p[0]);
        pf_exec_child(argv, envp);
    }
    close(p[1]);
    free(envp);
    /* The pipe full: the exit report (some 500 KiB) waits for room. */
    int queued = 0;
    for (int waited = 0; waited < 20000 && queued < 65536; waited += 10) {
        pf_sleep_ms(10);
        cr_assert(ioctl(p[0], FIONREAD, &queued) == 0);
    }
    cr_assert(queued >= 65536, "the exit report never filled the pipe (%d bytes)", queued);
    kill(pid, SIGUSR1);
    pf_sleep_ms(300);
    char *dir = pf_tempdir("notice");
    char *path = pf_path(dir, "stderr");
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    char buf[65536];
    for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;)
        cr_assert(fwrite(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    close(p[0]);
    int status;
    cr_assert(waitpid(pid, &status, 0) == pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    char *text = pf_read_file(path, NULL);
    cr_assert(strstr(text, "\"reason\":\"signal\",\"skipped\":\"another report in progress\"}\n") != NULL,
              "the signal did not meet the report under way: %s", pf_tail(text, strlen(text), 300));
    free(text);
    char *sum = pf_python(lines_py, "-", path);
    cr_assert(strcmp(sum, "2 reports from 1 processes\n") == 0, "%s", sum);
    free(sum);
    free(path);
    pf_tempdir_remove(dir);
}

/* ---- malloc_info ------------------------------------------------------------------ */

/* stdin: the program's stdout, malloc_info's XML followed by one line of its
 * own. Parses the XML and prints the number of <family> elements whose name
 * is one of the program's. */
static const char xml_py[] =
    "import sys, xml.dom.minidom\n"
    "data = sys.stdin.read()\n"
    "end = data.find('</malloc>\\n')\n"
    "if end < 0:\n"
    "    print('BAD no </malloc>: %r' % data[-300:])\n"
    "    sys.exit(1)\n"
    "doc = xml.dom.minidom.parseString(data[:end + 10])\n"
    "names = set(f.getAttribute('name') for f in doc.getElementsByTagName('family'))\n"
    "n = int(sys.argv[1])\n"
    "want = set('family with a long name for big reports, padded to limit %04d' % i for i in range(n))\n"
    "print('%d of %d families' % (len(want & names), n))\n";

Test(report_safety, malloc_info_with_400_families_is_whole_xml)
{
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("info");
    char *out = pf_path(dir, "out");
    const char *const argv[] = {PROG("families"), "400", "info", NULL};
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "families");
    cr_assert(strstr(r.out, "families: 400 made\n") != NULL, "%s", pf_tail(r.out, r.out_len, 300));
    pf_write_file(out, r.out, r.out_len);
    char *sum = pf_python(xml_py, "400", out);
    cr_assert(strcmp(sum, "400 of 400 families\n") == 0, "%s", sum);
    free(sum);
    pf_run_free(&r);
    free(out);
    pf_tempdir_remove(dir);
}

Test(report_safety, malloc_info_holds_no_lock_while_it_writes)
{
    /* The stream's writer calls mallinfo2: a lock held across the write
     * would never be given back. */
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("families"), "50", "cookie", NULL};
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 20};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "families");
    cr_assert(strstr(r.out, " bytes of XML through the cookie\n") != NULL, "%s", r.out);
    pf_run_free(&r);
}

/* ---- stderr: only the one the process started with --------------------------------- */

/* How the child's stderr is set up before exec. */
enum err_setup { ERR_FILE, ERR_CLOSED, ERR_PIPE_NO_READER, ERR_PIPE_OWN_READER };

/* Runs argv under the preload with stdout and stderr in files of a temp
 * directory (stderr closed, or a pipe whose read end is closed, or a pipe
 * whose read end the program holds as descriptor 3, on request), waits for
 * it (timeout_s), fills *r. With ERR_PIPE_OWN_READER, r->err is what the
 * program left in the pipe. */
static void run_with_stderr(const char *const argv[], const char *const *env, enum err_setup how,
                            int timeout_s, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    struct pf_child c;
    memset(&c, 0, sizeof c);
    c.dir = pf_tempdir("stderr");
    c.out_path = pf_path(c.dir, "stdout");
    c.err_path = pf_path(c.dir, "stderr");
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env};
    char **envp = pf_build_env(&o);
    int p[2] = {-1, -1};
    if (how == ERR_PIPE_NO_READER || how == ERR_PIPE_OWN_READER)
        cr_assert(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(c.out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(c.err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        close(in);
        close(out);
        close(err);
        if (how == ERR_CLOSED)
            close(2);
        if (how == ERR_PIPE_NO_READER) {
            if (dup2(p[1], 2) < 0)
                _exit(126);
            close(p[0]);
            close(p[1]);
        }
        if (how == ERR_PIPE_OWN_READER) {
            if (dup2(p[1], 2) < 0 || dup2(p[0], 3) < 0)
                _exit(126);
            close(p[0]);
            close(p[1]);
        }
        pf_exec_child(argv, envp);
    }
    setpgid(pid, pid);
    if (how == ERR_PIPE_NO_READER) {
        close(p[0]); /* the reader is gone before the program writes anything */
        close(p[1]);
    }
    if (how == ERR_PIPE_OWN_READER)
        close(p[1]);
    free(envp);
    c.pid = pid;
    pf_child_wait(&c, timeout_s, r);
    pf_child_free(&c);
    if (how == ERR_PIPE_OWN_READER) {
        /* What the program wrote after it last read the pipe (less than
         * the pipe holds, or the program would not have ended). */
        size_t len = 0, cap = 1 << 16;
        char *text = malloc(cap + 1);
        cr_assert(text != NULL);
        fcntl(p[0], F_SETFL, O_NONBLOCK);
        for (ssize_t n; len < cap && (n = read(p[0], text + len, cap - len)) > 0;)
            len += (size_t)n;
        text[len] = 0;
        close(p[0]);
        free(r->err);
        r->err = text;
        r->err_len = len;
    }
}

/* The file that a program started with fd 2 closed opened as descriptor 2
 * holds what the program wrote, and nothing of pfalloc's. */
static void holds_only_the_programs_data(const char *data)
{
    char *text = pf_read_file(data, NULL);
    cr_assert(strcmp(text, "the program's data\n") == 0, "the program's file holds:\n%.600s", text);
    free(text);
}

Test(report_safety, stderr_closed_at_start_gets_no_report)
{
    /* Started with fd 2 closed, the program's data file takes descriptor 2. */
    char *dir = pf_tempdir("closed");
    char *data = pf_path(dir, "data");
    const char *const argv[] = {PROG("stderr_reuse"), data, NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    struct pf_run r;
    run_with_stderr(argv, env, ERR_CLOSED, 60, &r);
    pf_assert_ok(&r, "stderr_reuse");
    cr_assert(strstr(r.out, "on descriptor 2") != NULL, "%s", r.out);
    holds_only_the_programs_data(data);
    pf_run_free(&r);
    free(data);
    pf_tempdir_remove(dir);
}

Test(report_safety, stderr_closed_at_start_reports_to_out_file)
{
    char *dir = pf_tempdir("closedout");
    char *data = pf_path(dir, "data");
    char *rep = pf_path(dir, "report");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", rep);
    const char *const argv[] = {PROG("stderr_reuse"), data, NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", var, NULL};
    struct pf_run r;
    run_with_stderr(argv, env, ERR_CLOSED, 60, &r);
    pf_assert_ok(&r, "stderr_reuse");
    holds_only_the_programs_data(data);
    char *text = pf_read_file(rep, NULL);
    cr_assert(pf_has_report(text, "stderr_reuse"), "%s", text);
    free(text);
    pf_run_free(&r);
    free(data);
    free(rep);
    pf_tempdir_remove(dir);
}

Test(report_safety, stderr_closed_at_start_and_taken_by_a_library_constructor_gets_nothing)
{
    /* Started with fd 2 closed, the program's library opens its log file
     * in its constructor, which runs before pfalloc's: the file takes
     * descriptor 2 before pfalloc looks at it. pfalloc took it for the
     * starting stderr and wrote its warning and its exit report there. */
    char *dir = pf_tempdir("closedlib");
    char *data = pf_path(dir, "data");
    char var[600];
    snprintf(var, sizeof var, "LOGLIB_FILE=%s", data);
    const char *const argv[] = {PROG("loglib_user"), NULL};
    const char *const env[] = {var, "PFALLOC_REPORT=exit", "PFALLOC_SIGNAL=USR9", NULL};
    struct pf_run r;
    run_with_stderr(argv, env, ERR_CLOSED, 60, &r);
    pf_assert_ok(&r, "loglib_user");
    cr_assert(strstr(r.out, "on descriptor 2\n") != NULL, "%s", r.out);
    holds_only_the_programs_data(data);
    pf_run_free(&r);
    free(data);
    pf_tempdir_remove(dir);
}

/* ---- the descriptor table is the program's ------------------------------------------ */

Test(report_safety, descriptor_table_is_the_programs)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("fdlist"), NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    struct pf_run plain, pre;
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, &plain);
    o.mode = PF_PRELOAD;
    pf_spawn(argv, &o, &pre);
    pf_assert_ok(&plain, "fdlist");
    pf_assert_ok(&pre, "fdlist");
    pf_assert_preloaded(&pre, "fdlist");
    cr_assert(strcmp(plain.out, pre.out) == 0, "plain: %s preloaded: %s", plain.out, pre.out);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

Test(report_safety, sort_closing_stderr_at_exit_still_reports)
{
    /* sort closes stdout and stderr in an atexit handler (gnulib's
     * closeout): the exit report, written after it, still arrives. */
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("sort");
    char *dir = pf_tempdir("sort");
    char *in = pf_path(dir, "in");
    pf_write_file(in, "b\na\n", 4);
    const char *const argv[] = {"sort", NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .stdin_path = in, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "sort");
    cr_assert(strcmp(r.out, "a\nb\n") == 0, "%s", r.out);
    pf_assert_preloaded(&r, "sort");
    pf_run_free(&r);
    free(in);
    pf_tempdir_remove(dir);
}

/* ---- a thread cancelled in a report ------------------------------------------------ */

/* progs/cancelled: a thread is cancelled while a report of its waits in
 * write(2) on a full pipe, then the program reads the pipe empty. The
 * thread must still end cancelled, and the program's later reports, and
 * its exit report with the leak section, must be whole: a report cut off
 * by the cancellation kept pfalloc's report buffer taken for good, and
 * every later report, the exit one included, was skipped. */
static void check_cancelled(const struct pf_run *r, const char *how)
{
    pf_assert_ok(r, how);
    cr_assert(strstr(r->out, "thread cancelled after ") != NULL, "%s: %s", how, r->out);
    cr_assert(strstr(r->out, "pf_print_totals: 0\n") != NULL, "%s: %s", how, r->out);
    cr_assert(strstr(r->out, "pf_report: 0\n") != NULL, "%s: %s", how, r->out);
    cr_assert(strstr(r->err, "exit skipped") == NULL, "%s: the exit report was skipped:\n%s", how,
              pf_tail(r->err, r->err_len, 1500));
    cr_assert(pf_has_report(r->err, "cancelled"), "%s: no exit report:\n%s", how, pf_tail(r->err, r->err_len, 1500));
    cr_assert(strstr(r->err, "definitely lost:            1 objects, 4.1 KiB") != NULL,
              "%s: the exit report lacks the leak:\n%s", how, pf_tail(r->err, r->err_len, 1500));
}

Test(report_safety, a_thread_cancelled_in_a_printer_leaves_later_reports_whole, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("cancelled"), "printer", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    check_cancelled(&r, "cancelled printer");
    /* While the thread's report waited, pf_report was skipped: -1, EAGAIN
     * (errno was left as it was), with its one-line notice. */
    cr_assert(strstr(r.out, "pf_report while another waits: -1 (EAGAIN)\n") != NULL, "%s", r.out);
    cr_assert(pf_count(r.err, "request skipped, another report in progress\n") == 1, "%s",
              pf_tail(r.err, r.err_len, 1500));
    pf_run_free(&r);
}

Test(report_safety, a_thread_cancelled_in_a_signal_report_leaves_later_reports_whole, .timeout = 120)
{
    const char *const argv[] = {PROG("cancelled"), "signal", NULL};
    struct pf_run r;
    run_with_stderr(argv, NULL, ERR_PIPE_OWN_READER, 60, &r);
    check_cancelled(&r, "cancelled signal");
    pf_run_free(&r);
}

/* ---- a report never raises a signal --------------------------------------------------- */

Test(report_safety, stderr_pipe_without_reader_keeps_the_exit_status)
{
    /* leaky writes nothing on stderr itself: only the exit report meets
     * the pipe whose reader has gone. */
    const char *const argv[] = {PROG("leaky"), NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    struct pf_run r;
    run_with_stderr(argv, env, ERR_PIPE_NO_READER, 60, &r);
    cr_assert(r.exited && r.code == 0, "leaky: %s", pf_run_how(&r));
    pf_run_free(&r);
}

Test(report_safety, a_bad_value_warned_on_a_stderr_without_reader_keeps_the_program_alive)
{
    /* The warning about a bad value is the first thing written: it meets
     * the pipe whose reader has gone, and must not end the program (nor
     * must the exit report after it). */
    const char *const argv[] = {PROG("leaky"), NULL};
    const char *const env[] = {"PFALLOC_SIGNAL=USR9", NULL};
    struct pf_run r;
    run_with_stderr(argv, env, ERR_PIPE_NO_READER, 60, &r);
    cr_assert(r.exited && r.code == 0, "leaky: %s", pf_run_how(&r));
    cr_assert(strstr(r.out, ", 10 objects kept\n") != NULL, "%s", r.out);
    pf_run_free(&r);
}

/* ---- a report never blocks ------------------------------------------------------------ */

static size_t count_lines_starting(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (const char *p = text; *p;) {
        if (strncmp(p, prefix, len) == 0)
            n++;
        const char *eol = strchr(p, '\n');
        if (!eol)
            break;
        p = eol + 1;
    }
    return n;
}

Test(report_safety, a_report_past_the_file_size_limit_keeps_the_exit_status)
{
    /* Under `ulimit -f 1` the exit report outgrows the one block a file
     * may hold: the write past the limit raises SIGXFSZ, whose default
     * action ends the program. leaky itself writes no file. */
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("sh");
    char *dir = pf_tempdir("fsize");
    char *rep = pf_path(dir, "report");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", rep);
    const char *const argv[] = {"sh", "-c", "ulimit -f 1 && exec \"$0\"", PROG("leaky"), NULL};
    const char *const env[] = {var, "PFALLOC_REPORT=exit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "leaky: %s\n%s", pf_run_how(&r), r.err);
    cr_assert(strstr(r.out, ", 10 objects kept\n") != NULL, "%s", r.out);
    cr_assert(count_lines_starting(r.err, "pfalloc: ") == 1, "%s", r.err);
    cr_assert(strstr(r.err, "pfalloc: a report could not be written to PFALLOC_OUT ") != NULL &&
                  strstr(r.err, ": the file is too big (it is lost)\n") != NULL,
              "%s", r.err);
    struct stat st;
    /* The part that fit (ulimit's block is 512 or 1024 bytes, by shell). */
    cr_assert(stat(rep, &st) == 0 && st.st_size > 0 && st.st_size <= 1024, "the report file holds %ld bytes",
              (long)st.st_size);
    pf_run_free(&r);
    free(rep);
    pf_tempdir_remove(dir);
}

/* A PFALLOC_OUT path that cannot be opened and holds a newline and an
 * escape sequence: the warning is one line, the path written with '?' for
 * them. */
Test(report_safety, out_path_with_control_characters_is_warned_of_on_one_line)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("leaky"), NULL};
    const char *const env[] = {"PFALLOC_OUT=/nonexistent-dir\n\x1b[2J/report", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(strstr(r.err, "pfalloc: PFALLOC_OUT /nonexistent-dir??[2J/report: no such directory (reports go to "
                            "stderr)\n") != NULL,
              "%s", r.err);
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);
    pf_run_free(&r);
}

/* A program whose file name holds a C1 control (CSI, which a terminal may
 * take as the start of an escape sequence): the report's header names it
 * with '?'. */
Test(report_safety, a_program_name_with_a_c1_control_is_written_with_a_question_mark)
{
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("c1name");
    char *copy = pf_copy_program(PROG("leaky"), dir, "le\xc2\x9b" "aky");
    const char *const argv[] = {copy, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(strstr(r.err, " (le?aky), reason exit, ") != NULL, "%s", r.err);
    cr_assert(strstr(r.err, "\xc2\x9b") == NULL, "%s", r.err);
    pf_run_free(&r);
    free(copy);
    pf_tempdir_remove(dir);
}

/* A program that ends with every descriptor in use (reach's "fds" opens
 * /dev/null until none is left): PFALLOC_OUT cannot be opened, and the
 * warning says why, so the user knows it is the program's descriptors and
 * not the path. The report goes to stderr. */
Test(report_safety, out_refused_for_want_of_descriptors_says_so)
{
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("emfile");
    char *rep = pf_path(dir, "report");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", rep);
    const char *const argv[] = {PROG("reach"), "mapped", "fds", NULL};
    const char *const env[] = {var, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "reach mapped fds");
    cr_assert(count_lines_starting(r.err, "pfalloc: PFALLOC_OUT ") == 1, "%s", r.err);
    cr_assert(strstr(r.err, ": every file descriptor of the process is in use (reports go to stderr)\n") != NULL,
              "%s", r.err);
    cr_assert(pf_has_report(r.err, "reach"), "%s", r.err);
    struct stat st;
    cr_assert(stat(rep, &st) != 0, "the report file was made");
    pf_run_free(&r);
    free(rep);
    pf_tempdir_remove(dir);
}

Test(report_safety, out_fifo_without_reader_does_not_block)
{
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("fifo");
    char *fifo = pf_path(dir, "fifo");
    cr_assert(mkfifo(fifo, 0600) == 0);
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", fifo);
    const char *const argv[] = {PROG("leaky"), NULL};
    const char *const env[] = {var, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 20};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leaky");
    /* One warning, then the report where it goes by default. */
    cr_assert(count_lines_starting(r.err, "pfalloc: PFALLOC_OUT ") == 1, "%s", r.err);
    cr_assert(strstr(r.err, "no process is reading it") != NULL, "%s", r.err);
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);
    pf_run_free(&r);
    free(fifo);
    pf_tempdir_remove(dir);
}

Test(report_safety, out_fifo_whose_reader_stopped_does_not_block, .timeout = 120)
{
    /* The reader opened the FIFO and never reads: a report bigger than the
     * pipe's buffer cannot go out whole. The program waits a bounded time,
     * then goes on and ends as it would. */
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("fifo");
    char *fifo = pf_path(dir, "fifo");
    cr_assert(mkfifo(fifo, 0600) == 0);
    int reader = open(fifo, O_RDONLY | O_NONBLOCK);
    cr_assert(reader >= 0);
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", fifo);
    const char *const argv[] = {PROG("families"), "510", "wide", NULL};
    const char *const env[] = {var, "PFALLOC_FORMAT=json", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 30};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    close(reader);
    pf_assert_ok(&r, "families");
    cr_assert(count_lines_starting(r.err, "pfalloc: ") == 1, "%s", r.err);
    cr_assert(strstr(r.err, "did not read it in time") != NULL, "%s", r.err);
    pf_run_free(&r);
    free(fifo);
    pf_tempdir_remove(dir);
}

/* ---- write errors are told ------------------------------------------------------------- */

Test(report_safety, out_full_device_warns_once)
{
    PF_REQUIRE_PRELOAD();
    struct stat st;
    if (stat("/dev/full", &st) != 0)
        cr_skip_test("no /dev/full");
    /* daemonish is asked for two signal reports, then ends: two failed
     * writes, one warning. */
    const char *const argv[] = {PROG("daemonish"), "1", NULL};
    const char *const env[] = {"PFALLOC_OUT=/dev/full", "PFALLOC_INTERVAL=0.3", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "daemonish");
    cr_assert(count_lines_starting(r.err, "pfalloc: ") == 1, "%s", r.err);
    cr_assert(strstr(r.err, "/dev/full") != NULL && strstr(r.err, "no space left") != NULL, "%s", r.err);
    pf_run_free(&r);
}

Test(report_safety, out_path_too_long_after_pid_is_told)
{
    /* A path under 512 bytes that %p makes longer than pfalloc can hold:
     * the report must not go to a file whose name was silently cut. */
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("longpath");
    char deep[600];
    snprintf(deep, sizeof deep, "%s/", dir);
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(deep);
        memset(deep + n, 'd', 100);
        deep[n + 100] = '/';
        deep[n + 101] = 0;
        cr_assert(mkdir(deep, 0700) == 0, "%s", strerror(errno));
    }
    char var[700];
    int k = snprintf(var, sizeof var, "PFALLOC_OUT=%sr", deep);
    while ((size_t)k - 12 + 2 < 510)
        k += snprintf(var + k, sizeof var - (size_t)k, "%%p");
    const char *const argv[] = {PROG("leaky"), NULL};
    const char *const env[] = {var, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(count_lines_starting(r.err, "pfalloc: PFALLOC_OUT ") == 1, "%s", pf_tail(r.err, r.err_len, 2000));
    cr_assert(strstr(r.err, "too long") != NULL, "%.600s", r.err);
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);
    DIR *d = opendir(deep);
    cr_assert(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        cr_assert(e->d_name[0] == '.', "a report file with a cut name: %s", e->d_name);
    closedir(d);
    pf_run_free(&r);
    pf_tempdir_remove(dir);
}

/* ---- the report signal only while it has its default action ------------------------------ */

static void run_siglib(const char *const argv[], const char *prog)
{
    PF_REQUIRE_PRELOAD();
    const char *const env[] = {NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, prog);
    cr_assert(strstr(r.out, "the library's handler ran 3 times\n") != NULL, "%s", r.out);
    cr_assert(strstr(r.err, "reason signal") == NULL, "pfalloc took the signal:\n%.500s", r.err);
    cr_assert(pf_has_report(r.err, prog), "%s", r.err);
    pf_run_free(&r);
}

Test(report_safety, library_siginfo_handler_installed_before_ours_is_kept)
{
    const char *const argv[] = {PROG("siglib_user"), NULL};
    run_siglib(argv, "siglib_user");
}

Test(report_safety, library_siginfo_handler_installed_after_ours_wins)
{
    const char *const argv[] = {PROG("siglib_late"), PF_PROGS_DIR "/libsiglib.so", NULL};
    run_siglib(argv, "siglib_late");
}

/* ---- every ending: terminating signals --------------------------------------------------- */

/* Starts argv under the preload and waits until its handler for signo is in
 * place (the preload's constructor has run) or 20 s passed. */
static void start_caught(struct pf_child *c, const char *const argv[], const char *const *env, int signo)
{
    PF_REQUIRE_PRELOAD();
    pf_child_start(c, "term", argv, env, PF_PRELOAD);
    for (int waited = 0; waited < 20000 && !pf_catches(c->pid, signo); waited += 5)
        pf_sleep_ms(5);
}

/* Runs argv preloaded (default settings) until it prints `ready`, sends it
 * SIGTERM `after_ms` later, and asserts it died of it; *r holds the run. */
static void terminated_when(const char *const argv[], const char *ready, long after_ms, struct pf_run *r)
{
    struct pf_child c;
    start_caught(&c, argv, NULL, SIGTERM);
    cr_assert(pf_wait_for_text(c.out_path, ready, 20000), "%s never printed %s", argv[0], ready);
    pf_sleep_ms(after_ms);
    kill(c.pid, SIGTERM);
    pf_child_wait(&c, 60, r);
    cr_assert(!r->exited && r->signo == SIGTERM, "%s: %s\n%s", argv[0], pf_run_how(r), r->err);
    pf_child_free(&c);
}

static void killed_with_exit_report(int signo)
{
    struct pf_child c;
    /* Quiet once started: a signal that lands while this very thread
     * holds a family lock gets a report without its leak section ("the
     * signal interrupted the allocator"), which fresh clones' runs hit
     * twice on a loaded machine, where a process preempted inside a slow
     * path takes its signal there. */
    const char *const argv[] = {PROG("daemonish"), "30", "quiet", NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    start_caught(&c, argv, env, signo);
    cr_assert(pf_wait_for_text(c.out_path, "daemonish: started\n", 20000));
    kill(c.pid, signo);
    struct pf_run r;
    pf_child_wait(&c, 30, &r);
    cr_assert(!r.exited && r.signo == signo, "daemonish: %s, expected signal %d", pf_run_how(&r), signo);
    cr_assert(pf_has_report(r.err, "daemonish"), "no exit report:\n%s", r.err);
    cr_assert(pf_count(r.err, PF_REPORT_MARK) == 1 && pf_count(r.err, "==== end of pfalloc report ====\n") == 1,
              "%s", r.err);
    /* Its kept blocks are live: the leak section counts them. */
    const char *leaks = strstr(r.err, "\nleaks: ");
    cr_assert(leaks != NULL && strtoul(leaks + 8, NULL, 10) >= 1, "%s", pf_tail(r.err, r.err_len, 1500));
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(report_safety, sigterm_writes_the_exit_report_and_still_kills)
{
    killed_with_exit_report(SIGTERM);
}

Test(report_safety, sigint_writes_the_exit_report_and_still_kills)
{
    killed_with_exit_report(SIGINT);
}

Test(report_safety, sighup_writes_the_exit_report_and_still_kills)
{
    killed_with_exit_report(SIGHUP);
}

/* The exit report of a terminating signal read the thread's stack from its
 * handler's frame up: the signal frame and what lies under the interrupted
 * code's stack pointer, where a call that returned left the address of a
 * block since lost (tests/progs/term_lost.c), which it then called still
 * reachable (valgrind: definitely lost). The stack is read from that stack
 * pointer now, and the interrupted code's registers from the signal's
 * context: the block it keeps only in a register stays reachable, in a
 * general register or an SSE one. */
Test(report_safety, sigterm_leak_walk_reads_no_dead_frames)
{
    for (int round = 0; round < 4; round++) {
        /* The last round keeps the block in an SSE register alone. */
        const char *const argv[] = {PROG("term_lost"), round == 3 ? "xmm" : NULL, NULL};
        struct pf_run r;
        terminated_when(argv, "term_lost: started\n", 50, &r);
        cr_assert(strstr(r.err, "\n    definitely lost:            1 objects, 50 B\n") != NULL,
                  "round %d: want the 50 B block lost, the 640 B (and 320 B) ones reachable:\n%s", round, r.err);
        pf_run_free(&r);
    }
}

/* A program that saves SIGINT's action while it sets a handler of its own,
 * then puts the saved action back, restored what pfalloc showed it (the
 * default): pfalloc's handler was gone, and a SIGINT killed it without the
 * exit report, through sigaction or, since pfalloc has its own signal(),
 * through signal() too (tests/progs/term_restore.c). Setting the default
 * where pfalloc's handler was now puts that handler back. */
Test(report_safety, a_restored_default_action_keeps_the_exit_report)
{
    PF_REQUIRE_PRELOAD();
    static const char *const modes[] = {"signal", "sigaction"};
    for (int m = 0; m < 2; m++) {
        const char *const argv[] = {PROG("term_restore"), modes[m], NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 60}, &r);
        cr_assert(!r.exited && r.signo == SIGINT, "%s: %s\n%s", modes[m], pf_run_how(&r), r.err);
        cr_assert_str_eq(r.out, "term_restore: raising\n", "%s", modes[m]);
        cr_assert(pf_count(r.err, "(term_restore), reason exit,") == 1, "%s: want one exit report:\n%s", modes[m],
                  r.err);
        pf_run_free(&r);
    }
}

/* The default action a program sets where pfalloc's handler is reads
 * back as the program set it (flags, mask), as plainly: it read back as a
 * bare default, with no flags and an empty mask. */
Test(report_safety, a_default_action_reads_back_as_set)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("term_restore"), "readback", NULL};
    struct pf_run plain, pre;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PLAIN}, &plain);
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD}, &pre);
    pf_assert_ok(&plain, "term_restore readback, plain run");
    pf_assert_ok(&pre, "term_restore readback, preloaded run");
    cr_assert(strstr(plain.out, "SIGUSR1 masked 1\n") != NULL, "%s", plain.out);
    cr_assert_str_eq(pre.out, plain.out, "%s", pre.err);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

/* A vfork child that resets the terminating signals whose action is not
 * the default (CPython's subprocess before exec; pfalloc's handler shows as
 * the default, so it stays) and gets SIGTERM before its exec ran pfalloc's
 * handler in the parent's memory: it wrote the exit report as the parent,
 * whose own report at its exit was then never written
 * (tests/progs/vfork_term.c). A process other than the one that installed
 * the handler (or a fork child, which takes it over) now only dies. */
Test(report_safety, a_vfork_child_killed_before_exec_leaves_the_parents_report)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("vfork_term"), NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 60}, &r);
    pf_assert_ok(&r, "vfork_term");
    long parent = 0;
    cr_assert(sscanf(r.out, "vfork_term: parent %ld, child died of signal 15", &parent) == 1, "%s", r.out);
    char want[96];
    snprintf(want, sizeof want, "==== pfalloc report: pid %ld (vfork_term), reason exit,", parent);
    cr_assert(pf_count(r.err, "==== pfalloc report: ") == 1 && strstr(r.err, want) != NULL,
              "want the parent's exit report only (pid %ld):\n%s", parent, r.err);
    pf_run_free(&r);
}

/* The first process of a PID namespace (a container's, without an init)
 * never gets a signal whose action is the default: the kernel drops it.
 * pfalloc's handler on SIGTERM, SIGINT and SIGHUP let them in: select()
 * failed with EINTR, the exit report was written while the process ran on,
 * and none at its exit (tests/progs/pid1.c under unshare -fp). No handler
 * is put there now. */
Test(report_safety, a_namespace_init_gets_no_terminating_signal_handler)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("unshare");
    const char *const argv[] = {"unshare", "-fp", "--mount-proc", PROG("pid1"), NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 60}, &r);
    if (!(r.exited && r.code == 0 && strncmp(r.out, "pid1: ", 6) == 0)) {
        pf_run_free(&r);
        cr_skip_test("no new PID namespace here (unshare -fp needs privileges)");
    }
    cr_assert_str_eq(r.out, "pid1: SIGINT flags 0, restorer none\npid1: select 0\npid1: child died of signal 1\n",
                     "the dropped signals reached it:\n%s", r.err);
    /* Its own at its exit, and its child's, which is no namespace's first
     * process: that one has the handler where it sets the default again
     * (it had none, and no report). */
    cr_assert(pf_count(r.err, "(pid1), reason exit,") == 2, "want two exit reports:\n%s", r.err);
    pf_run_free(&r);
    /* The same where the namespace's first process is a fork child of a
     * process that had the handler (unshare(CLONE_NEWPID), then fork, no
     * exec): it kept the handler, and select failed with EINTR. */
    const char *const self[] = {PROG("pid1"), "unshare", NULL};
    pf_spawn(self, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 60}, &r);
    if (r.exited && r.code == 4) {
        pf_run_free(&r);
        return;
    }
    pf_assert_ok(&r, "pid1 unshare");
    /* Its SIGINT reads back as the default it was (pfalloc's handler put
     * back through glibc showed glibc's restorer). */
    cr_assert_str_eq(r.out, "pid1: SIGINT flags 0, restorer none\npid1: select 0\npid1: child died of signal 1\n",
                     "pid1 unshare:\n%s", r.err);
    pf_run_free(&r);
}

/* Setting the default where pfalloc's handler goes took three calls (the
 * program's action, a read-back, pfalloc's handler): a SIGTERM in between
 * killed the process with no report (tests/progs/term_race.c loop; 40 runs
 * of 40), and another thread's handler set in between was replaced by
 * pfalloc's though it read back as set (term_race threads: SIGTERM then
 * killed the process). It is one call again. */
Test(report_safety, setting_the_default_races_neither_a_signal_nor_a_thread, .timeout = 180)
{
    for (int round = 0; round < 5; round++) {
        const char *const argv[] = {PROG("term_race"), "loop", NULL};
        struct pf_run r;
        terminated_when(argv, "term_race: looping\n", 20, &r);
        cr_assert(pf_count(r.err, "(term_race), reason exit,") == 1, "round %d: want the exit report:\n%s", round,
                  r.err);
        pf_run_free(&r);
    }
    const char *const argv[] = {PROG("term_race"), "threads", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 120}, &r);
    pf_assert_ok(&r, "term_race threads");
    cr_assert(strncmp(r.out, "term_race: ok, ", 15) == 0, "%s", r.out);
    pf_run_free(&r);
}

Test(report_safety, term_report_off_leaves_sigterm_alone)
{
    struct pf_child c;
    const char *const argv[] = {PROG("daemonish"), "30", NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", "PFALLOC_TERM_REPORT=0", NULL};
    PF_REQUIRE_PRELOAD();
    pf_child_start(&c, "term", argv, env, PF_PRELOAD);
    cr_assert(pf_wait_for_text(c.out_path, "daemonish: started\n", 20000));
    cr_assert(!pf_catches(c.pid, SIGTERM));
    kill(c.pid, SIGTERM);
    struct pf_run r;
    pf_child_wait(&c, 30, &r);
    cr_assert(r.signo == SIGTERM, "%s", pf_run_how(&r));
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(report_safety, program_sigterm_handler_is_left_alone)
{
    /* ownsignal installs its own SIGTERM handler and raises the signal
     * three times: its handler runs each time, and the one exit report is
     * written at its normal exit. */
    PF_REQUIRE_PRELOAD();
    char num[8];
    snprintf(num, sizeof num, "%d", SIGTERM);
    const char *const argv[] = {PROG("ownsignal"), num, NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "ownsignal");
    cr_assert(strstr(r.out, "handler ran 3 times") != NULL, "%s", r.out);
    cr_assert(pf_count(r.err, PF_REPORT_MARK) == 1, "%s", r.err);
    pf_run_free(&r);
}

Test(report_safety, python_still_sees_the_default_sigint_action)
{
    /* CPython installs its KeyboardInterrupt handler only where SIGINT's
     * action is the default: it must still see the default. */
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    const char *const argv[] = {"python3", "-c",
                                "import os, signal, time\n"
                                "try:\n"
                                "    os.kill(os.getpid(), signal.SIGINT)\n"
                                "    time.sleep(5)\n"
                                "except KeyboardInterrupt:\n"
                                "    print('KeyboardInterrupt')\n"
                                "print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)\n",
                                NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "python3");
    cr_assert(strcmp(r.out, "KeyboardInterrupt\nTrue\n") == 0, "%s", r.out);
    pf_run_free(&r);
}

Test(report_safety, sigterm_during_allocation_storm_never_hangs, .timeout = 300)
{
    /* The signal lands wherever the threads are, in malloc and free
     * included: the process always dies of it, with an exit report (with
     * its leak section, or a note where a lock could not be had). */
    for (int i = 0; i < 10; i++) {
        struct pf_child c;
        const char *const argv[] = {PROG("sigstorm"), "100000000", NULL};
        const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
        start_caught(&c, argv, env, SIGTERM);
        pf_sleep_ms(50 + 30 * i);
        kill(c.pid, SIGTERM);
        struct pf_run r;
        pf_child_wait(&c, 60, &r);
        cr_assert(!r.timed_out && r.signo == SIGTERM, "run %d: %s", i, pf_run_how(&r));
        cr_assert(pf_has_report(r.err, "sigstorm"), "run %d: %s", i, r.err);
        cr_assert(strstr(r.err, "==== end of pfalloc report ====\n") != NULL, "run %d: %s", i, r.err);
        cr_assert(strstr(r.err, "\nleaks: ") != NULL, "run %d: %s", i, r.err);
        pf_run_free(&r);
        pf_child_free(&c);
    }
}

/* Two threads end the process at once (tests/progs/exit_two.c, what perl
 * does when a thread calls exit while others run): the second thread's
 * exit finds no handler left and ends the process at once. It allocates
 * first, and its allocations waited for the exit report's walk only, so
 * it ended the process while the report was being written: no report at
 * all in 5 runs of 6 (perl: 3 of 4). Other threads' allocations now wait
 * until the exit report is written. */
Test(report_safety, another_threads_exit_waits_for_the_exit_report, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    for (int round = 0; round < 5; round++) {
        const char *const argv[] = {PROG("exit_two"), NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 60}, &r);
        cr_assert(r.exited && (r.code == 0 || r.code == 3), "round %d: %s\n%s", round, pf_run_how(&r), r.err);
        cr_assert_str_eq(r.out, "exit_two: 1000000 objects\n", "round %d", round);
        cr_assert(strncmp(r.err, PF_REPORT_MARK, strlen(PF_REPORT_MARK)) == 0 &&
                      strstr(r.err, "\n==== end of pfalloc report ====\n") != NULL,
                  "round %d: no whole exit report (exit %d):\n%s", round, r.code, r.err);
        pf_run_free(&r);
    }
}

/* The process exits while a signal report's walk (PFALLOC_REACH_SIGNAL=1)
 * is still reading the heap in another thread (tests/progs/slow_walk.c
 * starves that thread). The exit's walk waited two seconds for it, then
 * took the reachability pass's tables from under it: the process died of
 * SIGSEGV in 3 runs of 3, with no report. The exit's report now leaves its
 * leak section out and says why, and the program's status stands. */
Test(report_safety, an_exit_leaves_a_signal_walk_that_still_reads_alone, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const env[] = {"PFALLOC_REACH_SIGNAL=1", NULL};
    for (int round = 0; round < 2; round++) {
        /* A heap whose walk needs far more time than a starved thread
         * gets in the exit's two seconds of waiting, even on a loaded
         * machine (with 300 000 objects it finished there at times). */
        const char *const argv[] = {PROG("slow_walk"), "1500000", NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 90}, &r);
        if (r.exited && r.code == 4)
            cr_skip_test("no thread can be starved here (SCHED_IDLE refused, or no schedstat)");
        cr_assert(r.exited && r.code == 5, "round %d: %s\n%s", round, pf_run_how(&r), r.err);
        cr_assert_str_eq(r.out, "slow_walk: 1500000 objects, walk under way\n", "round %d", round);
        cr_assert(pf_has_report(r.err, "slow_walk"), "round %d: %s", round, r.err);
        cr_assert(strstr(r.err, "reason exit,") != NULL &&
                      strstr(r.err, "\nleaks: not collected (a signal report's walk of the heap was still under way)\n"
                                    "==== end of pfalloc report ====\n") != NULL,
                  "round %d:\n%s", round, r.err);
        pf_run_free(&r);
    }
    /* Without an exit report, the leak status says it was not checked. */
    const char *const quiet[] = {"PFALLOC_REACH_SIGNAL=1", "PFALLOC_REPORT=signal", "PFALLOC_LEAK_EXIT_CODE=9", NULL};
    const char *const argv[] = {PROG("slow_walk"), "1500000", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = quiet, .timeout_s = 90}, &r);
    cr_assert(r.exited && r.code == 5, "%s\n%s", pf_run_how(&r), r.err);
    cr_assert(strstr(r.err, "pfalloc: PFALLOC_LEAK_EXIT_CODE: leaks not collected (a signal report's walk of the "
                            "heap was still under way): the exit status is the program's\n") != NULL,
              "%s", r.err);
    pf_run_free(&r);
}

/* The exit takes the walk over from a signal report that is only writing
 * (a full pipe), and no report signal may begin a walk under the exit's
 * (tests/progs/walk_handover.c). The writer, once the pipe was drained,
 * gave the walk back as if it were still its own, and the next report
 * signal's handler began a walk that unmapped the exit's tables: SIGSEGV
 * in 6 runs of 6. */
Test(report_safety, no_signal_walk_begins_under_the_exits, .timeout = 240)
{
    PF_REQUIRE_PRELOAD();
    const char *const env[] = {"PFALLOC_REACH_SIGNAL=1", NULL};
    for (int round = 0; round < 2; round++) {
        const char *const argv[] = {PROG("walk_handover"), NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 90}, &r);
        cr_assert(r.exited && r.code == 7, "round %d: %s\n%s", round, pf_run_how(&r), pf_tail(r.out, r.out_len, 2000));
        cr_assert(strstr(r.out, "walk_handover: 5000000 objects, exiting\n") != NULL, "round %d", round);
        const char *exit_report = strstr(r.out, "reason exit,");
        cr_assert(exit_report != NULL, "round %d: no exit report:\n%s", round, pf_tail(r.out, r.out_len, 2000));
        const char *leaks = strstr(exit_report, "\nleaks: 500000");
        cr_assert(leaks != NULL && strstr(leaks, " still live at exit") < strchr(leaks + 1, '\n'),
                  "round %d: the exit report's leak section:\n%s", round, pf_tail(exit_report, strlen(exit_report), 3000));
        pf_run_free(&r);
    }
}

/* A handler of the program's calls exit while its thread is in a report
 * signal's walk (tests/progs/exit_in_walk.c): the exit's check and walk
 * asked for the family lock the interrupted walk held, and pfalloc stopped
 * the program as if malloc had been called from a handler that interrupted
 * malloc (status 134, no report, in 3 runs of 3). The exit report now
 * leaves the leak section out, as a terminating signal's does there. */
Test(report_safety, an_exit_from_a_handler_that_interrupted_a_walk_keeps_out_of_it, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const env[] = {"PFALLOC_REACH_SIGNAL=1", NULL};
    for (int round = 0; round < 2; round++) {
        const char *const argv[] = {PROG("exit_in_walk"), NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 60}, &r);
        if (r.exited && r.code == 4)
            cr_skip_test("no /proc/self/task/N/schedstat here");
        cr_assert(r.exited && r.code == 3, "round %d: %s\n%s", round, pf_run_how(&r), r.err);
        cr_assert_str_eq(r.out, "exit_in_walk: 3000000 objects\n", "round %d", round);
        cr_assert(pf_has_report(r.err, "exit_in_walk"), "round %d: %s", round, r.err);
        const char *exit_report = strstr(r.err, "reason exit,");
        cr_assert(exit_report != NULL && strstr(exit_report, "\nleaks: not collected (") != NULL &&
                      strstr(exit_report, "\n==== end of pfalloc report ====\n") != NULL,
                  "round %d:\n%s", round, r.err);
        pf_run_free(&r);
    }
}

/* ---- a service whose system calls are filtered ------------------------------ */

#define SANDBOXED(mode) PROG("sandboxed"), PF_DATA_DIR "/system-service.syscalls", mode

/* The figure of the text report's line that starts with `label`, or -1. */
static long long report_figure(const char *err, const char *label)
{
    const char *p = strstr(err, label);
    long long v = -1;
    if (p && sscanf(p + strlen(label), " %lld", &v) != 1)
        v = -1;
    return v;
}

/* A service that systemd runs with SystemCallFilter=@system-service (the
 * set most hardened services use) may make only the calls of that set:
 * any other kills it with SIGSYS, or fails with EPERM under
 * SystemCallErrorNumber=EPERM. Real programs run under such a filter, with
 * pfalloc's default exit report, call sites, a SIGUSR1 report and a leak
 * walk, end as they do without pfalloc, and their reports are whole: the
 * report's count of resident pages asked the kernel with mincore, which
 * the set leaves out, and killed every such process at its exit. */
Test(report_safety, a_service_filtered_to_system_service_calls_ends_as_without_pfalloc, .timeout = 300)
{
    PF_REQUIRE_PRELOAD();
    static const char perl_script[] = "my @a = map { 'x' x $_ } 1..2000; kill 'USR1', $$ if $ENV{LD_PRELOAD}; print scalar(@a), qq{\\n};";
    static const char py_script[] =
        "import json; print(len(json.dumps([{'k': i, 'v': str(i) * 3} for i in range(20000)])))";
    struct {
        const char *name; /* the program's short name, for its report */
        const char *argv[10];
        const char *env[4];
    } runs[] = {
        {"expr", {SANDBOXED("kill"), "expr", "1", "+", "1", NULL}, {NULL}},
        {"expr", {SANDBOXED("eperm"), "expr", "1", "+", "1", NULL}, {NULL}},
        {"sort", {SANDBOXED("kill"), "sort", "-r", PF_DATA_DIR "/workload.pl", NULL}, {NULL}},
        {"python3", {SANDBOXED("kill"), "python3", "-c", py_script, NULL}, {"PYTHONMALLOC=malloc", "PFALLOC_SITES=1", NULL}},
        {"perl", {SANDBOXED("kill"), "perl", "-e", perl_script, NULL}, {NULL}},
        {"leaky", {SANDBOXED("kill"), PROG("leaky"), NULL}, {"PFALLOC_SITES=1", NULL}},
        {"cxx_threads", {SANDBOXED("kill"), PROG("cxx_threads"), NULL}, {NULL}},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        struct pf_run plain, pre;
        pf_spawn(runs[i].argv, &(struct pf_spawn_opts){.mode = PF_PLAIN, .env = runs[i].env}, &plain);
        if (i == 0 && plain.exited && plain.code == 2 && strstr(plain.err, "seccomp"))
            cr_skip_test("no seccomp filter can be set here: %s", plain.err);
        pf_assert_ok(&plain, runs[i].name);
        /* pfalloc's defaults: the exit report and SIGUSR1's on stderr. */
        pf_spawn(runs[i].argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = runs[i].env}, &pre);
        pf_assert_same(&plain, &pre, runs[i].name);
        pf_assert_preloaded(&pre, runs[i].name);
        cr_assert(strstr(pre.err, "==== end of pfalloc report ====") != NULL, "%s (%s): the report stops:\n%s",
                  runs[i].name, runs[i].argv[2], pf_tail(pre.err, pre.err_len, 1500));
        if (strcmp(runs[i].name, "perl") == 0)
            cr_assert(strstr(pre.err, "(perl), reason signal") != NULL, "perl: no SIGUSR1 report:\n%s",
                      pf_tail(pre.err, pre.err_len, 1500));
        if (strcmp(runs[i].name, "leaky") == 0) {
            /* Its ten leaks, kept in a global, named. */
            const char *own = strstr(pre.err, "  the program's own by reachability:\n");
            long long reachable = own ? report_figure(own, "    still reachable:") : -1,
                      lost = own ? report_figure(own, "    definitely lost:") : -1;
            cr_assert(reachable == 10 && lost == 0 && strstr(pre.err, "leak_small+") != NULL,
                      "leaky: %lld still reachable, %lld definitely lost:\n%s", reachable, lost,
                      pf_tail(pre.err, pre.err_len, 3000));
        }
        long long resident = report_figure(pre.err, "  resident bytes"),
                  live = report_figure(pre.err, "  live bytes");
        cr_assert(resident > 0 && resident >= live, "%s (%s): resident bytes %lld, live bytes %lld:\n%s",
                  runs[i].name, runs[i].argv[2], resident, live, pf_tail(pre.err, pre.err_len, 1500));
        pf_run_free(&plain);
        pf_run_free(&pre);
    }
}

/* Start-up sets the report signal's handler (a look, then the set) and the
 * three terminating signals' (a look at each, then a set of each, and one
 * look back for glibc's restorer): nine actions asked or set. Each signal
 * was looked at twice before the sets (start-up read the three, then read
 * them again to set them), twelve calls in every process. Counted with
 * strace where it is installed. */
Test(report_safety, start_up_reads_each_action_once)
{
    PF_REQUIRE_PRELOAD();
    const char *strace = pf_which("strace");
    if (!strace)
        cr_skip_test("strace is not installed");
    const char *const argv[] = {strace, "-f", "-e", "trace=rt_sigaction", "-E", "LD_PRELOAD=" PF_PRELOAD_LIB,
                                PROG("term_restore"), "none", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PLAIN}, &r);
    if (strstr(r.err, "PTRACE_TRACEME") || strstr(r.err, "Operation not permitted")) {
        pf_run_free(&r);
        cr_skip_test("strace cannot trace here");
    }
    cr_assert(strstr(r.err, "==== pfalloc report: pid ") != NULL, "not preloaded:\n%s", r.err);
    int calls = pf_count(r.err, "rt_sigaction(");
    cr_assert_eq(calls, 9, "%d rt_sigaction calls, want 9:\n%s", calls, r.err);
    pf_run_free(&r);
}

/* A filtered service that has used up its file descriptors: pfalloc can
 * open no /proc/self/pagemap at its exit. The count of resident pages
 * must not turn to mincore then (SIGSYS under the set): the run ends as
 * without pfalloc, its report whole, its resident figure no less than its
 * live one. */
Test(report_safety, a_filtered_service_without_a_free_descriptor_ends_as_without_pfalloc, .timeout = 60)
{
    PF_REQUIRE_PRELOAD();
    const char *argv[] = {SANDBOXED("kill"), PROG("nofds"), NULL};
    struct pf_run plain, pre;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PLAIN}, &plain);
    if (plain.exited && plain.code == 2 && strstr(plain.err, "seccomp"))
        cr_skip_test("no seccomp filter can be set here: %s", plain.err);
    pf_assert_ok(&plain, "nofds");
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD}, &pre);
    pf_assert_same(&plain, &pre, "nofds");
    pf_assert_preloaded(&pre, "nofds");
    cr_assert(strstr(pre.err, "==== end of pfalloc report ====") != NULL, "nofds: the report stops:\n%s",
              pf_tail(pre.err, pre.err_len, 1500));
    long long resident = report_figure(pre.err, "  resident bytes"), live = report_figure(pre.err, "  live bytes");
    cr_assert(resident > 0 && resident >= live, "nofds: resident bytes %lld, live bytes %lld:\n%s", resident, live,
              pf_tail(pre.err, pre.err_len, 1500));
    pf_run_free(&plain);
    pf_run_free(&pre);
}
