/*
 * What a long-running process gets back of the memory it freed: the
 * giveback program frees a heap of small blocks and goes on allocating a
 * little, or frees most of one and calls malloc_trim, and its resident
 * memory is read before and after. Only amounts are compared; the
 * program's own wait (3 s, longer than the 2 s of decay) is what lets the
 * decay happen.
 */
#include "spawn.h"

TestSuite(giveback);

static long number(const char *out, const char *name)
{
    const char *p = strstr(out, name);
    cr_assert(p != NULL, "no %s in:\n%s", name, out);
    return strtol(p + strlen(name), NULL, 10);
}

static void run_with(const char *what, const char *var, struct pf_run *r)
{
    const char *const argv[] = {PF_PROGS_DIR "/giveback", what, NULL};
    const char *const env[] = {var, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 200};
    pf_spawn(argv, &o, r);
    cr_assert(r->exited && r->code == 0, "giveback %s (%s): %s\n%s%s", what, var ? var : "defaults",
              pf_run_how(r), r->out, r->err);
}

static void run(const char *what, struct pf_run *r)
{
    run_with(what, NULL, r);
}

/* Empty spans beyond PFALLOC_CACHE (8 MiB) keep their pages for 2 s of
 * allocation activity, then give them back: 32 MiB a refill's tick, the
 * next refill going on with the rest, not 64 spans (4 MiB) a second,
 * which left a freed heap of 256 MiB resident for a minute of activity
 * (1 GiB: four minutes). */
Test(giveback, a_freed_heap_decays_at_the_first_tick_after_its_two_seconds, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    struct pf_run r;
    run("decay", &r);
    long freed = number(r.out, "freed "), decayed = number(r.out, "decayed ");
    cr_log_info("VmRSS after free %ld KiB, after decay %ld KiB", freed, decayed);
    cr_assert_geq(freed, 200 * 1024, "the freed heap stays warm until it decays: %ld KiB", freed);
    cr_assert_leq(decayed, 32 * 1024, "after its decay: %ld KiB resident (%ld KiB before)", decayed,
                  freed);
    pf_run_free(&r);
}

/* malloc_trim gives back every free page, also those of free slots in
 * spans that keep a live block (as glibc's does for its free chunks): with
 * one 2 KiB block in 32 live, 8 MiB of 256 MiB, only the empty spans went
 * back before, so none did and 270 MiB stayed resident; now about 30. The
 * live blocks keep their contents (the program checks them). */
Test(giveback, malloc_trim_gives_back_free_pages_of_spans_still_in_use, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    struct pf_run r;
    run("trim", &r);
    long kept = number(r.out, "kept "), trimmed = number(r.out, "trimmed ");
    cr_log_info("VmRSS with 1 block in 32 live %ld KiB, after malloc_trim %ld KiB", kept, trimmed);
    cr_assert_geq(kept, 200 * 1024, "the heap is resident before the trim: %ld KiB", kept);
    cr_assert_leq(trimmed, kept / 4, "after malloc_trim: %ld KiB resident (%ld KiB before)", trimmed,
                  kept);
    pf_run_free(&r);
}

/* While malloc_trim takes free slots out of their spans to decommit their
 * pages, other threads allocate from those spans, free into them and find
 * every block as they filled it. Under PFALLOC_CHECK=1 a malloc takes its
 * slot from the first partial span under the lock: a span whose last free
 * slots were out for the trim handed out a slot past its end (canaries of
 * other blocks overwritten), so a span always keeps one. */
Test(giveback, malloc_trim_races_with_threads_that_allocate_and_free, .timeout = 300)
{
    PF_REQUIRE_PRELOAD();
    const char *vars[] = {NULL, "PFALLOC_CHECK=1"};
    for (int i = 0; i < 2; i++) {
        struct pf_run r;
        run_with("race", vars[i], &r);
        cr_assert(strstr(r.out, "changed 0\n") != NULL, "%s:\n%s", vars[i] ? vars[i] : "defaults", r.out);
        cr_log_info("%s: %ld trims", vars[i] ? vars[i] : "defaults", number(r.out, "trims "));
        pf_run_free(&r);
    }
}

/* tests/progs/giveback MODE forks its children while other threads work:
 * none may find slots lost. */
static void no_child_lost(const char *mode)
{
    PF_REQUIRE_PRELOAD();
    struct pf_run r;
    run(mode, &r);
    cr_assert(strstr(r.out, "children 0\n") != NULL, "%s", r.out);
    if (strstr(r.out, "trims "))
        cr_log_info("%ld trims", number(r.out, "trims "));
    pf_run_free(&r);
}

/* A fork while malloc_trim has free slots out of their spans (their pages
 * being decommitted, the family lock down) left the child with those slots
 * out for good: its spans never emptied again (32 spans of 2 KiB blocks
 * held with no block live, in nearly every child). The fork now waits for
 * the trim to give them back. */
Test(giveback, a_fork_during_malloc_trim_loses_no_free_slot_in_the_child, .timeout = 300)
{
    no_child_lost("fork");
}

/* A fork while malloc_trim gives a transfer batch back (taken out of the
 * transfer cache, not yet in its spans, the family lock not yet taken)
 * left the child that batch out for good: its spans never emptied again
 * (71 to 104 children in 1 000 held spans of 112-byte slots with no block
 * live). The batch now leaves the transfer cache under the family lock. */
Test(giveback, a_fork_while_malloc_trim_gives_back_a_transfer_batch_loses_no_slot, .timeout = 300)
{
    no_child_lost("xfork");
}

/* A fork while another thread's cache moves a batch of slots to or from
 * its family (taken out of its bin, waiting for a lock the fork's prepare
 * handler holds; or put above its bin's top by a refill not yet raised)
 * left the child that batch out for good (106 to 723 children in 1 000
 * lost one, with a thread allocating and another freeing). The prepare
 * handler now waits for moves under way and holds new ones. */
Test(giveback, a_fork_while_threads_refill_and_flush_loses_no_batch_in_the_child, .timeout = 300)
{
    no_child_lost("cfork");
}
