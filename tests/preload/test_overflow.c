/*
 * A linear overflow past a large block (1, 8 and 4096 bytes past its usable
 * end, for blocks of several sizes) never reaches allocator metadata: in
 * the overflow program's child processes the write faults or lands in user
 * memory, and afterwards every block is aligned, outside the program's
 * static array, and the counters balance. Never an abort, never a block
 * handed out inside the program's data.
 */
#include "spawn.h"

TestSuite(overflow);

Test(overflow, past_a_large_block_never_reaches_metadata)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/overflow", NULL};
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env};
    for (int run = 0; run < 3; run++) {
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        cr_assert(r.exited && r.code == 0 && !strstr(r.out, "FAIL"), "overflow: %s\n%s\n%s", pf_run_how(&r),
                  r.out, pf_tail(r.err, r.err_len, 1500));
        cr_assert(r.err_len == 0, "pfalloc complained:\n%s", r.err);
        pf_run_free(&r);
    }
}
