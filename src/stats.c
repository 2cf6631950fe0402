/*
 * stats.c — counters into plain structs. No I/O, no lock, no allocation:
 * pf_stats_get may run inside a signal handler that interrupted malloc, so
 * everything is read with relaxed loads from structures that are never
 * freed (families, thread caches). When threads are busy the snapshot may be
 * slightly inconsistent; when the program is quiet it is exact:
 *   live_objects == allocs - frees,  live_bytes == live_objects * slot (class)
 */
#include "stats.h"

#include <errno.h>
#include <string.h>

#include "large.h"
#include "tcache.h"

/* Class c's counters summed over every thread cache: allocs, frees, net
 * requested bytes. One class at a time, so that pf_stats_get, which a
 * signal handler may call on a small alternate stack, keeps no table of
 * every class's sums on the stack. */
static void class_sums(unsigned c, uint64_t sums[3])
{
    sums[0] = sums[1] = sums[2] = 0;
    for (struct pf_tcache *t = pf_tcache_first(); t; t = t->next_all) {
        const struct pf_bin *b = &t->bins[c];
        uint64_t a = PF_RELAXED_GET(b->allocs), f = PF_RELAXED_GET(b->frees);
        sums[0] += a;
        sums[1] += f;
        /* net: wraps, sums right */
        sums[2] += pf_bin_req(b->live_base, a, f, PF_RELAXED_GET(b->states));
    }
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

void pf_stats_family(const struct pf_family *f, struct pf_family_stats *o)
{
    memset(o, 0, sizeof(*o));
    memcpy(o->name, f->name, PF_NAME_MAX);
    o->name[PF_NAME_MAX - 1] = 0;
    o->kind = f->kind;
    o->id = f->id;
    o->slot_size = f->kind == PF_KIND_LARGE ? 0 : f->obj_size;
    uint64_t allocs = PF_RELAXED_GET(f->allocs), frees = PF_RELAXED_GET(f->frees);
    uint64_t rin = PF_RELAXED_GET(f->req_in), rout = PF_RELAXED_GET(f->req_out);
    if (f->kind == PF_KIND_CLASS) {
        uint64_t sums[3];
        class_sums(pf_size_class(f->obj_size), sums);
        allocs += sums[0];
        frees += sums[1];
        rin += sums[2];
    }
    o->allocs = allocs;
    o->frees = frees;
    o->live_objects = sub0(allocs, frees);
    o->live_requested = rin - rout > (uint64_t)INT64_MAX ? 0 : rin - rout;
    /* A class's live objects hold a slot each, but for the checking
     * mode's zero-size cells, which hold none. */
    o->live_bytes = f->kind == PF_KIND_CLASS ? sub0(o->live_objects, PF_RELAXED_GET(f->cells)) * f->obj_size
                                             : PF_RELAXED_GET(f->live_bytes);
    o->spans = PF_RELAXED_GET(f->spans);
    o->mapped_bytes = PF_RELAXED_GET(f->mapped);
    /* A typed array of n objects requests exactly n * size bytes. */
    o->live_elements = f->kind == PF_KIND_TYPED && f->obj_size ? o->live_requested / f->obj_size
                                                                : o->live_objects;
    o->peak_live_bytes = PF_RELAXED_GET(f->peak);
    if (o->peak_live_bytes < o->live_bytes)
        o->peak_live_bytes = o->live_bytes;
}

uint64_t pf_stats_live_objects(void)
{
    uint64_t n = 0;
    for (uint32_t i = 0, nf = pf_family_count(); i < nf; i++) {
        struct pf_family_stats fs;
        pf_stats_family(pf_family_at(i), &fs);
        n += fs.live_objects;
    }
    return n;
}

int pf_stats_get(struct pf_stats *out)
{
    if (!out) {
        errno = EINVAL;
        return -1;
    }
    memset(&out->totals, 0, sizeof(out->totals));
    out->version = PF_STATS_VERSION;
    out->nfamilies = 0;
    out->truncated = 0;
    out->reserved = 0;
    struct pf_totals *t = &out->totals;
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++) {
        struct pf_family_stats fs;
        pf_stats_family(pf_family_at(i), &fs);
        t->live_objects += fs.live_objects;
        t->live_bytes += fs.live_bytes;
        t->live_requested += fs.live_requested;
        t->allocs += fs.allocs;
        t->frees += fs.frees;
        if (fs.allocs == 0 && fs.spans == 0)
            continue;
        if (out->nfamilies < PF_STATS_FAMILIES_MAX)
            out->fam[out->nfamilies++] = fs;
        else
            out->truncated = 1;
    }
    struct pf_os_counts oc;
    pf_os_counts(&oc);
    t->mapped_bytes = oc.mapped_bytes;
    t->peak_mapped_bytes = oc.peak_mapped_bytes;
    t->metadata_bytes = oc.metadata_bytes;
    t->mmap_calls = oc.mmap_calls;
    t->munmap_calls = oc.munmap_calls;
    t->madvise_calls = oc.madvise_calls;
    t->mremap_calls = oc.mremap_calls;
    pf_os_resident(&t->resident_bytes, &t->metadata_resident_bytes);
    t->cached_bytes = pf_span_cached_bytes() + pf_large_cached_bytes();
    t->families = n;
    for (struct pf_tcache *c = pf_tcache_first(); c; c = c->next_all)
        t->threads += atomic_load_explicit(&c->in_use, memory_order_relaxed) != 0;
    return 0;
}

long pf_family_spans(const char *name, struct pf_family_stats *st, struct pf_span_info *out,
                     size_t cap)
{
    struct pf_family *f = name ? pf_family_find(name) : NULL;
    if (!f)
        return -1;
    long count = 0;
    pf_lock(&f->lock);
    for (struct pf_span *s = f->all; s; s = s->anext, count++) {
        if ((size_t)count >= cap)
            continue;
        struct pf_span_info *i = &out[count];
        i->first = s->start;
        i->bytes = s->bytes;
        i->slot_size = s->kind == PF_SPAN_LARGE ? (uint32_t)(s->bytes > UINT32_MAX ? UINT32_MAX : s->bytes)
                                                : s->slot_size;
        i->slots = s->nslots;
        i->used = s->used;
        i->largest_free_run = s->kind == PF_SPAN_LARGE ? 0 : pf_span_largest_free_run(s);
    }
    pf_unlock(&f->lock);
    if (st)
        pf_stats_family(f, st);
    return count;
}
