/*
 * The checking mode (PFALLOC_CHECK=1) on the heap errors of tests/progs/
 * badheap.c: each error it detects stops the program with SIGABRT and one
 * line naming the pointer, what happened and the block's family (and, with
 * PFALLOC_SITES=1, where it was allocated), or, for touching memory that
 * must not be touched (past a large block, a freed large block, a
 * zero-size block), with SIGSEGV before the next instruction. The default
 * mode's detections are asserted too. Correct programs, including the
 * project's stress programs, run unchanged in the checking mode.
 */
#include "spawn.h"

#include <regex.h>

TestSuite(check);

#define BADHEAP PF_PROGS_DIR "/badheap"

static void run(const char *act, const char *check, const char *sites, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {BADHEAP, act, NULL};
    const char *env[4] = {"PFALLOC_REPORT=off", NULL, NULL, NULL};
    size_t k = 1;
    if (check)
        env[k++] = check;
    if (sites)
        env[k++] = sites;
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
    cr_assert(strstr(r->out, "no _Z") == NULL, "%s", r->out);
}

static unsigned long long pointer_of(const struct pf_run *r)
{
    unsigned long long p = 0;
    const char *s = strstr(r->out, "pointer ");
    cr_assert(s && sscanf(s, "pointer %llx", &p) == 1, "stdout: %s", r->out);
    return p;
}

/* The run ended in SIGABRT with exactly one stderr line matching
 * `pattern`, whose first capture is the pointer the program printed. */
static void expect_abort(const char *act, const char *check, const char *sites, const char *pattern)
{
    struct pf_run r;
    run(act, check, sites, &r);
    cr_assert(!r.exited && r.signo == SIGABRT, "%s (%s): %s, want SIGABRT; stdout:\n%s\nstderr:\n%s",
              act, check ? check : "default mode", pf_run_how(&r), r.out, r.err);
    size_t nl = 0;
    for (size_t i = 0; i < r.err_len; i++)
        nl += r.err[i] == '\n';
    cr_assert(nl == 1 && r.err[r.err_len - 1] == '\n', "%s: want one line on stderr, got:\n%s", act,
              r.err);
    r.err[r.err_len - 1] = '\0';
    regex_t re;
    regmatch_t m[2];
    cr_assert(regcomp(&re, pattern, REG_EXTENDED) == 0, "bad pattern %s", pattern);
    int rc = regexec(&re, r.err, 2, m, 0);
    regfree(&re);
    cr_assert(rc == 0, "%s: the line\n  %s\ndoes not match\n  %s", act, r.err, pattern);
    cr_assert(m[1].rm_so >= 0);
    unsigned long long named = strtoull(r.err + m[1].rm_so, NULL, 16);
    cr_assert_eq(named, pointer_of(&r), "%s: the line names 0x%llx, the program used 0x%llx", act,
                 named, pointer_of(&r));
    pf_run_free(&r);
}

static void expect_fault(const char *act)
{
    struct pf_run r;
    run(act, "PFALLOC_CHECK=1", NULL, &r);
    cr_assert(!r.exited && r.signo == SIGSEGV, "%s: %s, want SIGSEGV; stdout:\n%s\nstderr:\n%s", act,
              pf_run_how(&r), r.out, r.err);
    cr_assert(strstr(r.out, "survived") == NULL);
    pf_run_free(&r);
}

#define CHECK "PFALLOC_CHECK=1"
#define HEX "0x([0-9a-f]+)"
#define OVERFLOW(fam) "^pfalloc: heap overflow: block " HEX " of [0-9]+ bytes was written past its end .* \\(family " fam "\\)$"

Test(check, overflow_by_1_and_8_bytes)
{
    expect_abort("overflow-1", CHECK, NULL, OVERFLOW("malloc-32"));
    expect_abort("overflow-8", CHECK, NULL, OVERFLOW("malloc-32"));
    expect_abort("large-overflow-1", CHECK, NULL, OVERFLOW("large"));
}

Test(check, overflow_found_at_exit_in_a_block_never_freed)
{
    expect_abort("overflow-at-exit", CHECK, NULL, OVERFLOW("malloc-32"));
}

/* A process ended by SIGTERM writes its exit report from pfalloc's handler
 * (the default settings); in the checking mode that report counted the
 * quarantine's blocks as live and verified no canary, so an overflow went
 * unnamed. It now does what the exit does first. */
static void run_term(const char *act, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {BADHEAP, act, NULL};
    const char *const env[] = {CHECK, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
}

Test(check, sigterm_reports_what_the_exit_would)
{
    struct pf_run r;
    run_term("quarantine-at-term", &r);
    cr_assert(!r.exited && r.signo == SIGTERM, "%s\n%s", pf_run_how(&r), r.err);
    const char *live = strstr(r.err, "\n  live objects ");
    const char *leaks = strstr(r.err, "\nleaks: ");
    unsigned long nlive = 0, nleaks = 0;
    cr_assert(live && sscanf(live, "\n  live objects %lu", &nlive) == 1, "%s", r.err);
    cr_assert(leaks && sscanf(leaks, "\nleaks: %lu objects", &nleaks) == 1, "%s", r.err);
    cr_assert(nlive == nleaks && nlive >= 3 && nlive < 50, "live %lu, leaks %lu:\n%s", nlive, nleaks, r.err);
    pf_run_free(&r);

    run_term("overflow-at-term", &r);
    cr_assert(!r.exited && r.signo == SIGABRT, "%s, want SIGABRT\n%s", pf_run_how(&r), r.err);
    char want[64];
    snprintf(want, sizeof want, "pfalloc: heap overflow: block 0x%llx of ", pointer_of(&r));
    cr_assert(strstr(r.err, want), "want \"%s\" in\n%s", want, r.err);
    pf_run_free(&r);
}

/* A terminating signal that lands while its thread is inside a check
 * operation (a block made live, its canary not yet written: the canary's
 * page faults in just then) must not verify that block: it read as a heap
 * overflow, and the process aborted instead of dying of the signal. */
Test(check, sigterm_in_the_middle_of_an_allocation_is_no_overflow)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {BADHEAP, "alloc-until-term", NULL};
    const char *const env[] = {CHECK, NULL};
    for (int round = 0; round < 4; round++) {
        struct pf_child c;
        pf_child_start(&c, "check-term", argv, env, PF_PRELOAD);
        for (int waited = 0; waited < 10000; waited += 5) {
            char *out = pf_read_file(c.out_path, NULL);
            int started = strstr(out, "started\n") != NULL;
            free(out);
            if (started)
                break;
            pf_sleep_ms(5);
        }
        pf_sleep_ms(150 + 100 * round);
        kill(c.pid, SIGTERM);
        struct pf_run r;
        pf_child_wait(&c, 60, &r);
        cr_assert(!r.exited && r.signo == SIGTERM, "round %d: %s, want SIGTERM\n%.2000s", round, pf_run_how(&r),
                  r.err);
        cr_assert(strstr(r.err, "heap overflow") == NULL, "%.2000s", r.err);
        cr_assert(strstr(r.err, "==== end of pfalloc report ====\n"), "%.2000s", r.err);
        pf_run_free(&r);
        pf_child_free(&c);
    }
}

/* A child that another thread forks while the exit report runs is not
 * ending. The C library had dropped pfalloc's fork handlers by then (it
 * drops a shared object's as its destructors start), so such a child got
 * the report's locks held and its first malloc waited for good (5 of 5
 * runs on b20f0b6, default settings); in the checking mode it also waited
 * for the exit's verification to end. */
static void fork_at_exit(const char *const *env)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {BADHEAP, "fork-at-exit", NULL};
    struct pf_child c;
    pf_child_start(&c, "check-fork", argv, env, PF_PRELOAD);
    int st = 0;
    for (int waited = 0; waitpid(c.pid, &st, WNOHANG) == 0; waited += 5) {
        cr_assert(waited < 60000, "the program did not end");
        pf_sleep_ms(5);
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    /* Every child forked says done at once, unless it waits in malloc. */
    size_t forked = 0, done = 0;
    for (int waited = 0; waited <= 2000; waited += 50) {
        char *out = pf_read_file(c.out_path, NULL);
        forked = pf_count(out, "forked ");
        done = pf_count(out, "done ");
        free(out);
        if (forked && done >= forked)
            break;
        pf_sleep_ms(50);
    }
    kill(-c.pid, SIGKILL);
    cr_assert(forked > 0, "no child was forked");
    cr_assert(done >= forked, "%s: %zu children forked, %zu done 2 s after the program's exit",
              env[0] ? env[0] : "default settings", forked, done);
    pf_child_free(&c);
}

Test(check, a_child_forked_during_the_exit_report_runs_on)
{
    const char *const plain[] = {NULL};
    const char *const check[] = {CHECK, NULL};
    for (int i = 0; i < 3; i++)
        fork_at_exit(plain);
    fork_at_exit(check);
}

Test(check, large_overflow_hits_the_guard_page)
{
    expect_fault("large-overflow-far");
}

Test(check, write_after_free)
{
    expect_abort("uaf-write", CHECK, NULL,
                 "^pfalloc: write after free to block " HEX " of 24 bytes .*\\(family malloc-32\\)$");
    expect_fault("large-uaf-write");
    expect_fault("large-uaf-read");
}

Test(check, double_free_while_the_slot_is_held_back)
{
    const char *df = "^pfalloc: double free of " HEX " \\(family %s\\)$";
    char pat[256];
    snprintf(pat, sizeof pat, df, "malloc-32");
    expect_abort("double-free", CHECK, NULL, pat);
    /* The default mode hands the slot to the next malloc: the second free
     * frees the new owner. Held back, it is a double free. */
    expect_abort("double-free-later", CHECK, NULL, pat);
    snprintf(pat, sizeof pat, df, "large");
    expect_abort("large-double-free", CHECK, NULL, pat);
    expect_abort("realloc-freed", CHECK, NULL,
                 "^pfalloc: realloc of freed block " HEX " \\(family malloc-32\\)$");
}

Test(check, invalid_frees)
{
    expect_abort("free-stack", CHECK, NULL, "^pfalloc: free of " HEX ", a pointer pfalloc never returned$");
    expect_abort("free-static", CHECK, NULL, "^pfalloc: free of " HEX ", a pointer pfalloc never returned$");
    expect_abort("free-interior", CHECK, NULL,
                 "^pfalloc: free of interior pointer 0x[0-9a-f]+ \\(family malloc-[0-9]+, object at " HEX "\\)$");
}

Test(check, cxx_sized_and_aligned_delete_mismatch)
{
    expect_abort("sized-delete", CHECK, NULL,
                 "^pfalloc: sized delete of " HEX " says 24 bytes, but 40 were allocated \\(family malloc-48\\)$");
    expect_abort("aligned-delete", CHECK, NULL,
                 "^pfalloc: aligned delete of " HEX " says alignment 256, but it was allocated with "
                 "alignment 64 \\(family malloc-[0-9]+\\)$");
    expect_abort("unaligned-delete", CHECK, NULL,
                 "^pfalloc: aligned delete of " HEX " says alignment default, but it was allocated "
                 "with alignment 128 \\(family malloc-[0-9]+\\)$");
}

Test(check, zero_size_blocks_fault_when_touched)
{
    expect_fault("zero-read");
    expect_fault("zero-write");
}

Test(check, messages_name_the_allocating_site)
{
    const char *sites = "PFALLOC_SITES=1";
    const char *at = ", allocated at [^ ]+ in badheap\\)$";
    char pat[512];
    snprintf(pat, sizeof pat, "^pfalloc: heap overflow: block " HEX " .*\\(family malloc-32%s", at);
    expect_abort("overflow-1", CHECK, sites, pat);
    snprintf(pat, sizeof pat, "^pfalloc: heap overflow: block " HEX " .*\\(family large%s", at);
    expect_abort("large-overflow-1", CHECK, sites, pat);
    snprintf(pat, sizeof pat, "^pfalloc: write after free to block " HEX " .*\\(family malloc-32%s", at);
    expect_abort("uaf-write", CHECK, sites, pat);
    snprintf(pat, sizeof pat, "^pfalloc: double free of " HEX " \\(family large%s", at);
    expect_abort("large-double-free", CHECK, sites, pat);
    snprintf(pat, sizeof pat, "^pfalloc: sized delete of " HEX " .*\\(family malloc-48%s", at);
    expect_abort("sized-delete", CHECK, sites, pat);
    snprintf(pat, sizeof pat, "^pfalloc: malloc_usable_size of freed pointer " HEX " \\(family malloc-1024%s", at);
    expect_abort("usable-freed", CHECK, sites, pat);
    snprintf(pat, sizeof pat, "^pfalloc: double free of " HEX " \\(family large%s", at);
    expect_abort("huge-double-free", CHECK, sites, pat);
    snprintf(pat, sizeof pat, "^pfalloc: realloc of freed block " HEX " \\(family large%s", at);
    expect_abort("huge-realloc-freed", CHECK, sites, pat);
}

/* The leak report names the site of a large block the checking mode
 * guards: its site was kept in the mode's own table only, and the leak
 * walk, which reads the block's span, listed it "(not recorded)" (in a
 * forked child, as inherited from the parent). leaky lose: its 300 000
 * bytes from leak_big, definitely lost. */
Test(check, leaks_of_guarded_large_blocks_name_their_site)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/leaky", "lose", NULL};
    const char *const env[] = {CHECK, "PFALLOC_SITES=1", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 60}, &r);
    pf_assert_ok(&r, "leaky lose");
    const char *row = strstr(r.err, "      300000  large ");
    cr_assert(row != NULL, "%s", r.err);
    const char *eol = strchr(row, '\n');
    cr_assert(eol && memmem(row, (size_t)(eol - row), "definitely lost  leak_big+", 26) != NULL, "%.*s\n%s",
              (int)(eol ? eol - row : 80), row, r.err);
    pf_run_free(&r);
}

/* Objects of the leak section's rows of `family` and `reach` whose site
 * starts with `site`. */
static unsigned long rows(const char *err, const char *family, const char *reach, const char *site)
{
    char key[128];
    snprintf(key, sizeof key, "  %s  %s", reach, site);
    unsigned long sum = 0;
    for (const char *l = strstr(err, "\nleaks: "); l && (l = strchr(l + 1, '\n'));) {
        const char *eol = strchr(l + 1, '\n');
        size_t len = eol ? (size_t)(eol - l) : strlen(l);
        unsigned long n, b;
        char fam[64];
        if (memmem(l, len, key, strlen(key)) && sscanf(l + 1, "%lu %lu %63s", &n, &b, fam) == 3 &&
            strcmp(fam, family) == 0)
            sum += n;
    }
    return sum;
}

/* The checking mode's blocks of malloc(0) (distinct cells of a reserve
 * that faults) are in the totals and the leak section, where the smallest
 * class would count them outside that mode (and valgrind lists them: "0
 * bytes in 2 blocks are definitely lost"). They were in neither: the
 * totals and the leak section said nothing of them. */
Test(check, zero_size_blocks_are_counted_and_classified)
{
    PF_REQUIRE_PRELOAD();
    for (int mode = 0; mode < 2; mode++) {
        const char *const argv[] = {PF_PROGS_DIR "/leaky", "zero", NULL};
        const char *const env[] = {mode ? CHECK : "PFALLOC_CHECK=0", "PFALLOC_SITES=1", NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 60}, &r);
        pf_assert_ok(&r, "leaky zero");
        const char *live = strstr(r.err, "\n  live objects ");
        const char *leaks = strstr(r.err, "\nleaks: ");
        cr_assert(live && leaks, "%s", r.err);
        unsigned long n_live = strtoul(live + strlen("\n  live objects "), NULL, 10);
        unsigned long n_leaks = strtoul(leaks + strlen("\nleaks: "), NULL, 10);
        cr_assert(n_live == n_leaks, "%s: totals %lu live, leak section %lu\n%s", env[0], n_live, n_leaks, r.err);
        unsigned long lost = rows(r.err, "malloc-16", "definitely lost", "leak_zero+");
        unsigned long kept = rows(r.err, "malloc-16", "still reachable", "leak_zero+");
        cr_assert(lost == 2 && kept == 3, "%s: leak_zero's blocks: %lu definitely lost (want 2), %lu still reachable (want 3)\n%s",
                  env[0], lost, kept, r.err);
        /* A cell holds no slot: the family holds no byte for it. */
        if (mode)
            cr_assert(strstr(r.err, "\nmalloc-16    class       16          5          5        0 B        0 B ") != NULL,
                      "%s", r.err);
        pf_run_free(&r);
    }
}

/* malloc_usable_size of a pointer that free would refuse stops the program
 * in both modes, with the line the default mode writes (README): the
 * checking mode returned 0 and the program went on. */
Test(check, usable_size_of_a_bad_pointer_stops_the_program_in_both_modes)
{
    const char *const modes[] = {CHECK, NULL};
    for (int i = 0; i < 2; i++) {
        expect_abort("usable-interior", modes[i], NULL,
                     "^pfalloc: malloc_usable_size of interior pointer " HEX
                     " \\(family malloc-1024, object at 0x[0-9a-f]+\\)$");
        expect_abort("usable-freed", modes[i], NULL,
                     "^pfalloc: malloc_usable_size of freed pointer " HEX " \\(family malloc-1024\\)$");
        expect_abort("usable-static", modes[i], NULL,
                     "^pfalloc: malloc_usable_size of " HEX ", a pointer pfalloc never returned$");
    }
}

/* A block over 8 MiB is freed at once, not held in the quarantine: its
 * second free, or realloc, found no block and was named "a pointer
 * pfalloc never returned", with no family (nor site). */
Test(check, a_second_free_of_a_block_over_8_mib_is_a_double_free)
{
    expect_abort("huge-double-free", CHECK, NULL, "^pfalloc: double free of " HEX " \\(family large\\)$");
    expect_abort("huge-realloc-freed", CHECK, NULL,
                 "^pfalloc: realloc of freed block " HEX " \\(family large\\)$");
    expect_abort("huge-double-free", NULL, NULL, "^pfalloc: double free of " HEX " \\(family large\\)$");
    expect_abort("huge-realloc-freed", NULL, NULL, "^pfalloc: double free of " HEX " \\(family large\\)$");
}

/* free(p + 4096) after free(p) of a block of 1 MiB: p + 4096 was never
 * returned, it points into a freed block. The default mode named it "double
 * free of p + 4096" (any page-aligned pointer of the chunk where a freed
 * block started), the checking mode an interior pointer of a block that
 * was not freed, at the start of its pages (not the block's). */
Test(check, a_pointer_into_a_freed_large_block_is_named_so)
{
    const char *pat = "^pfalloc: free of interior pointer " HEX " of a freed block \\(family large, object at 0x[0-9a-f]+\\)$";
    const char *const modes[] = {NULL, CHECK};
    for (int i = 0; i < 2; i++) {
        expect_abort("large-interior-after-free", modes[i], NULL, pat);
        /* The object is the block the program freed, 4 KiB below. */
        struct pf_run r;
        run("large-interior-after-free", modes[i], NULL, &r);
        const char *obj = strstr(r.err, "object at ");
        unsigned long long at = 0;
        cr_assert(obj && sscanf(obj, "object at %llx", &at) == 1, "%s", r.err);
        cr_assert_eq(at, pointer_of(&r) - 4096, "%s: the line names object 0x%llx, the program freed 0x%llx",
                     modes[i] ? modes[i] : "default mode", at, pointer_of(&r) - 4096);
        pf_run_free(&r);
    }
}

/* What the default mode detects of the same acts (see docs/REPORTS.md). */
Test(check, default_mode_detections)
{
    expect_abort("double-free", NULL, NULL, "^pfalloc: double free of " HEX " \\(family malloc-32\\)$");
    expect_abort("large-double-free", NULL, NULL, "^pfalloc: double free of " HEX " \\(family large\\)$");
    expect_abort("free-stack", NULL, NULL, "^pfalloc: free of " HEX ", a pointer pfalloc never returned$");
    expect_abort("free-static", NULL, NULL, "^pfalloc: free of " HEX ", a pointer pfalloc never returned$");
    expect_abort("free-interior", NULL, NULL,
                 "^pfalloc: free of interior pointer 0x[0-9a-f]+ \\(family malloc-[0-9]+, object at " HEX "\\)$");
    expect_abort("realloc-freed", NULL, NULL, "^pfalloc: double free of " HEX " \\(family malloc-32\\)$");
}

static void expect_output(const char *act, const char *check, const char *want)
{
    struct pf_run r;
    run(act, check, NULL, &r);
    pf_assert_ok(&r, act);
    cr_assert(strstr(r.out, want) != NULL, "%s: want \"%s\" in stdout:\n%s", act, want, r.out);
    pf_run_free(&r);
}

Test(check, correct_programs_pass)
{
    /* malloc_usable_size says what was asked for, so a program that uses
     * all of it stays inside the canary. */
    expect_output("usable", CHECK, "usable 24\n");
    expect_output("usable", NULL, "usable 32\n");
    expect_output("zero-ok", CHECK, "zero-size blocks alike: 0\n");
    expect_output("cxx-ok", CHECK, "survived\n");
    expect_output("reuse", CHECK, "reused at once: no\n");
}

static void stress_prog(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", PF_PROGS_DIR, name);
    const char *const argv[] = {path, NULL};
    const char *const env[] = {CHECK, NULL};
    struct pf_run plain, pre;
    pf_compare_runs(argv, env, NULL, NULL, NULL, &plain, &pre);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

Test(check, stress_programs_run_unchanged)
{
    PF_REQUIRE_PRELOAD();
    stress_prog("realloc");
    stress_prog("aligned");
    stress_prog("threads");
    stress_prog("fork");
    stress_prog("lifecycle");
    stress_prog("libc_users");
    stress_prog("cxx_threads");
}

/* Alignments above 1 GiB are served, and one no mapping can have fails
 * with ENOMEM, in the checking mode as in the default mode and glibc
 * (tests/progs/aligned.c): the checking mode refused every alignment
 * above 1 GiB with EINVAL. */
Test(check, alignments_above_1_gib_are_served_as_without_the_mode)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/aligned", NULL};
    const char *const want[] = {
        "\nposix_memalign(align 2 GiB): 0, aligned\n",
        "\naligned_alloc(align 2 GiB): aligned, errno 0\n",
        "\nposix_memalign(align 2^62): ENOMEM, result untouched\n",
        "\naligned_alloc(align 2^62): NULL, errno ENOMEM\n",
        "\nmemalign(align 2^63): NULL, errno ENOMEM\n",
    };
    const char *const modes[] = {CHECK, "PFALLOC_CHECK=0"};
    for (int i = 0; i < 2; i++) {
        const char *const env[] = {modes[i], "PFALLOC_REPORT=off", NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 60}, &r);
        pf_assert_ok(&r, "aligned");
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
            cr_assert(strstr(r.out, want[k]) != NULL, "%s: want \"%.*s\" in stdout:\n%s", modes[i],
                      (int)strlen(want[k]) - 2, want[k] + 1, r.out);
        pf_run_free(&r);
    }
}

/* A signal report with the leak section (PFALLOC_REACH_SIGNAL=1) that
 * lands while its thread handles a zero-size block: the walk took the
 * cells' lock, which the interrupted code held, and pfalloc stopped the
 * program (a lock already held by this thread). The walk now leaves the
 * cells out when their lock is taken. */
Test(check, signal_reports_amid_zero_size_blocks, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/zero_storm", "300", NULL};
    const char *const env[] = {CHECK, "PFALLOC_REACH_SIGNAL=1", "PFALLOC_REPORT=both", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 100}, &r);
    pf_assert_ok(&r, "zero_storm 300");
    cr_assert_str_eq(r.out, "zero_storm: 300 signals\n", "%s", pf_tail(r.err, r.err_len, 2000));
    pf_run_free(&r);
}

/* A library the program links starts a worker thread in its constructor
 * (tests/progs/lib/threadlib.c), which runs before pfalloc's: the worker
 * had a cache before the checking mode was on, kept its fast paths, and
 * handed the program blocks with no canary, whose free stopped the
 * program with "heap overflow" (10 runs of 10). And the library's
 * destructor, which runs after pfalloc's, joins the worker, which
 * allocates as it ends: the check at the exit held every other thread's
 * allocation for good, so the process never ended. Default report. */
Test(check, a_library_thread_older_than_pfalloc_is_checked_and_can_end, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/threadlib_user", NULL};
    const char *const env[] = {"PFALLOC_CHECK=1", NULL};
    for (int i = 0; i < 3; i++) {
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 30}, &r);
        cr_assert(!r.timed_out, "run %d: the process did not end in 30 s\n%s", i, r.err);
        cr_assert(r.exited && r.code == 0, "run %d: %s\n%s", i, pf_run_how(&r), r.err);
        cr_assert(strstr(r.out, "freed 2000 blocks\n") != NULL, "run %d: %s", i, r.out);
        cr_assert(strstr(r.err, "overflow") == NULL, "run %d:\n%s", i, r.err);
        pf_run_free(&r);
    }
}

/* Forks while another thread allocates (tests/progs/check_fork.c): a
 * fork in the moment between a block's slot marked live and its canary
 * written left the child a canary cut short, and its exit stopped it with
 * "heap overflow" (about 1 child in 50). Other threads' checked
 * operations finish before a fork now, and new ones wait for it. */
Test(check, a_fork_while_another_thread_allocates_leaves_no_half_made_block, .timeout = 180)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/check_fork", "400", NULL};
    const char *const env[] = {"PFALLOC_CHECK=1", "PFALLOC_REPORT=off", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 150}, &r);
    cr_assert(r.exited && r.code == 0, "%s\n%s\n%s", pf_run_how(&r), r.out, r.err);
    cr_assert(strstr(r.out, "0 of 400 children failed\n") != NULL, "%s", r.out);
    pf_run_free(&r);
}
