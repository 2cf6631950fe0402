/*
 * Heap misuse in a real program under the preload: a double free through
 * free(), realloc() and each form of operator delete, a free of a pointer
 * pfalloc never returned, and of an interior pointer. Each must stop the
 * process with SIGABRT and exactly one line on stderr, in the one format
 * shared by every entry point, naming the pointer the program printed.
 */
#include "spawn.h"

#include <regex.h>

TestSuite(misuse);

struct misuse_run {
    struct pf_run r;
    unsigned long long pointer; /* what the program printed before the misuse */
    char line[512];             /* the single stderr line, without its newline */
};

static void run_act_env(const char *act, const char *const *env, struct misuse_run *m)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/misuse", act, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, &m->r);
    cr_assert(strstr(m->r.out, "no _Z") == NULL, "%s", m->r.out);
    cr_assert(!m->r.exited && m->r.signo == SIGABRT,
              "misuse %s: %s, want SIGABRT; stdout:\n%s\nstderr:\n%s", act, pf_run_how(&m->r),
              m->r.out, m->r.err);
    cr_assert(sscanf(m->r.out, "pointer %llx", &m->pointer) == 1, "stdout: %s", m->r.out);
    size_t nl = 0;
    for (size_t i = 0; i < m->r.err_len; i++)
        nl += m->r.err[i] == '\n';
    cr_assert(nl == 1 && m->r.err[m->r.err_len - 1] == '\n',
              "misuse %s: want exactly one line on stderr, got:\n%s", act, m->r.err);
    cr_assert(m->r.err_len < sizeof m->line);
    memcpy(m->line, m->r.err, m->r.err_len - 1);
    m->line[m->r.err_len - 1] = '\0';
}

static void run_act(const char *act, struct misuse_run *m)
{
    run_act_env(act, NULL, m);
}

/* Matches `line` against an extended regex; captures go to out[i] (may be NULL). */
static void match(const char *line, const char *pattern, size_t ncap, char out[][128])
{
    regex_t re;
    regmatch_t m[8];
    cr_assert(regcomp(&re, pattern, REG_EXTENDED) == 0, "bad pattern %s", pattern);
    int rc = regexec(&re, line, 8, m, 0);
    regfree(&re);
    cr_assert(rc == 0, "the line\n  %s\ndoes not match\n  %s", line, pattern);
    for (size_t i = 0; i < ncap && out; i++) {
        int len = (int)(m[i + 1].rm_eo - m[i + 1].rm_so);
        cr_assert(len >= 0 && len < 128);
        memcpy(out[i], line + m[i + 1].rm_so, (size_t)len);
        out[i][len] = '\0';
    }
}

static unsigned long long hex(const char *s)
{
    return strtoull(s, NULL, 16);
}

/* The double-free line: "pfalloc: double <verb> of 0x<hex> (family <name>)". */
static void expect_double(const char *act, const char *verb, const char *family_pattern)
{
    struct misuse_run m;
    run_act(act, &m);
    char cap[2][128];
    char pattern[256];
    snprintf(pattern, sizeof pattern, "^pfalloc: double %s of 0x([0-9a-f]+) \\(family ([^)]+)\\)$",
             verb);
    match(m.line, pattern, 2, cap);
    cr_assert_eq(hex(cap[0]), m.pointer, "the line names 0x%s, the program freed 0x%llx", cap[0],
                 m.pointer);
    match(cap[1], family_pattern, 0, NULL);
    pf_run_free(&m.r);
}

Test(misuse, double_free)
{
    expect_double("free", "free", "^malloc-[0-9]+$");
}

Test(misuse, double_free_through_realloc)
{
    /* The same line as free: issue the message by what was wrong, not by the door. */
    expect_double("realloc", "free", "^malloc-[0-9]+$");
}

Test(misuse, double_delete)
{
    expect_double("delete", "free", "^malloc-[0-9]+$");
}

Test(misuse, double_delete_array)
{
    expect_double("delete-array", "free", "^malloc-[0-9]+$");
}

Test(misuse, double_sized_delete)
{
    expect_double("delete-sized", "free", "^malloc-[0-9]+$");
}

Test(misuse, double_free_of_large_block)
{
    expect_double("large", "free", "^large$");
}

/* With call sites recorded, the line also names the function that
 * allocated the block (by the program's own symbol table: misuse exports
 * none), for a double free, a free of a pointer into a block, and a
 * question about a freed one. */
static void expect_site(const char *act, const char *what, const char *family, const char *object,
                        const char *function)
{
    static const char *const sites_on[] = {"PFALLOC_SITES=1", NULL};
    struct misuse_run m;
    run_act_env(act, sites_on, &m);
    char pattern[512];
    snprintf(pattern, sizeof pattern,
             "^pfalloc: %s 0x[0-9a-f]+ \\(family %s%s, allocated at %s\\+0x[0-9a-f]+ in misuse\\)$", what,
             family, object, function);
    match(m.line, pattern, 0, NULL);
    pf_run_free(&m.r);
}

Test(misuse, double_free_names_where_the_block_was_allocated)
{
    expect_site("free", "double free of", "malloc-[0-9]+", "", "main");
}

Test(misuse, double_delete_names_where_the_block_was_allocated)
{
    expect_site("delete", "double free of", "malloc-[0-9]+", "", "cxx");
}

Test(misuse, free_of_interior_pointer_names_where_the_block_was_allocated)
{
    expect_site("interior", "free of interior pointer", "malloc-[0-9]+", ", object at 0x[0-9a-f]+", "main");
}

Test(misuse, free_of_pointer_into_large_block_names_where_the_block_was_allocated)
{
    expect_site("interior-large", "free of interior pointer", "large", ", object at 0x[0-9a-f]+", "main");
}

Test(misuse, a_long_function_name_is_named_whole)
{
    expect_site("interior-long-name", "free of interior pointer", "malloc-[0-9]+", ", object at 0x[0-9a-f]+",
                "allocate_a_block_in_a_function_whose_name_is_as_long_as_the_names_of_templated_code_which_a_fatal_line_must_still_hold_whole_with_its_module");
}

/* A typed family may be named anything: the line that stops the program
 * stays one line (run_act checks that) with '?' for the newline. */
Test(misuse, a_family_name_with_a_newline_keeps_the_line_whole)
{
    struct misuse_run m;
    run_act("typed-newline", &m);
    match(m.line, "^pfalloc: double free of 0x[0-9a-f]+ \\(family struct\\?odd\\)$", 0, NULL);
    pf_run_free(&m.r);
    static const char *const check[] = {"PFALLOC_CHECK=1", NULL};
    run_act_env("typed-newline", check, &m);
    match(m.line, "^pfalloc: double free of 0x[0-9a-f]+ \\(family struct\\?odd[,)]", 0, NULL);
    pf_run_free(&m.r);
}

Test(misuse, usable_size_of_freed_pointer_names_where_the_block_was_allocated)
{
    expect_site("usable-freed", "malloc_usable_size of freed pointer", "malloc-[0-9]+", "", "main");
}

/* A slot's site word names its last allocation only: a span carved again
 * for another class (from the pool, after malloc_trim) has slots that were
 * never allocated since, whose words the span's last use left. A pointer
 * into one names no allocation. */
Test(misuse, pointer_into_a_slot_never_allocated_since_its_span_was_carved_names_no_site)
{
    static const char *const sites_on[] = {"PFALLOC_SITES=1", NULL};
    struct misuse_run m;
    run_act_env("interior-recarved", sites_on, &m);
    match(m.line,
          "^pfalloc: free of interior pointer 0x[0-9a-f]+ \\(family malloc-128, object at 0x[0-9a-f]+\\)$", 0,
          NULL);
    pf_run_free(&m.r);
}

/* free, realloc and delete report a double free of the same size with the same line. */
Test(misuse, one_format_for_every_entry_point)
{
    const char *acts[] = {"free", "realloc", "delete", "delete-array", "delete-sized"};
    char shape[5][512];
    for (int i = 0; i < 5; i++) {
        struct misuse_run m;
        run_act(acts[i], &m);
        char cap[2][128];
        match(m.line, "^pfalloc: double (free) of 0x[0-9a-f]+ \\(family ([^)]+)\\)$", 2, cap);
        /* Same family for the same 40-byte request, whichever door it came through. */
        snprintf(shape[i], sizeof shape[i], "%s", cap[1]);
        cr_assert_str_eq(shape[i], shape[0], "%s reports family %s, free reports %s", acts[i],
                         shape[i], shape[0]);
        pf_run_free(&m.r);
    }
}

Test(misuse, free_of_foreign_pointer)
{
    struct misuse_run m;
    run_act("foreign", &m);
    char cap[1][128];
    match(m.line, "^pfalloc: free of 0x([0-9a-f]+), a pointer pfalloc never returned$", 1, cap);
    cr_assert_eq(hex(cap[0]), m.pointer);
    pf_run_free(&m.r);
}

Test(misuse, realloc_of_foreign_pointer)
{
    struct misuse_run m;
    run_act("realloc-foreign", &m);
    char cap[1][128];
    match(m.line, "^pfalloc: free of 0x([0-9a-f]+), a pointer pfalloc never returned$", 1, cap);
    cr_assert_eq(hex(cap[0]), m.pointer);
    pf_run_free(&m.r);
}

Test(misuse, free_of_interior_pointer)
{
    struct misuse_run m;
    run_act("interior", &m);
    char cap[3][128];
    match(m.line,
          "^pfalloc: free of interior pointer 0x([0-9a-f]+) \\(family (malloc-[0-9]+), "
          "object at 0x([0-9a-f]+)\\)$",
          3, cap);
    /* The program freed its block plus 16. */
    cr_assert_eq(hex(cap[0]), m.pointer + 16);
    cr_assert_eq(hex(cap[2]), m.pointer);
    pf_run_free(&m.r);
}

/* malloc_usable_size of what free would refuse stops the process the same way. */
Test(misuse, usable_size_of_foreign_pointer)
{
    struct misuse_run m;
    run_act("usable-foreign", &m);
    char cap[1][128];
    match(m.line, "^pfalloc: malloc_usable_size of 0x([0-9a-f]+), a pointer pfalloc never returned$",
          1, cap);
    cr_assert_eq(hex(cap[0]), m.pointer);
    pf_run_free(&m.r);
}

Test(misuse, usable_size_of_freed_pointer)
{
    struct misuse_run m;
    run_act("usable-freed", &m);
    char cap[2][128];
    match(m.line, "^pfalloc: malloc_usable_size of freed pointer 0x([0-9a-f]+) \\(family (malloc-[0-9]+)\\)$",
          2, cap);
    cr_assert_eq(hex(cap[0]), m.pointer);
    pf_run_free(&m.r);
}

/* 200000 bytes into a 1 MiB block: beyond the block's first 64 KiB, still
 * named as its interior. */
Test(misuse, free_of_interior_pointer_deep_in_large_block)
{
    struct misuse_run m;
    run_act("interior-large", &m);
    char cap[3][128];
    match(m.line,
          "^pfalloc: free of interior pointer 0x([0-9a-f]+) \\(family (large), "
          "object at 0x([0-9a-f]+)\\)$",
          3, cap);
    cr_assert_eq(hex(cap[0]), m.pointer + 200000);
    cr_assert_eq(hex(cap[2]), m.pointer);
    pf_run_free(&m.r);
}
