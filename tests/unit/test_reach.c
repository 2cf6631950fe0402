/*
 * test_reach.c — the reachability pass on objects of pf_malloc with roots
 * given as ranges (no module, stack or TLS roots, so nothing else in the
 * process keeps an object alive): start and interior pointers from roots
 * and from reached objects, lost trees, cycles led by one definitely lost
 * object whatever the address order, large blocks found from a pointer into
 * any of their chunks, zero-size objects, freed slots that are no targets,
 * the runtime's objects as roots, unreadable pages in roots and blocks; then
 * the real roots: a global, a local on the stack, a thread-local variable.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../include/pfalloc.h"
#include "check.h"
#include "family.h"
#include "os.h"
#include "reach.h"
#include "span.h"

#define MiB ((size_t)1 << 20)

static void **obj(size_t bytes)
{
    void **p = pf_calloc(1, bytes);
    cr_assert(p != NULL);
    return p;
}

/* Runs the pass with `roots` (n words) as the only root range. */
static void run_with(void *const *roots, size_t n)
{
    uintptr_t range[1][2] = {{(uintptr_t)roots, (uintptr_t)(roots + n)}};
    struct pf_reach_opts o = {.ranges = (const uintptr_t (*)[2])range, .nranges = 1, .only_ranges = 1};
    cr_assert(pf_reach_run(&o) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
}

static enum pf_reach_kind of(const void *p)
{
    return pf_reach_of((uintptr_t)p);
}

#define KIND(p, k) cr_assert_eq(of(p), (k), "%s is %s, want %s", #p, pf_reach_key(of(p)), pf_reach_key(k))

Test(reach, start_and_interior_pointers_from_roots)
{
    void **a = obj(64), **b = obj(64), **c = obj(64);
    void *roots[2] = {a, (char *)b + 8};
    run_with(roots, 2);
    KIND(a, PF_REACH_STILL);
    KIND(b, PF_REACH_POSSIBLE);
    KIND(c, PF_REACH_DEFINITE);
    cr_assert_null(pf_reach_note());
    pf_reach_release();
    KIND(a, PF_REACH_UNCLASSIFIED);
}

Test(reach, chains)
{
    /* root -> a -> b -(interior)-> c -> d;  a -(interior)-> e, and f -> e */
    void **a = obj(64), **b = obj(64), **c = obj(64), **d = obj(64), **e = obj(64), **f = obj(64);
    a[0] = b;
    b[1] = (char *)c + 16;
    c[0] = d;
    a[1] = (char *)e + 1;
    void *roots[1] = {a};
    f[0] = e;
    roots[0] = a;
    /* f itself is reachable from nothing */
    run_with(roots, 1);
    KIND(a, PF_REACH_STILL);
    KIND(b, PF_REACH_STILL);
    KIND(c, PF_REACH_POSSIBLE);
    KIND(d, PF_REACH_POSSIBLE); /* only from a possibly reached object */
    KIND(e, PF_REACH_POSSIBLE);
    KIND(f, PF_REACH_DEFINITE);
    pf_reach_release();
}

Test(reach, start_pointer_upgrades_a_possible_object)
{
    void **a = obj(64), **b = obj(64), **c = obj(64);
    a[0] = (char *)c + 8; /* first an interior pointer */
    b[0] = c;             /* then, later in the scan, its start */
    void *roots[2] = {a, b};
    run_with(roots, 2);
    KIND(c, PF_REACH_STILL);
    pf_reach_release();
}

Test(reach, a_lost_tree_has_one_definitely_lost_root)
{
    void **n[15];
    for (int i = 0; i < 15; i++)
        n[i] = obj(32);
    for (int i = 0; i < 7; i++) {
        n[i][0] = n[2 * i + 1];
        n[i][1] = n[2 * i + 2];
    }
    void *roots[1] = {NULL};
    run_with(roots, 1);
    KIND(n[0], PF_REACH_DEFINITE);
    for (int i = 1; i < 15; i++)
        cr_assert_eq(of(n[i]), PF_REACH_INDIRECT, "node %d is %s", i, pf_reach_key(of(n[i])));
    pf_reach_release();
}

/* A ring and a ring with a lost object pointing into it, built in both
 * address orders: one definitely lost object per ring. With an outside
 * object, valgrind's rule: objects are taken in address order, the first
 * unreached one of the ring leads it (the others are indirectly lost); an
 * outside object taken later only takes over the leader when it points at
 * the leader itself. Here it points elsewhere, so the ring keeps its
 * definitely lost leader unless the outside object comes first. */
Test(reach, cycles)
{
    for (int order = 0; order < 2; order++) {
        void **x[4];
        for (int i = 0; i < 4; i++)
            x[order ? 3 - i : i] = obj(48);
        for (int i = 0; i < 4; i++)
            x[i][0] = x[(i + 1) % 4];
        void *roots[1] = {NULL};
        run_with(roots, 1);
        int definite = 0, indirect = 0;
        for (int i = 0; i < 4; i++) {
            definite += of(x[i]) == PF_REACH_DEFINITE;
            indirect += of(x[i]) == PF_REACH_INDIRECT;
        }
        cr_assert(definite == 1 && indirect == 3, "order %d: %d definite, %d indirect", order, definite, indirect);
        pf_reach_release();

        void **outside = obj(48);
        outside[2] = (char *)x[2] + 8;
        run_with(roots, 1);
        KIND(outside, PF_REACH_DEFINITE);
        int first = 1;
        definite = indirect = 0;
        for (int i = 0; i < 4; i++) {
            first &= (uintptr_t)outside < (uintptr_t)x[i];
            definite += of(x[i]) == PF_REACH_DEFINITE;
            indirect += of(x[i]) == PF_REACH_INDIRECT;
        }
        cr_assert(definite == !first && indirect == 4 - definite, "order %d (outside first %d): %d definite, %d indirect",
                  order, first, definite, indirect);
        /* x[2] is never the leader when the outside object comes later */
        cr_assert(first || of(x[2]) == PF_REACH_INDIRECT);
        pf_reach_release();
        for (int i = 0; i < 4; i++)
            pf_free(x[i]);
        pf_free(outside);
    }
}

Test(reach, large_blocks_from_any_chunk)
{
    char *big = pf_calloc(1, 3 * MiB);  /* kept through a pointer 2 MiB in */
    char *big2 = pf_calloc(1, 2 * MiB); /* kept by its start */
    void **in_big = obj(64), **at_end = obj(64), **lost = obj(64);
    cr_assert(big && big2);
    memcpy(big + 2 * MiB + 8, &in_big, sizeof(void *));
    memcpy(big2 + 2 * MiB - 8, &at_end, sizeof(void *));
    void *roots[2] = {big + 2 * MiB + 100, big2};
    run_with(roots, 2);
    KIND(big, PF_REACH_POSSIBLE);
    KIND(in_big, PF_REACH_POSSIBLE);
    KIND(big2, PF_REACH_STILL);
    KIND(at_end, PF_REACH_STILL);
    KIND(lost, PF_REACH_DEFINITE);
    pf_reach_release();
    /* Past its end is not in it. */
    void *past[1] = {big2 + 2 * MiB};
    run_with(past, 1);
    KIND(big2, PF_REACH_DEFINITE);
    pf_reach_release();
}

/* Memory that vanishes under the pass (a thread's stack unmapped when it
 * exits, a module closed, a large block moved or sealed) is skipped page
 * by page, never read in place: a root range with a page unmapped and one
 * inaccessible in its middle, and a large block with inaccessible pages,
 * are scanned around the holes, and everything is still classified. */
Test(reach, unreadable_pages_are_skipped)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    static uintptr_t probe[1];
    long got = pf_os_read_mem(pf_os_pid(), probe, (uintptr_t)&ps, sizeof(ps));
    if (got < 0 && got != -EFAULT)
        cr_skip_test("process_vm_readv is refused here (%ld)", got);
    char *m = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(m != MAP_FAILED);
    void **a = obj(64), **b = obj(64), **c = obj(64), **d = obj(64);
    memcpy(m + 8, &a, sizeof(void *));
    memcpy(m + 2 * ps + 16, &b, sizeof(void *));
    memcpy(m + 5 * ps - 8, &c, sizeof(void *));
    cr_assert(munmap(m + ps, ps) == 0);
    cr_assert(mprotect(m + 3 * ps, ps, PROT_NONE) == 0);
    uintptr_t range[1][2] = {{(uintptr_t)m, (uintptr_t)(m + 5 * ps)}};
    struct pf_reach_opts o = {.ranges = (const uintptr_t (*)[2])range, .nranges = 1, .only_ranges = 1};
    cr_assert(pf_reach_run(&o) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
    cr_assert_null(pf_reach_note(), "%s", pf_reach_note());
    KIND(a, PF_REACH_STILL);
    KIND(b, PF_REACH_STILL);
    KIND(c, PF_REACH_STILL);
    KIND(d, PF_REACH_DEFINITE);
    pf_reach_release();

    /* A large block reached from the roots, its second MiB inaccessible: the
     * pointer in its third is still seen. */
    char *big = pf_calloc(1, 3 * MiB);
    cr_assert(big != NULL);
    void **in_big = obj(64);
    memcpy(big + 2 * MiB + 8, &in_big, sizeof(void *));
    uintptr_t hole = ((uintptr_t)big + MiB + ps - 1) & ~(uintptr_t)(ps - 1);
    cr_assert(mprotect((void *)hole, MiB, PROT_NONE) == 0);
    memcpy(m + 16, &big, sizeof(void *));
    cr_assert(pf_reach_run(&o) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
    KIND(big, PF_REACH_STILL);
    KIND(in_big, PF_REACH_STILL);
    KIND(d, PF_REACH_DEFINITE);
    pf_reach_release();
    cr_assert(mprotect((void *)hole, MiB, PROT_READ | PROT_WRITE) == 0);
    pf_free(big);
    munmap(m, 5 * ps);
}

/* Memory is read by whole words: a root range may start or end inside a
 * word, and only the words wholly inside it are looked at. */
Test(reach, ranges_are_read_by_whole_words)
{
    void **a = obj(64), **b = obj(64), **c = obj(64);
    static void *words[3];
    words[0] = a;
    words[1] = b;
    words[2] = c;
    uintptr_t w = (uintptr_t)words, ws = sizeof(void *);
    struct {
        uintptr_t from, to;
        enum pf_reach_kind a, b, c;
    } cases[] = {
        {w + 3, w + 2 * ws + 5, PF_REACH_DEFINITE, PF_REACH_STILL, PF_REACH_DEFINITE},
        {w, w + 3 * ws, PF_REACH_STILL, PF_REACH_STILL, PF_REACH_STILL},
        {w + ws, w + 2 * ws, PF_REACH_DEFINITE, PF_REACH_STILL, PF_REACH_DEFINITE},
        {w + 1, w + ws + 7, PF_REACH_DEFINITE, PF_REACH_DEFINITE, PF_REACH_DEFINITE},
        {w + 2 * ws, w + 3 * ws - 1, PF_REACH_DEFINITE, PF_REACH_DEFINITE, PF_REACH_DEFINITE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uintptr_t range[1][2] = {{cases[i].from, cases[i].to}};
        struct pf_reach_opts o = {.ranges = (const uintptr_t (*)[2])range, .nranges = 1, .only_ranges = 1};
        cr_assert(pf_reach_run(&o) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
        cr_assert_eq(of(a), cases[i].a, "case %zu: a is %s", i, pf_reach_key(of(a)));
        cr_assert_eq(of(b), cases[i].b, "case %zu: b is %s", i, pf_reach_key(of(b)));
        cr_assert_eq(of(c), cases[i].c, "case %zu: c is %s", i, pf_reach_key(of(c)));
        pf_reach_release();
    }
    /* Objects, read in place, the same way: of a 12-byte object in a
     * 16-byte slot only the first word is read, not the one its last 4
     * bytes begin (here holding what an earlier block left in the slot). */
    void **x = obj(12), **y = obj(64), **z = obj(64);
    x[0] = y;
    memcpy((char *)x + 8, &z, sizeof z);
    static void *root[1];
    root[0] = x;
    uintptr_t range[1][2] = {{(uintptr_t)root, (uintptr_t)(root + 1)}};
    struct pf_reach_opts o = {.ranges = (const uintptr_t (*)[2])range, .nranges = 1, .only_ranges = 1};
    cr_assert(pf_reach_run(&o) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
    KIND(x, PF_REACH_STILL);
    KIND(y, PF_REACH_STILL);
    KIND(z, PF_REACH_DEFINITE);
    pf_reach_release();
}

Test(reach, zero_size_and_freed_slots)
{
    void *zero = pf_malloc(0);
    void **gone = obj(64), **next = obj(64);
    gone[0] = next; /* a freed object is no root: its contents do not count */
    pf_free(gone);
    void *roots[2] = {zero, gone};
    run_with(roots, 2);
    KIND(zero, PF_REACH_STILL);
    KIND(gone, PF_REACH_UNCLASSIFIED);
    KIND(next, PF_REACH_DEFINITE);
    KIND((char *)next + 16, PF_REACH_UNCLASSIFIED); /* not an object's start */
    pf_reach_release();
}

static void *runtime_obj;

static int is_runtime(const struct pf_span *s, uint32_t idx, void *ctx)
{
    (void)ctx;
    return s->kind == PF_SPAN_SMALL && s->start + (uintptr_t)idx * s->slot_size == (uintptr_t)runtime_obj;
}

Test(reach, runtime_objects_are_roots)
{
    void **rt = obj(64), **kept = obj(64);
    rt[3] = kept;
    runtime_obj = rt;
    uintptr_t none[1][2] = {{0, 0}};
    struct pf_reach_opts o = {.root_object = is_runtime, .ranges = (const uintptr_t (*)[2])none, .nranges = 1,
                              .only_ranges = 1};
    cr_assert(pf_reach_run(&o) == 0);
    KIND(kept, PF_REACH_STILL);
    KIND(rt, PF_REACH_DEFINITE); /* itself classified as any other */
    pf_reach_release();
}

/* ---- the process's own roots ------------------------------------------------ */
static void *volatile from_global;
static __thread void *volatile from_tls;

Test(reach, real_roots)
{
    void **g = obj(64), **t = obj(64);
    void **volatile on_stack = obj(64);
    from_global = (char *)g;
    from_tls = t;
    struct pf_reach_opts o = {0};
    cr_assert(pf_reach_run(&o) == 0);
    cr_assert_null(pf_reach_note(), "%s", pf_reach_note());
    KIND(g, PF_REACH_STILL);
    KIND(t, PF_REACH_STILL);
    KIND(on_stack, PF_REACH_STILL);
    pf_reach_release();
    cr_assert(pf_reach_run(NULL) == 0);
    KIND(g, PF_REACH_STILL);
    pf_reach_release();
}

/* The pass run from a thread other than the first, with an object that
 * only the thread's stack points to: the list of mappings is what finds
 * that stack's top. */
struct from_thread {
    void **local_only;
    int rc;
    const char *note;
    enum pf_reach_kind kind;
};

static void *reach_from_thread(void *arg)
{
    struct from_thread *t = arg;
    void **volatile local = pf_calloc(1, 64);
    t->local_only = local;
    t->rc = pf_reach_run(NULL);
    t->note = pf_reach_note();
    t->kind = pf_reach_of((uintptr_t)local);
    pf_reach_release();
    return NULL;
}

/* The list is read into room for a usual process's (64 KiB of text); a
 * process with more mappings than that holds is read again with room for
 * all of them. With 3 000 mappings (about 150 KiB of text), the thread's
 * stack is still found and its object reachable. */
Test(reach, a_long_list_of_mappings_is_read_whole)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = 3000;
    char *m = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(m != MAP_FAILED);
    for (size_t i = 0; i < n; i += 2) /* every other page read-only: n mappings */
        cr_assert(mprotect(m + i * ps, ps, PROT_READ) == 0);
    struct from_thread t = {0};
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, reach_from_thread, &t) == 0);
    pthread_join(th, NULL);
    munmap(m, n * ps);
    cr_assert_eq(t.rc, 0, "%s", t.note ? t.note : "");
    cr_assert_null(t.note, "%s", t.note);
    cr_assert_eq(t.kind, PF_REACH_STILL, "the thread's local object is %s", pf_reach_key(t.kind));
    pf_free(t.local_only);
}

/* The pass's buffers (roots' lists, the text of the mappings, tables,
 * work stack, bounce buffer) come from one mapping in a usual process, and
 * all of it goes at the release: a short process's exit report made a
 * mapping for each. */
static void *volatile room_root;

Test(reach, one_mapping_for_the_whole_pass)
{
    void **a = obj(64);
    a[0] = obj(32);
    room_root = a;
    struct pf_os_counts before, after, released;
    pf_os_counts(&before);
    cr_assert(pf_reach_run(NULL) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
    pf_os_counts(&after);
    cr_assert_null(pf_reach_note(), "%s", pf_reach_note());
    cr_assert_eq(of(a), PF_REACH_STILL, "%s", pf_reach_key(of(a)));
    cr_assert_eq(of(a[0]), PF_REACH_STILL, "%s", pf_reach_key(of(a[0])));
    pf_reach_release();
    pf_os_counts(&released);
    cr_assert_eq(after.mmap_calls - before.mmap_calls, 1, "the pass made %llu mappings",
                 (unsigned long long)(after.mmap_calls - before.mmap_calls));
    cr_assert_eq(released.mapped_bytes, before.mapped_bytes);
    room_root = NULL;
    pf_free(a[0]);
    pf_free(a);
}

/* In the checking mode, the zero-size cells are in the room as well: the
 * tables for them need no mapping of their own. */
static void *zero_cells[2000];

Test(reach, one_mapping_with_zero_size_cells)
{
    cr_assert(pf_check_enable() == 0);
    for (size_t i = 0; i < sizeof zero_cells / sizeof zero_cells[0]; i++)
        cr_assert((zero_cells[i] = pf_malloc(0)) != NULL);
    struct pf_os_counts before, after, released;
    pf_os_counts(&before);
    cr_assert(pf_reach_run(NULL) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
    pf_os_counts(&after);
    KIND(zero_cells[0], PF_REACH_STILL);
    pf_reach_release();
    pf_os_counts(&released);
    cr_assert_eq(after.mmap_calls - before.mmap_calls, 1, "the pass made %llu mappings",
                 (unsigned long long)(after.mmap_calls - before.mmap_calls));
    cr_assert_eq(released.mapped_bytes, before.mapped_bytes);
}

/* A family made while the roots are gathered (by another thread, while a
 * signal's report runs or once the exit's hold is over) is in the pass:
 * its objects classified, their pointers followed. The family is made
 * here from dl_iterate_phdr, which the gathering calls: the only pointer
 * to `moved` goes into an object of it. */
static int (*real_iterate)(int (*)(struct dl_phdr_info *, size_t, void *), void *);
static int make_family_in_gather;
static void **volatile moved;
static void **volatile made;

int dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)
{
    if (!real_iterate)
        real_iterate = (int (*)(int (*)(struct dl_phdr_info *, size_t, void *), void *))dlsym(
            RTLD_NEXT, "dl_iterate_phdr");
    if (make_family_in_gather) {
        make_family_in_gather = 0;
        void **x = pf_family_alloc(pf_family_get("made_while_gathering", 64), 1);
        cr_assert(x != NULL);
        x[0] = moved;
        made = x;
        moved = NULL;
    }
    return real_iterate(cb, data);
}

Test(reach, a_family_made_while_the_roots_are_gathered)
{
    void **y = obj(64);
    moved = y;
    uint32_t nfam = pf_family_count();
    make_family_in_gather = 1;
    cr_assert(pf_reach_run(NULL) == 0, "%s", pf_reach_note() ? pf_reach_note() : "");
    cr_assert(made != NULL && pf_family_count() == nfam + 1, "no family was made while the roots were gathered");
    cr_assert_null(pf_reach_note(), "%s", pf_reach_note());
    KIND(made, PF_REACH_STILL);
    KIND(made[0], PF_REACH_STILL);
    pf_reach_release();
}

/* From a signal handler: a family lock held where the signal landed is
 * given up on (-1, every object unclassified), never waited for; with the
 * locks free, the same classification as outside a handler. */
Test(reach, in_signal_gives_up_on_a_held_lock)
{
    void **a = obj(64);
    void *roots[1] = {a};
    uintptr_t range[1][2] = {{(uintptr_t)roots, (uintptr_t)(roots + 1)}};
    struct pf_reach_opts o = {.ranges = (const uintptr_t (*)[2])range, .nranges = 1, .only_ranges = 1,
                              .in_signal = 1};
    struct pf_family *f = pf_family_at(pf_family_count() - 1);
    pf_lock(&f->lock);
    cr_assert(pf_reach_run(&o) == -1);
    cr_assert(pf_reach_note() && strstr(pf_reach_note(), "busy"), "%s", pf_reach_note());
    KIND(a, PF_REACH_UNCLASSIFIED);
    pf_unlock(&f->lock);
    cr_assert(pf_reach_run(&o) == 0);
    KIND(a, PF_REACH_STILL);
    pf_reach_release();
    /* the process's own roots, found without the loader */
    struct pf_reach_opts own = {.in_signal = 1};
    static void *volatile kept;
    kept = obj(64);
    cr_assert(pf_reach_run(&own) == 0);
    KIND(kept, PF_REACH_STILL);
    pf_reach_release();
}

Test(reach, names)
{
    cr_assert_str_eq(pf_reach_key(PF_REACH_DEFINITE), "definitely_lost");
    cr_assert_str_eq(pf_reach_key(PF_REACH_INDIRECT), "indirectly_lost");
    cr_assert_str_eq(pf_reach_key(PF_REACH_POSSIBLE), "possibly_lost");
    cr_assert_str_eq(pf_reach_key(PF_REACH_STILL), "still_reachable");
    cr_assert_str_eq(pf_reach_text(PF_REACH_DEFINITE), "definitely lost");
    cr_assert_str_eq(pf_reach_text(PF_REACH_UNCLASSIFIED), "unclassified");
}
