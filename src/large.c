/*
 * large.c — large blocks. Every block is a fresh mapping, so it reads as
 * zero; realloc grows and shrinks with mremap, which moves page tables
 * instead of copying bytes. The span struct is unpublished (pagemap entry
 * set to the freed-large tombstone) before the mapping goes away, so a
 * second free of the same pointer is named a double free.
 */
#include "large.h"

#include <errno.h>

static size_t round_pages(size_t n)
{
    size_t ps = pf_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

void *pf_large_alloc(struct pf_family *f, size_t req, size_t align)
{
    /* At least a chunk, so no two blocks start in the same chunk. */
    size_t bytes = round_pages(req < PF_CHUNK ? PF_CHUNK : req);
    if (bytes < req || req > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    struct pf_span *s = pf_span_meta_new();
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = pf_os_map(bytes, align);
    if (!p || pf_pagemap_set(p, 1, s) != 0) {
        if (p)
            pf_os_unmap(p, bytes);
        pf_span_meta_free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->start = (uintptr_t)p;
    s->bytes = bytes;
    s->req = req;
    s->kind = PF_SPAN_LARGE;
    s->family = f;
    s->slot_size = 0;
    s->nslots = 1;
    s->used = 1;
    pf_family_add_large(f, s);
    return p;
}

void pf_large_free(struct pf_span *s)
{
    int saved = errno;
    void *p = (void *)s->start;
    pf_family_remove_large(s->family, s);
    pf_pagemap_set(p, 1, PF_PM_FREED_LARGE);
    pf_os_unmap(p, s->bytes);
    pf_span_meta_free(s);
    errno = saved;
}

void *pf_large_realloc(struct pf_span *s, size_t req)
{
    size_t bytes = round_pages(req < PF_CHUNK ? PF_CHUNK : req);
    if (bytes < req || req > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t old_bytes = s->bytes, old_req = s->req;
    void *old = (void *)s->start;
    if (bytes != old_bytes) {
        void *p = pf_os_remap(old, old_bytes, bytes, 1);
        if (!p) {
            errno = ENOMEM;
            return NULL;
        }
        if (p != old) {
            if (pf_pagemap_set(p, 1, s) != 0) { /* leaf unavailable: undo */
                pf_os_remap(p, bytes, old_bytes, 1);
                errno = ENOMEM;
                return NULL;
            }
            /* Only clear the old entry if no other block now starts there. */
            if (((uintptr_t)old >> PF_CHUNK_SHIFT) != ((uintptr_t)p >> PF_CHUNK_SHIFT) &&
                pf_pagemap_get(old) == s)
                pf_pagemap_set(old, 1, PF_PM_FREED_LARGE);
        }
        s->start = (uintptr_t)p;
        s->bytes = bytes;
    }
    s->req = req;
    pf_family_resize_large(s->family, s, old_bytes, old_req);
    return (void *)s->start;
}
