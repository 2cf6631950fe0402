/*
 * test_family.c — the registry and the per-family slow paths: class
 * families named "malloc-<slot>" on first use, the large family, typed
 * families by key pointer and by name ("<name>/<size>" when a name comes
 * back with another size), span listings with their figures, refill/flush
 * keeping out_bytes exact and one empty span per class, a cache's own spans
 * (slots that come back to them wait for it, on its home list of at most
 * PF_HOME_MAX), the locked path's counters, and trim.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "family.h"
#include "os.h"
#include "tcache.h"

#include "faults.h"

static struct pf_family *class_family_named(unsigned cls)
{
    char name[32];
    snprintf(name, sizeof name, "malloc-%u", pf_class_size[cls]);
    return pf_family_find(name);
}

Test(family, class_families_are_named_malloc_slot_after_first_use)
{
    uint32_t n0 = pf_family_count();
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        cr_assert_null(class_family_named(c), "class %u registered before any use", c);
        void *p = pf_malloc(pf_class_size[c]);
        cr_assert_not_null(p);
        struct pf_family *f = class_family_named(c);
        cr_assert_not_null(f, "class %u: no family named malloc-%u", c, pf_class_size[c]);
        cr_assert_eq(f, pf_family_class(c));
        cr_assert_eq(f->kind, PF_KIND_CLASS);
        cr_assert_eq(f->obj_size, pf_class_size[c]);
        cr_assert_eq(pf_family_count(), n0 + c + 1, "registry grows by one per new family");
        cr_assert_eq(pf_family_at(f->id), f);
        pf_free(p);
        pf_free(pf_malloc(pf_class_size[c]));
        cr_assert_eq(pf_family_count(), n0 + c + 1, "a family is registered once");
    }
    for (uint32_t i = 0; i < pf_family_count(); i++)
        cr_assert_eq(pf_family_at(i)->id, i);
}

Test(family, large_family)
{
    uint32_t n0 = pf_family_count();
    struct pf_family *f = pf_family_large();
    cr_assert_str_eq(f->name, "large");
    cr_assert_eq(f->kind, PF_KIND_LARGE);
    cr_assert_eq(pf_family_find("large"), f);
    cr_assert_eq(pf_family_large(), f);
    cr_assert_eq(pf_family_count(), n0 + 1);
}

Test(family, typed_by_key_pointer_and_by_name)
{
    static const char key1[] = "struct order";
    char key2[] = "struct order"; /* same name, another address */
    uint32_t n0 = pf_family_count();
    cr_assert_null(pf_family_find("struct order"));

    struct pf_family *f1 = pf_family_typed(key1, 48, 8);
    cr_assert_not_null(f1);
    cr_assert_str_eq(f1->name, "struct order");
    cr_assert_eq(f1->kind, PF_KIND_TYPED);
    cr_assert_eq(f1->obj_size, 48);
    cr_assert_geq(f1->obj_align, 16);
    cr_assert_eq(pf_family_find("struct order"), f1);
    cr_assert_eq(pf_family_count(), n0 + 1);

    cr_assert_eq(pf_family_typed(key1, 48, 8), f1, "same key pointer, same family");
    cr_assert_eq(pf_family_typed(key2, 48, 8), f1, "same name from another site, same family");
    cr_assert_eq(pf_family_count(), n0 + 1);
    cr_assert_eq((pf_family_t *)pf_family_get("struct order", 48), f1);

    /* The same name with another size: a family of its own. */
    struct pf_family *f2 = pf_family_typed(key1, 64, 8);
    cr_assert_not_null(f2);
    cr_assert_neq(f2, f1);
    cr_assert_str_eq(f2->name, "struct order/64");
    cr_assert_eq(f2->kind, PF_KIND_TYPED);
    cr_assert_eq(f2->obj_size, 64);
    cr_assert_eq(pf_family_find("struct order/64"), f2);
    cr_assert_eq(pf_family_find("struct order"), f1);
    cr_assert_eq(pf_family_count(), n0 + 2);
    cr_assert_eq(pf_family_typed(key2, 64, 8), f2);
    cr_assert_eq(pf_family_typed(key1, 64, 8), f2);
    cr_assert_eq(pf_family_typed(key1, 48, 8), f1);
    cr_assert_eq(pf_family_count(), n0 + 2);

    errno = 0;
    cr_assert_null(pf_family_get("struct order", 50));
    cr_assert_eq(errno, EINVAL);

    /* A type's alignment is kept when it exceeds 16. */
    struct pf_family *f3 = pf_family_typed("struct wide", 128, 64);
    cr_assert_eq(f3->obj_align, 64);
    cr_assert_neq(f3, f1);
}

Test(family, typed_name_never_lands_in_a_class_family)
{
    pf_free(pf_malloc(64));
    struct pf_family *cls = pf_family_find("malloc-64");
    cr_assert_not_null(cls);
    struct pf_family *t = pf_family_typed("malloc-64", 64, 16);
    cr_assert_not_null(t);
    cr_assert_neq(t, cls);
    cr_assert_eq(t->kind, PF_KIND_TYPED);
    cr_assert_str_eq(t->name, "malloc-64/64");
    cr_assert_eq(pf_family_find("malloc-64"), cls);
    cr_assert_null(pf_family_get("malloc-64", 64), "a class family is not a typed one");
}

/* ---- spans of a family ---------------------------------------------------------- */
static void free_locked(void *p)
{
    struct pf_span *s = pf_pagemap_get(p);
    uint32_t idx = pf_span_index(s, (uintptr_t)p - s->start);
    uint32_t st = s->state[idx];
    cr_assert_geq(st, PF_SLOT_LIVE);
    s->state[idx] = PF_SLOT_DIRTY;
    pf_family_free_locked(s, idx, pf_state_req(s->slot_size, st));
}

Test(family, spans_lists_a_known_family_and_refuses_an_unknown_one)
{
    struct pf_span_info info[4];
    struct pf_family_stats st;
    cr_assert_eq(pf_family_spans("no such family", &st, info, 4), -1);
    cr_assert_eq(pf_family_spans(NULL, &st, info, 4), -1);

    const char *name = "struct probe";
    struct pf_family *f = pf_family_typed(name, 64, 16);
    unsigned cls = pf_size_class(64);
    size_t span_bytes = pf_class_span_bytes(cls);
    uint32_t slots = (uint32_t)(span_bytes / 64);
    cr_assert_eq(pf_family_spans(name, &st, info, 4), 0);
    cr_assert_eq(st.allocs, 0);

    static void *p[2048];
    for (int i = 0; i < 100; i++) {
        int clean = 0;
        p[i] = pf_family_alloc_locked(f, cls, 60, &clean);
        cr_assert_not_null(p[i]);
        cr_assert(clean, "first use of a fresh span is clean");
    }
    memset(info, 0xEE, sizeof info);
    cr_assert_eq(pf_family_spans(name, &st, info, 4), 1);
    struct pf_span *s = pf_pagemap_get(p[0]);
    cr_assert_eq(s->family, f);
    cr_assert_eq(info[0].first, s->start);
    cr_assert_eq(info[0].bytes, span_bytes);
    cr_assert_eq(info[0].slot_size, 64);
    cr_assert_eq(info[0].slots, slots);
    cr_assert_eq(info[0].used, 100);
    cr_assert_eq(info[0].largest_free_run, slots - 100);
    cr_assert_str_eq(st.name, name);
    cr_assert_eq(st.kind, PF_KIND_TYPED);
    cr_assert_eq(st.slot_size, 64);
    cr_assert_eq(st.allocs, 100);
    cr_assert_eq(st.frees, 0);
    cr_assert_eq(st.live_objects, 100);
    cr_assert_eq(st.live_bytes, 100 * 64);
    cr_assert_eq(st.live_requested, 100 * 60);
    cr_assert_eq(st.spans, 1);
    cr_assert_eq(st.mapped_bytes, span_bytes);
    cr_assert_eq(st.peak_live_bytes, 100 * 64);

    /* Free a run of ten in the middle. */
    for (int i = 10; i < 20; i++)
        free_locked(p[i]);
    cr_assert_eq(pf_family_spans(name, &st, info, 4), 1);
    cr_assert_eq(info[0].used, 90);
    cr_assert_eq(info[0].largest_free_run, slots - 100);
    cr_assert_eq(st.frees, 10);
    cr_assert_eq(st.live_objects, 90);
    cr_assert_eq(st.live_bytes, 90 * 64);
    cr_assert_eq(st.live_requested, 90 * 60);
    cr_assert_eq(st.peak_live_bytes, 100 * 64, "the peak stays");

    /* Fill past one span: the family holds two; cap limits what is copied. */
    for (int i = 100; i < 100 + (int)slots; i++)
        p[i] = pf_family_alloc_locked(f, cls, 64, &(int){0});
    memset(info, 0xEE, sizeof info);
    cr_assert_eq(pf_family_spans(name, &st, info, 1), 2);
    cr_assert_eq(info[1].slots, 0xEEEEEEEEu, "nothing is written beyond cap");
    cr_assert_eq(pf_family_spans(name, NULL, NULL, 0), 2);
    cr_assert_eq(pf_family_spans(name, &st, info, 4), 2);
    cr_assert_eq(info[0].used + info[1].used, 90 + slots);
    cr_assert_eq(st.spans, 2);
    cr_assert_eq(st.mapped_bytes, 2 * span_bytes);
    cr_assert_eq(st.live_objects, 90 + slots);
    cr_assert(info[0].first != info[1].first);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(info[i].first % PF_CHUNK, 0);
}

Test(family, freeing_everything_keeps_one_empty_span_per_class)
{
    struct pf_family *f = pf_family_typed("struct pair", 16, 16);
    unsigned cls = pf_size_class(16);
    uint32_t slots = (uint32_t)(pf_class_span_bytes(cls) / 16);
    static void *p[3 * 4096];
    uint32_t n = 3 * slots;
    for (uint32_t i = 0; i < n; i++)
        p[i] = pf_family_alloc_locked(f, cls, 16, &(int){0});
    cr_assert_eq(f->spans, 3);
    for (uint32_t i = 0; i < n; i++)
        free_locked(p[i]);
    cr_assert_eq(f->spans, 1, "one empty span stays for ping-pong, the rest go to the pool");
    cr_assert_eq(f->mapped, pf_class_span_bytes(cls));
    cr_assert_eq(pf_span_cached_bytes(), 2 * pf_class_span_bytes(cls));
    cr_assert_eq(f->live_bytes, 0);
    cr_assert_eq(f->allocs, n);
    cr_assert_eq(f->frees, n);
    cr_assert_eq(f->req_in, f->req_out);
    pf_family_trim();
    cr_assert_eq(f->spans, 0, "trim releases the kept empty span");
    cr_assert_eq(f->mapped, 0);
    cr_assert_eq(pf_span_cached_bytes(), 3 * pf_class_span_bytes(cls));
}

/* ---- refill and flush ------------------------------------------------------------ */
Test(family, refill_and_flush_move_slots_and_keep_out_bytes)
{
    unsigned cls = pf_size_class(64);
    struct pf_family *f = pf_family_class(cls);
    static struct pf_cached buf[64];
    struct pf_own cur = {0}; /* the spans this "cache" owns */
    int n = pf_family_refill(f, cls, buf, 64, &cur);
    cr_assert_eq(n, 64);
    cr_assert_not_null(pf_family_find("malloc-64"), "refill registers the family");
    cr_assert_eq(f->out_bytes, 64 * 64);
    struct pf_span *s = pf_pagemap_get(buf[0].p);
    cr_assert_eq(cur.cur, s, "the cache owns the span it refilled from");
    cr_assert_eq(s->owner, &cur);
    cr_assert_eq(s->family, f);
    cr_assert_eq(s->used, 64);
    cr_assert_not(s->listed, "an owned span is off the partial list");
    for (int i = 0; i < n; i++) {
        struct pf_span *si = pf_pagemap_get(buf[i].p);
        cr_assert_eq(si, s);
        uint32_t idx = pf_span_index(s, (uintptr_t)buf[i].p - s->start);
        cr_assert_eq((uintptr_t)idx * 64, (uintptr_t)buf[i].p - s->start);
        cr_assert_eq(buf[i].state, &s->state[idx], "each slot comes with its state entry");
        cr_assert_lt(*buf[i].state, PF_SLOT_LIVE, "a cached slot is not live");
        for (int j = 0; j < i; j++)
            cr_assert_neq(buf[i].p, buf[j].p);
    }
    pf_family_flush(f, cls, buf, 20, NULL);
    cr_assert_eq(f->out_bytes, 44 * 64);
    cr_assert_eq(s->used, 44);
    pf_family_flush(f, cls, buf + 20, 44, NULL);
    cr_assert_eq(f->out_bytes, 0);
    cr_assert_eq(s->used, 0);
    cr_assert_eq(f->peak, 64 * 64);
    cr_assert_eq(f->spans, 1);
    cr_assert_eq(cur.cur, s, "an owned span stays owned when it empties");
    /* The flushed slots come back on the next refill, from the same span. */
    n = pf_family_refill(f, cls, buf, 10, &cur);
    cr_assert_eq(n, 10);
    cr_assert_eq(pf_pagemap_get(buf[0].p), s);
    cr_assert_eq(f->out_bytes, 10 * 64);
    cr_assert_eq(f->spans, 1);
    /* Disowned, the span goes back to the family's partial list. */
    pf_family_disown(f, &cur);
    cr_assert_null(cur.cur);
    cr_assert_null(s->owner);
    cr_assert_eq(s->listed, PF_LISTED_PARTIAL);
    cr_assert_eq(f->spans, 1);
    pf_family_flush(f, cls, buf, 10, NULL);
    cr_assert_eq(f->out_bytes, 0);
    cr_assert_eq(f->spans, 1, "the last empty span of a class is kept");
}

Test(family, a_flushed_batch_goes_whole_to_the_next_refill)
{
    unsigned cls = pf_size_class(48);
    struct pf_family *f = pf_family_class(cls);
    static struct pf_cached a[16], got[16], b[1][8];
    struct pf_own cur_a = {0}, cur_b = {0};
    cr_assert_eq(pf_family_refill(f, cls, a, 16, &cur_a), 16);
    struct pf_span *s = cur_a.cur;
    /* Another cache flushes 8 of them (a cross-thread free), as a batch. */
    pf_family_flush(f, cls, a, 8, &cur_b);
    cr_assert_eq(s->used, 16, "a transferred batch does not go back to its span");
    cr_assert_eq(f->out_bytes, 16 * 48, "its slots stay out of the span");
    /* A third cache refills: it gets that batch, as it was, before any span. */
    cr_assert_eq(pf_family_refill(f, cls, got, 16, &cur_b), 8);
    cr_assert_null(cur_b.cur, "no span was claimed");
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(got[i].p, a[i].p);
        cr_assert_eq(got[i].state, a[i].state);
    }
    /* A batch bigger than the refill asks for stays where it is. */
    pf_family_flush(f, cls, got, 8, &cur_b);
    cr_assert_eq(pf_family_refill(f, cls, got, 4, &cur_b), 4);
    cr_assert_not_null(cur_b.cur, "served from a span of its own instead");
    pf_family_flush(f, cls, got, 4, NULL);

    /* The transfer cache holds a bounded number of batches (at least four,
     * at most sixteen); the rest go back to spans. A third cache frees
     * them all, so none is its own. */
    struct pf_own third = {0};
    static struct pf_cached many[8 * 25];
    cr_assert_eq(pf_family_refill(f, cls, many, 40, &cur_b), 8, "the batch held is taken first");
    for (int i = 8; i < 8 * 25; i += 32)
        cr_assert_eq(pf_family_refill(f, cls, many + i, 32, &cur_b), 32);
    uint64_t out = f->out_bytes;
    cr_assert_eq(out, (8 + 8 * 25) * 48);
    int held = 0;
    while (held < 24) {
        pf_family_flush(f, cls, many + 8 * held, 8, &third);
        if (f->out_bytes != out)
            break;
        held++;
    }
    cr_assert(held >= 4 && held <= 16, "%d batches held", held);
    cr_assert_eq(f->out_bytes, out - 8 * 48, "the batch that does not fit goes to its span");
    cr_assert_eq(pf_family_transfer_slots(cls), (uint32_t)held * 8);
    for (int i = held + 1; i < 25; i++)
        pf_family_flush(f, cls, many + 8 * i, 8, NULL);
    /* Trim gives every transferred slot back to its span. */
    pf_family_trim();
    cr_assert_eq(f->out_bytes, 8 * 48, "only the 8 still held by the first cache are out");
    cr_assert_eq(pf_family_refill(f, cls, b[0], 8, &cur_b), 8);
    cr_assert_eq(f->out_bytes, 16 * 48, "and the next refill comes from a span");
}

Test(family, a_batch_bigger_than_half_a_bin_goes_to_its_spans)
{
    /* Trim takes batches back through a buffer of half a bin: a bigger one
     * must never be held, or it would stay in the transfer cache for good. */
    unsigned cls = pf_size_class(112);
    struct pf_family *f = pf_family_class(cls);
    static struct pf_cached big[100];
    struct pf_own cur = {0};
    cr_assert_eq(pf_family_refill(f, cls, big, 100, &cur), 100);
    uint64_t out = f->out_bytes;
    uint32_t held = pf_family_transfer_slots(cls);
    struct pf_own other = {0}; /* freed by another cache */
    pf_family_flush(f, cls, big, 100, &other);
    cr_assert_eq(pf_family_transfer_slots(cls), held, "not held");
    cr_assert_eq(f->out_bytes, out - 100 * 112, "back in their spans");
    pf_family_disown(f, &cur);
}

Test(family, two_caches_refill_from_spans_of_their_own)
{
    unsigned cls = pf_size_class(32);
    struct pf_family *f = pf_family_class(cls);
    static struct pf_cached a[16], b[16];
    struct pf_own cur_a = {0}, cur_b = {0};
    cr_assert_eq(pf_family_refill(f, cls, a, 16, &cur_a), 16);
    cr_assert_eq(pf_family_refill(f, cls, b, 16, &cur_b), 16);
    cr_assert_not_null(cur_a.cur);
    cr_assert_not_null(cur_b.cur);
    cr_assert_neq(cur_a.cur, cur_b.cur, "no two caches share a span to refill from");
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(pf_pagemap_get(a[i].p), cur_a.cur);
        cr_assert_eq(pf_pagemap_get(b[i].p), cur_b.cur);
    }
    cr_assert_eq(f->spans, 2);
    cr_assert_eq(f->out_bytes, 32 * 32);
    /* Slots may be flushed by the other cache (a cross-thread free). */
    pf_family_flush(f, cls, a, 16, NULL);
    pf_family_flush(f, cls, b, 16, NULL);
    cr_assert_eq(cur_a.cur->used, 0);
    cr_assert_eq(cur_b.cur->used, 0);
    cr_assert_eq(f->out_bytes, 0);
    pf_family_disown(f, &cur_a);
    pf_family_disown(f, &cur_b);
    cr_assert_eq(f->spans, 1, "one empty span is kept, the other goes to the pool");
    cr_assert_eq(pf_span_cached_bytes(), pf_class_span_bytes(cls));
}

Test(family, a_batch_mixing_spans_goes_back_to_each_span)
{
    unsigned cls = pf_size_class(96);
    struct pf_family *f = pf_family_class(cls);
    static struct pf_cached a[16], b[16], mix[32];
    struct pf_own cur_a = {0}, cur_b = {0};
    cr_assert_eq(pf_family_refill(f, cls, a, 16, &cur_a), 16);
    cr_assert_eq(pf_family_refill(f, cls, b, 16, &cur_b), 16);
    struct pf_span *sa = cur_a.cur, *sb = cur_b.cur;
    cr_assert_neq(sa, sb);
    uint64_t spans = f->spans;
    /* Runs of one span and single slots, alternating: A A A B A B B B ... */
    int n = 0, ia = 0, ib = 0;
    for (int r = 0; ia < 16 || ib < 16; r++)
        for (int k = 0; k < 1 + r % 3; k++) {
            if (r % 2 == 0 && ia < 16)
                mix[n++] = a[ia++];
            else if (ib < 16)
                mix[n++] = b[ib++];
            else if (ia < 16)
                mix[n++] = a[ia++];
        }
    cr_assert_eq(n, 32);
    pf_family_flush(f, cls, mix, 12, NULL);
    uint32_t a_back = 0, b_back = 0;
    for (int i = 0; i < 12; i++)
        *(pf_pagemap_get(mix[i].p) == sa ? &a_back : &b_back) += 1;
    cr_assert_eq(sa->used, 16 - a_back);
    cr_assert_eq(sb->used, 16 - b_back);
    cr_assert_eq(sa->nfree, a_back);
    cr_assert_eq(sb->nfree, b_back);
    /* Disowned and emptied by the rest: one span is kept, one pooled. */
    pf_family_disown(f, &cur_a);
    pf_family_disown(f, &cur_b);
    pf_family_flush(f, cls, mix + 12, 20, NULL);
    cr_assert_eq(f->out_bytes, 0);
    cr_assert_eq(f->spans, spans - 1, "one empty span is kept, the other goes to the pool");
    struct pf_span *kept = *pf_family_partial(f, cls);
    cr_assert_eq(kept ? kept->used : 1, 0);
}

Test(family, refill_across_spans_and_flush_back)
{
    unsigned cls = PF_NCLASSES - 1;
    struct pf_family *f = pf_family_class(cls);
    /* The family's spans double from one slot's chunks up to the class's
     * size: bytes[k] and slots[k] of its k-th. */
    size_t bytes[4];
    uint32_t slots[4];
    for (int k = 0; k < 4; k++) {
        bytes[k] = pf_class_next_span_bytes(cls, (uint64_t)k);
        slots[k] = (uint32_t)(bytes[k] / pf_class_size[cls]);
    }
    cr_assert(slots[0] >= 1 && bytes[0] < bytes[1] && bytes[2] <= pf_class_span_bytes(cls),
              "a first span holds fewer slots than those after it");
    cr_assert_eq(pf_class_next_span_bytes(cls, 60), pf_class_span_bytes(cls));
    static struct pf_cached buf[64];
    struct pf_own cur = {0};
    int want = (int)(slots[0] + slots[1] + slots[2] / 2);
    int n = pf_family_refill(f, cls, buf, want, &cur);
    cr_assert_eq(n, want);
    cr_assert_eq(f->spans, 3);
    cr_assert_eq(f->mapped, bytes[0] + bytes[1] + bytes[2]);
    cr_assert_eq(f->out_bytes, (uint64_t)want * pf_class_size[cls]);
    cr_assert_eq(cur.cur, pf_pagemap_get(buf[n - 1].p), "the cache owns the span it ended in");
    cr_assert_eq(cur.cur->used, slots[2] / 2);
    for (int i = 0; i < n; i++) {
        struct pf_span *s = pf_pagemap_get(buf[i].p);
        if (s != cur.cur)
            cr_assert_eq(s->used, s->nslots, "spans used up on the way are full");
    }
    struct pf_span_info info[4];
    cr_assert_eq(pf_family_spans(f->name, NULL, info, 4), 3);
    uint32_t used = 0;
    for (int i = 0; i < 3; i++)
        used += info[i].used;
    cr_assert_eq(used, (uint32_t)want);

    /* Refill again: only from the owned span and new ones, never a full one. */
    static struct pf_cached more[8];
    int m = pf_family_refill(f, cls, more, (int)slots[2], &cur);
    cr_assert_eq(m, (int)slots[2]);
    cr_assert_eq(f->spans, 4);
    pf_family_flush(f, cls, more, m, NULL);

    pf_family_flush(f, cls, buf, n, NULL);
    pf_family_disown(f, &cur);
    size_t all = bytes[0] + bytes[1] + bytes[2] + bytes[3];
    cr_assert_eq(f->out_bytes, 0);
    cr_assert_eq(f->spans, 1, "one empty span per class is kept");
    cr_assert_eq(pf_span_cached_bytes() + f->mapped, all);
    pf_family_trim();
    cr_assert_eq(f->spans, 0);
    cr_assert_eq(pf_span_cached_bytes(), all);
}

/* ---- a cache's own spans ------------------------------------------------------- */
/* Refills `own` by `want` slots into out and checks it got them all. */
static void refill_all(struct pf_family *f, unsigned cls, struct pf_cached *out, int want, struct pf_own *own)
{
    cr_assert_eq(pf_family_refill(f, cls, out, want, own), want);
}

Test(family, slots_back_in_a_used_up_span_wait_for_its_owner)
{
    unsigned cls = pf_size_class(1024);
    struct pf_family *f = pf_family_class(cls);
    int per_span = (int)(pf_class_span_bytes(cls) / pf_class_size[cls]);
    cr_assert_leq(per_span, PF_TC_MAX / 2);
    static struct pf_cached a[PF_TC_MAX], a2[PF_TC_MAX], b[8];
    struct pf_own own_a = {0}, own_b = {0};
    refill_all(f, cls, a, per_span, &own_a); /* all of span s1 */
    struct pf_span *s1 = own_a.cur;
    cr_assert_eq(s1->used, (uint32_t)per_span);
    refill_all(f, cls, a2, 4, &own_a); /* s1 is used up: s2 */
    struct pf_span *s2 = own_a.cur;
    cr_assert_neq(s2, s1);
    cr_assert_eq(s1->owner, &own_a, "a used-up span stays its owner's");
    cr_assert_eq(s1->listed, PF_LISTED_NONE);
    /* The owner frees ten of s1's slots: back in s1, not in the transfer
     * cache, and s1 goes on the owner's home list. */
    pf_family_flush(f, cls, a, 10, &own_a);
    cr_assert_eq(pf_family_transfer_slots(cls), 0);
    cr_assert_eq(s1->used, (uint32_t)per_span - 10);
    cr_assert_eq(s1->listed, PF_LISTED_HOME);
    cr_assert_eq(own_a.home, s1);
    cr_assert_eq(own_a.nhome, 1);
    /* Another cache never gets them. */
    refill_all(f, cls, b, 8, &own_b);
    for (int i = 0; i < 8; i++)
        cr_assert_neq(pf_pagemap_get(b[i].p), s1, "another cache took a slot of a span that is not its own");
    /* The owner does, once s2 is used up, before any other span. */
    refill_all(f, cls, a2 + 4, per_span - 4, &own_a);
    cr_assert_eq(s2->used, (uint32_t)per_span);
    uint64_t spans = f->spans;
    refill_all(f, cls, a, 10, &own_a);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(pf_pagemap_get(a[i].p), s1);
    cr_assert_eq(own_a.cur, s1);
    cr_assert_null(own_a.home);
    cr_assert_eq(f->spans, spans, "no span was taken");
    /* Everything back; disowned, the spans are the family's. */
    pf_family_flush(f, cls, a, per_span, &own_a);
    pf_family_flush(f, cls, a2, per_span, &own_a);
    pf_family_flush(f, cls, b, 8, &own_b);
    pf_family_disown(f, &own_a);
    pf_family_disown(f, &own_b);
    cr_assert_eq(f->out_bytes, 0);
    cr_assert_eq(f->spans, 1, "one empty span per class is kept");
    cr_assert_null((*pf_family_partial(f, cls))->owner);
}

/* Two caches, A and B, of the class of `size`, that refilled na and nb
 * slots into a[] and b[] (spans name their owner by address: t stays put). */
struct two {
    unsigned cls;
    struct pf_family *f;
    struct pf_own a, b;
};

static void two_refill(struct two *t, size_t size, struct pf_cached *a, int na, struct pf_cached *b, int nb)
{
    *t = (struct two){.cls = pf_size_class(size)};
    t->f = pf_family_class(t->cls);
    refill_all(t->f, t->cls, a, na, &t->a);
    refill_all(t->f, t->cls, b, nb, &t->b);
}

/* Both disown; every slot must be back by then. */
static void two_done(struct two *t)
{
    pf_family_disown(t->f, &t->a);
    pf_family_disown(t->f, &t->b);
    cr_assert_eq(t->f->out_bytes, 0);
}

/* An owner's flush sends other owners' slots back to their spans, where
 * their owners' refills find them, even when they are most of the batch:
 * in the transfer cache the next refill of any thread took them, and two
 * threads that owned neither could hand such a batch back and forth for
 * good, each flush counting it as travelled (see pf_family_class_shared). */
Test(family, an_owners_flush_sends_other_caches_slots_to_their_spans)
{
    static struct pf_cached a[16], b[16], mix[16];
    struct two t;
    two_refill(&t, 80, a, 16, b, 16);
    unsigned cls = t.cls;
    struct pf_family *f = t.f;
    struct pf_own *own_a = &t.a, *own_b = &t.b;
    struct pf_span *sa = own_a->cur, *sb = own_b->cur;
    /* Cache A frees six of its own blocks and six of B's, interleaved. */
    for (int i = 0; i < 6; i++) {
        mix[2 * i] = a[i];
        mix[2 * i + 1] = b[i];
    }
    uint64_t out = f->out_bytes;
    pf_family_flush(f, cls, mix, 12, own_a);
    cr_assert_eq(sa->used, 10, "A's own six went back to A's span");
    cr_assert_eq(sb->used, 10, "B's six went back to B's span");
    cr_assert_eq(pf_family_transfer_slots(cls), 0, "none waits in the transfer cache");
    cr_assert_eq(f->out_bytes, out - 12 * pf_class_size[cls]);
    /* B's next refill takes them from its span. */
    static struct pf_cached got[6];
    cr_assert_eq(pf_family_refill(f, cls, got, 6, own_b), 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(pf_pagemap_get(got[i].p), sb);
    pf_family_flush(f, cls, got, 6, NULL);
    pf_family_flush(f, cls, a + 6, 10, NULL);
    pf_family_flush(f, cls, b + 6, 10, NULL);
    two_done(&t);
}

Test(family, a_cache_that_holds_no_span_of_the_class_parks_its_whole_batch)
{
    /* A thread that frees a class it never allocated (a consumer) holds
     * only other threads' slots: the batch, from two spans, waits in the
     * transfer cache whole, however it mixes them. */
    static struct pf_cached a[16], b[16], mix[12], got[16];
    struct two t;
    two_refill(&t, 80, a, 16, b, 16);
    struct pf_own none = {0};
    for (int i = 0; i < 6; i++) {
        mix[2 * i] = a[i];
        mix[2 * i + 1] = b[i];
    }
    uint64_t out = t.f->out_bytes;
    pf_family_flush(t.f, t.cls, mix, 12, &none);
    cr_assert_eq(pf_family_transfer_slots(t.cls), 12, "the batch waits whole");
    cr_assert_eq(t.a.cur->used, 16, "A's slots did not go back to A's span");
    cr_assert_eq(t.b.cur->used, 16, "B's slots did not go back to B's span");
    cr_assert_eq(t.f->out_bytes, out, "parked slots are still out of their spans");
    cr_assert_eq(pf_family_refill(t.f, t.cls, got, 16, &t.a), 12, "the next refill takes the batch");
    for (int i = 0; i < 12; i++)
        cr_assert_eq(got[i].p, mix[i].p);
    pf_family_flush(t.f, t.cls, got, 12, NULL);
    pf_family_flush(t.f, t.cls, a + 6, 10, NULL);
    pf_family_flush(t.f, t.cls, b + 6, 10, NULL);
    two_done(&t);
}

Test(family, a_few_foreign_slots_go_back_to_their_span_not_to_the_transfer_cache)
{
    /* A thread that frees mostly its own blocks and a few another thread
     * handed it: a batch place of the transfer cache per few slots would
     * fill it with batches of one (and a refill that takes one gets one
     * slot). */
    static struct pf_cached a[64], b[16], mix[4];
    struct two t;
    two_refill(&t, 176, a, 60, b, 16);
    struct pf_span *sb = t.b.cur;
    for (int k = 0; k < 16; k++) {
        mix[0] = a[3 * k];
        mix[1] = a[3 * k + 1];
        mix[2] = b[k];
        mix[3] = a[3 * k + 2];
        pf_family_flush(t.f, t.cls, mix, 4, &t.a);
    }
    cr_assert_eq(pf_family_transfer_slots(t.cls), 0, "no batch of one in the transfer cache");
    cr_assert_eq(sb->used, 0, "B's slots went back to B's span");
    cr_assert_eq(t.a.cur->used, 60 - 48);
    pf_family_flush(t.f, t.cls, a + 48, 12, &t.a);
    two_done(&t);
}

Test(family, an_owner_keeps_at_most_PF_HOME_MAX_spans_for_itself)
{
    unsigned cls = pf_size_class(2048);
    struct pf_family *f = pf_family_class(cls);
    int per_span = (int)(pf_class_span_bytes(cls) / pf_class_size[cls]);
    enum { SPANS = PF_HOME_MAX + 3 };
    cr_assert_leq(per_span * SPANS, 256);
    static struct pf_cached a[256];
    struct pf_own own = {0};
    for (int k = 0; k < SPANS; k++) /* SPANS spans used up, the last one is cur */
        refill_all(f, cls, a + k * per_span, per_span, &own);
    struct pf_span *sp[SPANS];
    for (int k = 0; k < SPANS; k++) {
        sp[k] = pf_pagemap_get(a[k * per_span].p);
        cr_assert_eq(sp[k]->owner, &own);
    }
    cr_assert_eq(own.cur, sp[SPANS - 1]);
    /* One slot back into each of the others: the first PF_HOME_MAX go home,
     * the rest become the family's, on its partial list. */
    for (int k = 0; k < SPANS - 1; k++)
        pf_family_flush(f, cls, a + k * per_span, 1, &own);
    cr_assert_eq(own.nhome, PF_HOME_MAX);
    for (int k = 0; k < SPANS - 1; k++) {
        if (k < PF_HOME_MAX) {
            cr_assert_eq(sp[k]->owner, &own, "span %d", k);
            cr_assert_eq(sp[k]->listed, PF_LISTED_HOME, "span %d", k);
        } else {
            cr_assert_null(sp[k]->owner, "span %d", k);
            cr_assert_eq(sp[k]->listed, PF_LISTED_PARTIAL, "span %d", k);
        }
    }
    /* A home span that empties is the family's again. */
    pf_family_flush(f, cls, a + 1, per_span - 1, &own);
    cr_assert_null(sp[0]->owner);
    cr_assert_eq(own.nhome, PF_HOME_MAX - 1);
    /* Disowned: every span is the family's, none names the owner. */
    pf_family_disown(f, &own);
    cr_assert_eq(own.nhome, 0);
    cr_assert_null(own.home);
    cr_assert_null(own.cur);
    for (int k = 0; k < SPANS; k++)
        cr_assert(sp[k]->owner == NULL || sp[k]->used == (uint32_t)per_span, "span %d", k);
    for (int k = 1; k < SPANS; k++)
        pf_family_flush(f, cls, a + k * per_span + (k < SPANS - 1), per_span - (k < SPANS - 1), NULL);
    cr_assert_eq(f->out_bytes, 0);
    cr_assert_eq(f->spans, 1);
    cr_assert_null((*pf_family_partial(f, cls))->owner);
}

/* ---- the pagemap's view of cached spans ------------------------------------------- */
static const struct pf_pm_view *view_of(uintptr_t a)
{
    uintptr_t w;
    return pf_pagemap_view_word((const void *)a, &w) ? pf_pagemap_view_entry(w) : NULL;
}

/* n slots of 64 bytes from f on the locked path, in *spans spans: they
 * fill whole spans, so p[k * slots] is the first slot of span k. */
static uint32_t fill_spans(struct pf_family *f, unsigned cls, void **p, struct pf_span **sp, uint32_t nspans)
{
    uint32_t slots = (uint32_t)(pf_class_span_bytes(cls) / 64);
    for (uint32_t i = 0; i < nspans * slots; i++)
        p[i] = pf_family_alloc_locked(f, cls, 64, &(int){0});
    for (uint32_t k = 0; k < nspans; k++)
        sp[k] = pf_pagemap_get(p[k * slots]);
    return nspans * slots;
}

Test(family, a_cached_span_has_a_view_of_its_fields_in_each_chunk_until_it_is_pooled)
{
    unsigned cls = pf_size_class(64);
    struct pf_family *f = pf_family_class(cls);
    static void *p[3 * 4096];
    struct pf_span *sp[3];
    uint32_t n = fill_spans(f, cls, p, sp, 3);
    cr_assert_eq(f->spans, 3);
    for (int k = 0; k < 3; k++)
        for (uintptr_t a = sp[k]->start; a < sp[k]->start + sp[k]->bytes; a += PF_CHUNK) {
            const struct pf_pm_view *v = view_of(a);
            cr_assert_not_null(v, "span %d's chunk %#lx lies outside the view's window", k, (unsigned long)a);
            cr_assert_eq(v->magic, sp[k]->magic, "span %d: the view of each chunk holds its magic", k);
            cr_assert_eq(v->start, sp[k]->start);
            cr_assert_eq(v->state, sp[k]->state);
            cr_assert_eq(v->bin, (uintptr_t)cls * PF_BIN_BYTES);
        }
    for (uint32_t i = 0; i < n; i++)
        free_locked(p[i]);
    pf_family_trim();
    cr_assert_eq(f->spans, 0);
    for (int k = 0; k < 3; k++)
        for (uintptr_t a = sp[k]->start; a < sp[k]->start + sp[k]->bytes; a += PF_CHUNK)
            cr_assert_eq(view_of(a)->magic, 0, "span %d went to the pool with its view set", k);
}

/* A span pooled by a class family and carved again for a typed one (whose
 * frees do not go through caches) must leave no view behind: free's fast
 * path would read the class span's fields and cache the typed object in
 * the thread's bin of that class, uncounted by its family, for the next
 * malloc of that class to hand out. */
Test(family, a_span_carved_again_for_a_typed_family_keeps_no_view_of_its_last_use)
{
    pf_free(pf_malloc(64)); /* this thread's cache: the fast path has a bin with room */
    unsigned cls = pf_size_class(64);
    struct pf_family *f = pf_family_class(cls);
    static void *p[3 * 4096], *q[3 * 4096];
    struct pf_span *sp[3], *tp[3];
    uint32_t n = fill_spans(f, cls, p, sp, 3);
    for (uint32_t i = 0; i < n; i++)
        free_locked(p[i]);
    pf_family_trim();
    struct pf_family *g = pf_family_typed("struct viewed", 64, 16);
    cr_assert_eq(fill_spans(g, cls, q, tp, 3), n);
    int reused = 0;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++)
            reused += tp[k]->start == sp[j]->start;
    cr_assert_gt(reused, 0, "the typed family's spans are the class family's, back from the pool");
    for (uint32_t i = 0; i < n; i++)
        pf_free(q[i]);
    cr_assert_eq(g->frees, n, "every free of a typed object is counted in its family");
    cr_assert_eq(g->live_bytes, 0);
    void *r = pf_malloc(64);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_neq(r, q[i], "malloc handed out a typed object's slot");
    pf_free(r);
}

/* Every class's live state gives back the request it was written for, at
 * both ends of what its slots take (a request the whole slot, and one that
 * wastes as much as a request may), and reads as live: the states of slots
 * up to PF_STATE_REQ_SLOT bytes hold the request, those of bigger ones the
 * waste. */
Test(family, a_live_state_gives_back_its_request_in_every_class)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        uint32_t slot = pf_class_size[c];
        uint32_t least = slot > 65535u - PF_SLOT_LIVE ? slot - (65535u - PF_SLOT_LIVE) : 0;
        uint32_t reqs[] = {slot, slot - 1, least, least + 1, slot / 2 > least ? slot / 2 : least};
        for (unsigned k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
            uint16_t st = pf_state_live(slot, reqs[k]);
            cr_assert_geq(st, PF_SLOT_LIVE, "class %u (%u bytes), request %u: state %u", c, slot, reqs[k], st);
            cr_assert_eq(pf_state_req(slot, st), reqs[k], "class %u (%u bytes): state %u", c, slot, st);
        }
    }
}

Test(family, locked_path_counts_a_class_family)
{
    unsigned cls = pf_size_class(100);
    struct pf_family *f = pf_family_class(cls);
    static void *p[50];
    for (int i = 0; i < 50; i++)
        p[i] = pf_family_alloc_locked(f, cls, 100, &(int){0});
    cr_assert_eq(f->allocs, 50);
    cr_assert_eq(f->out_bytes, 50 * (uint64_t)pf_class_size[cls]);
    cr_assert_eq(pf_family_find(f->name), f);
    for (int i = 0; i < 50; i++) {
        struct pf_span *s = pf_pagemap_get(p[i]);
        uint32_t idx = pf_span_index(s, (uintptr_t)p[i] - s->start);
        cr_assert_eq(s->state[idx], PF_SLOT_LIVE + 100, "a live slot records its request");
        cr_assert_eq(pf_state_req(s->slot_size, s->state[idx]), 100);
    }
    for (int i = 0; i < 25; i++)
        free_locked(p[i]);
    struct pf_family_stats st;
    cr_assert_eq(pf_family_spans(f->name, &st, NULL, 0), 1);
    cr_assert_eq(st.allocs, 50);
    cr_assert_eq(st.frees, 25);
    cr_assert_eq(st.live_objects, 25);
    cr_assert_eq(st.live_bytes, 25 * (uint64_t)pf_class_size[cls]);
    cr_assert_eq(st.live_requested, 25 * 100);
    cr_assert_eq(f->out_bytes, 25 * (uint64_t)pf_class_size[cls]);
}

Test(family, every_class_has_room_in_the_transfer_store)
{
    /* The classes' stretches of the shared store are laid end to end: a
     * store too small for the class table would leave the biggest classes
     * with no transfer cache (their batches would all go back to spans). */
    for (unsigned cls = PF_NCLASSES; cls-- > 0;) {
        struct pf_family *f = pf_family_class(cls);
        int n = (int)(pf_bin_cap_of(cls) / 2);
        if (n < 1)
            n = 1;
        struct pf_cached got[PF_TC_MAX];
        struct pf_own cur = {0}, other = {0};
        cr_assert_eq(pf_family_refill(f, cls, got, n, &cur), n, "class %u", cls);
        pf_family_flush(f, cls, got, n, &other); /* freed by another cache */
        cr_assert_eq(pf_family_transfer_slots(cls), (uint32_t)n, "class %u (%u bytes): batch of %d not held", cls,
                     pf_class_size[cls], n);
        cr_assert_eq(pf_family_refill(f, cls, got, n, &cur), n);
        pf_family_flush(f, cls, got, n, NULL);
        pf_family_disown(f, &cur);
    }
}

/* Typed objects are taken one at a time under the family's lock: a fresh
 * slot names the page it starts on to be made resident as a refill's are
 * (span.h, pf_span_take_many), one page at a time, and a single page is
 * left to fault (pf_os_populate: the call costs more than the fault). `n`
 * objects of `size` bytes from a fresh family: no page of theirs is
 * resident before the program writes them, nor the page past the last
 * one's start, and writing the first bytes of each takes one fault for
 * each page they start on (where perf events count them). */
static void typed_ahead(const char *name, size_t size, int n)
{
    static unsigned char *p[256];
    cr_assert_leq(n, 256);
    memset(p, 0, sizeof p);
    pf_family_t *f = pf_family_get(name, size);
    cr_assert_not_null(f);
    int fd = fault_counter();
    if (fd < 0)
        cr_log_warn("perf events not allowed (%s): pages checked, faults not counted", strerror(errno));
    size_t ps = pf_os_page_size();
    uint64_t pages = 0;
    for (int i = 0; i < n; i++) {
        p[i] = pf_family_alloc(f, 1);
        cr_assert_not_null(p[i]);
        cr_assert_not(page_resident(p[i]), "%s, object %d: its first page resident before it is written", name, i);
        if (i == 0 || ((uintptr_t)p[i] & ~(uintptr_t)(ps - 1)) != ((uintptr_t)p[i - 1] & ~(uintptr_t)(ps - 1)))
            pages++;
    }
    uintptr_t next = ((uintptr_t)p[n - 1] & ~(uintptr_t)(ps - 1)) + ps;
    cr_assert_not(page_resident((void *)next), "%s: the page after the last object's first is resident", name);
    uint64_t f0 = faults(fd);
    for (int i = 0; i < n; i++)
        memset(p[i], 0x5A, 16);
    uint64_t taken = faults(fd) - f0;
    for (int i = 0; i < n; i++)
        pf_free(p[i]);
    if (fd >= 0)
        cr_assert_eq(taken, pages, "%s: %llu page faults writing %d objects on %llu pages", name,
                     (unsigned long long)taken, n, (unsigned long long)pages);
    if (fd >= 0)
        close(fd);
}

Test(family, typed_objects_leave_their_pages_to_fault)
{
    typed_ahead("struct small_ahead", 48, 200); /* 200 objects on 3 pages of one span */
    typed_ahead("struct big_ahead", 100000, 8); /* a page apart from the next one's each */
}
