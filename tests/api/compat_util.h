/*
 * compat_util.h — helpers shared by the compatibility-header tests: a
 * family's figures, zero checks, capturing what a printer writes to fd 1
 * or 2, a number after a label, shell commands and a scratch directory.
 * Public headers only.
 */
#ifndef PF_TEST_COMPAT_UTIL_H
#define PF_TEST_COMPAT_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pfalloc.h"

/* The family's figures now; all zero (and name empty) when it has none. */
static inline struct pf_family_stats family(const char *name)
{
    static struct pf_stats st;
    struct pf_family_stats none;

    cr_assert_eq(pf_stats_get(&st), 0);
    for (uint32_t i = 0; i < st.nfamilies; i++)
        if (strcmp(st.fam[i].name, name) == 0)
            return st.fam[i];
    memset(&none, 0, sizeof none);
    return none;
}

static inline int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Runs fn with `fd` (1 or 2) sent to a temporary file; returns the text (malloc'd). */
static inline char *capture_fd(int fd, void (*fn)(void *), void *arg)
{
    fflush(stdout);
    fflush(stderr);
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    int saved = dup(fd);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fileno(tmp), fd), 0);
    fn(arg);
    cr_assert_geq(dup2(saved, fd), 0);
    close(saved);

    off_t len = lseek(fileno(tmp), 0, SEEK_END);
    cr_assert_geq(len, 0);
    char *text = malloc((size_t)len + 1);
    cr_assert_not_null(text);
    cr_assert_eq(pread(fileno(tmp), text, (size_t)len, 0), len);
    text[len] = '\0';
    fclose(tmp);
    return text;
}

static inline char *capture(void (*fn)(void *), void *arg)
{
    return capture_fd(1, fn, arg);
}

/* The number after `label` in line, or -1. */
static inline long long field(const char *line, const char *label)
{
    const char *p = strstr(line, label);
    if (!p)
        return -1;
    p += strlen(label);
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    return strtoll(p, NULL, 10);
}

/* Runs a shell command, returns its exit status (-1 if it did not exit). */
static inline int run(const char *cmd)
{
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

/* A scratch directory per test, removed by the test's .fini even when an
 * assertion stops the test early. */
static char scratch[64];

static inline void make_scratch(void)
{
    snprintf(scratch, sizeof scratch, "/tmp/pf_compat_XXXXXX");
    cr_assert_not_null(mkdtemp(scratch));
}

static inline void remove_scratch(void)
{
    char cmd[128];
    if (scratch[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
        (void)system(cmd);
    }
}

#endif
