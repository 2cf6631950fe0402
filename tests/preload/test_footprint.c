/*
 * Start-up footprint: one malloc(100) under the preload costs about what it
 * costs under glibc. The footprint program runs plainly and preloaded, side
 * by side: under `ulimit -v 8192` both must work, address space (VmSize) may
 * differ by at most 2 MiB (the library's own code and static tables
 * included; 1.7 MiB when this was written), resident memory (VmRSS) by at
 * most 1 MiB, and after mlockall(MCL_FUTURE) the locked memory (VmLck) by
 * at most 1 MiB (0.7 MiB when this was written).
 */
#include "spawn.h"

TestSuite(footprint);

#define FOOTPRINT PF_PROGS_DIR "/footprint"

struct fp {
    long size, rss, lck;
};

static long field(const char *out, const char *name)
{
    const char *p = strstr(out, name);
    cr_assert(p != NULL, "no %s in:\n%s", name, out);
    return strtol(p + strlen(name), NULL, 10);
}

static struct fp measure(enum pf_mode mode, const char *arg)
{
    const char *const argv[] = {FOOTPRINT, arg, NULL};
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts o = {.mode = mode, .env = env};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "footprint %s (%s): %s\n%s", arg ? arg : "",
              mode == PF_PRELOAD ? "preloaded" : "plain", pf_run_how(&r), r.err);
    struct fp f = {field(r.out, "VmSize "), field(r.out, "VmRSS "), field(r.out, "VmLck ")};
    pf_run_free(&r);
    return f;
}

Test(footprint, address_space_and_resident_near_glibc)
{
    PF_REQUIRE_PRELOAD();
    struct fp g = measure(PF_PLAIN, NULL), p = measure(PF_PRELOAD, NULL);
    cr_log_info("VmSize %ld vs %ld KiB, VmRSS %ld vs %ld KiB", g.size, p.size, g.rss, p.rss);
    cr_assert_leq(p.size, g.size + 2048, "VmSize %ld KiB preloaded, %ld KiB plain", p.size, g.size);
    cr_assert_leq(p.rss, g.rss + 1024, "VmRSS %ld KiB preloaded, %ld KiB plain", p.rss, g.rss);
}

Test(footprint, mlockall_locks_little_more_than_glibc)
{
    PF_REQUIRE_PRELOAD();
    struct fp g = measure(PF_PLAIN, "lock"), p = measure(PF_PRELOAD, "lock");
    cr_log_info("VmLck %ld vs %ld KiB", g.lck, p.lck);
    cr_assert_leq(p.lck, g.lck + 1024, "VmLck %ld KiB preloaded, %ld KiB plain", p.lck, g.lck);
}

Test(footprint, runs_under_a_small_address_space_limit)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {"/bin/sh", "-c", "ulimit -v 8192 && exec \"$0\"", FOOTPRINT, NULL};
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    for (int mode = PF_PLAIN; mode <= PF_PRELOAD; mode++) {
        struct pf_spawn_opts o = {.mode = (enum pf_mode)mode, .env = env};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        cr_assert(r.exited && r.code == 0, "footprint under ulimit -v 8192 (%s): %s\n%s",
                  mode == PF_PRELOAD ? "preloaded" : "plain", pf_run_how(&r), r.err);
        pf_run_free(&r);
    }
}

/* The report at exit is on by default, so what its leak walk touches is
 * part of every process's peak: grouping a few leaks must not make a whole
 * table resident (the 256 KiB table of leak groups used to be cleared, so
 * touched, at every walk). The walk runs here in the signal report (with
 * PFALLOC_REACH_SIGNAL=1 it is the exit's own walk), between two reads of
 * the program's high-water mark: 636 KiB apart before, 124 KiB after (most
 * of it the 128 KiB buffer that roots are copied through, unmapped again). */
Test(footprint, a_leak_walk_adds_little_to_the_peak)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {FOOTPRINT, "walk", NULL};
    const char *const env[] = {"PFALLOC_REACH_SIGNAL=1", "PFALLOC_REPORT=stderr", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "footprint walk: %s\n%s", pf_run_how(&r), r.err);
    cr_assert(strstr(r.err, "reason signal") && strstr(r.err, "by reachability"),
              "no signal report with its leak section:\n%s", r.err);
    long before = field(r.out, "VmHWM-before "), after = field(r.out, "VmHWM-after ");
    cr_log_info("high-water mark %ld KiB before the walk, %ld KiB after", before, after);
    cr_assert_leq(after, before + 256, "the leak walk raised the peak from %ld to %ld KiB", before, after);
    pf_run_free(&r);
}

/* A block or two of each of twenty sizes above 8 KiB (2.5 MiB in all, the
 * way a Python starting up makes them): the address space they take. A
 * family's spans start at the chunks of one slot and double from there:
 * 8.7 MiB when this was written, against 17.9 MiB when every span had room
 * for eight slots (glibc 2.4 MiB). */
Test(footprint, a_few_blocks_of_many_big_sizes_take_little_address_space)
{
    PF_REQUIRE_PRELOAD();
    long grew[2], blocks = 0;
    for (int mode = PF_PLAIN; mode <= PF_PRELOAD; mode++) {
        const char *const argv[] = {PF_PROGS_DIR "/bigsizes", NULL};
        const char *const env[] = {"PFALLOC_REPORT=off", NULL};
        struct pf_spawn_opts o = {.mode = (enum pf_mode)mode, .env = env};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        cr_assert(r.exited && r.code == 0, "bigsizes (%s): %s\n%s", mode == PF_PRELOAD ? "preloaded" : "plain",
                  pf_run_how(&r), r.err);
        grew[mode == PF_PRELOAD] = field(r.out, "grew ");
        blocks = field(r.out, "blocks ");
        pf_run_free(&r);
    }
    cr_log_info("VmSize grew %ld KiB preloaded, %ld KiB plain, for %ld KiB of blocks", grew[1], grew[0], blocks);
    cr_assert_leq(grew[1], 4 * blocks, "VmSize grew %ld KiB preloaded for %ld KiB of blocks (plain: %ld KiB)",
                  grew[1], blocks, grew[0]);
}
