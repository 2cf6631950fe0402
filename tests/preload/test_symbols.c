/*
 * Names in the leak report for programs built as distributions build them
 * (-O2 -g, nothing exported): static functions, an inlined wrapper, C++
 * member functions and unnamed namespaces, a program at a fixed address
 * (not PIE), and a stripped program whose symbols are in a separate debug
 * file. The text report names C++ functions as written; JSON keeps the
 * linker's (mangled) names and gives the module's path.
 */
#include "spawn.h"

TestSuite(symbols);

#define PROG(name) PF_PROGS_DIR "/" name

/* Sums the text leak rows whose site is `func`+0x... in the program's
 * section; returns the number of rows. */
static int text_rows(const char *err, const char *func, unsigned long *objects, unsigned long *bytes)
{
    *objects = *bytes = 0;
    const char *sec = strstr(err, "  allocated by the program:");
    if (!sec)
        return 0;
    const char *end = strstr(sec + 1, "  allocated by ");
    if (!end)
        end = strstr(sec, "==== end of pfalloc report");
    char pat[200];
    snprintf(pat, sizeof pat, " %s+0x", func);
    int rows = 0;
    for (const char *hit = strstr(sec, pat); hit && (!end || hit < end); hit = strstr(hit + 1, pat)) {
        const char *bol = hit;
        while (bol > sec && bol[-1] != '\n')
            bol--;
        unsigned long o, b;
        if (sscanf(bol, "%lu %lu", &o, &b) == 2) {
            *objects += o;
            *bytes += b;
            rows++;
        }
    }
    return rows;
}

static void run_text(const char *prog, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {prog, NULL};
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_REPORT=exit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
    pf_assert_ok(r, prog);
}

struct expect {
    const char *func;
    unsigned long objects, bytes;
};

static const struct expect c_leaks[] = {
    {"leak_static_a", 2, 2 * 24},
    {"leak_static_b", 4, 4 * 40},
    {"leak_inlined", 3, 3 * 56},
    {"leak_dup", 1, 6},
};

static void assert_c_text(const char *prog)
{
    struct pf_run r;
    run_text(prog, &r);
    for (size_t i = 0; i < sizeof c_leaks / sizeof c_leaks[0]; i++) {
        unsigned long o, b;
        cr_assert(text_rows(r.err, c_leaks[i].func, &o, &b) > 0, "no row for %s:\n%s", c_leaks[i].func, r.err);
        cr_assert(o == c_leaks[i].objects && b == c_leaks[i].bytes, "%s: %lu objects %lu bytes, want %lu %lu\n%s",
                  c_leaks[i].func, o, b, c_leaks[i].objects, c_leaks[i].bytes, r.err);
    }
    pf_run_free(&r);
}

Test(symbols, static_functions_named_in_text)
{
    assert_c_text(PROG("symbols"));
}

Test(symbols, fixed_address_program_named_in_text)
{
    assert_c_text(PROG("symbols_nopie"));
}

Test(symbols, cxx_names_demangled_in_text)
{
    struct pf_run r;
    run_text(PROG("symbolsxx"), &r);
    unsigned long o, b;
    cr_assert(text_rows(r.err, "store::cache::fill()", &o, &b) > 0, "%s", r.err);
    cr_assert(o == 3 && b == 3 * 48, "fill: %lu objects %lu bytes\n%s", o, b, r.err);
    cr_assert(text_rows(r.err, "(anonymous namespace)::make_tokens()", &o, &b) > 0, "%s", r.err);
    cr_assert(o == 2 && b == 2 * 24, "make_tokens: %lu objects %lu bytes\n%s", o, b, r.err);
    cr_assert(strstr(r.err, "_ZN5store") == NULL, "mangled in the text report:\n%s", r.err);
    pf_run_free(&r);
}

/* Per JSON site: "NAME MODULE PATH OBJECTS BYTES RUNTIME", the program's own. */
static const char sites_py[] =
    "import json, sys\n"
    "for line in sys.stdin:\n"
    "    d = json.loads(line)\n"
    "    for s in d.get('leaks', {}).get('sites', []):\n"
    "        if s['site'] and s['runtime'] is False:\n"
    "            print(s['site'].split('+0x')[0], s['module'], s['path'], s['objects'], s['bytes'])\n";

static char *json_sites(const char *prog)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    char *dir = pf_tempdir("symjson");
    char *out = pf_path(dir, "report.json");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", out);
    const char *const argv[] = {prog, NULL};
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_REPORT=exit", "PFALLOC_FORMAT=json", var, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, prog);
    pf_run_free(&r);
    const char *const pargv[] = {"python3", "-c", sites_py, NULL};
    struct pf_spawn_opts po = {.mode = PF_PLAIN, .stdin_path = out, .timeout_s = 60};
    pf_spawn(pargv, &po, &r);
    cr_assert(r.exited && r.code == 0, "%s%s", r.out, r.err);
    free(r.err);
    free(out);
    pf_tempdir_remove(dir);
    return r.out;
}

/* Sums the JSON sites named `name` (exactly); checks module and path. */
static void assert_json_site(const char *sum, const char *name, const char *prog, unsigned long objects,
                             unsigned long bytes)
{
    unsigned long so = 0, sb = 0;
    const char *base = strrchr(prog, '/') + 1;
    for (const char *p = sum; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        char n[256], mod[128], path[512];
        unsigned long o, b;
        if (sscanf(p, "%255s %127s %511s %lu %lu", n, mod, path, &o, &b) != 5 || strcmp(n, name) != 0)
            continue;
        cr_assert(strcmp(mod, base) == 0 && strcmp(path, prog) == 0, "%s: module %s path %s", name, mod, path);
        so += o;
        sb += b;
    }
    cr_assert(so == objects && sb == bytes, "%s: %lu objects %lu bytes, want %lu %lu\n%s", name, so, sb, objects,
              bytes, sum);
}

Test(symbols, static_functions_named_in_json)
{
    char *sum = json_sites(PROG("symbols"));
    for (size_t i = 0; i < sizeof c_leaks / sizeof c_leaks[0]; i++)
        assert_json_site(sum, c_leaks[i].func, PROG("symbols"), c_leaks[i].objects, c_leaks[i].bytes);
    free(sum);
}

Test(symbols, cxx_names_mangled_in_json)
{
    char *sum = json_sites(PROG("symbolsxx"));
    assert_json_site(sum, "_ZN5store5cache4fillEv", PROG("symbolsxx"), 3, 3 * 48);
    assert_json_site(sum, "_ZN12_GLOBAL__N_111make_tokensEv", PROG("symbolsxx"), 2, 2 * 24);
    free(sum);
}

/* prog: a copy of the symbols program stripped of everything, whose
 * .gnu_debuglink names dbg, which holds its debug sections. */
static void stripped_with_debuglink(const char *prog, const char *dbg)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "objcopy --only-keep-debug '%s' '%s' && objcopy --strip-all --add-gnu-debuglink='%s' '%s' '%s'",
             PROG("symbols"), dbg, dbg, PROG("symbols"), prog);
    cr_assert(system(cmd) == 0, "%s", cmd);
}

/* A stripped copy keeps only .dynsym (nothing of the program's); its
 * symbols are found in the debug file named by .gnu_debuglink. */
Test(symbols, stripped_program_named_from_its_debug_file)
{
    PF_REQUIRE_PROGRAM("objcopy");
    char *dir = pf_tempdir("symdebug");
    char *prog = pf_path(dir, "symbols");
    char *dbg = pf_path(dir, "symbols.debug");
    stripped_with_debuglink(prog, dbg);
    struct pf_run r;
    run_text(prog, &r);
    unsigned long o, b;
    cr_assert(text_rows(r.err, "leak_static_b", &o, &b) > 0 && o == 4, "%s", r.err);
    pf_run_free(&r);
    /* Without the debug file: no name, the module and its offset instead. */
    cr_assert(unlink(dbg) == 0);
    run_text(prog, &r);
    cr_assert(text_rows(r.err, "leak_static_b", &o, &b) == 0, "%s", r.err);
    cr_assert(strstr(r.err, " symbols+0x") != NULL, "%s", r.err);
    pf_run_free(&r);
    free(prog);
    free(dbg);
    pf_tempdir_remove(dir);
}

/* A debug file by the name the program's .gnu_debuglink gives that is of
 * another build (an older package's left installed, a program rebuilt and
 * its old .debug kept): its symbols were read as the program's, and its
 * functions named the program's frames. No frame of the program is named
 * then: each reads "symbols+0x...". */
Test(symbols, stale_debug_file_names_nothing)
{
    PF_REQUIRE_PROGRAM("objcopy");
    char *dir = pf_tempdir("symstale");
    char *prog = pf_path(dir, "symbols");
    char *dbg = pf_path(dir, "symbols.debug");
    stripped_with_debuglink(prog, dbg);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "objcopy --only-keep-debug '%s' '%s'", PROG("leaky"), dbg);
    cr_assert(system(cmd) == 0, "%s", cmd);
    struct pf_run r;
    run_text(prog, &r);
    unsigned long o, b;
    cr_assert(text_rows(r.err, "leak_static_b", &o, &b) == 0, "%s", r.err);
    int frames = 0;
    for (const char *l = r.err; (l = strstr(l, "/symbols+0x")) != NULL; l++) {
        const char *start = l;
        while (start > r.err && start[-1] != '\n')
            start--;
        const char *at = strstr(start, "symbols+0x");
        cr_assert(at && at < l && at[-1] == ' ', "a frame of the program named from another build's debug file:\n%s",
                  r.err);
        frames++;
    }
    cr_assert(frames > 0, "%s", r.err);
    pf_run_free(&r);
    free(prog);
    free(dbg);
    pf_tempdir_remove(dir);
}
