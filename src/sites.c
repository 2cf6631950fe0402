/*
 * sites.c — the stack table and the leak walk.
 * Stack table: an allocation's stack (the return addresses from the first
 * frame outside pfalloc outwards, a few runtime frames then up to the
 * configured depth) is interned by open addressing on a hash of its frames;
 * ids are slot indices + 1 (0 means "not recorded"). An entry is claimed
 * with a compare-exchange to BUSY, filled, then published by a release
 * store of its key, which carries the runtime flag: readers never see a
 * half-written stack or another stack's flag. A reader meeting a BUSY entry
 * waits a little, then probes on (at worst one stack gets two entries).
 * Entries are never removed. When the table is full, new stacks share the
 * id of an "other sites" entry.
 * Leak walk: under each family's lock, every live slot (state >= 2) and large
 * block is added to a (stack, family, inherited, reachability) table, after the
 * reachability pass (reach.c); the report then sorts it, lost ones first, then
 * by bytes. Memory for both tables comes from pfalloc's own mappings.
 */
#include "sites.h"

#include <string.h>
#include <time.h>

#include "check.h"
#include "config.h"
#include "family.h"
#include "guard.h"
#include "module.h"
#include "reach.h"
#include "report.h"
#include "stats.h"
#include "symtab.h"
#include "tcache.h"

#define SITE_SLOTS (1u << 16)
#define LEAK_SLOTS (1u << 14)
#define OTHER_ID (SITE_SLOTS + 1) /* shared by stacks that found the table full; entry SITE_SLOTS */
#define EARLY_ID (SITE_SLOTS + 2) /* live before recording began: the loader's, libc's, and what
                                     libraries' constructors that ran before pfalloc's made */
#define PROBES 64

/* Entry key: 0 empty, KEY_BUSY being filled, else hash bits | 2 | runtime. */
#define KEY_BUSY ((uint64_t)1)
#define KEY_RUNTIME ((uint64_t)1) /* in a published key: no frame outside the runtime was found */

/* Frames kept per stack: the configured depth plus up to RUNTIME_KEPT
 * runtime frames in front of the first frame outside the runtime
 * (strdup, std::string's constructor: the call the program made). */
#define RUNTIME_KEPT PF_SITES_RUNTIME_KEPT

struct site {
    _Atomic uint64_t key;
    uint8_t depth; /* frames kept */
    uint8_t first; /* index of the first frame outside the runtime (the site) */
    /* The module generation (pf_module_gen) under which the frames were
     * last found in the modules recorded for them, or SITE_STALE with it:
     * found elsewhere (another object mapped where one was unloaded). */
    _Atomic uint32_t checked;
};
#define SITE_STALE 0x80000000u

/* What a slot keeps: the site id in the low bits, and above them the fork
 * generation of the process that allocated the object (how many forks
 * without exec lie between this image's start and that process). An
 * object whose generation is below the process's own was inherited
 * through fork: the child did not allocate it. Saturates at GEN_MAX. */
#define ID_BITS 24
#define ID_MASK ((1u << ID_BITS) - 1)
#define GEN_MAX 255u

int pf_sites_on;
/* PFALLOC_SITES=1 asked for call sites, and their tables could not be
 * mapped: the report says so instead of telling the user to ask. */
static int sites_unmapped;
#define SITES_UNMAPPED "no memory for their tables at start-up"
static struct site *sites;  /* SITE_SLOTS + 2 entries */
static uint32_t cap;         /* frames kept per entry */
static uintptr_t *frames;    /* cap per entry */
/* Per frame: the module that held its address when the stack was first
 * seen, written by the thread that claimed the entry (read at exit). */
static uint16_t *modules;    /* cap per entry */
static uint32_t gen;       /* this process's fork generation */

static int walk_in_signal; /* for_each_live gives up rather than wait on a lock */

/* Calls fn for every live object of every family, under that family's
 * lock: `site` is where its call-site id is kept (NULL when its span keeps
 * none), `bytes` what the program asked for, `p` its address. 0, or -1 when
 * a lock stayed held in a signal handler (the walk stops there). */
struct zero_walk {
    void (*fn)(const struct pf_family *f, uint32_t *site, uint64_t bytes, uintptr_t p);
    const struct pf_family *f;
};

static void each_zero(uint32_t *site, uintptr_t p, void *ctx)
{
    const struct zero_walk *z = ctx;
    z->fn(z->f, site, 0, p);
}

/* Calls fn on every live object of every family, under the family's lock:
 * its blocks, and the checking mode's zero-size cells, which the smallest
 * class counts. */
static int for_each_live(void (*fn)(const struct pf_family *f, uint32_t *site, uint64_t bytes, uintptr_t p))
{
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++) {
        struct pf_family *f = pf_family_at(i);
        if (walk_in_signal) {
            if (!pf_lock_try(&f->lock, 2000))
                return -1;
        } else {
            pf_lock(&f->lock);
        }
        for (struct pf_span *s = f->all; s; s = s->anext) {
            if (s->kind == PF_SPAN_LARGE) {
                fn(f, &s->site, s->req, s->start);
                continue;
            }
            for (uint32_t k = 0; k < s->bump; k++) {
                uint16_t st = s->state[k];
                if (st >= PF_SLOT_LIVE)
                    fn(f, s->sites ? &s->sites[k] : NULL,
                       pf_state_req(s->slot_size, st), s->start + (uintptr_t)k * s->slot_size);
            }
        }
        if (PF_UNLIKELY(pf_check_on) && f->kind == PF_KIND_CLASS && f->obj_size == pf_class_size[0])
            pf_guard_zero_each(each_zero, &(struct zero_walk){fn, f}, walk_in_signal);
        pf_unlock(&f->lock);
    }
    return 0;
}

static void mark_early(const struct pf_family *f, uint32_t *site, uint64_t bytes, uintptr_t p)
{
    (void)f;
    (void)bytes;
    (void)p;
    if (site)
        *site = EARLY_ID;
}

int pf_sites_enable(void)
{
    int depth = pf_config.stack_depth > 0 ? pf_config.stack_depth : PF_STACK_DEFAULT;
    if (!sites) {
        cap = (uint32_t)depth + RUNTIME_KEPT;
        sites = pf_os_map_meta(sizeof(struct site) * (SITE_SLOTS + 2));
        frames = pf_os_map_meta(sizeof(*frames) * (size_t)cap * (SITE_SLOTS + 2));
        modules = pf_os_map_meta(sizeof(*modules) * (size_t)cap * (SITE_SLOTS + 2));
    }
    /* The modules' records are one of the tables: without them a frame of
     * a module unloaded since would be named after whatever is mapped at
     * its address at the report. */
    if (!sites || !frames || !modules || pf_module_init() != 0) {
        sites_unmapped = 1;
        return -1;
    }
    atomic_store_explicit(&sites[EARLY_ID - 1].key, 2 | KEY_RUNTIME, memory_order_release);
    pf_span_enable_sites();
    /* What is live now was allocated before the program's code ran. */
    for_each_live(mark_early);
    pf_sites_on = 1;
    pf_tcache_direct_off();
    return 0;
}

uint32_t pf_sites_depth(void)
{
    return cap > RUNTIME_KEPT ? cap - RUNTIME_KEPT : 1;
}

static int same_frames(const struct site *s, const uintptr_t *f, const uintptr_t *pcs, int n)
{
    if (s->depth != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (f[i] != pcs[i])
            return 0;
    return 1;
}

/* Whether the frames of entry idx, the same addresses as pcs, are still in
 * the modules recorded for them: after an unload, another object may hold
 * those addresses, and the same addresses are then another stack. Looked
 * at once per entry and module generation `mgen`. */
static int same_modules(uint32_t idx, const uintptr_t *pcs, int n, uint32_t mgen)
{
    struct site *s = &sites[idx];
    uint32_t c = atomic_load_explicit(&s->checked, memory_order_relaxed);
    if (PF_LIKELY(c == mgen))
        return 1;
    if (c == (mgen | SITE_STALE))
        return 0;
    int same = 1;
    for (int k = 0; k < n && same; k++)
        same = modules[(size_t)idx * cap + (size_t)k] == (uint16_t)pf_module_of(pcs[k]);
    atomic_store_explicit(&s->checked, same ? mgen : mgen | SITE_STALE, memory_order_relaxed);
    return same;
}

uint32_t pf_sites_intern_stack(const uintptr_t *pcs, int n, int first, int runtime)
{
    if (!sites || n < 1)
        return OTHER_ID;
    uint32_t mgen = pf_module_gen() & ~SITE_STALE;
    if ((uint32_t)n > cap)
        n = (int)cap;
    if (first >= n)
        first = n - 1;
    /* For one frame this is the address times the golden ratio: neighbouring
     * sites spread over the table. */
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = (x ^ pcs[i]) * 0x9E3779B97F4A7C15ull;
    uint64_t key = (x & ~(uint64_t)3) | 2 | (runtime ? KEY_RUNTIME : 0);
    uint32_t h = (uint32_t)(x >> 48);
    for (uint32_t i = 0; i < PROBES; i++) {
        uint32_t idx = (h + i) & (SITE_SLOTS - 1);
        struct site *s = &sites[idx];
        uintptr_t *f = &frames[(size_t)idx * cap];
        uint64_t cur = atomic_load_explicit(&s->key, memory_order_acquire);
        if (cur == 0) {
            if (atomic_compare_exchange_strong(&s->key, &cur, KEY_BUSY)) {
                for (int k = 0; k < n; k++) {
                    f[k] = pcs[k];
                    modules[(size_t)idx * cap + (size_t)k] = (uint16_t)pf_module_of(pcs[k]);
                }
                s->depth = (uint8_t)n;
                s->first = (uint8_t)first;
                atomic_store_explicit(&s->checked, mgen, memory_order_relaxed);
                atomic_store_explicit(&s->key, key, memory_order_release);
                return idx + 1;
            }
        }
        for (int spin = 0; cur == KEY_BUSY && spin < 1000; spin++) {
            pf_cpu_relax();
            cur = atomic_load_explicit(&s->key, memory_order_acquire);
        }
        if (cur == key && same_frames(s, f, pcs, n) && same_modules(idx, pcs, n, mgen))
            return idx + 1;
    }
    return OTHER_ID;
}

uint32_t pf_sites_intern(uintptr_t addr, int runtime)
{
    return pf_sites_intern_stack(&addr, 1, 0, runtime);
}

void pf_sites_note(const void *p, uintptr_t addr, int runtime)
{
    pf_sites_store(p, pf_sites_intern(addr, runtime));
}

PF_FORK_CHILD void pf_sites_fork_child(void)
{
    if (gen < GEN_MAX)
        gen++;
}

int pf_sites_forked(void)
{
    return gen != 0;
}

void pf_sites_store(const void *p, uint32_t id)
{
    /* The checking mode keeps the site of a guarded block or cell in its
     * own table; a guarded large block's span keeps it too, for the leak
     * walk, which reads the span's. */
    id |= gen << ID_BITS;
    int guarded = PF_UNLIKELY(pf_check_on) && pf_check_site(p, id);
    struct pf_span *s = pf_pagemap_get(p);
    if (!s)
        return;
    if (s->kind == PF_SPAN_LARGE)
        s->site = id;
    else if (guarded)
        return;
    else if (s->kind == PF_SPAN_SMALL && s->sites)
        s->sites[pf_span_index(s, (uintptr_t)p - s->start)] = id;
}

/* ---- the leak walk ------------------------------------------------------------- */
struct leak {
    uint32_t site;      /* site id, 0 unknown */
    uint32_t family;    /* family id + 1, 0 empty */
    uint16_t inherited; /* allocated before the fork that made this process */
    uint16_t runtime;   /* the runtime's objects (pf_sites_runtime of their own sites) */
    uint32_t reach;     /* enum pf_reach_kind */
    uint64_t objects, bytes;
};

static struct leak *leaks;  /* LEAK_SLOTS entries */
static struct leak **order; /* the taken entries, [0, nleaks): sorted once a walk is over */
static uint32_t nleaks;
/* Entries of the table per 4 KiB, and a bit for each such unit that holds
 * an entry this walk took. Every entry is empty when a walk starts, so one
 * in a unit whose bit is clear is known to be empty without a read: a
 * page's first touch is then the write that takes an entry, one fault,
 * where a read first would fault the zero page in and the write again. */
#define LEAK_UNIT (4096 / sizeof(struct leak))
static uint64_t leak_units[(LEAK_SLOTS / LEAK_UNIT + 63) / 64];
static struct pf_leaks total;
static int grouped; /* the last walk had its tables (else: totals only) */
static const char *reach_note; /* why objects are unclassified, NULL when none is */
static int collected_at_exit;  /* the tables hold the exit's walk, not a signal's */
/* A walk: the thread that took it and its phase, the tables being filled
 * (WALK_READ: the heap is read, the reachability pass's tables are mapped)
 * or written out (WALK_WRITE), as tid * 4 + phase; 0 when there is none.
 * Taken by a collect, given back by pf_leaks_done (never after the
 * exit's, which is the last). */
enum { WALK_READ = 1, WALK_WRITE = 2 };
static _Atomic long walking;

void pf_leaks_fork_child(void)
{
    /* A walk under way in another thread at the fork is not the child's:
     * the child's exit report would wait two seconds for it, and its
     * signal reports would leave their leak section out. Nor is the
     * parent's exit walk, made before the fork. */
    atomic_store_explicit(&walking, 0, memory_order_relaxed);
    collected_at_exit = 0;
}

/* Takes the walk for thread `me` (*was: who has it, when another does). */
static int take_walk(long me, long *was)
{
    *was = 0;
    return atomic_compare_exchange_strong_explicit(&walking, was, me * 4 + WALK_READ, memory_order_acquire,
                                                   memory_order_relaxed);
}

/* Entries kept for the "(other sites)" groups of objects that found the
 * table full: each such object is counted in its family's one, so the
 * groups listed still add up to the totals. */
#define LEAK_OTHER_ROOM 1024u
/* The last of them, for objects whose family's "(other sites)" group finds
 * no room either (more families than that with objects beyond the table:
 * typed families by the thousand): one group of every family together for
 * each reachability, inherited and runtime (at most 20, and the entry that
 * stays empty). */
#define LEAK_ALL_ROOM 32u
#define OTHER_FAMILIES UINT32_MAX /* the family of those groups */

/* Counts the object in its group, taking an entry for a new one while
 * fewer than room - 1 are taken (one entry always stays empty, so a probe
 * ends). 0 when the group is new and there is no room for it. */
static int group(uint32_t site, uint32_t fam, uint64_t bytes, uint32_t reach, uint32_t inherited, uint32_t runtime,
                 uint32_t room)
{
    /* The groups of one site side by side: without call sites (site 0)
     * every group of a walk lies in one or two pages of the table, which a
     * short-lived process's exit report would otherwise fault in one page
     * a group. A family's groups start 4 entries after the one before's:
     * a family has one or two kinds of reachability in most walks, so they
     * rarely meet, and 32 families share a page (16 entries a family took
     * 3 pages for the 18 families of a short command). */
    uint32_t h = (site * 2654435761u + fam * 4u + reach * 2u + inherited) & (LEAK_SLOTS - 1);
    for (uint32_t i = 0; i < LEAK_SLOTS; i++) {
        uint32_t at = (h + i) & (LEAK_SLOTS - 1);
        struct leak *l = &leaks[at];
        uint64_t *unit = &leak_units[at / LEAK_UNIT / 64], bit = (uint64_t)1 << (at / LEAK_UNIT % 64);
        if (!(*unit & bit) || l->family == 0) {
            if (nleaks + 1 >= room)
                return 0;
            l->site = site;
            l->family = fam;
            l->inherited = (uint16_t)inherited;
            l->runtime = (uint16_t)runtime;
            l->reach = reach;
            order[nleaks++] = l; /* listed as it is taken: nothing scans or clears the whole table */
            *unit |= bit;
        }
        if (l->site == site && l->family == fam && l->inherited == inherited && l->runtime == runtime &&
            l->reach == reach) {
            l->objects++;
            l->bytes += bytes;
            return 1;
        }
    }
    return 0;
}

static void add(uint32_t word, uint32_t fam, uint64_t bytes, uint32_t reach, uint32_t inherited)
{
    uint32_t site = word & ID_MASK, runtime = (uint32_t)pf_sites_runtime(site);
    if (grouped && site != OTHER_ID && !group(site, fam, bytes, reach, inherited, runtime, LEAK_SLOTS - LEAK_OTHER_ROOM))
        site = OTHER_ID;
    if (grouped && site == OTHER_ID &&
        !group(OTHER_ID, fam, bytes, reach, inherited, runtime, LEAK_SLOTS - LEAK_ALL_ROOM))
        group(OTHER_ID, OTHER_FAMILIES, bytes, reach, inherited, runtime, LEAK_SLOTS);
    total.objects++;
    total.bytes += bytes;
    total.kind_objects[reach]++;
    total.kind_bytes[reach] += bytes;
    if (inherited) {
        total.inherited_objects++;
        total.inherited_bytes += bytes;
    } else if (!runtime) {
        total.program_objects++;
        total.program_bytes += bytes;
        total.program_kind_objects[reach]++;
        total.program_kind_bytes[reach] += bytes;
        if (reach == PF_REACH_DEFINITE || reach == PF_REACH_POSSIBLE || reach == PF_REACH_UNCLASSIFIED)
            total.program_lost++;
    }
}

static void add_live(const struct pf_family *f, uint32_t *site, uint64_t bytes, uintptr_t p)
{
    uint32_t word = site ? *site : 0, inherited;
    if (word)
        inherited = (word >> ID_BITS) < gen;
    else
        /* No site where one is kept (site not NULL), in a forked process
         * that records them: the parent's, another thread's malloc or
         * free in flight at the fork (the slot live, its site not stored
         * yet or already forgotten). Where none is kept (a region whose
         * table could not be mapped, sites off) nothing tells. */
        inherited = site && gen && pf_sites_on;
    add(word, f->id + 1, bytes, pf_reach_of(p), inherited);
}

void pf_leaks_reserve(void)
{
    if (!leaks)
        leaks = pf_os_map_meta(sizeof(*leaks) * LEAK_SLOTS);
    if (!order)
        order = pf_os_map_meta(sizeof(*order) * LEAK_SLOTS);
}

/* What the runtime and the loader allocated for themselves holds roots of
 * theirs (dynamic TLS blocks, key data): their contents count as roots. */
static int runtime_object(const struct pf_span *s, uint32_t idx, void *ctx)
{
    (void)ctx;
    uint32_t word = s->kind == PF_SPAN_LARGE ? s->site : s->sites ? s->sites[idx] : 0;
    return pf_sites_runtime(word & ID_MASK);
}

/* Lost ones first, then the biggest. */
static int before(const struct leak *a, const struct leak *b)
{
    return a->reach != b->reach ? a->reach < b->reach : a->bytes > b->bytes;
}

static int collect(struct pf_leaks *sum, int in_signal, uintptr_t stack_from, int at_exit, const uintptr_t *words,
                   size_t nwords)
{
    /* Reserved at start-up when leaks are reported; this late try is for a
     * caller that did not reserve. Without the tables the walk still counts
     * every object (totals and the program's share are exact), it only
     * cannot group them. */
    pf_leaks_reserve();
    memset(&total, 0, sizeof(total));
    /* Only the entries the last walk took are cleared: the table's other
     * pages stay untouched (a report at exit would otherwise make the whole
     * table resident for a few leaks). order[] lists every taken entry, in
     * the order taken or sorted; a walk without the tables took none. */
    grouped = leaks && order;
    if (grouped)
        for (uint32_t i = 0; i < nleaks; i++)
            memset(order[i], 0, sizeof(*order[i]));
    nleaks = 0;
    memset(leak_units, 0, sizeof(leak_units));
    reach_note = "off (PFALLOC_REACH=0)";
    /* With nothing live there is nothing to classify: the pass (the
     * program's mappings read, its threads' registers taken, tables mapped
     * for the heap) is left out, as most of what a short process's exit
     * report costs. An object made meanwhile is unclassified, with the note
     * that says so. */
    if (pf_config.reach && pf_stats_live_objects() == 0) {
        reach_note = NULL;
    } else if (pf_config.reach) {
        const uintptr_t extra[1][2] = {{(uintptr_t)words, (uintptr_t)(words + nwords)}};
        struct pf_reach_opts ro = {.root_object = runtime_object,
                                   .in_signal = in_signal,
                                   .at_exit = at_exit,
                                   .exit_report = !in_signal,
                                   .stack_from = stack_from,
                                   .ranges = extra,
                                   .nranges = words ? 1 : 0};
        pf_reach_run(&ro);
        reach_note = pf_reach_note();
    }
    walk_in_signal = in_signal;
    int rc = for_each_live(add_live);
    walk_in_signal = 0;
    pf_reach_release();
    if (rc != 0)
        return -1;
    /* A pass that ran to its end sees every object that was live when it
     * took its snapshot; objects made since (by threads a signal's pass
     * does not hold, or that waited longer than the hold lasts) are not
     * in it. */
    if (!reach_note && total.kind_objects[PF_REACH_UNCLASSIFIED])
        reach_note = "objects were made while the pass ran";
    if (grouped) {
        /* Largest first: shell sort of the occupied entries (no qsort: it may allocate). */
        uint32_t m = nleaks;
        for (uint32_t gap = m / 2; gap; gap /= 2)
            for (uint32_t i = gap; i < m; i++)
                for (uint32_t j = i; j >= gap && before(order[j], order[j - gap]); j -= gap) {
                    struct leak *t = order[j];
                    order[j] = order[j - gap];
                    order[j - gap] = t;
                }
    }
    collected_at_exit = !in_signal;
    if (sum)
        *sum = total;
    /* Not in a signal handler: the report that follows may demangle. */
    if (!in_signal)
        pf_sym_allow_demangle(1);
    return 0;
}

/* How long, after the exit's walk, other threads' allocations still wait
 * for the exit report to be written. */
#define PF_EXIT_WRITE_HOLD_MS 200

void pf_leaks_collect(struct pf_leaks *sum, uintptr_t stack_from, int at_exit, const uintptr_t *words,
                      size_t nwords)
{
    if (pf_leaks_collect_exit(sum, stack_from, at_exit, words, nwords) == 0)
        pf_tcache_hold(0);
}

void pf_leaks_exit_written(void)
{
    pf_tcache_hold(0);
}

int pf_leaks_collect_exit(struct pf_leaks *sum, uintptr_t stack_from, int at_exit, const uintptr_t *words,
                          size_t nwords)
{
    /* A signal handler's walk in another thread waits on no lock, but its
     * report may wait on a full pipe: after two seconds the exit takes the
     * walk from a report that is only writing (which may then read a table
     * being refilled; its indexes are all checked), and leaves alone one
     * still reading the heap (a huge heap, a starved thread): the
     * reachability pass's tables are that walk's, and one pass at a time
     * maps them. The exit's report then leaves its leak section out. A
     * walk of this very thread's, which its exit interrupted, never ends:
     * it is not waited for, and one still reading is left as one of
     * another thread's (it may hold a family lock, and the pass's tables
     * are its). The walk changes hands by compare-and-swap only, so a
     * walk that ends or begins meanwhile is seen (pf_leaks_done gives back
     * only its own). */
    long me = pf_os_tid(), mine = me * 4 + WALK_READ;
    for (int i = 0;; i++) {
        long was = 0;
        if (take_walk(me, &was))
            break;
        /* Held by an earlier exit walk, which keeps it for good: no signal
         * walk has started since. */
        if (collected_at_exit) {
            atomic_store_explicit(&walking, mine, memory_order_relaxed);
            break;
        }
        int own = was / 4 == me;
        if (own || i >= 2000) {
            if (was % 4 == WALK_READ) {
                if (sum)
                    memset(sum, 0, sizeof(*sum));
                return -1;
            }
            if (atomic_compare_exchange_strong_explicit(&walking, &was, mine, memory_order_acquire,
                                                        memory_order_relaxed))
                break;
            continue; /* it changed hands meanwhile: look again */
        }
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    /* Other threads' allocations and frees wait while the heap is read
     * and its objects counted (family.h, the hold): none is made, and none
     * of theirs moved or freed, under the walk (a free that went on into
     * a cache made the totals, taken after the walk, count an object freed
     * that the leak section counted live). */
    pf_tcache_hold(1);
    collect(sum, 0, stack_from, at_exit, words, nwords);
    /* The report is written next, under the hold, but only so long: the
     * write may wait on a reader that is a thread of the program's (its
     * own stderr drained into a log), which may allocate. Writing the
     * report itself takes well under a millisecond. */
    pf_family_hold_within(PF_EXIT_WRITE_HOLD_MS);
    return 0;
}

int pf_leaks_collect_signal(struct pf_leaks *sum, uintptr_t stack_from)
{
    long me = pf_os_tid(), was;
    if (!take_walk(me, &was))
        return -1;
    if (collect(sum, 1, stack_from, 0, NULL, 0) != 0) {
        pf_leaks_done();
        return -1;
    }
    long reading = me * 4 + WALK_READ;
    atomic_compare_exchange_strong_explicit(&walking, &reading, me * 4 + WALK_WRITE, memory_order_release,
                                            memory_order_relaxed);
    return 0;
}

void pf_leaks_done(void)
{
    /* Only this thread's walk: the exit may have taken it over. */
    long me = pf_os_tid();
    for (long phase = WALK_READ; phase <= WALK_WRITE; phase++) {
        long was = me * 4 + phase;
        if (atomic_compare_exchange_strong_explicit(&walking, &was, 0, memory_order_release, memory_order_relaxed))
            return;
    }
}

/* ---- naming a frame ------------------------------------------------------------ */
/* What a report says about one code address. */
struct named {
    const char *func;   /* symbol, or NULL */
    const char *path;   /* the module's path, or "?" */
    const char *module; /* its base name */
    uintptr_t off;      /* from func, or from the module base when func is NULL */
    uintptr_t modoff;   /* the address in the module's file (for addr2line) */
    int unloaded;       /* the module was unloaded since (no symbol: the address is another's now) */
};

/* Names addr, seen in module `mod` (a pf_module id, 0: not recorded, then
 * whatever is mapped there now). */
static void name_frame(uintptr_t addr, uint32_t mod, struct named *n)
{
    memset(n, 0, sizeof(*n));
    n->path = n->module = "?";
    const struct pf_module *m = pf_module_get(mod);
    if (m) {
        n->path = m->path;
        n->module = pf_module_basename(m->path);
        n->modoff = n->off = addr - m->start;
        n->unloaded = !pf_module_loaded(mod, addr);
        if (n->unloaded) /* whatever is mapped there now is another module */
            return;
    }
    struct pf_sym s;
    if (!pf_sym_name_return(addr, &s))
        return;
    n->func = s.name;
    if (s.path && *s.path)
        n->path = s.path;
    if (s.module && *s.module)
        n->module = s.module;
    n->modoff = s.modoff;
    n->off = s.name ? s.symoff : s.modoff;
}

/* The frames of stack `id` (NULL for the shared and early entries). */
static const uintptr_t *stack_of(uint32_t id, int *n, int *first)
{
    *n = *first = 0;
    if (!id || !sites || id > SITE_SLOTS)
        return NULL;
    const struct site *s = &sites[id - 1];
    uint64_t key = atomic_load_explicit(&s->key, memory_order_acquire);
    if (key == 0 || key == KEY_BUSY)
        return NULL;
    *n = s->depth;
    *first = s->first;
    return &frames[(size_t)(id - 1) * cap];
}

static uint32_t frame_module(uint32_t id, int i)
{
    return modules[(size_t)(id - 1) * cap + (size_t)i];
}

static const char *family_name(uint32_t id1)
{
    if (id1 == OTHER_FAMILIES)
        return "(other families)";
    return id1 && id1 - 1 < pf_family_count() ? pf_family_at(id1 - 1)->name : "?";
}

/* `demangle`: C++ names as written (text), else as the linker sees them. */
static void site_text(struct pf_fmt *f, const struct named *n, int demangle)
{
    if (n->func) {
        char buf[1024]; /* the report's own stack */
        pf_fmt_name(f, demangle ? pf_sym_demangle(n->func, buf, sizeof buf) : n->func);
        pf_fmt_char(f, '+');
    } else {
        pf_fmt_name(f, n->module);
        pf_fmt_char(f, '+');
    }
    pf_fmt_hex(f, n->off);
}

int pf_sites_runtime(uint32_t site)
{
    if (!site || !sites || site > EARLY_ID)
        return 0;
    uint64_t key = atomic_load_explicit(&sites[site - 1].key, memory_order_acquire);
    return (key & 3) == (2 | KEY_RUNTIME);
}

/* The site of stack `id`: its first frame outside the runtime; 0 if none. */
static uintptr_t site_addr(uint32_t id, uint32_t *mod)
{
    int n, first;
    const uintptr_t *f = stack_of(id, &n, &first);
    *mod = f ? frame_module(id, first) : 0;
    return f ? f[first] : 0;
}

/* "func+0x12 (/path/module+0xaddress)" or "module+0x1234 (module, unloaded)". */
static void frame_text(struct pf_fmt *f, uintptr_t addr, uint32_t mod)
{
    struct named n;
    name_frame(addr, mod, &n);
    site_text(f, &n, 1);
    if (n.unloaded) {
        pf_fmt_str(f, " (");
        pf_fmt_name(f, n.module);
        pf_fmt_str(f, ", unloaded)");
        return;
    }
    /* The file and the address in it: enough to find the line later. */
    pf_fmt_str(f, " (");
    pf_fmt_name(f, n.path);
    pf_fmt_char(f, '+');
    pf_fmt_hex(f, n.modoff);
    pf_fmt_char(f, ')');
}

void pf_sites_fmt_allocated(struct pf_fmt *f, uint32_t id)
{
    uint32_t mod;
    uintptr_t addr = id ? site_addr(id & ID_MASK, &mod) : 0;
    if (!addr)
        return;
    /* Named as the leak report names frames: the module's own symbol
     * tables, static functions included. */
    struct pf_sym sym;
    pf_fmt_str(f, ", allocated at ");
    if (pf_sym_name_return(addr, &sym)) {
        if (sym.name) {
            pf_fmt_name(f, sym.name);
            pf_fmt_str(f, "+");
            pf_fmt_hex(f, sym.symoff);
        } else {
            pf_fmt_hex(f, sym.modoff);
        }
        pf_fmt_str(f, " in ");
        pf_fmt_name(f, sym.module);
    } else {
        pf_fmt_hex(f, addr);
    }
}

/* The totals by reachability, lost ones first: the program's own objects
 * when sites tell them apart, else every object. */
static void write_reach_text(struct pf_fmt *f)
{
    const uint64_t *objs = pf_sites_on ? total.program_kind_objects : total.kind_objects;
    const uint64_t *bytes = pf_sites_on ? total.program_kind_bytes : total.kind_bytes;
    pf_fmt_str(f, pf_sites_on ? "  the program's own by reachability:\n" : "  by reachability:\n");
    for (int k = 0; k < PF_REACH_KINDS; k++) {
        if (k == PF_REACH_UNCLASSIFIED && !objs[k])
            continue;
        pf_fmt_str(f, "    ");
        pf_fmt_str(f, pf_reach_text((enum pf_reach_kind)k));
        pf_fmt_char(f, ':');
        pf_fmt_u64_w(f, objs[k], 28 - (int)strlen(pf_reach_text((enum pf_reach_kind)k)));
        pf_fmt_str(f, " objects, ");
        pf_fmt_size(f, bytes[k]);
        if (k == PF_REACH_UNCLASSIFIED && reach_note) {
            pf_fmt_str(f, " (reachability ");
            pf_fmt_str(f, reach_note);
            pf_fmt_char(f, ')');
        }
        pf_fmt_char(f, '\n');
    }
}

static void write_text(struct pf_fmt *f)
{
    pf_fmt_str(f, "\nleaks: ");
    pf_fmt_u64(f, total.objects);
    pf_fmt_str(f, " objects, ");
    pf_fmt_size(f, total.bytes);
    pf_fmt_str(f, collected_at_exit ? " still live at exit" : " live now");
    if (pf_sites_on) {
        pf_fmt_str(f, ", the program's own: ");
        pf_fmt_u64(f, total.program_objects);
        pf_fmt_str(f, " objects, ");
        pf_fmt_size(f, total.program_bytes);
    } else if (sites_unmapped) {
        pf_fmt_str(f, " (call sites not recorded: " SITES_UNMAPPED ")");
    } else {
        pf_fmt_str(f, " (PFALLOC_SITES=1 tells the program's own from the runtime's)");
    }
    if (total.inherited_objects) {
        pf_fmt_str(f, ", inherited from the parent: ");
        pf_fmt_u64(f, total.inherited_objects);
        pf_fmt_str(f, " objects, ");
        pf_fmt_size(f, total.inherited_bytes);
    }
    pf_fmt_char(f, '\n');
    if (!total.objects)
        return;
    if (!grouped)
        pf_fmt_str(f, "  (out of memory: no room to group them by site, the counts are exact)\n");
    write_reach_text(f);
    static const char *const headers[] = {
        "  allocated by the program:\n",
        "  allocated by the C/C++ runtime and loader for themselves (not the program's leaks):\n",
        "  inherited from the parent (allocated before the fork that made this process, not its leaks):\n",
    };
    for (int pass = 0; pass < 3; pass++) {
        int header = 0;
        for (uint32_t i = 0; i < nleaks; i++) {
            const struct leak *l = order[i];
            if ((l->inherited ? 2 : l->runtime) != pass)
                continue;
            if (!header) {
                pf_fmt_str(f, headers[pass]);
                pf_fmt_str(f, "     objects        bytes  family                 reachability     site\n");
                header = 1;
            }
            pf_fmt_u64_w(f, l->objects, 12);
            pf_fmt_char(f, ' ');
            pf_fmt_u64_w(f, l->bytes, 12);
            pf_fmt_str(f, "  ");
            pf_fmt_name_w(f, family_name(l->family), -22);
            pf_fmt_char(f, ' ');
            pf_fmt_str_w(f, pf_reach_text(l->reach), -16);
            pf_fmt_char(f, ' ');
            if (!l->site) {
                pf_fmt_str(f, pf_sites_on || sites_unmapped ? "(not recorded)" : "(call sites off: PFALLOC_SITES=1)");
            } else if (l->site == OTHER_ID) {
                pf_fmt_str(f, "(other sites)");
            } else if (l->site == EARLY_ID) {
                pf_fmt_str(f, "(before start-up: the loader, libc, early constructors)");
            } else {
                /* The site, then its callers one per line. */
                int n, first;
                const uintptr_t *fr = stack_of(l->site, &n, &first);
                for (int k = first; fr && k < n; k++) {
                    if (k > first)
                        pf_fmt_str(f, "\n                                                                   by ");
                    frame_text(f, fr[k], frame_module(l->site, k));
                }
            }
            pf_fmt_char(f, '\n');
        }
    }
}

/* "stack":[{frame},...], every frame kept, innermost first; "first": the
 * index of the site (the first frame outside the runtime). */
static void write_stack_json(struct pf_fmt *f, uint32_t id)
{
    int n, first;
    const uintptr_t *fr = stack_of(id, &n, &first);
    pf_fmt_str(f, ",\"first\":");
    pf_fmt_u64(f, (uint64_t)first);
    pf_fmt_str(f, ",\"stack\":[");
    for (int k = 0; fr && k < n; k++) {
        struct named nm;
        name_frame(fr[k], frame_module(id, k), &nm);
        pf_fmt_str(f, k ? ",{\"address\":\"" : "{\"address\":\"");
        pf_fmt_hex(f, fr[k]);
        pf_fmt_str(f, "\",\"module\":");
        pf_fmt_json_str(f, nm.module);
        pf_fmt_str(f, ",\"module_offset\":\"");
        pf_fmt_hex(f, nm.modoff);
        pf_fmt_str(f, "\",\"symbol\":");
        if (nm.func) {
            char buf[320];
            struct pf_fmt t;
            pf_fmt_init(&t, buf, sizeof(buf), -1);
            site_text(&t, &nm, 0);
            pf_fmt_json_str(f, pf_fmt_cstr(&t));
        } else {
            pf_fmt_str(f, "null");
        }
        pf_fmt_str(f, ",\"unloaded\":");
        pf_fmt_str(f, nm.unloaded ? "true" : "false");
        pf_fmt_char(f, '}');
    }
    pf_fmt_char(f, ']');
}

static void write_json(struct pf_fmt *f)
{
    pf_fmt_str(f, ",\"leaks\":{\"objects\":");
    pf_fmt_u64(f, total.objects);
    pf_fmt_str(f, ",\"bytes\":");
    pf_fmt_u64(f, total.bytes);
    pf_fmt_str(f, ",\"program_objects\":");
    pf_fmt_u64(f, total.program_objects);
    pf_fmt_str(f, ",\"program_bytes\":");
    pf_fmt_u64(f, total.program_bytes);
    pf_fmt_str(f, ",\"inherited_objects\":");
    pf_fmt_u64(f, total.inherited_objects);
    pf_fmt_str(f, ",\"inherited_bytes\":");
    pf_fmt_u64(f, total.inherited_bytes);
    pf_fmt_str(f, ",\"sites_recorded\":");
    pf_fmt_str(f, pf_sites_on ? "true" : "false");
    pf_fmt_str(f, ",\"sites_note\":");
    pf_fmt_str(f, sites_unmapped ? "\"" SITES_UNMAPPED "\"" : "null");
    pf_fmt_str(f, ",\"grouped\":");
    pf_fmt_str(f, grouped ? "true" : "false");
    pf_fmt_str(f, ",\"reachability\":");
    if (reach_note)
        pf_fmt_json_str(f, reach_note);
    else
        pf_fmt_str(f, "\"classified\"");
    for (int k = 0; k < PF_REACH_KINDS; k++) {
        pf_fmt_str(f, ",\"");
        pf_fmt_str(f, pf_reach_key((enum pf_reach_kind)k));
        pf_fmt_str(f, "\":{\"objects\":");
        pf_fmt_u64(f, total.kind_objects[k]);
        pf_fmt_str(f, ",\"bytes\":");
        pf_fmt_u64(f, total.kind_bytes[k]);
        pf_fmt_str(f, ",\"program_objects\":");
        pf_fmt_u64(f, total.program_kind_objects[k]);
        pf_fmt_str(f, ",\"program_bytes\":");
        pf_fmt_u64(f, total.program_kind_bytes[k]);
        pf_fmt_char(f, '}');
    }
    pf_fmt_str(f, ",\"sites\":[");
    for (uint32_t i = 0; i < nleaks; i++) {
        const struct leak *l = order[i];
        if (i)
            pf_fmt_char(f, ',');
        uint32_t mod;
        uintptr_t addr = site_addr(l->site, &mod);
        pf_fmt_str(f, "{\"site\":");
        if (addr) {
            struct named n;
            name_frame(addr, mod, &n);
            char buf[320];
            struct pf_fmt t;
            pf_fmt_init(&t, buf, sizeof(buf), -1);
            site_text(&t, &n, 0);
            pf_fmt_json_str(f, pf_fmt_cstr(&t));
            pf_fmt_str(f, ",\"module\":");
            pf_fmt_json_str(f, n.module);
            pf_fmt_str(f, ",\"path\":");
            pf_fmt_json_str(f, n.path);
            pf_fmt_str(f, ",\"address\":\"");
            pf_fmt_hex(f, addr);
            pf_fmt_str(f, "\",\"module_offset\":\"");
            pf_fmt_hex(f, n.modoff);
            pf_fmt_str(f, "\",\"module_path\":");
            pf_fmt_json_str(f, n.path);
            pf_fmt_str(f, ",\"module_unloaded\":");
            pf_fmt_str(f, n.unloaded ? "true" : "false");
        } else {
            pf_fmt_str(f, "null,\"module\":null,\"path\":null,\"address\":null,\"module_offset\":null,"
                          "\"module_path\":null,\"module_unloaded\":null");
        }
        pf_fmt_str(f, ",\"kind\":\"");
        pf_fmt_str(f, !l->site ? "unrecorded" : l->site == OTHER_ID ? "other_sites"
                                 : l->site == EARLY_ID ? "before_start" : "site");
        pf_fmt_str(f, "\",\"family\":");
        pf_fmt_json_str(f, family_name(l->family));
        pf_fmt_str(f, ",\"objects\":");
        pf_fmt_u64(f, l->objects);
        pf_fmt_str(f, ",\"bytes\":");
        pf_fmt_u64(f, l->bytes);
        pf_fmt_str(f, ",\"runtime\":");
        pf_fmt_str(f, !l->site ? "null" : l->runtime ? "true" : "false");
        pf_fmt_str(f, ",\"inherited\":");
        pf_fmt_str(f, l->inherited ? "true" : "false");
        pf_fmt_str(f, ",\"reachability\":\"");
        pf_fmt_str(f, pf_reach_key((enum pf_reach_kind)l->reach));
        pf_fmt_char(f, '"');
        write_stack_json(f, l->site);
        pf_fmt_char(f, '}');
    }
    pf_fmt_str(f, "]}");
}

void pf_leaks_write_skipped(struct pf_fmt *f, int json, const char *why)
{
    if (json) {
        pf_fmt_str(f, ",\"leaks_skipped\":");
        pf_fmt_json_str(f, why);
    } else {
        pf_fmt_str(f, "leaks: not collected (");
        pf_fmt_str(f, why);
        pf_fmt_str(f, ")\n");
    }
}

void pf_leaks_write(struct pf_fmt *f, int json, void *ctx)
{
    (void)ctx;
    if (json)
        write_json(f);
    else
        write_text(f);
    pf_sym_allow_demangle(0);
}
