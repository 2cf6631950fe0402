/*
 * test_stats.c — the counters through the public header. In a quiet process
 * every family's figures equal exactly what the test did, the totals are the
 * sums of the families, memory handed back shows in mapped_bytes, syscalls
 * are counted, and the printers name the families they report.
 *
 * Assumption used throughout: for an untyped small block,
 * pf_malloc_usable_size() is the slot size, so the block's family is
 * "malloc-<usable size>" (checked against the family's slot_size).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfalloc.h"

#define MIB ((size_t)1 << 20)

struct stats_probe {
    long a, b, c;
};

static struct pf_stats snap;

static struct pf_family_stats family(const char *name)
{
    struct pf_family_stats f;
    memset(&f, 0, sizeof f);
    f.kind = UINT32_MAX;
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.truncated, 0);
    for (uint32_t i = 0; i < snap.nfamilies; i++)
        if (strcmp(snap.fam[i].name, name) == 0)
            return snap.fam[i];
    return f;
}

static struct pf_totals totals(void)
{
    cr_assert_eq(pf_stats_get(&snap), 0);
    return snap.totals;
}

static void class_name(char *buf, size_t cap, const void *p)
{
    snprintf(buf, cap, "malloc-%zu", pf_malloc_usable_size(p));
}

static struct pf_family_stats family_of(const void *p)
{
    char name[PF_NAME_MAX];
    class_name(name, sizeof name, p);
    return family(name);
}

/* The biggest slot whose state holds the request (PF_STATE_REQ_SLOT in
 * span.h); bigger slots' states hold the waste. */
#define STATE_REQ_SLOT 32768

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    unsigned long size = 0, rss = 0;
    cr_assert_eq(fscanf(f, "%lu %lu", &size, &rss), 2);
    fclose(f);
    return rss * (size_t)sysconf(_SC_PAGESIZE);
}

Test(stats, version_and_null)
{
    errno = 0;
    cr_assert_eq(pf_stats_get(NULL), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.version, PF_STATS_VERSION);
    cr_assert_leq(snap.nfamilies, PF_STATS_FAMILIES_MAX);
}

/* N mallocs of S bytes, M frees: exact deltas in "malloc-<slot>". */
static void exact_counts(size_t S, size_t N, size_t M)
{
    enum { MAXN = 2000 };
    static void *p[MAXN];
    char name[PF_NAME_MAX];
    cr_assert_leq(N, (size_t)MAXN);
    cr_assert_leq(M, N);

    void *probe = pf_malloc(S);
    cr_assert_not_null(probe);
    size_t slot = pf_malloc_usable_size(probe);
    class_name(name, sizeof name, probe);
    pf_free(probe);

    struct pf_family_stats b = family(name);
    cr_assert_eq(b.kind, PF_KIND_CLASS, "malloc(%zu) did not land in a family %s", S, name);
    cr_assert_eq(b.slot_size, slot, "%s: slot_size %lu", name, (unsigned long)b.slot_size);
    struct pf_totals tb = snap.totals;

    for (size_t i = 0; i < N; i++) {
        p[i] = pf_malloc(S);
        cr_assert_not_null(p[i]);
        cr_assert_eq(pf_malloc_usable_size(p[i]), slot);
    }
    for (size_t i = 0; i < M; i++)
        pf_free(p[i]);

    struct pf_family_stats a = family(name);
    struct pf_totals ta = snap.totals;
    cr_assert_eq(a.allocs - b.allocs, N, "%s allocs delta %lu, want %zu", name,
                 (unsigned long)(a.allocs - b.allocs), N);
    cr_assert_eq(a.frees - b.frees, M, "%s frees delta %lu, want %zu", name,
                 (unsigned long)(a.frees - b.frees), M);
    cr_assert_eq(a.live_objects - b.live_objects, N - M, "%s live delta %lu, want %zu", name,
                 (unsigned long)(a.live_objects - b.live_objects), N - M);
    cr_assert_eq(a.live_bytes - b.live_bytes, (N - M) * slot, "%s live_bytes delta %lu", name,
                 (unsigned long)(a.live_bytes - b.live_bytes));
    cr_assert_eq(a.live_requested - b.live_requested, (N - M) * S,
                 "%s live_requested delta %lu, want %zu", name,
                 (unsigned long)(a.live_requested - b.live_requested), (N - M) * S);
    cr_assert_eq(a.live_objects, a.allocs - a.frees);
    cr_assert_geq(a.mapped_bytes, a.live_bytes);
    cr_assert_geq(a.spans, 1);
    cr_assert_eq(ta.allocs - tb.allocs, N);
    cr_assert_eq(ta.frees - tb.frees, M);
    cr_assert_eq(ta.live_objects - tb.live_objects, N - M);
    cr_assert_eq(ta.live_requested - tb.live_requested, (N - M) * S);

    for (size_t i = M; i < N; i++)
        pf_free(p[i]);
    struct pf_family_stats c = family(name);
    cr_assert_eq(c.live_objects, b.live_objects);
    cr_assert_eq(c.live_bytes, b.live_bytes);
    cr_assert_eq(c.live_requested, b.live_requested);
    cr_assert_eq(c.allocs - b.allocs, N);
    cr_assert_eq(c.frees - b.frees, N);
}

Test(stats, class_counters_exact_when_quiet)
{
    exact_counts(100, 1000, 400);
    exact_counts(0, 50, 10);
    exact_counts(1, 300, 299);
    exact_counts(24, 2000, 1000);
    exact_counts(1000, 700, 0);
    exact_counts(3000, 500, 250);
    exact_counts(8000, 200, 150);
    /* States hold the request up to slots of STATE_REQ_SLOT bytes, the
     * waste above: both sides of the line, and a request that wastes most
     * of its slot on each. */
    exact_counts(STATE_REQ_SLOT, 60, 30);
    exact_counts(STATE_REQ_SLOT - 3000, 60, 20);
    exact_counts(STATE_REQ_SLOT + 1, 50, 25);
    exact_counts(120000, 20, 5);
    /* again in a family already used: deltas still exact */
    exact_counts(100, 1000, 1000);
}

Test(stats, every_entry_point_counts)
{
    struct pf_totals b = totals();
    void *p[13];
    int k = 0;
    pf_family_t *f = pf_family_get("stats handle", 40);
    cr_assert_not_null(f);
    p[k++] = pf_malloc(100);
    p[k++] = pf_calloc(10, 10);
    p[k++] = pf_realloc(NULL, 100);
    p[k++] = pf_reallocarray(NULL, 10, 10);
    cr_assert_eq(pf_posix_memalign(&p[k++], 64, 100), 0);
    p[k++] = pf_aligned_alloc(256, 100);
    p[k++] = pf_memalign(4096, 100);
    p[k++] = pf_valloc(100);
    p[k++] = pf_pvalloc(100);
    p[k++] = PF_NEW(struct stats_probe, 3);
    p[k++] = pf_family_alloc(f, 2);
    p[k++] = pf_malloc(32 * MIB);
    p[k++] = pf_calloc(1, 32 * MIB);
    for (int i = 0; i < k; i++)
        cr_assert_not_null(p[i], "call %d failed", i);
    struct pf_totals a = totals();
    cr_assert_eq(a.live_objects - b.live_objects, (uint64_t)k, "live delta %lu, want %d",
                 (unsigned long)(a.live_objects - b.live_objects), k);
    cr_assert_eq(a.allocs - b.allocs, (uint64_t)k);
    cr_assert_eq(a.frees - b.frees, 0);
    cr_assert_eq(family("large").live_objects, 2);
    cr_assert_eq(family("stats handle").live_objects, 1);
    cr_assert_eq(family("struct stats_probe").live_objects, 1);
    for (int i = 0; i < k; i++)
        pf_free(p[i]);
    struct pf_totals c = totals();
    cr_assert_eq(c.live_objects, b.live_objects);
    cr_assert_eq(c.live_bytes, b.live_bytes);
    cr_assert_eq(c.live_requested, b.live_requested);
    cr_assert_eq(c.frees - b.frees, (uint64_t)k);
}

Test(stats, realloc_moves_counts_between_families)
{
    char from[PF_NAME_MAX], to[PF_NAME_MAX];
    void *p = pf_malloc(100);
    cr_assert_not_null(p);
    class_name(from, sizeof from, p);
    struct pf_family_stats fb = family(from);
    struct pf_totals tb = snap.totals;

    /* shrink in place: still one object, the request is now 90 bytes */
    cr_assert_eq(pf_realloc(p, 90), p);
    struct pf_family_stats fs = family(from);
    cr_assert_eq(fs.live_objects, fb.live_objects);
    cr_assert_eq(fb.live_requested - fs.live_requested, 10, "live_requested after 100 -> 90");
    /* and in a slot whose state holds the waste (see STATE_REQ_SLOT),
     * down and up */
    void *big = pf_malloc(STATE_REQ_SLOT + 5000);
    struct pf_family_stats bb = family_of(big);
    cr_assert_eq(pf_realloc(big, STATE_REQ_SLOT + 1000), big);
    cr_assert_eq(bb.live_requested - family_of(big).live_requested, 4000);
    cr_assert_eq(pf_realloc(big, STATE_REQ_SLOT + 2000), big);
    cr_assert_eq(bb.live_requested - family_of(big).live_requested, 3000);
    pf_free(big);

    /* grow into another class: one object leaves `from`, one enters `to` */
    void *q = pf_realloc(p, 5000);
    cr_assert_not_null(q);
    class_name(to, sizeof to, q);
    cr_assert_str_neq(from, to);
    struct pf_family_stats fa = family(from);
    struct pf_family_stats ta = family(to);
    cr_assert_eq(fb.live_objects - fa.live_objects, 1, "%s still counts the moved block", from);
    cr_assert_geq(ta.live_objects, 1);
    cr_assert_eq(snap.totals.live_objects, tb.live_objects, "a move changed the live total");
    cr_assert_eq(snap.totals.live_requested - (tb.live_requested - 100), 5000);
    pf_free(q);
    cr_assert_eq(totals().live_objects, tb.live_objects - 1);
}

static void check_consistent(void)
{
    cr_assert_eq(pf_stats_get(&snap), 0);
    cr_assert_eq(snap.truncated, 0);
    const struct pf_totals *t = &snap.totals;
    uint64_t live = 0, bytes = 0, req = 0, allocs = 0, frees = 0, mapped = 0;
    for (uint32_t i = 0; i < snap.nfamilies; i++) {
        const struct pf_family_stats *f = &snap.fam[i];
        cr_assert_neq(f->name[0], '\0', "family %u has no name", i);
        cr_assert_lt(strnlen(f->name, PF_NAME_MAX), PF_NAME_MAX, "name not terminated");
        cr_assert_leq(f->kind, PF_KIND_LARGE);
        cr_assert_eq(f->live_objects, f->allocs - f->frees, "%s: live != allocs - frees",
                     f->name);
        cr_assert_leq(f->live_bytes, f->mapped_bytes, "%s: live_bytes > mapped_bytes", f->name);
        if (f->kind != PF_KIND_LARGE)
            cr_assert_leq(f->live_requested, f->live_bytes, "%s: requested > held", f->name);
        for (uint32_t j = 0; j < i; j++) {
            cr_assert_str_neq(f->name, snap.fam[j].name, "family %s listed twice", f->name);
            cr_assert_neq(f->id, snap.fam[j].id, "%s and %s share id %u", f->name,
                          snap.fam[j].name, f->id);
        }
        live += f->live_objects;
        bytes += f->live_bytes;
        req += f->live_requested;
        allocs += f->allocs;
        frees += f->frees;
        mapped += f->mapped_bytes;
    }
    cr_assert_eq(t->live_objects, live);
    cr_assert_eq(t->live_bytes, bytes);
    cr_assert_eq(t->live_requested, req);
    cr_assert_eq(t->allocs, allocs);
    cr_assert_eq(t->frees, frees);
    cr_assert_eq(t->live_objects, t->allocs - t->frees);
    cr_assert_geq(t->mapped_bytes, mapped + t->metadata_bytes,
                  "mapped %lu < families %lu + metadata %lu", (unsigned long)t->mapped_bytes,
                  (unsigned long)mapped, (unsigned long)t->metadata_bytes);
    cr_assert_geq(t->peak_mapped_bytes, t->mapped_bytes);
    cr_assert_geq(t->families, snap.nfamilies);
    if (t->allocs > 0)
        cr_assert_geq(t->threads, 1, "allocations made but no thread counted");
}

Test(stats, totals_are_the_sum_of_families)
{
    enum { N = 3000 };
    static void *p[N];
    check_consistent();
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0: p[i] = pf_malloc((size_t)(i % 3000) + 1); break;
        case 1: p[i] = PF_NEW(struct stats_probe, (size_t)(i % 9) + 1); break;
        case 2: p[i] = pf_calloc(3, (size_t)(i % 500) + 1); break;
        default: p[i] = i % 300 == 3 ? pf_malloc(4 * MIB) : pf_malloc(48); break;
        }
        cr_assert_not_null(p[i]);
    }
    check_consistent();
    cr_assert_geq(snap.totals.live_objects, N);
    for (int i = 0; i < N; i += 2)
        pf_free(p[i]);
    check_consistent();
    for (int i = 1; i < N; i += 2)
        pf_free(p[i]);
    check_consistent();
    cr_assert_eq(snap.totals.live_objects, 0);
    cr_assert_eq(snap.totals.live_bytes, 0);
    cr_assert_eq(snap.totals.live_requested, 0);
}

Test(stats, trim_gives_memory_back)
{
    enum { N = 200000 };
    const size_t S = 256;
    static void *p[N];
    pf_trim();
    struct pf_totals t0 = totals();
    size_t r0 = rss_bytes();
    for (int i = 0; i < N; i++) {
        p[i] = pf_malloc(S);
        cr_assert_not_null(p[i]);
        memset(p[i], 0x5c, S);
    }
    struct pf_totals t1 = totals();
    size_t r1 = rss_bytes();
    size_t want = (size_t)N * S;
    cr_assert_geq(t1.mapped_bytes - t0.mapped_bytes, want, "mapped grew %lu for %zu bytes",
                  (unsigned long)(t1.mapped_bytes - t0.mapped_bytes), want);
    cr_assert_geq(r1, r0 + want / 2, "RSS did not grow with the blocks");
    for (int i = 0; i < N; i++)
        pf_free(p[i]);
    size_t given = pf_trim();
    struct pf_totals t2 = totals();
    size_t r2 = rss_bytes();
    cr_assert_geq(given, want / 2, "pf_trim gave back only %zu bytes", given);
    cr_assert_leq(t2.mapped_bytes, t0.mapped_bytes + want / 4,
                  "mapped_bytes %lu after trim, %lu before the blocks",
                  (unsigned long)t2.mapped_bytes, (unsigned long)t0.mapped_bytes);
    cr_assert_eq(t2.cached_bytes, 0, "pf_trim left %lu bytes cached",
                 (unsigned long)t2.cached_bytes);
    cr_assert_leq(r2, r0 + want / 4, "RSS %zu after trim, %zu before", r2, r0);
    cr_assert_eq(t2.live_objects, t0.live_objects);
}

Test(stats, syscalls_counted_for_large_blocks)
{
    const size_t S = 256 * MIB;
    pf_trim();
    struct pf_family_stats lb = family("large");
    struct pf_totals t0 = snap.totals;
    unsigned char *p = pf_malloc(S);
    cr_assert_not_null(p);
    p[0] = 1;
    p[S - 1] = 2;
    struct pf_family_stats la = family("large");
    struct pf_totals t1 = snap.totals;
    cr_assert_geq(t1.mmap_calls, t0.mmap_calls + 1, "a fresh large block made no mmap");
    cr_assert_geq(t1.mapped_bytes - t0.mapped_bytes, S);
    cr_assert_geq(t1.peak_mapped_bytes, t1.mapped_bytes);
    cr_assert_eq(la.kind, PF_KIND_LARGE);
    cr_assert_eq(la.slot_size, 0);
    cr_assert_eq(la.live_objects - lb.live_objects, 1);
    cr_assert_eq(la.allocs - lb.allocs, 1);
    cr_assert_eq(la.live_requested - lb.live_requested, S);
    cr_assert_geq(la.live_bytes - lb.live_bytes, S);
    cr_assert_eq(la.spans - lb.spans, 1);
    cr_assert_geq(la.mapped_bytes - lb.mapped_bytes, S);

    pf_free(p);
    pf_trim();
    struct pf_family_stats lc = family("large");
    struct pf_totals t2 = snap.totals;
    cr_assert_geq(t2.munmap_calls + t2.madvise_calls, t1.munmap_calls + t1.madvise_calls + 1);
    cr_assert_leq(t2.mapped_bytes, t1.mapped_bytes - S, "mapped_bytes did not drop by %zu", S);
    cr_assert_eq(lc.live_objects, lb.live_objects);
    cr_assert_eq(lc.frees - lb.frees, 1);
    cr_assert_eq(lc.spans, lb.spans);
    cr_assert_eq(lc.mapped_bytes, lb.mapped_bytes);
}

/* Everything the printer wrote into the pipe so far, NUL-terminated. */
static char *drain(int fd, size_t *len)
{
    static char buf[1 << 20];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

Test(stats, printers_name_the_families)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    cr_assert_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);

    char name[PF_NAME_MAX];
    void *m = pf_malloc(700);
    struct stats_probe *t = PF_NEW(struct stats_probe, 2);
    void *big = pf_malloc(16 * MIB);
    cr_assert_not_null(m);
    cr_assert_not_null(t);
    cr_assert_not_null(big);
    class_name(name, sizeof name, m);
    struct pf_totals before = totals();

    size_t len;
    cr_assert_eq(pf_print_families(fds[1]), 0);
    char *out = drain(fds[0], &len);
    cr_assert_gt(len, 0);
    cr_assert_not_null(strstr(out, name), "families report lacks %s:\n%s", name, out);
    cr_assert_not_null(strstr(out, "struct stats_probe"), "families report lacks the type:\n%s",
                       out);
    cr_assert_not_null(strstr(out, "large"), "families report lacks large:\n%s", out);

    cr_assert_eq(pf_print_family(fds[1], "struct stats_probe"), 0);
    out = drain(fds[0], &len);
    cr_assert_not_null(strstr(out, "struct stats_probe"), "family report:\n%s", out);

    cr_assert_eq(pf_print_family(fds[1], name), 0);
    out = drain(fds[0], &len);
    cr_assert_not_null(strstr(out, name), "family report:\n%s", out);

    cr_assert_eq(pf_print_totals(fds[1]), 0);
    out = drain(fds[0], &len);
    cr_assert_gt(len, 0, "totals report is empty");

    /* the printers allocate nothing from pfalloc */
    struct pf_totals after = totals();
    cr_assert_eq(after.allocs, before.allocs);
    cr_assert_eq(after.live_objects, before.live_objects);

    /* a descriptor that is not open: -1 with write's errno */
    int dead = dup(fds[1]);
    cr_assert_geq(dead, 0);
    close(dead);
    errno = 0;
    cr_assert_eq(pf_print_totals(dead), -1);
    cr_assert_eq(errno, EBADF);
    errno = 0;
    cr_assert_eq(pf_print_families(dead), -1);
    cr_assert_eq(errno, EBADF);
    /* nor is a negative one: the printers wrote nothing and said 0 */
    static const int negative[] = {-1, -2, -100};
    for (size_t i = 0; i < sizeof negative / sizeof negative[0]; i++) {
        errno = 0;
        cr_assert_eq(pf_print_totals(negative[i]), -1, "pf_print_totals(%d)", negative[i]);
        cr_assert_eq(errno, EBADF);
        errno = 0;
        cr_assert_eq(pf_print_families(negative[i]), -1, "pf_print_families(%d)", negative[i]);
        cr_assert_eq(errno, EBADF);
        errno = 0;
        cr_assert_eq(pf_print_family(negative[i], "malloc-64"), -1, "pf_print_family(%d)", negative[i]);
        cr_assert_eq(errno, EBADF);
    }

    pf_free(m);
    PF_DELETE(t);
    pf_free(big);
    close(fds[0]);
    close(fds[1]);
}

/* A block whose slot is far bigger than the bytes asked for (a few bytes at
 * 64 KiB alignment, in any family) still counts exactly what was asked. */
Test(stats, requested_bytes_exact_for_tiny_blocks_at_high_alignment)
{
    static const size_t aligns[] = {4096, 32768, 65536};
    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        for (size_t n = 0; n < 8; n++) {
            uint64_t r0 = totals().live_requested;
            void *p = pf_memalign(aligns[a], n);
            cr_assert_not_null(p);
            cr_assert_eq((uintptr_t)p % aligns[a], 0);
            cr_assert_eq(totals().live_requested - r0, n, "memalign(%zu, %zu) counted %lu bytes",
                         aligns[a], n, (unsigned long)(totals().live_requested - r0));
            pf_free(p);
            cr_assert_eq(totals().live_requested, r0);
        }
    }
    struct big {
        _Alignas(65536) char c;
    };
    uint64_t r0 = totals().live_requested;
    struct big *b = PF_NEW(struct big, 1);
    cr_assert_not_null(b);
    cr_assert_eq((uintptr_t)b % 65536, 0);
    cr_assert_eq(totals().live_requested - r0, sizeof(struct big));
    pf_free(b);
}

/* resident_bytes is memory, mapped_bytes address space: after 64 MiB are
 * allocated and touched (half in small blocks, half in large ones), the
 * growth of pfalloc's resident figure equals the growth of the process's
 * RSS, and after they are freed and trimmed both fall back. Margin: 10% of
 * the change plus 2 MiB, for what else the process touches between two
 * readings (stdio, the test runner) and for page tables; pfalloc's own
 * figure is exact to the page (mincore over its mappings). */
static void resident_tracks_rss(size_t before_rss, uint64_t before_res, const char *when)
{
    struct pf_totals t = totals();
    size_t rss = rss_bytes();
    int64_t d_rss = (int64_t)rss - (int64_t)before_rss;
    int64_t d_res = (int64_t)t.resident_bytes - (int64_t)before_res;
    int64_t diff = d_res > d_rss ? d_res - d_rss : d_rss - d_res;
    int64_t mag = d_rss < 0 ? -d_rss : d_rss;
    cr_assert_leq(diff, mag / 10 + (int64_t)(2 * MIB),
                  "%s: RSS changed by %ld KiB, resident_bytes by %ld KiB", when,
                  (long)(d_rss / 1024), (long)(d_res / 1024));
    cr_assert_leq(t.resident_bytes, t.mapped_bytes);
    cr_assert_leq(t.metadata_resident_bytes, t.metadata_bytes);
    cr_assert_leq(t.metadata_resident_bytes, t.resident_bytes);
}

Test(stats, resident_tracks_rss)
{
    enum { NSMALL = 32 * 1024, NLARGE = 32 };
    static void *small[NSMALL], *large[NLARGE];
    pf_trim();
    struct pf_totals t0 = totals();
    size_t rss0 = rss_bytes();
    cr_assert_leq(t0.resident_bytes, t0.mapped_bytes);
    for (size_t i = 0; i < NSMALL; i++) {
        small[i] = pf_malloc(i % 2 ? 512 : 1536); /* 32 MiB in two classes */
        cr_assert_not_null(small[i]);
        memset(small[i], 1, i % 2 ? 512 : 1536);
    }
    for (size_t i = 0; i < NLARGE; i++) {
        large[i] = pf_malloc(MIB);
        cr_assert_not_null(large[i]);
        memset(large[i], 1, MIB);
    }
    resident_tracks_rss(rss0, t0.resident_bytes, "after 64 MiB touched");
    struct pf_totals t1 = snap.totals;
    cr_assert_geq(t1.resident_bytes - t0.resident_bytes, 64 * MIB);
    for (size_t i = 0; i < NSMALL; i++)
        pf_free(small[i]);
    for (size_t i = 0; i < NLARGE; i++)
        pf_free(large[i]);
    pf_trim();
    resident_tracks_rss(rss0, t0.resident_bytes, "after free and trim");
    cr_assert_lt(totals().resident_bytes, t0.resident_bytes + 4 * MIB);
}

/* Slot states are bookkeeping pfalloc keeps per slot; a chunk of big slots
 * has few of them (32 for 2 KiB slots) and must not take a page of states
 * of its own: 64 chunks' worth of 2 KiB blocks may add at most 3 KiB of
 * resident metadata per chunk (free bits, span structs, region headers and
 * the states of four chunks to a page come to about 2.2 KiB; with a page
 * of states per chunk it was 5.2 KiB). */
Test(stats, big_slots_share_pages_of_states)
{
    enum { SLOT = 2048, PER_CHUNK = 65536 / SLOT, CHUNKS = 64, N = PER_CHUNK * CHUNKS };
    static void *p[N];
    pf_trim();
    uint64_t meta0 = totals().metadata_resident_bytes;
    for (size_t i = 0; i < N; i++) {
        p[i] = pf_malloc(SLOT);
        cr_assert_not_null(p[i]);
        cr_assert_eq(pf_malloc_usable_size(p[i]), SLOT);
    }
    uint64_t meta1 = totals().metadata_resident_bytes;
    cr_assert_leq(meta1 - meta0, (uint64_t)CHUNKS * 3072,
                  "%d chunks of %d-byte slots added %llu KiB of resident metadata", CHUNKS, SLOT,
                  (unsigned long long)((meta1 - meta0) / 1024));
    for (size_t i = 0; i < N; i++)
        pf_free(p[i]);
}
