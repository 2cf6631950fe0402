/*
 * The leak report and PFALLOC_LEAK_EXIT_CODE in hard cases, from outside:
 *  - a process that has run out of address space still reports its leaks
 *    exactly and gets the leak exit code;
 *  - a child forked without exec counts only what it allocated itself as its
 *    leaks, lists what it inherited apart, and its exit status (a subshell's
 *    in bash) is left alone by PFALLOC_LEAK_EXIT_CODE;
 *  - leaks of a library unloaded with dlclose keep its name (marked
 *    unloaded), even when another library is loaded at its address;
 *  - stacks: leaks through one wrapper from two callers are two groups, each
 *    frame's module offset lies in the function nm names for it (no
 *    exported symbol needed), strdup's frame is kept in front of its caller;
 *    an allocation from code without unwind tables still gets its site;
 *  - what a libc function hands over is the program's, also where the
 *    function jumps at its end to an internal one that calls malloc.
 */
#include "spawn.h"

TestSuite(sites);

#define PROG(name) PF_PROGS_DIR "/" name

/* The objects the text leak rows ("   objects   bytes  family  reachability
 * site") list, in all and under "allocated by the program:". */
static void listed_rows(const char *err, unsigned long *listed, unsigned long *listed_own)
{
    int program = 0;
    for (const char *p = strstr(err, "\nleaks: "); p && (p = strchr(p, '\n')); p++) {
        unsigned long n, b;
        if (strncmp(p + 1, "  allocated by ", 15) == 0)
            program = strncmp(p + 1, "  allocated by the program:", 27) == 0;
        if (sscanf(p + 1, " %lu %lu  ", &n, &b) == 2) {
            *listed += n;
            *listed_own += program ? n : 0;
        }
    }
}

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

/* The exit report of process `pid` inside err (NULL when there is none). */
static const char *report_of(const char *err, long pid)
{
    char mark[64];
    snprintf(mark, sizeof mark, PF_REPORT_MARK "%ld ", pid);
    return strstr(err, mark);
}

Test(sites, fork_child_judged_on_its_own_objects)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("fork_leaks"), NULL};
    const char *const env[] = {PF_REPORT_ENV, "PFALLOC_LEAK_EXIT_CODE=3", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(strstr(r.out, "fork_leaks: child status 0\n") != NULL, "stdout: %s\nstderr: %s", r.out, r.err);
    /* Two reports: the child's comes first (the parent waits for it). */
    long child = 0;
    const char *c = strstr(r.err, PF_REPORT_MARK);
    cr_assert(c && sscanf(c, PF_REPORT_MARK "%ld", &child) == 1, "%s", r.err);
    c = report_of(r.err, child);
    const char *end = strstr(c, "==== end of pfalloc report");
    cr_assert(end != NULL);
    char *rep = strndup(c, (size_t)(end - c));
    unsigned long all, own, inh = 0;
    leak_counts(rep, &all, &own);
    cr_assert(own == 5, "the child's own: %lu objects, want 5\n%s", own, rep);
    const char *i = strstr(rep, "inherited from the parent: ");
    cr_assert(i && sscanf(i, "inherited from the parent: %lu objects", &inh) == 1, "%s", rep);
    cr_assert(inh >= 100, "inherited: %lu objects, want at least 100\n%s", inh, rep);
    /* The 100 are listed apart, under their site in the parent. */
    const char *sec = strstr(rep, "  inherited from the parent (");
    cr_assert(sec != NULL, "%s", rep);
    const char *row = strstr(sec, "parent_objects+");
    cr_assert(row != NULL, "%s", rep);
    while (row > sec && row[-1] != '\n')
        row--;
    unsigned long objs = 0;
    cr_assert(sscanf(row, "%lu", &objs) == 1 && objs == 100, "%s", rep);
    /* child_objects' 5 are the child's own. */
    const char *p = strstr(rep, "  allocated by the program:");
    cr_assert(p && strstr(p, "child_objects+") && strstr(p, "child_objects+") < sec, "%s", rep);
    free(rep);
    cr_assert(r.exited && r.code == 0, "parent: %s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
}

/* tests/progs/fork_busy: three threads allocate without pause while the
 * main thread forks 40 children, each keeping 4 objects of its own. A
 * fork that lands while another thread is inside malloc leaves that slot
 * live before its site is stored: the child counted it as its own, with
 * no site, definitely lost (66 of 100 children of such a program listed
 * such objects). Each child must count its own 4 objects and no more. */
Test(sites, fork_amid_other_threads_allocations_counts_only_the_childs_own, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("fork_busy"), "40", NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 100};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "fork_busy 40");
    cr_assert_str_eq(r.out, "fork_busy: 40 of 40 children exited with 0\n", "%s", r.err);
    int children = 0;
    for (const char *c = strstr(r.err, PF_REPORT_MARK); c; c = strstr(c + 1, PF_REPORT_MARK)) {
        const char *end = strstr(c, "==== end of pfalloc report");
        cr_assert(end != NULL, "a report without its end\n%s", c);
        char *rep = strndup(c, (size_t)(end - c));
        if (strstr(rep, "inherited from the parent: ")) {
            unsigned long all, own;
            leak_counts(rep, &all, &own);
            cr_assert(own == 4, "a child's own: %lu objects, want 4\n%s", own, rep);
            children++;
        }
        free(rep);
    }
    cr_assert(children == 40, "%d children's reports\n%s", children, r.err);
    pf_run_free(&r);
}

/* The same child, each of the first 40 mapping calls failing in turn: a
 * region whose table of sites could not be mapped records none, and an
 * object there without a site is not known to be the parent's. The
 * child's own 5 were counted as inherited when one such failure hit
 * (mapping 9 here), hiding its leaks. */
Test(sites, a_child_without_sites_for_its_region_keeps_its_own_objects, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    int seen = 0;
    for (int n = 1; n <= 40; n++) {
        char fault[32];
        snprintf(fault, sizeof fault, "PFALLOC_FAULT=%d", n);
        const char *const argv[] = {PROG("fork_leaks"), NULL};
        const char *const env[] = {PF_REPORT_ENV, "PFALLOC_SITES=1", fault, NULL};
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .env = env, .timeout_s = 60}, &r);
        /* The child's report: the first, and the one that lists objects
         * (the parent frees its own before it exits). */
        const char *c = strstr(r.err, "\nleaks: ");
        unsigned long all = 0, own = 0;
        const char *eol = c ? strchr(c + 1, '\n') : NULL;
        const char *o = c ? strstr(c, "the program's own: ") : NULL;
        /* Without the sites' tables, no line tells the program's own. */
        if (c && sscanf(c, "\nleaks: %lu objects", &all) == 1 && all >= 5 && o && o < eol) {
            cr_assert(sscanf(o, "the program's own: %lu objects", &own) == 1, "%s\n%s", fault, r.err);
            cr_assert(own >= 5, "%s: the child's own: %lu of %lu objects\n%s", fault, own, all, r.err);
            seen++;
        }
        pf_run_free(&r);
    }
    cr_assert(seen >= 20, "only %d runs had the child's report with the program's own", seen);
}

/* A program whose file name holds a newline (a file may be called
 * anything): the leak report names its frames with '?' for it, so each row
 * and each "by" line stays one line. */
Test(sites, a_file_name_with_a_newline_keeps_each_frame_on_its_line)
{
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("newline");
    char *copy = pf_copy_program(PROG("leaky"), dir, "le\naky");
    const char *const argv[] = {copy, NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(pf_count(r.err, "leak_small+") >= 1, "%s", r.err);
    /* Each frame in the program: "leak_small+0x22 (/tmp/.../le?aky+0x14f2)". */
    cr_assert(pf_count(r.err, "/le?aky+0x") >= 4, "%s", r.err);
    cr_assert(pf_count(r.err, "\naky+0x") == 0, "%s", r.err);
    pf_run_free(&r);
    free(copy);
    pf_tempdir_remove(dir);
}

Test(sites, bash_subshell_status_kept)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("bash");
    const char *const argv[] = {"bash", "-c", "(exit 0); echo $?; if (true); then echo taken; fi", NULL};
    const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=3", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert_str_eq(r.out, "0\ntaken\n", "stdout: %s\nstderr: %s", r.out, r.err);
    pf_run_free(&r);
}

/* Runs argv under the preload with call sites on, its reports on stderr
 * unless the more variables say otherwise (up to two; NULL ends the list),
 * and asserts it ended as it should. */
static void run_sites(const char *const *argv, const char *more1, const char *more2, struct pf_run *r)
{
    const char *const env[] = {PF_REPORT_ENV, "PFALLOC_SITES=1", more1, more2, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
    pf_assert_ok(r, argv[0]);
}

Test(sites, unloaded_library_keeps_its_name)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("dlclose_leaks"), PROG("libdlleak_a.so"), PROG("libdlleak_b.so"), NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    cr_assert(strstr(r.out, "dlclose_leaks: same address ") != NULL, "stdout: %s\nstderr: %s", r.out, r.err);
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "%s", r.err);
    const char *row = strstr(l, "(libdlleak_a.so, unloaded)");
    cr_assert(row != NULL, "the leaks of libdlleak_a.so are not named after it:\n%s", l);
    while (row > l && row[-1] != '\n')
        row--;
    unsigned long objs = 0, bytes = 0;
    cr_assert(sscanf(row, "%lu %lu", &objs, &bytes) == 2 && objs == 3 && bytes == 3 * 72, "%s", l);
    cr_assert(strstr(l, "dlleak_b") == NULL, "a leak named after the library loaded later:\n%s", l);
    pf_run_free(&r);
}

/* The same with each of the first mapping calls refused in turn: when the
 * modules' records alone could not be mapped, sites were recorded without
 * them, and the unloaded library's leaks were named after whatever was
 * mapped at their addresses at the exit, the library loaded since
 * (dlleak_b_touch+0x12 (.../libdlleak_b.so+0x1132)). */
Test(sites, unloaded_library_named_after_no_other_when_a_table_is_refused)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("dlclose_leaks"), PROG("libdlleak_a.so"), PROG("libdlleak_b.so"), NULL};
    for (int n = 1; n <= 24; n++) {
        char fault[32];
        snprintf(fault, sizeof fault, "PFALLOC_FAULT=%d", n);
        struct pf_run r;
        run_sites(argv, fault, NULL, &r);
        const char *l = strstr(r.err, "\nleaks: ");
        cr_assert(l != NULL, "%s: %s", fault, r.err);
        cr_assert(strstr(l, "dlleak_b") == NULL, "%s: a leak named after the library loaded later:\n%s", fault, l);
        pf_run_free(&r);
    }
}

Test(sites, unloaded_library_json)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("dlclose_leaks"), PROG("libdlleak_a.so"), PROG("libdlleak_b.so"), NULL};
    struct pf_run r;
    run_sites(argv, "PFALLOC_FORMAT=json", NULL, &r);
    cr_assert(strstr(r.err, "\"module\":\"libdlleak_a.so\"") != NULL, "%s", r.err);
    cr_assert(strstr(r.err, "\"module_unloaded\":true") != NULL, "%s", r.err);
    cr_assert(strstr(r.err, "dlleak_b") == NULL, "%s", r.err);
    pf_run_free(&r);
}

/* A library still loaded whose path names another build by the exit: a
 * package upgrade renames a new file over it, or a memfd's descriptor is
 * closed and its number reused. Its table was read from the file at that
 * path, and its leaks named after the other build's function at their
 * offset (dlleak_b_touch+0x12 (.../libplug.so+0x1132)). */
static void replaced_library(const char *mode)
{
    char *dir = pf_tempdir("replaced");
    const char *const argv[] = {PROG("replaced_lib"), mode, dir, PROG("libdlleak_a.so"), PROG("libdlleak_b.so"), NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    cr_assert(strstr(r.out, "replaced_lib: replaced") != NULL, "%s: stdout: %s\nstderr: %s", mode, r.out, r.err);
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "%s: %s", mode, r.err);
    cr_assert(strstr(l, "dlleak_b") == NULL, "%s: a leak named after the file that replaced its library:\n%s", mode, l);
    const char *row = strstr(l, " 216  malloc-80 ");
    cr_assert(row != NULL, "%s: the library's 3 leaks of 72 bytes are not listed:\n%s", mode, l);
    pf_run_free(&r);
    pf_tempdir_remove(dir);
}

Test(sites, library_renamed_over_is_not_named_from_the_new_file)
{
    PF_REQUIRE_PRELOAD();
    replaced_library("rename");
}

Test(sites, library_from_a_reused_descriptor_is_not_named_from_its_new_file)
{
    PF_REQUIRE_PRELOAD();
    replaced_library("memfd");
}

/* A library with text relocations and no build-id: its code in memory
 * differs from its file in the words the loader relocated, and its file
 * was taken for another's (textrel.so+0x1109, no function). */
Test(sites, a_library_with_text_relocations_is_named_from_its_file)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("textrel_user"), NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "%s", r.err);
    cr_assert(strstr(l, "textrel_leak+0x") != NULL, "the library's leaks are not named:\n%s", l);
    pf_run_free(&r);
}

/* A program run by the loader (`ld.so prog`): the kernel's link to the
 * program is the loader's file, and its frames were named after the
 * loader's functions, or not named. */
Test(sites, a_program_run_by_the_loader_is_named_from_its_own_file)
{
    PF_REQUIRE_PRELOAD();
#if defined(__x86_64__)
    const char *ld = "/lib64/ld-linux-x86-64.so.2";
#elif defined(__aarch64__)
    const char *ld = "/lib/ld-linux-aarch64.so.1";
#else
    const char *ld = "";
#endif
    if (!*ld || access(ld, X_OK) != 0)
        cr_skip_test("no loader at a known path");
    const char *const argv[] = {ld, PROG("leaky"), NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "%s", r.err);
    cr_assert(strstr(l, "leak_small+0x") != NULL, "the program's frames are not named:\n%s", l);
    cr_assert(strstr(l, "(" PROG("leaky") "+0x") != NULL, "the program's frames name another file:\n%s", l);
    pf_run_free(&r);
}

/* The objects and bytes of the first row of a report's leak section
 * (from `l`) that holds `text`; 0 when none does. */
static int row_with(const char *l, const char *text, unsigned long *objs, unsigned long *bytes)
{
    const char *row = strstr(l, text);
    if (!row)
        return 0;
    while (row > l && row[-1] != '\n')
        row--;
    return sscanf(row, "%lu %lu", objs, bytes) == 2;
}

/* A module the C library unloads itself (iconv's conversion module, a few
 * releases of other modules after its own), through no dlclose of the
 * program's, then a library loaded where it was, whose call to malloc
 * returns to the same address under other unwind rules: the walk took the
 * unloaded module's rule, cached for that address (a frame of 2 MiB), and
 * read past the top of the stack (SIGSEGV in malloc, every run). */
Test(sites, a_module_the_c_library_unloads_is_forgotten)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("gconv_unload"), PROG("libpfgconv_a.so"), PROG("libpfgconv_b.so"), NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    if (!strstr(r.out, "gconv_unload: unloaded yes") || !strstr(r.out, "gconv_unload: same address yes")) {
        pf_run_free(&r);
        cr_skip_test("the conversion module was not unloaded, or the library not loaded where it was");
    }
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "%s", r.err);
    unsigned long objs = 0, bytes = 0;
    cr_assert(row_with(l, "(libpfgconv_a.so, unloaded)", &objs, &bytes) && objs == 1 && bytes == 40,
              "the conversion module's block is not named after it:\n%s", l);
    cr_assert(row_with(l, "libpfgconv_b.so+0x", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
              "the library's blocks are not named after it:\n%s", l);
    pf_run_free(&r);
}

/* An allocation right after one of the loader's, made while another
 * thread, inside dl_iterate_phdr's callback (under the loader's lock of its
 * list), waits for a lock the allocating thread holds; and one in a child
 * forked while that thread held the loader's lock. The look for objects
 * the C library unloaded asked dl_iterate_phdr for its count of unloads,
 * and both allocations waited for the loader's lock for ever (the
 * program's alarm ended them). */
Test(sites, the_look_for_unloads_takes_none_of_the_loaders_locks)
{
    PF_REQUIRE_PRELOAD();
    const char *const modes[] = {NULL, "fork"};
    for (int i = 0; i < 2; i++) {
        const char *const argv[] = {PROG("phdr_lock"), PROG("libdlleak_a.so"), modes[i], NULL};
        struct pf_run r;
        run_sites(argv, NULL, NULL, &r);
        cr_assert(strstr(r.out, "phdr_lock: allocated") != NULL, "%s: %s\n%s", modes[i] ? modes[i] : "threads",
                  r.out, r.err);
        pf_run_free(&r);
    }
}

/* The same under the default settings with the leak section in signal
 * reports too, and a report while the conversion module is loaded and one
 * after the library took its place: each names the module's block after
 * the module (unloaded in the second), from pfalloc's own copy of its
 * name, and the library's blocks after the library's own file. */
Test(sites, a_module_the_c_library_unloads_is_named_unloaded_in_signal_reports)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("gconv_unload"), PROG("libpfgconv_a.so"), PROG("libpfgconv_b.so"), "signal",
                                NULL};
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_REACH_SIGNAL=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, argv[0]);
    if (!strstr(r.out, "gconv_unload: unloaded yes") || !strstr(r.out, "gconv_unload: same address yes")) {
        pf_run_free(&r);
        cr_skip_test("the conversion module was not unloaded, or the library not loaded where it was");
    }
    const char *first = strstr(r.err, "reason signal");
    const char *second = first ? strstr(first + 1, "reason signal") : NULL;
    const char *exit = second ? strstr(second, "reason exit") : NULL;
    cr_assert(exit != NULL, "two signal reports and the exit report: %s", r.err);
    cr_assert(strstr(first, "gconv_init+0x") != NULL && strstr(first, "gconv_init+0x") < second,
              "the first report does not name the module's function:\n%s", r.err);
    const char *reports[] = {second, exit};
    for (int i = 0; i < 2; i++) {
        const char *from = strstr(reports[i], "\nleaks: "), *to = strstr(reports[i], "==== end of pfalloc report");
        cr_assert(from != NULL && to != NULL && from < to, "%s", reports[i]);
        char *l = strndup(from, (size_t)(to - from));
        unsigned long objs = 0, bytes = 0;
        cr_assert(row_with(l, "(libpfgconv_a.so, unloaded)", &objs, &bytes) && objs == 1 && bytes == 40,
                  "the conversion module's block is not named after it:\n%s", l);
        cr_assert(row_with(l, "libpfgconv_b.so+0x", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
                  "the library's blocks are not named after its file:\n%s", l);
        free(l);
    }
    pf_run_free(&r);
}

/* A library unloaded with dlclose, then one laid out like it loaded where
 * it was, whose blocks are allocated from the same call of one helper: the
 * two stacks hold the same return addresses, and the second was taken for
 * the first (the table and the thread's memory of its last stack compared
 * addresses only), so all 6 blocks were named after the unloaded library;
 * with PFALLOC_STACK_DEPTH=1 the thread's memory of its last site did the
 * same. */
Test(sites, the_same_addresses_in_a_library_loaded_where_another_was_are_its_own)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("reloaded_stack"), PROG("libpfgconv_a.so"), PROG("libpfgconv_b.so"), NULL};
    const char *const depths[] = {NULL, "PFALLOC_STACK_DEPTH=1"};
    for (int i = 0; i < 2; i++) {
        struct pf_run r;
        run_sites(argv, depths[i], NULL, &r);
        if (!strstr(r.out, "reloaded_stack: same address yes")) {
            pf_run_free(&r);
            cr_skip_test("the second library was not loaded where the first was");
        }
        const char *l = strstr(r.err, "\nleaks: ");
        cr_assert(l != NULL, "%s", r.err);
        unsigned long objs = 0, bytes = 0;
        cr_assert(row_with(l, "(libpfgconv_a.so, unloaded)", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
                  "%s: the unloaded library's row:\n%s", depths[i] ? depths[i] : "default depth", l);
        cr_assert(row_with(l, "libpfgconv_b.so+0x", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
                  "%s: the blocks of the library loaded since are not named after it:\n%s",
                  depths[i] ? depths[i] : "default depth", l);
        pf_run_free(&r);
    }
}

/* tests/progs/epoch_wrap: the unwind rules a walk cached carry 8 bits of
 * the count of unloads, so after 256 unloads a rule of the first library,
 * cached before them in a slot no walk wrote since, passed for the second
 * library's code at its address (a frame of 2 MiB for one of 8 bytes): the
 * walk read past the stack and the process died of SIGSEGV (at 254
 * unloads of a third library on top of the first's, here). Each count
 * around the lap must leave the process alive and each library's blocks
 * named after it. */
Test(sites, a_rule_cached_before_256_unloads_is_not_taken_for_the_code_loaded_since, .timeout = 300)
{
    PF_REQUIRE_PRELOAD();
    int same = 0;
    for (int count = 246; count <= 266; count++) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", count);
        const char *const argv[] = {PROG("epoch_wrap"), PROG("libpfgconv_a.so"), PROG("libpfgconv_b.so"),
                                    PROG("libdlleak_b.so"), arg, NULL};
        struct pf_run r;
        run_sites(argv, NULL, NULL, &r);
        if (strstr(r.out, "epoch_wrap: same address yes")) {
            same++;
            const char *l = strstr(r.err, "\nleaks: ");
            cr_assert(l != NULL, "%s", r.err);
            unsigned long objs = 0, bytes = 0;
            cr_assert(row_with(l, "(libpfgconv_a.so, unloaded)", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
                      "%d unloads: the unloaded library's row:\n%s", count, l);
            cr_assert(row_with(l, "libpfgconv_b.so+0x", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
                      "%d unloads: the blocks of the library loaded since:\n%s", count, l);
        }
        pf_run_free(&r);
    }
    if (!same)
        cr_skip_test("the second library was never loaded where the first was");
}

/* The same, under the default settings with the leak section in signal
 * reports too, and a report while the first library is loaded: its
 * symbol table was kept by the loader's handle and address, which the
 * second library took (its handle was allocated where the first's had
 * been), so at the exit the second library's blocks were named from the
 * first's table, after the first's file. */
Test(sites, a_library_loaded_where_a_named_one_was_is_named_from_its_own_file)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("reloaded_stack"), PROG("libpfgconv_a.so"), PROG("libpfgconv_b.so"), "signal",
                                NULL};
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_REACH_SIGNAL=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, argv[0]);
    if (!strstr(r.out, "reloaded_stack: same address yes")) {
        pf_run_free(&r);
        cr_skip_test("the second library was not loaded where the first was");
    }
    const char *signal = strstr(r.err, "reason signal");
    cr_assert(signal != NULL && strstr(signal, "pfgconv_alloc+0x") != NULL,
              "the signal report does not name the first library's function:\n%s", r.err);
    const char *l = strstr(r.err, "reason exit");
    cr_assert(l != NULL && (l = strstr(l, "\nleaks: ")) != NULL, "%s", r.err);
    unsigned long objs = 0, bytes = 0;
    cr_assert(row_with(l, "(libpfgconv_a.so, unloaded)", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
              "the unloaded library's row:\n%s", l);
    cr_assert(row_with(l, "libpfgconv_b.so+0x", &objs, &bytes) && objs == 3 && bytes == 3 * 24,
              "the blocks of the library loaded since are not named from its file:\n%s", l);
    cr_assert(strstr(l, "/libpfgconv_a.so+0x") == NULL, "a frame named after the unloaded library's file:\n%s", l);
    pf_run_free(&r);
}

/* The JSON exit report on stdin: prints "objects A/B bytes C/D program E/F
 * other N", the entries' sums against the leaks' totals, and N 1 when some
 * entry is an "(other sites)" one. */
static const char groups_py[] =
    "import json, sys\n"
    "L = [json.loads(l) for l in sys.stdin if l.startswith('{')][-1]['leaks']\n"
    "S = L['sites']\n"
    "own = sum(s['objects'] for s in S if s['runtime'] is False and not s['inherited'])\n"
    "print('objects %d/%d bytes %d/%d program %d/%d other %d' % (sum(s['objects'] for s in S), L['objects'],\n"
    "      sum(s['bytes'] for s in S), L['bytes'], own, L['program_objects'],\n"
    "      min(1, sum(1 for s in S if s['kind'] == 'other_sites'))))\n";

/* More groups than the leak table lists (20 480 sites, one object each):
 * the objects beyond it were counted in the totals only, so the groups
 * listed no longer added up to them (about 15 000 of 20 481 objects), and
 * nothing said so. They are counted in their family's "(other sites)" row. */
Test(sites, more_groups_than_the_table_lists_still_add_up)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("manygroups"), NULL};
    struct pf_run r;
    run_sites(argv, "PFALLOC_STACK_DEPTH=1", NULL, &r);
    cr_assert(strcmp(r.out, "manygroups: 20480 kept\n") == 0, "%s", r.out);
    unsigned long all = 0, own = 0, listed = 0, listed_own = 0;
    leak_counts(r.err, &all, &own);
    cr_assert(own == 20480, "the program's own: %lu", own);
    listed_rows(r.err, &listed, &listed_own);
    cr_assert(listed == all && listed_own == own, "rows list %lu objects (%lu the program's) of %lu (%lu)", listed,
              listed_own, all, own);
    cr_assert(strstr(r.err, "  malloc-32              still reachable  (other sites)\n") != NULL, "%.2000s",
              strstr(r.err, "\nleaks: "));
    pf_run_free(&r);

    char *dir = pf_tempdir("groups");
    char *path = pf_path(dir, "report.json");
    run_sites(argv, "PFALLOC_STACK_DEPTH=1", "PFALLOC_FORMAT=json", &r);
    pf_write_file(path, r.err, r.err_len);
    char *sum = pf_python(groups_py, "-", path);
    cr_assert(strcmp(sum, "objects 20481/20481 bytes 495616/495616 program 20480/20480 other 1\n") == 0, "%s", sum);
    free(sum);
    pf_run_free(&r);
    free(path);
    pf_tempdir_remove(dir);
}

/* Objects beyond the leak table in more families than its "(other sites)"
 * rows have room for (20 000 typed families, one object each): those past
 * the 1 024th such row were counted in the totals only (the rows listed
 * 16 383 of 20 001 objects). They are counted together in an "(other
 * families)" row of their kind. */
Test(sites, more_families_than_other_rows_still_add_up)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("families"), "20000", NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    cr_assert(strcmp(r.out, "families: 20000 made\n") == 0, "%s", r.out);
    unsigned long all = 0, own = 0, listed = 0, listed_own = 0;
    leak_counts(r.err, &all, &own);
    cr_assert(own == 20000, "the program's own: %lu", own);
    listed_rows(r.err, &listed, &listed_own);
    cr_assert(listed == all && listed_own == own, "rows list %lu objects (%lu the program's) of %lu (%lu)", listed,
              listed_own, all, own);
    cr_assert(strstr(r.err, "  (other families)       definitely lost  (other sites)\n") != NULL, "%.2000s",
              strstr(r.err, "\nleaks: "));
    pf_run_free(&r);

    char *dir = pf_tempdir("families");
    char *path = pf_path(dir, "report.json");
    run_sites(argv, "PFALLOC_FORMAT=json", NULL, &r);
    pf_write_file(path, r.err, r.err_len);
    char *sum = pf_python(groups_py, "-", path);
    unsigned long a, b, c, d, e, g, other;
    cr_assert(sscanf(sum, "objects %lu/%lu bytes %lu/%lu program %lu/%lu other %lu", &a, &b, &c, &d, &e, &g,
                     &other) == 7 &&
                  a == b && c == d && e == 20000 && g == 20000 && other == 1,
              "%s", sum);
    free(sum);
    pf_run_free(&r);
    free(path);
    pf_tempdir_remove(dir);
}

/* Checks stacks' JSON exit report (stdin) against nm's symbol table of the
 * program (argv[1]): prints "ok" or what is wrong. */
/* The start of a check of a JSON exit report on stdin (its leaks in L) of the
 * program argv[1]: inside(frame, name) says whether a frame lies in that
 * function of the program, by its own symbol table. */
#define LEAKS_PY                                                                                   \
    "import json, os, subprocess, sys\n" \
    "syms = {}\n" \
    "for l in subprocess.run(['nm', '-S', '--defined-only', sys.argv[1]], capture_output=True, text=True).stdout.splitlines():\n" \
    "    f = l.split()\n" \
    "    if len(f) == 4:\n" \
    "        syms[f[3]] = (int(f[0], 16), int(f[1], 16))\n" \
    "def inside(fr, name):\n" \
    "    a, n = syms[name]\n" \
    "    off = int(fr['module_offset'], 16)\n" \
    "    return fr['module'] == os.path.basename(sys.argv[1]) and a < off <= a + n\n" \
    "L = None\n" \
    "for line in sys.stdin:\n" \
    "    if line.startswith('{'):\n" \
    "        L = json.loads(line)['leaks']\n" \
    "if L is None: sys.exit('no report')\n"

static const char stacks_py[] =
    LEAKS_PY
    "if L['program_objects'] != 8: sys.exit('program objects %d' % L['program_objects'])\n"
    "def group(objs, fam):\n"
    "    g = [s for s in L['sites'] if s['objects'] == objs and s['family'] == fam and not s['runtime']]\n"
    "    if len(g) != 1: sys.exit('%d groups of %d objects in %s' % (len(g), objs, fam))\n"
    "    s = g[0]\n"
    "    return s['stack'], s['first']\n"
    "for objs, caller in ((3, 'caller_one'), (4, 'caller_two')):\n"
    "    st, f = group(objs, 'malloc-48')\n"
    "    want = ['xalloc', caller, 'main']\n"
    "    for k, name in enumerate(want):\n"
    "        if f + k >= len(st) or not inside(st[f + k], name):\n"
    "            sys.exit('%s: frame %d is not in %s: %s' % (caller, k, name, st))\n"
    "st, f = group(1, 'malloc-16')\n"
    "if not (inside(st[f], 'dup_text') and inside(st[f + 1], 'main')): sys.exit('strdup: %s' % st)\n"
    "if f < 1 or not st[f - 1]['module'].startswith('libc.so'): sys.exit('strdup frame: %s' % st)\n"
    "print('ok')\n";

/* Runs prog under the preload with sites on and its JSON exit report in a
 * file, then the python check `py` (given prog) on that report: it must print "ok". */
static void check_json(const char *prog, const char *py)
{
    char *dir = pf_tempdir("sites");
    char *out = pf_path(dir, "report.json");
    char outvar[4200];
    snprintf(outvar, sizeof outvar, "PFALLOC_OUT=%s", out);
    const char *const argv[] = {prog, NULL};
    struct pf_run r;
    run_sites(argv, "PFALLOC_FORMAT=json", outvar, &r);
    pf_run_free(&r);
    const char *const check[] = {"python3", "-c", py, prog, NULL};
    struct pf_spawn_opts po = {.mode = PF_PLAIN, .stdin_path = out, .timeout_s = 60};
    pf_spawn(check, &po, &r);
    cr_assert(r.exited && r.code == 0 && strcmp(r.out, "ok\n") == 0, "%s%s\n%s", r.out, r.err,
              pf_read_file(out, NULL));
    pf_run_free(&r);
    pf_tempdir_remove(dir);
    free(out);
}

static void check_stacks(const char *prog)
{
    check_json(prog, stacks_py);
}

Test(sites, stacks_keep_callers_apart)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("nm");
    check_stacks(PROG("stacks"));
}

/* tests/progs/site_memo: a place that allocates with the same return
 * address and stack pointer from two callers in turn, in four threads at
 * once. A walk that reused the last one's frames on seeing the same start
 * would file one caller's objects under the other's stack. */
static const char site_memo_py[] =
    LEAKS_PY
    "n = (3 + 1) * 4\n"
    "for caller, objs in (('via_one', 300 * n), ('via_two', 700 * n)):\n"
    "    g = [s for s in L['sites'] if not s['runtime'] and s['family'] == 'malloc-32' and\n"
    "         len(s['stack']) > s['first'] + 2 and inside(s['stack'][s['first']], 'take') and\n"
    "         inside(s['stack'][s['first'] + 1], caller)]\n"
    "    got = sum(s['objects'] for s in g)\n"
    "    if got != objs: sys.exit('%s: %d objects, not %d: %s' % (caller, got, objs, g))\n"
    "    for s in g:\n"
    "        if not inside(s['stack'][s['first'] + 2], 'round_of'):\n"
    "            sys.exit('%s: not called from round_of: %s' % (caller, s))\n"
    "if L['program_objects'] != 1000 * n: sys.exit('program objects %d' % L['program_objects'])\n"
    "print('ok')\n";

Test(sites, one_place_reached_from_two_callers_in_turn_keeps_them_apart)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("nm");
    check_json(PROG("site_memo"), site_memo_py);
}

/* The same program with frame pointers: CFAs from rbp, which the walk from
 * the caller's frame does not know, so it takes the full walk. */
Test(sites, stacks_with_frame_pointers)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("nm");
    check_stacks(PROG("stacks_fp"));
}

/* glibc's internal names record their caller like malloc does, also in
 * slots another site had before (its site forgotten at the free). */
static const char aliases_py[] =
    LEAKS_PY
    "if L['program_objects'] != 4: sys.exit('program objects %d' % L['program_objects'])\n"
    "found = {}\n"
    "for s in L['sites']:\n"
    "    if s['runtime'] or 'stack' not in s: continue\n"
    "    st = s['stack'][s['first']:]\n"
    "    for name in ('via_memalign', 'via_valloc', 'via_pvalloc', 'churn'):\n"
    "        if st and inside(st[0], name):\n"
    "            found[name] = found.get(name, 0) + s['objects']\n"
    "want = {'via_memalign': 2, 'via_valloc': 1, 'via_pvalloc': 1}\n"
    "if found != want: sys.exit('sites %s, want %s: %s' % (found, want, json.dumps(L['sites'])))\n"
    "print('ok')\n";

Test(sites, glibc_internal_names_record_their_caller)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("nm");
    check_json(PROG("aliases"), aliases_py);
}

/* tests/progs/reused_slots: every entry point of the malloc family
 * allocates into slots another function's mallocs had just freed; a freed
 * slot keeps its last site word, so each must be named by its own caller,
 * none by `churn`, whose blocks are all freed. */
static const char reused_slots_py[] =
    LEAKS_PY
    "names = ['via_malloc', 'via_calloc', 'via_realloc_new', 'via_realloc_moved', 'via_realloc_in_place',\n"
    "         'via_reallocarray', 'via_posix_memalign', 'via_aligned_alloc', 'via_memalign', 'via_valloc',\n"
    "         'via_pvalloc', 'via_libc_malloc', 'via_libc_calloc', 'via_libc_realloc', 'churn', 'churn_one']\n"
    "found = {}\n"
    "for s in L['sites']:\n"
    "    if s['runtime'] or 'stack' not in s: continue\n"
    "    st = s['stack'][s['first']:]\n"
    "    for name in names:\n"
    "        if st and inside(st[0], name):\n"
    "            found[name] = found.get(name, 0) + s['objects']\n"
    "want = dict((name, 2) for name in names if not name.startswith('churn'))\n"
    "if found != want: sys.exit('sites %s, want %s: %s' % (found, want, json.dumps(L['sites'])))\n"
    "if L['program_objects'] != 28: sys.exit('program objects %d' % L['program_objects'])\n"
    "print('ok')\n";

Test(sites, an_allocation_into_a_freed_slot_is_named_by_its_own_caller)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("nm");
    check_json(PROG("reused_slots"), reused_slots_py);
}

/* pfalloc's own untyped entry points, called by a program directly, name
 * that program's function as the site, as the typed ones and malloc do. */
static const char papi_py[] =
    LEAKS_PY
    "found = {}\n"
    "for s in L['sites']:\n"
    "    if s['runtime'] or 'stack' not in s: continue\n"
    "    st = s['stack'][s['first']:]\n"
    "    for name in ('via_malloc', 'via_calloc', 'via_realloc', 'via_aligned_alloc', 'via_posix_memalign',\n"
    "                 'via_mm_untyped'):\n"
    "        if st and inside(st[0], name):\n"
    "            found[name] = found.get(name, 0) + s['objects']\n"
    "want = {'via_malloc': 1, 'via_calloc': 1, 'via_realloc': 1, 'via_aligned_alloc': 1, 'via_posix_memalign': 1,\n"
    "        'via_mm_untyped': 1}\n"
    "if found != want: sys.exit('sites %s, want %s: %s' % (found, want, json.dumps(L['sites'])))\n"
    "print('ok')\n";

Test(sites, pfalloc_untyped_api_records_its_caller)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("nm");
    check_json(PROG("papi"), papi_py);
}

Test(sites, stacks_text_one_frame_per_line)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("stacks"), NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "%s", r.err);
    /* The wrapper's two callers: two rows of malloc-48, 4 and 3 objects,
     * each followed by its callers, one per line. */
    const char *four = strstr(l, "           4          160  malloc-48 ");
    const char *three = strstr(l, "           3          120  malloc-48 ");
    cr_assert(four && three, "%s", l);
    for (const char *row = four; row; row = row == four ? three : NULL) {
        const char *next = strchr(row, '\n');
        cr_assert(next && strncmp(next + 1, "                                                                   by ", 70) == 0,
                  "no caller line under the row:\n%s", l);
        const char *main_line = strstr(next + 1, "by main+");
        cr_assert(main_line != NULL, "%s", l);
    }
    pf_run_free(&r);
}

Test(sites, stack_depth_one_keeps_sites)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("stacks"), NULL};
    struct pf_run r;
    run_sites(argv, "PFALLOC_STACK_DEPTH=1", NULL, &r);
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "%s", r.err);
    /* One frame: the wrapper's callers fall together, and no caller lines. */
    cr_assert(strstr(l, "           7          280  malloc-48 ") != NULL, "%s", l);
    cr_assert(strstr(l, "  by ") == NULL, "%s", l);
    pf_run_free(&r);
}

Test(sites, stack_walk_stops_without_unwind_tables)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("nocfi"), NULL};
    struct pf_run r;
    run_sites(argv, NULL, NULL, &r);
    cr_assert(strstr(r.out, "nocfi: 8 objects kept\n") != NULL, "%s", r.out);
    unsigned long all, own;
    leak_counts(r.err, &all, &own);
    cr_assert(own == 8, "the program's own: %lu, want 8\n%s", own, r.err);
    cr_assert(strstr(r.err, "           6          336  malloc-64 ") != NULL, "%s", r.err);
    pf_run_free(&r);
}

/* A library loaded by a relative path (dlopen("./lib.so"), a relative
 * LD_LIBRARY_PATH) keeps that path in the loader: the report named its
 * frames' module by it, so the scripts that add file and line
 * (pfalloc-sites, pfalloc-view) could not find it from another directory.
 * It is named by its absolute path now. */
Test(sites, a_library_loaded_by_a_relative_path_is_named_by_its_absolute_path)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("dlopen_local"), "./libcxxplug.so", NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .cwd = PF_PROGS_DIR, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "dlopen_local ./libcxxplug.so");
    const char *row = strstr(r.err, "cxxplug_init()+0x");
    cr_assert(row != NULL, "no row for the plugin's constructor:\n%s", r.err);
    const char *path = strstr(row, " (");
    cr_assert(path && strncmp(path + 2, PF_PROGS_DIR "/libcxxplug.so+0x", strlen(PF_PROGS_DIR "/libcxxplug.so+0x")) == 0,
              "want the absolute path: %.120s", row);
    pf_run_free(&r);
}

/* A program started by a relative path that then changes directory
 * (tests/progs/chdir_leak.c, run as ./chdir_leak from its directory): its
 * module's record was compared by the absolute path made with the working
 * directory of the moment, which no longer matched, so the sites recorded
 * before the change were named "(chdir_leak, unloaded)". */
Test(sites, a_program_that_changes_directory_keeps_its_frames_named)
{
    PF_REQUIRE_PRELOAD();
    /* From a shell, so the program's own name is the relative one. */
    const char *const argv[] = {"/bin/sh", "-c", "exec ./chdir_leak /", NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .cwd = PF_PROGS_DIR, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "./chdir_leak /");
    cr_assert_str_eq(r.out, "chdir_leak: done\n", "%s", r.err);
    cr_assert(strstr(r.err, "unloaded") == NULL, "a frame of the program named as unloaded:\n%s", r.err);
    cr_assert(pf_count(r.err, "definitely lost  lose+0x") == 2, "want both blocks at lose:\n%s", r.err);
    pf_run_free(&r);
}

/* A frame is named by the byte before its return address: a call that is
 * its function's last instruction (main's call of a function that does not
 * return, tests/progs/noreturn_site.c) returns past the function's end, and
 * the frame was named after what follows (the module, "noreturn_site+0x"),
 * where valgrind says main. */
Test(sites, a_call_that_ends_its_function_names_that_function)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("noreturn_site"), NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "noreturn_site");
    const char *row = strstr(r.err, "definitely lost  serve+0x");
    cr_assert(row != NULL, "no row for serve's blocks:\n%s", r.err);
    const char *by = strstr(row, "\n");
    by = by ? by + strspn(by, "\n ") : NULL;
    cr_assert(by && strncmp(by, "by main+0x", 10) == 0, "serve's caller: %.80s\n%s", by ? by : "?", r.err);
    pf_run_free(&r);
}

/* tests/progs/libc_leaks: the program drops what opendir, scandir and
 * vasprintf handed it (glibc 2.36 jumps from each to an internal function
 * without a symbol, which calls malloc) and strdup (which calls it
 * itself): the program's own objects, definitely lost, so
 * PFALLOC_LEAK_EXIT_CODE fires. A FILE from fopen (the same kind of jump)
 * is the program's too, still reachable from libc's list of streams; with
 * every result given back, nothing is the program's. They were filed under
 * the C library's own, and the exit code stayed 0; so were, until later,
 * the string of __asprintf_chk (asprintf in a program built with
 * _FORTIFY_SOURCE, as distributions build: rsync's four leaks) and the
 * buffer of open_memstream, which fclose reallocates; and later the
 * locales of newlocale and duplocale (perl's two leaks) and what
 * re_compile_pattern, regexec and re_search build into a pattern (sed's
 * 100 and more blocks). A locale is the program's, not the locale data
 * newlocale loads, which the C library keeps; everything a pattern holds
 * is the program's: its runtime share is what a program that loses
 * nothing has. So were, until later still, the results of wordexp,
 * iconv_open, getifaddrs, if_nameindex, argz_create and argz_add,
 * posix_spawn_file_actions_addopen and tmpfile, and an obstack's chunks
 * from malloc itself: the program's own figures are valgrind's (wordexp
 * 1 definitely and 2 indirectly lost, iconv_open 1 and 3, spawn actions
 * 1 and 2, the obstack 1 and 1). */
Test(sites, what_libc_hands_over_is_the_programs)
{
    PF_REQUIRE_PRELOAD();
    static const struct {
        const char *mode;
        unsigned long own; /* the program's own objects */
        int code;
        int at_least; /* own is a lower bound (entries of a directory, interfaces) */
    } cases[] = {{"opendir", 1, 7, 0},   {"scandir", 2, 7, 1},   {"vasprintf", 1, 7, 0}, {"strdup", 1, 7, 0},
                 {"asprintf_chk", 1, 7, 0}, {"memstream", 1, 7, 0}, {"newlocale", 2, 7, 0}, {"fopen", 1, 0, 0},
                 {"wordexp", 3, 7, 0},   {"iconv", 4, 7, 1},     {"ifaddrs", 1, 7, 0},   {"ifnames", 2, 7, 1},
                 {"argz", 1, 7, 0},      {"spawn", 3, 7, 0},     {"tmpfile", 1, 0, 0},   {"cpuset", 1, 7, 0},
                 {"obstack", 2, 7, 0},   {"none", 0, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const argv[] = {PROG("libc_leaks"), cases[i].mode, NULL};
        const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=7", NULL};
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        cr_assert(r.exited && r.code == cases[i].code, "%s: %s, want exit %d\n%s", cases[i].mode,
                  pf_run_how(&r), cases[i].code, r.err);
        unsigned long all, own;
        leak_counts(r.err, &all, &own);
        if (cases[i].at_least)
            cr_assert(own >= cases[i].own, "%s: the program's own: %lu, want at least %lu\n%s", cases[i].mode, own,
                      cases[i].own, r.err);
        else
            cr_assert(own == cases[i].own, "%s: the program's own: %lu, want %lu\n%s", cases[i].mode, own,
                      cases[i].own, r.err);
        pf_run_free(&r);
    }
    unsigned long runtime_none = 0;
    for (int k = 0; k < 3; k++) {
        static const char *const modes[] = {"none", "regcomp", "regexec"};
        const char *const argv[] = {PROG("libc_leaks"), modes[k], NULL};
        const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=7", NULL};
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        cr_assert(r.exited && r.code == (k ? 7 : 0), "%s: %s\n%s", modes[k], pf_run_how(&r), r.err);
        unsigned long all, own;
        leak_counts(r.err, &all, &own);
        if (k == 0)
            runtime_none = all - own;
        else
            cr_assert(own > 0 && all - own == runtime_none,
                      "%s: the program's own %lu of %lu, the runtime's %lu where a program that loses nothing has %lu\n%s",
                      modes[k], own, all, all - own, runtime_none, r.err);
        pf_run_free(&r);
    }
    /* In a UTF-8 locale, matching loads the C library's conversion
     * functions for the process, under regexec: they stay the C library's
     * (they were the program's, still reachable: 3 objects, 448 B); the
     * pattern's own blocks are the program's, all lost (valgrind: 1
     * definitely and 386 indirectly lost). */
    {
        const char *const argv[] = {PROG("libc_leaks"), "regexec_utf8", NULL};
        const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=7", NULL};
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        cr_assert(r.exited && r.code == 7, "regexec_utf8: %s\n%s", pf_run_how(&r), r.err);
        unsigned long all, own, reachable = 1;
        leak_counts(r.err, &all, &own);
        const char *by = strstr(r.err, "\n  the program's own by reachability:\n");
        const char *still = by ? strstr(by, "\n    still reachable: ") : NULL;
        cr_assert(still && sscanf(still, "\n    still reachable: %lu", &reachable) == 1, "%s", r.err);
        cr_assert(own > 0 && reachable == 0, "regexec_utf8: the program's own %lu, %lu of them still reachable\n%s",
                  own, reachable, r.err);
        pf_run_free(&r);
    }
    /* A program that gives everything back (tests/progs/libc_users: setenv
     * and unsetenv in a loop among others) is not failed: setenv's tree of
     * values is libc's to keep, though setenv jumps at its end too. */
    const char *const argv[] = {PROG("libc_users"), NULL};
    const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=7", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "libc_users: %s, want exit 0\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
}

/* A C++ runtime loaded by dlopen after the start (a C program's C++
 * plugin brings libstdc++ in) is the runtime as much as one loaded with
 * the program: the emergency exception pool its constructor makes in that
 * dlopen (71 KiB) was the program's own, and a `new` made from the
 * program through it had libstdc++'s code for its site. Now the pool is
 * the runtime's and the program's own is the one block it dropped, its
 * site in main. */
/* Whether the first row that starts with `row` lies in the section of the
 * program's own objects (before the runtime's). */
static int programs_row(const char *err, const char *row)
{
    const char *mine = strstr(err, "\n  allocated by the program:\n");
    const char *runtime = strstr(err, "\n  allocated by the C/C++ runtime and loader for themselves");
    const char *at = mine ? strstr(mine, row) : NULL;
    return at && runtime && at < runtime;
}

Test(sites, a_cxx_runtime_loaded_later_is_the_runtime)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("dlopen_local"), "--new", "libstdc++.so.6", NULL};
    const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=7", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 7, "%s, want exit 7\n%s", pf_run_how(&r), r.err);
    cr_assert_str_eq(r.out, "dlopen_local: 1\n", "%s", r.err);
    unsigned long all, own;
    leak_counts(r.err, &all, &own);
    cr_assert(own == 1, "the program's own: %lu, want 1\n%s", own, r.err);
    cr_assert(programs_row(r.err, "         100  malloc-112             definitely lost  main+0x"),
              "the dropped block, its site in main:\n%s", r.err);
    pf_run_free(&r);
}

/* The walk of an allocation that shows a runtime module loaded since the
 * start for the first time marks it (the runtime's own constructor, in
 * the dlopen that brings it in, allocates for itself). A handler of the
 * program's that allocated while the walk went on cleared that mark at
 * its own allocation's entry, though the walk it interrupted still read
 * it: the C++ runtime's emergency pool (71 KiB) was listed as the
 * program's own. gdb delivers the signal as the walk begins to unwind. A
 * handler's allocation is undefined behaviour, but the report must not
 * blame the program for the runtime's objects. */
Test(sites, a_handler_that_allocates_during_a_walk_leaves_the_runtime_its_objects)
{
    PF_REQUIRE_PRELOAD();
    const char *found = pf_which("gdb");
    if (!found)
        cr_skip_test("gdb is not installed");
    char *gdb = strdup(found);
    const char *const argv[] = {gdb, "-q", "-nx", "-batch", "-ex", "set breakpoint pending on", "-ex",
                                "set startup-with-shell off", "-ex", "set environment LD_PRELOAD=" PF_PRELOAD_LIB,
                                "-ex", "set environment PFALLOC_SITES=1", "-ex", "handle SIGUSR2 nostop noprint pass",
                                "-ex", "tbreak pf_unwind if others.fresh", "-ex", "run", "-ex", "signal SIGUSR2",
                                "--args", PROG("walk_handler"), NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    free(gdb);
    if (!strstr(r.out, "walk_handler: loaded"))
        cr_skip_test("no C++ runtime to load, or gdb cannot run the program:\n%s%s", r.out, r.err);
    if (!strstr(r.out, "Temporary breakpoint 1, pf_unwind"))
        cr_skip_test("gdb did not stop in the walk (no debug information?):\n%s", r.out);
    cr_assert(strstr(r.err, PF_REPORT_MARK) != NULL, "no exit report:\n%s%s", r.out, r.err);
    cr_assert(strstr(r.err, "allocated by the program:") == NULL,
              "the program allocated nothing of its own (the handler's block is the runtime's, as any "
              "allocation a walk interrupts):\n%s",
              r.err);
    pf_run_free(&r);
}

/* Not every allocation of the runtime under the loader is the runtime's
 * own: a C++ plugin whose constructor ends in a call to the runtime
 * (tests/progs/lib/cxxplug.cpp: a jump, so no frame of the constructor is
 * left) has its string's buffer made there, and it is the plugin's, the
 * program's own; only the runtime's own constructor, in the dlopen that
 * brings it in (the emergency pool), is the runtime's. */
Test(sites, a_plugin_constructor_that_ends_in_the_cxx_runtime_keeps_its_objects)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("dlopen_local"), PROG("libcxxplug.so"), NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "dlopen_local libcxxplug.so");
    cr_assert_str_eq(r.out, "dlopen_local: 1\n", "%s", r.err);
    unsigned long all, own;
    leak_counts(r.err, &all, &own);
    cr_assert(own == 2, "the program's own: %lu, want 2 (the string and its buffer)\n%s", own, r.err);
    cr_assert(programs_row(r.err, "        1001  malloc-1024 "), "%s", r.err);
    pf_run_free(&r);
    /* The same after an unrelated library was unloaded: the C++ runtime,
     * still loaded, stays known (forgotten, it looked newly loaded when
     * seen again, and the second plugin's buffer was the runtime's). */
    const char *const argv2[] = {PROG("dlopen_local"), PROG("libcxxplug.so"), "-" PROG("libdlleak_a.so"),
                                 PROG("libcxxplug2.so"), NULL};
    pf_spawn(argv2, &o, &r);
    pf_assert_ok(&r, "dlopen_local libcxxplug.so -libdlleak_a.so libcxxplug2.so");
    cr_assert_str_eq(r.out, "dlopen_local: 3\n", "%s", r.err);
    leak_counts(r.err, &all, &own);
    cr_assert(own == 4, "the program's own: %lu, want 4 (two strings and their buffers)\n%s", own, r.err);
    cr_assert(programs_row(r.err, "        1501  malloc-1536 "), "%s", r.err);
    pf_run_free(&r);
}

/* A fork from a signal handler that interrupted the look for objects the
 * C library unloaded (the first allocation after one of the loader's): the
 * child's count of looks under way was set to 0, the interrupted look
 * ended there and took it below 0, no look was ever the last again, and
 * every later allocation of the child looked at every recorded object
 * (progs/lookfork: 607 questions in 200 allocations). */
Test(sites, a_fork_from_a_handler_in_the_look_for_unloads_leaves_the_child_looking_no_more)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("lookfork"), NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(strstr(r.out, "child asked ") != NULL, "stdout: %s\nstderr: %s", r.out, r.err);
    cr_assert(r.exited && r.code == 0, "the child went on looking (%s):\n%s%s", pf_run_how(&r), r.out, r.err);
    pf_run_free(&r);
}
