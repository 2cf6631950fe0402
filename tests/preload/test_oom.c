/*
 * Out of address space, memory freed serves other sizes: the oomreuse
 * program limits its own address space (what it has plus 192 MiB) and
 * fills it with one size, frees it, then asks for another. Run plainly
 * (glibc) and preloaded in the same test, pfalloc must serve the second
 * size too: all 10000 small blocks after 1 MiB blocks were freed, and at
 * least 90 % of the 1 MiB blocks glibc fits after 16-byte blocks were
 * freed. And a heap that fits in what is left of the address space is not
 * refused for the size of the region pfalloc would have mapped next. Out of
 * mappings (vm.max_map_count), a large block freed still gives its pages
 * back.
 */
#include "spawn.h"

TestSuite(oom);

static char *run(enum pf_mode mode, const char *what)
{
    const char *const argv[] = {PF_PROGS_DIR "/oomreuse", what, NULL};
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts o = {.mode = mode, .env = env, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "oomreuse %s (%s): %s\n%s", what,
              mode == PF_PRELOAD ? "preloaded" : "plain", pf_run_how(&r), r.err);
    free(r.err);
    return r.out;
}

static long number(const char *out, const char *name)
{
    const char *p = strstr(out, name);
    cr_assert(p != NULL, "no %s in:\n%s", name, out);
    return strtol(p + strlen(name), NULL, 10);
}

Test(oom, small_blocks_fit_after_large_ones_are_freed)
{
    PF_REQUIRE_PRELOAD();
    char *g = run(PF_PLAIN, "large"), *p = run(PF_PRELOAD, "large");
    cr_log_info("glibc: %s pfalloc: %s", g, p);
    cr_assert(strstr(g, "small ok\n"), "glibc:\n%s", g);
    cr_assert(strstr(p, "small ok\n"), "pfalloc:\n%s", p);
    long gb = number(g, "big "), pb = number(p, "big ");
    cr_assert_geq(pb * 10, gb * 9, "1 MiB blocks: pfalloc %ld, glibc %ld", pb, gb);
    free(g);
    free(p);
}

Test(oom, large_blocks_fit_after_small_ones_are_freed)
{
    PF_REQUIRE_PRELOAD();
    char *g = run(PF_PLAIN, "small"), *p = run(PF_PRELOAD, "small");
    cr_log_info("glibc: %s pfalloc: %s", g, p);
    long gb = number(g, "big "), pb = number(p, "big ");
    cr_assert_gt(number(p, "small "), 1000000, "pfalloc:\n%s", p);
    cr_assert_geq(pb * 10, gb * 9, "1 MiB blocks after freeing small ones: pfalloc %ld, glibc %ld", pb,
                  gb);
    free(g);
    free(p);
}

Test(oom, a_heap_that_fits_under_the_limit_is_served)
{
    PF_REQUIRE_PRELOAD();
    char *g = run(PF_PLAIN, "tight"), *p = run(PF_PRELOAD, "tight");
    cr_log_info("glibc: %s pfalloc: %s", g, p);
    cr_assert(strstr(g, "tight ok\n"), "glibc:\n%s", g);
    cr_assert(strstr(p, "tight ok\n"), "8 MiB of 64-byte blocks with 16 MiB of address space left: pfalloc:\n%s", p);
    free(g);
    free(p);
}

/* Out of mappings rather than memory: with the process at vm.max_map_count,
 * a large block freed from the middle of a mapping (blocks mapped side by
 * side are one to the kernel) cannot be unmapped, which needs a split. The
 * refused munmap was taken as done: the block's pages stayed resident for
 * good (64 MiB freed, resident 1 MiB lower). They go back with madvise. */
Test(oom, large_blocks_freed_at_the_mapping_limit_give_their_pages_back)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/maplimit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    if (r.exited && r.code == 3)
        cr_skip_test("%s", r.err);
    cr_assert(r.exited && r.code == 0, "maplimit: %s\n%s", pf_run_how(&r), r.err);
    long freed = -1, fell = -1;
    cr_assert(sscanf(r.out, "freed %ld MiB, resident fell by %ld MiB", &freed, &fell) == 2, "%s", r.out);
    cr_assert_geq(fell * 10, freed * 9, "%s", r.out);
    pf_run_free(&r);
}

/* tests/progs/maplimit shrink: at the mapping limit, a realloc that
 * shrinks a large block in the middle of a mapping (the kernel refuses the
 * split) keeps the block, contents and all, instead of failing. */
Test(oom, a_large_block_shrunk_at_the_mapping_limit_stays_where_it_is)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/maplimit", "shrink", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    if (r.exited && r.code == 3)
        cr_skip_test("%s", r.err);
    cr_assert(r.exited && r.code == 0, "maplimit shrink: %s\n%s", pf_run_how(&r), r.err);
    int shrunk = -1, of = -1, intact = -1;
    cr_assert(sscanf(r.out, "shrunk %d of %d, %d intact", &shrunk, &of, &intact) == 3, "%s", r.out);
    cr_assert(shrunk == of && intact == of, "%s", r.out);
    pf_run_free(&r);
}
