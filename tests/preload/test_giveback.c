/*
 * What a long-running process gets back of the memory it freed: the
 * giveback program frees a heap of small blocks and goes on allocating a
 * little, and its resident memory is read before and after the pool's
 * decay. Only amounts are compared; the program's own wait (3 s, longer
 * than the 2 s of decay) is what lets the decay happen.
 */
#include "spawn.h"

TestSuite(giveback);

static long number(const char *out, const char *name)
{
    const char *p = strstr(out, name);
    cr_assert(p != NULL, "no %s in:\n%s", name, out);
    return strtol(p + strlen(name), NULL, 10);
}

/* Empty spans beyond PFALLOC_CACHE (8 MiB) keep their pages for 2 s of
 * allocation activity, then give them back: 32 MiB a refill's tick, the
 * next refill going on with the rest, not 64 spans (4 MiB) a second,
 * which left a freed heap of 256 MiB resident for a minute of activity
 * (1 GiB: four minutes). */
Test(giveback, a_freed_heap_decays_at_the_first_tick_after_its_two_seconds, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/giveback", "decay", NULL};
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 100};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "giveback decay: %s\n%s%s", pf_run_how(&r), r.out, r.err);
    long freed = number(r.out, "freed "), decayed = number(r.out, "decayed ");
    cr_log_info("VmRSS after free %ld KiB, after decay %ld KiB", freed, decayed);
    cr_assert_geq(freed, 200 * 1024, "the freed heap stays warm until it decays: %ld KiB", freed);
    cr_assert_leq(decayed, 32 * 1024, "after its decay: %ld KiB resident (%ld KiB before)", decayed,
                  freed);
    pf_run_free(&r);
}
