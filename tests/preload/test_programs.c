/*
 * Real programs under LD_PRELOAD=libpfalloc.so: python3, perl, sqlite3, git,
 * gcc, g++, sort and bash each run once plainly and once preloaded, with
 * the same inputs in twin directories. Each pair must end the same way and
 * write the same stdout, and the preloaded run must show the library live
 * in that process (its exit report on stderr).
 */
#include "spawn.h"

#include <sys/stat.h>

static char *root, *dir_plain, *dir_pre;

static void make_dirs(void)
{
    root = pf_tempdir("programs");
    dir_plain = pf_path(root, "plain");
    dir_pre = pf_path(root, "preloaded");
    cr_assert(mkdir(dir_plain, 0700) == 0);
    cr_assert(mkdir(dir_pre, 0700) == 0);
}

static void remove_dirs(void)
{
    if (!root)
        return;
    free(dir_plain);
    free(dir_pre);
    pf_tempdir_remove(root);
    root = dir_plain = dir_pre = NULL;
}

/* Each test makes its directories after its skip checks: a skipped test
 * does not run the suite's .fini. */
TestSuite(programs, .fini = remove_dirs);

/* Runs argv both ways in the twin directories and releases the captures. */
static void compare(const char *const argv[], const char *const *env, const char *stdin_path)
{
    struct pf_run plain, pre;
    pf_compare_runs(argv, env, dir_plain, dir_pre, stdin_path, &plain, &pre);
    cr_assert(plain.out_len > 0, "%s printed nothing", argv[0]);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

/* ---- python3 ---------------------------------------------------------------- */

static const char *const py_env[] = {"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", NULL};

Test(programs, python_json)
{
    PF_REQUIRE_PROGRAM("python3");
    make_dirs();
    const char *const argv[] = {"python3", PF_DATA_DIR "/json_workload.py", NULL};
    struct pf_run plain, pre;
    pf_compare_runs(argv, py_env, dir_plain, dir_pre, NULL, &plain, &pre);
    cr_assert(strstr(plain.out, "digest: ") != NULL);
    /* The interpreter itself sees pfalloc's symbols only when preloaded. */
    cr_assert(strstr(plain.err, "pfalloc symbols in process: absent") != NULL, "%s", plain.err);
    cr_assert(strstr(pre.err, "pfalloc symbols in process: present") != NULL, "%s",
              pf_tail(pre.err, pre.err_len, 1500));
    pf_run_free(&plain);
    pf_run_free(&pre);
}

Test(programs, python_thread_pool)
{
    PF_REQUIRE_PROGRAM("python3");
    make_dirs();
    const char *const argv[] = {"python3", PF_DATA_DIR "/threadpool.py", NULL};
    compare(argv, py_env, NULL);
}

Test(programs, python_multiprocessing)
{
    PF_REQUIRE_PROGRAM("python3");
    make_dirs();
    const char *const argv[] = {"python3", PF_DATA_DIR "/mp_pool.py", NULL};
    compare(argv, py_env, NULL);
}

/* ---- perl ------------------------------------------------------------------ */

Test(programs, perl)
{
    PF_REQUIRE_PROGRAM("perl");
    make_dirs();
    const char *const argv[] = {"perl", PF_DATA_DIR "/workload.pl", NULL};
    compare(argv, NULL, NULL);
}

/* ---- bash ------------------------------------------------------------------ */

Test(programs, bash)
{
    PF_REQUIRE_PROGRAM("bash");
    make_dirs();
    const char *const argv[] = {"bash", PF_DATA_DIR "/workload.sh", NULL};
    static const char *const env[] = {"LC_ALL=C", NULL};
    compare(argv, env, NULL);
}

/* ---- sqlite3 --------------------------------------------------------------- */

Test(programs, sqlite3)
{
    PF_REQUIRE_PROGRAM("sqlite3");
    make_dirs();
    enum { ROWS = 20000 };
    char *sql_path = pf_path(root, "work.sql");
    FILE *f = fopen(sql_path, "w");
    cr_assert(f != NULL);
    fprintf(f, "CREATE TABLE item(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, price REAL, "
               "note TEXT);\nBEGIN;\n");
    unsigned x = 2463534242u;
    for (int i = 1; i <= ROWS; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        fprintf(f, "INSERT INTO item VALUES(%d, %u, 'name-%u', %u.%02u, '%.*s');\n", i, x % 37,
                x % 5000, x % 1000, x % 100, (int)(x % 60),
                "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefgh");
    }
    fprintf(f,
            "COMMIT;\n"
            "CREATE INDEX item_grp ON item(grp, price);\n"
            "SELECT 'rows', count(*) FROM item;\n"
            "SELECT grp, count(*), printf('%%.2f', sum(price)), min(name), max(length(note)) "
            "FROM item GROUP BY grp ORDER BY grp;\n"
            "SELECT name, count(*) AS c FROM item GROUP BY name ORDER BY c DESC, name LIMIT 10;\n"
            "SELECT a.grp, count(*) FROM item a JOIN item b ON a.id = b.id + 1 AND a.grp = b.grp "
            "GROUP BY a.grp ORDER BY a.grp LIMIT 5;\n"
            "SELECT length(group_concat(note, ',')) FROM item WHERE grp < 5;\n"
            "UPDATE item SET note = upper(note) || note WHERE id %% 3 = 0;\n"
            "DELETE FROM item WHERE id %% 7 = 0;\n"
            "VACUUM;\n"
            "SELECT 'after', count(*), sum(length(note)) FROM item;\n"
            "PRAGMA integrity_check;\n");
    cr_assert(fclose(f) == 0);

    const char *const argv[] = {"sqlite3", "-batch", "test.db", NULL};
    struct pf_run plain, pre;
    pf_compare_runs(argv, NULL, dir_plain, dir_pre, sql_path, &plain, &pre);
    char want[32];
    snprintf(want, sizeof want, "rows|%d\n", ROWS);
    cr_assert(strstr(plain.out, want) != NULL, "no \"%s\" in:\n%.400s", want, plain.out);
    cr_assert(strstr(plain.out, "\nok\n") != NULL, "integrity check failed:\n%s",
              pf_tail(plain.out, plain.out_len, 400));
    pf_run_free(&plain);
    pf_run_free(&pre);
    free(sql_path);
}

/* ---- git ------------------------------------------------------------------- */

Test(programs, git)
{
    PF_REQUIRE_PROGRAM("git");
    PF_REQUIRE_PROGRAM("bash");
    make_dirs();
    /* HOME is the twin directory's parent: no user configuration is read. */
    char home[600];
    snprintf(home, sizeof home, "HOME=%s", root);
    const char *const env[] = {home, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C", NULL};
    const char *const argv[] = {"bash", PF_DATA_DIR "/git_workload.sh", NULL};
    struct pf_run plain, pre;
    pf_compare_runs(argv, env, dir_plain, dir_pre, NULL, &plain, &pre);
    cr_assert(strstr(plain.out, "fsck: clean\n") != NULL, "%s", plain.out);
    cr_assert(strstr(plain.out, "commits: 51\n") != NULL, "%s", plain.out);
    pf_run_free(&plain);
    pf_run_free(&pre);

    /* git itself, not only the script's shell, under the preload. */
    const char *const count[] = {"git", "rev-list", "--count", "--all", NULL};
    pf_compare_runs(count, env, dir_plain, dir_pre, NULL, &plain, &pre);
    cr_assert_str_eq(pre.out, "51\n");
    pf_run_free(&plain);
    pf_run_free(&pre);
    const char *const fsck[] = {"git", "fsck", "--full", "--strict", "--no-progress", NULL};
    pf_compare_runs(fsck, env, dir_plain, dir_pre, NULL, &plain, &pre);
    pf_run_free(&plain);
    pf_run_free(&pre);
    const char *const log[] = {"git", "log", "--format=%H %an %s", "--all", NULL};
    pf_compare_runs(log, env, dir_plain, dir_pre, NULL, &plain, &pre);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

/* ---- gcc and g++ --------------------------------------------------------------- */

/* Compiles `source` both ways into "prog" in each twin directory; the two
 * binaries must be identical, and must run and print the same. */
static void compile_and_run(const char *compiler, const char *std, const char *source)
{
    PF_REQUIRE_PROGRAM(compiler);
    make_dirs();
    const char *const argv[] = {compiler, std,    "-O2",  "-pthread", "-D_GNU_SOURCE",
                                "-o",     "prog", source, "-ldl",     NULL};
    static const char *const env[] = {"LC_ALL=C", NULL};
    struct pf_run plain, pre;
    pf_compare_runs(argv, env, dir_plain, dir_pre, NULL, &plain, &pre);
    /* The driver's children inherit the preload: the compiler proper too. */
    const char *proper = strcmp(compiler, "g++") == 0 ? "cc1plus" : "cc1";
    pf_assert_preloaded(&pre, proper);
    pf_run_free(&plain);
    pf_run_free(&pre);

    char *bin_plain = pf_path(dir_plain, "prog"), *bin_pre = pf_path(dir_pre, "prog");
    size_t len_plain, len_pre;
    char *a = pf_read_file(bin_plain, &len_plain), *b = pf_read_file(bin_pre, &len_pre);
    cr_assert(len_plain > 0, "the plain compiler produced no binary");
    cr_assert(len_plain == len_pre && memcmp(a, b, len_plain) == 0,
              "%s produced different binaries under the preload (%zu vs %zu bytes)", compiler,
              len_plain, len_pre);
    free(a);
    free(b);

    /* Run the two products plainly: same status, same output. */
    const char *const run_plain[] = {bin_plain, NULL};
    const char *const run_pre[] = {bin_pre, NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN};
    pf_spawn(run_plain, &o, &plain);
    pf_spawn(run_pre, &o, &pre);
    pf_assert_ok(&plain, "compiled program");
    pf_assert_same(&plain, &pre, "compiled program");
    pf_run_free(&plain);
    pf_run_free(&pre);
    free(bin_plain);
    free(bin_pre);
}

Test(programs, gcc)
{
    compile_and_run("gcc", "-std=gnu11", PF_SOURCE_DIR "/tests/progs/threads.c");
}

Test(programs, gcc_libc_users)
{
    compile_and_run("gcc", "-std=gnu11", PF_SOURCE_DIR "/tests/progs/libc_users.c");
}

Test(programs, gxx)
{
    compile_and_run("g++", "-std=c++17", PF_SOURCE_DIR "/tests/progs/cxx_threads.cpp");
}

/* ---- sort ------------------------------------------------------------------ */

static size_t count_lines(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    return n;
}

Test(programs, sort)
{
    PF_REQUIRE_PROGRAM("sort");
    make_dirs();
    enum { LINES = 200000 };
    char *input = pf_path(root, "input.txt");
    FILE *f = fopen(input, "w");
    cr_assert(f != NULL);
    unsigned long long x = 88172645463325252ull;
    for (int i = 0; i < LINES; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        fprintf(f, "%c%c%c%c-%llu\t%llu\t%.*s\n", 'a' + (int)(x % 26), 'a' + (int)(x / 26 % 26),
                'a' + (int)(x / 676 % 26), 'a' + (int)(x / 17576 % 26), x % 1000, x % 100000,
                (int)(x % 24), "zyxwvutsrqponmlkjihgfedc");
    }
    cr_assert(fclose(f) == 0);
    char tmpdir[600];
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", root);
    const char *const env[] = {"LC_ALL=C", tmpdir, NULL};

    /* A small buffer and two threads: temporary files and a parallel merge. */
    const char *const plain_sort[] = {"sort", "-S", "256K", "--parallel=2", input, NULL};
    const char *const numeric[] = {"sort", "-t", "\t", "-k2,2n", "-k1,1r", "-s", input, NULL};
    const char *const uniq[] = {"sort", "-u", "-t", "\t", "-k3,3", input, NULL};
    const char *const *cases[] = {plain_sort, numeric, uniq};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct pf_run plain, pre;
        pf_compare_runs(cases[c], env, dir_plain, dir_pre, NULL, &plain, &pre);
        size_t lines = count_lines(plain.out, plain.out_len);
        if (c < 2)
            cr_assert_eq(lines, (size_t)LINES, "sort case %zu printed %zu lines", c, lines);
        else
            cr_assert(lines >= 1 && lines <= 24, "sort -u printed %zu lines", lines);
        pf_run_free(&plain);
        pf_run_free(&pre);
    }
    free(input);
}

/* ---- cmake ---------------------------------------------------------------------- */

/* cmake configures and builds a small C project under the preload, with
 * call sites recorded. It runs `uname` through exec_program, which reads
 * the child's stdout and stderr together, exit report included, into the
 * host's processor name, a CMake list: a `;` in the report (the leaks
 * line's, before) split it, and the configure step failed ("include
 * called with wrong number of arguments"). The built program runs. */
Test(programs, cmake_configures_and_builds_with_call_sites, .timeout = 300)
{
    PF_REQUIRE_PROGRAM("cmake");
    PF_REQUIRE_PROGRAM("cc");
    make_dirs();
    static const char lists[] = "cmake_minimum_required(VERSION 3.13)\nproject(tiny C)\n"
                                "add_executable(tiny main.c)\n";
    static const char main_c[] = "#include <stdio.h>\n#include <stdlib.h>\n"
                                 "int main(void) { char *p = malloc(32); printf(\"tiny %d\\n\", p != 0); "
                                 "free(p); return 0; }\n";
    const char *const dirs[] = {dir_plain, dir_pre};
    for (int d = 0; d < 2; d++) {
        char *src = pf_path(dirs[d], "src");
        cr_assert(mkdir(src, 0700) == 0);
        pf_write_in(src, "CMakeLists.txt", lists);
        pf_write_in(src, "main.c", main_c);
        free(src);
    }
    const char *const env[] = {"PFALLOC_SITES=1", "LC_ALL=C", NULL};
    const char *const configure[] = {"cmake", "-S", "src", "-B", "build", NULL};
    const char *const build[] = {"cmake", "--build", "build", NULL};
    char *tiny_plain = pf_path(dir_plain, "build/tiny"), *tiny_pre = pf_path(dir_pre, "build/tiny");
    const char *const run_plain[] = {tiny_plain, NULL}, *const run_pre[] = {tiny_pre, NULL};
    const char *const *steps[][2] = {{configure, configure}, {build, build}, {run_plain, run_pre}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct pf_run plain, pre;
        struct pf_spawn_opts po = {.mode = PF_PLAIN, .env = env, .cwd = dir_plain};
        struct pf_spawn_opts qo = {.mode = PF_PRELOAD, .env = env, .cwd = dir_pre};
        pf_spawn(steps[i][0], &po, &plain);
        pf_spawn(steps[i][1], &qo, &pre);
        pf_assert_ok(&plain, steps[i][0][0]);
        pf_assert_ok(&pre, steps[i][1][0]);
        if (i == 2) {
            cr_assert_str_eq(pre.out, "tiny 1\n");
            cr_assert(pf_has_report(pre.err, "tiny"), "%s", pre.err);
        }
        pf_run_free(&plain);
        pf_run_free(&pre);
    }
    free(tiny_plain);
    free(tiny_pre);
}
