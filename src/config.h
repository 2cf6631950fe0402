/*
 * config.h — the PFALLOC_* environment, read once (pf_config_load, from the
 * preload's constructor) and read-only afterwards. Every bad value gets one
 * warning line on stderr and the default. Under secure execution (setuid,
 * file capabilities) nothing is read: the defaults hold.
 */
#ifndef PF_CONFIG_H
#define PF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

enum { PF_REPORT_EXIT = 1, PF_REPORT_SIGNAL = 2 };
#define PF_STACK_DEFAULT 8
#define PF_STACK_MAX 32

struct pf_config {
    int report;           /* PFALLOC_REPORT: bit set of PF_REPORT_* (default both) */
    int signo;            /* PFALLOC_SIGNAL: report signal, 0 for none (default SIGUSR1) */
    uint64_t interval_ms; /* PFALLOC_INTERVAL: ms between reports, 0 for none */
    char out[512];        /* PFALLOC_OUT: "" for stderr, else a path (may hold %p) */
    int json;             /* PFALLOC_FORMAT: 1 for json, 0 for text */
    int sites;            /* PFALLOC_SITES: record call sites */
    int leak_exit_code;   /* PFALLOC_LEAK_EXIT_CODE: status on leaks, 0 for unchanged */
    int stack_depth;      /* PFALLOC_STACK_DEPTH: frames kept per allocation (1..PF_STACK_MAX, default 8) */
    size_t cache_bytes;   /* PFALLOC_CACHE: bound on empty-span pages kept resident */
    int check;            /* PFALLOC_CHECK: the checking mode (canaries, quarantine, guards) */
    int term_report;      /* PFALLOC_TERM_REPORT: exit report on SIGTERM/SIGINT/SIGHUP (default 1) */
    int reach;            /* PFALLOC_REACH: classify leaks by reachability (default 1) */
    int reach_signal;     /* PFALLOC_REACH_SIGNAL: the signal report carries the classified leaks */
};

PF_HIDDEN extern struct pf_config pf_config;

/* Reads the environment (getenv only; allocates nothing); a bad value's
 * warning goes to warn_fd (none when it is -1). */
PF_HIDDEN void pf_config_load(int warn_fd);
/* Parses one value; returns 0, or -1 when it is bad. Exposed for tests. */
PF_HIDDEN int pf_config_parse(struct pf_config *c, const char *name, const char *value);
/* The defaults. */
PF_HIDDEN void pf_config_defaults(struct pf_config *c);

#endif
