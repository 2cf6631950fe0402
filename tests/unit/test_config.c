/*
 * test_config.c — PFALLOC_* parsing, one variable at a time with good and
 * bad values, and loading from the environment: a bad value gets exactly
 * one warning line on stderr naming the variable and keeps the default,
 * good values are applied (including the span cache limit), and several
 * bad values get one line each.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "span.h"

static const char *const all_vars[] = {
    "PFALLOC_REPORT", "PFALLOC_SIGNAL", "PFALLOC_INTERVAL", "PFALLOC_OUT",
    "PFALLOC_FORMAT", "PFALLOC_SITES",  "PFALLOC_LEAK_EXIT_CODE", "PFALLOC_CACHE",
    "PFALLOC_CHECK",
    "PFALLOC_TERM_REPORT",
    "PFALLOC_REACH", "PFALLOC_REACH_SIGNAL",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
        unsetenv(all_vars[i]);
}

static struct pf_config fresh(void)
{
    struct pf_config c;
    pf_config_defaults(&c);
    return c;
}

/* Parses name=value into a default config; returns the result code. */
static int parse(struct pf_config *c, const char *name, const char *value)
{
    *c = fresh();
    return pf_config_parse(c, name, value);
}

#define GOOD(name, value, field, want)                                                             \
    do {                                                                                           \
        struct pf_config c_;                                                                       \
        cr_assert_eq(parse(&c_, name, value), 0, "%s=%s refused", name, value);                    \
        cr_assert_eq(c_.field, want, "%s=%s", name, value);                                        \
    } while (0)
#define BAD(name, value)                                                                           \
    do {                                                                                           \
        struct pf_config c_;                                                                       \
        cr_assert_eq(parse(&c_, name, value), -1, "%s=%s accepted", name, value);                  \
    } while (0)

Test(config, defaults)
{
    struct pf_config c = fresh();
    cr_assert_eq(c.report, PF_REPORT_EXIT | PF_REPORT_SIGNAL);
    cr_assert_eq(c.signo, SIGUSR1);
    cr_assert_eq(c.interval_ms, 0);
    cr_assert_str_eq(c.out, "");
    cr_assert_eq(c.json, 0);
    cr_assert_eq(c.sites, 0);
    cr_assert_eq(c.leak_exit_code, 0);
    cr_assert_eq(c.cache_bytes, (size_t)8 << 20);
    cr_assert_eq(c.reach, 1);
    cr_assert_eq(c.reach_signal, 0);
}

Test(config, report)
{
    GOOD("PFALLOC_REPORT", "exit", report, PF_REPORT_EXIT);
    GOOD("PFALLOC_REPORT", "signal", report, PF_REPORT_SIGNAL);
    GOOD("PFALLOC_REPORT", "both", report, PF_REPORT_EXIT | PF_REPORT_SIGNAL);
    GOOD("PFALLOC_REPORT", "off", report, 0);
    BAD("PFALLOC_REPORT", "junk");
    BAD("PFALLOC_REPORT", "");
    BAD("PFALLOC_REPORT", "exits");
}

Test(config, signal)
{
    GOOD("PFALLOC_SIGNAL", "USR1", signo, SIGUSR1);
    GOOD("PFALLOC_SIGNAL", "SIGUSR2", signo, SIGUSR2);
    GOOD("PFALLOC_SIGNAL", "USR2", signo, SIGUSR2);
    GOOD("PFALLOC_SIGNAL", "10", signo, 10);
    GOOD("PFALLOC_SIGNAL", "12", signo, 12);
    GOOD("PFALLOC_SIGNAL", "none", signo, 0);
    GOOD("PFALLOC_SIGNAL", "HUP", signo, SIGHUP);
    BAD("PFALLOC_SIGNAL", "KILL");
    BAD("PFALLOC_SIGNAL", "SIGKILL");
    BAD("PFALLOC_SIGNAL", "9");
    BAD("PFALLOC_SIGNAL", "STOP");
    BAD("PFALLOC_SIGNAL", "11"); /* SIGSEGV: the runtime needs it */
    BAD("PFALLOC_SIGNAL", "SEGV");
    BAD("PFALLOC_SIGNAL", "0");
    BAD("PFALLOC_SIGNAL", "65");
    BAD("PFALLOC_SIGNAL", "junk");
    BAD("PFALLOC_SIGNAL", "");
    BAD("PFALLOC_SIGNAL", "SIG");
    BAD("PFALLOC_SIGNAL", "-10");
}

Test(config, interval)
{
    GOOD("PFALLOC_INTERVAL", "10", interval_ms, 10000);
    GOOD("PFALLOC_INTERVAL", "0.5", interval_ms, 500);
    GOOD("PFALLOC_INTERVAL", "1.234", interval_ms, 1234);
    GOOD("PFALLOC_INTERVAL", "0", interval_ms, 0);
    GOOD("PFALLOC_INTERVAL", "3600", interval_ms, 3600000);
    BAD("PFALLOC_INTERVAL", "1.2345");
    BAD("PFALLOC_INTERVAL", "-1");
    BAD("PFALLOC_INTERVAL", "");
    BAD("PFALLOC_INTERVAL", "abc");
    BAD("PFALLOC_INTERVAL", "1.2.3");
    BAD("PFALLOC_INTERVAL", "10s");
    BAD("PFALLOC_INTERVAL", ".");
    BAD("PFALLOC_INTERVAL", "99999999999999999999");
}

Test(config, out)
{
    struct pf_config c;
    cr_assert_eq(parse(&c, "PFALLOC_OUT", "reports/pfalloc.%p.log"), 0);
    cr_assert_str_eq(c.out, "reports/pfalloc.%p.log");
    c = fresh();
    cr_assert_eq(pf_config_parse(&c, "PFALLOC_OUT", "report.txt"), 0);
    cr_assert_eq(pf_config_parse(&c, "PFALLOC_OUT", "stderr"), 0);
    cr_assert_str_eq(c.out, "", "stderr means no file");

    char path[600];
    memset(path, 'a', sizeof path);
    path[511] = 0; /* 511 bytes: the most that fits */
    cr_assert_eq(parse(&c, "PFALLOC_OUT", path), 0);
    cr_assert_str_eq(c.out, path);
    path[511] = 'a';
    path[512] = 0; /* 512 bytes: too long */
    BAD("PFALLOC_OUT", path);
    path[599] = 0;
    BAD("PFALLOC_OUT", path);
    BAD("PFALLOC_OUT", "");
}

Test(config, format)
{
    GOOD("PFALLOC_FORMAT", "text", json, 0);
    GOOD("PFALLOC_FORMAT", "json", json, 1);
    BAD("PFALLOC_FORMAT", "xml");
    BAD("PFALLOC_FORMAT", "");
}

Test(config, sites)
{
    GOOD("PFALLOC_SITES", "1", sites, 1);
    GOOD("PFALLOC_SITES", "0", sites, 0);
    GOOD("PFALLOC_SITES", "yes", sites, 1);
    GOOD("PFALLOC_SITES", "no", sites, 0);
    BAD("PFALLOC_SITES", "maybe");
    BAD("PFALLOC_SITES", "2");
    BAD("PFALLOC_SITES", "");
    GOOD("PFALLOC_REACH", "0", reach, 0);
    GOOD("PFALLOC_REACH", "off", reach, 0);
    GOOD("PFALLOC_REACH", "1", reach, 1);
    BAD("PFALLOC_REACH", "some");
    GOOD("PFALLOC_REACH_SIGNAL", "1", reach_signal, 1);
    BAD("PFALLOC_REACH_SIGNAL", "x");
}

Test(config, check)
{
    GOOD("PFALLOC_CHECK", "1", check, 1);
    GOOD("PFALLOC_CHECK", "0", check, 0);
    GOOD("PFALLOC_CHECK", "on", check, 1);
    BAD("PFALLOC_CHECK", "full");
    BAD("PFALLOC_CHECK", "");
}

Test(config, leak_exit_code)
{
    GOOD("PFALLOC_LEAK_EXIT_CODE", "0", leak_exit_code, 0);
    GOOD("PFALLOC_LEAK_EXIT_CODE", "7", leak_exit_code, 7);
    GOOD("PFALLOC_LEAK_EXIT_CODE", "255", leak_exit_code, 255);
    BAD("PFALLOC_LEAK_EXIT_CODE", "256");
    BAD("PFALLOC_LEAK_EXIT_CODE", "-1");
    BAD("PFALLOC_LEAK_EXIT_CODE", "7x");
    BAD("PFALLOC_LEAK_EXIT_CODE", "");
    BAD("PFALLOC_LEAK_EXIT_CODE", "18446744073709551623");
}

Test(config, term_report)
{
    cr_assert(fresh().term_report == 1, "on by default");
    GOOD("PFALLOC_TERM_REPORT", "0", term_report, 0);
    GOOD("PFALLOC_TERM_REPORT", "1", term_report, 1);
    GOOD("PFALLOC_TERM_REPORT", "off", term_report, 0);
    BAD("PFALLOC_TERM_REPORT", "later");
    BAD("PFALLOC_TERM_REPORT", "");
}

Test(config, cache)
{
    GOOD("PFALLOC_CACHE", "8M", cache_bytes, (size_t)8 << 20);
    GOOD("PFALLOC_CACHE", "1G", cache_bytes, (size_t)1 << 30);
    GOOD("PFALLOC_CACHE", "64K", cache_bytes, (size_t)64 << 10);
    GOOD("PFALLOC_CACHE", "4096", cache_bytes, 4096);
    GOOD("PFALLOC_CACHE", "0", cache_bytes, 0);
    BAD("PFALLOC_CACHE", "12x");
    BAD("PFALLOC_CACHE", "");
    BAD("PFALLOC_CACHE", "M");
    BAD("PFALLOC_CACHE", "-5M");
    BAD("PFALLOC_CACHE", "99999999999999G");
}

Test(config, unknown_variable)
{
    BAD("PFALLOC_NOPE", "1");
    BAD("PFALLOC_", "1");
}

/* ---- loading from the environment ------------------------------------------------------ */
static char captured[8192];

/* Runs pf_config_load with fd 2 going into a pipe; returns the bytes it wrote. */
static size_t load_capturing_stderr(void)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fds[1], 2), 0);
    close(fds[1]);
    pf_config_load(2);
    dup2(saved, 2);
    close(saved);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof captured - 1 && (r = read(fds[0], captured + n, sizeof captured - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    captured[n] = 0;
    return n;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void expect_one_warning(const char *name, const char *value)
{
    clear_env();
    setenv(name, value, 1);
    size_t n = load_capturing_stderr();
    cr_assert_gt(n, 0, "%s=%s: no warning", name, value);
    cr_assert_eq(count_lines(captured), 1, "%s: expected one line, got:\n%s", name, captured);
    cr_assert_eq(captured[n - 1], '\n', "the warning is a whole line");
    cr_assert(strncmp(captured, "pfalloc: ", 9) == 0, "got: %s", captured);
    cr_assert_not_null(strstr(captured, name), "the warning names %s: %s", name, captured);
    struct pf_config d = fresh();
    cr_assert(memcmp(&pf_config, &d, sizeof d) == 0, "%s=%s: the defaults must hold", name,
              value);
}

Test(config, a_bad_value_gets_one_warning_line_and_the_default)
{
    expect_one_warning("PFALLOC_REPORT", "junk");
    cr_assert_not_null(strstr(captured, "junk"), "the warning shows the value: %s", captured);
    expect_one_warning("PFALLOC_SIGNAL", "KILL");
    expect_one_warning("PFALLOC_INTERVAL", "-1");
    expect_one_warning("PFALLOC_INTERVAL", "");
    expect_one_warning("PFALLOC_FORMAT", "xml");
    expect_one_warning("PFALLOC_SITES", "maybe");
    expect_one_warning("PFALLOC_LEAK_EXIT_CODE", "256");
    expect_one_warning("PFALLOC_CACHE", "12x");
    expect_one_warning("PFALLOC_FORMAT", "x\nml\r"); /* a newline in the value stays on one line */
    cr_assert_not_null(strstr(captured, "=x?ml?: expected"), "%s", captured);
    /* An escape sequence in the value reaches no terminal: ESC and CSI (C1) as '?'. */
    expect_one_warning("PFALLOC_FORMAT", "\x1b[31mred\xc2\x9b" "0m");
    cr_assert_not_null(strstr(captured, "=?[31mred?0m: expected"), "%s", captured);
    char long_path[2000];
    memset(long_path, 'p', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = 0;
    expect_one_warning("PFALLOC_OUT", long_path);
}

Test(config, good_values_are_applied_silently)
{
    clear_env();
    setenv("PFALLOC_REPORT", "exit", 1);
    setenv("PFALLOC_SIGNAL", "USR2", 1);
    setenv("PFALLOC_INTERVAL", "2.5", 1);
    setenv("PFALLOC_OUT", "out/pf-%p.txt", 1);
    setenv("PFALLOC_FORMAT", "json", 1);
    setenv("PFALLOC_SITES", "1", 1);
    setenv("PFALLOC_LEAK_EXIT_CODE", "9", 1);
    setenv("PFALLOC_CACHE", "0", 1);
    size_t n = load_capturing_stderr();
    cr_assert_eq(n, 0, "unexpected output: %s", captured);
    cr_assert_eq(pf_config.report, PF_REPORT_EXIT);
    cr_assert_eq(pf_config.signo, SIGUSR2);
    cr_assert_eq(pf_config.interval_ms, 2500);
    cr_assert_str_eq(pf_config.out, "out/pf-%p.txt");
    cr_assert_eq(pf_config.json, 1);
    cr_assert_eq(pf_config.sites, 1);
    cr_assert_eq(pf_config.leak_exit_code, 9);
    cr_assert_eq(pf_config.cache_bytes, 0);
    /* PFALLOC_CACHE=0 reached the span pool: an empty span keeps no pages. */
    struct pf_span *s = pf_span_get(0);
    int clean;
    pf_span_take(s, &clean);
    s->state[0] = PF_SLOT_DIRTY;
    pf_span_give(s, 0);
    pf_span_put(s);
    cr_assert_eq(pf_span_cached_bytes(), 0);
}

Test(config, several_bad_values_get_a_line_each)
{
    clear_env();
    setenv("PFALLOC_FORMAT", "json", 1);
    setenv("PFALLOC_SITES", "maybe", 1);
    setenv("PFALLOC_CACHE", "12x", 1);
    setenv("PFALLOC_SIGNAL", "junk", 1);
    load_capturing_stderr();
    cr_assert_eq(count_lines(captured), 3, "got:\n%s", captured);
    cr_assert_not_null(strstr(captured, "PFALLOC_SITES"));
    cr_assert_not_null(strstr(captured, "PFALLOC_CACHE"));
    cr_assert_not_null(strstr(captured, "PFALLOC_SIGNAL"));
    cr_assert_null(strstr(captured, "PFALLOC_FORMAT"));
    cr_assert_eq(pf_config.json, 1, "the good value is applied");
    cr_assert_eq(pf_config.sites, 0);
    cr_assert_eq(pf_config.signo, SIGUSR1);
    cr_assert_eq(pf_config.cache_bytes, (size_t)8 << 20);
}

Test(config, loading_again_starts_from_the_defaults)
{
    clear_env();
    setenv("PFALLOC_FORMAT", "json", 1);
    load_capturing_stderr();
    cr_assert_eq(pf_config.json, 1);
    clear_env();
    cr_assert_eq(load_capturing_stderr(), 0);
    struct pf_config d = fresh();
    cr_assert(memcmp(&pf_config, &d, sizeof d) == 0);
}

/* pfalloc-dump must send the signal the library chose and know whether it
 * writes signal reports at all: its parse_signal and signal_reports_on
 * mirror config.c, which is the source. Both read every signal name Python
 * knows (with and without SIG, in three cases), every number around the
 * valid range, and malformed values, including non-ASCII letters and digits
 * that Python's own case and digit rules would take. */
static const char parity_py[] =
    "import importlib.machinery, importlib.util, signal, sys\n"
    "loader = importlib.machinery.SourceFileLoader('dump', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(importlib.util.spec_from_loader('dump', loader))\n"
    "loader.exec_module(m)\n"
    "names = {s.name[3:] for s in signal.Signals if s.name.startswith('SIG')} | set(m.SIGNAL_NAMES)\n"
    "vals = set()\n"
    "for n in names | {'none', 'exit', 'signal', 'both', 'off', 'exit,signal', 'signal,exit'}:\n"
    "    for f in (n, n.lower(), n.capitalize()):\n"
    "        vals |= {f, 'SIG' + f, 'sig' + f, 'Sig' + f, f + ' '}\n"
    "vals |= {str(i) for i in range(-1, 80)} | {'SIG%d' % i for i in range(0, 70)}\n"
    "vals |= {'', 'SIG', 'USR3', '10x', ' 10', '+10', '010', '0x10', '1e1', 'SIGSIGUSR1', 'U SR1',\n"
    "         '\\u017figusr2', 'u\\u017fr2', '\\uff35\\uff33\\uff32\\uff12', '\\uff11\\uff12', '\\u0663',\n"
    "         'SIGK\\u0130LL', 'ex\\u0131t', '\\u017fignal', '99999999999999999999999', '18446744073709551626'}\n"
    "for v in sorted(vals):\n"
    "    print('x' + v.encode().hex(), int(m.parse_signal(v)), int(m.signal_reports_on(v)))\n";

Test(config, dump_script_reads_signal_and_report_like_the_library)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 -c \"$PF_PY\" '%s/scripts/pfalloc-dump'", PF_SOURCE_DIR);
    setenv("PF_PY", parity_py, 1);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[1024];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, p)) {
        char hex[600], value[300];
        int py_signo, py_reports;
        cr_assert_eq(sscanf(line, "%599s %d %d", hex, &py_signo, &py_reports), 3, "%s", line);
        size_t len = strlen(hex + 1) / 2; /* "x" then the value's bytes in hex */
        for (size_t i = 0; i < len; i++)
            sscanf(hex + 1 + 2 * i, "%2hhx", (unsigned char *)&value[i]);
        value[len] = 0;
        /* The library keeps the default on a value it refuses. */
        struct pf_config c;
        int signo = parse(&c, "PFALLOC_SIGNAL", value) == 0 ? c.signo : SIGUSR1;
        int reports = parse(&c, "PFALLOC_REPORT", value) == 0 ? !!(c.report & PF_REPORT_SIGNAL) : 1;
        if (signo != py_signo || reports != py_reports) {
            cr_log_error("'%s': library signal %d reports %d, pfalloc-dump signal %d reports %d", value,
                         signo, reports, py_signo, py_reports);
            bad++;
        }
        n++;
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert_gt(n, 500, "only %d values compared", n);
    cr_assert_eq(bad, 0, "%d of %d values read differently", bad, n);
}
