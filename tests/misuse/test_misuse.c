/*
 * test_misuse.c — one bad act per test. Each test first forks a child that
 * does the act with stderr on a pipe, and checks that the child died of
 * SIGABRT after writing exactly the one documented line; then the test does
 * the act itself, and Criterion expects its process to die of SIGABRT.
 *
 * Line formats (%P: the address as 0x<hex>, compared by value; %s: an exact
 * family name; %F: any family name):
 *   pfalloc: double free of %P (family %s)
 *   pfalloc: <op> of freed pointer %P (family %s)
 *   pfalloc: <op> of %P, a pointer pfalloc never returned
 *   pfalloc: <op> of interior pointer %P (family %s, object at %P)
 *   pfalloc: <op> of %P, a slot never allocated (family %s)
 *   pfalloc: <op> of %P, where no object is live (family %s)   (a pooled span)
 * where <op> is "free" (for free and realloc: realloc frees the block) or
 * "malloc_usable_size" (which frees nothing, so it names a freed pointer,
 * not a double free).
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pfalloc.h"

#define MIB ((size_t)1 << 20)

struct misuse_node {
    long key;
    struct misuse_node *next;
};

/* What the act works on, set up by the test before the fork. */
static void *target;
static char family_name[PF_NAME_MAX];
static long a_global[8];

/* Does `s` read as `fmt` with the arguments filled in? */
static int match_line(const char *s, const char *fmt, va_list ap)
{
    while (*fmt) {
        if (fmt[0] == '%' && fmt[1] == 'P') {
            uintptr_t want = va_arg(ap, uintptr_t);
            if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !isxdigit((unsigned char)s[2]))
                return 0;
            char *end;
            errno = 0;
            unsigned long long v = strtoull(s + 2, &end, 16);
            if (errno != 0 || v != (unsigned long long)want)
                return 0;
            s = end;
            fmt += 2;
        } else if (fmt[0] == '%' && fmt[1] == 's') {
            const char *w = va_arg(ap, const char *);
            size_t n = strlen(w);
            if (strncmp(s, w, n) != 0)
                return 0;
            s += n;
            fmt += 2;
        } else if (fmt[0] == '%' && fmt[1] == 'F') {
            size_t n = strcspn(s, "),\n");
            if (n == 0)
                return 0;
            s += n;
            fmt += 2;
        } else {
            if (*s != *fmt)
                return 0;
            s++;
            fmt++;
        }
    }
    return *s == '\0';
}

static void no_core_dumps(void)
{
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
}

/* Runs act() in a child with stderr captured into out[cap]; returns the
 * wait status. */
static int run_child(void (*act)(void), char *out, size_t cap)
{
    no_core_dumps();
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        act();
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (n += (size_t)r) == cap - 1)
            break;
    }
    out[n] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        cr_assert_eq(errno, EINTR);
    return st;
}

/* Empty when the child died of SIGABRT after one line matching fmt;
 * otherwise what went wrong. */
static const char *verdict(int st, char *out, const char *fmt, va_list ap)
{
    size_t n = strlen(out);
    if (!WIFSIGNALED(st))
        return "the bad act did not stop the process";
    if (WTERMSIG(st) != SIGABRT)
        return "the process died of another signal than SIGABRT";
    if (n == 0 || out[n - 1] != '\n')
        return "no complete line on stderr";
    if (strchr(out, '\n') != out + n - 1)
        return "more than one line on stderr";
    out[n - 1] = '\0';
    int ok = match_line(out, fmt, ap);
    out[n - 1] = '\n';
    return ok ? "" : "the stderr line does not match";
}

static const char *judge(int st, char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *v = verdict(st, out, fmt, ap);
    va_end(ap);
    return v;
}

/* act() in a child must die of SIGABRT after writing one line matching fmt. */
static void expect_fatal(void (*act)(void), const char *fmt, ...)
{
    char out[4096];
    int st = run_child(act, out, sizeof out);
    va_list ap;
    va_start(ap, fmt);
    const char *v = verdict(st, out, fmt, ap);
    va_end(ap);
    cr_assert_str_empty(v, "%s (wait status %#x)\nexpected: %s\nstderr: %s", v, (unsigned)st,
                        fmt, out);
}

static void set_class_name(const void *p)
{
    snprintf(family_name, sizeof family_name, "malloc-%zu", pf_malloc_usable_size(p));
}

/* ---- the acts ------------------------------------------------------------ */

static void free_twice(void)
{
    pf_free(target);
    pf_free(target);
}

static void free_once(void)
{
    pf_free(target);
}

static void free_then_realloc(void)
{
    pf_free(target);
    void *q = pf_realloc(target, 128);
    /* reached only if the misuse went unnoticed */
    fprintf(stderr, "realloc returned %p\n", q);
}

static void realloc_once(void)
{
    void *q = pf_realloc(target, 128);
    fprintf(stderr, "realloc returned %p\n", q);
}

/* ---- double free --------------------------------------------------------- */

Test(misuse, double_free_small, .signal = SIGABRT)
{
    target = pf_malloc(64);
    cr_assert_not_null(target);
    set_class_name(target);
    expect_fatal(free_twice, "pfalloc: double free of %P (family %s)", (uintptr_t)target,
                 family_name);
    free_twice();
}

Test(misuse, double_free_small_after_other_frees, .signal = SIGABRT)
{
    /* the freed block is buried under other frees of its class */
    void *others[40];
    target = pf_malloc(200);
    cr_assert_not_null(target);
    for (int i = 0; i < 40; i++)
        others[i] = pf_malloc(200);
    set_class_name(target);
    pf_free(target);
    for (int i = 0; i < 40; i++)
        pf_free(others[i]);
    expect_fatal(free_once, "pfalloc: double free of %P (family %s)", (uintptr_t)target,
                 family_name);
    free_once();
}

Test(misuse, double_free_large, .signal = SIGABRT)
{
    target = pf_malloc(64 * MIB);
    cr_assert_not_null(target);
    expect_fatal(free_twice, "pfalloc: double free of %P (family %s)", (uintptr_t)target,
                 "large");
    free_twice();
}

Test(misuse, double_free_typed, .signal = SIGABRT)
{
    target = PF_NEW(struct misuse_node, 1);
    cr_assert_not_null(target);
    expect_fatal(free_twice, "pfalloc: double free of %P (family %s)", (uintptr_t)target,
                 "struct misuse_node");
    free_twice();
}

Test(misuse, double_free_aligned, .signal = SIGABRT)
{
    target = pf_aligned_alloc(4096, 100);
    cr_assert_not_null(target);
    expect_fatal(free_twice, "pfalloc: double free of %P (family %F)", (uintptr_t)target);
    free_twice();
}

/* ---- pointers pfalloc never returned -------------------------------------- */

Test(misuse, free_of_stack_address, .signal = SIGABRT)
{
    long local[4] = {1, 2, 3, 4};
    target = &local[1];
    expect_fatal(free_once, "pfalloc: free of %P, a pointer pfalloc never returned",
                 (uintptr_t)target);
    free_once();
}

Test(misuse, free_of_global_address, .signal = SIGABRT)
{
    target = &a_global[2];
    expect_fatal(free_once, "pfalloc: free of %P, a pointer pfalloc never returned",
                 (uintptr_t)target);
    free_once();
}

Test(misuse, free_of_libc_pointer, .signal = SIGABRT)
{
    /* the test links libpfalloc.a, not the preload: malloc here is libc's */
    target = malloc(64);
    cr_assert_not_null(target);
    expect_fatal(free_once, "pfalloc: free of %P, a pointer pfalloc never returned",
                 (uintptr_t)target);
    free_once();
}

Test(misuse, free_of_libc_mmapped_pointer, .signal = SIGABRT)
{
    target = malloc(4 * MIB);
    cr_assert_not_null(target);
    expect_fatal(free_once, "pfalloc: free of %P, a pointer pfalloc never returned",
                 (uintptr_t)target);
    free_once();
}

/* ---- interior pointers --------------------------------------------------- */

static void *object;

Test(misuse, free_of_interior_pointer_small, .signal = SIGABRT)
{
    object = pf_malloc(64);
    cr_assert_not_null(object);
    set_class_name(object);
    target = (char *)object + 16;
    expect_fatal(free_once, "pfalloc: free of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, family_name, (uintptr_t)object);
    free_once();
}

Test(misuse, free_of_interior_pointer_large, .signal = SIGABRT)
{
    object = pf_malloc(64 * MIB);
    cr_assert_not_null(object);
    target = (char *)object + 4096;
    expect_fatal(free_once, "pfalloc: free of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, "large", (uintptr_t)object);
    free_once();
}

Test(misuse, free_of_interior_pointer_typed, .signal = SIGABRT)
{
    struct misuse_node *arr = PF_NEW(struct misuse_node, 4);
    cr_assert_not_null(arr);
    object = arr;
    target = &arr[1];
    expect_fatal(free_once, "pfalloc: free of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, "struct misuse_node", (uintptr_t)object);
    free_once();
}

/* Deep inside a large block (beyond its first 64 KiB): still its interior. */
Test(misuse, free_of_interior_pointer_deep_in_large_block, .signal = SIGABRT)
{
    object = pf_malloc(1 * MIB);
    cr_assert_not_null(object);
    target = (char *)object + 200000;
    expect_fatal(free_once, "pfalloc: free of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, "large", (uintptr_t)object);
    target = (char *)object + MIB - 16;
    expect_fatal(free_once, "pfalloc: free of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, "large", (uintptr_t)object);
    target = (char *)object + 200000;
    free_once();
}

Test(misuse, free_of_interior_pointer_deep_in_typed_large_block, .signal = SIGABRT)
{
    struct misuse_node *arr = PF_NEW(struct misuse_node, 100000);
    cr_assert_not_null(arr);
    object = arr;
    target = &arr[50000];
    expect_fatal(free_once, "pfalloc: free of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, "struct misuse_node", (uintptr_t)object);
    free_once();
}

/* p + 48 of a 48-byte block is the next slot's start: that slot was never
 * allocated, so this is no double free. */
Test(misuse, free_of_next_slot_never_allocated_is_no_double_free, .signal = SIGABRT)
{
    object = pf_malloc(48);
    cr_assert_not_null(object);
    cr_assert_eq(pf_malloc_usable_size(object), 48);
    set_class_name(object);
    target = (char *)object + 48;
    expect_fatal(free_once, "pfalloc: free of %P, a slot never allocated (family %s)",
                 (uintptr_t)target, family_name);
    free_once();
}

/* ... while the start of a slot that was allocated and freed is one. */
Test(misuse, free_of_next_slot_freed_is_a_double_free, .signal = SIGABRT)
{
    char *b[16];
    for (int i = 0; i < 16; i++) {
        b[i] = pf_malloc(48);
        cr_assert_not_null(b[i]);
    }
    set_class_name(b[0]);
    int x = -1, y = -1;
    for (int i = 0; i < 16 && x < 0; i++)
        for (int j = 0; j < 16; j++)
            if (b[j] == b[i] + 48) {
                x = i;
                y = j;
                break;
            }
    cr_assert_geq(x, 0, "no two neighbouring slots among 16 blocks");
    pf_free(b[y]);
    target = b[x] + 48;
    expect_fatal(free_once, "pfalloc: double free of %P (family %s)", (uintptr_t)target, family_name);
    free_once();
}

/* ---- realloc of bad pointers: the same line as free names them ---------- */

Test(misuse, realloc_of_freed_pointer, .signal = SIGABRT)
{
    target = pf_malloc(64);
    cr_assert_not_null(target);
    set_class_name(target);
    expect_fatal(free_then_realloc, "pfalloc: double free of %P (family %s)",
                 (uintptr_t)target, family_name);
    free_then_realloc();
}

Test(misuse, realloc_of_freed_large_pointer, .signal = SIGABRT)
{
    target = pf_malloc(64 * MIB);
    cr_assert_not_null(target);
    expect_fatal(free_then_realloc, "pfalloc: double free of %P (family %s)",
                 (uintptr_t)target, "large");
    free_then_realloc();
}

Test(misuse, realloc_of_stack_address, .signal = SIGABRT)
{
    long local[4] = {1, 2, 3, 4};
    target = &local[0];
    expect_fatal(realloc_once, "pfalloc: free of %P, a pointer pfalloc never returned",
                 (uintptr_t)target);
    realloc_once();
}

Test(misuse, realloc_of_interior_pointer, .signal = SIGABRT)
{
    object = pf_malloc(64);
    cr_assert_not_null(object);
    set_class_name(object);
    target = (char *)object + 16;
    expect_fatal(realloc_once, "pfalloc: free of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, family_name, (uintptr_t)object);
    realloc_once();
}

/* ---- malloc_usable_size of bad pointers: named and fatal, like free --------- */

static void usable_once(void)
{
    size_t n = pf_malloc_usable_size(target);
    fprintf(stderr, "malloc_usable_size returned %zu\n", n);
}

static void free_then_usable(void)
{
    pf_free(target);
    usable_once();
}

Test(misuse, usable_size_of_stack_address, .signal = SIGABRT)
{
    long local[4] = {1, 2, 3, 4};
    target = &local[1];
    expect_fatal(usable_once, "pfalloc: malloc_usable_size of %P, a pointer pfalloc never returned",
                 (uintptr_t)target);
    usable_once();
}

Test(misuse, usable_size_of_libc_pointer, .signal = SIGABRT)
{
    target = malloc(64);
    cr_assert_not_null(target);
    expect_fatal(usable_once, "pfalloc: malloc_usable_size of %P, a pointer pfalloc never returned",
                 (uintptr_t)target);
    usable_once();
}

Test(misuse, usable_size_of_freed_pointer, .signal = SIGABRT)
{
    target = pf_malloc(64);
    cr_assert_not_null(target);
    set_class_name(target);
    expect_fatal(free_then_usable, "pfalloc: malloc_usable_size of freed pointer %P (family %s)",
                 (uintptr_t)target, family_name);
    free_then_usable();
}

Test(misuse, usable_size_of_freed_large_pointer, .signal = SIGABRT)
{
    target = pf_malloc(64 * MIB);
    cr_assert_not_null(target);
    expect_fatal(free_then_usable, "pfalloc: malloc_usable_size of freed pointer %P (family %s)",
                 (uintptr_t)target, "large");
    free_then_usable();
}

Test(misuse, usable_size_of_freed_typed_pointer, .signal = SIGABRT)
{
    target = PF_NEW(struct misuse_node, 1);
    cr_assert_not_null(target);
    expect_fatal(free_then_usable, "pfalloc: malloc_usable_size of freed pointer %P (family %s)",
                 (uintptr_t)target, "struct misuse_node");
    free_then_usable();
}

Test(misuse, usable_size_of_interior_pointer, .signal = SIGABRT)
{
    object = pf_malloc(64);
    cr_assert_not_null(object);
    set_class_name(object);
    target = (char *)object + 16;
    expect_fatal(usable_once,
                 "pfalloc: malloc_usable_size of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, family_name, (uintptr_t)object);
    usable_once();
}

Test(misuse, usable_size_of_interior_pointer_large, .signal = SIGABRT)
{
    object = pf_malloc(64 * MIB);
    cr_assert_not_null(object);
    target = (char *)object + 4096;
    expect_fatal(usable_once,
                 "pfalloc: malloc_usable_size of interior pointer %P (family %s, object at %P)",
                 (uintptr_t)target, "large", (uintptr_t)object);
    usable_once();
}

Test(misuse, usable_size_of_null_is_zero)
{
    cr_assert_eq(pf_malloc_usable_size(NULL), 0);
}

/* ---- the checker itself --------------------------------------------------- */

static int matches(const char *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int ok = match_line(s, fmt, ap);
    va_end(ap);
    return ok;
}

Test(misuse, line_matcher_rejects_wrong_lines)
{
    /* the matcher must tell right from wrong, or the tests above prove nothing */
    const char *f = "pfalloc: double free of %P (family %s)";
    cr_assert(matches("pfalloc: double free of 0x7f00a0 (family malloc-64)", f,
                      (uintptr_t)0x7f00a0, "malloc-64"));
    cr_assert(matches("pfalloc: double free of 0x00007f00a0 (family malloc-64)", f,
                      (uintptr_t)0x7f00a0, "malloc-64"));
    cr_assert_not(matches("pfalloc: double free of 0x7f00a1 (family malloc-64)", f,
                          (uintptr_t)0x7f00a0, "malloc-64"));
    cr_assert_not(matches("pfalloc: double free of 0x7f00a0 (family malloc-48)", f,
                          (uintptr_t)0x7f00a0, "malloc-64"));
    cr_assert_not(matches("pfalloc: double free of 7f00a0 (family malloc-64)", f,
                          (uintptr_t)0x7f00a0, "malloc-64"));
    cr_assert_not(matches("pfalloc: double free of 0x7f00a0 (family malloc-64) extra", f,
                          (uintptr_t)0x7f00a0, "malloc-64"));
    cr_assert(matches("pfalloc: double free of 0x10 (family large)",
                      "pfalloc: double free of %P (family %F)", (uintptr_t)0x10));
    cr_assert_not(matches("pfalloc: double free of 0x10 (family )",
                          "pfalloc: double free of %P (family %F)", (uintptr_t)0x10));
}

static void exits_quietly(void)
{
}

static void aborts_with_other_line(void)
{
    fputs("pfalloc: something else\n", stderr);
    abort();
}

Test(misuse, checker_rejects_wrong_children)
{
    char out[4096];
    const char *f = "pfalloc: double free of %P (family %s)";
    int st = run_child(exits_quietly, out, sizeof out);
    cr_assert_str_neq(judge(st, out, f, (uintptr_t)1, "x"), "", "a clean exit passed");
    st = run_child(aborts_with_other_line, out, sizeof out);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    cr_assert_str_eq(out, "pfalloc: something else\n");
    cr_assert_str_neq(judge(st, out, f, (uintptr_t)1, "x"), "", "a wrong line passed");
    cr_assert_str_empty(judge(st, out, "pfalloc: something else"));
}
