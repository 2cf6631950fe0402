/*
 * The report scripts (scripts/pfalloc-*) against real programs:
 *  - pfalloc-run passes the program's exit status and fatal signal through
 *    and turns its options into PFALLOC_* variables and LD_PRELOAD;
 *  - pfalloc-dump gets one whole report from a running daemonish, from its
 *    report file or from its stderr file, and refuses a process without
 *    the preload;
 *  - pfalloc-view turns a stream of interval and exit reports into an HTML
 *    page whose SVG parses as XML;
 *  - pfalloc-sites resolves leaky's leak sites to leaky.c:<line>.
 * The test runner is never preloaded: pfalloc-run sets LD_PRELOAD for the
 * program it runs, and every other child gets it in its own environment.
 */
#include "spawn.h"

#include <sys/prctl.h>

#include <ctype.h>
#include <dirent.h>

TestSuite(scripts);

#define SCRIPT(name) PF_SOURCE_DIR "/scripts/" name
#define PROG(name) PF_PROGS_DIR "/" name

static void need_python(void)
{
    PF_REQUIRE_PROGRAM("python3");
}

/* Ends the child (SIGTERM) if it still runs, reaps it, removes its files. */
static void child_stop(struct pf_child *c)
{
    int status;
    kill(c->pid, SIGTERM);
    for (int i = 0; i < 2000 && waitpid(c->pid, &status, WNOHANG) == 0; i++)
        pf_sleep_ms(5);
    kill(-c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    pf_child_free(c);
}

static void start_daemonish(struct pf_child *c, const char *const *env, enum pf_mode mode)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("daemonish"), "30", NULL};
    pf_child_start(c, "scripts", argv, env, mode);
    cr_assert(pf_wait_for_text(c->out_path, "daemonish: started\n", 20000), "daemonish did not start");
}

static void run(const char *const argv[], const char *const *env, struct pf_run *r)
{
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .env = env, .timeout_s = 120};
    pf_spawn(argv, &o, r);
}

/* ---- pfalloc-run ----------------------------------------------------------------- */

Test(scripts, run_passes_the_exit_status)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("sh");
    PF_REQUIRE_PROGRAM("bash");
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR,
                                "--report", "exit", "--", "sh", "-c", "exit 3", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(r.exited && r.code == 3, "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    /* bash leaves through exit() (dash through _exit, which skips the exit
     * report): the report shows the shell ran preloaded. */
    const char *const argv_bash[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR,
                                     "--report", "exit", "--", "bash", "-c", "exit 4", NULL};
    run(argv_bash, NULL, &r);
    cr_assert(r.exited && r.code == 4, "%s\n%s", pf_run_how(&r), r.err);
    cr_assert(pf_has_report(r.err, "bash"), "%s", r.err);
    pf_run_free(&r);

    /* Without "--", the first argument that is not an option is the program. */
    const char *const argv2[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir=" PF_BUILD_DIR,
                                 "--report=off", "sh", "-c", "exit 5", "--report", NULL};
    run(argv2, NULL, &r);
    cr_assert(r.exited && r.code == 5, "%s\n%s", pf_run_how(&r), r.err);
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
}

Test(scripts, run_passes_a_fatal_signal)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("sh");
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--",
                                "sh", "-c", "kill -TERM $$", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(!r.exited && r.signo == SIGTERM, "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
}

/* Only the caller's shell tells of the signal, as without pfalloc-run: the
 * script's own bash said it too when it reaped the program, a notice with
 * the script's line and code ("pfalloc-run: line N: PID Killed
 * ( for v in ...; exec "$@" ) 0<&0", four lines). */
Test(scripts, run_says_nothing_of_a_fatal_signal)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("sh");
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--report",
                                "off", "--", "sh", "-c", "kill -KILL $$", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(!r.exited && r.signo == SIGKILL, "%s\n%s", pf_run_how(&r), r.err);
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
}

/* A caller's stderr that is closed or full: the program's status still
 * comes through, though the line that points at the other processes'
 * report files cannot be written (it ended the script with status 1), and
 * a closed stderr stays closed for the program (bash had this script open
 * on descriptor 2 too, and the program got that). */
Test(scripts, run_keeps_the_status_without_a_stderr)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("sh");
    PF_REQUIRE_PROGRAM("cat");
    static const char *const redirects[] = {"2>&-", "2>/dev/full"};
    static const char *const saw[] = {"closed\n", "open\n"};
    for (int i = 0; i < 2; i++) {
        char line[256];
        snprintf(line, sizeof line, "exec \"$0\" \"$@\" %s", redirects[i]);
        const char *const argv[] = {"sh", "-c", line, SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR,
                                    "--", "sh", "-c",
                                    "true | cat; if [ -e /proc/$$/fd/2 ]; then echo open; else echo closed; fi; exit 3",
                                    NULL};
        struct pf_run r;
        run(argv, NULL, &r);
        cr_assert(r.exited && r.code == 3, "%s: %s\n%s", redirects[i], pf_run_how(&r), r.out);
        cr_assert_str_eq(r.out, saw[i], "%s", redirects[i]);
        pf_run_free(&r);
    }
}

Test(scripts, run_options_become_variables)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("printenv");
    char *dir = pf_tempdir("runvars");
    char out[600];
    snprintf(out, sizeof out, "%s/report.%%p", dir);
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR,
                                "--report", "exit", "--signal", "USR2", "--interval=30", "--out", out,
                                "--json", "--sites", "--cache", "1M", "--check", "--",
                                "printenv", "PFALLOC_REPORT", "PFALLOC_SIGNAL", "PFALLOC_INTERVAL",
                                "PFALLOC_OUT", "PFALLOC_FORMAT", "PFALLOC_SITES", "PFALLOC_CACHE",
                                "PFALLOC_CHECK", "LD_PRELOAD", NULL};
    /* An LD_PRELOAD already set stays, after ours. */
    const char *const env[] = {"LD_PRELOAD=libm.so.6", NULL};
    struct pf_run r;
    run(argv, env, &r);
    pf_assert_ok(&r, "pfalloc-run printenv");
    char want[2048];
    snprintf(want, sizeof want, "exit\nUSR2\n30\n%s\njson\n1\n1M\n1\n%s/libpfalloc.so:libm.so.6\n", out, PF_BUILD_DIR);
    cr_assert(strcmp(r.out, want) == 0, "got:\n%s\nwant:\n%s", r.out, want);
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
    /* The variables reached the library: one JSON report, in the file. */
    char *text = NULL;
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "report.", 7) != 0)
            continue;
        files++;
        char *p = pf_path(dir, e->d_name);
        text = pf_read_file(p, NULL);
        free(p);
    }
    closedir(d);
    cr_assert(files == 1 && text != NULL, "%d report files", files);
    cr_assert(strncmp(text, "{\"pid\":", 7) == 0 && pf_count(text, "\n") == 1, "%s", text);
    cr_assert(strstr(text, "\"reason\":\"exit\"") && strstr(text, "\"sites_recorded\":true"), "%.400s", text);
    free(text);
    pf_tempdir_remove(dir);
}

Test(scripts, run_leak_exit_code)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR,
                                "--leak-exit-code", "7", "--report", "off", PROG("leaky"), "lose", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(r.exited && r.code == 7, "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    const char *const argv2[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR,
                                 "--leak-exit-code", "7", "--report", "off", PROG("leaky"), "free", NULL};
    run(argv2, NULL, &r);
    cr_assert(r.exited && r.code == 0, "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
}

Test(scripts, run_refuses_bad_usage)
{
    const char *const unknown[] = {SCRIPT("pfalloc-run"), "--no-build", "--bogus", "true", NULL};
    struct pf_run r;
    run(unknown, NULL, &r);
    cr_assert(r.exited && r.code == 2 && strstr(r.err, "--bogus"), "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    const char *const none[] = {SCRIPT("pfalloc-run"), "--no-build", "--sites", NULL};
    run(none, NULL, &r);
    cr_assert(r.exited && r.code == 2 && strstr(r.err, "usage:"), "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    const char *const missing[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", "/nonexistent/build",
                                   "true", NULL};
    run(missing, NULL, &r);
    cr_assert(r.exited && r.code == 2 && strstr(r.err, "libpfalloc.so"), "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    const char *const help[] = {SCRIPT("pfalloc-run"), "--help", NULL};
    run(help, NULL, &r);
    cr_assert(r.exited && r.code == 0 && strstr(r.out, "--leak-exit-code"), "%s", r.out);
    pf_run_free(&r);
}

/* ---- pfalloc-dump ------------------------------------------------------------------ */

/* Checks `out` is exactly one whole text signal report from pid. */
static void assert_one_text_report(const char *out, pid_t pid)
{
    char head[128];
    snprintf(head, sizeof head, PF_REPORT_MARK "%d (daemonish), reason signal, ", (int)pid);
    const char *end = "==== end of pfalloc report ====\n";
    size_t n = strlen(out);
    cr_assert(strncmp(out, head, strlen(head)) == 0, "does not start with \"%s\":\n%.300s", head, out);
    cr_assert(n > strlen(end) && strcmp(out + n - strlen(end), end) == 0, "does not end with the end line:\n%s",
              pf_tail(out, n, 300));
    cr_assert(pf_count(out, PF_REPORT_MARK) == 1 && pf_count(out, end) == 1, "more than one report:\n%s", out);
    cr_assert(strstr(out, "\ntotals\n") && strstr(out, "\nfamily "), "%s", out);
}

Test(scripts, dump_from_the_report_file)
{
    need_python();
    struct pf_child c;
    char *dir = pf_tempdir("dumpfile");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s/reports.%%p", dir);
    const char *const env[] = {var, NULL};
    start_daemonish(&c, env, PF_PRELOAD);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)c.pid);
    const char *const argv[] = {SCRIPT("pfalloc-dump"), pid, "--timeout", "20", NULL};
    struct pf_run r1, r2;
    run(argv, NULL, &r1);
    pf_assert_ok(&r1, "pfalloc-dump");
    assert_one_text_report(r1.out, c.pid);
    /* A second dump prints the next report, not the first one again. */
    run(argv, NULL, &r2);
    pf_assert_ok(&r2, "pfalloc-dump");
    assert_one_text_report(r2.out, c.pid);
    cr_assert(strcmp(r1.out, r2.out) != 0, "the same report twice");
    char path[700];
    snprintf(path, sizeof path, "%s/reports.%d", dir, (int)c.pid);
    char *file = pf_read_file(path, NULL);
    cr_assert(pf_count(file, PF_REPORT_MARK) == 2 && strstr(file, r1.out) && strstr(file, r2.out),
              "the dumps are not the file's reports:\n%s", file);
    free(file);
    pf_run_free(&r1);
    pf_run_free(&r2);
    child_stop(&c);
    pf_tempdir_remove(dir);
}

Test(scripts, dump_from_a_report_file_whose_name_is_not_utf8)
{
    /* A Latin-1 file name (0xe9, "e" with an acute accent) is a file name
     * as good as any to the library; pfalloc-dump measured the name as
     * UTF-8 text and died with a traceback (UnicodeEncodeError). */
    need_python();
    struct pf_child c;
    char *dir = pf_tempdir("dumplatin");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s/r\xe9ports.%%p", dir);
    const char *const env[] = {var, NULL};
    start_daemonish(&c, env, PF_PRELOAD);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)c.pid);
    const char *const argv[] = {SCRIPT("pfalloc-dump"), pid, "--timeout", "20", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-dump");
    assert_one_text_report(r.out, c.pid);
    pf_run_free(&r);
    child_stop(&c);
    pf_tempdir_remove(dir);
}

Test(scripts, dump_json_from_a_stderr_file)
{
    need_python();
    struct pf_child c;
    const char *const env[] = {"PFALLOC_FORMAT=json", "PFALLOC_SIGNAL=USR2", NULL};
    start_daemonish(&c, env, PF_PRELOAD); /* its stderr is a regular file */
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)c.pid);
    const char *const argv[] = {SCRIPT("pfalloc-dump"), pid, NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-dump");
    cr_assert(pf_count(r.out, "\n") == 1 && r.out[r.out_len - 1] == '\n', "want one line:\n%s", r.out);
    /* It parses, and is the signal report of that process. */
    char code[256];
    snprintf(code, sizeof code,
             "import json,sys; d=json.loads(sys.stdin.read()); "
             "assert d['pid']==%d and d['reason']=='signal' and d['program']=='daemonish', d; print('ok')",
             (int)c.pid);
    char *tmp = pf_path(c.dir, "dump.json");
    pf_write_file(tmp, r.out, r.out_len);
    const char *const py[] = {"python3", "-c", code, NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .stdin_path = tmp, .timeout_s = 60};
    struct pf_run p;
    pf_spawn(py, &o, &p);
    cr_assert(p.exited && p.code == 0 && strcmp(p.out, "ok\n") == 0, "%s%s", p.out, p.err);
    pf_run_free(&p);
    free(tmp);
    pf_run_free(&r);
    child_stop(&c);
}

Test(scripts, dump_refuses_a_process_without_the_preload)
{
    need_python();
    struct pf_child c;
    start_daemonish(&c, NULL, PF_PLAIN);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)c.pid);
    const char *const argv[] = {SCRIPT("pfalloc-dump"), pid, "--timeout", "2", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(r.exited && r.code != 0, "%s", pf_run_how(&r));
    cr_assert(strstr(r.err, "libpfalloc.so is not loaded") != NULL, "%s", r.err);
    /* It sent nothing: SIGUSR1 would have killed daemonish. */
    cr_assert(waitpid(c.pid, NULL, WNOHANG) == 0, "daemonish died");
    pf_run_free(&r);
    child_stop(&c);
}

Test(scripts, dump_times_out_without_a_report)
{
    need_python();
    /* The report file is a planted symlink: the library refuses it and
     * writes to stderr, so nothing ever appears where the dump looks. */
    struct pf_child c;
    char *dir = pf_tempdir("dumptimeout");
    char *link = pf_path(dir, "reports");
    char *target = pf_path(dir, "elsewhere");
    cr_assert(symlink(target, link) == 0);
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", link);
    const char *const env[] = {var, NULL};
    start_daemonish(&c, env, PF_PRELOAD);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)c.pid);
    const char *const argv[] = {SCRIPT("pfalloc-dump"), pid, "--timeout", "0.5", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(r.exited && r.code == 1, "%s\n%s", pf_run_how(&r), r.err);
    cr_assert(strstr(r.err, "no report") != NULL, "%s", r.err);
    cr_assert(r.out_len == 0, "%s", r.out);
    pf_run_free(&r);
    child_stop(&c);
    free(link);
    free(target);
    pf_tempdir_remove(dir);
}

/* ---- pfalloc-view ---------------------------------------------------------------------- */

/* Checks an HTML page: it parses (html.parser, every element closed), and
 * each <svg> element parses as XML with lines drawn in it. Prints
 * "svg N polylines N circles N tables N" and the page's text. */
static const char check_html_py[] =
    "import sys, re, html.parser, xml.etree.ElementTree as ET\n"
    "page = open(sys.argv[1], encoding='utf-8').read()\n"
    "VOID = {'meta', 'br', 'img', 'hr', 'input', 'link'}\n"
    "class P(html.parser.HTMLParser):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.stack, self.tables, self.text = [], 0, []\n"
    "    def handle_starttag(self, tag, attrs):\n"
    "        if tag == 'table': self.tables += 1\n"
    "        if tag not in VOID: self.stack.append(tag)\n"
    "    def handle_startendtag(self, tag, attrs):\n"
    "        pass\n"
    "    def handle_endtag(self, tag):\n"
    "        assert self.stack and self.stack[-1] == tag, 'unbalanced </%s> in %s' % (tag, self.stack[-3:])\n"
    "        self.stack.pop()\n"
    "    def handle_data(self, d):\n"
    "        self.text.append(d)\n"
    "p = P(); p.feed(page); p.close()\n"
    "assert not p.stack, 'unclosed: %s' % p.stack\n"
    "assert page.startswith('<!DOCTYPE html>')\n"
    "assert 'http' not in page.replace('http://www.w3.org/2000/svg', ''), 'fetches something'\n"
    "assert not re.search(r'<script[^>]*\\bsrc', page), 'loads a script'\n"
    "svgs = re.findall(r'<svg\\b.*?</svg>', page, re.S)\n"
    "poly = circ = 0\n"
    "for s in svgs:\n"
    "    root = ET.fromstring(s)\n"
    "    ns = '{http://www.w3.org/2000/svg}'\n"
    "    assert root.tag == ns + 'svg'\n"
    "    poly += len(root.findall('.//' + ns + 'polyline'))\n"
    "    circ += len(root.findall('.//' + ns + 'circle'))\n"
    "print('svg', len(svgs), 'polylines', poly, 'circles', circ, 'tables', p.tables)\n"
    "print(' '.join(' '.join(p.text).split()))\n";

static void check_html(const char *path, unsigned *svgs, unsigned *polylines, unsigned *circles, unsigned *tables,
                       char **text)
{
    const char *const argv[] = {"python3", "-c", check_html_py, path, NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(r.exited && r.code == 0, "the page does not check out:\n%s%s", r.out, r.err);
    cr_assert(sscanf(r.out, "svg %u polylines %u circles %u tables %u", svgs, polylines, circles, tables) == 4,
              "%s", r.out);
    *text = strdup(strchr(r.out, '\n') + 1);
    pf_run_free(&r);
}

Test(scripts, view_renders_interval_and_exit_reports, .timeout = 150)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("view");
    char *stream = pf_path(dir, "reports.jsonl");
    char *html = pf_path(dir, "page.html");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", stream);
    const char *const env[] = {var, "PFALLOC_FORMAT=json", "PFALLOC_INTERVAL=0.2", NULL};
    const char *const dargv[] = {PROG("daemonish"), "1.0", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(dargv, &o, &r);
    pf_assert_ok(&r, "daemonish");
    pf_run_free(&r);
    /* And leaky's exit report, with sites, in the same stream. */
    const char *const lenv[] = {var, "PFALLOC_FORMAT=json", "PFALLOC_SITES=1", NULL};
    const char *const largv[] = {PROG("leaky"), NULL};
    struct pf_spawn_opts lo = {.mode = PF_PRELOAD, .env = lenv, .timeout_s = 60};
    pf_spawn(largv, &lo, &r);
    pf_assert_ok(&r, "leaky");
    pf_run_free(&r);
    char *data = pf_read_file(stream, NULL);
    size_t intervals = pf_count(data, "\"reason\":\"interval\"");
    cr_assert(intervals >= 2 && pf_count(data, "\"reason\":\"exit\"") == 2, "%.300s", data);
    free(data);

    const char *const argv[] = {SCRIPT("pfalloc-view"), "-o", html, stream, NULL};
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-view");
    cr_assert(r.err_len == 0, "%s", r.err);
    cr_assert(r.out_len == 0, "with -o nothing goes to stdout");
    pf_run_free(&r);
    unsigned svgs, polylines, circles, tables;
    char *text;
    check_html(html, &svgs, &polylines, &circles, &tables, &text);
    /* Two processes, seven charts each (per family, linear and logarithmic;
     * five totals); daemonish's have a line per series. */
    cr_assert(svgs == 14, "%u charts", svgs);
    cr_assert(polylines >= 3 && circles >= intervals + 1, "%u lines, %u points", polylines, circles);
    cr_assert(tables >= 3, "%u tables", tables);
    cr_assert(strstr(text, "daemonish, pid ") && strstr(text, "leaky, pid "), "%s", text);
    /* leaky's leak table, sites by name. */
    cr_assert(strstr(text, "leak_small+0x") && strstr(text, "leak_big+0x"), "%s", text);
    free(text);
    free(stream);
    free(html);
    pf_tempdir_remove(dir);
}

Test(scripts, view_copes_with_one_report_and_bad_lines)
{
    need_python();
    char *dir = pf_tempdir("viewbad");
    char *stream = pf_path(dir, "in.jsonl");
    char *html = pf_path(dir, "out.html");
    /* One signal report (no exit report), between lines that are not reports. */
    static const char input[] =
        "not json at all\n"
        "{\"pid\":42,\"program\":\"demo<&>\",\"reason\":\"signal\",\"time_s\":1.5,"
        "\"totals\":{\"live_bytes\":4096,\"mapped_bytes\":65536,\"cached_bytes\":0},"
        "\"families\":[{\"name\":\"struct a<b>\",\"kind\":\"typed\",\"slot_size\":32,\"live_objects\":128,"
        "\"live_bytes\":4096,\"mapped_bytes\":65536,\"spans\":1,\"peak_live_bytes\":4096,\"allocs\":128,"
        "\"frees\":0}]}\n"
        "{\"truncated\n"
        "[1, 2, 3]\n";
    pf_write_file(stream, input, sizeof input - 1);
    const char *const argv[] = {SCRIPT("pfalloc-view"), stream, NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-view");
    cr_assert(pf_count(r.err, "pfalloc-view: ") == 3, "want a warning per bad line:\n%s", r.err);
    cr_assert(strstr(r.err, ":1:") && strstr(r.err, ":3:") && strstr(r.err, ":4:"), "%s", r.err);
    pf_write_file(html, r.out, r.out_len);
    pf_run_free(&r);
    unsigned svgs, polylines, circles, tables;
    char *text;
    check_html(html, &svgs, &polylines, &circles, &tables, &text);
    /* Per family twice, and the three totals the report has (no resident figures). */
    cr_assert(svgs == 5 && circles >= 5, "%u charts, %u points", svgs, circles);
    cr_assert(strstr(text, "No exit report") != NULL, "%s", text);
    cr_assert(strstr(text, "struct a<b>") && strstr(text, "demo<&>"), "names are escaped and shown: %s", text);
    free(text);
    free(stream);
    free(html);
    pf_tempdir_remove(dir);
}

/* From stdin, a line that is not UTF-8 (a program's own output between
 * the reports) is skipped like any line that is no report, in a UTF-8
 * locale too, where Python reads stdin strictly: the whole read failed. */
Test(scripts, view_reads_stdin_with_a_line_not_utf8)
{
    need_python();
    char *dir = pf_tempdir("viewstdin");
    char *stream = pf_path(dir, "in.jsonl");
    static const char input[] =
        "caf\xe9 \xff\n"
        "{\"pid\":42,\"program\":\"demo\",\"reason\":\"signal\",\"time_s\":1.5,"
        "\"totals\":{\"live_bytes\":4096,\"mapped_bytes\":65536,\"cached_bytes\":0},"
        "\"families\":[{\"name\":\"struct a\",\"kind\":\"typed\",\"slot_size\":32,\"live_objects\":128,"
        "\"live_bytes\":4096,\"mapped_bytes\":65536,\"spans\":1,\"peak_live_bytes\":4096,\"allocs\":128,"
        "\"frees\":0}]}\n";
    pf_write_file(stream, input, sizeof input - 1);
    const char *const argv[] = {SCRIPT("pfalloc-view"), NULL};
    /* What a UTF-8 locale (en_US.UTF-8) gives Python's stdin. */
    const char *const env[] = {"PYTHONIOENCODING=utf-8:strict", NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .env = env, .stdin_path = stream, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "pfalloc-view");
    cr_assert(pf_count(r.err, "pfalloc-view: ") == 1 && strstr(r.err, "stdin:1: skipped"), "%s", r.err);
    cr_assert(strstr(r.out, "struct a") != NULL, "%.2000s", r.out);
    pf_run_free(&r);
    free(stream);
    pf_tempdir_remove(dir);
}

/* The reports of several processes, one file each (PFALLOC_OUT=reports.%p),
 * on one page, as README's `pfalloc-view -o page.html reports.*`: it took
 * one file only and stopped at the second ("unrecognized arguments"). */
Test(scripts, view_reads_a_file_per_process, .timeout = 150)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("bash");
    char *dir = pf_tempdir("viewmany");
    char *html = pf_path(dir, "page.html");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s/reports.%%p", dir);
    const char *const env[] = {var, "PFALLOC_FORMAT=json", NULL};
    /* leaky runs as a child of bash (not exec'd by it): two processes,
     * both leaving through exit(). */
    const char *const argv[] = {"bash", "-c", "\"$0\"; exit $?", PROG("leaky"), NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "bash running leaky");
    pf_run_free(&r);
    char *files[2];
    unsigned n = 0;
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, "reports.", 8) && n < 2)
            files[n++] = pf_path(dir, e->d_name);
    closedir(d);
    cr_assert(n == 2, "%u report files", n);

    const char *const vargv[] = {SCRIPT("pfalloc-view"), "-o", html, files[0], files[1], NULL};
    run(vargv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-view with two files");
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
    unsigned svgs, polylines, circles, tables;
    char *text;
    check_html(html, &svgs, &polylines, &circles, &tables, &text);
    cr_assert(strstr(text, "leaky, pid ") && strstr(text, "bash, pid "), "%s", text);
    cr_assert(svgs == 14, "%u charts", svgs);
    free(text);
    free(files[0]);
    free(files[1]);
    free(html);
    pf_tempdir_remove(dir);
}

/* ---- pfalloc-sites ------------------------------------------------------------------------ */

/* The line of leaky.c that holds `needle` (1-based). */
static int source_line(const char *needle)
{
    char *src = pf_read_file(PF_SOURCE_DIR "/tests/progs/leaky.c", NULL);
    const char *hit = strstr(src, needle);
    cr_assert(hit != NULL, "%s not in leaky.c", needle);
    int line = 1;
    for (const char *p = src; p < hit; p++)
        line += *p == '\n';
    free(src);
    return line;
}

/* The output line for site function `func`, or NULL. */
static const char *row_for(const char *out, const char *func)
{
    char pat[128];
    snprintf(pat, sizeof pat, " %s+0x", func);
    return strstr(out, pat);
}

static void assert_resolved(const char *out, const char *func, const char *needle)
{
    const char *row = row_for(out, func);
    cr_assert(row != NULL, "no row for %s:\n%s", func, out);
    const char *eol = strchr(row, '\n');
    char want[64];
    snprintf(want, sizeof want, "leaky.c:%d", source_line(needle));
    const char *hit = strstr(row, want);
    cr_assert(hit && (!eol || hit < eol) && !isdigit((unsigned char)hit[strlen(want)]),
              "%s should resolve to %s:\n%s", func, want, out);
}

/* The exit report of the command argv (text or JSON), with sites, in
 * dir/report; its path (the caller frees it). */
static char *report_of_run(const char *dir, const char *const argv[], const char *format)
{
    char *report = pf_path(dir, "report");
    char var[600], fmt[64];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", report);
    snprintf(fmt, sizeof fmt, "PFALLOC_FORMAT=%s", format);
    const char *const env[] = {var, fmt, "PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, argv[0]);
    pf_run_free(&r);
    return report;
}

/* The same for test program `name`, run without arguments. */
static char *report_with_sites(const char *dir, const char *name, const char *format)
{
    char prog[512];
    snprintf(prog, sizeof prog, "%s/%s", PF_PROGS_DIR, name);
    const char *const argv[] = {prog, NULL};
    return report_of_run(dir, argv, format);
}

static void sites_for(const char *format, char **out)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("addr2line");
    char *dir = pf_tempdir("sites");
    char *report = report_with_sites(dir, "leaky", format);
    struct pf_run r;
    const char *const argv[] = {SCRIPT("pfalloc-sites"), "--exe", PROG("leaky"), report, NULL};
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-sites");
    *out = r.out;
    free(r.err);
    free(report);
    pf_tempdir_remove(dir);
}

Test(scripts, sites_resolve_json_report)
{
    char *out;
    sites_for("json", &out);
    assert_resolved(out, "leak_small", "char *p = malloc(100);");
    assert_resolved(out, "leak_strings", "keep(strdup(text))");
    assert_resolved(out, "leak_big", "keep(calloc(1, 300000));");
    assert_resolved(out, "leak_realloc", "char *q = realloc(p, n);");
    /* objects, bytes and family come first on the line. */
    const char *row = row_for(out, "leak_small");
    const char *bol = row;
    while (bol > out && bol[-1] != '\n')
        bol--;
    unsigned long objects, bytes;
    cr_assert(sscanf(bol, "%lu %lu malloc-", &objects, &bytes) == 2 && objects == 5 && bytes == 500, "%s", out);
    free(out);
}

Test(scripts, sites_resolve_text_report)
{
    char *out;
    sites_for("text", &out);
    assert_resolved(out, "leak_small", "char *p = malloc(100);");
    assert_resolved(out, "leak_big", "keep(calloc(1, 300000));");
    free(out);
}

/* ---- file:line in the report pfalloc-run --sites shows ----------------------------------- */

/* The line of tests/progs/`file` holding `needle` (1-based). */
static int line_in(const char *file, const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/progs/%s", PF_SOURCE_DIR, file);
    char *src = pf_read_file(path, NULL);
    const char *hit = strstr(src, needle);
    cr_assert(hit != NULL, "%s not in %s", needle, file);
    int line = 1;
    for (const char *p = src; p < hit; p++)
        line += *p == '\n';
    free(src);
    return line;
}

/* Every report row for site `func` shows `want` (and the row exists). */
static void assert_row_shows(const char *err, const char *func, const char *want)
{
    char pat[128];
    snprintf(pat, sizeof pat, " %s+0x", func);
    int rows = 0;
    for (const char *row = strstr(err, pat); row; row = strstr(row + 1, pat)) {
        const char *eol = strchr(row, '\n');
        const char *hit = strstr(row, want);
        cr_assert(hit && (!eol || hit < eol) && !isdigit((unsigned char)hit[strlen(want)]),
                  "%s should show %s:\n%s", func, want, err);
        rows++;
    }
    cr_assert(rows > 0, "no row for %s:\n%s", func, err);
}

Test(scripts, run_sites_shows_file_and_line)
{
    PF_REQUIRE_PRELOAD();
    need_python();
    PF_REQUIRE_PROGRAM("addr2line");
    /* -O2 -g, nothing exported: names from the symbol table, lines from DWARF. */
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--sites",
                                "--report", "exit", "--", PF_BUILD_DIR "/progs/symbols", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-run --sites symbols");
    cr_assert(strstr(r.out, "symbols: 10 objects kept") != NULL, "%s", r.out);
    char want[256];
    snprintf(want, sizeof want, "(symbols.c:%d)", line_in("symbols.c", "/* symbols: leak_static_a's"));
    assert_row_shows(r.err, "leak_static_a", want);
    snprintf(want, sizeof want, "(symbols.c:%d)", line_in("symbols.c", "/* symbols: leak_static_b's"));
    assert_row_shows(r.err, "leak_static_b", want);
    snprintf(want, sizeof want, "(symbols.c:%d)", line_in("symbols.c", "/* symbols: leak_dup's"));
    assert_row_shows(r.err, "leak_dup", want);
    /* The wrapper inlined into its caller: both lines, innermost first. */
    snprintf(want, sizeof want, "(symbols.c:%d in xalloc, inlined into leak_inlined at symbols.c:%d)",
             line_in("symbols.c", "/* symbols: the inlined allocation"),
             line_in("symbols.c", "/* symbols: the call of the inlined wrapper"));
    assert_row_shows(r.err, "leak_inlined", want);
    /* The report is whole, once. */
    cr_assert(strstr(r.err, "==== end of pfalloc report ====\n") != NULL, "%s", r.err);
    pf_run_free(&r);
}

Test(scripts, run_reads_keywords_in_any_case_as_the_library_does)
{
    /* The library reads PFALLOC_FORMAT=Text as text and PFALLOC_OUT=STDERR
     * as stderr; pfalloc-run compared them in lower case only: --format
     * Text lost the file:line of the sites (no annotation for a format it
     * did not take for text), and PFALLOC_OUT=STDERR showed every
     * process's report instead of the program's alone. */
    PF_REQUIRE_PRELOAD();
    need_python();
    PF_REQUIRE_PROGRAM("addr2line");
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--sites",
                                "--format", "Text", "--report", "exit", "--", PF_BUILD_DIR "/progs/symbols", NULL};
    struct pf_run r;
    const char *const env[] = {"PFALLOC_OUT=STDERR", NULL};
    run(argv, env, &r);
    pf_assert_ok(&r, "pfalloc-run --sites --format Text symbols");
    char want[256];
    snprintf(want, sizeof want, "(symbols.c:%d)", line_in("symbols.c", "/* symbols: leak_static_a's"));
    assert_row_shows(r.err, "leak_static_a", want);
    pf_run_free(&r);
}

Test(scripts, run_sites_keeps_status_and_signal)
{
    PF_REQUIRE_PRELOAD();
    need_python();
    PF_REQUIRE_PROGRAM("addr2line");
    PF_REQUIRE_PROGRAM("sh");
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--sites",
                                "--", "sh", "-c", "exit 3", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    cr_assert(r.exited && r.code == 3, "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    const char *const argv2[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--sites",
                                 "--", "sh", "-c", "kill -TERM $$", NULL};
    run(argv2, NULL, &r);
    cr_assert(!r.exited && r.signo == SIGTERM, "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
}

Test(scripts, sites_find_the_module_from_the_report)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("addr2line");
    char *dir = pf_tempdir("sitespath");
    char *report = report_with_sites(dir, "leaky", "json");
    struct pf_run r;
    /* No --exe: the report names the program's file. */
    const char *const argv[] = {SCRIPT("pfalloc-sites"), report, NULL};
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-sites");
    assert_resolved(r.out, "leak_small", "char *p = malloc(100);");
    assert_resolved(r.out, "leak_big", "keep(calloc(1, 300000));");
    pf_run_free(&r);
    /* A report whose modules are gone: a clear failure, not "??". */
    static const char gone[] =
        "{\"pid\":1,\"program\":\"gone\",\"reason\":\"exit\",\"leaks\":{\"sites\":[{\"site\":\"f+0x1\","
        "\"module\":\"gone\",\"path\":\"/nonexistent/gone\",\"module_offset\":\"0x1234\",\"family\":\"malloc-16\","
        "\"objects\":1,\"bytes\":8,\"runtime\":false}]}}\n";
    pf_write_file(report, gone, sizeof gone - 1);
    run(argv, NULL, &r);
    cr_assert(r.exited && r.code == 1, "%s\n%s%s", pf_run_how(&r), r.out, r.err);
    cr_assert(strstr(r.err, "cannot find module /nonexistent/gone") != NULL, "%s", r.err);
    pf_run_free(&r);
    free(report);
    pf_tempdir_remove(dir);
}

/* The names of oddnames' families that hold only ASCII, as a report shows
 * them (the fake header cut to 63 bytes), each in the family column of
 * pfalloc-sites' line for it, followed by the site. */
static void assert_odd_families(const char *out)
{
    static const char *const names[] = {
        "==== pfalloc report: pid 1 (fake), reason exit, 0.000 s since s",
        "==== end of pfalloc report ====",
        "x+0x1 (/bin/sh+0x2)",
        "struct <b>&\"amp\"</b>",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "  %s main+0x", names[i]);
        cr_assert(strstr(out, want) != NULL, "no line for family %s:\n%s", names[i], out);
    }
    /* One line per family, every one resolved to its line in main. */
    cr_assert(pf_count(out, " main+0x") >= 8 && pf_count(out, "oddnames.c:") >= 8, "%s", out);
}

/* pfalloc-sites reads a leak row's family as a name, whatever it holds (a
 * site, a report's first or last line, Unicode's line separators), in both
 * formats: from the text report, the family column was empty and the site
 * column held the family and the reachability (for every report), and a
 * family that reads as a site took the row's module from it. */
Test(scripts, sites_read_families_with_odd_names)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("addr2line");
    char *dir = pf_tempdir("sitesodd");
    for (int json = 0; json < 2; json++) {
        char *report = report_with_sites(dir, "oddnames", json ? "json" : "text");
        const char *const argv[] = {SCRIPT("pfalloc-sites"), report, NULL};
        struct pf_run r;
        run(argv, NULL, &r);
        pf_assert_ok(&r, "pfalloc-sites");
        cr_assert(r.err_len == 0, "%s", r.err);
        assert_odd_families(r.out);
        pf_run_free(&r);
        if (!json) {
            /* --annotate finds the site of a row whose family reads as one. */
            const char *const aargv[] = {SCRIPT("pfalloc-sites"), "--annotate", report, NULL};
            run(aargv, NULL, &r);
            pf_assert_ok(&r, "pfalloc-sites --annotate");
            cr_assert(strstr(r.out, "x+0x1 (/bin/sh+0x2)    still reachable  main+0x") != NULL, "%s", r.out);
            cr_assert(pf_count(r.out, "(oddnames.c:") >= 8, "%s", r.out);
            pf_run_free(&r);
        }
        unlink(report);
        free(report);
    }
    pf_tempdir_remove(dir);
}

/* A leak in a library unloaded before the exit: its text row names the
 * site "libdlleak_a.so+0x... (libdlleak_a.so, unloaded)", which
 * pfalloc-sites lists and resolves in the library --lib finds, as from the
 * JSON report, rather than leaving the row out. */
Test(scripts, sites_read_a_site_in_an_unloaded_module)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("addr2line");
    char *dir = pf_tempdir("sitesunl");
    const char *const pargv[] = {PROG("dlclose_leaks"), PROG("libdlleak_a.so"), PROG("libdlleak_b.so"), NULL};
    char *report = report_of_run(dir, pargv, "text");
    struct pf_run r;
    char *text = pf_read_file(report, NULL);
    cr_assert(strstr(text, "(libdlleak_a.so, unloaded)") != NULL, "%s", text);
    free(text);
    const char *const argv[] = {SCRIPT("pfalloc-sites"), "--lib", PF_PROGS_DIR, report, NULL};
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-sites");
    const char *row = strstr(r.out, " libdlleak_a.so+0x");
    cr_assert(row != NULL, "no row for the unloaded library's site:\n%s%s", r.out, r.err);
    const char *eol = strchr(row, '\n');
    const char *hit = strstr(row, "dlleak_a.c:");
    cr_assert(hit && (!eol || hit < eol) && strstr(row, "[definitely lost]") < eol, "%s", r.out);
    pf_run_free(&r);
    unlink(report);
    free(report);
    pf_tempdir_remove(dir);
}

/* A family's name may hold a reachability and what reads as a site, or
 * end in a reachability right before the row's own column: the row's own
 * (the last column that can be one) is read as its reachability, and the
 * name whole as its family. */
Test(scripts, sites_read_the_last_reachability_of_a_row)
{
    need_python();
    PF_REQUIRE_PROGRAM("addr2line");
    char *dir = pf_tempdir("sitesreach");
    char *report = pf_path(dir, "report");
    static const char text[] =
        "==== pfalloc report: pid 7 (p), reason exit, 0.010 s since start ====\n"
        "leaks: 3 objects, 144 B still live at exit, the program's own: 3 objects, 144 B\n"
        "  allocated by the program:\n"
        "     objects        bytes  family                 reachability     site\n"
        "           2           96  struct quite_long_name definitely lost  (a) still reachable  "
        "main+0x6f (/bin/sh+0x10)\n"
        "           1           48  struct quite_long_name definitely lost still reachable  "
        "main+0x70 (/bin/sh+0x11)\n"
        "==== end of pfalloc report ====\n";
    pf_write_file(report, text, sizeof text - 1);
    const char *const argv[] = {SCRIPT("pfalloc-sites"), report, NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    static const char *const rows[] = {
        "  struct quite_long_name definitely lost  (a) main+0x6f ",
        "  struct quite_long_name definitely lost main+0x70 ",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *row = strstr(r.out, rows[i]);
        cr_assert(row != NULL, "no row for %s:\n%s%s", rows[i], r.out, r.err);
        const char *eol = strchr(row, '\n');
        const char *reach = strstr(row, "[still reachable]");
        cr_assert(reach && (!eol || reach < eol), "%s", r.out);
    }
    cr_assert(strstr(r.out, "lost]") == NULL, "%s", r.out);
    pf_run_free(&r);
    unlink(report);
    free(report);
    pf_tempdir_remove(dir);
}

/* A family's name is the program's to choose: one that holds Unicode's
 * line separators (where str.splitlines() breaks a line), a site, markup or
 * a report's first or last line is shown on pfalloc-view's page as a name,
 * and the report is read (it was skipped as "not JSON", split at the
 * U+2028 of a name). */
Test(scripts, view_reads_families_with_odd_names)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("viewodd");
    char *report = report_with_sites(dir, "oddnames", "json");
    char *html = pf_path(dir, "page.html");
    const char *const argv[] = {SCRIPT("pfalloc-view"), "-o", html, report, NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-view");
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
    unsigned svgs, polylines, circles, tables;
    char *text;
    check_html(html, &svgs, &polylines, &circles, &tables, &text);
    cr_assert(svgs == 7 && tables == 2, "%u charts, %u tables", svgs, tables);
    cr_assert(strstr(text, "oddnames, pid ") != NULL, "%s", text);
    static const char *const shown[] = {"struct line", "struct para", "struct nel", "x+0x1 (/bin/sh+0x2)",
                                        "struct <b>&\"amp\"</b>", "==== end of pfalloc report ===="};
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
        cr_assert(strstr(text, shown[i]) != NULL, "%s not on the page: %s", shown[i], text);
    free(text);
    free(html);
    free(report);
    pf_tempdir_remove(dir);
}

Test(scripts, view_shows_file_and_line_of_leak_sites)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("addr2line");
    char *dir = pf_tempdir("viewlines");
    char *stream = pf_path(dir, "in.jsonl");
    char *html = pf_path(dir, "out.html");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", stream);
    const char *const env[] = {var, "PFALLOC_FORMAT=json", "PFALLOC_SITES=1", "PFALLOC_REPORT=exit", NULL};
    const char *const pargv[] = {PROG("symbols"), NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(pargv, &o, &r);
    pf_assert_ok(&r, "symbols");
    pf_run_free(&r);
    const char *const argv[] = {SCRIPT("pfalloc-view"), "-o", html, stream, NULL};
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-view");
    pf_run_free(&r);
    unsigned svgs, polylines, circles, tables;
    char *text;
    check_html(html, &svgs, &polylines, &circles, &tables, &text);
    char want[256];
    snprintf(want, sizeof want, "symbols.c:%d", line_in("symbols.c", "/* symbols: leak_static_b's"));
    cr_assert(strstr(text, want) != NULL, "want %s in\n%s", want, text);
    snprintf(want, sizeof want, "symbols.c:%d in xalloc, inlined into leak_inlined at symbols.c:%d",
             line_in("symbols.c", "/* symbols: the inlined allocation"),
             line_in("symbols.c", "/* symbols: the call of the inlined wrapper"));
    cr_assert(strstr(text, want) != NULL, "want %s in\n%s", want, text);
    free(text);
    free(stream);
    free(html);
    pf_tempdir_remove(dir);
}

/* ---- one program, one report -------------------------------------------------------------- */

/* The report heads in `err`, counted; the pid of the first in *pid. */
static size_t report_heads(const char *err, int *pid)
{
    size_t n = 0;
    for (const char *p = strstr(err, PF_REPORT_MARK); p; p = strstr(p + 1, PF_REPORT_MARK)) {
        if (n == 0 && pid)
            *pid = atoi(p + strlen(PF_REPORT_MARK));
        n++;
    }
    return n;
}

/* The reports of every file in `dir` whose name starts with `prefix`, counted. */
static size_t reports_in(const char *dir, const char *prefix, int *files)
{
    size_t n = 0;
    *files = 0;
    DIR *d = opendir(dir);
    cr_assert(d != NULL, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char *p = pf_path(dir, e->d_name);
        char *text = pf_read_file(p, NULL);
        n += pf_count(text, PF_REPORT_MARK);
        (*files)++;
        free(text);
        free(p);
    }
    closedir(d);
    return n;
}

Test(scripts, run_shows_the_program_report_only)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("bash");
    /* bash forks two subshells that exit (through exit(), so each writes
     * an exit report), then prints its own pid. */
    char *dir = pf_tempdir("oneprog");
    char tmpdir[600];
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", dir);
    const char *const env[] = {tmpdir, NULL};
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--report", "exit",
                                "--", "bash", "-c", "x=$(echo hi; exit 0); (exit 0); echo $$ $x", NULL};
    struct pf_run r;
    run(argv, env, &r);
    pf_assert_ok(&r, "pfalloc-run bash");
    int pid = 0, head = -1;
    cr_assert(sscanf(r.out, "%d hi", &pid) == 1, "%s", r.out);
    cr_assert(report_heads(r.err, &head) == 1 && head == pid, "want only the report of pid %d:\n%s", pid, r.err);
    cr_assert(pf_has_report(r.err, "bash"), "%s", r.err);
    /* One line says where the others are, and they are there. */
    const char *line = strstr(r.err, "pfalloc-run: 2 more report files, from processes the program started, in ");
    cr_assert(line != NULL, "%s", r.err);
    char kept[700];
    cr_assert(sscanf(line + strlen("pfalloc-run: 2 more report files, from processes the program started, in "),
                     "%699s", kept) == 1);
    cr_assert(strncmp(kept, dir, strlen(dir)) == 0, "%s", kept);
    int files;
    cr_assert(reports_in(kept, "report.", &files) == 2 && files == 2, "%d files in %s", files, kept);
    pf_run_free(&r);

    /* --all: every process's report on stderr, nothing kept. */
    const char *const all[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--report", "exit",
                               "--all", "--", "bash", "-c", "x=$(echo hi; exit 0); (exit 0); echo $$ $x", NULL};
    run(all, env, &r);
    pf_assert_ok(&r, "pfalloc-run --all bash");
    cr_assert(report_heads(r.err, NULL) == 3, "%s", r.err);
    cr_assert(strstr(r.err, "pfalloc-run:") == NULL, "%s", r.err);
    pf_run_free(&r);

    /* --sites --all: the same, annotated. */
    const char *const sites[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--report", "exit",
                                 "--sites", "--follow-children", "--", "bash", "-c",
                                 "x=$(echo hi; exit 0); (exit 0); echo $$ $x", NULL};
    run(sites, env, &r);
    pf_assert_ok(&r, "pfalloc-run --sites --follow-children bash");
    cr_assert(report_heads(r.err, NULL) == 3, "%s", r.err);
    pf_run_free(&r);
    pf_tempdir_remove(dir);
}

Test(scripts, run_signal_report_reaches_stderr)
{
    PF_REQUIRE_PRELOAD();
    need_python();
    /* The program's own reports still come as they are written: a signal
     * report asked for while it runs, then its exit report. */
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--",
                                "bash", "-c", "kill -USR1 $$; sleep 0.3; exit 0", NULL};
    struct pf_run r;
    run(argv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-run bash");
    cr_assert(strstr(r.err, "(bash), reason signal, ") && strstr(r.err, "(bash), reason exit, "), "%s", r.err);
    pf_run_free(&r);
}

Test(scripts, run_out_relative_to_where_it_was_typed)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("bash");
    char *dir = pf_tempdir("outrel");
    char *sub = pf_path(dir, "sub");
    cr_assert(mkdir(sub, 0700) == 0);
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--report", "exit",
                                "--out", "reports.%p", "--", "bash", "-c", "cd sub && echo \"$$ $PFALLOC_OUT\"",
                                NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .cwd = dir, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "pfalloc-run --out reports.%p");
    int pid = 0;
    char out[700];
    cr_assert(sscanf(r.out, "%d %699s", &pid, out) == 2, "%s", r.out);
    char want[700];
    snprintf(want, sizeof want, "%s/reports.%%p", dir);
    cr_assert(strcmp(out, want) == 0, "PFALLOC_OUT=%s, want %s", out, want);
    int files;
    cr_assert(reports_in(dir, "reports.", &files) == 1 && files == 1, "no report in %s", dir);
    cr_assert(reports_in(sub, "reports.", &files) == 0 && files == 0, "a report in %s", sub);
    pf_run_free(&r);
    free(sub);
    pf_tempdir_remove(dir);
}

Test(scripts, dump_through_the_pid_of_pfalloc_run)
{
    need_python();
    PF_REQUIRE_PRELOAD();
    /* pfalloc-run runs the program as its child: the pid a user has from
     * `pfalloc-run prog &` is the script's, and still gets the report. */
    struct pf_child c;
    const char *const argv[] = {SCRIPT("pfalloc-run"), "--no-build", "--build-dir", PF_BUILD_DIR, "--",
                                PROG("daemonish"), "30", NULL};
    pf_child_start(&c, "dumprun", argv, NULL, PF_PLAIN);
    cr_assert(pf_wait_for_text(c.out_path, "daemonish: started\n", 20000), "daemonish did not start");
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)c.pid);
    const char *const dargv[] = {SCRIPT("pfalloc-dump"), pid, "--timeout", "20", NULL};
    struct pf_run r;
    run(dargv, NULL, &r);
    pf_assert_ok(&r, "pfalloc-dump");
    int program = 0;
    cr_assert(sscanf(r.err, "pfalloc-dump: process %*d is pfalloc-run; asking the program it runs, process %d",
                     &program) == 1 && program != c.pid, "%s", r.err);
    assert_one_text_report(r.out, program);
    pf_run_free(&r);
    child_stop(&c);
}
