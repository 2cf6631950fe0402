/*
 * The preload's signal hooks are invisible to the program: where pfalloc
 * put its handler on SIGTERM, SIGINT and SIGHUP (to write the exit report
 * before the process dies of them), every libc call that reads or sets an
 * action tells the program what it would tell it without pfalloc, and
 * installs what it would install.
 */
#include "spawn.h"

TestSuite(hooks);

/* Only the exported sigaction hid pfalloc's handler: glibc's signal,
 * ssignal, bsd_signal, sysv_signal, __sysv_signal (what `signal` is in
 * strict ISO C) and sigset call its internal __sigaction, so
 * `signal(SIGTERM, SIG_IGN)` returned pfalloc's handler, one the program
 * never installed. tests/progs/dispositions prints what each call returns
 * and installs (flags, mask, one-shot or not, siginterrupt's effect on
 * signal, errors), each in a fresh child: the preloaded run, with the
 * default report settings, must print exactly what the plain run prints. */
Test(hooks, every_libc_call_that_sets_an_action_returns_the_default_where_pfalloc_has_its_handler)
{
    const char *const argv[] = {PF_PROGS_DIR "/dispositions", NULL};
    struct pf_spawn_opts plain_opts = {.mode = PF_PLAIN};
    struct pf_spawn_opts pre_opts = {.mode = PF_PRELOAD};
    struct pf_run plain, pre;
    pf_spawn(argv, &plain_opts, &plain);
    pf_spawn(argv, &pre_opts, &pre);
    pf_assert_ok(&plain, "dispositions, plain run");
    pf_assert_ok(&pre, "dispositions, preloaded run");
    pf_assert_preloaded(&pre, "dispositions");
    pf_assert_same(&plain, &pre, "dispositions");
    static const char *const calls[] = {"signal",        "ssignal", "bsd_signal",      "sysv_signal",
                                        "__sysv_signal", "sigset",  "sigset SIG_HOLD"};
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        char want[128];
        snprintf(want, sizeof want, "\n%s(%d): SIG_DFL\n%s(%d): SIG_DFL\n%s(%d): SIG_DFL\n", calls[i], SIGTERM,
                 calls[i], SIGINT, calls[i], SIGHUP);
        cr_assert(strstr(pre.out, want) != NULL, "%s: wanted%s in:\n%s", calls[i], want, pre.out);
    }
    cr_assert(strstr(pre.out, "never installed") == NULL, "%s", pre.out);
    /* The program's own handler, installed over pfalloc's, is what runs. */
    cr_assert(pf_count(pre.out, "raised 15: caught\n") == 6, "%s", pre.out);
    pf_run_free(&plain);
    pf_run_free(&pre);
}
