/*
 * test_large.c — large blocks: page-aligned (or aligned as asked) zeroed
 * mappings counted in their family, published in the pagemap and
 * tombstoned when freed; the cache of freed ranges (reuse without mmap,
 * zeroed again when asked, split for a smaller request and grown with
 * mremap for a bigger one, neighbours coalesced, bounded by the live bytes
 * until the program churns large blocks and by the peak of live bytes
 * after, in bytes and in ranges, decaying when unused); realloc with mremap
 * keeping the contents and the family's figures; trim unmapping everything
 * cached.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "large.h"

#define MiB ((size_t)1 << 20)

static struct pf_os_counts counts(void)
{
    struct pf_os_counts oc;
    pf_os_counts(&oc);
    return oc;
}

/* Bytes mapped for blocks and spans: metadata (pagemap leaves, span
 * structs) may grow by itself when a block lands somewhere new. */
static uint64_t data_bytes(void)
{
    struct pf_os_counts oc = counts();
    return oc.mapped_bytes - oc.metadata_bytes;
}

/* mmap calls between two counts made for blocks: a block that lands in a
 * 4 GiB range no block was in before also maps that range's pagemap leaf,
 * which is metadata (where the kernel puts a block varies from run to run). */
static uint64_t block_maps(struct pf_os_counts c0, struct pf_os_counts c1)
{
    uint64_t calls = c1.mmap_calls - c0.mmap_calls;
    return calls > 0 && c1.metadata_bytes > c0.metadata_bytes ? calls - 1 : calls;
}

static int all_zero(const void *p, size_t n)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return 0;
    const unsigned char *c = p;
    for (size_t i = n / 8 * 8; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

static struct pf_span *span_of(void *p)
{
    struct pf_span *s = pf_pagemap_get(p);
    cr_assert_not_null(s);
    cr_assert_eq(s->kind, PF_SPAN_LARGE);
    cr_assert_eq(s->start, (uintptr_t)p);
    return s;
}

/* Makes the process one that churns large blocks (PF_LARGE_CHURN of them
 * allocated), with nothing live and nothing cached. */
static void churn(void)
{
    for (int i = 0; i < PF_LARGE_CHURN; i++)
        pf_large_free(span_of(pf_large_alloc(pf_family_large(), 2 * PF_CHUNK, 0, 0)));
    pf_large_trim();
    cr_assert_eq(pf_large_cached_bytes(), 0);
}

/* n blocks of `bytes` each, carved in address order from one cached range,
 * so which of them are neighbours does not depend on where mmap puts things. */
static void carve(void **out, const size_t *bytes, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += bytes[i];
    char *whole = pf_large_alloc(pf_family_large(), total, 0, 0);
    cr_assert_not_null(whole);
    pf_large_free(span_of(whole));
    for (int i = 0; i < n; i++) {
        out[i] = pf_large_alloc(pf_family_large(), bytes[i], 0, 0);
        cr_assert_eq(out[i], whole, "block %d is the next piece of the range", i);
        whole += bytes[i];
    }
    cr_assert_eq(pf_large_cached_bytes(), 0);
}

Test(large, alloc_is_page_aligned_zeroed_and_counted)
{
    struct pf_family *f = pf_family_large();
    size_t ps = pf_os_page_size();
    size_t sizes[] = {PF_SMALL_MAX + 1, 200000, MiB, 3 * MiB + 5, 40 * MiB};
    size_t total = 0;
    struct pf_os_counts c0 = counts();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *p = pf_large_alloc(f, n, 0, 0);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % ps, 0, "%zu bytes at %p", n, p);
        cr_assert(all_zero(p, n), "%zu bytes: a fresh block reads as zero", n);
        memset(p, 0x77, n); /* and is writable to the end */
        struct pf_span *s = span_of(p);
        cr_assert_eq(s->family, f);
        cr_assert_eq(s->req, n);
        cr_assert_geq(s->bytes, n);
        cr_assert_lt(s->bytes - n, ps, "rounded to whole pages only");
        cr_assert_eq(s->bytes % ps, 0);
        cr_assert_geq(pf_large_usable(s), n);
        total += s->bytes;
        cr_assert_eq(f->allocs, i + 1);
        cr_assert_eq(f->live_bytes, total);
        cr_assert_eq(f->spans, i + 1);
        cr_assert_eq(f->mapped, total);
    }
    cr_assert_geq(counts().mapped_bytes - c0.mapped_bytes, total);
    struct pf_family_stats st;
    struct pf_span_info info[8];
    cr_assert_eq(pf_family_spans("large", &st, info, 8), 5);
    cr_assert_eq(st.kind, PF_KIND_LARGE);
    cr_assert_eq(st.live_objects, 5);
    cr_assert_eq(st.live_bytes, total);
    uint64_t req = 0;
    for (size_t i = 0; i < 5; i++)
        req += sizes[i];
    cr_assert_eq(st.live_requested, req);
}

Test(large, alloc_honours_big_alignments)
{
    struct pf_family *f = pf_family_large();
    for (size_t align = 2 * pf_os_page_size(); align <= ((size_t)1 << 28); align <<= 1) {
        void *p = pf_large_alloc(f, PF_SMALL_MAX + 100, align, 0);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % align, 0, "alignment %zu: %p", align, p);
        cr_assert_eq(span_of(p)->family, f);
        pf_large_free(span_of(p));
    }
}

Test(large, blocks_count_in_the_family_they_are_given)
{
    struct pf_family *t = pf_family_typed("struct huge", 1000, 16);
    void *p = pf_large_alloc(t, 500 * 1000, 0, 1);
    cr_assert_not_null(p);
    cr_assert_eq(span_of(p)->family, t);
    cr_assert_eq(t->allocs, 1);
    cr_assert_eq(t->spans, 1);
    cr_assert_eq(pf_family_large()->allocs, 0);
    pf_large_free(span_of(p));
    cr_assert_eq(t->frees, 1);
    cr_assert_eq(t->spans, 0);
    cr_assert_eq(t->live_bytes, 0);
    cr_assert_eq(t->req_in, t->req_out);
}

Test(large, free_tombstones_and_caches_the_mapping)
{
    struct pf_family *f = pf_family_large();
    void *hold = pf_large_alloc(f, 8 * MiB, 0, 0); /* live large bytes: the cache may keep some */
    char *p = pf_large_alloc(f, MiB, 0, 0);
    size_t bytes = span_of(p)->bytes;
    struct pf_os_counts c0 = counts();
    pf_large_free(span_of(p));
    cr_assert_eq(pf_pagemap_get(p), PF_PM_FREED_LARGE(p), "a freed block's entry is a tombstone naming its start");
    cr_assert_eq(pf_large_cached_bytes(), bytes);
    cr_assert_eq(counts().munmap_calls, c0.munmap_calls, "a cached block is not unmapped");
    cr_assert_eq(f->frees, 1);
    cr_assert_eq(f->live_bytes, span_of(hold)->bytes);
    cr_assert_eq(f->spans, 1);
    cr_assert_eq(f->mapped, span_of(hold)->bytes);
    cr_assert_eq(f->req_in - f->req_out, 8 * MiB);

    /* Same size again: the cached mapping, no mmap; calloc-style reuse is zero. */
    memset(p, 0xCD, bytes); /* the cache holds it mapped; dirty it as a stale pointer would */
    char *q = pf_large_alloc(f, MiB, 0, 1);
    cr_assert_eq(q, p, "the cached mapping is reused");
    cr_assert_eq(counts().mmap_calls, c0.mmap_calls, "reuse makes no mmap");
    cr_assert_eq(pf_large_cached_bytes(), 0);
    cr_assert(all_zero(q, MiB), "zero=1 on a reused block clears it");
    cr_assert_eq(span_of(q)->bytes, bytes);
    cr_assert_eq(span_of(q)->req, MiB);
    memset(q, 0xEF, MiB);
    pf_large_free(span_of(q));

    /* A little smaller: the same mapping, whole, zeroed as far as asked. */
    char *r = pf_large_alloc(f, MiB - 50000, 0, 1);
    cr_assert_eq(r, p);
    cr_assert_eq(counts().mmap_calls, c0.mmap_calls);
    cr_assert(all_zero(r, MiB - 50000));
    cr_assert_geq(span_of(r)->bytes, MiB - 50000);
    cr_assert_eq(f->live_bytes, span_of(hold)->bytes + span_of(r)->bytes);
    pf_large_free(span_of(r));
    pf_large_free(span_of(hold));
}

/* Waits for the coarse clock's next second: a range cached from then on
 * decays (is unmapped at a large free) only once 2 whole seconds have
 * passed, not at the first second boundary after 1 s on a loaded machine. */
static void at_a_fresh_second(void)
{
    uint64_t s = pf_os_seconds();
    while (pf_os_seconds() == s)
        usleep(1000);
}

Test(large, a_cached_range_is_split_and_grown_without_mmap)
{
    at_a_fresh_second();
    struct pf_family *f = pf_family_large();
    void *hold = pf_large_alloc(f, 16 * MiB, 0, 0);
    char *p = pf_large_alloc(f, 4 * MiB, 0, 0);
    memset(p, 0x99, 4 * MiB);
    pf_large_free(span_of(p));
    cr_assert_eq(pf_large_cached_bytes(), 4 * MiB);
    struct pf_os_counts c0 = counts();
    char *q = pf_large_alloc(f, MiB, 0, 1); /* much smaller: the front of the range */
    cr_assert_eq(q, p);
    cr_assert_eq(span_of(q)->bytes, MiB);
    cr_assert_eq(pf_large_cached_bytes(), 3 * MiB, "the rest stays cached");
    cr_assert(all_zero(q, MiB));
    cr_assert_eq(f->mapped, span_of(hold)->bytes + MiB);
    memset(q, 0x98, MiB);
    pf_large_free(span_of(q));
    cr_assert_eq(pf_large_cached_bytes(), 4 * MiB, "the block rejoins its neighbour");

    char *r = pf_large_alloc(f, 3 * MiB, 0, 0); /* served from the coalesced range */
    cr_assert_eq(r, p);
    cr_assert_eq(pf_large_cached_bytes(), MiB);
    char *g = pf_large_alloc(f, 6 * MiB, 0, 1); /* bigger than anything cached */
    cr_assert_not_null(g);
    cr_assert_eq(pf_large_cached_bytes(), 0, "the cached range was grown");
    cr_assert(all_zero(g, 6 * MiB), "reused and grown, it still reads as zero");
    cr_assert_eq(span_of(g)->bytes, 6 * MiB);
    struct pf_os_counts c1 = counts();
    cr_assert_eq(block_maps(c0, c1), 0, "no new mapping");
    cr_assert_eq(c1.munmap_calls, c0.munmap_calls, "nothing unmapped");
    cr_assert_eq(c1.mremap_calls, c0.mremap_calls + 1, "one mremap for the growth");
    cr_assert_eq(f->live_bytes, span_of(hold)->bytes + 3 * MiB + 6 * MiB);
    pf_large_free(span_of(g));
    pf_large_free(span_of(r));
    pf_large_free(span_of(hold));
}

Test(large, neighbours_coalesce_in_any_order)
{
    struct pf_family *f = pf_family_large();
    churn();
    char *whole = pf_large_alloc(f, 8 * MiB, 0, 0);
    pf_large_free(span_of(whole));
    cr_assert_eq(pf_large_cached_bytes(), 8 * MiB);
    char *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = pf_large_alloc(f, 2 * MiB, 0, 0);
        cr_assert_eq(b[i], whole + (size_t)i * 2 * MiB, "block %d is the next piece of the range", i);
    }
    cr_assert_eq(pf_large_cached_bytes(), 0);
    static const int order[4] = {1, 3, 0, 2};
    for (int i = 0; i < 4; i++)
        pf_large_free(span_of(b[order[i]]));
    cr_assert_eq(pf_large_cached_bytes(), 8 * MiB);
    struct pf_os_counts c0 = counts();
    char *again = pf_large_alloc(f, 8 * MiB, 0, 0);
    cr_assert_eq(again, whole, "the four pieces are one range again");
    struct pf_os_counts c1 = counts();
    cr_assert_eq(c1.mmap_calls + c1.mremap_calls, c0.mmap_calls + c0.mremap_calls, "and no syscall serves it");
    cr_assert_eq(pf_large_cached_bytes(), 0);
    pf_large_free(span_of(again));
}

/* A (8), B (4), C (8), D (4) MiB side by side, A and C freed: the peak of
 * live large bytes is 24 MiB, 8 are live, and two ranges of 8 MiB (B lies
 * between them) are cached. */
static void two_ranges_of_eight(void **blk)
{
    churn();
    static const size_t sz[4] = {8 * MiB, 4 * MiB, 8 * MiB, 4 * MiB};
    carve(blk, sz, 4);
    pf_large_free(span_of(blk[0]));
    pf_large_free(span_of(blk[2]));
    cr_assert_eq(pf_large_cached_bytes(), 16 * MiB);
}

Test(large, cache_is_bounded_by_the_peak)
{
    void *blk[4];
    two_ranges_of_eight(blk);
    /* 16 MiB: no range holds it, so one grows; live becomes 24 MiB again,
     * and live and cached bytes stay within 1.25 x 24 = 30 MiB at once:
     * 2 MiB of the other range go. */
    uint64_t before = data_bytes();
    void *e = pf_large_alloc(pf_family_large(), 16 * MiB, 0, 0);
    cr_assert_eq(pf_large_cached_bytes(), 6 * MiB, "cached bytes beyond the bound after a growth");
    cr_assert_eq(data_bytes(), before + 8 * MiB - 2 * MiB, "8 MiB grown, 2 MiB of the cache unmapped");
    before = data_bytes();
    /* Each free moves bytes from live to cached: within the bound, none go. */
    pf_large_free(span_of(e));
    cr_assert_eq(pf_large_cached_bytes(), 22 * MiB);
    pf_large_free(span_of(blk[1]));
    pf_large_free(span_of(blk[3]));
    cr_assert_eq(pf_large_cached_bytes(), 30 * MiB);
    cr_assert_eq(data_bytes(), before);
}

/* A block the cache cannot serve (an alignment above a page keeps it out)
 * is mapped fresh: the cache sheds what it then holds beyond the bound at
 * once, as when a cached range grows. */
Test(large, a_block_mapped_fresh_keeps_the_cache_within_the_bound)
{
    void *blk[4];
    two_ranges_of_eight(blk);
    uint64_t before = data_bytes();
    void *e = pf_large_alloc(pf_family_large(), 16 * MiB, 2 * MiB, 0);
    cr_assert_not_null(e);
    cr_assert_eq((uintptr_t)e % (2 * MiB), 0);
    /* Live 24 MiB again, peak 24: 30 MiB in all, so 6 MiB stay cached. */
    cr_assert_eq(pf_large_cached_bytes(), 6 * MiB, "cached bytes beyond the bound after a fresh block");
    cr_assert_eq(data_bytes(), before + 16 * MiB - 10 * MiB);
    pf_large_free(span_of(e));
    pf_large_free(span_of(blk[1]));
    pf_large_free(span_of(blk[3]));
    cr_assert_leq(pf_large_cached_bytes(), 30 * MiB);
}

/* Beyond the bound, the smallest cached ranges go first, whole, and the
 * biggest keeps its front: a big request it still holds is served with no
 * system call. (Cutting the biggest range's tail instead left 3 MiB of the
 * 8 MiB range and the whole 2 MiB one, and the 5 MiB request grew the 3
 * with mremap, faulting its new pages in.) */
Test(large, the_smallest_cached_ranges_go_first)
{
    churn();
    void *blk[4];
    static const size_t sz[4] = {8 * MiB, 4 * MiB, 2 * MiB, 4 * MiB};
    carve(blk, sz, 4);
    pf_large_free(span_of(blk[0]));
    pf_large_free(span_of(blk[2])); /* two ranges, 8 and 2 MiB, live blocks after each */
    cr_assert_eq(pf_large_cached_bytes(), 10 * MiB);
    /* Fresh (aligned): live 20 MiB, the peak 20, so 25 in all and 5 cached. */
    void *e = pf_large_alloc(pf_family_large(), 12 * MiB, 2 * MiB, 0);
    cr_assert_not_null(e);
    cr_assert_eq(pf_large_cached_bytes(), 5 * MiB);
    struct pf_os_counts c0 = counts();
    void *f = pf_large_alloc(pf_family_large(), 5 * MiB, 0, 0);
    struct pf_os_counts c1 = counts();
    cr_assert_eq(f, blk[0], "the 8 MiB range kept its front");
    cr_assert_eq(c1.mremap_calls, c0.mremap_calls, "the range did not have to grow");
    cr_assert_eq(block_maps(c0, c1), 0);
    cr_assert_eq(pf_large_cached_bytes(), 0);
    pf_large_free(span_of(f));
    pf_large_free(span_of(e));
    pf_large_free(span_of(blk[1]));
    pf_large_free(span_of(blk[3]));
}

Test(large, cache_is_bounded_in_bytes_and_ranges)
{
    struct pf_family *f = pf_family_large();
    churn();
    void *big = pf_large_alloc(f, PF_LARGE_CACHE_MAX + MiB, 0, 0);
    uint64_t before = data_bytes();
    pf_large_free(span_of(big));
    cr_assert_eq(pf_large_cached_bytes(), 0, "a block above the cache's size is not kept");
    cr_assert_eq(before - data_bytes(), PF_LARGE_CACHE_MAX + MiB, "and is unmapped at once");

    /* Every other block freed: no two are neighbours, each takes a range. */
    enum { N = 2 * PF_LARGE_CACHE_RANGES + 20 };
    static void *s[N];
    static size_t sz[N];
    for (int i = 0; i < N; i++)
        sz[i] = 50 * pf_os_page_size();
    carve(s, sz, N);
    for (int i = 0; i < N; i += 2)
        pf_large_free(span_of(s[i]));
    cr_assert_eq(pf_large_cached_bytes(), PF_LARGE_CACHE_RANGES * sz[0], "one range a slot, the rest unmapped");
    for (int i = 1; i < N; i += 2)
        pf_large_free(span_of(s[i]));
}

Test(large, a_block_used_once_is_not_held)
{
    struct pf_family *f = pf_family_large();
    void *hold = pf_large_alloc(f, 2 * MiB, 0, 0);
    void *once = pf_large_alloc(f, 16 * MiB, 0, 0);
    uint64_t before = data_bytes();
    pf_large_free(span_of(once));
    cr_assert_eq(pf_large_cached_bytes(), 0, "few large blocks so far: no more is cached than is live");
    cr_assert_eq(before - data_bytes(), 16 * MiB);
    void *small = pf_large_alloc(f, MiB, 0, 0);
    pf_large_free(span_of(small));
    cr_assert_eq(pf_large_cached_bytes(), MiB, "a block within the live bytes is kept");
    pf_large_free(span_of(hold));
}

/* A program that builds a buffer, frees it and builds another (a block
 * made after one was freed) gets the next one back from the cache: every
 * round of such a program faulted its whole buffer in again until its
 * eighth large block (realloc_peak, ten rounds to 90 MB: 185 K -> 47 K
 * page faults, 2.4 -> 1.2 s, the same peak RSS). */
Test(large, a_block_made_after_one_was_freed_is_kept_for_the_next)
{
    struct pf_family *f = pf_family_large();
    char *a = pf_large_alloc(f, 16 * MiB, 0, 0);
    memset(a, 0x11, 16 * MiB);
    pf_large_free(span_of(a));
    cr_assert_eq(pf_large_cached_bytes(), 0, "the first buffer, freed: nothing says it will be made again");
    char *b = pf_large_alloc(f, 16 * MiB, 0, 0);
    memset(b, 0x22, 16 * MiB);
    pf_large_free(span_of(b));
    cr_assert_eq(pf_large_cached_bytes(), 16 * MiB, "a buffer made again after a free is kept");
    struct pf_os_counts c0 = counts();
    char *c = pf_large_alloc(f, 16 * MiB, 0, 0);
    cr_assert_eq(c, b, "the next one is the kept range");
    cr_assert_eq(block_maps(c0, counts()), 0, "no new mapping");
    cr_assert_eq(pf_large_cached_bytes(), 0);
    pf_large_free(span_of(c));
}

Test(large, unused_ranges_decay, .timeout = 30)
{
    struct pf_family *f = pf_family_large();
    churn();
    void *old = pf_large_alloc(f, 4 * MiB, 0, 0);
    void *gap = pf_large_alloc(f, MiB, 0, 0); /* keeps the freed blocks apart */
    void *young = pf_large_alloc(f, 2 * MiB, 0, 0);
    void *later = pf_large_alloc(f, 3 * MiB, 0, 0);
    pf_large_free(span_of(old));
    cr_assert_eq(pf_large_cached_bytes(), 4 * MiB);
    sleep(PF_LARGE_DECAY_SECONDS + 1);
    uint64_t before = data_bytes();
    pf_large_free(span_of(young));
    cr_assert_eq(pf_large_cached_bytes(), 2 * MiB, "a free unmaps the range unused for long");
    cr_assert_eq(before - data_bytes(), 4 * MiB);

    /* With no large free at all, allocation activity (a thread cache's
     * refill calls the tick) lets the cache decay too. */
    pf_large_tick();
    cr_assert_eq(pf_large_cached_bytes(), 2 * MiB, "the young range stays");
    sleep(PF_LARGE_DECAY_SECONDS + 1);
    before = data_bytes();
    pf_large_tick();
    cr_assert_eq(pf_large_cached_bytes(), 0);
    cr_assert_eq(before - data_bytes(), 2 * MiB);
    pf_large_free(span_of(gap));
    pf_large_free(span_of(later));
}

Test(large, realloc_grows_and_shrinks_with_mremap)
{
    struct pf_family *f = pf_family_large();
    size_t n0 = 256 << 10;
    unsigned char *p = pf_large_alloc(f, n0, 0, 0);
    for (size_t i = 0; i < n0; i++)
        p[i] = (unsigned char)(i * 31 + 7);
    struct pf_span *s = span_of(p);
    struct pf_os_counts c0 = counts();

    size_t n1 = 64 * MiB;
    unsigned char *q = pf_large_realloc(s, n1);
    cr_assert_not_null(q);
    struct pf_os_counts c1 = counts();
    cr_assert_eq(c1.mremap_calls, c0.mremap_calls + 1, "grown with one mremap");
    /* No mapping for the block itself (a pagemap leaf may be mapped for
     * where mremap moved it). */
    cr_assert(block_maps(c0, c1) == 0,
              "no new mapping and no copy: %zu mmap calls, metadata %zu -> %zu",
              (size_t)(c1.mmap_calls - c0.mmap_calls), (size_t)c0.metadata_bytes,
              (size_t)c1.metadata_bytes);
    for (size_t i = 0; i < n0; i++)
        if (q[i] != (unsigned char)(i * 31 + 7))
            cr_assert_fail("byte %zu lost in the move", i);
    cr_assert(all_zero(q + n0, n1 - n0), "the grown part reads as zero");
    cr_assert_eq(span_of(q), s);
    cr_assert_eq(s->bytes, n1);
    cr_assert_eq(s->req, n1);
    cr_assert_eq((c1.mapped_bytes - c1.metadata_bytes) - (c0.mapped_bytes - c0.metadata_bytes),
                 n1 - n0);
    cr_assert_eq(f->mapped, n1);
    cr_assert_eq(f->live_bytes, n1);
    cr_assert_eq(f->req_in - f->req_out, n1);
    cr_assert_eq(f->allocs, 1);
    if (q != p) {
        struct pf_span *old = pf_pagemap_get(p);
        cr_assert(old == NULL || old == PF_PM_FREED_LARGE(p), "the old start no longer names the block");
    }
    memset(q + n1 - 4096, 0x42, 4096);

    /* Shrink: the prefix stays, the figures follow. */
    size_t n2 = 200000;
    unsigned char *r = pf_large_realloc(s, n2);
    cr_assert_eq(r, q, "shrinking never moves");
    cr_assert_eq(counts().mremap_calls, c1.mremap_calls + 1);
    for (size_t i = 0; i < n0 && i < n2; i++)
        if (r[i] != (unsigned char)(i * 31 + 7))
            cr_assert_fail("byte %zu lost in the shrink", i);
    cr_assert_eq(s->req, n2);
    cr_assert_eq(f->mapped, s->bytes);
    cr_assert_eq(f->live_bytes, s->bytes);
    cr_assert_eq(f->req_in - f->req_out, n2);
    cr_assert_eq(data_bytes(), (c1.mapped_bytes - c1.metadata_bytes) - (n1 - s->bytes));

    /* Same rounded size: no syscall at all. */
    uint64_t mr = counts().mremap_calls;
    cr_assert_eq(pf_large_realloc(s, n2 + 1), r);
    cr_assert_eq(counts().mremap_calls, mr);
    cr_assert_eq(f->req_in - f->req_out, n2 + 1);
    pf_large_free(s);
    cr_assert_eq(f->live_bytes, 0);
    cr_assert_eq(f->req_in, f->req_out);
}

Test(large, realloc_copies_every_usable_byte_of_a_block_that_spans_two_mappings)
{
    /* A block carved from coalesced ranges can span mappings the kernel
     * keeps apart; mremap refuses to move such a block as one. Make one:
     * the second half mapped again with other flags. The request is a
     * little under 8 MiB: every usable byte, up to 8 MiB, must be copied. */
    struct pf_family *f = pf_family_large();
    unsigned char *p = pf_large_alloc(f, 8 * MiB - 1000, 0, 0);
    for (size_t i = 0; i < 4 * MiB; i++)
        p[i] = (unsigned char)(i * 13 + 1);
    void *half = mmap(p + 4 * MiB, 4 * MiB, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    cr_assert_eq(half, (void *)(p + 4 * MiB));
    memset(half, 0x5A, 4 * MiB);
    struct pf_os_counts c0 = counts();
    unsigned char *q = pf_large_realloc(span_of(p), 16 * MiB);
    cr_assert_not_null(q, "realloc must not fail where a copy can serve");
    cr_assert_eq(block_maps(c0, counts()), 1, "a new mapping, copied into");
    for (size_t i = 0; i < 4 * MiB; i++)
        if (q[i] != (unsigned char)(i * 13 + 1))
            cr_assert_fail("byte %zu lost in the copy", i);
    for (size_t i = 4 * MiB; i < 8 * MiB; i++)
        if (q[i] != 0x5A)
            cr_assert_fail("byte %zu lost in the copy", i);
    cr_assert(all_zero(q + 8 * MiB, 8 * MiB));
    cr_assert_eq(span_of(q)->bytes, 16 * MiB);
    cr_assert_eq(f->live_bytes, 16 * MiB);
    struct pf_span *old = pf_pagemap_get(p);
    cr_assert(old == NULL || old == PF_PM_FREED_LARGE(p), "the old start no longer names the block");
    pf_large_free(span_of(q));
}

Test(large, realloc_grows_into_the_cached_range_after_it)
{
    /* A freed range right after a block: the block grows into it with no
     * syscall, its pages already mapped, and it leaves the cache. */
    struct pf_family *f = pf_family_large();
    churn();
    void *blk[2];
    static const size_t sz[2] = {MiB, 16 * MiB};
    carve(blk, sz, 2);
    unsigned char *p = blk[0];
    memset(p, 0x31, MiB);
    pf_large_free(span_of(blk[1]));
    cr_assert_eq(pf_large_cached_bytes(), 16 * MiB);
    struct pf_os_counts c0 = counts();
    unsigned char *q = pf_large_realloc(span_of(p), 5 * MiB);
    cr_assert_eq(q, p, "grown where it is");
    struct pf_os_counts c1 = counts();
    cr_assert_eq(c1.mmap_calls + c1.mremap_calls + c1.munmap_calls,
                 c0.mmap_calls + c0.mremap_calls + c0.munmap_calls, "no syscall");
    cr_assert_eq(pf_large_cached_bytes(), 12 * MiB, "the growth came out of the cache");
    cr_assert_eq(data_bytes(), c0.mapped_bytes - c0.metadata_bytes, "nothing mapped or unmapped");
    for (size_t i = 0; i < MiB; i++)
        if (q[i] != 0x31)
            cr_assert_fail("byte %zu lost", i);
    memset(q, 0x32, 5 * MiB);
    cr_assert_eq(span_of(q)->bytes, 5 * MiB);
    cr_assert_eq(f->live_bytes, 5 * MiB);
    cr_assert_eq(f->mapped, 5 * MiB);
    cr_assert_eq(f->req_in - f->req_out, 5 * MiB);
    /* What would stay is less than a chunk: the block takes it all. */
    q = pf_large_realloc(span_of(q), 17 * MiB - 1000 - PF_CHUNK / 2);
    cr_assert_eq(q, p);
    cr_assert_eq(pf_large_cached_bytes(), 0);
    cr_assert_eq(span_of(q)->bytes, 17 * MiB);
    cr_assert_eq(f->live_bytes, 17 * MiB);
    memset(q, 0x33, 17 * MiB);
    pf_large_free(span_of(q));
}

Test(large, realloc_growing_elsewhere_sheds_as_much_of_the_cache)
{
    /* B can grow neither in place (A follows it) nor into the cache (the
     * cached range is not its neighbour): it moves, and its new pages are
     * matched by cached ones given back, so live and cached bytes together
     * do not grow. */
    churn();
    void *blk[3];
    static const size_t sz[3] = {2 * MiB, MiB, 16 * MiB};
    carve(blk, sz, 3);
    pf_large_free(span_of(blk[2]));
    cr_assert_eq(pf_large_cached_bytes(), 16 * MiB);
    uint64_t before = data_bytes();
    unsigned char *q = pf_large_realloc(span_of(blk[0]), 10 * MiB);
    cr_assert_not_null(q);
    cr_assert_neq(q, blk[0], "moved");
    cr_assert_eq(pf_large_cached_bytes(), 8 * MiB, "8 MiB grown, 8 MiB of the cache given back");
    cr_assert_eq(data_bytes(), before);
    memset(q, 0x44, 10 * MiB);
    pf_large_free(span_of(q));
    pf_large_free(span_of(blk[1]));
}

Test(large, realloc_growth_gives_back_warm_spans_beyond_the_pool_limit)
{
    /* Empty small spans beyond PFALLOC_CACHE stay warm for a while, for a
     * wave of small objects coming back; a block growing into fresh pages
     * meanwhile makes them give theirs back, as a fresh span does. */
    pf_span_set_cache_limit(PF_CHUNK);
    struct pf_span *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = pf_span_get(1); /* one chunk each */
    for (int i = 0; i < 3; i++) {
        int clean;
        void *p = pf_span_take(s[i], &clean);
        memset(p, 0xAB, s[i]->slot_size);
        s[i]->state[0] = PF_SLOT_DIRTY;
        pf_span_give(s[i], 0);
        pf_span_put(s[i]);
    }
    cr_assert_eq(pf_span_cached_bytes(), 3 * PF_CHUNK, "warm beyond the limit, for now");
    void *p = pf_large_alloc(pf_family_large(), MiB, 0, 0);
    unsigned char *q = pf_large_realloc(span_of(p), 8 * MiB);
    cr_assert_not_null(q);
    memset(q, 0x55, 8 * MiB);
    cr_assert_leq(pf_span_cached_bytes(), PF_CHUNK, "the growth made the warm excess go");
    pf_large_free(span_of(q));
}

Test(large, trim_empties_the_cache)
{
    struct pf_family *f = pf_family_large();
    void *hold = pf_large_alloc(f, 32 * MiB, 0, 0);
    cr_assert_not_null(hold);
    void *p[4];
    size_t sizes[4] = {MiB, 2 * MiB, 300000, 5 * MiB};
    size_t cached = 0;
    for (int i = 0; i < 4; i++)
        p[i] = pf_large_alloc(f, sizes[i], 0, 0);
    for (int i = 0; i < 4; i++) {
        cached += span_of(p[i])->bytes;
        pf_large_free(span_of(p[i]));
    }
    cr_assert_eq(pf_large_cached_bytes(), cached);
    struct pf_os_counts c0 = counts();
    cr_assert_eq(pf_large_trim(), cached);
    struct pf_os_counts c1 = counts();
    cr_assert_eq(pf_large_cached_bytes(), 0);
    cr_assert_geq(c1.munmap_calls - c0.munmap_calls, 1);
    cr_assert_leq(c1.munmap_calls - c0.munmap_calls, 4, "one call a range (neighbours may have joined)");
    cr_assert_eq(c0.mapped_bytes - c1.mapped_bytes, cached);
    cr_assert_eq(pf_large_trim(), 0, "nothing left");
    /* After trim a request maps afresh. */
    void *q = pf_large_alloc(f, MiB, 0, 1);
    cr_assert_not_null(q);
    cr_assert_eq(block_maps(c1, counts()), 1);
    cr_assert(all_zero(q, MiB));
}
