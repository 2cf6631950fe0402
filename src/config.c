/*
 * config.c — PFALLOC_* variables, described once in a table: name, parser,
 * what the warning says is expected. Parsing uses no libc call that may
 * allocate (getenv, no strtol's locale paths), since it runs inside the
 * allocator's start-up.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "span.h"

struct pf_config pf_config = {
    .report = PF_REPORT_EXIT | PF_REPORT_SIGNAL,
    .signo = SIGUSR1,
    .term_report = 1,
    .reach = 1,
};

void pf_config_defaults(struct pf_config *c)
{
    memset(c, 0, sizeof(*c));
    c->report = PF_REPORT_EXIT | PF_REPORT_SIGNAL;
    c->signo = SIGUSR1;
    c->term_report = 1;
    c->cache_bytes = (size_t)8 << 20;
    c->stack_depth = PF_STACK_DEFAULT;
    c->reach = 1;
}

static int eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* Decimal with an optional fraction of up to 3 digits, scaled by 1000. */
static int parse_milli(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int digits = 0, frac = -1;
    for (; *s; s++) {
        if (*s == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (*s < '0' || *s > '9' || frac >= 3 || v > UINT64_MAX / 10000)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        digits++;
        if (frac >= 0)
            frac++;
    }
    if (!digits)
        return -1;
    for (int f = frac < 0 ? 0 : frac; f < 3; f++)
        v *= 10;
    *out = v;
    return 0;
}

static int parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (eq(s, "1") || eq(s, "yes") || eq(s, "on") || eq(s, "true"))
        *out = 1;
    else if (eq(s, "0") || eq(s, "no") || eq(s, "off") || eq(s, "false"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_report(struct pf_config *c, const char *s)
{
    if (eq(s, "both") || eq(s, "exit,signal") || eq(s, "signal,exit"))
        c->report = PF_REPORT_EXIT | PF_REPORT_SIGNAL;
    else if (eq(s, "exit"))
        c->report = PF_REPORT_EXIT;
    else if (eq(s, "signal"))
        c->report = PF_REPORT_SIGNAL;
    else if (eq(s, "off") || eq(s, "none"))
        c->report = 0;
    else
        return -1;
    return 0;
}

static int parse_signal(struct pf_config *c, const char *s)
{
    static const struct { const char *name; int signo; } names[] = {
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}, {"PROF", SIGPROF},
        {"URG", SIGURG},   {"WINCH", SIGWINCH}, {"PWR", SIGPWR}, {"none", 0},
    };
    if ((s[0] == 'S' || s[0] == 's') && (s[1] == 'I' || s[1] == 'i') && (s[2] == 'G' || s[2] == 'g'))
        s += 3;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (eq(s, names[i].name)) {
            c->signo = names[i].signo;
            return 0;
        }
    uint64_t n;
    /* By number: any catchable signal that is not one the runtime needs. */
    if (parse_uint(s, &n) == 0 && n >= 1 && n < (uint64_t)SIGRTMAX + 1 && n != SIGKILL &&
        n != SIGSTOP && n != SIGSEGV && n != SIGBUS && n != SIGFPE && n != SIGILL && n != SIGABRT &&
        n != SIGCHLD && (n < (uint64_t)SIGRTMIN ? n < 32 : 1)) {
        c->signo = (int)n;
        return 0;
    }
    return -1;
}

static int parse_size(const char *s, size_t *out)
{
    char num[32];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(num))
        return -1;
    memcpy(num, s, n + 1);
    uint64_t mult = 1;
    char last = num[n - 1];
    if (last == 'k' || last == 'K')
        mult = 1024;
    else if (last == 'm' || last == 'M')
        mult = 1024 * 1024;
    else if (last == 'g' || last == 'G')
        mult = 1024ull * 1024 * 1024;
    if (mult != 1)
        num[n - 1] = 0;
    uint64_t v;
    if (parse_uint(num, &v) != 0 || v > UINT64_MAX / mult)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}

int pf_config_parse(struct pf_config *c, const char *name, const char *v)
{
    uint64_t u;
    if (eq(name, "PFALLOC_REPORT"))
        return parse_report(c, v);
    if (eq(name, "PFALLOC_SIGNAL"))
        return parse_signal(c, v);
    if (eq(name, "PFALLOC_INTERVAL")) {
        if (parse_milli(v, &u) != 0 || u > 86400000ull * 365)
            return -1;
        c->interval_ms = u;
        return 0;
    }
    if (eq(name, "PFALLOC_OUT")) {
        size_t n = strlen(v);
        if (n == 0 || n >= sizeof(c->out))
            return -1;
        if (eq(v, "stderr"))
            c->out[0] = 0;
        else
            memcpy(c->out, v, n + 1);
        return 0;
    }
    if (eq(name, "PFALLOC_FORMAT")) {
        if (eq(v, "text"))
            c->json = 0;
        else if (eq(v, "json") || eq(v, "jsonl"))
            c->json = 1;
        else
            return -1;
        return 0;
    }
    if (eq(name, "PFALLOC_SITES"))
        return parse_bool(v, &c->sites);
    if (eq(name, "PFALLOC_LEAK_EXIT_CODE")) {
        if (parse_uint(v, &u) != 0 || u > 255)
            return -1;
        c->leak_exit_code = (int)u;
        return 0;
    }
    if (eq(name, "PFALLOC_CACHE"))
        return parse_size(v, &c->cache_bytes);
    if (eq(name, "PFALLOC_CHECK"))
        return parse_bool(v, &c->check);
    if (eq(name, "PFALLOC_TERM_REPORT"))
        return parse_bool(v, &c->term_report);
    if (eq(name, "PFALLOC_STACK_DEPTH")) {
        if (parse_uint(v, &u) != 0 || u < 1 || u > PF_STACK_MAX)
            return -1;
        c->stack_depth = (int)u;
        return 0;
    }
    if (eq(name, "PFALLOC_REACH"))
        return parse_bool(v, &c->reach);
    if (eq(name, "PFALLOC_REACH_SIGNAL"))
        return parse_bool(v, &c->reach_signal);
    return -1;
}

static const struct {
    const char *name;
    const char *expect;
} vars[] = {
    {"PFALLOC_REPORT", "exit, signal, both or off"},
    {"PFALLOC_SIGNAL", "a signal name such as USR1 or USR2, a number, or none"},
    {"PFALLOC_INTERVAL", "seconds, such as 10 or 0.5"},
    {"PFALLOC_OUT", "stderr or a file path (up to 511 bytes)"},
    {"PFALLOC_FORMAT", "text or json"},
    {"PFALLOC_SITES", "1 or 0"},
    {"PFALLOC_LEAK_EXIT_CODE", "an exit status from 0 to 255"},
    {"PFALLOC_CACHE", "a size in bytes, with an optional K, M or G"},
    {"PFALLOC_CHECK", "1 or 0"},
    {"PFALLOC_TERM_REPORT", "1 or 0"},
    {"PFALLOC_STACK_DEPTH", "a number of frames from 1 to 32"},
    {"PFALLOC_REACH", "1 or 0"},
    {"PFALLOC_REACH_SIGNAL", "1 or 0"},
};

static void warn(int fd, const char *name, const char *value, const char *expect)
{
    char buf[768];
    struct pf_fmt f;
    /* fmt keeps len < cap, so buf[len] is free for a newline a cut line lost. */
    pf_fmt_init(&f, buf, sizeof(buf) - 1, -1);
    pf_fmt_str(&f, "pfalloc: ignoring ");
    pf_fmt_str(&f, name);
    pf_fmt_char(&f, '=');
    pf_fmt_name(&f, value); /* the value stays on one line, an escape sequence is not sent */
    pf_fmt_str(&f, ": expected ");
    pf_fmt_str(&f, expect);
    pf_fmt_str(&f, " (using the default)\n");
    if (buf[f.len - 1] != '\n')
        buf[f.len++] = '\n';
    /* A stderr whose reader has gone must not end the program. */
    if (fd >= 0)
        pf_os_write_quiet(fd, buf, f.len);
}

void pf_config_load(int warn_fd)
{
    pf_config_defaults(&pf_config);
    if (pf_os_secure())
        return;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i].name);
        if (!v)
            continue;
        struct pf_config trial = pf_config;
        if (pf_config_parse(&trial, vars[i].name, v) == 0)
            pf_config = trial;
        else
            warn(warn_fd, vars[i].name, v, vars[i].expect);
    }
    pf_span_set_cache_limit(pf_config.cache_bytes);
}
