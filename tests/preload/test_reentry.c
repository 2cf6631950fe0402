/*
 * Signal handlers that re-enter the allocator on the thread they
 * interrupted (tests/progs/sigreenter.c under the preload, a timer firing
 * every 50 microseconds into a loop of small and large allocations):
 *  - a fork from the handler of a single-threaded process works, as with
 *    glibc, whatever lock of the allocator the interrupted code held, in
 *    the checking mode too;
 *  - a malloc from the handler (undefined behaviour) stops the process with
 *    one line naming what happened, instead of waiting for itself forever.
 * A hang shows as the spawn's timeout.
 */
#include "spawn.h"

TestSuite(reentry);

static void run_env(const char *mode, const char *count, const char *const *env, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/sigreenter", mode, count, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
}

static void run(const char *mode, const char *count, struct pf_run *r)
{
    static const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    run_env(mode, count, env, r);
}

Test(reentry, fork_from_handler_in_single_threaded_process)
{
    for (int i = 0; i < 3; i++) {
        struct pf_run r;
        run("fork", "400", &r);
        cr_assert(!r.timed_out, "run %d hung (fork from a signal handler)", i);
        pf_assert_ok(&r, "fork from a signal handler");
        cr_assert(strstr(r.out, "forks 400 ok") != NULL, "stdout: %s", r.out);
        pf_run_free(&r);
    }
}

/* The checking mode's own locks (quarantine, guarded blocks) follow the same
 * rule: its fork handlers take nothing in a single-threaded process. */
Test(reentry, fork_from_handler_in_checking_mode)
{
    static const char *const env[] = {"PFALLOC_REPORT=off", "PFALLOC_CHECK=1", NULL};
    for (int i = 0; i < 3; i++) {
        struct pf_run r;
        run_env("fork", "400", env, &r);
        cr_assert(!r.timed_out, "run %d hung (fork from a signal handler, checking mode)", i);
        pf_assert_ok(&r, "fork from a signal handler, checking mode");
        cr_assert(strstr(r.out, "forks 400 ok") != NULL, "stdout: %s", r.out);
        pf_run_free(&r);
    }
}

Test(reentry, malloc_from_handler_stops_with_one_line)
{
    struct pf_run r;
    /* Far more signals than it takes: the run ends on the first collision. */
    run("malloc", "100000000", &r);
    cr_assert(!r.timed_out, "malloc from a signal handler that interrupted malloc hung");
    cr_assert(!r.exited && r.signo == SIGABRT, "%s, want SIGABRT; stdout: %s\nstderr: %s",
              pf_run_how(&r), r.out, r.err);
    cr_assert(strstr(r.err, "pfalloc: malloc called from a signal handler that interrupted malloc "
                            "on the same thread") != NULL,
              "stderr: %s", r.err);
    size_t nl = 0;
    for (size_t i = 0; i < r.err_len; i++)
        nl += r.err[i] == '\n';
    cr_assert(nl == 1, "want one line on stderr, got:\n%s", r.err);
    pf_run_free(&r);
}

/* The holder of a lock is named by the same compare-and-swap that takes it:
 * a signal landing just after pf_lock's compare-and-swap (or inside
 * pf_unlock) must still find this thread named, or the handler's malloc
 * sleeps on the lock forever. Each run ends at its first collision, at a
 * point of the loop the timer picks, so many short runs try many points
 * (with the holder stored after the swap, 2 of 300 runs hung). */
Test(reentry, malloc_from_handler_never_hangs, .timeout = 240)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/sigreenter", "malloc", "100000000", NULL};
    for (int i = 0; i < 150; i++) {
        struct pf_run r;
        /* pfalloc's default settings, as users run it (reports on). */
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 25};
        pf_spawn(argv, &o, &r);
        cr_assert(!r.timed_out, "run %d hung: a malloc from a signal handler waited for its own thread", i);
        cr_assert(!r.exited && r.signo == SIGABRT, "run %d: %s, want SIGABRT; stderr: %s", i, pf_run_how(&r),
                  r.err);
        cr_assert(strstr(r.err, "pfalloc: malloc called from a signal handler that interrupted malloc") != NULL,
                  "run %d: stderr: %s", i, r.err);
        pf_run_free(&r);
    }
}

/* The same after a fork in a process with threads: the line named a fork
 * handler in every run (the fork's lock holder was not forgotten once the
 * fork was over). */
Test(reentry, malloc_from_handler_after_a_fork_names_the_handler, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/sigreenter", "malloc", "100000000", "forked", NULL};
    for (int i = 0; i < 5; i++) {
        struct pf_run r;
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 25};
        pf_spawn(argv, &o, &r);
        cr_assert(!r.timed_out, "run %d hung", i);
        cr_assert(!r.exited && r.signo == SIGABRT, "run %d: %s, want SIGABRT; stderr: %s", i, pf_run_how(&r),
                  r.err);
        cr_assert(strstr(r.err, "pfalloc: malloc called from a signal handler that interrupted malloc") != NULL,
                  "run %d: stderr: %s", i, r.err);
        pf_run_free(&r);
    }
}

/* A fork handler registered before pfalloc's runs after pfalloc took its
 * locks, and is lent those it asks for (tests/progs/lib/forklib.c). A
 * signal handler that interrupts it inside pfalloc, holding a lent lock,
 * and allocates must be stopped as any other: it was lent the same lock
 * again, and changed what the interrupted code was half-way through. */
Test(reentry, malloc_from_handler_inside_a_fork_handler_stops, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/forklib_user", "signal", NULL};
    for (int i = 0; i < 3; i++) {
        struct pf_run r;
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 25};
        pf_spawn(argv, &o, &r);
        cr_assert(!r.timed_out, "run %d hung", i);
        cr_assert(!r.exited && r.signo == SIGABRT, "run %d: %s, want SIGABRT; stdout: %s\nstderr: %s", i,
                  pf_run_how(&r), r.out, r.err);
        cr_assert(strstr(r.err, "pfalloc: malloc called from a signal handler that interrupted malloc") != NULL,
                  "run %d: stderr: %s", i, r.err);
        pf_run_free(&r);
    }
}
