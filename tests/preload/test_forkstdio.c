/*
 * fork from threads of a program busy with stdio (tests/progs/forkstdio.c
 * under the preload): one thread flushing every stream in a loop, others
 * opening, writing and closing streams, one allocating while it holds a
 * stream's lock, others allocating, two forking.
 * The allocator's fork handlers must make no lock cycle with libc's own
 * fork-time locks (the stream list's lock in particular): every run ends,
 * none hangs. Several runs, since a cycle closes only on some interleavings.
 */
#include "spawn.h"

TestSuite(forkstdio);

Test(forkstdio, fork_while_threads_use_stdio_never_deadlocks)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/forkstdio", "100", NULL};
    static const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    for (int i = 0; i < 4; i++) {
        struct pf_run r;
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 90};
        pf_spawn(argv, &o, &r);
        cr_assert(!r.timed_out, "run %d hung (a lock cycle between fork handlers and stdio)", i);
        pf_assert_ok(&r, "forkstdio");
        cr_assert(strstr(r.out, "forks 200 ok") != NULL, "run %d: stdout: %s", i, r.out);
        pf_run_free(&r);
    }
}
