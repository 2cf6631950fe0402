/*
 * tcache.c — creation, adoption, refill, flush and thread exit of the
 * per-thread caches. Bins hold a bounded number of slots (fewer for large
 * classes), so the memory a thread can park is bounded too.
 */
#include "tcache.h"

#include "large.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

__thread struct pf_tcache *pf_tc __attribute__((tls_model("initial-exec")));

/* Every direct[] entry of pf_tc_none: its PF_BIN_NONE. */
#define NONE1 PF_BIN_NONE
#define NONE4 NONE1, NONE1, NONE1, NONE1
#define NONE16 NONE4, NONE4, NONE4, NONE4
#define NONE64 NONE16, NONE16, NONE16, NONE16
#define NONE256 NONE64, NONE64, NONE64, NONE64
/* The wall below every cache's PF_BIN_NONE. */
static const struct pf_cached none_wall;
#define WALL ((struct pf_cached *)&none_wall + 1)
/* Its bins are empty and full with top == base == limit == NULL, which
 * takes no relocation: only its PF_BIN_NONE, the one malloc's fast path
 * reads below the top of (through direct[], whose offsets take none), is
 * relocated, so that the loader writes one page of it, not all of them. */
const struct pf_tcache pf_tc_none = {
    .bins = {[PF_NCLASSES] = {.top = WALL, .base = WALL, .limit = WALL}},
    .direct = {NONE256, NONE256, NONE256, NONE256, NONE1}};
_Static_assert(PF_DIRECT_N == 1025, "pf_tc_none.direct lists every entry");
static atomic_int direct_off; /* pf_tcache_direct_off was called */

/* The offset direct[] holds for a request of n bytes. */
static uint16_t direct_of(unsigned n)
{
    return (uint16_t)(pf_size_class(n) * sizeof(struct pf_bin));
}

/* Every direct[] entry of t names its PF_BIN_NONE (atomic stores: t's
 * thread may be reading them). */
static void direct_to_none(struct pf_tcache *t)
{
    for (unsigned i = 0; i < PF_DIRECT_N; i++)
        __atomic_store_n(&t->direct[i], (uint16_t)PF_BIN_NONE, __ATOMIC_RELAXED);
}

/* Every direct[] entry of t names its bin again. */
static void direct_to_bins(struct pf_tcache *t)
{
    for (unsigned i = 0; i < PF_DIRECT_N; i++)
        __atomic_store_n(&t->direct[i], direct_of(i), __ATOMIC_RELAXED);
}

/* The TLS image holds the address: a thread reads it before any code of
 * ours has run in it. */
__thread struct pf_tcache *pf_tc_fast __attribute__((tls_model("initial-exec"))) =
    (struct pf_tcache *)&pf_tc_none;
/* 1 once this thread's key destructor ran: stay on the locked path. */
static __thread int tc_dead __attribute__((tls_model("initial-exec")));

/* Frees this cacheless thread made on the locked path (pf_tcache_for_free). */
static __thread uint32_t tc_slow_frees __attribute__((tls_model("initial-exec")));

static struct pf_tcache *_Atomic all_caches;

/* Threads holding a cache now, and how many of them may own spans: four
 * per CPU (as many as jemalloc makes arenas). A cache refills from spans
 * it owns so that threads keeping to their own objects share no line of
 * them; but each owner holds a span of every class it uses, and with 64
 * threads on 2 CPUs those spans held five times the live bytes. Past the
 * limit, refills take slots from the spans every thread shares (the
 * class's first partial span), which fill up before another is begun. */
static atomic_uint caches_held;
static unsigned own_max; /* 0 until pf_tcache_init: no limit */

/* A refill or flush moves a batch of slots between a bin and its family
 * (the transfer cache or the spans) in two steps: out of one place, with
 * no lock held, into the other under its lock (a refill fills the bin's
 * store above its top under the family's lock, and raises top after). A
 * fork from another thread between the two, most often a move waiting for
 * a lock the prepare handler held, left the child the batch in neither
 * place (on the stack, or above the top, of a thread it does not have):
 * their spans never emptied again. Each move counts itself in the cache
 * whose slots it moves (moving: written by the thread that moves them, and
 * its signal handlers); the fork's prepare handler closes the gate, then
 * waits for every other thread's count to fall to 0 before it takes a
 * lock, and a move that finds the gate closed waits, with nothing out, for
 * the fork to end. A mover that does not end (stopped, or in a handler
 * that waits for the forking thread) costs the fork FORK_MOVE_WAIT_MS and
 * the child its batch, as before. A fence and a load at each refill and
 * flush; malloc's and free's fast paths do not look. */
#define FORK_MOVE_WAIT_MS 1000
static atomic_int fork_gate; /* 1 from the fork's prepare handler to its parent's or child's */
/* 1 in the forking thread while the gate is closed: the fork handlers of
 * a library that registered them before pfalloc's (glibc runs its prepare
 * handler after pfalloc's) may allocate, and must not wait for their own
 * fork. */
static __thread char fork_mine __attribute__((tls_model("initial-exec")));
/* The cache whose slots this thread moves, its own or one it took over: a
 * fork from a handler that interrupted the move does not wait for it. */
static __thread struct pf_tcache *moving_here __attribute__((tls_model("initial-exec")));

/* Returns what move_end restores. */
static struct pf_tcache *move_begin(struct pf_tcache *t)
{
    struct pf_tcache *was_here = moving_here;
    for (;;) {
        unsigned was = atomic_load_explicit(&t->moving, memory_order_relaxed);
        atomic_store_explicit(&t->moving, was + 1, memory_order_relaxed);
        if (was) /* a handler's move inside one of this thread's: part of it */
            break;
        /* The count before the gate is read, the gate before the count
         * (pf_tcache_fork_prepare): one of the two sees the other. */
        atomic_thread_fence(memory_order_seq_cst);
        if (PF_LIKELY(!atomic_load_explicit(&fork_gate, memory_order_relaxed)) || fork_mine)
            break;
        atomic_store_explicit(&t->moving, was, memory_order_release);
        pf_os_futex_wait_ms(&fork_gate, 1, 10);
    }
    moving_here = t;
    return was_here;
}

static void move_end(struct pf_tcache *t, struct pf_tcache *was_here)
{
    moving_here = was_here;
    /* Release: what the move wrote (the bin's top) is in the fork's child. */
    atomic_store_explicit(&t->moving, atomic_load_explicit(&t->moving, memory_order_relaxed) - 1,
                          memory_order_release);
}

void pf_tcache_fork_prepare(void)
{
    fork_mine = 1;
    atomic_store(&fork_gate, 1);
    int saved = errno;
    uint64_t until = 0;
    for (struct pf_tcache *t = atomic_load(&all_caches); t; t = t->next_all) {
        if (t == pf_tc || t == moving_here) /* the child has this thread: it ends the move */
            continue;
        for (unsigned i = 0; atomic_load(&t->moving); i++) {
            if (i < 128) {
                pf_cpu_relax();
                continue;
            }
            uint64_t now = pf_os_now_ms();
            if (!until)
                until = now + FORK_MOVE_WAIT_MS;
            if (now >= until)
                break;
            pf_os_sleep_us(20);
        }
    }
    errno = saved;
}

void pf_tcache_fork_parent(void)
{
    fork_mine = 0;
    atomic_store(&fork_gate, 0);
    pf_os_futex_wake(&fork_gate, INT32_MAX);
}

/* Moves the n oldest slots of b (the bottom of the stack) into out[0, n)
 * and the rest down to the bottom, within a move (move_begin). The slots
 * leave the bin before the caller gives them to the spans: a fork that
 * found this thread there (it waits for moves, but only so long) must not
 * leave a child whose drain of this (then dead) thread's cache hands them
 * back a second time; at worst the child loses them. The kept slots move
 * down with the bin empty, so no fork sees one of them twice in it either.
 * Each entry is copied once: the n given back to out, the rest down. */
static void bin_take_bottom(struct pf_bin *b, uint32_t n, struct pf_cached *out)
{
    uint32_t count = pf_bin_count(b);
    b->top = b->base;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    memcpy(out, b->base, (size_t)n * sizeof *out);
    if (n < count) {
        memmove(b->base, b->base + n, (size_t)(count - n) * sizeof *out);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        b->top = b->base + (count - n);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
}

/* tc's spans of class cls back to the family, if it owns any. */
static void give_back_spans(struct pf_tcache *tc, unsigned cls)
{
    if (tc->own[cls].active)
        pf_family_disown(pf_family_class(cls), &tc->own[cls]);
}

/* The n oldest slots of b, of class cls, back to their spans (not to the
 * transfer cache), a quarter of a full bin at a time: the array stays small
 * on the stack of a refill or flush whose collection step gives slots back,
 * and of a thread's exit. Both are rare next to flushes: the extra round
 * of the family's lock costs nothing measurable. */
#define GIVE_BACK_BATCH (PF_TC_MAX / 4)
static void bin_give_back(struct pf_tcache *tc, unsigned cls, uint32_t n)
{
    struct pf_bin *b = &tc->bins[cls];
    struct pf_cached out[GIVE_BACK_BATCH];
    while (n) {
        uint32_t k = n < GIVE_BACK_BATCH ? n : GIVE_BACK_BATCH;
        struct pf_tcache *was_here = move_begin(tc);
        bin_take_bottom(b, k, out);
        pf_family_flush(pf_family_class(cls), cls, out, (int)k, NULL);
        move_end(tc, was_here);
        n -= k;
    }
}

/* Every cached slot back to its span, and every owned span to its family. */
static void flush_all(struct pf_tcache *tc)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        bin_give_back(tc, c, pf_bin_count(&tc->bins[c]));
        give_back_spans(tc, c);
    }
}

static void thread_exit(void *arg)
{
    struct pf_tcache *tc = arg;
    pf_tc = NULL;
    pf_tc_fast = (struct pf_tcache *)&pf_tc_none;
    tc_dead = 1;
    flush_all(tc);
    atomic_fetch_sub_explicit(&caches_held, 1, memory_order_relaxed);
    atomic_store_explicit(&tc->tid, 0, memory_order_relaxed);
    atomic_store_explicit(&tc->in_use, 0, memory_order_release);
}

/* A cache in use whose thread is gone without giving it back, taken over
 * (its slots and spans given back, its counters kept), or NULL. A thread
 * whose first allocation comes in glibc's last round of key destructors
 * (where the key pfalloc sets is dropped without a call), or that ends
 * with a bare exit system call, leaves its cache in use for good: without
 * this, one cache (about 100 KiB of metadata, and the spans it owns) per
 * such thread, and every thread past four per CPU treated as crowded.
 * Looked for only when no cache is free, at most ORPHAN_LOOKS in-use
 * caches a time (one tgkill each), the next ones the next time, so a
 * program starting its thousandth thread does not ask about the other 999.
 * A thread whose id is taken again by a new one is not seen: its cache
 * stays lost, never taken from a live thread. */
#define ORPHAN_LOOKS 8
static _Atomic unsigned orphan_from; /* in-use caches the next look skips */

static struct pf_tcache *orphan(void)
{
    unsigned from = atomic_load_explicit(&orphan_from, memory_order_relaxed), seen = 0, looked = 0;
    struct pf_tcache *t = atomic_load_explicit(&all_caches, memory_order_acquire);
    for (; t && looked < ORPHAN_LOOKS; t = t->next_all) {
        long tid = atomic_load_explicit(&t->tid, memory_order_relaxed);
        if (tid <= 0 || !atomic_load_explicit(&t->in_use, memory_order_acquire) || seen++ < from)
            continue;
        looked++;
        if (!pf_os_thread_gone(tid) || !atomic_compare_exchange_strong(&t->tid, &tid, -1))
            continue;
        atomic_store_explicit(&orphan_from, from + looked - 1, memory_order_relaxed);
        /* A move its thread left unfinished never ends: no fork waits for it. */
        atomic_store_explicit(&t->moving, 0, memory_order_relaxed);
        flush_all(t);
        /* Held by its new thread now, as it was by the old one. */
        atomic_fetch_sub_explicit(&caches_held, 1, memory_order_relaxed);
        return t;
    }
    atomic_store_explicit(&orphan_from, t ? from + looked : 0, memory_order_relaxed);
    return NULL;
}

/* While more threads hold a cache than may own spans, caches whose
 * threads are gone are given back (flushed, free for the next thread), a
 * look of ORPHAN_LOOKS at a time, until the count is back under the limit
 * or a look finds none. The look made when no cache is free (orphan, in
 * pf_tcache_get) never comes while one is: a burst of threads ending with
 * a bare exit system call, followed by threads that start and end one at
 * a time (each adopting the cache the last one gave back), left every one
 * of the burst's caches held for good, and the process taken for a crowd
 * (its threads owning no span, its bins above 32 KiB closed) with one
 * thread left. */
static void orphans_release(void)
{
    struct pf_tcache *t;
    while (pf_tcache_crowded() && (t = orphan()) != NULL) {
        atomic_store_explicit(&t->tid, 0, memory_order_relaxed);
        atomic_store_explicit(&t->in_use, 0, memory_order_release);
    }
}

static pthread_key_t exit_key; /* valid only in KEY_READY */
enum { KEY_NONE, KEY_CREATING, KEY_READY, KEY_FAILED };
static atomic_int key_state;

/* The thread-exit key, made once: at start-up (pf_tcache_init, from the
 * constructors) or by the first cache, whichever comes first, so that a
 * program using up the keys later cannot take it from pfalloc. When even
 * that fails (the keys were gone before pfalloc ran), there is no key:
 * pfalloc never stores into one it did not make. */
static int key_make(void)
{
    int st = atomic_load_explicit(&key_state, memory_order_acquire);
    if (st == KEY_NONE) {
        int none = KEY_NONE;
        if (atomic_compare_exchange_strong(&key_state, &none, KEY_CREATING)) {
            st = pthread_key_create(&exit_key, thread_exit) == 0 ? KEY_READY : KEY_FAILED;
            atomic_store_explicit(&key_state, st, memory_order_release);
            return st;
        }
    }
    while ((st = atomic_load_explicit(&key_state, memory_order_acquire)) == KEY_CREATING)
        pf_cpu_relax();
    return st;
}

void pf_tcache_init(void)
{
    key_make();
    own_max = PF_OWNERS_PER_CPU * pf_os_ncpus();
}

int pf_tcache_crowded(void)
{
    return own_max && atomic_load_explicit(&caches_held, memory_order_relaxed) > own_max;
}

struct pf_tcache *pf_tcache_get(void)
{
    if (tc_dead)
        return NULL;
    /* Without a key a thread's exit cannot give its cache back, so only the
     * initial thread (which lives as long as the process, as a rule) gets
     * one; the others take the locked path. */
    if (PF_UNLIKELY(key_make() != KEY_READY) && !pf_os_initial_thread()) {
        tc_dead = 1;
        return NULL;
    }
    struct pf_tcache *tc = NULL;
    /* Adopt a cache an exited thread left behind, counters and all. */
    for (struct pf_tcache *t = atomic_load_explicit(&all_caches, memory_order_acquire); t;
         t = t->next_all) {
        int zero = 0;
        if (atomic_load_explicit(&t->in_use, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&t->in_use, &zero, 1)) {
            tc = t;
            break;
        }
    }
    if (!tc)
        tc = orphan();
    if (!tc) {
        /* The cache, then each bin's store of its cap, packed: a thread
         * touches the stores of the classes it uses, so stores sized to
         * their caps (not PF_TC_MAX each) put those classes on fewer pages. */
        size_t slots = 0, direct_slots = 0;
        for (unsigned c = 0; c < PF_NCLASSES; c++) {
            slots += 1 + pf_bin_cap_of(c); /* a wall, then the slots */
            if (c == pf_size_class(PF_DIRECT_MAX))
                direct_slots = slots;
        }
        tc = pf_meta_alloc(sizeof(*tc) + 64 + sizeof(struct pf_cached) * slots + PF_TC_SITES_BYTES + 64);
        if (tc) /* bins are cache-line aligned */
            tc = (struct pf_tcache *)(((uintptr_t)tc + 63) & ~(uintptr_t)63);
        if (!tc)
            return NULL;
        /* The initial thread's cache made resident in one call: a short
         * process touches most of its pages (the bins, the stores of the
         * classes malloc finds in one load), and each first touch would
         * take a fault, two where the fast path's empty-bin test reads
         * the zero page before the refill writes. Before the bins are set
         * up, which writes their pages. Other threads' caches keep
         * faulting their pages in as they use them: with many threads,
         * pages of classes a thread never uses would add up. */
        if (pf_os_initial_thread()) {
            /* The stores lie in class order: the last direct class's
             * ends those of every class malloc finds in one load (from
             * the class table: direct[] is filled in below). */
            char *from = (char *)((uintptr_t)tc & ~(pf_os_page_size() - 1));
            char *direct_end = (char *)((struct pf_cached *)(tc + 1) + direct_slots);
            pf_os_populate(from, (size_t)(direct_end - from));
        }
        struct pf_cached *store = (struct pf_cached *)(tc + 1);
        for (unsigned c = 0; c < PF_NCLASSES; c++) {
            struct pf_bin *b = &tc->bins[c];
            store++; /* the wall: zeroed, p NULL */
            b->base = b->top = store;
            b->limit = b->base + pf_bin_cap_of(c);
            store = b->limit;
            b->live_base = pf_state_holds_req(pf_class_size[c]) ? 0 : pf_class_size[c] + PF_SLOT_LIVE;
        }
        tc->sites = (unsigned char *)(((uintptr_t)store + 63) & ~(uintptr_t)63);
        struct pf_bin *none = &tc->bins[PF_NCLASSES];
        none->top = none->base = none->limit = WALL;
        for (unsigned i = 0; i < PF_DIRECT_N; i++)
            tc->direct[i] = direct_of(i);
        atomic_store_explicit(&tc->in_use, 1, memory_order_relaxed);
        struct pf_tcache *head = atomic_load_explicit(&all_caches, memory_order_relaxed);
        do
            tc->next_all = head;
        while (!atomic_compare_exchange_weak_explicit(&all_caches, &head, tc, memory_order_seq_cst,
                                                      memory_order_relaxed));
        /* Listed first, then the flag read (both seq_cst, as are the flag's
         * store and the list's read there): pf_tcache_direct_off either
         * finds this cache on the list or is seen here. */
        if (atomic_load(&direct_off) || atomic_load(&pf_hold))
            direct_to_none(tc);
    }
    atomic_fetch_add_explicit(&caches_held, 1, memory_order_relaxed);
    atomic_store_explicit(&tc->tid, pf_os_tid(), memory_order_relaxed);
    orphans_release();
    /* Taken in a crowd: its bins above PF_CACHED_MAX (empty) start closed,
     * so a thread that only frees those classes parks none of them. */
    if (pf_tcache_crowded())
        for (unsigned c = PF_CACHED_CLASSES; c < PF_NCLASSES; c++)
            if (tc->bins[c].top == tc->bins[c].base) /* always: given back before it was free */
                tc->bins[c].limit = tc->bins[c].base;
    /* The exit hook. pthread_setspecific on a low key index allocates nothing. */
    if (atomic_load_explicit(&key_state, memory_order_acquire) == KEY_READY)
        pthread_setspecific(exit_key, tc);
    pf_tc = tc;
    pf_tc_fast = tc;
    return tc;
}

struct pf_tcache *pf_tcache_for_free(void)
{
    if (pf_tc)
        return pf_tc;
    /* A thread that has not allocated makes its first frees on the locked
     * path. Frees made after the thread's key destructors ran (glibc frees
     * its per-thread buffers then) would otherwise create a cache no
     * destructor ever gives back; a consumer thread pays the lock only for
     * its first PF_FREE_ONLY_LOCKED frees. */
    if (tc_slow_frees < PF_FREE_ONLY_LOCKED) {
        tc_slow_frees++;
        return NULL;
    }
    return pf_tcache_get();
}

/* Closes the bin of class cls (cap 0): the slots it holds go back, and so
 * do the spans the cache owns of the class, which would otherwise sit part
 * free, used by no one, while its mallocs take the shared spans. */
static void bin_close(struct pf_tcache *tc, unsigned cls)
{
    struct pf_bin *b = &tc->bins[cls];
    bin_give_back(tc, cls, pf_bin_count(b));
    b->limit = b->base;
    give_back_spans(tc, cls);
}

int pf_tcache_bin_open(struct pf_tcache *tc, unsigned cls)
{
    struct pf_bin *b = &tc->bins[cls]; /* empty: the fast path found no slot */
    if (pf_tcache_crowded()) {
        bin_close(tc, cls);
        return 0;
    }
    b->limit = b->base + pf_bin_cap_of(cls);
    return 1;
}

int pf_tcache_bin_open_free(struct pf_tcache *tc, unsigned cls)
{
    /* A thread that frees the class without allocating it (a consumer)
     * never closed its bin: what it parked goes back. */
    if (pf_bin_cap(&tc->bins[cls]) && pf_tcache_crowded())
        bin_close(tc, cls);
    return pf_bin_cap(&tc->bins[cls]) != 0;
}

/* One step of the collection (see tcache.h), from a refill or a flush of
 * class busy, holding no lock. Not inlined: the arrays it gives slots back
 * through stay off the stack of a refill or flush that has nothing to
 * collect. */
static PF_NOINLINE void gc_step(struct pf_tcache *tc, unsigned busy)
{
    unsigned c = tc->gc_next;
    tc->gc_next = c + 1 < PF_NCLASSES ? c + 1 : 0;
    struct pf_bin *b = &tc->bins[c];
    uint64_t seen = b->allocs + b->frees;
    if (seen != b->gc_seen || c == busy) {
        b->gc_seen = seen;
        return;
    }
    if (seen == 0)
        return; /* a class this thread never used: its transfer batches are others' */
    pf_family_collect(c, &tc->xfer_seen[c]);
    /* The older half at each look, so a class used in bursts a little
     * further apart than a round keeps some of its slots warm; the spans
     * go once the bin is empty. The slots go to their spans, all of them:
     * a batch of other threads' slots in the transfer cache would keep
     * their spans from the pool. */
    uint32_t n = pf_bin_count(b);
    if (n)
        bin_give_back(tc, c, (n + 1) / 2);
    else
        give_back_spans(tc, c);
}

struct pf_cached pf_tcache_refill(struct pf_tcache *tc, unsigned cls)
{
    if (PF_UNLIKELY(tc->direct[0] == PF_BIN_NONE) && !pf_held() &&
        !atomic_load_explicit(&direct_off, memory_order_relaxed))
        direct_to_bins(tc);
    gc_step(tc, cls);
    struct pf_bin *b = &tc->bins[cls];
    int want = (int)(pf_bin_cap(b) / 2);
    if (want < 1)
        want = 1;
    pf_large_tick(); /* allocation activity lets unused memory decay */
    pf_span_tick();
    struct pf_own *own = &tc->own[cls];
    /* Too many threads to own spans, or the class's slots travel between
     * threads (family.h): give ours back, share. After sharing, the first
     * refill that owns takes a span before any transfer batch. */
    int crowded = pf_tcache_crowded();
    if (crowded || pf_family_class_shared(cls)) {
        give_back_spans(tc, cls);
        if (!crowded)
            own->back = 1;
        own = NULL;
    }
    struct pf_tcache *was_here = move_begin(tc);
    int n = pf_family_refill(pf_family_class(cls), cls, b->top, want, own);
    b->top += n;
    move_end(tc, was_here);
    if (b->top == b->base)
        return (struct pf_cached){NULL, NULL};
    return *--b->top;
}

/* The older half of a full bin (its bottom) to the family; the warm top
 * stays. Apart from the collection step, so the two batches on the stack
 * (this one and a step's give-back) are never there at once. */
__attribute__((noinline)) static void flush_half(struct pf_tcache *tc, unsigned cls)
{
    struct pf_bin *b = &tc->bins[cls];
    uint32_t count = pf_bin_count(b);
    uint32_t n = count / 2;
    if (n == 0)
        n = count;
    struct pf_cached out[PF_TC_MAX / 2]; /* count <= PF_TC_MAX: n <= PF_TC_MAX / 2 */
    struct pf_tcache *was_here = move_begin(tc);
    bin_take_bottom(b, n, out);
    /* The only thread with a cache keeps its slots in the transfer cache,
     * where they cost a copy each way instead of their spans' bitmaps: no
     * other thread's refill is there to take them. */
    if (atomic_load_explicit(&caches_held, memory_order_relaxed) <= 1)
        pf_family_park(pf_family_class(cls), cls, out, (int)n);
    else
        pf_family_flush(pf_family_class(cls), cls, out, (int)n, &tc->own[cls]);
    move_end(tc, was_here);
}

void pf_tcache_flush(struct pf_tcache *tc, unsigned cls)
{
    gc_step(tc, cls);
    flush_half(tc, cls);
}

void pf_tcache_drain(void)
{
    if (pf_tc)
        flush_all(pf_tc);
}

/* Every listed cache's direct table at no bin (none), or back at its bins
 * unless call sites keep it off. */
static void all_direct(int none)
{
    if (!none && atomic_load(&direct_off))
        return;
    for (struct pf_tcache *t = atomic_load(&all_caches); t; t = t->next_all) {
        if (none)
            direct_to_none(t);
        else
            direct_to_bins(t);
    }
}

void pf_tcache_direct_off(void)
{
    atomic_store(&direct_off, 1);
    all_direct(1);
}

/* A cache made while held points its direct table at no bin as it is
 * listed (pf_tcache_get); one whose table that left so after the release
 * has it back at its next refill (pf_tcache_refill). */
void pf_tcache_hold(int on)
{
    if (on) {
        pf_family_hold(1);
        all_direct(1);
        pf_family_frees_held(1);
    } else {
        pf_family_frees_held(0);
        all_direct(0);
        pf_family_hold(0);
    }
}

struct pf_tcache *pf_tcache_first(void)
{
    return atomic_load_explicit(&all_caches, memory_order_acquire);
}

void pf_tcache_fork_child(void)
{
    fork_mine = 0;
    atomic_store_explicit(&fork_gate, 0, memory_order_relaxed);
    /* A fork from another thread while the exit's walk held: nothing
     * holds in the child. */
    if (pf_family_hold_child()) {
        all_direct(0);
        pf_family_frees_held(0);
    }
    /* A fork from another thread in the middle of pf_tcache_direct_off's
     * walk: the child finishes it, or some of its caches would record no
     * call site. */
    if (atomic_load(&direct_off))
        pf_tcache_direct_off();
    for (struct pf_tcache *t = pf_tcache_first(); t; t = t->next_all) {
        if (t == pf_tc || atomic_load_explicit(&t->in_use, memory_order_relaxed) == 0)
            continue;
        /* A move the fork did not wait for has no thread here: its slots
         * out of the bin are lost, those in it given back. */
        atomic_store_explicit(&t->moving, 0, memory_order_relaxed);
        flush_all(t);
        atomic_store_explicit(&t->tid, 0, memory_order_relaxed);
        atomic_store_explicit(&t->in_use, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&caches_held, pf_tc ? 1u : 0u, memory_order_relaxed);
    if (pf_tc) /* the forking thread's id in the parent */
        atomic_store_explicit(&pf_tc->tid, pf_os_tid(), memory_order_relaxed);
}
