/*
 * guard.c — the checking mode's memory that faults (see guard.h).
 * Large blocks: mapped through the large-block layer with one more page,
 * made PROT_NONE; the block ends as close to it as its alignment allows.
 * The program's pointer is then not the span's start, so an open-addressing
 * table (linear probing, deletion by moving the rest of a run back) maps it
 * to its entry. Zero-size cells: a bitmap over a PROT_NONE reserve, taken
 * next-fit so a freed cell is reused only after the cursor went round.
 * The last GONE_SLOTS blocks released are remembered (pointer, pages,
 * family, site), so that a second free of one is still named.
 * guard_lock guards the table, the bitmap and that ring; under it no other
 * lock is taken and no syscall made.
 */
#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "family.h"
#include "large.h"
#include "lock.h"

#define BIG_SLOTS (1u << 16)
#define BIG_MAX (BIG_SLOTS / 4 * 3) /* beyond this load, blocks are plain */
#define GONE_SLOTS 256 /* released blocks remembered */
#define ZERO_CELLS (1u << 20)
#define ZERO_BYTES ((size_t)ZERO_CELLS * 16)

static pf_lock_t guard_lock = PF_LOCK_INIT;
static struct pf_guarded *bigs; /* BIG_SLOTS entries */
static uint32_t nbigs;          /* entries in use, and reserved for blocks being made */
static uintptr_t zero_base;     /* ZERO_BYTES of PROT_NONE */
static uint64_t *zero_bits;     /* bit set: cell live */
static uint32_t *zero_sites;    /* call-site id per cell */
static uint32_t zero_next;      /* next cell to try */

/* A guarded block released (given back to the large layer). */
struct gone {
    uintptr_t p;         /* what the program got; 0: empty */
    uintptr_t start;     /* its span's start: [start, start + room) were its bytes */
    size_t room;
    struct pf_family *f;
    uint32_t site;
};
static struct gone *gone;  /* GONE_SLOTS entries */
static uint32_t gone_next; /* entries ever written; the newest is gone_next - 1 */

/* ---- the table --------------------------------------------------------------- */
static uint32_t hash(uintptr_t p)
{
    return (uint32_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> 48) & (BIG_SLOTS - 1);
}

/* Under guard_lock. */
static struct pf_guarded *find(uintptr_t p)
{
    for (uint32_t i = hash(p);; i = (i + 1) & (BIG_SLOTS - 1)) {
        if (bigs[i].p == p)
            return &bigs[i];
        if (bigs[i].p == 0)
            return NULL;
    }
}

/* Under guard_lock; a place was reserved in nbigs. */
static void insert(const struct pf_guarded *g)
{
    uint32_t i = hash(g->p);
    while (bigs[i].p)
        i = (i + 1) & (BIG_SLOTS - 1);
    bigs[i] = *g;
}

/* Under guard_lock: removes e, moving later entries of its run back. */
static void remove_entry(struct pf_guarded *e)
{
    uint32_t i = (uint32_t)(e - bigs);
    for (uint32_t j = i;;) {
        j = (j + 1) & (BIG_SLOTS - 1);
        if (bigs[j].p == 0)
            break;
        uint32_t h = hash(bigs[j].p);
        if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
            continue; /* still reachable from its home */
        bigs[i] = bigs[j];
        i = j;
    }
    bigs[i].p = 0;
    nbigs--;
}

static void reserve(int delta)
{
    pf_lock(&guard_lock);
    nbigs = (uint32_t)((int)nbigs + delta);
    pf_unlock(&guard_lock);
}

/* ---- large blocks -------------------------------------------------------------- */
void *pf_guard_alloc(size_t n, size_t align, int zero, struct pf_family *f, size_t canary_min,
                     uint8_t canary)
{
    size_t ps = pf_os_page_size();
    size_t body = (n + canary_min + 15) & ~(size_t)15;
    size_t room = (body + ps - 1) & ~(ps - 1);
    /* Any alignment is the large layer's to serve or refuse (ENOMEM), as
     * outside this mode: a bound of 1 GiB here made the mode refuse with
     * EINVAL what the default mode and glibc serve. */
    if (body < n || room < body || room + ps < room) {
        errno = ENOMEM;
        return NULL;
    }
    if (!f)
        f = pf_family_large();
    pf_lock(&guard_lock);
    int table = nbigs < BIG_MAX;
    nbigs += (uint32_t)table;
    pf_unlock(&guard_lock);
    if (!table)
        return pf_large_alloc(f, n, align, zero);
    void *m = pf_large_alloc(f, room + ps, align, zero);
    struct pf_span *s = m ? pf_pagemap_get(m) : NULL;
    if (!s) {
        reserve(-1);
        return NULL;
    }
    struct pf_guarded g = {0, s, n, room, 0, 0};
    g.p = s->start + ((room - body) & ~(uintptr_t)(align - 1));
    memset((void *)(g.p + n), canary, s->start + room - g.p - n);
    /* Without the guard (the kernel's map count exhausted) the canary
     * still finds a short overflow. */
    pf_os_protect((void *)(s->start + room), ps, 0);
    /* Counted as what the program asked for, not the padded block. */
    size_t total = s->req;
    s->req = n;
    pf_family_resize_large(f, s, s->bytes, total);
    pf_lock(&guard_lock);
    insert(&g);
    pf_unlock(&guard_lock);
    return (void *)g.p;
}

int pf_guard_find(uintptr_t p, struct pf_guarded *g, int mark_freed)
{
    if (!bigs)
        return 0;
    pf_lock(&guard_lock);
    struct pf_guarded *e = find(p);
    if (e) {
        *g = *e;
        if (mark_freed)
            e->freed = 1;
    }
    pf_unlock(&guard_lock);
    return e != NULL;
}

int pf_guard_seal(const struct pf_guarded *g)
{
    return pf_os_protect((void *)g->s->start, g->room, 0) == 0;
}

void pf_guard_release(const struct pf_guarded *g)
{
    pf_os_protect((void *)g->s->start, g->room + pf_os_page_size(), 1);
    pf_lock(&guard_lock);
    struct pf_guarded *e = find(g->p);
    if (e) {
        /* Blocks above the quarantine's share leave it at once: without
         * this, their second free found no entry and was "a pointer
         * pfalloc never returned". */
        gone[gone_next++ % GONE_SLOTS] = (struct gone){e->p, e->s->start, e->room, e->s->family, e->site};
        remove_entry(e);
    }
    pf_unlock(&guard_lock);
    pf_large_free(g->s);
}

int pf_guard_owner(uintptr_t p, int released, struct pf_guard_owner *o)
{
    if (!bigs)
        return 0;
    int found = 0;
    pf_lock(&guard_lock);
    /* A fatal path: a walk of the whole table is no cost. */
    for (uint32_t i = 0; i < BIG_SLOTS && !found; i++) {
        const struct pf_guarded *e = &bigs[i];
        if (e->p && p >= e->p && p < e->s->start + e->room) {
            *o = (struct pf_guard_owner){e->p, e->s->family, e->site, e->freed};
            found = 1;
        }
    }
    for (uint32_t k = 1; released && k <= GONE_SLOTS && k <= gone_next && !found; k++) {
        const struct gone *r = &gone[(gone_next - k) % GONE_SLOTS];
        if (p >= r->p && p < r->start + r->room) {
            *o = (struct pf_guard_owner){r->p, r->f, r->site, 1};
            found = 1;
        }
    }
    pf_unlock(&guard_lock);
    return found;
}

void pf_guard_each_live(void (*fn)(const struct pf_guarded *g))
{
    for (uint32_t i = 0; i < BIG_SLOTS; i++) {
        pf_lock(&guard_lock);
        struct pf_guarded g = bigs[i];
        pf_unlock(&guard_lock);
        if (g.p && !g.freed)
            fn(&g);
    }
}

/* ---- zero-size cells ------------------------------------------------------------- */
void *pf_guard_zero_take(void)
{
    void *r = NULL;
    pf_lock(&guard_lock);
    uint32_t w0 = zero_next / 64, nw = ZERO_CELLS / 64;
    for (uint32_t k = 0; k < nw; k++) {
        uint32_t w = (w0 + k) % nw;
        if (zero_bits[w] != ~0ull) {
            unsigned bit = (unsigned)__builtin_ctzll(~zero_bits[w]);
            zero_bits[w] |= 1ull << bit;
            uint32_t cell = w * 64 + bit;
            zero_sites[cell] = 0;
            zero_next = (cell + 1) % ZERO_CELLS;
            r = (void *)(zero_base + (uintptr_t)cell * 16);
            break;
        }
    }
    pf_unlock(&guard_lock);
    return r;
}

int pf_guard_is_zero(uintptr_t p)
{
    return zero_base && p - zero_base < ZERO_BYTES;
}

int pf_guard_zero_live(uintptr_t p, uint32_t *site, int take)
{
    uint32_t cell = (uint32_t)((p - zero_base) / 16);
    pf_lock(&guard_lock);
    int live = (p & 15) == 0 && (zero_bits[cell / 64] >> (cell % 64) & 1);
    *site = zero_sites[cell];
    if (live && take)
        zero_bits[cell / 64] &= ~(1ull << (cell % 64));
    pf_unlock(&guard_lock);
    return live;
}

/* The lock, waited for (tries 0), or 0 when it stays taken through that
 * many tries. */
static int lock_guard_tries(int tries)
{
    if (!tries) {
        pf_lock(&guard_lock);
        return 1;
    }
    return pf_lock_try(&guard_lock, tries);
}

/* The lock, or (in_signal) 0 when it is taken. */
static int lock_guard(int in_signal)
{
    return lock_guard_tries(in_signal ? 2000 : 0);
}

int64_t pf_guard_zero_count(int in_signal)
{
    return pf_guard_zero_count_tries(in_signal ? 2000 : 0);
}

int64_t pf_guard_zero_count_tries(int tries)
{
    int64_t n = 0;
    if (!zero_bits)
        return 0;
    if (!lock_guard_tries(tries))
        return -1;
    for (uint32_t w = 0; w < ZERO_CELLS / 64; w++)
        n += __builtin_popcountll(zero_bits[w]);
    pf_unlock(&guard_lock);
    return n;
}

int pf_guard_zero_each(void (*fn)(uint32_t *site, uintptr_t p, void *ctx), void *ctx, int in_signal)
{
    if (!zero_bits)
        return 0;
    if (!lock_guard(in_signal))
        return -1;
    for (uint32_t w = 0; w < ZERO_CELLS / 64; w++)
        for (uint64_t bits = zero_bits[w]; bits; bits &= bits - 1) {
            uint32_t cell = w * 64 + (uint32_t)__builtin_ctzll(bits);
            fn(&zero_sites[cell], zero_base + (uintptr_t)cell * 16, ctx);
        }
    pf_unlock(&guard_lock);
    return 0;
}

int pf_guard_set_site(uintptr_t p, uint32_t id)
{
    int done = 0;
    pf_lock(&guard_lock);
    if (pf_guard_is_zero(p)) {
        zero_sites[(p - zero_base) / 16] = id;
        done = 1;
    } else if (bigs) {
        struct pf_guarded *e = find(p);
        if (e) {
            e->site = id;
            done = 1;
        }
    }
    pf_unlock(&guard_lock);
    return done;
}

/* ---- set-up ------------------------------------------------------------------------ */
/* Taken by alloc.c's fork handlers (through check.c) after the family
 * locks, in a process that has threads: the leak walk takes this lock while
 * it holds the family locks, so a prepare handler that took it first would
 * wait for the walk while the walk waited for it. */
void pf_guard_fork_lock(void)
{
    pf_lock(&guard_lock);
}

void pf_guard_fork_unlock(int child)
{
    child ? pf_lock_reset(&guard_lock) : pf_unlock(&guard_lock);
}

int pf_guard_init(void)
{
    struct pf_guarded *t = pf_os_map_meta(sizeof(struct pf_guarded) * BIG_SLOTS);
    uint64_t *bits = pf_os_map_meta(ZERO_CELLS / 8 + sizeof(uint32_t) * ZERO_CELLS);
    struct gone *r = pf_os_map_meta(sizeof(struct gone) * GONE_SLOTS);
    void *z = pf_os_reserve(ZERO_BYTES);
    if (!t || !bits || !r || !z)
        return -1;
    gone = r;
    zero_bits = bits;
    zero_sites = (uint32_t *)((char *)bits + ZERO_CELLS / 8);
    zero_base = (uintptr_t)z;
    bigs = t;
    return 0;
}
