/*
 * The leak report and PFALLOC_LEAK_EXIT_CODE in hard cases, from outside:
 *  - a process that has run out of address space still reports its leaks
 *    exactly and gets the leak exit code;
 */
#include "spawn.h"

TestSuite(sites);

#define PROG(name) PF_PROGS_DIR "/" name

/* "leaks: N objects" and "the program's own: M objects" of the text exit report. */
static void leak_counts(const char *err, unsigned long *all, unsigned long *own)
{
    const char *l = strstr(err, "\nleaks: ");
    cr_assert(l != NULL, "no leaks line:\n%s", err);
    cr_assert(sscanf(l, "\nleaks: %lu objects,", all) == 1, "%s", l);
    const char *o = strstr(l, "the program's own: ");
    cr_assert(o && sscanf(o, "the program's own: %lu objects", own) == 1, "%s", l);
}

Test(sites, out_of_address_space_exit_report_and_code)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("oom_leaks"), NULL};
    const char *const env[] = {PF_REPORT_ENV, "PFALLOC_LEAK_EXIT_CODE=7", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    unsigned long held = 0, all = 0, own = 0;
    cr_assert(sscanf(r.out, "oom_leaks: %lu objects held", &held) == 1, "stdout: %s\nstderr: %s", r.out,
              r.err);
    cr_assert(held > 94);
    leak_counts(r.err, &all, &own);
    cr_assert(own == held, "the program's own: %lu objects, it holds %lu\n%s", own, held, r.err);
    cr_assert(all >= own);
    cr_assert(r.exited && r.code == 7, "want exit code 7, got %s", pf_run_how(&r));
    pf_run_free(&r);
}
