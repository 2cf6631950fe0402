/*
 * family.c — the registry and the per-family slow paths.
 * Lock order: registry lock -> family lock -> transfer lock -> pool lock
 * (span.c); a transfer lock is only ever held alone in practice. A family
 * lock is never held across a syscall: span creation (which may map a
 * region) happens with the family unlocked.
 * Families are never freed: handles stay valid for the life of the process,
 * which is what lets stats walk the registry without a lock.
 */
#include "family.h"

#include "fmt.h"
#include "list.h"

#include <errno.h>
#include <string.h>

#define REG_MAX 65536u
/* One page of buckets: every family registered writes its bucket, so a
 * program's first few families made all pages of a bigger table resident
 * (4 096 buckets: 32 KiB for the 20 families of a small program). Names are
 * looked up under the registry lock, off the fast paths. */
#define NAME_BUCKETS 512u
#define KEY_SLOTS 4096u

static pf_lock_t reg_lock = PF_LOCK_INIT;
PF_BULK static struct pf_family class_fam[PF_NCLASSES];
/* 1 once class_fam[c] is set up: tested here, among the small variables,
 * rather than in the family, so a process's first touch of a family's page
 * is a write (one fault, where a read of the zero page and then a copy on
 * the write took two), and a fork's loop over the classes reads no page
 * of families it never used. */
static _Atomic uint8_t class_made[PF_NCLASSES];
static struct pf_family large_fam;
static struct pf_family *reg_static[256];  /* first families: no mapping needed */
static struct pf_family **reg_dyn;         /* REG_MAX entries, mapped when 256 are not enough */
static _Atomic uint32_t reg_count;
PF_BULK static struct pf_family *by_name[NAME_BUCKETS] __attribute__((aligned(4096)));

/* PF_NEW's cache: string-literal address + size -> family, lock-free reads. */
struct key_slot {
    const char *_Atomic key;
    size_t size;
    struct pf_family *fam;
};
PF_BULK static struct key_slot key_cache[KEY_SLOTS];

/* Transfer caches: per size class, whole batches of free slots that a
 * thread cache flushed, handed as they are to the next thread cache that
 * refills. A slot that moves from a consumer thread to a producer thread
 * this way never touches its span's metadata, and the two threads meet on
 * a lock held for one copy of a batch instead of on the family lock.
 * A class holds up to XFER_BATCHES batches and XFER_BYTES of slots (but
 * always room for 4 batches): small classes, whose batches are cheap in
 * memory and come in long runs (a program freeing a thousand nodes), keep
 * more of them off the spans. The batches of a class are a stack in one
 * stretch of a shared store, each class's stretch fixed on first use. */
#define XFER_BATCHES 16
#define XFER_MIN_BATCHES 4
#define XFER_BYTES ((size_t)64 << 10)
#define XFER_BATCH_MAX (PF_TC_MAX / 2)
#define XFER_STORE 10496 /* entries for every class (10 292 with today's table) */
struct xfer {
    pf_lock_t lock;
    _Atomic uint32_t n;       /* batches held */
    uint32_t fill;            /* entries held: store[0, fill) */
    uint32_t cap;             /* entries the class may hold */
    struct pf_cached *store;  /* the class's stretch, NULL before first use */
    uint32_t len[XFER_BATCHES];
    uint32_t moves;           /* batches put or taken (mod 2^32); read without the lock */
} __attribute__((aligned(64)));
PF_BULK static struct xfer xfers[PF_NCLASSES];
/* 1 once a batch was put in class c's transfer cache: refills and reports
 * of a class that never had one read no page of xfers[] (a short process's
 * refills read three pages of zeros). A stale 0 only skips a batch for now. */
static _Atomic uint8_t xfer_used[PF_NCLASSES];
PF_BULK static struct pf_cached xfer_store[XFER_STORE];

uint32_t pf_bin_cap_of(unsigned cls)
{
    uint32_t slot = pf_class_size[cls];
    uint32_t cap = (uint32_t)(PF_TC_BYTES / slot);
    if (cap > PF_TC_MAX)
        cap = PF_TC_MAX;
    if (cap < 2)
        cap = 2;
    return cap;
}

/* Entries class cls may hold: a batch is half of a full bin. */
static uint32_t xfer_cap(unsigned cls)
{
    uint32_t batch = pf_bin_cap_of(cls) / 2;
    if (batch < 1)
        batch = 1;
    uint32_t by_bytes = (uint32_t)(XFER_BYTES / pf_class_size[cls]);
    uint32_t cap = batch * XFER_BATCHES;
    if (cap > by_bytes)
        cap = by_bytes;
    if (cap < batch * XFER_MIN_BATCHES)
        cap = batch * XFER_MIN_BATCHES;
    return cap;
}

/* Under x->lock: the class's stretch of the store, after every lower
 * class's (the same for every thread, so no lock orders the classes). */
static void xfer_setup(struct xfer *x, unsigned cls)
{
    uint32_t base = 0;
    for (unsigned c = 0; c < cls; c++)
        base += xfer_cap(c);
    x->cap = xfer_cap(cls);
    if (base + x->cap > XFER_STORE) /* a class table bigger than the store: no transfer */
        x->cap = 0;
    x->store = xfer_store + base;
}

static int xfer_put(unsigned cls, const struct pf_cached *in, int n)
{
    struct xfer *x = &xfers[cls];
    if (n <= 0 || n > XFER_BATCH_MAX ||
        atomic_load_explicit(&x->n, memory_order_relaxed) >= XFER_BATCHES)
        return 0;
    pf_lock(&x->lock);
    if (PF_UNLIKELY(!x->store))
        xfer_setup(x, cls);
    if (PF_UNLIKELY(!atomic_load_explicit(&xfer_used[cls], memory_order_relaxed)))
        atomic_store_explicit(&xfer_used[cls], 1, memory_order_relaxed);
    uint32_t k = atomic_load_explicit(&x->n, memory_order_relaxed);
    int ok = k < XFER_BATCHES && x->fill + (uint32_t)n <= x->cap;
    if (ok) {
        memcpy(x->store + x->fill, in, (size_t)n * sizeof *in);
        x->fill += (uint32_t)n;
        x->len[k] = (uint32_t)n;
        __atomic_store_n(&x->moves, x->moves + 1, __ATOMIC_RELAXED);
        atomic_store_explicit(&x->n, k + 1, memory_order_relaxed);
    }
    pf_unlock(&x->lock);
    return ok;
}

uint32_t pf_family_transfer_slots(unsigned cls)
{
    struct xfer *x = &xfers[cls];
    if (!atomic_load_explicit(&xfer_used[cls], memory_order_relaxed))
        return 0;
    pf_lock(&x->lock);
    uint32_t n = x->fill;
    pf_unlock(&x->lock);
    return n;
}

static int xfer_get(unsigned cls, struct pf_cached *out, int want)
{
    struct xfer *x = &xfers[cls];
    if (!atomic_load_explicit(&xfer_used[cls], memory_order_relaxed) ||
        atomic_load_explicit(&x->n, memory_order_relaxed) == 0)
        return 0;
    int n = 0;
    pf_lock(&x->lock);
    uint32_t k = atomic_load_explicit(&x->n, memory_order_relaxed);
    if (k > 0 && (int)x->len[k - 1] <= want) {
        n = (int)x->len[k - 1];
        x->fill -= (uint32_t)n;
        memcpy(out, x->store + x->fill, (size_t)n * sizeof *out);
        __atomic_store_n(&x->moves, x->moves + 1, __ATOMIC_RELAXED);
        atomic_store_explicit(&x->n, k - 1, memory_order_relaxed);
    }
    pf_unlock(&x->lock);
    return n;
}

/* Names are hashed and compared whole, however long: a name longer than
 * name[] keeps its whole text in long_name. A name is given in two parts
 * (b may be ""), so "<type>/<size>" is looked up without a buffer. */
static uint32_t hash_name(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h;
}

static int name_is(const struct pf_family *f, const char *a, const char *b)
{
    const char *full = pf_family_name(f);
    size_t n = strlen(a);
    return strncmp(full, a, n) == 0 && strcmp(full + n, b) == 0;
}

static struct pf_family **reg_slot(uint32_t i)
{
    return i < 256 ? &reg_static[i] : &reg_dyn[i - 256];
}

/* Under reg_lock. Publishes f for lock-free readers. */
static int reg_add(struct pf_family *f)
{
    uint32_t n = atomic_load_explicit(&reg_count, memory_order_relaxed);
    if (n >= REG_MAX)
        return -1;
    if (n >= 256 && !reg_dyn)
        return -1; /* caller maps reg_dyn before taking the lock */
    f->id = n;
    *reg_slot(n) = f;
    __atomic_store_n(&f->registered, 1, __ATOMIC_RELEASE);
    uint32_t b = hash_name(pf_family_name(f), "") % NAME_BUCKETS;
    /* One exchange, a write: the first touch of the page costs one fault,
     * not a read of the zero page and a copy on the write. */
    f->hnext = __atomic_exchange_n(&by_name[b], f, __ATOMIC_RELAXED);
    atomic_store_explicit(&reg_count, n + 1, memory_order_release);
    return 0;
}

uint32_t pf_family_count(void)
{
    return atomic_load_explicit(&reg_count, memory_order_acquire);
}

struct pf_family *pf_family_at(uint32_t i)
{
    return *reg_slot(i);
}

/* Under reg_lock: the family named a followed by b. */
static struct pf_family *find_locked(const char *a, const char *b)
{
    for (struct pf_family *f = by_name[hash_name(a, b) % NAME_BUCKETS]; f; f = f->hnext)
        if (name_is(f, a, b))
            return f;
    return NULL;
}

struct pf_family *pf_family_find(const char *name)
{
    pf_lock(&reg_lock);
    struct pf_family *f = find_locked(name, "");
    pf_unlock(&reg_lock);
    return f;
}

/* "malloc-<digits>" and "large" belong to pfalloc's own families, whether
 * or not they are registered yet. */
static int reserved_name(const char *name)
{
    if (strcmp(name, "large") == 0)
        return 1;
    if (strncmp(name, "malloc-", 7) != 0 || !name[7])
        return 0;
    for (const char *c = name + 7; *c; c++)
        if (*c < '0' || *c > '9')
            return 0;
    return 1;
}

/* pfalloc's own families (size classes, large) join the registry on first
 * use, once: `registered` is set under the registry lock and read with
 * acquire, so two threads racing here never add a family twice. */
static void ensure_registered(struct pf_family *f)
{
    if (PF_LIKELY(__atomic_load_n(&f->registered, __ATOMIC_ACQUIRE)))
        return;
    pf_lock(&reg_lock);
    if (!f->name[0]) {
        struct pf_fmt n;
        pf_fmt_init(&n, f->name, PF_NAME_MAX, -1);
        if (f == &large_fam) {
            pf_fmt_str(&n, "large");
            f->kind = PF_KIND_LARGE;
        } else {
            pf_fmt_str(&n, "malloc-");
            pf_fmt_u64(&n, __atomic_load_n(&f->obj_size, __ATOMIC_RELAXED));
            f->kind = PF_KIND_CLASS;
        }
        pf_fmt_cstr(&n);
    }
    if (!f->registered)
        reg_add(f);
    pf_unlock(&reg_lock);
}

struct pf_family *pf_family_class(unsigned cls)
{
    struct pf_family *f = &class_fam[cls];
    /* Racing threads store the same values; atomically, so that is not a
     * data race. */
    if (PF_UNLIKELY(!atomic_load_explicit(&class_made[cls], memory_order_acquire))) {
        __atomic_store_n(&f->obj_align, 16, __ATOMIC_RELAXED);
        __atomic_store_n(&f->obj_size, pf_class_size[cls], __ATOMIC_RELAXED);
        atomic_store_explicit(&class_made[cls], 1, memory_order_release);
    }
    return f;
}

struct pf_family *pf_family_large(void)
{
    if (!large_fam.obj_align)
        large_fam.obj_align = 16;
    ensure_registered(&large_fam);
    return &large_fam;
}

/* ---- spans of a family ----------------------------------------------------- */
static struct pf_span *class_partial[PF_NCLASSES];

struct pf_span **pf_family_partial(struct pf_family *f, unsigned cls)
{
    return f->partial ? &f->partial[cls] : &class_partial[cls];
}

static void list_push(struct pf_family *f, struct pf_span *s)
{
    PF_LIST_PUSH(pf_family_partial(f, s->cls), s, next, prev);
    s->listed = PF_LISTED_PARTIAL;
}

static void list_unlink(struct pf_family *f, struct pf_span *s)
{
    PF_LIST_UNLINK(pf_family_partial(f, s->cls), s, next, prev);
    s->listed = PF_LISTED_NONE;
}

/* An owner's home list: its spans with a free slot other than cur. */
static void home_push(struct pf_own *o, struct pf_span *s)
{
    PF_LIST_PUSH(&o->home, s, next, prev);
    s->listed = PF_LISTED_HOME;
    o->nhome++;
}

static void home_unlink(struct pf_own *o, struct pf_span *s)
{
    PF_LIST_UNLINK(&o->home, s, next, prev);
    s->listed = PF_LISTED_NONE;
    o->nhome--;
}

/* s->owner is read without the lock by the thread that owns s (flush). */
static void set_owner(struct pf_span *s, struct pf_own *o)
{
    __atomic_store_n(&s->owner, o, __ATOMIC_RELAXED);
}

static void all_push(struct pf_family *f, struct pf_span *s)
{
    PF_LIST_PUSH(&f->all, s, anext, aprev);
    PF_RELAXED_ADD(f->spans, 1);
    PF_RELAXED_ADD(f->mapped, s->bytes);
}

static void all_unlink(struct pf_family *f, struct pf_span *s)
{
    PF_LIST_UNLINK(&f->all, s, anext, aprev);
    PF_RELAXED_ADD(f->spans, (uint64_t)-1);
    PF_RELAXED_ADD(f->mapped, -(uint64_t)s->bytes);
}

/* Set by pf_family_frees_uncached, and by pf_family_frees_held while the
 * hold lasts; read under a family's lock. */
static int frees_uncached, frees_held;

/* The bin small span s sends its frees to, or PF_BIN_NONE (the slow
 * path). Under the family's lock. */
static uint32_t span_bin(const struct pf_span *s)
{
    int none = !s->cached || __atomic_load_n(&frees_uncached, __ATOMIC_RELAXED) ||
               __atomic_load_n(&frees_held, __ATOMIC_RELAXED);
    return none ? PF_BIN_NONE : s->cls * PF_BIN_BYTES;
}

/* Every small span's bin as span_bin says, each family under its lock. */
static void spans_rebin(void)
{
    uint32_t nf = pf_family_count();
    for (uint32_t i = 0; i < nf; i++) {
        struct pf_family *f = pf_family_at(i);
        pf_lock(&f->lock);
        for (struct pf_span *s = f->all; s; s = s->anext) {
            uint32_t bin = s->kind == PF_SPAN_SMALL ? span_bin(s) : s->bin;
            if (bin != s->bin) {
                __atomic_store_n(&s->bin, bin, __ATOMIC_RELAXED);
                pf_pagemap_view_set(s->start, s->bytes, bin == PF_BIN_NONE ? 0 : s->magic, s->state, bin);
            }
        }
        pf_unlock(&f->lock);
    }
}

void pf_family_frees_uncached(void)
{
    __atomic_store_n(&frees_uncached, 1, __ATOMIC_RELAXED);
    spans_rebin();
}

void pf_family_frees_held(int on)
{
    __atomic_store_n(&frees_held, on, __ATOMIC_RELAXED);
    spans_rebin();
}

/* Under f->lock, which it drops and retakes around span creation: a listed
 * span of class cls with a free slot (the first partial one, or a fresh one
 * from the pool), or NULL when the OS says no. When another thread listed a
 * partial span while the lock was down, that one is returned and the fresh
 * span goes to *spare (when *spare is still NULL) for the caller to give
 * back once unlocked (pf_span_unget): threads racing for a fresh span then
 * fill one span instead of taking one each. */
static struct pf_span *partial_or_new(struct pf_family *f, unsigned cls, struct pf_span **spare)
{
    struct pf_span *s = *pf_family_partial(f, cls);
    if (s)
        return s;
    /* A family's first span holds a slot or a few, those after it more
     * (see pf_class_next_span_bytes); threads that get one at once count
     * each other's as held, so that they do not all take first spans. (A
     * fork while a thread gets one leaves the child counting it: its next
     * spans are bigger, nothing else.) */
    size_t bytes = pf_class_next_span_bytes(cls, PF_RELAXED_GET(f->spans) + f->getting++);
    pf_unlock(&f->lock);
    int saved = errno;
    s = pf_span_get_sized(cls, bytes);
    errno = saved;
    pf_lock(&f->lock);
    f->getting--;
    struct pf_span *first = *pf_family_partial(f, cls);
    if (!s)
        return first;
    if (first && !*spare) {
        *spare = s;
        return first;
    }
    s->family = f;
    s->cached = f->kind == PF_KIND_CLASS;
    /* Once pf_family_frees_uncached was called, frees go to the slow path.
     * (A span recording call sites need not send its frees there: every
     * allocation of a slot stores its site, so a freed slot's may stay.) */
    s->bin = span_bin(s);
    if (s->bin != PF_BIN_NONE)
        pf_pagemap_view_set(s->start, s->bytes, s->magic, s->state, s->bin);
    all_push(f, s);
    list_push(f, s);
    return s;
}

static void note_out(struct pf_family *f, int64_t delta)
{
    uint64_t out = PF_RELAXED_GET(f->out_bytes) + (uint64_t)delta;
    __atomic_store_n(&f->out_bytes, out, __ATOMIC_RELAXED);
    if (f->kind == PF_KIND_CLASS && out > PF_RELAXED_GET(f->peak))
        __atomic_store_n(&f->peak, out, __ATOMIC_RELAXED);
}

/* Under f->lock: s just got a slot back (or lost its owner). A span of an
 * active owner stays its owner's (on its home list) until it empties;
 * others are the family's. Returns s when it should go back to the pool
 * (the caller puts it after unlocking). */
static struct pf_span *after_give(struct pf_family *f, struct pf_span *s)
{
    if (s->used == s->nslots)
        return NULL; /* full: on no list until a slot comes back */
    struct pf_own *o = s->owner;
    if (o) {
        if (o->active) {
            if (s == o->cur)
                return NULL; /* its owner refills from it */
            if (s->listed == PF_LISTED_HOME) {
                if (s->used != 0)
                    return NULL;
                home_unlink(o, s); /* empty: the family's again */
            } else if (s->used != 0 && o->nhome < PF_HOME_MAX) {
                home_push(o, s);
                return NULL;
            }
        }
        set_owner(s, NULL);
    }
    if (s->listed == PF_LISTED_NONE)
        list_push(f, s);
    /* Keep one empty span per class to absorb alloc/free ping-pong. */
    if (s->used == 0 && (*pf_family_partial(f, s->cls) != s || s->next)) {
        list_unlink(f, s);
        all_unlink(f, s);
        return s;
    }
    return NULL;
}

/* Up to ask slots of s into out (with their state entries); how many. */
static int take_slots(struct pf_span *s, struct pf_cached *out, uint32_t ask, struct pf_ahead *ahead)
{
    return (int)pf_span_take_many(s, out, ask, ahead);
}

int pf_family_refill(struct pf_family *f, unsigned cls, struct pf_cached *out, int want,
                     struct pf_own *own)
{
    int n = 0;
    /* A cache that gave its spans back while the class was shared takes
     * a span of its own before any transfer batch: taking the batches
     * the others flushed, it would hold no span and flush its own batches
     * whole to the transfer cache, and the threads would go on trading
     * batches, owning none, long after the sharing ended. */
    if (!own || !own->back) {
        n = xfer_get(cls, out, want);
        if (n > 0)
            return n;
    }
    ensure_registered(f);
    struct pf_span *spare = NULL;
    struct pf_ahead ahead;
    ahead.n = 0;
    pf_lock(&f->lock);
    if (own) {
        own->active = 1;
        own->back = 0;
    }
    while (n < want) {
        struct pf_span *s;
        if (!own) { /* shared: the first partial span, off the list once used up */
            if (!(s = partial_or_new(f, cls, &spare)))
                break;
            int k = take_slots(s, out + n, (uint32_t)(want - n), &ahead);
            if (s->used == s->nslots)
                list_unlink(f, s);
            n += k;
            if (k == 0)
                break;
            continue;
        }
        s = own->cur;
        if (!s || s->owner != own || s->used == s->nslots) {
            /* Used up, cur stays its owner's, on no list: the first slot
             * that comes back puts it on the home list. */
            own->cur = NULL;
            if ((s = own->home) != NULL) {
                home_unlink(own, s);
            } else {
                s = partial_or_new(f, cls, &spare);
                if (!s)
                    break;
                list_unlink(f, s); /* owned spans stay off the partial list */
                set_owner(s, own);
            }
            own->cur = s;
        }
        n += take_slots(s, out + n, (uint32_t)(want - n), &ahead);
    }
    note_out(f, (int64_t)n * pf_class_size[cls]);
    pf_unlock(&f->lock);
    if (spare)
        pf_span_unget(spare);
    pf_span_ahead_apply(&ahead);
    return n;
}

/* Under f->lock: after_give, with a span to put back on *empty. */
static void give_up(struct pf_family *f, struct pf_span *s, struct pf_span **empty)
{
    struct pf_span *e = after_give(f, s);
    if (e) {
        e->next = *empty;
        *empty = e;
    }
}

static void put_all(struct pf_span *empty)
{
    while (empty) {
        struct pf_span *t = empty;
        empty = t->next;
        pf_span_put(t);
    }
}

void pf_family_disown(struct pf_family *f, struct pf_own *own)
{
    struct pf_span *empty = NULL, *s;
    pf_lock(&f->lock);
    /* Spans that are used up stay named: they are the family's once a
     * slot of theirs comes back and after_give finds own inactive. */
    own->active = 0;
    if ((s = own->cur) != NULL && s->owner == own) {
        set_owner(s, NULL);
        give_up(f, s, &empty);
    }
    own->cur = NULL;
    while ((s = own->home) != NULL) {
        home_unlink(own, s);
        set_owner(s, NULL);
        give_up(f, s, &empty);
    }
    pf_unlock(&f->lock);
    put_all(empty);
}

/* Slots of each class given back lately, and how many of them by a thread
 * other than the one whose span they are in (see pf_family_class_shared).
 * Relaxed counts, read and reset without a lock: a guide, not a tally. */
static struct travel {
    _Alignas(64) _Atomic uint32_t flushed;
    _Atomic uint32_t foreign;
    _Atomic uint32_t left; /* refills left that share */
    _Atomic uint32_t calm; /* refills left, after those, before the counts count again */
} travel[PF_NCLASSES];

static void travel_note(unsigned cls, uint32_t n, uint32_t foreign)
{
    struct travel *t = &travel[cls];
    uint32_t fl = atomic_fetch_add_explicit(&t->flushed, n, memory_order_relaxed) + n;
    if (foreign)
        atomic_fetch_add_explicit(&t->foreign, foreign, memory_order_relaxed);
    if (fl >= PF_TRAVEL_WINDOW) { /* the recent past weighs most */
        atomic_store_explicit(&t->flushed, fl / 2, memory_order_relaxed);
        atomic_store_explicit(&t->foreign, atomic_load_explicit(&t->foreign, memory_order_relaxed) / 2,
                              memory_order_relaxed);
    }
}

int pf_family_class_shared(unsigned cls)
{
    struct travel *t = &travel[cls];
    uint32_t left = atomic_load_explicit(&t->left, memory_order_relaxed);
    if (left) {
        atomic_store_explicit(&t->left, left - 1, memory_order_relaxed);
        if (left == 1) /* the last: the counts wait (PF_TRAVEL_CALM) */
            atomic_store_explicit(&t->calm, PF_TRAVEL_CALM, memory_order_relaxed);
        return 1;
    }
    uint32_t calm = atomic_load_explicit(&t->calm, memory_order_relaxed);
    if (calm) {
        atomic_store_explicit(&t->calm, calm - 1, memory_order_relaxed);
        if (calm == 1) {
            atomic_store_explicit(&t->flushed, 0, memory_order_relaxed);
            atomic_store_explicit(&t->foreign, 0, memory_order_relaxed);
        }
        return 0;
    }
    uint32_t fl = atomic_load_explicit(&t->flushed, memory_order_relaxed);
    uint32_t fo = atomic_load_explicit(&t->foreign, memory_order_relaxed);
    if (fl < PF_TRAVEL_MIN || (uint64_t)fo * PF_TRAVEL_SHARE < fl)
        return 0;
    atomic_store_explicit(&t->flushed, 0, memory_order_relaxed);
    atomic_store_explicit(&t->foreign, 0, memory_order_relaxed);
    atomic_store_explicit(&t->left, PF_TRAVEL_REFILLS, memory_order_relaxed);
    return 1;
}

/* Whether state entry st is one of s's (s may be NULL): the slots of a
 * batch come in runs of one span, looked up once per run. */
static int in_span(const struct pf_span *s, const uint16_t *st)
{
    return s && (uintptr_t)st - (uintptr_t)s->state < (uintptr_t)s->nslots * sizeof *st;
}

/* How many slots of in[0, n) are in spans of an owner other than own
 * (slots of spans no cache owns are nobody's: not counted). The slots of
 * a batch come in runs of one span, looked up once per run. s->owner is
 * written under the family's lock, by any thread (after_give makes a span
 * the family's), so this read may be stale: a guide, as the counts are. */
static uint32_t count_foreign(const struct pf_cached *in, int n, const struct pf_own *own)
{
    uint32_t foreign = 0;
    const struct pf_span *s = NULL;
    int other = 0;
    for (int i = 0; i < n; i++) {
        if (!in_span(s, in[i].state)) {
            s = pf_pagemap_get(in[i].p);
            const struct pf_own *o = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
            other = o != own && o != NULL;
        }
        foreign += (uint32_t)other;
    }
    return foreign;
}

/* Under f->lock: the n slots of in[] back to their spans; spans that
 * emptied go on *empty, for the caller to pool once unlocked. A batch
 * holds runs of slots of one span (a cache refills from one span at a
 * time): the span is looked up, its slots given back, and its lists
 * updated, once per run. A span emptied by a run has no slot left in the
 * batch. */
static void give_runs(struct pf_family *f, unsigned cls, const struct pf_cached *in, int n,
                      struct pf_span **empty, const struct pf_own *by)
{
    for (int i = 0; i < n;) {
        struct pf_span *s = pf_pagemap_get(in[i].p);
        const struct pf_own *o = s->owner;
        uint32_t k = pf_span_give_run(s, in + i, (uint32_t)(n - i));
        i += (int)k;
        /* An owner's slots given back by another cache travelled (by:
         * the flushing cache's when it holds no span, whose flush is
         * counted nowhere else; NULL for an owner's flush, counted once
         * in pf_family_flush, and for a collection step or an exit, which
         * tell nothing). */
        if (by && o && o != by && o->active)
            travel_note(cls, k, k);
        give_up(f, s, empty);
    }
    note_out(f, -(int64_t)n * pf_class_size[cls]);
}

void pf_family_park(struct pf_family *f, unsigned cls, struct pf_cached *in, int n)
{
    if (!xfer_put(cls, in, n))
        pf_family_flush(f, cls, in, n, NULL);
}

void pf_family_flush(struct pf_family *f, unsigned cls, struct pf_cached *in, int n,
                     const struct pf_own *own)
{
    const struct pf_own *by = own;
    if (own && !own->active) {
        /* A cache that holds no span of the class (it never refilled from
         * one, or gave them back) holds other threads' slots only: the
         * batch goes to the transfer cache whole, no span looked up. */
        if (xfer_put(cls, in, n))
            return;
    } else if (own) {
        /* An owner's flush goes back to the spans whole: its own slots,
         * slots of other owners' spans (to their owners' home lists,
         * where their refills find them) and slots of spans no cache
         * owns. Only slots of other owners' spans count as travelled,
         * here and once. In the transfer cache, other owners' slots
         * would go to the next refill of any thread, and a thread that
         * does not own them would flush them there again: a batch of
         * them went round between two such threads for good (its
         * owner's refills never came while it was there), each turn
         * counting as travel, until the class was shared again however
         * much its threads kept to their own objects. */
        travel_note(cls, (uint32_t)n, count_foreign(in, n, own));
        by = NULL; /* counted: give_runs counts no slot of it again */
    }
    struct pf_span *empty = NULL;
    pf_lock(&f->lock);
    give_runs(f, cls, in, n, &empty, by);
    pf_unlock(&f->lock);
    put_all(empty);
}

/* A line of its own: every calloc reads it, and nothing near it is
 * written while it is 0. */
_Alignas(64) atomic_int pf_hold;
static _Atomic uint64_t hold_until; /* CLOCK_MONOTONIC ms at which waiters go on */
static __thread char hold_mine;

void pf_family_hold(int on)
{
    if (on) {
        /* One deadline for the whole hold, not one per wait: a thread that
         * allocates again and again while it holds what the holder waits
         * for costs the holder PF_HOLD_MAX_MS once. */
        atomic_store_explicit(&hold_until, pf_os_now_ms() + PF_HOLD_MAX_MS, memory_order_relaxed);
        hold_mine = 1;
        atomic_store_explicit(&pf_hold, 1, memory_order_seq_cst);
    } else {
        /* The flag first: a handler of this thread that allocates between
         * the two stores would wait for its own thread. */
        atomic_store_explicit(&pf_hold, 0, memory_order_seq_cst);
        hold_mine = 0;
        pf_os_futex_wake(&pf_hold, INT32_MAX);
    }
}

void pf_family_hold_within(uint64_t ms)
{
    uint64_t until = pf_os_now_ms() + ms;
    if (hold_mine && until < atomic_load_explicit(&hold_until, memory_order_relaxed))
        atomic_store_explicit(&hold_until, until, memory_order_relaxed);
}

void pf_family_held_wait(void)
{
    if (hold_mine)
        return;
    while (atomic_load_explicit(&pf_hold, memory_order_acquire) &&
           pf_os_now_ms() < atomic_load_explicit(&hold_until, memory_order_relaxed))
        pf_os_futex_wait_ms(&pf_hold, 1, 10);
}

int pf_family_hold_child(void)
{
    /* The holder's own fork (in a handler that interrupted the walk) goes
     * on with the walk in the child, which gives the hold back. */
    if (!atomic_load_explicit(&pf_hold, memory_order_relaxed) || hold_mine)
        return 0;
    atomic_store_explicit(&pf_hold, 0, memory_order_relaxed);
    return 1;
}

void *pf_family_alloc_locked(struct pf_family *f, unsigned cls, size_t req, int *clean)
{
    pf_family_hold_point();
    ensure_registered(f);
    struct pf_span *spare = NULL;
    struct pf_ahead ahead;
    ahead.n = 0;
    pf_lock(&f->lock);
    struct pf_span *s = partial_or_new(f, cls, &spare);
    if (!s) {
        pf_unlock(&f->lock);
        return NULL;
    }
    /* One slot as a refill takes a batch: a fresh one's pages named to be
     * made resident once the lock is given back (pf_span_take_many). */
    struct pf_cached c;
    take_slots(s, &c, 1, &ahead);
    void *p = c.p;
    *clean = *c.state == PF_SLOT_CLEAN;
    if (s->used == s->nslots)
        list_unlink(f, s);
    uint32_t slot = s->slot_size;
    *c.state = pf_state_live(slot, req);
    PF_RELAXED_ADD(f->allocs, 1);
    PF_RELAXED_ADD(f->live_bytes, slot);
    PF_RELAXED_ADD(f->req_in, req);
    note_out(f, slot);
    if (f->kind != PF_KIND_CLASS && PF_RELAXED_GET(f->live_bytes) > PF_RELAXED_GET(f->peak))
        __atomic_store_n(&f->peak, PF_RELAXED_GET(f->live_bytes), __ATOMIC_RELAXED);
    pf_unlock(&f->lock);
    if (spare)
        pf_span_unget(spare);
    pf_span_ahead_apply(&ahead);
    return p;
}

void pf_family_count_cell(struct pf_family *f, int made)
{
    if (made)
        ensure_registered(f);
    pf_lock(&f->lock);
    if (made)
        PF_RELAXED_ADD(f->allocs, 1);
    else
        PF_RELAXED_ADD(f->frees, 1);
    PF_RELAXED_ADD(f->cells, made ? 1 : (uint64_t)-1);
    pf_unlock(&f->lock);
}

void pf_family_free_locked(struct pf_span *s, uint32_t idx, uint32_t req)
{
    struct pf_family *f = s->family;
    pf_lock(&f->lock);
    uint32_t slot = s->slot_size;
    PF_RELAXED_ADD(f->frees, 1);
    PF_RELAXED_ADD(f->live_bytes, -(uint64_t)slot);
    PF_RELAXED_ADD(f->req_out, req);
    note_out(f, -(int64_t)slot);
    pf_span_give(s, idx);
    struct pf_span *e = after_give(f, s);
    pf_unlock(&f->lock);
    if (e)
        pf_span_put(e);
}

void pf_family_requested(struct pf_family *f, size_t add, size_t sub)
{
    pf_lock(&f->lock);
    PF_RELAXED_ADD(f->req_in, add);
    PF_RELAXED_ADD(f->req_out, sub);
    pf_unlock(&f->lock);
}

void pf_family_add_large(struct pf_family *f, struct pf_span *s)
{
    ensure_registered(f);
    pf_lock(&f->lock);
    all_push(f, s);
    PF_RELAXED_ADD(f->allocs, 1);
    PF_RELAXED_ADD(f->live_bytes, s->bytes);
    PF_RELAXED_ADD(f->req_in, s->req);
    if (PF_RELAXED_GET(f->live_bytes) > PF_RELAXED_GET(f->peak))
        __atomic_store_n(&f->peak, PF_RELAXED_GET(f->live_bytes), __ATOMIC_RELAXED);
    pf_unlock(&f->lock);
}

void pf_family_remove_large(struct pf_family *f, struct pf_span *s)
{
    pf_lock(&f->lock);
    all_unlink(f, s);
    PF_RELAXED_ADD(f->frees, 1);
    PF_RELAXED_ADD(f->live_bytes, -(uint64_t)s->bytes);
    PF_RELAXED_ADD(f->req_out, s->req);
    pf_unlock(&f->lock);
}

void pf_family_resize_large(struct pf_family *f, struct pf_span *s, size_t old_bytes, size_t old_req)
{
    pf_lock(&f->lock);
    PF_RELAXED_ADD(f->mapped, (uint64_t)s->bytes - old_bytes);
    PF_RELAXED_ADD(f->live_bytes, (uint64_t)s->bytes - old_bytes);
    PF_RELAXED_ADD(f->req_in, s->req);
    PF_RELAXED_ADD(f->req_out, old_req);
    if (PF_RELAXED_GET(f->live_bytes) > PF_RELAXED_GET(f->peak))
        __atomic_store_n(&f->peak, PF_RELAXED_GET(f->live_bytes), __ATOMIC_RELAXED);
    pf_unlock(&f->lock);
}

/* ---- typed families ----------------------------------------------------------- */
/* A family named a followed by b (not yet registered); NULL when out of
 * memory. */
static struct pf_family *typed_new(const char *a, const char *b, size_t size, size_t align)
{
    size_t na = strlen(a), len = na + strlen(b);
    struct pf_family *f = pf_meta_alloc(sizeof(*f) + PF_NCLASSES * sizeof(struct pf_span *));
    if (!f)
        return NULL;
    f->partial = (struct pf_span **)(f + 1);
    if (len >= PF_NAME_MAX) {
        char *whole = pf_meta_alloc(len + 1);
        if (!whole)
            return NULL; /* f stays in metadata memory: rare, small */
        memcpy(whole, a, na);
        memcpy(whole + na, b, len - na + 1);
        f->long_name = whole;
    }
    /* name[] shows a cut short enough to keep b ("/<size>", "/<size>#<n>") visible */
    struct pf_fmt n;
    size_t keep = PF_NAME_MAX - 1 - (len - na); /* b is short: at most 32 bytes */
    pf_fmt_init(&n, f->name, PF_NAME_MAX, -1);
    pf_fmt_mem(&n, a, na < keep ? na : keep);
    pf_fmt_str(&n, b);
    pf_fmt_cstr(&n);
    f->kind = PF_KIND_TYPED;
    f->obj_size = size;
    f->obj_align = align < 16 ? 16 : align;
    return f;
}

/* Under reg_lock is not allowed here (mapping); called before taking it. */
static int reg_reserve(void)
{
    if (reg_dyn || atomic_load_explicit(&reg_count, memory_order_relaxed) < 200)
        return 0;
    struct pf_family **m = pf_os_map_meta(sizeof(*m) * REG_MAX);
    if (!m)
        return -1;
    pf_lock(&reg_lock);
    if (!reg_dyn) {
        reg_dyn = m;
        m = NULL;
    }
    pf_unlock(&reg_lock);
    if (m)
        pf_os_unmap_meta(m, sizeof(*m) * REG_MAX);
    return 0;
}

pf_family_t *pf_family_get(const char *name, size_t size)
{
    if (!name || !*name || size == 0 || reserved_name(name)) {
        errno = EINVAL;
        return NULL;
    }
    pf_lock(&reg_lock);
    struct pf_family *f = find_locked(name, "");
    pf_unlock(&reg_lock);
    if (f) {
        if (f->kind != PF_KIND_TYPED || f->obj_size != size) {
            errno = EINVAL;
            return NULL;
        }
        return f;
    }
    if (reg_reserve() != 0 || !(f = typed_new(name, "", size, 16))) {
        errno = ENOMEM;
        return NULL;
    }
    pf_lock(&reg_lock);
    struct pf_family *had = find_locked(name, "");
    if (!had && reg_add(f) != 0)
        had = NULL, f = NULL;
    pf_unlock(&reg_lock);
    if (had)
        f = (had->kind == PF_KIND_TYPED && had->obj_size == size) ? had : NULL;
    if (!f)
        errno = had ? EINVAL : ENOMEM;
    return f; /* an unregistered duplicate stays in metadata memory: rare, small */
}

/* Whether f may hold objects of `size` bytes that a typed allocation asks
 * for by name. */
static int typed_of_size(const struct pf_family *f, size_t size)
{
    return f->kind == PF_KIND_TYPED && f->obj_size == size;
}

static uint32_t key_hash(const char *key, size_t size)
{
    uintptr_t h = (uintptr_t)key * 0x9E3779B97F4A7C15ull ^ size * 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 40) % KEY_SLOTS;
}

struct pf_family *pf_family_typed(const char *key, size_t size, size_t align)
{
    uint32_t h = key_hash(key, size);
    for (uint32_t i = 0; i < 8; i++) {
        struct key_slot *k = &key_cache[(h + i) % KEY_SLOTS];
        const char *kk = atomic_load_explicit(&k->key, memory_order_acquire);
        if (kk == key && k->size == size)
            return k->fam;
        if (!kk)
            break;
    }
    /* Slow path: by name. A name already used with another size (two
     * translation units with different `struct node`s) gets its own family,
     * named "<name>/<size>"; when that name is taken too, by a family of
     * yet another size (pf_family_get may register any name), then
     * "<name>/<size>#2", "#3", ...: a family only ever holds objects of
     * its own size (its stats count live_requested / size objects). */
    if (reg_reserve() != 0)
        return NULL;
    char suffix[40];
    struct pf_family *f;
again:
    suffix[0] = 0;
    pf_lock(&reg_lock);
    f = find_locked(key, "");
    for (uint64_t nth = 1; (nth == 1 && reserved_name(key)) || (f && !typed_of_size(f, size)); nth++) {
        struct pf_fmt n;
        pf_fmt_init(&n, suffix, sizeof suffix, -1);
        pf_fmt_char(&n, '/');
        pf_fmt_u64(&n, size);
        if (nth > 1) {
            pf_fmt_char(&n, '#');
            pf_fmt_u64(&n, nth);
        }
        pf_fmt_cstr(&n);
        f = find_locked(key, suffix);
    }
    pf_unlock(&reg_lock);
    if (!f) {
        struct pf_family *nf = typed_new(key, suffix, size, align);
        if (!nf)
            return NULL;
        pf_lock(&reg_lock);
        f = find_locked(key, suffix);
        if (!f && reg_add(nf) == 0)
            f = nf;
        pf_unlock(&reg_lock);
        if (!f)
            return NULL;
        if (!typed_of_size(f, size))
            goto again; /* another thread took the name meanwhile, for another size */
    }
    pf_lock(&reg_lock);
    for (uint32_t i = 0; i < 8; i++) {
        struct key_slot *k = &key_cache[(h + i) % KEY_SLOTS];
        const char *kk = atomic_load_explicit(&k->key, memory_order_relaxed);
        if (kk == key && k->size == size)
            break;
        if (!kk) {
            k->size = size;
            k->fam = f;
            atomic_store_explicit(&k->key, key, memory_order_release);
            break;
        }
    }
    pf_unlock(&reg_lock);
    return f;
}

/* ---- trim and fork ------------------------------------------------------------ */
/* The newest transfer batch of class cls back to its spans; 0 when there
 * was none. The family's lock is held from before the batch leaves the
 * transfer cache until its slots are in their spans (family, then
 * transfer, the lock order): the fork's prepare handler takes both, so no
 * fork finds the batch on this thread's stack, in neither place. Between
 * the two steps, a fork from another thread (while malloc_trim gives the
 * batches back, or a collection step) left the child the batch out for
 * good: its spans never emptied again. */
static int xfer_give_back(unsigned cls)
{
    struct xfer *x = &xfers[cls];
    if (!atomic_load_explicit(&xfer_used[cls], memory_order_relaxed) ||
        atomic_load_explicit(&x->n, memory_order_relaxed) == 0)
        return 0;
    struct pf_family *f = pf_family_class(cls);
    struct pf_cached batch[XFER_BATCH_MAX];
    struct pf_span *empty = NULL;
    pf_lock(&f->lock);
    int k = xfer_get(cls, batch, XFER_BATCH_MAX);
    if (k > 0)
        give_runs(f, cls, batch, k, &empty, NULL);
    pf_unlock(&f->lock);
    put_all(empty);
    return k > 0;
}

void pf_family_collect(unsigned cls, uint32_t *seen)
{
    struct xfer *x = &xfers[cls];
    if (atomic_load_explicit(&x->n, memory_order_relaxed) == 0)
        return;
    /* Each thread compares with what it saw itself: with a count shared by
     * every thread's looks, two looks a moment apart would find a busy
     * class idle. */
    uint32_t moves = __atomic_load_n(&x->moves, __ATOMIC_RELAXED);
    if (moves != *seen) {
        *seen = moves;
        return;
    }
    /* One batch a look, the newest (the others wait a round longer). */
    if (xfer_give_back(cls))
        *seen = moves + 1; /* its own take is not a use */
}

void pf_family_trim(void)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++)
        while (xfer_give_back(c))
            ;
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++) {
        struct pf_family *f = pf_family_at(i);
        struct pf_span *empty = NULL;
        pf_lock(&f->lock);
        /* A class family's lists are its own class's entry of the shared
         * heads (the others belong to the other class families); the large
         * family has none. */
        unsigned lo = 0, hi = PF_NCLASSES;
        if (!f->partial) {
            size_t slot = __atomic_load_n(&f->obj_size, __ATOMIC_RELAXED);
            lo = f->kind == PF_KIND_CLASS ? pf_size_class(slot) : PF_NCLASSES;
            hi = lo < PF_NCLASSES ? lo + 1 : lo;
        }
        for (unsigned c = lo; c < hi; c++)
            for (struct pf_span *s = *pf_family_partial(f, c), *nx; s; s = nx) {
                nx = s->next;
                if (s->used == 0) {
                    list_unlink(f, s);
                    all_unlink(f, s);
                    s->next = empty;
                    empty = s;
                }
            }
        pf_unlock(&f->lock);
        while (empty) {
            struct pf_span *s = empty;
            empty = s->next;
            pf_span_put(s);
        }
    }
}

/* A stretch of free slots [first, first + n) of s, taken out of its bitmap
 * while the pages they cover whole are given back. */
struct trim_run {
    struct pf_span *s;
    uint32_t first, n;
    uintptr_t lo, hi; /* the pages they cover whole */
};

#define TRIM_RUNS 32

/* Held by trim_pages while it has stretches out of their spans (the
 * family lock is down around their decommit), and by the fork's prepare
 * handler before any family lock: a fork in that window left the child
 * with the stretches out for good (no thread of its own gives them back),
 * their spans never empty again (up to 32 spans of a family lost at each
 * such fork). Taken before a family lock, never under one. */
static pf_lock_t trim_lock = PF_LOCK_INIT;

/* The first slot from i on (below end, else end) whose free bit is set,
 * or with clear set, is not. */
static uint32_t next_bit(const uint64_t *bits, uint32_t i, uint32_t end, int clear)
{
    uint64_t flip = clear ? ~(uint64_t)0 : 0;
    while (i < end) {
        uint64_t w = (bits[i >> 6] ^ flip) >> (i & 63);
        if (w)
            return i + (uint32_t)__builtin_ctzll(w) < end ? i + (uint32_t)__builtin_ctzll(w) : end;
        i = (i | 63) + 1;
    }
    return end;
}

/* Under f->lock: from span *sp's slot *at on along f->all, takes out of
 * their spans' bitmaps up to TRIM_RUNS stretches of free slots that cover a
 * whole page or more (used goes up by as many, so no span empties
 * meanwhile and none is carved again). *sp and *at say where the next look
 * starts: the span of the last stretch taken, which stays on f->all while
 * its stretch is out, or NULL at the end of the list. */
static int trim_collect(struct pf_span **sp, uint32_t *at, struct trim_run *runs)
{
    uintptr_t ps = pf_os_page_size();
    int nr = 0;
    for (struct pf_span *s = *sp; s; s = s->anext, *at = 0) {
        *sp = s;
        if (s->kind != PF_SPAN_SMALL || s->used == 0 || s->nfree == 0)
            continue;
        uint32_t end = s->bump;
        for (uint32_t i = next_bit(s->freebits, *at, end, 0); i < end;) {
            uint32_t j = next_bit(s->freebits, i, end, 1);
            uint32_t next = j;
            /* A listed span must keep a slot to give (a locked malloc takes
             * one from the first partial span without looking): its first
             * or last free slot stays out of the stretch, whichever leaves
             * more whole pages in it. */
            if (s->used + (j - i) == s->nslots) {
                uintptr_t a = s->start + (uintptr_t)i * s->slot_size;
                uintptr_t b = s->start + (uintptr_t)j * s->slot_size;
                uintptr_t keep_first = ((b & ~(ps - 1)) - ((a + s->slot_size + ps - 1) & ~(ps - 1)));
                uintptr_t keep_last = (((b - s->slot_size) & ~(ps - 1)) - ((a + ps - 1) & ~(ps - 1)));
                if ((intptr_t)keep_first >= (intptr_t)keep_last)
                    i++;
                else
                    j--;
            }
            uintptr_t lo = (s->start + (uintptr_t)i * s->slot_size + ps - 1) & ~(ps - 1);
            uintptr_t hi = (s->start + (uintptr_t)j * s->slot_size) & ~(ps - 1);
            if (j > i && hi > lo) {
                if (nr == TRIM_RUNS) { /* the next look starts after the last one taken */
                    *sp = runs[nr - 1].s;
                    *at = runs[nr - 1].first + runs[nr - 1].n;
                    return nr;
                }
                for (uint32_t k = i; k < j; k++)
                    s->freebits[k >> 6] &= ~((uint64_t)1 << (k & 63));
                s->nfree -= j - i;
                s->used += j - i;
                runs[nr++] = (struct trim_run){s, i, j - i, lo, hi};
            }
            i = next_bit(s->freebits, next, end, 0);
        }
    }
    *sp = NULL;
    return nr;
}

/* Gives back the pages of free slots inside spans that still hold live
 * objects (or slots parked in thread caches): what pf_span_trim cannot
 * reach, since only empty spans go to the pool. A heap of 2 KiB blocks of
 * which one in 32 stays live kept all its pages after malloc_trim, as did
 * the spans of threads that went idle with a few slots in their caches
 * (glibc's malloc_trim gives such pages back). The slots are taken out of
 * their spans' bitmaps under the lock, their pages decommitted without it,
 * and the slots given back as any freed slot is; they keep their states
 * (free), and read as zero. Returns the bytes decommitted. */
static size_t trim_pages(struct pf_family *f)
{
    size_t released = 0;
    struct trim_run runs[TRIM_RUNS];
    struct pf_span *empty = NULL; /* spans that emptied, pooled at the end */
    pf_lock(&trim_lock);
    pf_lock(&f->lock);
    struct pf_span *s = f->all;
    uint32_t at = 0;
    while (s) {
        int nr = trim_collect(&s, &at, runs);
        if (nr == 0)
            break;
        pf_unlock(&f->lock);
        for (int r = 0; r < nr; r++)
            if (pf_os_decommit((void *)runs[r].lo, runs[r].hi - runs[r].lo) == 0)
                released += runs[r].hi - runs[r].lo;
        pf_lock(&f->lock);
        for (int r = 0; r < nr; r++) {
            struct pf_span *t = runs[r].s;
            for (uint32_t k = runs[r].first; k < runs[r].first + runs[r].n; k++)
                pf_span_give(t, k);
            if (r + 1 < nr && runs[r + 1].s == t)
                continue;
            /* As for any slot given back. The look goes on from s (held
             * since, under the lock), or after it if it emptied and left. */
            struct pf_span *nx = t->anext;
            struct pf_span *e = after_give(f, t);
            if (e) {
                e->next = empty;
                empty = e;
                if (t == s) {
                    s = nx;
                    at = 0;
                }
            }
        }
    }
    pf_unlock(&f->lock);
    pf_unlock(&trim_lock);
    put_all(empty);
    return released;
}

size_t pf_family_trim_pages(void)
{
    size_t released = 0;
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++)
        released += trim_pages(pf_family_at(i));
    return released;
}

/* The unregistered class families whose locks the fork's prepare handler
 * took: another thread may set a class up (class_made, no lock) between
 * the prepare and the parent's or child's handler, and those give back
 * exactly what was taken. Written by the forking thread under reg_lock. */
static uint8_t fork_took[PF_NCLASSES];
static int trim_took; /* the prepare handler took trim_lock */

void pf_family_fork_lock(void)
{
    /* No malloc_trim has slots out of their spans, unless it is this
     * thread's own, interrupted by a handler that forks: the child has
     * that thread, which gives them back. */
    trim_took = !pf_lock_mine(&trim_lock);
    if (trim_took)
        pf_lock(&trim_lock);
    pf_lock(&reg_lock);
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++)
        pf_lock(&pf_family_at(i)->lock);
    /* Class families not yet registered still have locks a thread may hold. */
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        fork_took[c] = atomic_load_explicit(&class_made[c], memory_order_acquire) && !class_fam[c].registered;
        if (fork_took[c])
            pf_lock(&class_fam[c].lock);
    }
    for (unsigned c = 0; c < PF_NCLASSES; c++)
        pf_lock(&xfers[c].lock);
}

void pf_family_fork_unlock(int child)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++)
        child ? pf_lock_reset(&xfers[c].lock) : pf_unlock(&xfers[c].lock);
    for (unsigned c = 0; c < PF_NCLASSES; c++)
        if (fork_took[c])
            child ? pf_lock_reset(&class_fam[c].lock) : pf_unlock(&class_fam[c].lock);
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++)
        child ? pf_lock_reset(&pf_family_at(i)->lock) : pf_unlock(&pf_family_at(i)->lock);
    child ? pf_lock_reset(&reg_lock) : pf_unlock(&reg_lock);
    if (trim_took)
        child ? pf_lock_reset(&trim_lock) : pf_unlock(&trim_lock);
}
