/*
 * test_uapi_mm.c — uapi_mm.h as a Linux Memory Manager program sees it:
 * registration, XCALLOC of registered and unregistered types (zeroed,
 * 16-byte aligned, bigger than a page), per-family counters, NULL frees, the
 * by-name calls, the printers' text, and many threads at once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uapi_mm.h"
#include "compat_util.h"

typedef struct emp_ {
    char name[32];
    uint32_t emp_id;
} emp_t;

typedef struct {
    char name[48];
    uint64_t salary;
} employee_t;

typedef struct student_ {
    char name[32];
    uint32_t rollno;
    uint32_t marks[3];
    struct student_ *next;
} student_t;

typedef struct {
    char raw[3 * 4096 + 100];
} big_frame_t;

typedef struct {
    uint64_t owner;
    uint64_t seq;
    char pad[40];
} node_t;

/* ---- helpers ------------------------------------------------------------------ */





/* The first line of text (from its start) containing `needle`, or NULL. */
static const char *line_with(const char *text, const char *needle, char *out, size_t cap)
{
    const char *hit = strstr(text, needle);
    if (!hit)
        return NULL;
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    size_t n = strcspn(start, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, start, n);
    out[n] = '\0';
    return out;
}


static void print_registered(void *arg)
{
    (void)arg;
    mm_print_registered_page_families();
}

static void print_usage(void *arg)
{
    mm_print_memory_usage((const char *)arg);
}

static void print_blocks(void *arg)
{
    (void)arg;
    mm_print_block_usage();
}


/* ---- set-up and registration --------------------------------------------------- */



Test(mm, init_is_a_harmless_no_op)
{
    static struct pf_stats a, b;
    cr_assert_eq(pf_stats_get(&a), 0);
    for (int i = 0; i < 100; i++)
        mm_init();
    cr_assert_eq(pf_stats_get(&b), 0);
    cr_assert_eq(b.totals.families, a.totals.families);
    cr_assert_eq(b.totals.allocs, a.totals.allocs);

    MM_REG_STRUCT(emp_t);
    mm_init();
    emp_t *e = XCALLOC(1, emp_t);
    cr_assert_not_null(e);
    XFREE(e);
}

Test(mm, reg_struct_creates_the_family_once)
{
    MM_REG_STRUCT(emp_t);
    pf_family_t *f = pf_family_get("emp_t", sizeof(emp_t));
    cr_assert_not_null(f);
    MM_REG_STRUCT(emp_t); /* the original asserted here */
    cr_assert_eq(pf_family_get("emp_t", sizeof(emp_t)), f);
    /* The name is now bound to that size. */
    errno = 0;
    cr_assert_null(pf_family_get("emp_t", sizeof(emp_t) + 16));
    cr_assert_eq(errno, EINVAL);
}

static void register_clash(void *arg)
{
    (void)arg;
    mm_instantiate_new_page_family("clash_t", 24);
    mm_instantiate_new_page_family("clash_t", 40);
}

Test(mm, registering_a_name_with_another_size_warns)
{
    char *err = capture_fd(2, register_clash, NULL);
    cr_assert_not_null(strstr(err, "clash_t"), "no warning naming the family: '%s'", err);
    const char *nl = strchr(err, '\n');
    cr_assert(nl && nl[1] == '\0', "one line expected: '%s'", err);
    free(err);
    cr_assert_not_null(pf_family_get("clash_t", 24), "the first size must stay");
}

/* ---- allocation ------------------------------------------------------------ */

Test(mm, xcalloc_zeroed_and_aligned)
{
    for (int round = 0; round < 3; round++) {
        for (int n = 1; n <= 40; n++) {
            emp_t *e = XCALLOC(n, emp_t);
            student_t *s = XCALLOC(n, student_t);
            char *c = XCALLOC(n * 7, char);
            cr_assert(e && s && c);
            cr_assert_eq((uintptr_t)e % 16, 0);
            cr_assert_eq((uintptr_t)s % 16, 0);
            cr_assert_eq((uintptr_t)c % 16, 0, "XCALLOC(%d, char) at %p", n * 7, (void *)c);
            cr_assert(all_zero(e, (size_t)n * sizeof *e));
            cr_assert(all_zero(s, (size_t)n * sizeof *s));
            cr_assert(all_zero(c, (size_t)n * 7));
            memset(e, 0x5a, (size_t)n * sizeof *e);
            memset(s, 0x5a, (size_t)n * sizeof *s);
            memset(c, 0x5a, (size_t)n * 7);
            XFREE(e);
            XFREE(s);
            XFREE(c);
        }
    }
}

Test(mm, xcalloc_of_a_type_never_registered)
{
    struct pf_family_stats before = family("employee_t");
    cr_assert_eq(before.allocs, 0, "employee_t used before the test");
    employee_t *e = XCALLOC(5, employee_t);
    cr_assert_not_null(e);
    cr_assert(all_zero(e, 5 * sizeof *e));
    struct pf_family_stats f = family("employee_t");
    cr_assert_eq(f.kind, PF_KIND_TYPED);
    cr_assert_eq(f.slot_size, sizeof(employee_t));
    cr_assert_eq(f.live_objects, 1);
    cr_assert_eq(f.live_requested, 5 * sizeof(employee_t));
    XFREE(e);
    cr_assert_eq(family("employee_t").live_objects, 0);
}

Test(mm, objects_larger_than_a_page)
{
    cr_assert_gt(sizeof(big_frame_t), (size_t)3 * 4096);
    big_frame_t *f[6];
    for (int i = 0; i < 6; i++) {
        f[i] = XCALLOC(i + 1, big_frame_t);
        cr_assert_not_null(f[i]);
        cr_assert_eq((uintptr_t)f[i] % 16, 0);
        cr_assert(all_zero(f[i], (size_t)(i + 1) * sizeof(big_frame_t)));
        memset(f[i], 0x77, (size_t)(i + 1) * sizeof(big_frame_t));
    }
    cr_assert_eq(family("big_frame_t").live_objects, 6);
    for (int i = 0; i < 6; i++)
        XFREE(f[i]);
    cr_assert_eq(family("big_frame_t").live_objects, 0);
}

Test(mm, counts_per_family)
{
    MM_REG_STRUCT(student_t);
    struct pf_family_stats before = family("student_t");
    student_t *s[10];
    for (int i = 0; i < 10; i++) {
        s[i] = XCALLOC(1, student_t);
        cr_assert_not_null(s[i]);
    }
    struct pf_family_stats mid = family("student_t");
    cr_assert_eq(mid.live_objects, before.live_objects + 10);
    cr_assert_eq(mid.allocs, before.allocs + 10);
    cr_assert_eq(mid.live_requested, before.live_requested + 10 * sizeof(student_t));

    for (int i = 0; i < 4; i++)
        XFREE(s[i]);
    struct pf_family_stats after = family("student_t");
    cr_assert_eq(after.live_objects, before.live_objects + 6);
    cr_assert_eq(after.frees, before.frees + 4);
    /* Other families did not move. */
    cr_assert_eq(family("emp_t").live_objects, 0);

    for (int i = 4; i < 10; i++)
        XFREE(s[i]);
    cr_assert_eq(family("student_t").live_objects, before.live_objects);
}

Test(mm, xfree_null_is_a_no_op)
{
    emp_t *e = XCALLOC(1, emp_t);
    cr_assert_not_null(e);
    static struct pf_stats a, b;
    cr_assert_eq(pf_stats_get(&a), 0);
    errno = 777;
    XFREE(NULL);
    xfree(NULL);
    cr_assert_eq(errno, 777);
    cr_assert_eq(pf_stats_get(&b), 0);
    cr_assert_eq(b.totals.frees, a.totals.frees);
    cr_assert_eq(b.totals.live_objects, a.totals.live_objects);
    XFREE(e);
}

Test(mm, counts_that_overflow_or_are_negative_fail)
{
    int n = -1;
    errno = 0;
    cr_assert_null(XCALLOC(n, emp_t));
    cr_assert_neq(errno, 0);
    errno = 0;
    cr_assert_null(XCALLOC(SIZE_MAX / sizeof(emp_t) + 1, emp_t));
    cr_assert_eq(errno, ENOMEM);
}

Test(mm, xcalloc_by_name_needs_a_registered_family)
{
    MM_REG_STRUCT(emp_t);
    emp_t *e = xcalloc("emp_t", 3);
    cr_assert_not_null(e);
    cr_assert_eq((uintptr_t)e % 16, 0);
    cr_assert(all_zero(e, 3 * sizeof *e));
    struct pf_family_stats f = family("emp_t");
    cr_assert_eq(f.live_objects, 1);
    cr_assert_eq(f.live_requested, 3 * sizeof(emp_t));
    xfree(e);
    cr_assert_eq(family("emp_t").live_objects, 0);

    errno = 0;
    cr_assert_null(xcalloc("nobody_t", 1)); /* the original asserted */
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(xcalloc("emp_t", -2));

    /* xcalloc(NULL, size) was the original's untyped door. */
    char *raw = xcalloc(NULL, 100);
    cr_assert_not_null(raw);
    cr_assert(all_zero(raw, 100));
    xfree(raw);
    raw = XCALLOC_MISC(300);
    cr_assert_not_null(raw);
    cr_assert(all_zero(raw, 300));
    XFREE(raw);
}

/* ---- printers ------------------------------------------------------------------ */

Test(mm_print, registered_page_families)
{
    MM_REG_STRUCT(emp_t);
    MM_REG_STRUCT(student_t);
    char line[512];
    char *text = capture(print_registered, NULL);
    cr_assert_not_null(line_with(text, "emp_t ", line, sizeof line),
                       "a registered family is missing before any allocation:\n%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(emp_t), "%s", line);
    cr_assert_not_null(line_with(text, "student_t ", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(student_t), "%s", line);
    free(text);
}

Test(mm_print, registered_page_families_after_use)
{
    emp_t *e = XCALLOC(1, emp_t);
    employee_t *w = XCALLOC(1, employee_t);
    char line[512];
    char *text = capture(print_registered, NULL);
    cr_assert_not_null(line_with(text, "emp_t ", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(emp_t), "%s", line);
    cr_assert_not_null(line_with(text, "employee_t ", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(employee_t), "%s", line);
    cr_assert_null(strstr(text, "student_t"), "%s", text);
    free(text);
    XFREE(e);
    XFREE(w);
}

Test(mm_print, memory_usage_selects_by_prefix)
{
    emp_t *e = XCALLOC(2, emp_t);
    employee_t *w = XCALLOC(1, employee_t);
    student_t *s = XCALLOC(1, student_t);
    cr_assert(e && w && s);
    char line[512];

    char *text = capture(print_usage, (void *)"emp");
    cr_assert_not_null(line_with(text, "page family emp_t ", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "object size"), (long long)sizeof(emp_t), "%s", line);
    cr_assert_eq(field(line, "application bytes"), (long long)family("emp_t").live_requested,
                 "%s", line);
    cr_assert_eq(field(line, "live objects"), 1, "%s", line);
    cr_assert_not_null(strstr(text, "page family employee_t "), "%s", text);
    cr_assert_null(strstr(text, "student_t"), "prefix emp matched student_t:\n%s", text);
    cr_assert_not_null(strstr(text, "span 0"), "no span listed:\n%s", text);
    cr_assert_not_null(line_with(text, "total application bytes", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "total application bytes"),
                 (long long)(family("emp_t").live_requested + family("employee_t").live_requested),
                 "%s", line);
    free(text);

    text = capture(print_usage, (void *)"student_t");
    cr_assert_not_null(strstr(text, "page family student_t "), "%s", text);
    cr_assert_null(strstr(text, "emp"), "%s", text);
    free(text);

    /* The original matched when the family's name was a prefix of the
     * argument; here the argument is the prefix. */
    text = capture(print_usage, (void *)"emp_t_and_more");
    cr_assert_null(strstr(text, "page family emp_t"), "%s", text);
    cr_assert_not_null(strstr(text, "no page family starting with emp_t_and_more"), "%s", text);
    free(text);

    text = capture(print_usage, NULL);
    cr_assert_not_null(strstr(text, "page family emp_t "), "%s", text);
    cr_assert_not_null(strstr(text, "page family employee_t "), "%s", text);
    cr_assert_not_null(strstr(text, "page family student_t "), "%s", text);
    free(text);

    XFREE(e);
    XFREE(w);
    XFREE(s);
}

/* A family's name is any string the program registers: a newline in it
 * is written as '?' (as in the reports), so a family's line stays one line
 * and no line of the listing is made up by a name. */
Test(mm_print, a_name_with_a_newline_keeps_its_line)
{
    mm_instantiate_new_page_family("odd\ntotal application bytes 999", 24);
    void *p = pf_mm_calloc_by_name("odd\ntotal application bytes 999", 1);
    cr_assert_not_null(p);
    char line[512];
    char *text = capture(print_usage, (void *)"odd");
    cr_assert_not_null(line_with(text, "page family odd?total application bytes 999  object size 24", line,
                                 sizeof line), "%s", text);
    size_t lines = 0;
    for (const char *s = text; (s = strstr(s, "total application bytes")) != NULL; s++)
        lines += s == text || s[-1] == '\n';
    cr_assert_eq(lines, 1, "a line made up by the name:\n%s", text);
    free(text);
    text = capture(print_usage, (void *)"none\nspans 7");
    cr_assert_not_null(strstr(text, "no page family starting with none?spans 7\n"), "%s", text);
    free(text);
    XFREE(p);
}

Test(mm_print, block_usage_counts)
{
    student_t *s[9];
    for (int i = 0; i < 9; i++)
        s[i] = XCALLOC(1, student_t);
    XFREE(s[0]);
    XFREE(s[5]);
    emp_t *e = XCALLOC(4, emp_t);

    char line[512];
    char *text = capture(print_blocks, NULL);
    cr_assert_not_null(line_with(text, "student_t ", line, sizeof line), "%s", text);
    long long total = field(line, "total blocks"), freeb = field(line, "free blocks"),
              occupied = field(line, "occupied blocks");
    cr_assert_eq(occupied, 7, "%s", line);
    cr_assert_eq(total, freeb + occupied, "%s", line);
    cr_assert_eq(field(line, "application bytes"), (long long)(7 * sizeof(student_t)), "%s", line);

    cr_assert_not_null(line_with(text, "emp_t ", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "occupied blocks"), 1, "%s", line);
    cr_assert_eq(field(line, "application bytes"), (long long)(4 * sizeof(emp_t)), "%s", line);
    free(text);

    for (int i = 0; i < 9; i++)
        if (i != 0 && i != 5)
            XFREE(s[i]);
    XFREE(e);
    text = capture(print_blocks, NULL);
    if (line_with(text, "student_t ", line, sizeof line)) {
        cr_assert_eq(field(line, "occupied blocks"), 0, "%s", line);
        cr_assert_eq(field(line, "total blocks"), field(line, "free blocks"), "%s", line);
    }
    free(text);
}

typedef struct {
    char raw[200 * 1024];
} huge_t;

Test(mm_print, family_with_hundreds_of_spans)
{
    enum { N = 300 }; /* more spans than a printer keeps on its stack */
    static huge_t *h[N];
    for (int i = 0; i < N; i++) {
        h[i] = XCALLOC(1, huge_t);
        cr_assert_not_null(h[i]);
    }
    char line[512];
    char *text = capture(print_blocks, NULL);
    cr_assert_not_null(line_with(text, "huge_t ", line, sizeof line), "%s", text);
    cr_assert_eq(field(line, "occupied blocks"), N, "%s", line);
    cr_assert_eq(field(line, "total blocks"), field(line, "free blocks") + N, "%s", line);
    free(text);

    text = capture(print_usage, (void *)"huge_t");
    cr_assert_not_null(strstr(text, "span 299 "), "not every span listed");
    cr_assert_not_null(line_with(text, "spans ", line, sizeof line), "%s", text);
    cr_assert_geq(field(line, "spans"), N, "%s", line);
    free(text);

    for (int i = 0; i < N; i++)
        XFREE(h[i]);
    cr_assert_eq(family("huge_t").live_objects, 0);
}

/* ---- threads ----------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 2000

struct worker {
    pthread_t tid;
    uint64_t id;
    node_t *kept[PER_THREAD / 2];
    int failed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    node_t *mine[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        mine[i] = XCALLOC(1, node_t);
        if (!mine[i] || (uintptr_t)mine[i] % 16 || !all_zero(mine[i], sizeof(node_t))) {
            w->failed = 1;
            return NULL;
        }
        mine[i]->owner = w->id;
        mine[i]->seq = (uint64_t)i;
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (mine[i]->owner != w->id || mine[i]->seq != (uint64_t)i)
            w->failed = 1;
        if (i % 2)
            w->kept[i / 2] = mine[i];
        else
            XFREE(mine[i]);
    }
    return NULL;
}

Test(mm_threads, many_threads_allocate_and_free, .timeout = 60)
{
    static struct worker w[THREADS];
    struct pf_family_stats before = family("node_t");

    for (int t = 0; t < THREADS; t++) {
        w[t].id = (uint64_t)t + 1;
        cr_assert_eq(pthread_create(&w[t].tid, NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        cr_assert_eq(pthread_join(w[t].tid, NULL), 0);
        cr_assert_eq(w[t].failed, 0, "thread %d saw a bad block", t);
    }

    struct pf_family_stats mid = family("node_t");
    cr_assert_eq(mid.allocs, before.allocs + THREADS * PER_THREAD);
    cr_assert_eq(mid.frees, before.frees + THREADS * PER_THREAD / 2);
    cr_assert_eq(mid.live_objects, before.live_objects + THREADS * PER_THREAD / 2);

    /* Every kept block still holds what its thread wrote; free them here,
     * on another thread than the one that took them. */
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD / 2; i++) {
            cr_assert_eq(w[t].kept[i]->owner, w[t].id);
            cr_assert_eq(w[t].kept[i]->seq, (uint64_t)(2 * i + 1));
            XFREE(w[t].kept[i]);
        }
    struct pf_family_stats end = family("node_t");
    cr_assert_eq(end.live_objects, before.live_objects);
    cr_assert_eq(end.frees, before.frees + THREADS * PER_THREAD);
}

static void *printer_main(void *arg)
{
    int *stop = arg;
    for (int i = 0; i < 50 && !__atomic_load_n(stop, __ATOMIC_RELAXED); i++) {
        mm_print_block_usage();
        mm_print_memory_usage("node");
        mm_print_registered_page_families();
    }
    return NULL;
}

Test(mm_threads, printers_while_threads_allocate, .timeout = 60)
{
    static struct worker w[4];
    pthread_t printers[2];
    int stop = 0;

    /* The printers' text goes nowhere; what matters is no crash or hang
     * and exact counters afterwards. */
    fflush(stdout);
    int saved = dup(1);
    int null = open("/dev/null", O_WRONLY);
    cr_assert_geq(null, 0);
    cr_assert_geq(dup2(null, 1), 0);

    for (int p = 0; p < 2; p++)
        cr_assert_eq(pthread_create(&printers[p], NULL, printer_main, &stop), 0);
    for (int t = 0; t < 4; t++) {
        w[t].id = (uint64_t)t + 100;
        cr_assert_eq(pthread_create(&w[t].tid, NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < 4; t++)
        cr_assert_eq(pthread_join(w[t].tid, NULL), 0);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(pthread_join(printers[p], NULL), 0);

    dup2(saved, 1);
    close(saved);
    close(null);

    for (int t = 0; t < 4; t++) {
        cr_assert_eq(w[t].failed, 0);
        for (int i = 0; i < PER_THREAD / 2; i++)
            XFREE(w[t].kept[i]);
    }
    cr_assert_eq(family("node_t").live_objects, 0);
}

/* ---- the header itself --------------------------------------------------------- */

Test(mm_header, compiles_alone_in_c11_and_cxx, .timeout = 120, .fini = remove_scratch)
{
    const char *dir = scratch;
    char cmd[2048];
    make_scratch();

    snprintf(cmd, sizeof cmd,
             "printf '#include \"uapi_mm.h\"\\n"
             "typedef struct emp_ { char name[32]; unsigned id; } emp_t;\\n"
             "int main(void) { mm_init(); MM_REG_STRUCT(emp_t);"
             " emp_t *e = XCALLOC(2, emp_t); e[1].id = 1; XFREE(e);"
             " void *v = xcalloc(\"emp_t\", 1); xfree(v);"
             " mm_print_registered_page_families(); mm_print_memory_usage(NULL);"
             " mm_print_memory_usage(\"emp\"); mm_print_block_usage(); return 0; }\\n' > '%s/use.c'",
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

/* ---- alignment whichever call comes first ---------------------------------------- */

typedef struct {
    _Alignas(131072) unsigned char bytes[100];
} frame_128k_t;

typedef struct {
    _Alignas(131072) unsigned char bytes[100];
} frame_128k_late_t;

/* MM_REG_STRUCT knows only the size; XCALLOC knows the alignment too. A
 * family registered first must still give XCALLOC's objects their type's
 * alignment. */
Test(mm, registering_first_keeps_the_alignment)
{
    MM_REG_STRUCT(frame_128k_t);
    frame_128k_t *o[8];
    for (int i = 0; i < 8; i++) {
        o[i] = XCALLOC(1, frame_128k_t);
        cr_assert_not_null(o[i]);
        cr_assert_eq((uintptr_t)o[i] % 131072, 0, "object %d at %p", i, (void *)o[i]);
        o[i]->bytes[99] = 1;
    }
    /* the by-name door reaches the same family, aligned as the type wants */
    frame_128k_t *b = xcalloc("frame_128k_t", 2);
    cr_assert_not_null(b);
    cr_assert_eq((uintptr_t)b % 131072, 0, "xcalloc at %p", (void *)b);
    xfree(b);
    for (int i = 0; i < 8; i++)
        XFREE(o[i]);
}

Test(mm, allocating_first_keeps_the_alignment)
{
    frame_128k_late_t *a = XCALLOC(1, frame_128k_late_t);
    cr_assert_not_null(a);
    cr_assert_eq((uintptr_t)a % 131072, 0);
    MM_REG_STRUCT(frame_128k_late_t);
    frame_128k_late_t *b = xcalloc("frame_128k_late_t", 3);
    cr_assert_not_null(b);
    cr_assert_eq((uintptr_t)b % 131072, 0, "xcalloc at %p", (void *)b);
    frame_128k_late_t *c = XCALLOC(2, frame_128k_late_t);
    cr_assert_not_null(c);
    cr_assert_eq((uintptr_t)c % 131072, 0);
    XFREE(a);
    xfree(b);
    XFREE(c);
}
