/*
 * introspect.c — glibc's malloc introspection and tuning calls, answered
 * with pfalloc's figures: mallinfo/mallinfo2 (fields mapped as below),
 * malloc_stats (pfalloc's families table on stderr), malloc_info (XML in
 * glibc's shape with the families inside), malloc_trim (really releases),
 * mallopt (accepted; M_TRIM_THRESHOLD sets the empty-span cache bound, the
 * rest is ignored with success, as glibc ignores what it does not know, but
 * an M_MXFAST glibc would refuse returns 0 as there).
 *   arena    = bytes of small spans and of the empty spans and freed large
 *              blocks kept for reuse     uordblks = live small slot bytes
 *   fordblks = arena - uordblks          hblks/hblkhd = large blocks, bytes
 *   keepcost = bytes of empty spans and freed large blocks kept for reuse
 *   ordblks  = families
 * so that, as in glibc, uordblks + fordblks == arena and keepcost <= fordblks.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "../include/pfalloc.h"
#include "fmt.h"
#include "large.h"
#include "os.h"
#include "span.h"
#include "stats.h"

#define EXPORT __attribute__((visibility("default")))

/* The figures are summed over the registry itself, one family at a time,
 * never over pf_stats_get's fam[]: that holds PF_STATS_FAMILIES_MAX
 * families, and the size classes and "large" of a program that made more
 * typed families than that came after the cut (mallinfo missed every
 * malloc). Lock-free, like pf_stats_get, and nothing mapped. */
static int family_shown(const struct pf_family_stats *f)
{
    return f->allocs != 0 || f->spans != 0; /* as pf_stats_get lists them */
}

/* The mallinfo figures of every family. */
static struct mallinfo2 info_now(void)
{
    struct mallinfo2 m;
    memset(&m, 0, sizeof(m));
    for (uint32_t i = 0, n = pf_family_count(); i < n; i++) {
        struct pf_family_stats f;
        pf_stats_family(pf_family_at(i), &f);
        if (!family_shown(&f))
            continue;
        if (f.kind == PF_KIND_LARGE) {
            m.hblks += f.live_objects;
            m.hblkhd += f.mapped_bytes;
            continue;
        }
        m.arena += f.mapped_bytes;
        m.uordblks += f.live_bytes;
        m.ordblks++;
    }
    struct pf_os_counts oc;
    pf_os_counts(&oc);
    /* What is kept for reuse is held free: in the arena, beside the spans. */
    m.keepcost = pf_span_cached_bytes() + pf_large_cached_bytes();
    m.arena += m.keepcost;
    m.fordblks = m.arena > m.uordblks ? m.arena - m.uordblks : 0;
    m.usmblks = oc.peak_mapped_bytes;
    return m;
}

EXPORT struct mallinfo2 mallinfo2(void)
{
    return info_now();
}

static int clamp(size_t v)
{
    return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

static struct mallinfo info_int(void)
{
    struct mallinfo2 m2 = info_now();
    struct mallinfo m;
    m.arena = clamp(m2.arena);
    m.ordblks = clamp(m2.ordblks);
    m.smblks = clamp(m2.smblks);
    m.hblks = clamp(m2.hblks);
    m.hblkhd = clamp(m2.hblkhd);
    m.usmblks = clamp(m2.usmblks);
    m.fsmblks = clamp(m2.fsmblks);
    m.uordblks = clamp(m2.uordblks);
    m.fordblks = clamp(m2.fordblks);
    m.keepcost = clamp(m2.keepcost);
    return m;
}

EXPORT struct mallinfo mallinfo(void)
{
    return info_int();
}

/* glibc's own name for mallinfo, which it exports too. */
EXPORT struct mallinfo __libc_mallinfo(void);
EXPORT struct mallinfo __libc_mallinfo(void)
{
    return info_int();
}

EXPORT void malloc_stats(void)
{
    pf_print_totals(2);
    pf_print_families(2);
}

EXPORT int malloc_trim(size_t pad)
{
    (void)pad;
    return pf_trim() > 0;
}

static int set_option(int param, int value)
{
    /* The one value glibc refuses: fast bins past its largest size,
     * 80 * sizeof(size_t) / 4 bytes (pfalloc has none to set). */
    if (param == M_MXFAST)
        return value >= 0 && (size_t)value <= 80 * sizeof(size_t) / 4;
    if (param == M_TRIM_THRESHOLD && value >= 0)
        pf_span_set_cache_limit((size_t)value);
    return 1;
}

EXPORT int mallopt(int param, int value)
{
    return set_option(param, value);
}

/* glibc's own name for mallopt, which it exports too. */
EXPORT int __libc_mallopt(int param, int value);
EXPORT int __libc_mallopt(int param, int value)
{
    return set_option(param, value);
}

static void attr(struct pf_fmt *f, const char *name, uint64_t v)
{
    pf_fmt_char(f, ' ');
    pf_fmt_str(f, name);
    pf_fmt_str(f, "=\"");
    pf_fmt_u64(f, v);
    pf_fmt_char(f, '"');
}

EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0 || !fp) {
        errno = EINVAL;
        return -1;
    }
    /* The XML lives in a mapping of this call's own, so no lock is held
     * while the caller's stream is written (a thread holding the FILE's
     * lock may be waiting in malloc), and it grows to whatever the families
     * need: every family is listed, however many there are. */
    struct mallinfo2 m = info_now();
    struct pf_os_counts oc;
    pf_os_counts(&oc);
    char first[4096];
    struct pf_fmt f;
    pf_fmt_init_grow(&f, first, sizeof(first), 0, -1);
    pf_fmt_str(&f, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    uint64_t free_count = 0;
    uint32_t nfam = pf_family_count();
    for (uint32_t i = 0; i < nfam; i++) {
        struct pf_family_stats fs;
        const struct pf_family_stats *s = &fs;
        pf_stats_family(pf_family_at(i), &fs);
        if (!family_shown(s) || s->kind != PF_KIND_CLASS || s->slot_size == 0)
            continue;
        uint64_t free_slots = s->mapped_bytes / s->slot_size;
        free_slots = free_slots > s->live_objects ? free_slots - s->live_objects : 0;
        free_count += free_slots;
        pf_fmt_str(&f, "  <size");
        attr(&f, "from", s->slot_size);
        attr(&f, "to", s->slot_size);
        attr(&f, "total", free_slots * s->slot_size);
        attr(&f, "count", free_slots);
        pf_fmt_str(&f, "/>\n");
    }
    pf_fmt_str(&f, "</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\"");
    attr(&f, "count", free_count);
    attr(&f, "size", m.fordblks);
    pf_fmt_str(&f, "/>\n<system type=\"current\"");
    attr(&f, "size", oc.mapped_bytes);
    pf_fmt_str(&f, "/>\n<system type=\"max\"");
    attr(&f, "size", oc.peak_mapped_bytes);
    pf_fmt_str(&f, "/>\n<aspace type=\"total\"");
    attr(&f, "size", oc.mapped_bytes);
    pf_fmt_str(&f, "/>\n<aspace type=\"mprotect\"");
    attr(&f, "size", oc.mapped_bytes);
    pf_fmt_str(&f, "/>\n<pfalloc>\n");
    for (uint32_t i = 0; i < nfam; i++) {
        struct pf_family_stats fs;
        const struct pf_family_stats *s = &fs;
        pf_stats_family(pf_family_at(i), &fs);
        if (!family_shown(s))
            continue;
        static const char *const kinds[] = {"class", "typed", "large"};
        pf_fmt_str(&f, "  <family name=\"");
        pf_fmt_xml_attr(&f, s->name);
        pf_fmt_str(&f, "\" kind=\"");
        pf_fmt_str(&f, s->kind < 3 ? kinds[s->kind] : "?");
        pf_fmt_char(&f, '"');
        attr(&f, "slot_size", s->slot_size);
        attr(&f, "live_objects", s->live_objects);
        attr(&f, "live_bytes", s->live_bytes);
        attr(&f, "spans", s->spans);
        attr(&f, "mapped_bytes", s->mapped_bytes);
        attr(&f, "peak_live_bytes", s->peak_live_bytes);
        attr(&f, "allocs", s->allocs);
        attr(&f, "frees", s->frees);
        pf_fmt_str(&f, "/>\n");
    }
    pf_fmt_str(&f, "</pfalloc>\n</heap>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\"");
    attr(&f, "count", free_count);
    attr(&f, "size", m.fordblks);
    pf_fmt_str(&f, "/>\n<total type=\"mmap\"");
    attr(&f, "count", m.hblks);
    attr(&f, "size", m.hblkhd);
    pf_fmt_str(&f, "/>\n<system type=\"current\"");
    attr(&f, "size", oc.mapped_bytes);
    pf_fmt_str(&f, "/>\n<system type=\"max\"");
    attr(&f, "size", oc.peak_mapped_bytes);
    pf_fmt_str(&f, "/>\n<aspace type=\"total\"");
    attr(&f, "size", oc.mapped_bytes);
    pf_fmt_str(&f, "/>\n<aspace type=\"mprotect\"");
    attr(&f, "size", oc.mapped_bytes);
    pf_fmt_str(&f, "/>\n</malloc>\n");
    int rc = -1;
    if (f.truncated)
        errno = ENOMEM; /* no mapping for the rest: no XML rather than a cut one */
    else
        rc = fwrite(f.buf, 1, f.len, fp) == f.len ? 0 : -1;
    if (f.mapped)
        pf_os_unmap_meta(f.buf, f.cap);
    return rc;
}
