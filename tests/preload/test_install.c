/*
 * The installed tool: `cmake --install` into a temporary prefix, then used
 * from there with the source and build trees on no search path and not as
 * the working directory:
 *  - P/bin/pfalloc --version, and `pfalloc run` preloads P's library (not
 *    one it builds) and shows the report, with file:line under --sites;
 *  - a consumer project with find_package(pfalloc) and one with pkg-config
 *    build a typed-API program that runs; the documented link lines for the
 *    static and the shared library give programs that start;
 *  - the manual pages render.
 */
#include "spawn.h"

TestSuite(install);

/* A program of the typed API, as a user would write it. */
static const char typed_c[] =
    "#include <pfalloc.h>\n"
    "#include <stdio.h>\n"
    "struct order { long id; double price; };\n"
    "int main(void)\n"
    "{\n"
    "    struct order *o = PF_NEW(struct order, 10);\n"
    "    if (!o)\n"
    "        return 1;\n"
    "    o[9].id = 9;\n"
    "    printf(\"typed %ld\\n\", o[9].id);\n"
    "    pf_free(o);\n"
    "    return 0;\n"
    "}\n";

static const char consumer_cmake[] =
    "cmake_minimum_required(VERSION 3.20)\n"
    "project(consumer C)\n"
    "find_package(pfalloc 0.1 REQUIRED)\n"
    "add_executable(typed typed.c)\n"
    "target_link_libraries(typed PRIVATE pfalloc::pfalloc)\n"
    "file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/preload.txt CONTENT \"$<TARGET_FILE:pfalloc::preload>\")\n";

struct prefix {
    char *dir;  /* the temp directory: prefix, work and consumers below it */
    char *root; /* the installation prefix */
    char *work; /* where the programs run (cwd) */
    char *path; /* "PATH=..." without the source and build trees */
};

/* The runner's PATH without any entry inside the source or build tree. */
static char *clean_path(void)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char *out = malloc(strlen(path) + 8);
    cr_assert(out != NULL);
    strcpy(out, "PATH=");
    char *copy = strdup(path);
    int first = 1;
    for (char *save = NULL, *e = strtok_r(copy, ":", &save); e; e = strtok_r(NULL, ":", &save)) {
        if (strncmp(e, PF_SOURCE_DIR, strlen(PF_SOURCE_DIR)) == 0 ||
            strncmp(e, PF_BUILD_DIR, strlen(PF_BUILD_DIR)) == 0)
            continue;
        if (!first)
            strcat(out, ":");
        strcat(out, e);
        first = 0;
    }
    free(copy);
    return out;
}

static void sh(struct prefix *p, const char *script, const char *const *more_env, struct pf_run *r)
{
    const char *env[16] = {p->path, "LD_LIBRARY_PATH=", "CMAKE_PREFIX_PATH=", "PKG_CONFIG_PATH=",
                           "CDPATH="};
    size_t k = 5;
    for (; more_env && *more_env; more_env++)
        env[k++] = *more_env;
    env[k] = NULL;
    const char *const argv[] = {"/bin/sh", "-c", script, NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .env = env, .cwd = p->work, .timeout_s = 300};
    pf_spawn(argv, &o, r);
}

static void install(struct prefix *p)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("cmake");
    p->dir = pf_tempdir("install");
    p->root = pf_path(p->dir, "prefix");
    p->work = pf_path(p->dir, "work");
    p->path = clean_path();
    cr_assert(mkdir(p->work, 0700) == 0);
    const char *const argv[] = {"cmake", "--install", PF_BUILD_DIR, "--prefix", p->root, NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .timeout_s = 300};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "cmake --install");
    pf_run_free(&r);
}

static void uninstall(struct prefix *p)
{
    free(p->root);
    free(p->work);
    free(p->path);
    pf_tempdir_remove(p->dir);
}

static char *in(const struct prefix *p, const char *rel)
{
    return pf_path(p->root, rel);
}

/* The library the installed command preloads. */
static const char *installed_lib(const struct prefix *p)
{
    static char buf[1024];
    const char *const dirs[] = {"lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu", NULL};
    for (const char *const *d = dirs; *d; d++) {
        snprintf(buf, sizeof buf, "%s/%s/libpfalloc.so", p->root, *d);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    cr_assert_fail("no libpfalloc.so under %s", p->root);
    return NULL;
}

Test(install, command_version_and_help)
{
    struct prefix p;
    install(&p);
    char *cmd = in(&p, "bin/pfalloc");
    char script[2048];
    snprintf(script, sizeof script, "'%s' --version && '%s' --help", cmd, cmd);
    struct pf_run r;
    sh(&p, script, NULL, &r);
    pf_assert_ok(&r, "pfalloc --version");
    cr_assert(strncmp(r.out, "pfalloc 0.1.0\n", 14) == 0, "%s", r.out);
    cr_assert(strstr(r.out, "run [options]") && strstr(r.out, "dump PID"), "%s", r.out);
    pf_run_free(&r);
    /* Each subcommand reaches its tool. */
    snprintf(script, sizeof script, "'%s' run --help && '%s' dump --help && '%s' view --help && '%s' sites --help",
             cmd, cmd, cmd, cmd);
    sh(&p, script, NULL, &r);
    pf_assert_ok(&r, "pfalloc COMMAND --help");
    cr_assert(strstr(r.out, "--leak-exit-code") && strstr(r.out, "pfalloc-dump") && strstr(r.out, "pfalloc-view") &&
                  strstr(r.out, "pfalloc-sites"),
              "%s", r.out);
    pf_run_free(&r);
    snprintf(script, sizeof script, "'%s' frobnicate", cmd);
    sh(&p, script, NULL, &r);
    cr_assert(r.exited && r.code == 2 && strstr(r.err, "unknown command frobnicate"), "%s\n%s", pf_run_how(&r),
              r.err);
    pf_run_free(&r);
    free(cmd);
    uninstall(&p);
}

Test(install, run_uses_the_installed_library)
{
    struct prefix p;
    install(&p);
    PF_REQUIRE_PROGRAM("printenv");
    char *cmd = in(&p, "bin/pfalloc");
    char script[2048];
    snprintf(script, sizeof script, "'%s' run --report off -- printenv LD_PRELOAD", cmd);
    struct pf_run r;
    sh(&p, script, NULL, &r);
    pf_assert_ok(&r, "pfalloc run printenv");
    char want[1100];
    snprintf(want, sizeof want, "%s\n", installed_lib(&p));
    cr_assert(strcmp(r.out, want) == 0, "got %s want %s", r.out, want);
    cr_assert(r.err_len == 0, "it built or warned:\n%s", r.err);
    pf_run_free(&r);
    free(cmd);
    uninstall(&p);
}

Test(install, run_sites_shows_the_report)
{
    struct prefix p;
    install(&p);
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("addr2line");
    /* The program is a copy outside the build tree. */
    char *cmd = in(&p, "bin/pfalloc");
    char script[4096];
    snprintf(script, sizeof script, "cp '%s/symbols' ./symbols && '%s' run --sites --report exit -- ./symbols",
             PF_PROGS_DIR, cmd);
    struct pf_run r;
    sh(&p, script, NULL, &r);
    pf_assert_ok(&r, "pfalloc run --sites symbols");
    cr_assert(strstr(r.out, "symbols: 10 objects kept") != NULL, "%s", r.out);
    cr_assert(pf_has_report(r.err, "symbols"), "%s", r.err);
    cr_assert(strstr(r.err, " leak_static_a+0x") && strstr(r.err, "(symbols.c:"), "no file:line:\n%s", r.err);
    cr_assert(strstr(r.err, "==== end of pfalloc report ====\n") != NULL, "%s", r.err);
    pf_run_free(&r);
    free(cmd);
    uninstall(&p);
}

Test(install, find_package_consumer_builds_and_runs, .timeout = 300)
{
    struct prefix p;
    install(&p);
    PF_REQUIRE_PROGRAM("cc");
    char *src = pf_path(p.work, "src");
    cr_assert(mkdir(src, 0700) == 0);
    pf_write_in(src, "CMakeLists.txt", consumer_cmake);
    pf_write_in(src, "typed.c", typed_c);
    char script[4096];
    snprintf(script, sizeof script,
             "cmake -S src -B bin -DCMAKE_PREFIX_PATH='%s' >/dev/null && cmake --build bin >/dev/null && "
             "./bin/typed && cat bin/preload.txt",
             p.root);
    struct pf_run r;
    sh(&p, script, NULL, &r);
    pf_assert_ok(&r, "find_package consumer");
    char want[1200];
    snprintf(want, sizeof want, "typed 9\n%s", installed_lib(&p));
    cr_assert(strcmp(r.out, want) == 0, "got:\n%s\nwant:\n%s", r.out, want);
    pf_run_free(&r);
    free(src);
    uninstall(&p);
}

/* Builds typed.c in the work directory with `link` and runs it. */
static void link_and_run(struct prefix *p, const char *link, const char *const *env, struct pf_run *r)
{
    char *f = pf_path(p->work, "typed.c");
    pf_write_file(f, typed_c, sizeof typed_c - 1);
    free(f);
    char script[4096];
    int n = snprintf(script, sizeof script, "rm -f typed && cc -o typed typed.c %s && ./typed", link);
    cr_assert(n > 0 && (size_t)n < sizeof script, "link flags too long: %s", link);
    sh(p, script, env, r);
}

Test(install, pkg_config_consumer_builds_and_runs)
{
    struct prefix p;
    install(&p);
    PF_REQUIRE_PROGRAM("cc");
    PF_REQUIRE_PROGRAM("pkg-config");
    /* The .pc file sits in <libdir>/pkgconfig. */
    const char *lib = installed_lib(&p);
    char var[1200];
    snprintf(var, sizeof var, "PKG_CONFIG_PATH=%.*s/pkgconfig", (int)(strrchr(lib, '/') - lib), lib);
    const char *const env[] = {var, NULL};
    struct pf_run r;
    link_and_run(&p, "$(pkg-config --cflags --libs pfalloc)", env, &r);
    pf_assert_ok(&r, "pkg-config consumer");
    cr_assert(strcmp(r.out, "typed 9\n") == 0, "%s", r.out);
    pf_run_free(&r);
    /* The preload variable names the shared library. */
    sh(&p, "pkg-config --variable=preload pfalloc", env, &r);
    pf_assert_ok(&r, "pkg-config --variable=preload");
    char want[1100];
    snprintf(want, sizeof want, "%s\n", installed_lib(&p));
    char *got = realpath(strtok(r.out, "\n"), NULL);
    cr_assert(got && strcmp(got, installed_lib(&p)) == 0, "got %s want %s", r.out, want);
    free(got);
    pf_run_free(&r);
    uninstall(&p);
}

Test(install, documented_link_lines_work)
{
    struct prefix p;
    install(&p);
    PF_REQUIRE_PROGRAM("cc");
    char libdir[1100];
    snprintf(libdir, sizeof libdir, "%s", installed_lib(&p));
    *strrchr(libdir, '/') = '\0';
    char link[4096];
    /* Static, the typed API only. */
    snprintf(link, sizeof link, "-I'%s/include' -L'%s' -l:libpfalloc.a -pthread", p.root, libdir);
    struct pf_run r;
    link_and_run(&p, link, NULL, &r);
    pf_assert_ok(&r, "static link line");
    cr_assert(strcmp(r.out, "typed 9\n") == 0, "%s", r.out);
    pf_run_free(&r);
    /* Shared, with an rpath: it starts, and replaces malloc (its exit report). */
    snprintf(link, sizeof link, "-I'%s/include' -L'%s' -lpfalloc -Wl,-rpath,'%s'", p.root, libdir, libdir);
    const char *const env[] = {PF_REPORT_ENV, NULL};
    link_and_run(&p, link, env, &r);
    pf_assert_ok(&r, "shared link line");
    cr_assert(strcmp(r.out, "typed 9\n") == 0, "%s", r.out);
    cr_assert(pf_has_report(r.err, "typed"), "%s", r.err);
    pf_run_free(&r);
    /* What the README warns of: plain -lpfalloc picks the shared library,
     * and without an rpath the program does not start. */
    snprintf(link, sizeof link, "-I'%s/include' -L'%s' -lpfalloc", p.root, libdir);
    link_and_run(&p, link, NULL, &r);
    cr_assert(r.exited && r.code == 127 && strstr(r.err, "libpfalloc.so"), "%s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    uninstall(&p);
}

Test(install, man_pages_render)
{
    struct prefix p;
    install(&p);
    PF_REQUIRE_PROGRAM("groff");
    char script[4096];
    /* -ww -z: every warning, no output; a warning fails the check. */
    snprintf(script, sizeof script,
             "for m in '%s/share/man/man1/pfalloc.1' '%s/share/man/man7/pfalloc.7'; do "
             "  w=$(groff -man -Tutf8 -ww -z \"$m\" 2>&1) || exit 1; [ -z \"$w\" ] || { echo \"$w\"; exit 1; }; "
             "done; groff -man -Tascii -P-bcou '%s/share/man/man1/pfalloc.1'; "
             "groff -man -Tascii -P-bcou '%s/share/man/man7/pfalloc.7'",
             p.root, p.root, p.root, p.root);
    struct pf_run r;
    sh(&p, script, NULL, &r);
    pf_assert_ok(&r, "groff");
    cr_assert(strstr(r.out, "pfalloc run") && strstr(r.out, "PFALLOC_OUT") && strstr(r.out, "PFALLOC_LEAK_EXIT_CODE"),
              "%s", r.out);
    pf_run_free(&r);
    uninstall(&p);
}
