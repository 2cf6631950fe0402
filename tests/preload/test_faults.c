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

/* argv under the preload with its exit report, PFALLOC_FAULT=fault (none
 * when NULL) and `sites` (an environment entry, or NULL). */
static void run_faulty(const char *const argv[], const char *fault, const char *sites, struct pf_run *r)
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
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
}

static void run_walk(const char *mode, const char *fault, const char *sites, struct pf_run *r)
{
    const char *const argv[] = {PF_PROGS_DIR "/faultwalk", mode, NULL};
    run_faulty(argv, fault, sites, r);
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

/* The exit report's own mappings (the leak walk's tables, its list of the
 * process's mappings, the threads' vectors and registers, its bounce
 * buffer and the populating of it, the printer's buffer) failing one at a
 * time, and all from the Nth on, under programs whose live objects are all
 * reachable: leaky (11 live, 10 of them its own) and blocked (29 live,
 * 13 threads' contexts held only in their registers). Whatever fails, the
 * report is whole (begun and ended once), its classification adds up to
 * the objects it lists, nothing reachable is called lost (what the pass
 * could not do is "unclassified", with the reason), and call sites that
 * could not be recorded are said to be so, not to be off. */
static unsigned long after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p ? strtoul(p + strlen(label), NULL, 10) : 0;
}

static void walk_exit_report(const char *const argv[], const char *sites, unsigned long want_live)
{
    PF_REQUIRE_PRELOAD();
    const char *name = strrchr(argv[0], '/') + 1;
    unsigned long base_live = 0, last = 0, runs = 0, unclassified_runs = 0;
    for (unsigned long n = 0, k = 0; k < 2; n = n >= last ? (k++, 1) : n + 1) {
        if (k == 2)
            break;
        char fault[48];
        snprintf(fault, sizeof fault, "%lu:%lu", n, k ? 0UL : 1UL);
        struct pf_run r;
        run_faulty(argv, n ? fault : NULL, sites, &r);
        /* One of the program's own allocations failed and it gave up: exit
         * status 2, or abort() (no exit report then). */
        int whole = r.exited && r.code == 0;
        cr_assert(!r.timed_out && (whole || (r.exited && r.code == 2) || (!r.exited && r.signo == SIGABRT)),
                  "%s PFALLOC_FAULT=%s: %s\n%s", name, fault, pf_run_how(&r), pf_tail(r.err, r.err_len, 3000));
        if (!r.exited) {
            pf_run_free(&r);
            continue;
        }
        cr_assert(pf_count(r.err, PF_REPORT_MARK) == 1 && pf_count(r.err, "==== end of pfalloc report ====") == 1,
                  "%s PFALLOC_FAULT=%s: the report is not whole\n%s", name, fault, pf_tail(r.err, r.err_len, 3000));
        const char *leaks = strstr(r.err, "\nleaks: ");
        cr_assert(leaks != NULL, "%s PFALLOC_FAULT=%s: no leak section\n%s", name, fault, pf_tail(r.err, r.err_len, 3000));
        /* With call sites, the classification is of the program's own. */
        const char *own = strstr(leaks, "the program's own: ");
        unsigned long live = own ? after(own, "the program's own: ") : after(leaks, "\nleaks: "),
                      lost = after(leaks, "definitely lost:"), ind = after(leaks, "indirectly lost:"),
                      poss = after(leaks, "possibly lost:"), reach = after(leaks, "still reachable:"),
                      uncl = after(leaks, "    unclassified:");
        cr_assert(lost + ind + poss + reach + uncl == live, "%s PFALLOC_FAULT=%s: %lu + %lu + %lu + %lu + %lu classified, of %lu\n%s",
                  name, fault, lost, ind, poss, reach, uncl, live, pf_tail(r.err, r.err_len, 3000));
        /* A program that gave up midway may have dropped a pointer for
         * good (its block is lost); one that ran to its end keeps them all. */
        if (whole)
            cr_assert(lost == 0 && ind == 0 && poss == 0, "%s PFALLOC_FAULT=%s: reachable objects called lost\n%s", name, fault,
                      pf_tail(r.err, r.err_len, 3000));
        /* Call sites asked for and not recorded: the report says why, in
         * text and (the same run again) in JSON. */
        if (sites && !own) {
            cr_assert(strstr(leaks, "call sites not recorded: no memory") != NULL &&
                          strstr(r.err, "pfalloc: PFALLOC_SITES: no memory") != NULL,
                      "%s PFALLOC_FAULT=%s: no sites, no word of why\n%s", name, fault, pf_tail(r.err, r.err_len, 3000));
            char fault_env[64];
            snprintf(fault_env, sizeof fault_env, "PFALLOC_FAULT=%s", fault);
            const char *const jenv[] = {PF_REPORT_ENV, "PFALLOC_FORMAT=json", sites, fault_env, NULL};
            struct pf_spawn_opts jo = {.mode = PF_PRELOAD, .env = jenv, .timeout_s = 60};
            struct pf_run j;
            pf_spawn(argv, &jo, &j);
            cr_assert(strstr(j.err, "\"sites_recorded\":false,\"sites_note\":\"no memory for their tables") != NULL,
                      "%s PFALLOC_FAULT=%s, JSON: no word of why\n%s", name, fault, pf_tail(j.err, j.err_len, 3000));
            pf_run_free(&j);
        }
        if (n == 0) {
            /* Every mapping call of the run, the report's included, and a
             * few beyond: mmap, mremap and madvise are counted together. */
            base_live = live;
            last = after(r.err, "  mmap calls") + after(r.err, "  mremap calls") + after(r.err, "  madvise calls") + 8;
            cr_assert(base_live == want_live && uncl == 0, "%s without faults:\n%s", name, r.err);
        } else {
            /* With call sites, an object whose site could not be recorded
             * counts as the program's (the C library's stdout buffer may):
             * none of the program's is ever counted as the runtime's. With
             * every mapping failing from the Nth on, the C library does
             * without some of its own (an unbuffered stdout). */
            if (whole && k == 0)
                cr_assert(sites ? live >= base_live && live <= base_live + 1 : live == base_live,
                          "%s PFALLOC_FAULT=%s: %lu objects listed, %lu live\n%s", name, fault, live, base_live,
                          pf_tail(r.err, r.err_len, 3000));
            if (uncl)
                cr_assert(strstr(leaks, "memory") != NULL, "%s PFALLOC_FAULT=%s: unclassified, no reason\n%s", name, fault,
                          pf_tail(r.err, r.err_len, 3000));
            unclassified_runs += uncl != 0;
            runs++;
        }
        pf_run_free(&r);
    }
    cr_log_info("exit report walk of %s%s: %lu runs, %lu with objects unclassified", name, sites ? " (sites)" : "",
                runs, unclassified_runs);
    cr_assert(unclassified_runs > 0, "no run reached the pass's own mappings");
}

static const char *const leaky_argv[] = {PF_PROGS_DIR "/leaky", NULL};

Test(faults, each_mapping_of_the_exit_report_fails)
{
    walk_exit_report(leaky_argv, NULL, 11);
}

Test(faults, each_mapping_of_the_exit_report_fails_with_sites)
{
    walk_exit_report(leaky_argv, "PFALLOC_SITES=1", 10);
}

/* The same with other threads, whose registers are read: before, a failed
 * mapping of the threads' vectors made their contexts "possibly lost", and
 * one of the thread's status (whether a seccomp filter forbids reading
 * them) "definitely lost". */
Test(faults, each_mapping_of_an_exit_report_with_threads_fails)
{
    const char *const argv[] = {PF_PROGS_DIR "/blocked", "calls", NULL};
    walk_exit_report(argv, NULL, 29);
}
