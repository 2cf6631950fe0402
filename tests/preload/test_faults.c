/*
 * Failure as a tested property: PFALLOC_FAULT makes the Nth mapping call
 * (mmap, mremap, madvise) fail, alone (N:1) or with every call after it
 * (N:0). The faultwalk program is run once to count the mappings it makes,
 * then once per N over that count (and a few beyond, into the exit path):
 * every run must exit 0 having found each block whole, every failing call
 * NULL with ENOMEM, a failed realloc leaving its block, and pf_stats
 * counting exactly what the program holds. Variants: plain, call sites
 * recorded, threads, a fork. The plain variants cover every N; the thread
 * and fork variants (whose count varies a little from run to run) take
 * every N up to a bound of runs, then a sample.
 */
#include "spawn.h"

TestSuite(faults, .timeout = 900);

#define WALK_RUNS_MAX 20

static void run_walk(const char *mode, const char *fault, const char *sites, struct pf_run *r)
{
    char fault_env[64];
    snprintf(fault_env, sizeof fault_env, "PFALLOC_FAULT=%s", fault ? fault : "");
    const char *env[4] = {PF_REPORT_ENV};
    int n = 1;
    if (sites)
        env[n++] = sites;
    if (fault)
        env[n++] = fault_env;
    env[n] = NULL;
    const char *const argv[] = {PF_PROGS_DIR "/faultwalk", mode, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
}

static unsigned long walk_count(const char *mode, const char *sites)
{
    struct pf_run r;
    run_walk(mode, NULL, sites, &r);
    cr_assert(r.exited && r.code == 0, "faultwalk %s without faults: %s\n%s", mode, pf_run_how(&r),
              pf_tail(r.out, r.out_len, 2000));
    cr_assert(strstr(r.err, PF_REPORT_MARK) != NULL, "not preloaded: %s", r.err);
    const char *m = strstr(r.out, "mappings ");
    cr_assert(m != NULL, "%s", r.out);
    unsigned long n = strtoul(m + 9, NULL, 10);
    cr_assert(strstr(r.out, "failed 0\n") != NULL, "%s", r.out);
    pf_run_free(&r);
    return n;
}

/* Runs faultwalk with the fault at every N in [1, count + 5] (every
 * step-th one when that is more than max_runs), K calls failing each time. */
static void walk(const char *mode, const char *sites, unsigned long k, unsigned long max_runs)
{
    PF_REQUIRE_PRELOAD();
    unsigned long count = walk_count(mode, sites);
    cr_assert_gt(count, 10, "the workload made only %lu mappings", count);
    unsigned long last = count + 5, step = (last + max_runs - 1) / max_runs;
    unsigned long runs = 0, with_failures = 0;
    for (unsigned long n = 1; n <= last; n += step) {
        char fault[48];
        snprintf(fault, sizeof fault, "%lu:%lu", n, k);
        struct pf_run r;
        run_walk(mode, fault, sites, &r);
        cr_assert(r.exited && r.code == 0 && strstr(r.out, "\nok\n") != NULL,
                  "faultwalk %s%s PFALLOC_FAULT=%s: %s\n%s\n%s", mode, sites ? " (sites)" : "", fault,
                  pf_run_how(&r), pf_tail(r.out, r.out_len, 1500), pf_tail(r.err, r.err_len, 1500));
        if (!strstr(r.out, "failed 0\n"))
            with_failures++;
        runs++;
        pf_run_free(&r);
    }
    cr_log_info("faultwalk %s%s K=%lu: %lu mappings, %lu runs, %lu saw calls fail", mode,
                sites ? " (sites)" : "", k, count, runs, with_failures);
    if (k == 0) /* from N on every mapping fails: the early runs must see it */
        cr_assert_gt(with_failures, runs / 2, "%lu of %lu runs saw a call fail", with_failures, runs);
}

Test(faults, every_mapping_fails_from_n_on)
{
    walk("plain", NULL, 0, 1000);
}

Test(faults, each_single_mapping_fails)
{
    walk("plain", NULL, 1, 1000);
}

Test(faults, every_mapping_fails_from_n_on_with_sites)
{
    walk("plain", "PFALLOC_SITES=1", 0, WALK_RUNS_MAX);
}

Test(faults, each_single_mapping_fails_with_sites)
{
    walk("plain", "PFALLOC_SITES=1", 1, WALK_RUNS_MAX);
}

Test(faults, threads_every_mapping_fails_from_n_on)
{
    walk("threads", NULL, 0, WALK_RUNS_MAX);
}

Test(faults, threads_single_mapping_fails)
{
    walk("threads", NULL, 1, WALK_RUNS_MAX);
}

Test(faults, fork_every_mapping_fails_from_n_on)
{
    walk("fork", NULL, 0, WALK_RUNS_MAX);
}

Test(faults, fork_single_mapping_fails)
{
    walk("fork", NULL, 1, WALK_RUNS_MAX);
}

Test(faults, fault_switch_ignored_when_malformed)
{
    PF_REQUIRE_PRELOAD();
    struct pf_run r;
    run_walk("plain", "x1", NULL, &r);
    cr_assert(r.exited && r.code == 0 && strstr(r.out, "failed 0\n"), "%s", r.out);
    pf_run_free(&r);
}
