/*
 * test_halloc.c — halloc.h as a Halloc program sees it: zeroed and aligned
 * arrays of any size, per-type counters, NULL frees, the printers' text, and
 * Halloc's README example compiled with its own gcc command line.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "halloc.h"
#include "compat_util.h"

/* The record of Halloc's README. */
typedef struct {
    char name[25];
    long values[10];
} typeX;

typedef struct {
    double d[3];
} vec3_t;

typedef struct {
    char c;
} tiny_t;

typedef struct {
    char bytes[1 << 20];
} mib_t;

/* ---- helpers ------------------------------------------------------------------ */




/* The first line of `text` from `from` on whose first word (after the
 * indent) is `name`, copied into out; NULL if none. */
static const char *line_of(const char *text, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *w = l;
        while (*w == ' ')
            w++;
        if (strncmp(w, name, nlen) == 0 && w[nlen] == ' ') {
            size_t n = strcspn(l, "\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, l, n);
            out[n] = '\0';
            return out;
        }
    }
    return NULL;
}

/* The "block size <size>" line that follows the line of `type` in text. */
static const char *block_line(const char *text, const char *type, size_t size, char *out,
                              size_t cap)
{
    char want[64];
    if (!line_of(text, type, out, cap))
        return NULL;
    const char *at = strstr(text, out);
    snprintf(want, sizeof want, "size %zu", size);
    for (const char *l = strchr(at, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
        const char *w = l + 1;
        while (*w == ' ')
            w++;
        if (strncmp(w, "block size ", 11) != 0)
            return NULL; /* past the type's block lines */
        if (strncmp(w + 6, want, strlen(want)) == 0 && w[6 + strlen(want)] == ' ') {
            size_t n = strcspn(w, "\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, w, n);
            out[n] = '\0';
            return out;
        }
    }
    return NULL;
}

static void print_tiny(void *arg)
{
    (void)arg;
    halloc_print_type_memory_usage(tiny_t);
}

static void print_items(void *arg)
{
    (void)arg;
    halloc_print_saved_page_items();
}

static void print_total(void *arg)
{
    (void)arg;
    halloc_print_total_memory_usage();
}

static void print_typeX(void *arg)
{
    (void)arg;
    halloc_print_type_memory_usage(typeX);
}

static void print_unused(void *arg)
{
    (void)arg;
    halloc_print_type_memory_usage(struct never_allocated);
}


/* ---- allocation ------------------------------------------------------------ */



Test(halloc, zeroed_even_when_memory_is_reused)
{
    static const size_t counts[] = {1, 7, 10, 100, 1000};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t n = counts[k];
        for (int round = 0; round < 3; round++) {
            typeX *p = halloc(typeX, n);
            cr_assert_not_null(p, "halloc(typeX, %zu)", n);
            cr_assert(all_zero(p, n * sizeof *p), "halloc(typeX, %zu) round %d not zeroed", n, round);
            memset(p, 0xab, n * sizeof *p);
            hfree(p);
        }
    }
}

Test(halloc, sixteen_byte_alignment)
{
    void *keep[96];
    for (size_t n = 1; n <= 32; n++) {
        keep[n - 1] = halloc(tiny_t, n);
        keep[n + 31] = halloc(vec3_t, n);
        keep[n + 63] = halloc(typeX, n);
    }
    for (size_t i = 0; i < 96; i++) {
        cr_assert_not_null(keep[i]);
        cr_assert_eq((uintptr_t)keep[i] % 16, 0, "block %zu at %p", i, keep[i]);
    }
    for (size_t i = 0; i < 96; i++)
        hfree(keep[i]);
}

Test(halloc, counts_per_type)
{
    struct pf_family_stats before = family("vec3_t");
    vec3_t *p[5];
    uint64_t asked = 0;

    for (size_t i = 0; i < 5; i++) {
        p[i] = halloc(vec3_t, i + 1);
        cr_assert_not_null(p[i]);
        asked += (i + 1) * sizeof(vec3_t);
    }
    struct pf_family_stats mid = family("vec3_t");
    cr_assert_str_eq(mid.name, "vec3_t");
    cr_assert_eq(mid.kind, PF_KIND_TYPED);
    cr_assert_eq(mid.slot_size, sizeof(vec3_t));
    cr_assert_eq(mid.live_objects, before.live_objects + 5);
    cr_assert_eq(mid.allocs, before.allocs + 5);
    cr_assert_eq(mid.live_requested, before.live_requested + asked);
    cr_assert_geq(mid.live_bytes, before.live_bytes + asked);

    hfree(p[0]);
    hfree(p[3]);
    struct pf_family_stats after = family("vec3_t");
    cr_assert_eq(after.live_objects, before.live_objects + 3);
    cr_assert_eq(after.frees, before.frees + 2);

    hfree(p[1]);
    hfree(p[2]);
    hfree(p[4]);
    struct pf_family_stats end = family("vec3_t");
    cr_assert_eq(end.live_objects, before.live_objects);
    cr_assert_eq(end.live_bytes, before.live_bytes);
    cr_assert_eq(end.frees, before.frees + 5);
}

Test(halloc, hfree_null_is_a_no_op)
{
    typeX *p = halloc(typeX, 1); /* so there are counters to compare */
    cr_assert_not_null(p);
    static struct pf_stats a, b;
    cr_assert_eq(pf_stats_get(&a), 0);
    errno = 4242;
    hfree(NULL);
    cr_assert_eq(errno, 4242);
    cr_assert_eq(pf_stats_get(&b), 0);
    cr_assert_eq(b.totals.frees, a.totals.frees);
    cr_assert_eq(b.totals.live_objects, a.totals.live_objects);
    hfree(p);
}

Test(halloc, more_than_one_gib)
{
    const size_t n = 1025; /* 1025 MiB: past Halloc's limit of about 1 GiB */
    struct pf_family_stats before = family("mib_t");

    cr_assert_gt(n * sizeof(mib_t), (size_t)1 << 30);
    mib_t *p = halloc(mib_t, n);
    cr_assert_not_null(p, "halloc of %zu bytes failed", n * sizeof(mib_t));
    cr_assert_eq((uintptr_t)p % 16, 0);
    cr_assert_eq(p[0].bytes[0], 0);
    cr_assert_eq(p[n / 2].bytes[12345], 0);
    cr_assert_eq(p[n - 1].bytes[sizeof(mib_t) - 1], 0);
    p[0].bytes[0] = 1;
    p[n - 1].bytes[sizeof(mib_t) - 1] = 2;
    cr_assert_eq(p[n - 1].bytes[sizeof(mib_t) - 1], 2);

    struct pf_family_stats mid = family("mib_t");
    cr_assert_eq(mid.live_objects, before.live_objects + 1);
    cr_assert_eq(mid.live_requested, before.live_requested + n * sizeof(mib_t));
    cr_assert_geq(mid.live_bytes, before.live_bytes + n * sizeof(mib_t));

    hfree(p);
    struct pf_family_stats end = family("mib_t");
    cr_assert_eq(end.live_objects, before.live_objects);
    cr_assert_eq(end.live_bytes, before.live_bytes);
}

Test(halloc, size_overflow_and_zero_count_fail_cleanly)
{
    errno = 0;
    void *p = halloc(typeX, SIZE_MAX / sizeof(typeX) + 1);
    cr_assert_null(p);
    cr_assert_eq(errno, ENOMEM);

    errno = 0;
    p = halloc(typeX, (size_t)-1);
    cr_assert_null(p);
    cr_assert_eq(errno, ENOMEM);

    p = halloc(typeX, 0);
    cr_assert_null(p);
}

/* ---- printers ------------------------------------------------------------------ */

Test(halloc_print, saved_page_items_names_each_type_and_size)
{
    typeX *x = halloc(typeX, 10);
    vec3_t *v = halloc(vec3_t, 1);
    cr_assert(x && v);

    char *text = capture(print_items, NULL);
    char line[512];
    cr_assert_not_null(line_of(text, "typeX", line, sizeof line), "no typeX in:\n%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(typeX), "%s", line);
    cr_assert_not_null(line_of(text, "vec3_t", line, sizeof line), "no vec3_t in:\n%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(vec3_t), "%s", line);
    cr_assert_null(strstr(text, "mib_t"), "a type never allocated is listed:\n%s", text);
    free(text);
    hfree(x);
    hfree(v);
}

Test(halloc_print, total_memory_usage_counts_blocks)
{
    typeX *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = halloc(typeX, 1);
        cr_assert_not_null(p[i]);
    }
    size_t bs = pf_malloc_usable_size(p[0]);
    char line[512];
    char *text = capture(print_total, NULL);
    cr_assert_not_null(line_of(text, "typeX", line, sizeof line), "no typeX in:\n%s", text);
    cr_assert_eq(field(line, "arrays"), 3, "%s", line);
    cr_assert_eq(field(line, "used bytes"), (long long)family("typeX").live_bytes, "%s", line);
    cr_assert_not_null(block_line(text, "typeX", bs, line, sizeof line), "no block size %zu:\n%s",
                       bs, text);
    long long blocks = field(line, " blocks"), freeb = field(line, "free blocks");
    cr_assert_geq(blocks, 3, "%s", line);
    cr_assert_eq(blocks - freeb, 3, "three live blocks expected: %s", line);
    free(text);

    hfree(p[1]);
    text = capture(print_total, NULL);
    cr_assert_not_null(line_of(text, "typeX", line, sizeof line), "no typeX in:\n%s", text);
    cr_assert_eq(field(line, "used bytes"), (long long)family("typeX").live_bytes, "%s", line);
    cr_assert_not_null(block_line(text, "typeX", bs, line, sizeof line), "%s", text);
    blocks = field(line, " blocks");
    freeb = field(line, "free blocks");
    cr_assert_eq(blocks - freeb, 2, "two live blocks expected: %s", line);
    free(text);

    hfree(p[0]);
    hfree(p[2]);
    text = capture(print_total, NULL);
    if (line_of(text, "typeX", line, sizeof line)) {
        cr_assert_eq(field(line, "used bytes"), 0, "%s", line);
        if (block_line(text, "typeX", bs, line, sizeof line))
            cr_assert_eq(field(line, " blocks"), field(line, "free blocks"), "all free: %s", line);
    }
    free(text);
}

Test(halloc_print, type_memory_usage_shows_one_type)
{
    typeX *p[4];
    vec3_t *v = halloc(vec3_t, 2);
    for (int i = 0; i < 4; i++)
        p[i] = halloc(typeX, 2);
    hfree(p[2]);

    char line[512];
    char *text = capture(print_typeX, NULL);
    cr_assert_not_null(strstr(text, "type typeX"), "%s", text);
    cr_assert_null(strstr(text, "vec3_t"), "another type shown:\n%s", text);
    cr_assert_not_null(strstr(text, "span 0x"), "no span listed:\n%s", text);
    cr_assert_not_null(line_of(text, "typeX", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "arrays"), 3, "%s", line);
    cr_assert_eq(field(line, "used bytes"), (long long)family("typeX").live_bytes, "%s", line);
    cr_assert_not_null(block_line(text, "typeX", pf_malloc_usable_size(p[0]), line, sizeof line),
                       "%s", text);
    cr_assert_eq(field(line, " blocks") - field(line, "free blocks"), 3, "%s", line);
    free(text);

    text = capture(print_unused, NULL);
    cr_assert_not_null(strstr(text, "struct never_allocated has no family"), "%s", text);
    free(text);

    hfree(p[0]);
    hfree(p[1]);
    hfree(p[3]);
    hfree(v);
}

/* A type whose arrays took blocks of two sizes shows each size on its own
 * line: a 16-byte block and a 1600-byte one are not two "blocks" of one
 * kind. */
Test(halloc_print, each_block_size_on_its_own)
{
    tiny_t *one = halloc(tiny_t, 1), *many = halloc(tiny_t, 1600);
    cr_assert(one && many);
    size_t small = pf_malloc_usable_size(one), big = pf_malloc_usable_size(many);
    cr_assert_neq(small, big);
    char line[512];
    void (*printers[2])(void *) = {print_total, print_tiny};
    for (int k = 0; k < 2; k++) {
        char *text = capture(printers[k], NULL);
        cr_assert_not_null(line_of(text, "tiny_t", line, sizeof line), "%s", text);
        cr_assert_eq(field(line, "arrays"), 2, "%s", line);
        cr_assert_not_null(block_line(text, "tiny_t", small, line, sizeof line),
                           "no line for %zu-byte blocks:\n%s", small, text);
        cr_assert_eq(field(line, " blocks") - field(line, "free blocks"), 1, "%s", line);
        cr_assert_not_null(block_line(text, "tiny_t", big, line, sizeof line),
                           "no line for %zu-byte blocks:\n%s", big, text);
        cr_assert_eq(field(line, " blocks") - field(line, "free blocks"), 1, "%s", line);
        free(text);
    }
    hfree(one);
    hfree(many);
}

/* ---- Halloc's README, built as its users build it ---------------------------- */

/* Compiles `src` with the README's command line (from the source tree, as
 * -Iinclude expects), runs it against the shared library, checks its text. */
static void build_and_check(const char *src, const char *dir)
{
    char cmd[4096], line[512];
    const char *so = PF_BUILD_DIR "/libpfalloc.so";

    cr_assert_eq(access(so, R_OK), 0, "%s missing: build the pfalloc_shared target", so);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && gcc '%s' -Iinclude -L'%s' -lpfalloc -Wall -Wextra -Werror -std=c11 "
             "-o '%s/prog'",
             PF_SOURCE_DIR, src, PF_BUILD_DIR, dir);
    cr_assert_eq(run(cmd), 0, "failed: %s", cmd);

    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH='%s' '%s/prog' > '%s/out.txt'", PF_BUILD_DIR, dir,
             dir);
    cr_assert_eq(run(cmd), 0, "failed: %s", cmd);

    snprintf(cmd, sizeof cmd, "%s/out.txt", dir);
    FILE *f = fopen(cmd, "r");
    cr_assert_not_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);

    /* halloc_print_saved_page_items */
    const char *items = strstr(text, "halloc: types with a family");
    cr_assert_not_null(items, "%s", text);
    cr_assert_not_null(line_of(items, "typeX", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(typeX), "%s", line);

    /* first total: the ten records are one live block */
    const char *total1 = strstr(text, "halloc: memory usage by type");
    cr_assert_not_null(total1, "%s", text);
    cr_assert_not_null(line_of(total1, "typeX", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "arrays"), 1, "%s", line);
    cr_assert_geq(field(line, "used bytes"), (long long)(10 * sizeof(typeX)), "%s", line);

    /* the type's own view */
    const char *one = strstr(text, "halloc: memory usage of type typeX");
    cr_assert_not_null(one, "%s", text);
    cr_assert_not_null(strstr(one, "span 0x"), "%s", text);
    cr_assert_not_null(line_of(one, "typeX", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "arrays"), 1, "%s", line);

    /* after hfree: a second total in which nothing of typeX is in use */
    const char *total2 = strstr(total1 + 1, "halloc: memory usage by type");
    cr_assert_not_null(total2, "no second total in:\n%s", text);
    if (line_of(total2, "typeX", line, sizeof line))
        cr_assert_eq(field(line, "used bytes"), 0, "%s", line);
}

Test(halloc_readme, example_builds_with_readme_command_and_runs, .timeout = 120, .fini = remove_scratch)
{
    const char *dir = scratch;
    make_scratch();
    build_and_check("examples/halloc_readme.c", dir);
}

/* The README writes `int main()`; the example says `int main(void)` only
 * because this project builds it with -Wstrict-prototypes. */
Test(halloc_readme, old_style_main_builds_too, .timeout = 120, .fini = remove_scratch)
{
    const char *dir = scratch;
    char path[512], cmd[1024];
    make_scratch();

    snprintf(path, sizeof path, "%s/prog_kr.c", dir);
    snprintf(cmd, sizeof cmd, "sed 's/int main(void)/int main()/' '%s/examples/halloc_readme.c' > '%s'",
             PF_SOURCE_DIR, path);
    cr_assert_eq(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'int main()' '%s'", path);
    cr_assert_eq(run(cmd), 0, "the example no longer has the main this test rewrites");

    build_and_check(path, dir);
}

/* ---- the header itself --------------------------------------------------------- */

Test(halloc_header, compiles_alone_in_c11_and_cxx, .timeout = 120, .fini = remove_scratch)
{
    const char *dir = scratch;
    char cmd[2048];
    make_scratch();

    snprintf(cmd, sizeof cmd,
             "printf '#include \"halloc.h\"\\n"
             "typedef struct { char name[25]; long values[10]; } typeX;\\n"
             "int main(void) { typeX *p = halloc(typeX, 2); p[1].values[9] = 1;"
             " halloc_print_type_memory_usage(typeX); hfree(p); return 0; }\\n' > '%s/use.c'",
             dir);
    cr_assert_eq(run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "gcc -std=c11 -pedantic -Wall -Wextra -Werror -Wstrict-prototypes -I'%s/include' "
             "-fsyntax-only '%s/use.c'",
             PF_SOURCE_DIR, dir);
    cr_assert_eq(run(cmd), 0, "C11: %s", cmd);
    snprintf(cmd, sizeof cmd,
             "g++ -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I'%s/include' "
             "-fsyntax-only '%s/use.c'",
             PF_SOURCE_DIR, dir);
    cr_assert_eq(run(cmd), 0, "C++: %s", cmd);
}
