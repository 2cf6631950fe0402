/*
 * test_guard.c — allocator metadata sits between PROT_NONE guard pages, so
 * no linear overflow from a user mapping (a large block or a region the
 * kernel put just below) can reach it: metadata chunks (families, thread
 * caches, large-span structs), a region's span structs and slot states,
 * pagemap leaves (but the first, which is in the library's data beside
 * level 1) and call-site arrays, each found in /proc/self/maps with an
 * inaccessible page right before and right after its mapping.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "large.h"
#include "os.h"
#include "pagemap.h"
#include "span.h"

struct vma {
    uintptr_t lo, hi;
    char perms[5];
};

/* The mapping holding `a` (perms "" when none). */
static struct vma vma_of(uintptr_t a)
{
    struct vma v = {0, 0, ""};
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert(f != NULL);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3)
            continue;
        if (a >= lo && a < hi) {
            v.lo = lo;
            v.hi = hi;
            memcpy(v.perms, perms, 5);
            break;
        }
    }
    fclose(f);
    return v;
}

static void assert_guarded(const void *p, const char *what)
{
    struct vma v = vma_of((uintptr_t)p);
    cr_assert(v.hi != 0, "%s at %p is not mapped", what, p);
    cr_assert(v.perms[0] == 'r' && v.perms[1] == 'w', "%s: %s", what, v.perms);
    struct vma below = vma_of(v.lo - 1), above = vma_of(v.hi);
    cr_assert(strncmp(below.perms, "---", 3) == 0, "%s [%#lx, %#lx): the page below is '%s', not a guard", what,
              (unsigned long)v.lo, (unsigned long)v.hi, below.perms);
    cr_assert(strncmp(above.perms, "---", 3) == 0, "%s [%#lx, %#lx): the page above is '%s', not a guard", what,
              (unsigned long)v.lo, (unsigned long)v.hi, above.perms);
}

Test(guard, metadata_chunks_have_guards)
{
    assert_guarded(pf_meta_alloc(64), "metadata chunk");
    assert_guarded(pf_meta_alloc(600 << 10), "big metadata block");
    struct pf_span *s = pf_span_meta_new();
    assert_guarded(s, "large span struct");
}

Test(guard, region_metadata_and_pagemap_leaves_have_guards)
{
    pf_span_enable_sites();
    for (unsigned cls = 0; cls < 40; cls += 7) {
        struct pf_span *s = pf_span_get(cls);
        cr_assert_not_null(s);
        assert_guarded(s, "span struct");
        assert_guarded(s->state, "slot states");
        assert_guarded(s->freebits, "free bits");
        if (s->sites)
            assert_guarded(s->sites, "call-site array");
        uintptr_t top = (s->start >> PF_CHUNK_SHIFT) >> PF_PM_LEAF_BITS;
        pf_pm_leaf *leaf = pf_pagemap_leaf(top);
        /* The first leaf is the pagemap's own, in the library's data with
         * level 1 (no mapping of the program's is next to it); the others
         * are mappings between guards. */
        if (leaf == &pf_pagemap.hot)
            cr_assert_eq(top, atomic_load(&pf_pagemap_hot.top));
        else
            assert_guarded(leaf, "pagemap leaf");
    }
    /* A leaf mapped for another 4 GiB. */
    uintptr_t far = (uintptr_t)0x7e0000000000;
    cr_assert_eq(pf_pagemap_set((void *)far, PF_CHUNK, pf_span_meta_new()), 0);
    pf_pm_leaf *leaf = pf_pagemap_leaf((far >> PF_CHUNK_SHIFT) >> PF_PM_LEAF_BITS);
    cr_assert_neq(leaf, &pf_pagemap.hot);
    assert_guarded(leaf, "a second pagemap leaf");
}

Test(guard, a_large_block_below_metadata_overflows_into_a_guard)
{
    /* Metadata mapped, then a data mapping: the kernel usually puts the
     * second right below the first. Whatever it does, the byte after the
     * data mapping is never metadata. */
    for (int i = 0; i < 8; i++) {
        void *meta = pf_os_map_meta(64 << 10);
        char *data = pf_os_map(256 << 10, 0);
        cr_assert(meta && data);
        struct vma next = vma_of((uintptr_t)data + (256 << 10));
        struct vma m = vma_of((uintptr_t)meta);
        cr_assert(next.lo != m.lo, "the byte after a data mapping is metadata");
    }
}

/* A metadata mapping that grows (a report buffer) keeps a guard on each
 * side, and giving it back unmaps only what was its own. */
Test(guard, grown_metadata_mapping_keeps_its_guards)
{
    size_t ps = pf_os_page_size();
    char *p = pf_os_map_meta(ps);
    cr_assert_not_null(p);
    memset(p, 'a', ps);
    size_t size = ps;
    for (int i = 0; i < 6; i++) {
        char *q = pf_os_remap_meta(p, size, size * 4);
        cr_assert_not_null(q);
        for (size_t k = 0; k < size; k++)
            cr_assert_eq(q[k], 'a', "byte %zu lost in the move", k);
        size *= 4;
        memset(q, 'a', size);
        assert_guarded(q, "grown metadata mapping");
        p = q;
    }
    /* A neighbour just below the lower guard stays mapped after the unmap. */
    struct vma v = vma_of((uintptr_t)p);
    struct vma below = vma_of(v.lo - ps - 1);
    pf_os_unmap_meta(p, size);
    if (below.hi)
        cr_assert(vma_of(below.hi - 1).hi != 0, "the mapping below was unmapped too");
    cr_assert_eq(vma_of((uintptr_t)p).hi == 0 || vma_of((uintptr_t)p).perms[0] != 'r', 1);
}
