/*
 * large.c — large blocks. Every block is a fresh mapping, so it reads as
 * zero; realloc grows and shrinks with mremap, which moves page tables
 * instead of copying bytes. The span struct is unpublished (pagemap entry
 * set to the freed-large tombstone) before the mapping goes away, so a
 * second free of the same pointer is named a double free.
 */
#include "large.h"

#include <errno.h>
#include <string.h>

#define CACHE_SLOTS 16
#define CACHE_BLOCK_MAX ((size_t)32 << 20)
#define CACHE_TOTAL_MAX ((size_t)64 << 20)

struct cached {
    void *p;
    size_t bytes;
};

static pf_lock_t cache_lock = PF_LOCK_INIT;
static struct cached cache[CACHE_SLOTS]; /* p == NULL: empty */
static size_t cache_bytes;

/* A cached mapping resized to `bytes`, or NULL. The smallest one at least
 * that big is taken whole (its tail given back with mremap when it is more
 * than twice the size); failing that, the biggest smaller one grows with mremap, so only
 * its new pages fault. */
static void *cache_take(size_t bytes, size_t *got)
{
    pf_lock(&cache_lock);
    int ge = -1, lt = -1;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (!cache[i].p)
            continue;
        if (cache[i].bytes >= bytes) {
            if (ge < 0 || cache[i].bytes < cache[ge].bytes)
                ge = i;
        } else if (lt < 0 || cache[i].bytes > cache[lt].bytes) {
            lt = i;
        }
    }
    int pick = ge >= 0 ? ge : lt;
    struct cached c = {NULL, 0};
    if (pick >= 0) {
        c = cache[pick];
        cache_bytes -= c.bytes;
        cache[pick].p = NULL;
    }
    pf_unlock(&cache_lock);
    if (!c.p)
        return NULL;
    if (c.bytes >= bytes && c.bytes / 2 <= bytes) {
        *got = c.bytes; /* up to twice the size: handed out whole, no syscall */
        return c.p;
    }
    void *p = pf_os_remap(c.p, c.bytes, bytes, c.bytes < bytes);
    if (!p)
        pf_os_unmap(c.p, c.bytes);
    *got = bytes;
    return p;
}

/* Keeps a freed block when the cache stays within CACHE_TOTAL_MAX and within
 * the bytes of large blocks still live: a program that churns large blocks
 * gets them back without page faults, one that used a few once and moved on
 * does not keep them resident. */
static int cache_put(void *p, size_t bytes, size_t live)
{
    if (bytes > CACHE_BLOCK_MAX)
        return 0;
    size_t limit = live < CACHE_TOTAL_MAX ? live : CACHE_TOTAL_MAX;
    int kept = 0;
    pf_lock(&cache_lock);
    if (cache_bytes + bytes <= limit)
        for (int i = 0; i < CACHE_SLOTS && !kept; i++)
            if (!cache[i].p) {
                cache[i].p = p;
                cache[i].bytes = bytes;
                cache_bytes += bytes;
                kept = 1;
            }
    pf_unlock(&cache_lock);
    return kept;
}

size_t pf_large_trim(void)
{
    struct cached out[CACHE_SLOTS];
    int n = 0;
    pf_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].p) {
            out[n++] = cache[i];
            cache[i].p = NULL;
        }
    cache_bytes = 0;
    pf_unlock(&cache_lock);
    size_t released = 0;
    for (int i = 0; i < n; i++) {
        pf_os_unmap(out[i].p, out[i].bytes);
        released += out[i].bytes;
    }
    return released;
}

size_t pf_large_cached_bytes(void)
{
    return __atomic_load_n(&cache_bytes, __ATOMIC_RELAXED);
}

void pf_large_fork_lock(void)
{
    pf_lock(&cache_lock);
}

void pf_large_fork_unlock(int child)
{
    child ? pf_lock_reset(&cache_lock) : pf_unlock(&cache_lock);
}

static size_t round_pages(size_t n)
{
    size_t ps = pf_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

void *pf_large_alloc(struct pf_family *f, size_t req, size_t align, int zero)
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
    void *p = NULL;
    if (align <= pf_os_page_size() && (p = cache_take(bytes, &bytes)) != NULL && zero)
        memset(p, 0, req);
    if (!p)
        p = pf_os_map(bytes, align);
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
    if (!cache_put(p, s->bytes, PF_RELAXED_GET(pf_family_large()->live_bytes)))
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
