/*
 * reach.c — the reachability pass: a snapshot of every live object (spans
 * sorted by address, one mark byte per slot), roots gathered before any lock
 * is taken, then, under every family's lock, valgrind memcheck's two passes:
 *   1. from the roots: a pointer to an object's start from a root or from a
 *      reachable object makes it reachable; any other pointer into it (an
 *      interior pointer, or any pointer from a possibly reached object)
 *      makes it possibly reached. Reached objects are scanned in turn.
 *   2. every object still unreached, in address order, leads a clique: the
 *      unreached objects it reaches become indirectly lost (an earlier
 *      leader among them too); leaders left at the end are definitely lost.
 * Exited threads' dynamic TLS blocks are classified but never scanned (see
 * opaque_blocks).
 * Roots come from roots.c. No recursion (an explicit stack), no malloc: all
 * memory is mapped here and given back by pf_reach_release. Out of memory leaves everything
 * unclassified, never a wrong category.
 * Memory that may vanish under the scan — root ranges (another thread's
 * stack is unmapped when it exits, a module's segments when it is closed)
 * and large blocks (moved by a realloc, which takes no family lock, or
 * sealed by the checking mode's quarantine) — is never read in place: it is
 * copied through a bounce buffer with pf_os_read_mem, and a page that
 * cannot be read is skipped. Only small slots (their spans stay while the
 * family locks are held) and the caller's own stack are read in place.
 */
#include "reach.h"

#include <errno.h>
#include <setjmp.h>
#include <string.h>

#include "check.h"
#include "family.h"
#include "guard.h"
#include "lock.h"
#include "roots.h"
#include "span.h"

/* Per-object marks. M_UNKNOWN: live, but the scan was partial and found no
 * chain to its start, so no category can be told. */
enum { M_NONE = 0, M_UNREACHED, M_POSSIBLE, M_REACHABLE, M_INDIRECT, M_UNKNOWN };
/* For the length of one look for a lost cycle's entry (see cycle_entries):
 * a lost object seen, and what it was. */
enum { M_SEEN_UNREACHED = M_UNKNOWN + 1, M_SEEN_INDIRECT };

/* Pages copied per read of memory the pass does not own. Few: the buffer
 * is mapped fresh for each walk, and each of its pages costs a fault when
 * first written, more than a read's syscall (a short-lived process's exit
 * report copies a few hundred KiB of roots). */
#define BOUNCE_PAGES 8
/* Once a walk has copied BOUNCE_GROW bytes, it reads BOUNCE_BIG_PAGES at a
 * time: a program whose roots are hundreds of MB (a compiler's collected
 * heap in mappings of its own) paid a syscall for every 32 KiB. The room
 * keeps the bigger buffer's pages, untouched until then, in front of the
 * small one. */
#define BOUNCE_BIG_PAGES 32
#define BOUNCE_GROW ((size_t)4 << 20)

typedef uintptr_t __attribute__((may_alias)) word_t;

struct ent {
    struct pf_span *s;
    uintptr_t start; /* first slot, or the large block */
    uintptr_t end;   /* past the last slot handed out (small), past the block (large) */
    uint32_t base;   /* mark index of slot 0 */
    uint32_t n;      /* slots in the snapshot: bump (small), 1 (large) */
    uintptr_t first; /* a large block's first word, once read_first set it */
    int read_first;  /* 0: not read yet; 1: first holds it; -1: it could not be read */
};

static struct {
    /* ents, hash and mark lie in one mapping (tables), each from a page
     * boundary */
    void *tables;
    size_t tables_bytes;
    struct ent *ents;
    uint32_t nents;
    uint32_t *hash; /* span -> ent index + 1, open addressing */
    uint32_t hmask;
    uint8_t *mark;
    uint32_t nobj;
    /* A bit per object, set in pass 2 when a lost object other than itself
     * points to its start (see cycle_entries). */
    uint8_t *pointed;
    uint32_t scanning; /* pass 2: the mark index of the object being scanned */
    /* A look for a cycle's entry: the object sought (UINT32_MAX: none),
     * whether it was met, objects seen (logged from the work stack's top
     * down), and whether the look ran out of its budget. */
    uint32_t seek_target, nseen;
    int seek_hit, seek_over;
    uint64_t seen_all; /* objects seen by every look of the pass */
    /* The checking mode's live zero-size cells, in address order, their
     * marks from zbase on; every one lies in [zlo, zhi). */
    uintptr_t *zcells;
    uint32_t nzero, capzero, zbase;
    int zfull;
    uintptr_t zlo, zhi;
    /* Objects classified but never scanned (exited threads' dynamic TLS
     * blocks, see opaque_blocks): their mark indexes, sorted, in the first
     * column of roots.dead_tls. */
    uint32_t nopaque;
    uint32_t *work; /* mark indexes of objects to scan */
    size_t work_bytes;
    uint32_t nwork, capwork;
    uintptr_t lo, hi;             /* every object lies in [lo, hi) */
    uintptr_t large_lo, large_hi; /* every large block lies in [large_lo, large_hi) */
    uint64_t *chunks;             /* a bit per 64 KiB of [lo, hi), or NULL (see chunks_build) */
    struct pf_roots roots;
    struct pf_scratch scratch; /* the room the buffers here and the roots' are taken from */
    uint8_t *bounce; /* BOUNCE_BIG_PAGES pages that memory not owned is copied into */
    size_t bounce_bytes;
    uint8_t *copy_to; /* the part of it a read takes: its last BOUNCE_PAGES, then all of it */
    size_t copy_bytes;
    size_t copied; /* bytes read into it so far */
    long pid;         /* for pf_os_read_mem */
    int vm;           /* 1: pf_os_read_mem works; 0: refused (seccomp) */
    int solo;         /* 1: no other thread can change memory during the scan */
    const char *partial; /* why some memory was left unread; NULL: none was */
    int failed;
    const char *note;
    uint32_t vtable_reads; /* tables read in this run (see VTABLE_READS) */
} r = {.note = "not run"};

/* What vtable_at said of recent addresses (a class's table is asked about
 * for each of its objects), valid in the run that wrote it: the mappings
 * may have changed since (a module unloaded). Runs are counted outside r,
 * which each release clears. */
#define VTABLE_MEMO 1024
PF_BULK static struct {
    uintptr_t v;
    uint32_t run;
    uint8_t yes;
} vtable_memo[VTABLE_MEMO];
static uint32_t reach_runs;

/* Tables read (a system call each) in one run at most: a heap of millions
 * of objects whose first words point to distinct places in read-only
 * data, each kept by a pointer inside it to another such word, would
 * otherwise cost a read each. Past it, an unread table counts as none. */
#define VTABLE_READS 65536

const char *pf_reach_key(enum pf_reach_kind k)
{
    static const char *const keys[] = {"definitely_lost", "indirectly_lost", "possibly_lost",
                                       "still_reachable", "unclassified"};
    return (unsigned)k < PF_REACH_KINDS ? keys[k] : keys[PF_REACH_UNCLASSIFIED];
}

const char *pf_reach_text(enum pf_reach_kind k)
{
    static const char *const texts[] = {"definitely lost", "indirectly lost", "possibly lost",
                                        "still reachable", "unclassified"};
    return (unsigned)k < PF_REACH_KINDS ? texts[k] : texts[PF_REACH_UNCLASSIFIED];
}

/* n bytes rounded up to whole pages. */
static size_t whole_pages(size_t n)
{
    size_t ps = pf_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

static void *map_zeroed(size_t *bytes, size_t want)
{
    return pf_scratch_take(&r.scratch, bytes, want);
}

/* Set by a run at exit (pf_reach_opts.at_exit): what it maps is given up
 * to the process's end, off pfalloc's accounts, instead of unmapped. */
static int forget;

static void unmap(void *p, size_t *bytes)
{
    pf_scratch_give(&r.scratch, p, *bytes, forget);
    *bytes = 0;
}

void pf_reach_release(void)
{
    unmap(r.tables, &r.tables_bytes);
    unmap(r.work, &r.work_bytes);
    unmap(r.bounce, &r.bounce_bytes);
    pf_roots_release(&r.roots, forget);
    pf_scratch_release(&r.scratch, forget);
    const char *note = r.note;
    memset(&r, 0, sizeof(r));
    r.note = note;
}

const char *pf_reach_note(void)
{
    return r.note;
}

/* ---- the snapshot ------------------------------------------------------------- */
static uint32_t hash_slot(const struct pf_span *s)
{
    return (uint32_t)((((uintptr_t)s >> 4) * 0x9E3779B97F4A7C15ull) >> 32) & r.hmask;
}

static uint32_t ent_of_span(const struct pf_span *s)
{
    for (uint32_t h = hash_slot(s);; h = (h + 1) & r.hmask) {
        uint32_t e = r.hash[h];
        if (!e || r.ents[e - 1].s == s)
            return e; /* index + 1, 0: not in the snapshot */
    }
}

/* How long a signal handler waits for a lock: a few thousand yields, so a
 * lock that another thread holds for a moment is had, and one that the
 * interrupted code holds is given up on. */
#define SIGNAL_TRIES 2000

static int try_locks; /* in a signal handler */

static int lock_one(pf_lock_t *l)
{
    if (try_locks)
        return pf_lock_try(l, SIGNAL_TRIES);
    pf_lock(l);
    return 1;
}

static void unlock_all(uint32_t nfam);

static int lock_all(uint32_t nfam)
{
    for (uint32_t i = 0; i < nfam; i++)
        if (!lock_one(&pf_family_at(i)->lock)) {
            unlock_all(i);
            return -1;
        }
    return 0;
}

static void unlock_all(uint32_t nfam)
{
    for (uint32_t i = nfam; i-- > 0;)
        pf_unlock(&pf_family_at(i)->lock);
}

/* Counts spans and slots, family by family (each under its lock). */
/* tries: 0, each lock is waited for as lock_one does; else tried that
 * many times at most. */
static int count(uint32_t nfam, uint64_t *spans, uint64_t *objs, int tries)
{
    *spans = *objs = 0;
    for (uint32_t i = 0; i < nfam; i++) {
        struct pf_family *f = pf_family_at(i);
        if (!(tries ? pf_lock_try(&f->lock, tries) : lock_one(&f->lock)))
            return -1;
        for (struct pf_span *s = f->all; s; s = s->anext) {
            (*spans)++;
            *objs += s->kind == PF_SPAN_LARGE ? 1 : s->bump;
        }
        pf_unlock(&f->lock);
    }
    return 0;
}

/* A guarded large block of the checking mode: its entry (found by its
 * span's start, the order of the sorted entries) made to cover the block. */
static void place_guarded(const struct pf_guarded *g)
{
    uint32_t lo = 0, hi = r.nents;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (r.ents[mid].s->start <= g->s->start)
            lo = mid + 1;
        else
            hi = mid;
    }
    struct ent *e = lo ? &r.ents[lo - 1] : NULL;
    if (e && e->s == g->s && e->s->kind == PF_SPAN_LARGE && g->p >= e->s->start) {
        e->start = g->p;
        e->end = g->p + (g->n ? g->n : 1);
    }
}

/* Under guard.c's lock, in address order. */
static void take_zero(uint32_t *site, uintptr_t p, void *ctx)
{
    (void)site;
    (void)ctx;
    if (r.nzero < r.capzero)
        r.zcells[r.nzero++] = p;
    else
        r.zfull = 1;
}

/* The zero-size cells after the spans' objects, from mark index base. 0,
 * or -1 when more were made than counted. */
static int snapshot_zero(uint32_t base)
{
    r.zbase = base;
    if (!r.capzero)
        return 0;
    if (pf_guard_zero_each(take_zero, NULL, try_locks) != 0)
        return 0; /* the cells stay unclassified */
    if (r.zfull)
        return -1;
    for (uint32_t i = 0; i < r.nzero; i++)
        r.mark[base + i] = M_UNREACHED;
    if (r.nzero) {
        r.zlo = r.zcells[0];
        r.zhi = r.zcells[r.nzero - 1] + 16;
        if (r.zlo < r.lo)
            r.lo = r.zlo;
        if (r.zhi > r.hi)
            r.hi = r.zhi;
    }
    r.nobj = base + r.nzero;
    return 0;
}

/* A bit for each 64 KiB of [lo, hi), counted from lo, that holds a byte of
 * an object: a span's slots carved so far, a large block, the zero-size
 * cells. pfalloc's mappings and the program's lie among each other, so
 * most of the words a root holds between lo and hi are the program's
 * pointers into mappings of its own (a compiler's collected heap: 6
 * million of them in g++'s 200 MB); one bit tells each from the heap,
 * where find() read the pagemap and searched every entry for a large
 * block. A superset: find() still decides. The table is the last part of
 * the pass's room, zeros until marked (a short process's walk writes a
 * page of it); a [lo, hi) wider than it covers (8 GiB), or a room that
 * tables grown since it was made have used up, goes without. */
#define CHUNK_ROOM ((size_t)16 << 10)

static void chunks_mark(uintptr_t a, uintptr_t b)
{
    if (a >= b)
        return;
    for (uintptr_t c = (a - r.lo) >> PF_CHUNK_SHIFT, last = (b - 1 - r.lo) >> PF_CHUNK_SHIFT; c <= last; c++)
        r.chunks[c / 64] |= (uint64_t)1 << (c % 64);
}

/* After the snapshot, once lo and hi are final. */
static void chunks_build(void)
{
    r.chunks = NULL;
    if (r.hi <= r.lo)
        return;
    size_t need = whole_pages((size_t)(((r.hi - 1 - r.lo) >> PF_CHUNK_SHIFT) / 64 + 1) * sizeof(uint64_t));
    struct pf_scratch *sc = &r.scratch;
    if (!sc->base || need > CHUNK_ROOM || need > sc->bytes - sc->used)
        return;
    r.chunks = (uint64_t *)(void *)(sc->base + sc->used);
    sc->used += need;
    for (uint32_t i = 0; i < r.nents; i++)
        if (r.ents[i].n)
            chunks_mark(r.ents[i].start, r.ents[i].end);
    if (r.nzero)
        chunks_mark(r.zlo, r.zhi);
}

/* Under every family lock: the sorted snapshot. 0, or -1 when it grew past
 * the room counted for it. */
static int snapshot(uint32_t nfam, uint64_t maxspans, uint64_t maxobjs)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < nfam; i++)
        for (struct pf_span *s = pf_family_at(i)->all; s; s = s->anext) {
            if (s->kind != PF_SPAN_LARGE && s->kind != PF_SPAN_SMALL)
                continue;
            if (n >= maxspans)
                return -1;
            struct ent *e = &r.ents[n++];
            e->s = s;
            e->start = s->start;
            e->n = s->kind == PF_SPAN_LARGE ? 1 : s->bump;
            e->end = s->kind == PF_SPAN_LARGE ? s->start + (s->req ? s->req : 1)
                                               : s->start + (uintptr_t)s->bump * s->slot_size;
        }
    r.nents = n;
    /* Shell sort by address (no qsort: it may allocate). */
    for (uint32_t gap = n / 2; gap; gap /= 2)
        for (uint32_t i = gap; i < n; i++)
            for (uint32_t j = i; j >= gap && r.ents[j - gap].start > r.ents[j].start; j -= gap) {
                struct ent t = r.ents[j];
                r.ents[j] = r.ents[j - gap];
                r.ents[j - gap] = t;
            }
    /* The checking mode places a large block at the end of its span's
     * room, before a guard page: the program's pointer is not the span's
     * start (see guard.h). Its object is where the block is. */
    if (pf_check_on && !try_locks)
        pf_guard_each_live(place_guarded);
    uint64_t base = 0;
    r.lo = UINTPTR_MAX;
    r.hi = 0;
    r.large_lo = UINTPTR_MAX;
    r.large_hi = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct ent *e = &r.ents[i];
        if (base + e->n > maxobjs)
            return -1;
        e->base = (uint32_t)base;
        if (e->n && e->start < r.lo)
            r.lo = e->start;
        if (e->n && e->end > r.hi)
            r.hi = e->end;
        if (e->s->kind == PF_SPAN_LARGE) {
            r.mark[base] = M_UNREACHED;
            if (e->start < r.large_lo)
                r.large_lo = e->start;
            if (e->end > r.large_hi)
                r.large_hi = e->end;
        } else {
            for (uint32_t k = 0; k < e->n; k++)
                r.mark[base + k] = e->s->state[k] >= PF_SLOT_LIVE ? M_UNREACHED : M_NONE;
        }
        base += e->n;
        uint32_t h = hash_slot(e->s);
        while (r.hash[h])
            h = (h + 1) & r.hmask;
        r.hash[h] = i + 1;
    }
    r.nobj = (uint32_t)base;
    return snapshot_zero((uint32_t)base);
}

/* ---- finding an object from any pointer into it ---------------------------- */
/* The entry find() gives for a zero-size cell, whose slot is its index in
 * r.zcells. */
#define ZERO_ENT UINT32_MAX

/* The index in r.zcells of the cell at w, or -1. */
static int64_t zero_index(uintptr_t w)
{
    uint32_t lo = 0, hi = r.nzero;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (r.zcells[mid] < w)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r.nzero && r.zcells[lo] == w ? (int64_t)lo : -1;
}

static uint32_t mark_of(uint32_t e, uint32_t k)
{
    return e == ZERO_ENT ? r.zbase + k : r.ents[e].base + k;
}

/* The address of object k of entry e. */
static uintptr_t obj_start(const struct ent *e, uint32_t k)
{
    return e->start + (e->s->kind == PF_SPAN_LARGE ? 0 : (uintptr_t)k * e->s->slot_size);
}

static uint64_t obj_bytes(const struct ent *e, uint32_t k)
{
    if (e->s->kind == PF_SPAN_LARGE)
        return e->s->req;
    uint16_t st = e->s->state[k];
    return st >= PF_SLOT_LIVE ? pf_state_req(e->s->slot_size, st) : 0;
}

/* Whether an array of `bytes` bytes that starts with the word n is what
 * C++'s new[] makes: n counts the elements (the array cookie of a type
 * with a destructor) and divides what follows it evenly; for new T[0], one
 * word of 0 and nothing after it. */
static int array_cookie(word_t n, uint64_t bytes)
{
    if (bytes < sizeof(word_t))
        return 0;
    uint64_t rest = bytes - sizeof(word_t);
    return n == 0 ? rest == 0 : n <= rest && rest % n == 0;
}

/* Where the kernel refuses every read of memory (pf_os_read_mem: a
 * seccomp filter and no /proc), whether memory the pass does not own (a large
 * block when `large`) may be read in place: only when nothing can change
 * it (one thread, and no sealed block: the checking mode seals quarantined
 * large blocks). */
static int in_place_ok(int large)
{
    return r.solo && !(large && pf_check_on);
}

/* Words of memory the pass does not own (a module's data, a large block)
 * into out, as scan_foreign reads them; 0 when they cannot be read. */
static int foreign_words(uintptr_t a, word_t *out, size_t n, int large)
{
    if (r.vm)
        return pf_os_read_mem(r.pid, out, a, n * sizeof(word_t)) == (long)(n * sizeof(word_t));
    if (!in_place_ok(large))
        return 0;
    memcpy(out, (const void *)a, n * sizeof(word_t));
    return 1;
}

/* Whether v looks like a C++ virtual table pointer: into a module's
 * read-only data, where the next words (up to VTABLE_LOOK) hold at least
 * two pointers into a module's code, and nothing else but zeros before
 * them (valgrind's test of its heuristic for multiple inheritance). */
#define VTABLE_LOOK 20

/* Whether v may be one: a word-aligned pointer into a module's read-only
 * data (a lookup in the list of mappings, no read); the end of that
 * mapping, or 0. */
static uintptr_t vtable_may_be(word_t v)
{
    if (v % sizeof(word_t) || v < 4096)
        return 0;
    /* A pointer into pfalloc's spans (most are) needs no lookup; the span
     * of the heap's addresses is not enough: modules and files are mapped
     * between its regions, and where a freed large block was. */
    const struct pf_span *s = v - r.lo < r.hi - r.lo ? pf_pagemap_get((const void *)v) : NULL;
    if (s && s->kind != PF_SPAN_GONE)
        return 0;
    return pf_roots_file_data_end(&r.roots, v);
}

/* The memo's two places for v: a multiplicative hash (tables a power of
 * two apart must not share one), and its neighbour. */
static unsigned vtable_slot(uintptr_t v)
{
    return (unsigned)(((uint64_t)v * 0x9e3779b97f4a7c15ull) >> 54) & (VTABLE_MEMO - 2);
}

/* Whether v, which vtable_may_be found in a mapping ending at end, is one. */
static int vtable_at(word_t v, uintptr_t end)
{
    unsigned m = vtable_slot(v);
    for (unsigned k = m; k < m + 2; k++)
        if (vtable_memo[k].v == v && vtable_memo[k].run == reach_runs)
            return vtable_memo[k].yes;
    if (vtable_memo[m].run == reach_runs && vtable_memo[m + 1].run != reach_runs)
        m++; /* the first place is taken in this run, the second is free */
    if (r.vtable_reads >= VTABLE_READS)
        return 0;
    r.vtable_reads++;
    size_t n = (end - v) / sizeof(word_t);
    word_t t[VTABLE_LOOK];
    if (n > VTABLE_LOOK)
        n = VTABLE_LOOK;
    int yes = 0, code = 0;
    if (n >= 2 && foreign_words(v, t, n, 0))
        for (size_t i = 0; i < n && !yes; i++) {
            if (!t[i])
                continue;
            if (!pf_roots_file_code(&r.roots, t[i]))
                break;
            yes = ++code == 2;
        }
    vtable_memo[m].v = v;
    vtable_memo[m].run = reach_runs;
    vtable_memo[m].yes = (uint8_t)yes;
    return yes;
}

/* Whether `in` bytes into an object, whose first word is `first`, is where
 * a program keeps it as if by its start: where C++'s new[] put the first
 * element (just past the array cookie: the program keeps the array by that
 * pointer), or a base class's part of an object of a class with more than
 * one (the program keeps the object by a pointer to that base): its word
 * (`inner`, read only for this) and the object's first are both virtual
 * table pointers. Heuristics valgrind applies by default (LeakSanitizer
 * too, to the zero-length array). */
static int kept_as_start(word_t first, uintptr_t in, uint64_t bytes, const word_t *inner)
{
    if (in == sizeof(word_t) && array_cookie(first, bytes))
        return 1;
    /* Both words looked up before either table is read. */
    uintptr_t inner_end, first_end;
    return in % sizeof(word_t) == 0 && in + sizeof(word_t) <= bytes && inner &&
           (inner_end = vtable_may_be(*inner)) != 0 && (first_end = vtable_may_be(first)) != 0 &&
           vtable_at(first, first_end) && vtable_at(*inner, inner_end);
}

/* The object w points into: *ent, *slot; *start when w is its first byte
 * (or a pointer that keeps it as if by its start, kept_as_start). A pointer to the first byte of
 * an empty object counts. */
static int find(uintptr_t w, uint32_t *ent, uint32_t *slot, int *start)
{
    if (PF_UNLIKELY(w - r.zlo < r.zhi - r.zlo)) {
        /* A zero-size cell has no byte: only its own address points to it. */
        int64_t i = zero_index(w);
        if (i < 0)
            return 0;
        *ent = ZERO_ENT;
        *slot = (uint32_t)i;
        *start = 1;
        return 1;
    }
    struct pf_span *s = pf_pagemap_get((const void *)w);
    uint32_t e, k;
    if (s && s->kind == PF_SPAN_SMALL) {
        if (w < s->start || !(e = ent_of_span(s)))
            return 0;
        e--;
        k = pf_span_index(s, w - s->start);
        if (k >= r.ents[e].n || r.mark[r.ents[e].base + k] == M_NONE)
            return 0;
        uintptr_t in = w - s->start - (uintptr_t)k * s->slot_size;
        uint64_t bytes = obj_bytes(&r.ents[e], k);
        if (s->state[k] < PF_SLOT_LIVE)
            return 0;
        uintptr_t obj = w - in;
        /* A small object is read in place: the heap cannot change under
         * the pass. */
        if (in && bytes >= sizeof(word_t) &&
            kept_as_start(*(const word_t *)obj, in, bytes, in + sizeof(word_t) <= bytes ? (const word_t *)w : NULL)) {
            *start = 1;
        } else {
            if (in >= (bytes ? bytes : 1))
                return 0;
            *start = in == 0;
        }
    } else {
        /* A large block's pagemap entry is only at its first chunk: any
         * other pointer below large_hi is looked up by address. */
        if (w < r.large_lo || w >= r.large_hi)
            return 0;
        uint32_t lo = 0, hi = r.nents;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (r.ents[mid].start <= w)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (!lo)
            return 0;
        e = lo - 1;
        if (r.ents[e].s->kind != PF_SPAN_LARGE || w >= r.ents[e].end)
            return 0;
        k = 0;
        uintptr_t in = w - r.ents[e].start;
        *start = in == 0;
        struct ent *x = &r.ents[e];
        if (!*start && in % sizeof(word_t) == 0) {
            /* Its first word, read once for the pointers that may keep it
             * (new[], a base); the word at w only when the first is a
             * virtual table's. */
            if (!x->read_first) {
                word_t first = 0;
                x->read_first = foreign_words(x->start, &first, 1, 1) ? 1 : -1;
                x->first = first;
            }
            uint64_t bytes = x->s->req;
            word_t inner;
            uintptr_t first_end;
            if (x->read_first > 0)
                *start = in + sizeof(word_t) <= bytes && (first_end = vtable_may_be(x->first)) != 0 &&
                                 vtable_at(x->first, first_end) && foreign_words(w, &inner, 1, 1)
                             ? kept_as_start(x->first, in, bytes, &inner)
                             : kept_as_start(x->first, in, bytes, NULL);
        }
    }
    *ent = e;
    *slot = k;
    return 1;
}

/* ---- marking -------------------------------------------------------------- */
/* Whether the object of mark index id is one whose contents are not
 * scanned (see opaque_blocks): no look at all while there are none. */
static int opaque(uint32_t id)
{
    if (PF_LIKELY(!r.nopaque))
        return 0;
    uint32_t lo = 0, hi = r.nopaque;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (r.roots.dead_tls[mid][0] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r.nopaque && r.roots.dead_tls[lo][0] == id;
}

static void push(uint32_t e, uint32_t k)
{
    if (e == ZERO_ENT)
        return; /* a zero-size cell holds nothing to scan */
    uint32_t id = r.ents[e].base + k;
    if (opaque(id))
        return;
    if (r.nwork >= r.capwork) {
        r.failed = 1; /* cannot happen: pass 1 pushes an object at most twice, pass 2 once */
        return;
    }
    r.work[r.nwork++] = id;
}

/* Pass 1: w was found in a root (definite) or a reached object. */
static void reach_word(uintptr_t w, int definite)
{
    uint32_t e, k;
    int start;
    if (w - r.lo >= r.hi - r.lo || !find(w, &e, &k, &start))
        return;
    uint8_t *m = &r.mark[mark_of(e, k)];
    if (start && definite && *m != M_REACHABLE) {
        *m = M_REACHABLE;
        push(e, k);
    } else if (*m == M_UNREACHED) {
        *m = M_POSSIBLE;
        push(e, k);
    }
}

/* Pass 2: w was found in an object of the clique led by `leader`. */
static void lose_word(uintptr_t w, uint32_t leader)
{
    uint32_t e, k;
    int start;
    if (w - r.lo >= r.hi - r.lo || !find(w, &e, &k, &start))
        return;
    uint32_t id = mark_of(e, k);
    /* Its very start: a pointer that the heuristics take for one (past an
     * array cookie, to a base) points inside, as a map's nodes to its
     * header do. */
    if (start && id != r.scanning && (r.mark[id] == M_UNREACHED || r.mark[id] == M_INDIRECT) &&
        (e == ZERO_ENT || w == obj_start(&r.ents[e], k)))
        r.pointed[id >> 3] |= (uint8_t)(1u << (id & 7));
    if (r.mark[id] == M_UNREACHED && id != leader) {
        r.mark[id] = M_INDIRECT;
        push(e, k);
    }
}

/* The budget of one look for a cycle's entry, in objects seen, and of
 * all of a pass's looks together (past it, the cycles left keep the
 * address rule: a heap of many lost rings that each reach one big lost
 * structure would otherwise walk it once per ring). */
#define SEEK_BUDGET 65536
#define SEEK_BUDGET_ALL ((uint64_t)16 << 20)

/* A look for a cycle's entry (pass 3): w was found in a lost object seen.
 * A lost object not seen yet is marked seen, logged and pushed; the one
 * sought is met. */
static void seek_word(uintptr_t w)
{
    uint32_t e, k;
    int start;
    if (w - r.lo >= r.hi - r.lo || !find(w, &e, &k, &start) || e == ZERO_ENT)
        return;
    uint32_t id = r.ents[e].base + k;
    if (id == r.seek_target)
        r.seek_hit = 1;
    uint8_t *m = &r.mark[id];
    if (*m != M_UNREACHED && *m != M_INDIRECT)
        return;
    /* The stack and the log share the work array: each holds an object at
     * most once, and there are at least twice as many entries as objects. */
    if (r.nseen >= SEEK_BUDGET || r.nwork + r.nseen + 1 >= r.capwork) {
        r.seek_over = 1;
        return;
    }
    *m = *m == M_UNREACHED ? M_SEEN_UNREACHED : M_SEEN_INDIRECT;
    r.work[r.capwork - 1 - r.nseen++] = id;
    r.work[r.nwork++] = id;
}

/* Reads [a, b) in place: only memory that cannot vanish meanwhile. The
 * whole words of it, each one tested against the heap's range first (most
 * of a scan's words point nowhere near it): a leak walk spends its time
 * here, in roots and in every reached object. */
static void scan(uintptr_t a, uintptr_t b, int pass, int definite, uint32_t leader)
{
    uintptr_t first = (a + sizeof(word_t) - 1) & ~(uintptr_t)(sizeof(word_t) - 1);
    if (first < a || first >= b)
        return;
    const word_t *p = (const word_t *)first;
    const word_t *end = p + (b - first) / sizeof(word_t);
    uintptr_t lo = r.lo, span = r.hi - r.lo;
    const uint64_t *chunks = r.chunks;
    for (; p < end; p++) {
        uintptr_t w = *p;
        if (PF_LIKELY(w - lo >= span))
            continue;
        uintptr_t c = (w - lo) >> PF_CHUNK_SHIFT; /* its piece (chunks_build) */
        if (chunks && !((chunks[c / 64] >> (c % 64)) & 1))
            continue;
        if (pass == 1)
            reach_word(w, definite);
        else if (pass == 2)
            lose_word(w, leader);
        else
            seek_word(w);
    }
}

#define NOTE_NO_READ                                                                                        \
    "partial (process_vm_readv and /proc/thread-self/mem refused: only this thread's stack and small objects " \
    "were read)"

/* Memory the pass does not own: a root range, or a large block (`large`).
 * Copied piece by piece; a page that cannot be read (gone since the roots
 * were gathered, or inaccessible) is skipped. Where the kernel refuses
 * every read (pf_os_read_mem), it is read in place only when nothing can change it (one thread, and no
 * sealed block: the checking mode seals quarantined large blocks);
 * otherwise it is left out and the result is partial. */
static void scan_foreign(uintptr_t a, uintptr_t b, int pass, int definite, uint32_t leader, int large)
{
    if (!r.vm) {
        if (in_place_ok(large))
            scan(a, b, pass, definite, leader);
        else if (a < b)
            r.partial = NOTE_NO_READ;
        return;
    }
    uintptr_t ps = pf_os_page_size();
    a = (a + sizeof(word_t) - 1) & ~(uintptr_t)(sizeof(word_t) - 1);
    while (a + sizeof(word_t) <= b && a + sizeof(word_t) > a) {
        /* Up to the end of the bounce buffer's worth of pages from a's page. */
        uintptr_t end = (a & ~(ps - 1)) + r.copy_bytes;
        if (end > b || end < a)
            end = b;
        long n = pf_os_read_mem(r.pid, r.copy_to, a, end - a);
        if (n < 0 && n != -EFAULT) {
            /* Refused now though it worked before: read nothing more. */
            r.vm = 0;
            r.partial = NOTE_NO_READ;
            return;
        }
        if (n > 0) {
            scan((uintptr_t)r.copy_to, (uintptr_t)r.copy_to + (uintptr_t)n, pass, definite, leader);
            r.copied += (size_t)n;
            if (r.copied >= BOUNCE_GROW) {
                r.copy_to = r.bounce;
                r.copy_bytes = r.bounce_bytes;
            }
        }
        if (n == (long)(end - a))
            a = end;
        else /* the page at a + n could not be read: on past it */
            a = ((a + (uintptr_t)(n > 0 ? n : 0)) & ~(ps - 1)) + ps;
    }
}

/* A large block of at least this many pages is read only where its pages
 * hold data (pf_os_pages_held), in windows of HELD_WINDOW pages: the rest
 * reads as zeros, and reading it would map each page (a program that keeps
 * gigabytes it hardly touched took seconds to exit). */
#define HELD_MIN_PAGES 16
#define HELD_WINDOW 1024

static void scan_large(uintptr_t a, uintptr_t b, int pass, int definite, uint32_t leader)
{
    uintptr_t ps = pf_os_page_size();
    if (b - a < HELD_MIN_PAGES * ps) {
        scan_foreign(a, b, pass, definite, leader, 1);
        return;
    }
    PF_BULK static unsigned char vec[HELD_WINDOW]; /* not on a signal handler's stack */
    uintptr_t from = 0, to = 0; /* the run of held pages not read yet */
    for (uintptr_t p = a & ~(ps - 1), len; p < b; p += len) {
        len = b - p < HELD_WINDOW * ps ? whole_pages(b - p) : HELD_WINDOW * ps;
        if (pf_os_pages_held(&r.roots.pages, p, len, vec) != 0)
            memset(vec, 1, len / ps); /* gone or moved: the reads find out */
        for (uintptr_t k = 0; k < len / ps; k++) {
            uintptr_t page = p + k * ps;
            if (vec[k] && to == page) {
                to = page + ps;
            } else if (vec[k]) {
                if (to > from)
                    scan_foreign(from > a ? from : a, to < b ? to : b, pass, definite, leader, 1);
                from = page;
                to = page + ps;
            }
        }
    }
    if (to > from)
        scan_foreign(from > a ? from : a, to < b ? to : b, pass, definite, leader, 1);
}

static void scan_object(uint32_t e, uint32_t k, int pass, int definite, uint32_t leader)
{
    const struct ent *x = &r.ents[e];
    if (x->s->kind == PF_SPAN_LARGE) {
        scan_large(x->start, x->start + obj_bytes(x, k), pass, definite, leader);
        return;
    }
    uintptr_t a = obj_start(x, k);
    scan(a, a + obj_bytes(x, k), pass, definite, leader);
}

/* The span entry holding mark index id: the last with base <= id. */
static uint32_t ent_of_id(uint32_t id)
{
    uint32_t lo = 0, hi = r.nents;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (r.ents[mid].base <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void drain(int pass, uint32_t leader)
{
    while (r.nwork) {
        uint32_t id = r.work[--r.nwork];
        uint32_t lo = ent_of_id(id);
        r.scanning = id;
        scan_object(lo, id - r.ents[lo].base, pass, r.mark[id] == M_REACHABLE, leader);
    }
}

/* ---- the entry of a lost cycle ---------------------------------------------- */
/* Of a ring of lost objects that nothing else points to, pass 2 makes the
 * one at the lowest address definitely lost and the rest indirectly lost
 * (valgrind's rule). In pfalloc's heap, where each size class has spans of
 * its own, that is as often an inner member as the object the program made
 * and dropped: a leaked std::map's lowest object is often one of its nodes,
 * which point to each other at their start and to the map's header inside
 * the map object, and the definitely lost row named the node's insertion
 * instead of the `new std::map` to fix. So a definitely lost object that
 * another lost object points to at its start (it lies on a cycle: any
 * other such pointer would have made it indirect) hands its place to a
 * member of its cycle that no other lost object points to at its start
 * (the first such, by address, that leads back to it); with none, it
 * keeps it. One object for another: the counts per category stay those of
 * the address rule, the bytes move with the objects. */

/* Whether a lost object other than itself points to the start of id. */
static int start_pointed(uint32_t id)
{
    return r.pointed[id >> 3] >> (id & 7) & 1;
}

/* Walks the lost objects reachable from `from` (pass 3), each once, up to
 * SEEK_BUDGET of them; with `cand`, notes up to ncap of them (not from)
 * that no other lost object points to at their start, in the order met.
 * Whether `target` was met; -1 when the budget ran out. The marks are
 * restored. */
#define ENTRY_CANDIDATES 8
static int seek(uint32_t from, uint32_t target, uint32_t *cand, uint32_t *ncand)
{
    r.nwork = 0;
    r.nseen = 0;
    r.seek_hit = 0;
    r.seek_over = 0;
    r.seek_target = target;
    r.mark[from] = r.mark[from] == M_UNREACHED ? M_SEEN_UNREACHED : M_SEEN_INDIRECT;
    r.work[r.capwork - 1 - r.nseen++] = from;
    r.work[r.nwork++] = from;
    while (r.nwork && !r.seek_over && !(r.seek_hit && !cand)) {
        uint32_t id = r.work[--r.nwork];
        if (cand && id != from && !start_pointed(id) && *ncand < ENTRY_CANDIDATES)
            cand[(*ncand)++] = id;
        uint32_t e = ent_of_id(id);
        scan_object(e, id - r.ents[e].base, 3, 0, 0);
    }
    for (uint32_t i = 0; i < r.nseen; i++) {
        uint8_t *m = &r.mark[r.work[r.capwork - 1 - i]];
        *m = *m == M_SEEN_UNREACHED ? M_UNREACHED : M_INDIRECT;
    }
    r.seen_all += r.nseen;
    r.nwork = 0;
    r.nseen = 0;
    return r.seek_over ? -1 : r.seek_hit;
}

static void cycle_entries(void)
{
    for (uint32_t id = 0; id < r.zbase && r.seen_all < SEEK_BUDGET_ALL; id++) {
        if (r.mark[id] != M_UNREACHED || !start_pointed(id))
            continue;
        uint32_t cand[ENTRY_CANDIDATES], n = 0;
        if (seek(id, UINT32_MAX, cand, &n) < 0)
            continue;
        /* By address: the same heap names the same entry whatever the
         * order the walk met them in. */
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = i; j > 0 && cand[j] < cand[j - 1]; j--) {
                uint32_t t = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = t;
            }
        for (uint32_t i = 0; i < n; i++)
            if (r.mark[cand[i]] == M_INDIRECT && seek(cand[i], id, NULL, NULL) == 1) {
                r.mark[cand[i]] = M_UNREACHED;
                r.mark[id] = M_INDIRECT;
                break;
            }
    }
}

/* The caller's stack, from below the registers spilled by the two frames
 * above to `top`, or from `from` (see pf_reach_opts.stack_from), which
 * lies between or, when the pass runs on pfalloc's own stack, on the
 * thread's stack that ends at top. Never inlined, so this frame lies below
 * theirs. */
static PF_NOINLINE void scan_stack_below(uintptr_t top, uintptr_t from)
{
    volatile uintptr_t here = 0;
    uintptr_t lo = (uintptr_t)&here;
    if (from) {
        if (from >= top)
            return; /* not below the top found for it: no range known to be its stack */
        lo = from;
    }
    scan(lo, top, 1, 1, 0);
}

static PF_NOINLINE void scan_current_thread(uintptr_t top, uintptr_t from)
{
    /* Every callee-saved register into this frame (the prologue saves them
     * all), and the rest into a jmp_buf: a pointer held only in a register
     * is seen. */
    __builtin_unwind_init();
    jmp_buf regs;
    setjmp(regs);
    scan_stack_below(top, from);
    __asm__ __volatile__("" : : "r"(&regs) : "memory");
}

/* Takes [a, b) out of every root range: a range that holds it in its
 * middle is split (its upper part dropped when the list is full). */
static void cut_out(struct pf_roots *rt, uintptr_t a, uintptr_t b)
{
    for (uint32_t i = 0, n = rt->n; i < n; i++) {
        uintptr_t lo = rt->ranges[i][0], hi = rt->ranges[i][1];
        if (hi <= a || lo >= b)
            continue;
        if (lo < a && hi > b) {
            if (rt->n < PF_ROOTS_MAX) {
                rt->ranges[rt->n][0] = b;
                rt->ranges[rt->n][1] = hi;
                rt->n++;
            } else {
                rt->partial = PF_ROOTS_FULL;
            }
        }
        rt->ranges[i][0] = lo < a ? lo : b;
        rt->ranges[i][1] = lo < a ? a : hi;
        if (rt->ranges[i][1] < rt->ranges[i][0])
            rt->ranges[i][1] = rt->ranges[i][0];
    }
}

static int64_t mark_at(uintptr_t p);

/* Under the locks, after the snapshot: the exited threads' dynamic TLS
 * blocks that roots.c noted (pf_roots.dead_tls), those whose DTV entry
 * still names them (a thread that took the stack over frees them first),
 * as mark indexes, sorted, into the list's first column. They are
 * classified (reached through the DTV: the C library's, still reachable)
 * but not scanned, as roots nor as reached objects: what only they point
 * to is lost. An entry that cannot be read again keeps its block an
 * ordinary object. */
static void opaque_blocks(void)
{
    uintptr_t(*d)[2] = r.roots.dead_tls;
    uint32_t n = 0;
    for (uint32_t i = 0; i < r.roots.ndead_tls; i++) {
        word_t now = 0;
        int64_t id;
        if (foreign_words(d[i][0], &now, 1, 0) && now == d[i][1] && (id = mark_at(d[i][1])) >= 0)
            d[n++][0] = (uintptr_t)id;
    }
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && d[j][0] < d[j - 1][0]; j--) {
            uintptr_t t = d[j][0];
            d[j][0] = d[j - 1][0];
            d[j - 1][0] = t;
        }
    /* The same block twice (two entries naming it) counts once. */
    uint32_t u = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!u || d[u - 1][0] != d[i][0])
            d[u++][0] = d[i][0];
    r.nopaque = u;
}

/* The pass's tables for spans and objects counted (with room for what
 * other threads may add before the locks are all held): the entries, the
 * hash, the zero-size cells and a mark per object lie in one piece
 * (tables), each from a page boundary but the marks; work, the stack of
 * objects to scan. -1 when there are too many. */
struct sizes {
    uint64_t spans, objs, zcap, hsize, capwork;
    size_t ents, hash, front, tables, work;
};

static int sizes_of(uint64_t spans, uint64_t objs, uint64_t zeros, struct sizes *z)
{
    z->spans = spans + spans / 8 + 64;
    z->objs = objs + objs / 8 + 4096;
    z->zcap = zeros ? zeros + zeros / 8 + 64 : 0;
    z->hsize = 64;
    while (z->hsize < z->spans * 2)
        z->hsize *= 2;
    if (z->objs + z->zcap >= UINT32_MAX / 4 || z->spans >= UINT32_MAX / 4)
        return -1;
    z->ents = whole_pages(sizeof(struct ent) * z->spans);
    z->hash = whole_pages(sizeof(uint32_t) * z->hsize);
    z->front = z->ents + z->hash + sizeof(uintptr_t) * z->zcap;
    /* the marks, then the bits of pass 2 (see cycle_entries) */
    z->tables = whole_pages(z->front + z->objs + z->zcap + (z->objs + z->zcap) / 8 + 1);
    z->capwork = z->objs * 2 + 64;
    z->work = whole_pages(sizeof(uint32_t) * z->capwork);
    return 0;
}

int pf_reach_run(const struct pf_reach_opts *o)
{
    pf_reach_release();
    r.note = NULL;
    reach_runs++;
    forget = o && o->at_exit;
    try_locks = o && o->in_signal;
    int regs = o && o->exit_report ? (o->at_exit ? 2 : 1) : 0;
    int only_ranges = o && o->only_ranges;
    uint32_t nfam = pf_family_count();
    uint64_t spans, objs;
    struct sizes z;
    /* One mapping for the whole pass in the common case: the roots'
     * buffers, the bounce buffer, and the tables for the heap as it is now
     * (the checking mode's zero-size cells too; counted again after the
     * roots, a heap that grew meanwhile gets tables of their own). A short
     * process's exit report made eight mappings, a system call and a few
     * kernel structures each. A lock that is not free at once leaves the
     * tables out of it. */
    size_t bounce_bytes = whole_pages(pf_os_page_size() * BOUNCE_BIG_PAGES);
    size_t small_bytes = whole_pages(pf_os_page_size() * BOUNCE_PAGES);
    size_t room = pf_roots_room(only_ranges) + bounce_bytes + CHUNK_ROOM;
    int64_t zfirst = pf_check_on ? pf_guard_zero_count_tries(1) : 0;
    if (count(nfam, &spans, &objs, 1) == 0 && zfirst >= 0 && sizes_of(spans, objs, (uint64_t)zfirst, &z) == 0)
        room += z.tables + z.work;
    r.scratch.base = pf_os_map(room, 0);
    r.scratch.bytes = r.scratch.base ? room : 0;
    if (pf_roots_gather(&r.roots, o ? o->ranges : NULL, o ? o->nranges : 0, only_ranges, o && o->in_signal, regs,
                        o ? o->stack_from : 0, &r.scratch) != 0) {
        r.note = "out of memory";
        pf_reach_release();
        return -1;
    }
    uintptr_t stack_top = r.roots.stack_top;

    /* Families made while the roots were gathered (which may take a
     * second: the other threads' registers, the program's mappings) are
     * in the pass as well: their objects classified, their pointers
     * followed. */
    nfam = pf_family_count();
    if (count(nfam, &spans, &objs, 0) != 0) {
        r.note = "the allocator was busy (a lock held where the signal landed)";
        pf_reach_release();
        return -1;
    }
    /* The checking mode's zero-size cells, outside every span. */
    int64_t zcount = pf_check_on ? pf_guard_zero_count(try_locks) : 0;
    uint64_t zeros = zcount > 0 ? (uint64_t)zcount : 0;
    uint64_t counted = objs + zeros;
    if (sizes_of(spans, objs, zeros, &z) != 0) {
        r.note = "too many objects";
        pf_reach_release();
        return -1;
    }
    /* The walk writes the tables all over (the spans' entries, the hash,
     * a mark for each object), so they are made resident in one call, up
     * to the marks of the objects counted (the room for more stays
     * untouched unless used), with the bounce buffer (the program's data
     * alone fills it) when the two lie side by side: a short process's
     * exit report would otherwise take a fault for each of their pages,
     * two for the hash's first (read before it is written). */
    r.bounce = map_zeroed(&r.bounce_bytes, bounce_bytes);
    r.copy_to = r.bounce ? r.bounce + r.bounce_bytes - small_bytes : NULL;
    r.copy_bytes = small_bytes;
    r.tables = map_zeroed(&r.tables_bytes, z.tables);
    if (r.tables) {
        size_t hot = whole_pages(z.front + counted);
        if (r.bounce && (uint8_t *)r.tables == r.bounce + r.bounce_bytes) {
            pf_os_populate(r.copy_to, small_bytes + hot);
        } else {
            pf_os_populate(r.tables, hot);
            if (r.bounce)
                pf_os_populate(r.copy_to, small_bytes);
        }
        r.ents = r.tables;
        r.hash = (uint32_t *)((char *)r.tables + z.ents);
        r.zcells = (uintptr_t *)((char *)r.tables + z.ents + z.hash);
        r.capzero = (uint32_t)z.zcap;
        r.mark = (uint8_t *)r.tables + z.front;
        r.pointed = r.mark + z.objs + z.zcap;
    }
    r.capwork = (uint32_t)z.capwork;
    r.work = map_zeroed(&r.work_bytes, z.work);
    uint64_t hsize = z.hsize;
    spans = z.spans;
    objs = z.objs;
    r.hmask = (uint32_t)hsize - 1;
    if (!r.tables || !r.work || !r.bounce) {
        r.note = "out of memory";
        pf_reach_release();
        return -1;
    }
    /* A buffer that did not fit the room was mapped after the roots were
     * gathered: where another thread unmapped a root meanwhile (a stack, a
     * mapping of the program's), it may sit in its place. They are no
     * roots (the table of spans names every block). */
    const struct {
        const void *p;
        size_t bytes;
    } own[] = {{r.tables, r.tables_bytes},
               {r.work, r.work_bytes},
               {r.bounce, r.bounce_bytes},
               {r.roots.dead_tls, r.roots.dead_tls_bytes}};
    for (size_t t = 0; t < sizeof own / sizeof own[0]; t++)
        cut_out(&r.roots, (uintptr_t)own[t].p, (uintptr_t)own[t].p + own[t].bytes);

    /* Whether memory can be read without faulting: asked once, of a word
     * that is surely there. */
    r.pid = pf_os_tid(); /* not the process id: a main thread that ended with pthread_exit has no memory to read */
    r.vm = pf_os_read_mem(r.pid, r.copy_to, (uintptr_t)&r, sizeof(word_t)) == (long)sizeof(word_t);
    r.solo = r.roots.solo || !pf_lock_threaded();
    r.partial = r.roots.partial;
    if (lock_all(nfam) != 0) {
        r.note = "the allocator was busy (a lock held where the signal landed)";
        pf_reach_release();
        return -1;
    }
    if (snapshot(nfam, spans, objs) != 0) {
        unlock_all(nfam);
        r.note = "the heap grew while it was counted";
        pf_reach_release();
        return -1;
    }
    chunks_build();
    if (r.nobj) {
        opaque_blocks();
        for (uint32_t i = 0; i < r.roots.n; i++)
            scan_foreign(r.roots.ranges[i][0], r.roots.ranges[i][1], 1, 1, 0, 0);
        if (stack_top)
            scan_current_thread(stack_top, r.roots.stack_from);
        if (o && o->root_object)
            for (uint32_t e = 0; e < r.nents; e++)
                for (uint32_t k = 0; k < r.ents[e].n; k++)
                    if (r.mark[r.ents[e].base + k] != M_NONE && o->root_object(r.ents[e].s, k, o->ctx) &&
                        !opaque(r.ents[e].base + k))
                        scan_object(e, k, 1, 1, 0);
        drain(1, 0);
        for (uint32_t e = 0; e < r.nents && !r.partial; e++)
            for (uint32_t k = 0; k < r.ents[e].n; k++)
                if (r.mark[r.ents[e].base + k] == M_UNREACHED) {
                    push(e, k);
                    drain(2, r.ents[e].base + k);
                }
        if (!r.partial)
            cycle_entries();
        /* Memory was left unread: an object not reached through its start
         * may be reached through what was not read, and what was lost
         * cannot be told. */
        if (r.partial)
            for (uint32_t i = 0; i < r.nobj; i++)
                if (r.mark[i] != M_NONE && r.mark[i] != M_REACHABLE)
                    r.mark[i] = M_UNKNOWN;
    }
    unlock_all(nfam);
    unmap(r.work, &r.work_bytes);
    unmap(r.bounce, &r.bounce_bytes);
    r.nopaque = 0; /* its list goes with the roots */
    pf_roots_release(&r.roots, forget);
    if (r.failed) {
        r.note = "out of room";
        pf_reach_release();
        return -1;
    }
    if (!stack_top && !(o && o->only_ranges))
        r.note = "the current stack was not found";
    if (r.partial)
        r.note = r.partial;
    return 0;
}

/* The mark index of the object that starts at p, or -1 when none of the
 * pass's does. */
static int64_t mark_at(uintptr_t p)
{
    if (PF_UNLIKELY(pf_guard_is_zero(p))) {
        int64_t i = zero_index(p);
        return i < 0 ? -1 : (int64_t)r.zbase + i;
    }
    struct pf_span *s = pf_pagemap_get((const void *)p);
    uint32_t e;
    if (!s || (s->kind != PF_SPAN_SMALL && s->kind != PF_SPAN_LARGE) || !(e = ent_of_span(s)))
        return -1;
    const struct ent *x = &r.ents[e - 1];
    uint32_t k = 0;
    if (s->kind == PF_SPAN_SMALL) {
        if (p < x->start)
            return -1;
        k = pf_span_index(s, p - x->start);
        if (k >= x->n || x->start + (uintptr_t)k * s->slot_size != p)
            return -1;
    } else if (p != x->start && p != s->start) { /* the block, or its span (the checking mode's differ) */
        return -1;
    }
    return x->base + k;
}

enum pf_reach_kind pf_reach_of(uintptr_t p)
{
    int64_t id = r.mark ? mark_at(p) : -1;
    if (id < 0)
        return PF_REACH_UNCLASSIFIED;
    switch (r.mark[id]) {
    case M_UNREACHED:
        return PF_REACH_DEFINITE;
    case M_INDIRECT:
        return PF_REACH_INDIRECT;
    case M_POSSIBLE:
        return PF_REACH_POSSIBLE;
    case M_REACHABLE:
        return PF_REACH_STILL;
    default:
        return PF_REACH_UNCLASSIFIED;
    }
}
