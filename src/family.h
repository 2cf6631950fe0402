/*
 * family.h — families: the registry (by handle, by name, by type key), the
 * spans of each family per class, the slow paths that move slots between
 * spans and thread caches, and the locked path for typed families.
 *
 * Counters written here are written under the family's lock with relaxed
 * atomic stores and read without a lock by stats (a signal handler may read
 * them). For a size-class family the figures are these plus the sums of the
 * thread caches' counters:
 *   live_objects == allocs - frees
 *   out_bytes    == slot bytes held outside spans (live, or in a thread or
 *                   transfer cache)
 */
#ifndef PF_FAMILY_H
#define PF_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "../include/pfalloc.h"
#include "lock.h"
#include "span.h"

struct pf_family {
    char name[PF_NAME_MAX];  /* the name, cut to PF_NAME_MAX - 1 characters (reports show this) */
    const char *long_name;   /* the whole name when it is longer (metadata memory), else NULL */
    uint32_t id;             /* index in the registry, once registered */
    uint8_t registered;      /* 1 once in the registry (set under its lock, read with acquire) */
    uint32_t kind;           /* enum pf_family_kind */
    size_t obj_size;         /* typed: bytes per object; class: slot bytes */
    size_t obj_align;        /* typed: alignment of the type */
    pf_lock_t lock;          /* guards everything below */
    /* Spans with a free slot, per class (pf_family_partial): a typed family's
     * own array of PF_NCLASSES heads; NULL for pfalloc's own families, whose
     * spans are all of one class and whose heads are one shared array
     * indexed by it (a hundred class families stay about 200 bytes each):
     * a walk over a class family's lists must take its own class's only. */
    struct pf_span **partial;
    struct pf_span *all;     /* every span and large block of the family */
    struct pf_family *hnext; /* name hash chain */
    /* counters of the locked paths (typed, large, threads without a cache) */
    uint64_t allocs;         /* allocations */
    uint64_t frees;          /* frees */
    uint64_t live_bytes;     /* slot/mapping bytes of live objects (locked paths) */
    uint64_t req_in;         /* bytes requested by allocations (and realloc growth) */
    uint64_t req_out;        /* bytes requested of freed objects (and realloc shrink) */
    uint64_t spans;          /* spans + large blocks held */
    uint64_t getting;        /* threads getting it a span from the pool (partial_or_new) */
    uint64_t mapped;         /* bytes of those */
    uint64_t out_bytes;      /* slot bytes outside spans (live, in thread or transfer caches) */
    uint64_t peak;           /* largest out_bytes (class) or live_bytes (typed, large) */
    uint64_t cells;          /* live objects outside its spans, which hold no slot (the
                                checking mode's zero-size cells, of the smallest class) */
};

struct pf_span_info {
    uintptr_t first;           /* address of the first slot */
    uint64_t bytes;            /* bytes of the span */
    uint32_t slot_size;        /* bytes per slot */
    uint32_t slots;            /* slots in the span */
    uint32_t used;             /* slots out of the span (live, or parked in a thread cache) */
    uint32_t largest_free_run; /* longest run of consecutive free slots */
};

/* The head of f's list of spans of class cls with a free slot. */
PF_HIDDEN struct pf_span **pf_family_partial(struct pf_family *f, unsigned cls);

/* The whole name of f: what lookups by name compare. */
PF_INLINE const char *pf_family_name(const struct pf_family *f)
{
    return f->long_name ? f->long_name : f->name;
}

/* The family of size class cls (registered on first use). */
PF_HIDDEN struct pf_family *pf_family_class(unsigned cls);
PF_HIDDEN struct pf_family *pf_family_large(void);
/* Registry walk for stats/reports: lock-free, append-only. */
PF_HIDDEN uint32_t pf_family_count(void);
PF_HIDDEN struct pf_family *pf_family_at(uint32_t i);
PF_HIDDEN struct pf_family *pf_family_find(const char *name);

/* Thread-cache slow paths (size-class families). A thread cache owns
 * spans of each class it uses (struct pf_own): it refills from them, and
 * slots of them that any thread gives back stay for it, so threads keeping
 * to their own objects share no cache line of them or of their state
 * entries, however long they run. refill fills out[] with up to want slots
 * and returns how many; flush returns n slots of class cls; disown gives
 * every span an owner holds back to the family (thread exit, trim, fork
 * child, too many threads). */
#define PF_TC_MAX 128 /* slots a thread cache holds per class at most */
/* Bytes of slots a thread cache holds of a class at most. Every slot a
 * cache or a transfer batch holds was used once, so its pages stay
 * resident: with 32 KiB, the slots parked in threads that hand objects on
 * (and in 64 threads' caches) were a third of those programs' peak RSS. */
#define PF_TC_BYTES 16384
/* The slots a thread cache holds of class cls (PF_TC_BYTES of slots, at
 * most PF_TC_MAX, at least 2); a transfer batch is half of it. */
PF_HIDDEN uint32_t pf_bin_cap_of(unsigned cls);
/* The spans one thread cache owns of one class. Written under the class
 * family's lock; the owning thread reads it without. A span names its
 * owner (s->owner) from when a refill takes it until it empties or its
 * owner disowns; spans still naming an inactive owner are the family's
 * (the owner finds out when a slot of one comes back). */
struct pf_own {
    struct pf_span *cur;  /* the span refills take slots from */
    struct pf_span *home; /* its other spans with a free slot (s->listed == PF_LISTED_HOME) */
    uint16_t nhome;       /* spans on home, at most PF_HOME_MAX */
    uint16_t back;        /* 1 from a refill that shared (its spans given back) until one
                             that owns, which takes a span before any transfer batch
                             (written by its own thread) */
    int active;           /* 1 from its first refill until it disowns */
};
/* Ownership by need. A thread owns spans so that threads keeping to their
 * own objects share no line of them. Where slots travel between threads it
 * gains little by it, and costs memory: each thread's spans of a class are
 * used as far as its own share of the slots in flight ever went, so the
 * spans held the sum of each thread's highest share instead of the highest
 * sum; with spans shared, the slots of every thread fill the same spans.
 * So a class whose slots travel is shared: when at least PF_TRAVEL_MIN
 * slots of it came back to spans or were flushed by an owner, and at least
 * one in PF_TRAVEL_SHARE of them were another thread's, the next
 * PF_TRAVEL_REFILLS refills of the class (by any thread) take slots from
 * shared spans, and their owners give theirs back. Then the class returns
 * to owned spans unless its slots still travel: a cache that gave its
 * spans back takes a span of its own at its first refill after the
 * sharing, before any transfer batch (else it would flush whole batches
 * to the transfer cache, holding no span, and take the others': threads
 * would trade batches for good), and the counts count again only after
 * PF_TRAVEL_CALM more refills. Only slots of another owner's spans count
 * as another thread's, once a flush (slots of spans no cache owns are
 * nobody's); an owner's flush gives every slot back to its span, so
 * other owners' slots reach their owners instead of going round between
 * threads that own neither. Threads that handed blocks on for 50 rounds
 * and then kept to their own for 40 000 owned a span in none of the last
 * 20 000 rounds before; now in all of them. Both counts halve once the
 * first passes PF_TRAVEL_WINDOW. A process with one thread cache never
 * counts (its flushes park their slots). Returns 1 while the class is
 * shared. */
#define PF_TRAVEL_MIN 16
#define PF_TRAVEL_SHARE 4
#define PF_TRAVEL_REFILLS 65536
#define PF_TRAVEL_WINDOW 4096
/* After a sharing, the refills of the class (by any thread) that do not
 * look at the counts, which start again after them: owners take the
 * spans the sharing left part used, whose other slots are in other
 * threads' caches and blocks, and those threads' flushes of them count
 * as travelled (in the test above, a quarter of the flushes, enough to
 * share the class again in 6 runs of 10 with no wait) until they are all
 * back. Short: threads that still hand objects on own spans meanwhile,
 * which costs memory (a long ring of 4 threads: 0-5 % more peak RSS with
 * 256, 5-7 % with 1 024). */
#define PF_TRAVEL_CALM 256
PF_HIDDEN int pf_family_class_shared(unsigned cls);
/* Spans an owner keeps on its home list: a slot that comes back to one of
 * its spans beyond these makes that span the family's, so a thread that
 * freed much of a class and allocates little of it strands no memory. */
#define PF_HOME_MAX 2
enum { PF_LISTED_NONE = 0, PF_LISTED_PARTIAL = 1, PF_LISTED_HOME = 2 };
/* Up to `want` free slots of class cls into out: a transfer batch (not
 * when own->back is set), or slots of own's spans (cur, then home, then a
 * span of the family's it takes for its own); with own NULL, slots of the
 * spans every thread shares, owning none. Returns how many. */
PF_HIDDEN int pf_family_refill(struct pf_family *f, unsigned cls, struct pf_cached *out, int want,
                               struct pf_own *own);
/* Free slots of class cls waiting in its transfer cache (counted out of
 * their spans, like slots in thread caches). Only the tests call it: the
 * check that every slot is live, cached or in its span cannot see these
 * slots any other way. */
PF_HIDDEN uint32_t pf_family_transfer_slots(unsigned cls);
PF_HIDDEN void pf_family_disown(struct pf_family *f, struct pf_own *own);
/* Every span, and every span made from now on, sends its frees to the slow
 * path, whichever thread makes them (the checking mode's, once on). */
PF_HIDDEN void pf_family_frees_uncached(void);
/* While on, every span, and every span made meanwhile, sends its frees to
 * the slow path, where another thread's free waits for the hold as an
 * allocation does (pf_family_hold_point); off, they go back to the caches
 * (unless pf_family_frees_uncached was called). Takes every family's lock
 * in turn: none may be held by the caller. */
PF_HIDDEN void pf_family_frees_held(int on);
/* The n slots of class cls in in[] back: with own NULL, or own holding a
 * span of the class, every slot to its span (own's flush counts the slots
 * of other owners' spans as travelled); with own holding none (a
 * consumer's cache), as one batch to the class's transfer cache if it has
 * room, which the next refill of any thread takes first. */
PF_HIDDEN void pf_family_flush(struct pf_family *f, unsigned cls, struct pf_cached *in, int n,
                               const struct pf_own *own);
/* The whole batch to the class's transfer cache when it has room, else to
 * the spans: for a cache that no other cache could take slots from. */
PF_HIDDEN void pf_family_park(struct pf_family *f, unsigned cls, struct pf_cached *in, int n);

/* Locked path: one slot of class cls for a request of req bytes, counted in
 * f; its state is set live. *clean tells whether it reads as zero. A fresh
 * slot's pages are made resident as a refill's are, after the lock is
 * given back (pf_span_take_many). */
PF_HIDDEN void *pf_family_alloc_locked(struct pf_family *f, unsigned cls, size_t req, int *clean);
/* Locked path: slot idx of s (already checked live and marked free by the
 * caller, who read the bytes requested of it, req, from its state) goes
 * back. */
PF_HIDDEN void pf_family_free_locked(struct pf_span *s, uint32_t idx, uint32_t req);
/* A zero-byte block of f's kept outside its spans (the checking mode's
 * zero-size cells) is counted as made (made 1) or freed (0): an object,
 * holding no slot. */
PF_HIDDEN void pf_family_count_cell(struct pf_family *f, int made);
/* Large blocks join/leave a family's accounting. */
PF_HIDDEN void pf_family_add_large(struct pf_family *f, struct pf_span *s);
PF_HIDDEN void pf_family_remove_large(struct pf_family *f, struct pf_span *s);
PF_HIDDEN void pf_family_resize_large(struct pf_family *f, struct pf_span *s, size_t old_bytes,
                                      size_t old_req);
/* Requested-bytes change of a live object resized in place (locked path). */
PF_HIDDEN void pf_family_requested(struct pf_family *f, size_t add, size_t sub);

/* Typed families. */
PF_HIDDEN struct pf_family *pf_family_typed(const char *key, size_t size, size_t align);

/* A thread cache's collection found its bin of class cls unused (see
 * tcache.h): one of the class's transfer batches goes back to its spans if
 * no thread put or took one since this cache's last look, whose count of
 * batches moved *seen keeps. */
PF_HIDDEN void pf_family_collect(unsigned cls, uint32_t *seen);
/* Releases empty spans kept by families (for trim). */
PF_HIDDEN void pf_family_trim(void);
/* Decommits the pages that free slots cover whole inside spans still in
 * use (pf_trim, after pf_family_trim). Returns the bytes given back. */
PF_HIDDEN size_t pf_family_trim_pages(void);

/* Copies up to cap spans of the family named `name` into out[] (taken under
 * the family's lock, no syscall) and fills *st (may be NULL) with the
 * family's figures. Returns the number of spans the family has (may exceed
 * cap), or -1 if no family has that name. Not signal-safe. */
PF_HIDDEN long pf_family_spans(const char *name, struct pf_family_stats *st,
                               struct pf_span_info *out, size_t cap);

/* The hold: while the exit's leak walk reads the heap, every other thread
 * that allocates waits for it, at the allocation's first step (no lock of
 * pfalloc's held), until PF_HOLD_MAX_MS after the hold began: no object is
 * made, and no large block moved, under the walk, and a thread that
 * allocates as it goes stops where its objects are linked where they
 * belong (its pointers moved under the walk made objects look lost). It
 * narrows what a running thread can do under the walk; a thread that
 * runs without allocating still can. Frees wait too, where the exit's walk
 * sent them to the slow path (pf_family_frees_held). The thread that holds,
 * and its signal handlers, allocate as usual. The fast paths do not look:
 * the thread caches' direct tables point at no bin while held
 * (pf_tcache_hold), and pf_small_alloc tests pf_hold. */
#define PF_HOLD_MAX_MS 2000
PF_HIDDEN extern atomic_int pf_hold;
PF_INLINE int pf_held(void) { return atomic_load_explicit(&pf_hold, memory_order_relaxed); }
/* Takes (on 1) or gives back (on 0) the hold, for the calling thread. */
PF_HIDDEN void pf_family_hold(int on);
/* The hold, taken by this thread, ends for other threads at most ms from
 * now (its deadline never moves later). */
PF_HIDDEN void pf_family_hold_within(uint64_t ms);
/* Returns when no other thread holds, or once the hold is PF_HOLD_MAX_MS
 * old (a holder that waits on a lock of the program's that the caller
 * holds: the loader's, taken by dl_iterate_phdr, around a callback that
 * allocates). errno is kept. Not a cancellation point. */
PF_HIDDEN PF_NOINLINE void pf_family_held_wait(void);
/* Where an allocation path that holds no lock of pfalloc's waits. */
PF_INLINE void pf_family_hold_point(void)
{
    if (PF_UNLIKELY(pf_held()))
        pf_family_held_wait();
}
/* Fork child: gives back a hold the thread that forked did not take;
 * returns whether there was one. */
PF_HIDDEN int pf_family_hold_child(void);

/* Fork: every family lock and the registry lock. */
PF_HIDDEN void pf_family_fork_lock(void);
PF_HIDDEN void pf_family_fork_unlock(int child);

#endif
