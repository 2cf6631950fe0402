/*
 * test_headers.c — every public header in include/ compiles on its own (it
 * includes what it uses), survives being included twice, and builds under
 * the project's warning flags; headers that promise C++ (a __cplusplus
 * guard) also compile as C++. The compiler is the one the build used.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pfalloc.h"

#ifndef PF_SOURCE_DIR
#error "PF_SOURCE_DIR must name the source tree"
#endif
#ifndef PF_BUILD_DIR
#error "PF_BUILD_DIR must name the build tree"
#endif

#define INCLUDE_DIR PF_SOURCE_DIR "/include"

/* A fresh scratch directory under $TMPDIR (or /tmp) in buf. */
static char *scratch_dir(char *buf, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, cap, "%s/pfalloc-headers-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char *dir = mkdtemp(buf);
    cr_assert_not_null(dir, "mkdtemp %s: %s", buf, strerror(errno));
    return dir;
}

/* The compiler CMake chose (`key` is CMAKE_C_COMPILER or CMAKE_CXX_COMPILER),
 * or `fallback` when the cache does not say. */
static void compiler(const char *key, const char *fallback, char *out, size_t cap)
{
    snprintf(out, cap, "%s", fallback);
    FILE *f = fopen(PF_BUILD_DIR "/CMakeCache.txt", "r");
    if (!f)
        return;
    char line[4096];
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0 || line[klen] != ':')
            continue;
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        eq++;
        eq[strcspn(eq, "\r\n")] = '\0';
        if (*eq)
            snprintf(out, cap, "%s", eq);
        break;
    }
    fclose(f);
}

/* Runs argv; returns its exit status (-1 if it died) and leaves its output
 * in `log`. */
static int run(char *const argv[], char *log, size_t cap)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], log + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1) {
            /* keep draining so the child never blocks on a full pipe */
            char sink[512];
            while (read(fds[0], sink, sizeof sink) > 0) {
            }
            break;
        }
    }
    log[n] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        cr_assert_eq(errno, EINTR);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int mentions_cplusplus(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "__cplusplus") != NULL;
    fclose(f);
    return found;
}

/* Compiles a file holding only `#include <hdr>` twice, as C or C++. */
static void compile_alone(const char *dir, const char *hdr, int cplusplus)
{
    char src[4096], cc[1024], log[16384];
    snprintf(src, sizeof src, "%s/only_%s.%s", dir, hdr, cplusplus ? "cpp" : "c");
    FILE *f = fopen(src, "w");
    cr_assert_not_null(f);
    fprintf(f, "#include <%s>\n#include <%s>\n", hdr, hdr);
    fprintf(f, "int pf_header_probe(void);\nint pf_header_probe(void) { return 0; }\n");
    cr_assert_eq(fclose(f), 0);

    if (cplusplus) {
        compiler("CMAKE_CXX_COMPILER", "c++", cc, sizeof cc);
        char *argv[] = {cc, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                        "-Wshadow", "-I" INCLUDE_DIR, src, NULL};
        int rc = run(argv, log, sizeof log);
        cr_assert_eq(rc, 0, "%s does not compile alone as C++ (%s exit %d):\n%s", hdr, cc, rc,
                     log);
    } else {
        compiler("CMAKE_C_COMPILER", "cc", cc, sizeof cc);
        char *argv[] = {cc, "-std=c11", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                        "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes",
                        "-I" INCLUDE_DIR, src, NULL};
        int rc = run(argv, log, sizeof log);
        cr_assert_eq(rc, 0, "%s does not compile alone as C (%s exit %d):\n%s", hdr, cc, rc,
                     log);
    }
    unlink(src);
}

Test(headers, each_public_header_compiles_alone)
{
    char tmpl[4096];
    char *dir = scratch_dir(tmpl, sizeof tmpl);

    DIR *d = opendir(INCLUDE_DIR);
    cr_assert_not_null(d, "cannot open %s", INCLUDE_DIR);
    int count = 0, saw_pfalloc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".h") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", INCLUDE_DIR, e->d_name);
        compile_alone(dir, e->d_name, 0);
        if (mentions_cplusplus(path))
            compile_alone(dir, e->d_name, 1);
        saw_pfalloc |= strcmp(e->d_name, "pfalloc.h") == 0;
        count++;
    }
    closedir(d);
    rmdir(dir);
    cr_assert(saw_pfalloc, "pfalloc.h not found in %s", INCLUDE_DIR);
    cr_assert_geq(count, 1);
}

Test(headers, a_broken_header_is_caught)
{
    /* The check above must be able to fail: a header that uses size_t
     * without including <stddef.h> is rejected by the same command. */
    char tmpl[4096];
    char *dir = scratch_dir(tmpl, sizeof tmpl);
    char hdr[4096], src[4096], cc[1024], log[16384];
    snprintf(hdr, sizeof hdr, "%s/broken.h", dir);
    snprintf(src, sizeof src, "%s/only_broken.c", dir);
    FILE *f = fopen(hdr, "w");
    cr_assert_not_null(f);
    fputs("size_t broken_size(void);\n", f);
    fclose(f);
    f = fopen(src, "w");
    cr_assert_not_null(f);
    fputs("#include \"broken.h\"\n", f);
    fclose(f);
    compiler("CMAKE_C_COMPILER", "cc", cc, sizeof cc);
    char *argv[] = {cc, "-std=c11", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", src, NULL};
    int rc = run(argv, log, sizeof log);
    unlink(src);
    unlink(hdr);
    rmdir(dir);
    cr_assert_neq(rc, 0, "a header missing <stddef.h> compiled: the check is blind");
    cr_assert_neq(rc, 127, "compiler %s could not be run", cc);
}

Test(headers, api_macros_expand)
{
    /* PF_NEW and PF_DELETE expand to working calls with only pfalloc.h */
    unsigned short *u = PF_NEW(unsigned short, 3);
    cr_assert_not_null(u);
    cr_assert_eq(u[0] | u[1] | u[2], 0);
    PF_DELETE(u);
    cr_assert_eq(PF_KIND_CLASS, 0);
    cr_assert_eq(PF_KIND_TYPED, 1);
    cr_assert_eq(PF_KIND_LARGE, 2);
    cr_assert_geq(PF_NAME_MAX, 16);
}
