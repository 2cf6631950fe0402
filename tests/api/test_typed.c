/*
 * test_typed.c — the typed door through the public header: PF_NEW and the
 * family handles. Objects come zeroed from the family named by the type, the
 * family's counters see them, bad requests fail with the documented errno,
 * and two families never share a page.
 *
 * Counting convention checked here: one PF_NEW(type, n) or
 * pf_family_alloc(f, n) is ONE allocation (live_objects and allocs grow by 1)
 * of n objects (live_requested grows by n * sizeof(type)).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfalloc.h"

struct order {
    uint64_t id;
    double price;
    char symbol[12];
    int quantity;
};

typedef struct {
    int x, y, z;
} point_t;

struct wide {
    _Alignas(64) unsigned char bytes[40];
};

struct huge_align {
    _Alignas(256) unsigned char bytes[300];
};

/* Two types of the same size: the page-sharing test must not tell them
 * apart by size class. */
struct left {
    char c[48];
};
struct right {
    char c[48];
};

static struct pf_stats snap;

/* A copy of family `name`'s figures; all zero (and kind UINT32_MAX) when the
 * family does not exist yet. */
static struct pf_family_stats family(const char *name)
{
    struct pf_family_stats f;
    memset(&f, 0, sizeof f);
    f.kind = UINT32_MAX;
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.truncated, 0, "stats truncated: the family may be missing");
    for (uint32_t i = 0; i < snap.nfamilies; i++)
        if (strcmp(snap.fam[i].name, name) == 0)
            return snap.fam[i];
    return f;
}

static size_t first_nonzero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return i;
    return n;
}

Test(typed, pf_new_is_zeroed_and_counted)
{
    struct pf_family_stats b = family("struct order");
    struct order *o = PF_NEW(struct order, 10);
    cr_assert_not_null(o);
    cr_assert_eq((uintptr_t)o % 16, 0);
    cr_assert_eq((uintptr_t)o % _Alignof(struct order), 0);
    cr_assert_geq(pf_malloc_usable_size(o), 10 * sizeof(struct order));
    cr_assert_eq(first_nonzero(o, 10 * sizeof *o), 10 * sizeof *o);

    struct pf_family_stats a = family("struct order");
    cr_assert_str_eq(a.name, "struct order");
    cr_assert_eq(a.kind, PF_KIND_TYPED);
    cr_assert_eq(a.slot_size, sizeof(struct order));
    cr_assert_eq(a.live_objects - b.live_objects, 1, "an array of 10 is one allocation");
    cr_assert_eq(a.allocs - b.allocs, 1);
    cr_assert_eq(a.frees - b.frees, 0);
    cr_assert_eq(a.live_requested - b.live_requested, 10 * sizeof(struct order));
    cr_assert_geq(a.live_bytes - b.live_bytes, 10 * sizeof(struct order));
    cr_assert_geq(a.mapped_bytes, a.live_bytes);

    /* 50 single objects: 50 more allocations */
    struct order *one[50];
    for (int i = 0; i < 50; i++) {
        one[i] = PF_NEW(struct order, 1);
        cr_assert_not_null(one[i]);
        cr_assert_eq(first_nonzero(one[i], sizeof *one[i]), sizeof *one[i]);
        one[i]->id = (uint64_t)i + 1;
    }
    struct pf_family_stats c = family("struct order");
    cr_assert_eq(c.live_objects - b.live_objects, 51);
    cr_assert_eq(c.allocs - b.allocs, 51);
    cr_assert_eq(c.live_requested - b.live_requested, 60 * sizeof(struct order));
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(one[i]->id, (uint64_t)i + 1, "object %d overwritten", i);
        PF_DELETE(one[i]);
    }
    PF_DELETE(o);
    struct pf_family_stats d = family("struct order");
    cr_assert_eq(d.live_objects, b.live_objects);
    cr_assert_eq(d.frees - b.frees, 51);
    cr_assert_eq(d.live_requested, b.live_requested);
    cr_assert_eq(d.live_bytes, b.live_bytes);
}

Test(typed, recycled_objects_are_zeroed)
{
    enum { N = 64, ROUNDS = 20 };
    static const size_t counts[] = {1, 3, 17, 100};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t n = counts[k];
        for (int r = 0; r < ROUNDS; r++) {
            struct order *o[N];
            for (int i = 0; i < N; i++) {
                o[i] = PF_NEW(struct order, n);
                cr_assert_not_null(o[i]);
                size_t bad = first_nonzero(o[i], n * sizeof(struct order));
                cr_assert_eq(bad, n * sizeof(struct order), "n=%zu round %d: byte %zu dirty", n,
                             r, bad);
                memset(o[i], 0xAB, n * sizeof(struct order));
            }
            for (int i = 0; i < N; i++)
                PF_DELETE(o[i]);
        }
    }
}

static struct order *order_from_site_a(void)
{
    return PF_NEW(struct order, 2);
}

static struct order *order_from_site_b(void)
{
    return PF_NEW(struct order, 3);
}

Test(typed, two_call_sites_share_one_family)
{
    struct pf_family_stats b = family("struct order");
    struct order *x = order_from_site_a();
    struct order *y = order_from_site_b();
    cr_assert_not_null(x);
    cr_assert_not_null(y);
    struct pf_family_stats a = family("struct order");
    cr_assert_eq(a.live_objects - b.live_objects, 2);
    int seen = 0;
    for (uint32_t i = 0; i < snap.nfamilies; i++)
        seen += strcmp(snap.fam[i].name, "struct order") == 0;
    cr_assert_eq(seen, 1, "\"struct order\" listed %d times", seen);
    PF_DELETE(x);
    PF_DELETE(y);
}

Test(typed, typedef_and_builtin_names)
{
    point_t *p = PF_NEW(point_t, 4);
    unsigned long *u = PF_NEW(unsigned long, 7);
    cr_assert_not_null(p);
    cr_assert_not_null(u);
    cr_assert_eq(first_nonzero(p, 4 * sizeof *p), 4 * sizeof *p);
    cr_assert_eq(first_nonzero(u, 7 * sizeof *u), 7 * sizeof *u);
    cr_assert_eq((uintptr_t)u % _Alignof(unsigned long), 0);

    struct pf_family_stats fp = family("point_t");
    cr_assert_eq(fp.kind, PF_KIND_TYPED, "no typed family \"point_t\"");
    cr_assert_eq(fp.slot_size, sizeof(point_t));
    cr_assert_eq(fp.live_objects, 1);
    struct pf_family_stats fu = family("unsigned long");
    cr_assert_eq(fu.kind, PF_KIND_TYPED, "no typed family \"unsigned long\"");
    cr_assert_eq(fu.slot_size, sizeof(unsigned long));
    cr_assert_eq(fu.live_objects, 1);
    cr_assert_eq(fu.live_requested, 7 * sizeof(unsigned long));
    PF_DELETE(p);
    PF_DELETE(u);
    cr_assert_eq(family("point_t").live_objects, 0);
    cr_assert_eq(family("unsigned long").live_objects, 0);
}

Test(typed, alignment_of_the_type_is_honoured)
{
    for (int i = 0; i < 40; i++) {
        struct wide *w = PF_NEW(struct wide, (size_t)i % 5 + 1);
        cr_assert_not_null(w);
        cr_assert_eq((uintptr_t)w % 64, 0, "struct wide at %p", (void *)w);
        struct huge_align *h = PF_NEW(struct huge_align, (size_t)i % 3 + 1);
        cr_assert_not_null(h);
        cr_assert_eq((uintptr_t)h % 256, 0, "struct huge_align at %p", (void *)h);
        cr_assert_eq(first_nonzero(h, sizeof *h), sizeof *h);
    }
}

Test(typed, family_handle_door)
{
    struct order x;
    pf_family_t *f = pf_family_get("order", sizeof x);
    cr_assert_not_null(f);
    cr_assert_eq(pf_family_get("order", sizeof x), f, "same name, same size: same handle");

    struct order *o = pf_family_alloc(f, 5);
    cr_assert_not_null(o);
    cr_assert_eq((uintptr_t)o % 16, 0);
    cr_assert_eq(first_nonzero(o, 5 * sizeof x), 5 * sizeof x);
    cr_assert_geq(pf_malloc_usable_size(o), 5 * sizeof x);
    o[4].quantity = 9;

    struct pf_family_stats a = family("order");
    cr_assert_eq(a.kind, PF_KIND_TYPED);
    cr_assert_eq(a.slot_size, sizeof x);
    cr_assert_eq(a.live_objects, 1);
    cr_assert_eq(a.allocs, 1);
    cr_assert_eq(a.live_requested, 5 * sizeof x);
    /* "order" and "struct order" are different families */
    cr_assert_eq(family("struct order").live_objects, 0);
    pf_free(o);
    cr_assert_eq(family("order").live_objects, 0);
    cr_assert_eq(family("order").frees, 1);
}

Test(typed, both_doors_reach_the_same_family)
{
    struct order *a = PF_NEW(struct order, 1);
    cr_assert_not_null(a);
    pf_family_t *f = pf_family_get("struct order", sizeof(struct order));
    cr_assert_not_null(f, "the family PF_NEW created is reachable by name");
    struct order *b = pf_family_alloc(f, 2);
    cr_assert_not_null(b);
    cr_assert_eq(family("struct order").live_objects, 2);
    errno = 0;
    cr_assert_null(pf_family_get("struct order", sizeof(struct order) + 8));
    cr_assert_eq(errno, EINVAL);
    pf_free(a);
    pf_free(b);
}

Test(typed, same_name_other_size_is_einval)
{
    pf_family_t *f = pf_family_get("widget", 24);
    cr_assert_not_null(f);
    errno = 0;
    cr_assert_null(pf_family_get("widget", 32));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(pf_family_get("widget", 23));
    cr_assert_eq(errno, EINVAL);
    /* the original registration is untouched */
    cr_assert_eq(pf_family_get("widget", 24), f);
    void *p = pf_family_alloc(f, 1);
    cr_assert_not_null(p);
    struct pf_family_stats w = family("widget");
    cr_assert_eq(w.slot_size, 24);
    cr_assert_eq(w.live_requested, 24);
    pf_free(p);
}

Test(typed, zero_count_and_overflow)
{
    pf_family_t *f = pf_family_get("order", sizeof(struct order));
    cr_assert_not_null(f);
    errno = 0;
    cr_assert_null(pf_family_alloc(f, 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(pf_family_alloc(f, SIZE_MAX / sizeof(struct order) + 1));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(pf_family_alloc(f, SIZE_MAX / 2));
    cr_assert_eq(errno, ENOMEM);
    /* representable but absurd: no memory */
    errno = 0;
    cr_assert_null(pf_family_alloc(f, ((size_t)1 << 50) / sizeof(struct order)));
    cr_assert_eq(errno, ENOMEM);

    /* PF_NEW is the same door */
    errno = 0;
    cr_assert_null(PF_NEW(struct order, 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(PF_NEW(struct order, SIZE_MAX / 8));
    cr_assert_eq(errno, ENOMEM);

    /* failures left no trace in the counters */
    cr_assert_eq(family("order").allocs, 0);
    cr_assert_eq(family("order").live_objects, 0);
    cr_assert_eq(family("struct order").live_objects, 0);
}

Test(typed, big_arrays_are_zeroed)
{
    static const size_t counts[] = {1000, 30000, 1000000};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t n = counts[k];
        struct order *o = PF_NEW(struct order, n);
        cr_assert_not_null(o, "PF_NEW(struct order, %zu)", n);
        cr_assert_eq(first_nonzero(o, n * sizeof *o), n * sizeof *o);
        cr_assert_geq(pf_malloc_usable_size(o), n * sizeof *o);
        memset(o, 0xCD, n * sizeof *o);
        PF_DELETE(o);
        o = PF_NEW(struct order, n);
        cr_assert_not_null(o);
        cr_assert_eq(first_nonzero(o, n * sizeof *o), n * sizeof *o, "recycled array of %zu dirty",
                     n);
        PF_DELETE(o);
    }
    cr_assert_eq(family("struct order").live_objects, 0);
}

struct owned {
    uintptr_t page;
    int owner;
};

static int cmp_owned(const void *a, const void *b)
{
    const struct owned *x = a, *y = b;
    if (x->page != y->page)
        return x->page < y->page ? -1 : 1;
    return (x->owner > y->owner) - (x->owner < y->owner);
}

Test(typed, families_never_share_a_page)
{
    enum { PER = 3000, OWNERS = 5, MAXPAGES = 4 };
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    static void *obj[OWNERS][PER];
    static size_t len[OWNERS][PER];
    static struct owned marks[OWNERS * PER * MAXPAGES];
    pf_family_t *third = pf_family_get("third of 48", 48);
    pf_family_t *fourth = pf_family_get("fourth of 48", 48);
    cr_assert_not_null(third);
    cr_assert_not_null(fourth);

    /* interleaved, so a family-blind allocator would mix them */
    for (size_t i = 0; i < PER; i++) {
        size_t n = i % 7 == 0 ? i % 5 + 2 : 1;
        obj[0][i] = PF_NEW(struct left, n);
        len[0][i] = n * 48;
        obj[1][i] = PF_NEW(struct right, n);
        len[1][i] = n * 48;
        obj[2][i] = pf_family_alloc(third, n);
        len[2][i] = n * 48;
        obj[3][i] = pf_family_alloc(fourth, n);
        len[3][i] = n * 48;
        obj[4][i] = pf_malloc(n * 48);
        len[4][i] = n * 48;
        for (int w = 0; w < OWNERS; w++)
            cr_assert_not_null(obj[w][i]);
    }
    size_t m = 0;
    for (int w = 0; w < OWNERS; w++)
        for (size_t i = 0; i < PER; i++) {
            uintptr_t first = (uintptr_t)obj[w][i] / pg;
            uintptr_t last = ((uintptr_t)obj[w][i] + len[w][i] - 1) / pg;
            for (uintptr_t q = first; q <= last; q++) {
                cr_assert_lt(m, sizeof marks / sizeof marks[0]);
                marks[m].page = q;
                marks[m].owner = w;
                m++;
            }
        }
    qsort(marks, m, sizeof marks[0], cmp_owned);
    for (size_t i = 1; i < m; i++)
        if (marks[i].page == marks[i - 1].page)
            cr_assert_eq(marks[i].owner, marks[i - 1].owner,
                         "page %#lx holds objects of owners %d and %d",
                         (unsigned long)(marks[i].page * pg), marks[i - 1].owner, marks[i].owner);

    cr_assert_eq(family("struct left").live_objects, PER);
    cr_assert_eq(family("struct right").live_objects, PER);
    cr_assert_eq(family("third of 48").live_objects, PER);
    cr_assert_eq(family("fourth of 48").live_objects, PER);
    for (int w = 0; w < OWNERS; w++)
        for (size_t i = 0; i < PER; i++)
            pf_free(obj[w][i]);
    cr_assert_eq(family("struct left").live_objects, 0);
    cr_assert_eq(family("struct right").live_objects, 0);
}

Test(typed, many_families_distinct_and_found_again)
{
    enum { N = 100 };
    pf_family_t *h[N];
    void *p[N];
    char name[32] = {0};
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "generated_type_%03d", i);
        h[i] = pf_family_get(name, (size_t)(8 + 8 * i));
        cr_assert_not_null(h[i], "%s", name);
        /* the caller's buffer is reused: the family must keep its own copy */
        memset(name, 'x', sizeof name - 1);
        for (int j = 0; j < i; j++)
            cr_assert_neq(h[i], h[j], "families %d and %d share a handle", i, j);
    }
    for (int i = N - 1; i >= 0; i--) {
        snprintf(name, sizeof name, "generated_type_%03d", i);
        cr_assert_eq(pf_family_get(name, (size_t)(8 + 8 * i)), h[i], "%s not found again", name);
        errno = 0;
        cr_assert_null(pf_family_get(name, (size_t)(16 + 8 * i)));
        cr_assert_eq(errno, EINVAL);
        p[i] = pf_family_alloc(h[i], 2);
        cr_assert_not_null(p[i]);
        cr_assert_eq(first_nonzero(p[i], (size_t)(16 + 16 * i)), (size_t)(16 + 16 * i));
    }
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.truncated, 0);
    cr_assert_geq(snap.totals.families, N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "generated_type_%03d", i);
        int found = 0;
        for (uint32_t k = 0; k < snap.nfamilies; k++) {
            const struct pf_family_stats *f = &snap.fam[k];
            if (strcmp(f->name, name) != 0)
                continue;
            found++;
            cr_assert_eq(f->kind, PF_KIND_TYPED);
            cr_assert_eq(f->slot_size, (uint64_t)(8 + 8 * i));
            cr_assert_eq(f->live_objects, 1);
            cr_assert_eq(f->live_requested, (uint64_t)(16 + 16 * i));
        }
        cr_assert_eq(found, 1, "%s appears %d times in the stats", name, found);
    }
    for (int i = 0; i < N; i++)
        pf_free(p[i]);
}

/* Rows of the stats whose name is `name` (names longer than the stats
 * field show their first PF_NAME_MAX - 1 characters). */
static int rows_named(const char *name, uint64_t *live)
{
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.truncated, 0);
    int n = 0;
    for (uint32_t k = 0; k < snap.nfamilies; k++)
        if (strncmp(snap.fam[k].name, name, PF_NAME_MAX - 1) == 0 &&
            strlen(snap.fam[k].name) == strnlen(name, PF_NAME_MAX - 1)) {
            n++;
            if (live)
                *live = snap.fam[k].live_objects;
        }
    return n;
}

/* A name longer than the stats field is still one family: looked up again
 * it is found, whether through a handle or the typed door. Two long names
 * that differ only after the characters the stats show are two families
 * (pfalloc keeps each whole name); the reports show both under the same
 * shortened name. */
Test(typed, long_names_are_one_family_each)
{
    char a[200], b[200];
    memset(a, 'L', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(a, "long_type_name_", 15);
    memcpy(b, a, sizeof b);
    b[150] = 'M'; /* same first 150 characters */
    cr_assert_gt(strlen(a), PF_NAME_MAX);

    pf_family_t *f = pf_family_get(a, 24);
    cr_assert_not_null(f);
    cr_assert_eq(pf_stats_get(&snap), 0);
    uint64_t families = snap.totals.families;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(pf_family_get(a, 24), f, "the long name made a new family on call %d", i);
    char copy[200];
    memcpy(copy, a, sizeof copy);
    cr_assert_eq(pf_family_get(copy, 24), f, "the same long name in another buffer");
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.totals.families, families, "looking the name up registered families");
    errno = 0;
    cr_assert_null(pf_family_get(a, 32), "same long name, another size");
    cr_assert_eq(errno, EINVAL);

    pf_family_t *g = pf_family_get(b, 40);
    cr_assert_not_null(g, "a long name differing after the shown part is a family of its own");
    cr_assert_neq(g, f);
    cr_assert_eq(pf_family_get(b, 40), g);
    cr_assert_eq(pf_family_get(a, 24), f);

    void *p = pf_family_alloc(f, 1), *q = pf_family_alloc(g, 1);
    cr_assert_not_null(p);
    cr_assert_not_null(q);
    uint64_t live = 0;
    cr_assert_eq(rows_named(a, &live), 2, "both families shown under the shortened name");
    pf_free(p);
    pf_free(q);

    /* the typed door with a long key: two buffers with the same text (the
     * key cache goes by address) reach one family */
    char k1[120], k2[120];
    memset(k1, 'k', sizeof k1 - 1);
    k1[sizeof k1 - 1] = '\0';
    memcpy(k1, "typed_long_key_", 15);
    memcpy(k2, k1, sizeof k2);
    void *x = pf_typed_alloc(k1, 48, 16, 1);
    void *y = pf_typed_alloc(k2, 48, 16, 1);
    void *z = pf_typed_alloc(k1, 48, 16, 1);
    cr_assert(x && y && z);
    live = 0;
    cr_assert_eq(rows_named(k1, &live), 1, "one family for one long type name");
    cr_assert_eq(live, 3);
    /* the same long name with another size gets its "<name>/<size>" family, once */
    cr_assert_eq(pf_stats_get(&snap), 0);
    uint64_t before = snap.totals.families;
    void *w1 = pf_typed_alloc(k2, 56, 16, 1);
    void *w2 = pf_typed_alloc(k1, 56, 16, 1);
    char k3[120];
    memcpy(k3, k1, sizeof k3);
    void *w3 = pf_typed_alloc(k3, 56, 16, 1);
    cr_assert(w1 && w2 && w3);
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.totals.families, before + 1);
    pf_free(x);
    pf_free(y);
    pf_free(z);
    pf_free(w1);
    pf_free(w2);
    pf_free(w3);
}

struct align_64k {
    _Alignas(65536) unsigned char bytes[64];
};
struct align_128k {
    _Alignas(131072) unsigned char bytes[64];
};
struct align_4k_later {
    _Alignas(4096) unsigned char bytes[64];
};

/* A family made by handle first (which knows no alignment) and used by
 * PF_NEW afterwards gives PF_NEW's objects their type's alignment; from
 * then on the handle door gives it too (the family keeps the largest
 * alignment asked of it). */
Test(typed, handle_first_then_pf_new_keeps_the_alignment)
{
    pf_family_t *f = pf_family_get("struct align_128k", sizeof(struct align_128k));
    pf_family_t *g = pf_family_get("struct align_64k", sizeof(struct align_64k));
    pf_family_t *h = pf_family_get("struct align_4k_later", sizeof(struct align_4k_later));
    cr_assert(f && g && h);
    for (int i = 0; i < 8; i++) {
        struct align_128k *a = PF_NEW(struct align_128k, (size_t)i % 3 + 1);
        struct align_64k *b = PF_NEW(struct align_64k, (size_t)i % 3 + 1);
        struct align_4k_later *c = PF_NEW(struct align_4k_later, (size_t)i % 3 + 1);
        cr_assert(a && b && c);
        cr_assert_eq((uintptr_t)a % 131072, 0, "struct align_128k at %p", (void *)a);
        cr_assert_eq((uintptr_t)b % 65536, 0, "struct align_64k at %p", (void *)b);
        cr_assert_eq((uintptr_t)c % 4096, 0, "struct align_4k_later at %p", (void *)c);
        cr_assert_eq(first_nonzero(a, sizeof *a), sizeof *a);
    }
    for (int i = 0; i < 4; i++) {
        void *a = pf_family_alloc(f, 1), *b = pf_family_alloc(g, 2), *c = pf_family_alloc(h, 1);
        cr_assert(a && b && c);
        cr_assert_eq((uintptr_t)a % 131072, 0, "handle door at %p", a);
        cr_assert_eq((uintptr_t)b % 65536, 0, "handle door at %p", b);
        cr_assert_eq((uintptr_t)c % 4096, 0, "handle door at %p", c);
    }
}

struct align_128k_first {
    _Alignas(131072) unsigned char bytes[64];
};

Test(typed, pf_new_first_then_handle_keeps_the_alignment)
{
    struct align_128k_first *a = PF_NEW(struct align_128k_first, 1);
    cr_assert_not_null(a);
    cr_assert_eq((uintptr_t)a % 131072, 0);
    pf_family_t *f = pf_family_get("struct align_128k_first", sizeof *a);
    cr_assert_not_null(f);
    for (int i = 0; i < 8; i++) {
        void *p = pf_family_alloc(f, (size_t)i % 2 + 1);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 131072, 0, "handle door at %p", p);
    }
    /* realloc of a typed object keeps its type's alignment and contents */
    memset(a, 0x5c, sizeof *a);
    for (size_t n = 2; n <= 40; n += 7) {
        a = pf_realloc(a, n * sizeof *a);
        cr_assert_not_null(a);
        cr_assert_eq((uintptr_t)a % 131072, 0, "realloc to %zu objects at %p", n, (void *)a);
        cr_assert_eq(a->bytes[0], 0x5c);
        cr_assert_eq(a->bytes[63], 0x5c);
    }
    pf_free(a);
}

struct ticket {
    uint64_t id;
    uint32_t seat;
}; /* 16 bytes, used by this test only */

/* Everything written into a pipe by print(fd), NUL-terminated. */
static char *printed(int (*print)(int), const char *name)
{
    static char buf[1 << 16];
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    int rc = name ? pf_print_family(fds[1], name) : print(fds[1]);
    cr_assert_eq(rc, 0);
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    buf[len] = '\0';
    return buf;
}

/* A typed family's row says objects (elements), blocks (arrays), bytes
 * requested and bytes held, each in its own column: PF_NEW(struct ticket,
 * 10) and PF_NEW(struct ticket, 3) are 13 objects in 2 arrays, 208 bytes
 * requested, held in slots that fit 160 and 48 bytes. */
Test(typed, elements_arrays_requested_and_held_apart)
{
    struct ticket *a = PF_NEW(struct ticket, 10), *b = PF_NEW(struct ticket, 3);
    cr_assert(a && b);
    uint64_t held = pf_malloc_usable_size(a) + pf_malloc_usable_size(b);
    struct pf_family_stats f = family("struct ticket");
    cr_assert_eq(f.slot_size, sizeof(struct ticket));
    cr_assert_eq(f.live_objects, 2, "two arrays");
    cr_assert_eq(f.live_elements, 13, "thirteen objects");
    cr_assert_eq(f.live_requested, 13 * sizeof(struct ticket));
    cr_assert_eq(f.live_bytes, held);

    const char *text = printed(pf_print_families, NULL);
    const char *head = strstr(text, "family ");
    cr_assert_not_null(head, "%s", text);
    cr_assert_not_null(strstr(head, " size "), "%s", text);
    const char *cols[] = {"objects", "blocks", "requested", "held", "peak held"};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++)
        cr_assert_not_null(strstr(head, cols[i]), "no column %s in:\n%s", cols[i], text);
    const char *row = strstr(text, "\nstruct ticket ");
    cr_assert_not_null(row, "%s", text);
    const char *kind = strstr(row, "typed");
    cr_assert_not_null(kind);
    unsigned long size = 0, objects = 0, blocks = 0, req = 0, hb = 0;
    char ru[8], hu[8];
    cr_assert_eq(sscanf(kind + 5, "%lu %lu %lu %lu %7s %lu %7s", &size, &objects, &blocks, &req, ru,
                        &hb, hu),
                 7, "%.200s", row);
    cr_assert_eq(size, sizeof(struct ticket), "%.200s", row);
    cr_assert_eq(objects, 13, "%.200s", row);
    cr_assert_eq(blocks, 2, "%.200s", row);
    cr_assert_eq(req, 13 * sizeof(struct ticket), "%.200s", row);
    cr_assert_str_eq(ru, "B");
    cr_assert_eq(hb, held, "%.200s", row);

    text = printed(NULL, "struct ticket");
    char want[128];
    snprintf(want, sizeof want, "live 13 objects in 2 arrays, requested %zu B, held %lu B",
             13 * sizeof(struct ticket), (unsigned long)held);
    cr_assert_not_null(strstr(text, want), "no \"%s\" in:\n%s", want, text);
    PF_DELETE(a);
    PF_DELETE(b);
    f = family("struct ticket");
    cr_assert_eq(f.live_elements, 0);
}

/* A typed allocation whose name's family has another size goes to the
 * family "<name>/<size>", which must hold objects of that size: with
 * "suffix_clash/16" registered by handle for 32-byte objects,
 * pf_typed_alloc("suffix_clash", 16, 8, 4) went into it, and its stats
 * showed 2 objects (64 bytes / 32) for the 4 asked for. The next free name,
 * "<name>/<size>#2", is the type's now. */
Test(typed, suffixed_name_taken_by_another_size_is_not_reused)
{
    pf_family_t *taken = pf_family_get("suffix_clash/16", 32);
    pf_family_t *first = pf_family_get("suffix_clash", 8);
    cr_assert(taken && first);
    void *p = pf_typed_alloc("suffix_clash", 16, 8, 4);
    cr_assert_not_null(p);
    struct pf_family_stats f = family("suffix_clash/16");
    cr_assert_eq(f.live_objects, 0, "the 32-byte family holds %lu arrays of 16-byte objects",
                 (unsigned long)f.live_objects);
    f = family("suffix_clash/16#2");
    cr_assert_eq(f.kind, PF_KIND_TYPED, "no family suffix_clash/16#2");
    cr_assert_eq(f.slot_size, 16);
    cr_assert_eq(f.live_objects, 1);
    cr_assert_eq(f.live_elements, 4);

    /* found again by name (another key, so not from the key cache) */
    char key[] = "suffix_clash";
    void *q = pf_typed_alloc(key, 16, 8, 2);
    cr_assert_not_null(q);
    f = family("suffix_clash/16#2");
    cr_assert_eq(f.live_objects, 2);
    cr_assert_eq(f.live_elements, 6);

    /* "#2" taken by yet another size: "#3" */
    cr_assert_not_null(pf_family_get("suffix_clash/24", 40));
    cr_assert_not_null(pf_family_get("suffix_clash/24#2", 8));
    void *r = pf_typed_alloc("suffix_clash", 24, 8, 3);
    cr_assert_not_null(r);
    f = family("suffix_clash/24#3");
    cr_assert_eq(f.slot_size, 24);
    cr_assert_eq(f.live_elements, 3);
    cr_assert_eq(family("suffix_clash/24").live_objects, 0);
    cr_assert_eq(family("suffix_clash/24#2").live_objects, 0);

    /* "<name>/<size>" of the right size is the type's, as it always was */
    cr_assert_not_null(pf_family_get("suffix_fits/16", 16));
    cr_assert_not_null(pf_family_get("suffix_fits", 8));
    void *s = pf_typed_alloc("suffix_fits", 16, 8, 5);
    cr_assert_not_null(s);
    f = family("suffix_fits/16");
    cr_assert_eq(f.live_elements, 5);
    pf_free(p);
    pf_free(q);
    pf_free(r);
    pf_free(s);
}
