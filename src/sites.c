/*
 * sites.c — the call-site table and the leak walk.
 * Site table: open addressing on the site address, ids are slot indices + 1
 * (0 means "not recorded"), entries are claimed with a compare-exchange and
 * never removed, so readers need no lock. When it is full, new sites share
 * the id of an "other sites" entry.
 * Leak walk: the reachability pass first (reach.c), then under each
 * family's lock every live slot (state >= 2) and large block is added to a
 * (site, family, reachability) table; the report then sorts it, lost ones
 * first, then by bytes. Memory for both tables comes from pfalloc's own mappings.
 */
#include "sites.h"

#include <dlfcn.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "family.h"
#include "reach.h"
#include "report.h"
#include "tcache.h"

#define SITE_SLOTS (1u << 16)
#define LEAK_SLOTS (1u << 14)
#define OTHER_ID (SITE_SLOTS + 1) /* shared by sites that found the table full; entry SITE_SLOTS */
#define EARLY_ID (SITE_SLOTS + 2) /* live before recording began: the loader's and libc's */

struct site {
    _Atomic uintptr_t addr; /* 0: empty */
    uint8_t runtime;        /* no frame outside the runtime was found */
};

int pf_sites_on;
static struct site *sites; /* SITE_SLOTS + 2 entries */

static int walk_in_signal; /* for_each_live gives up rather than wait on a lock */

/* Calls fn for every live object of every family, under that family's
 * lock: `site` is where its call-site id is kept (NULL when its span keeps
 * none), `bytes` what the program asked for, `p` its address. 0, or -1 when
 * a lock stayed held in a signal handler (the walk stops there). */
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
                       s->slot_size - (uint32_t)(st - PF_SLOT_LIVE), s->start + (uintptr_t)k * s->slot_size);
            }
        }
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

void pf_sites_enable(void)
{
    if (!sites)
        sites = pf_os_map_meta(sizeof(struct site) * (SITE_SLOTS + 2));
    if (!sites)
        return;
    sites[EARLY_ID - 1].runtime = 1;
    pf_span_enable_sites();
    /* What is live now was allocated before the program's code ran. */
    for_each_live(mark_early);
    pf_sites_on = 1;
    pf_direct_below = 0;
}

uint32_t pf_sites_intern(uintptr_t addr, int runtime)
{
    uint32_t h = (uint32_t)((addr * 0x9E3779B97F4A7C15ull) >> 48);
    for (uint32_t i = 0; i < 64; i++) {
        struct site *s = &sites[(h + i) & (SITE_SLOTS - 1)];
        uintptr_t cur = atomic_load_explicit(&s->addr, memory_order_acquire);
        if (cur == addr)
            return ((h + i) & (SITE_SLOTS - 1)) + 1;
        if (cur == 0) {
            s->runtime = (uint8_t)runtime;
            if (atomic_compare_exchange_strong(&s->addr, &cur, addr) || cur == addr)
                return ((h + i) & (SITE_SLOTS - 1)) + 1;
        }
    }
    return OTHER_ID;
}

void pf_sites_note(const void *p, uintptr_t addr, int runtime)
{
    pf_sites_store(p, pf_sites_intern(addr, runtime));
}

void pf_sites_store(const void *p, uint32_t id)
{
    struct pf_span *s = pf_pagemap_get(p);
    if (!s)
        return;
    if (s->kind == PF_SPAN_LARGE)
        s->site = id;
    else if (s->kind == PF_SPAN_SMALL && s->sites)
        s->sites[pf_span_index(s, (uintptr_t)p - s->start)] = id;
}

/* ---- the leak walk ------------------------------------------------------------- */
struct leak {
    uint32_t site;   /* site id, 0 unknown */
    uint32_t family; /* family id + 1, 0 empty */
    uint32_t reach;  /* enum pf_reach_kind */
    uint64_t objects, bytes;
};

static struct leak *leaks;  /* LEAK_SLOTS entries */
static struct leak **order; /* sorted view */
static uint32_t nleaks;
static struct pf_leaks total;
static const char *reach_note; /* why objects are unclassified, NULL when none is */
static int collected_at_exit;  /* the tables hold the exit's walk, not a signal's */
/* The tables are being filled or written: taken by a collect, given back
 * by pf_leaks_done (never after the exit's, which is the last). */
static _Atomic int walking;

static int site_runtime(uint32_t site);

static void add(uint32_t site, uint32_t fam, uint64_t bytes, uint32_t reach)
{
    uint32_t h = (site * 2654435761u ^ fam * 40503u ^ reach * 97u) & (LEAK_SLOTS - 1);
    for (uint32_t i = 0; i < LEAK_SLOTS; i++) {
        struct leak *l = &leaks[(h + i) & (LEAK_SLOTS - 1)];
        if (l->family == 0) {
            if (nleaks + 1 >= LEAK_SLOTS)
                break; /* full: count it only in the totals */
            l->site = site;
            l->family = fam;
            l->reach = reach;
            nleaks++;
        }
        if (l->site == site && l->family == fam && l->reach == reach) {
            l->objects++;
            l->bytes += bytes;
            break;
        }
    }
    total.objects++;
    total.bytes += bytes;
    total.kind_objects[reach]++;
    total.kind_bytes[reach] += bytes;
    if (!site_runtime(site)) {
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
    add(site ? *site : 0, f->id + 1, bytes, pf_reach_of(p));
}

/* What the runtime and the loader allocated for themselves holds roots of
 * theirs (dynamic TLS blocks, key data): their contents count as roots. */
static int runtime_object(const struct pf_span *s, uint32_t idx, void *ctx)
{
    (void)ctx;
    return site_runtime(s->kind == PF_SPAN_LARGE ? s->site : s->sites ? s->sites[idx] : 0);
}

/* Lost ones first, then the biggest. */
static int before(const struct leak *a, const struct leak *b)
{
    return a->reach != b->reach ? a->reach < b->reach : a->bytes > b->bytes;
}

static int collect(struct pf_leaks *sum, int in_signal)
{
    if (!leaks) {
        leaks = pf_os_map_meta(sizeof(*leaks) * LEAK_SLOTS);
        order = pf_os_map_meta(sizeof(*order) * LEAK_SLOTS);
    }
    memset(&total, 0, sizeof(total));
    if (leaks) {
        memset(leaks, 0, sizeof(*leaks) * LEAK_SLOTS);
        nleaks = 0;
        reach_note = "off (PFALLOC_REACH=0)";
        if (pf_config.reach) {
            struct pf_reach_opts ro = {.root_object = runtime_object, .in_signal = in_signal};
            pf_reach_run(&ro);
            reach_note = pf_reach_note();
        }
        walk_in_signal = in_signal;
        int rc = for_each_live(add_live);
        walk_in_signal = 0;
        pf_reach_release();
        if (rc != 0)
            return -1;
        /* Largest first: shell sort of the occupied entries (no qsort: it may allocate). */
        uint32_t m = 0;
        for (uint32_t i = 0; i < LEAK_SLOTS && order; i++)
            if (leaks[i].family)
                order[m++] = &leaks[i];
        nleaks = order ? m : 0;
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
    return 0;
}

void pf_leaks_collect(struct pf_leaks *sum)
{
    /* A signal handler's walk in another thread waits on no lock, but its
     * report may wait on a full pipe: after two seconds the exit's walk goes
     * ahead anyway (that report may then read a table being refilled; its
     * indexes are all checked). One in this thread cannot be under way. */
    for (int i = 0; i < 2000 && atomic_exchange_explicit(&walking, 1, memory_order_acquire); i++) {
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    collect(sum, 0);
}

int pf_leaks_collect_signal(struct pf_leaks *sum)
{
    if (atomic_exchange_explicit(&walking, 1, memory_order_acquire))
        return -1;
    if (collect(sum, 1) != 0) {
        atomic_store_explicit(&walking, 0, memory_order_release);
        return -1;
    }
    return 0;
}

void pf_leaks_done(void)
{
    if (!collected_at_exit)
        atomic_store_explicit(&walking, 0, memory_order_release);
}

/* ---- naming a site ------------------------------------------------------------- */
struct named {
    const char *func;   /* symbol, or NULL */
    const char *module; /* basename of the object file */
    uintptr_t off;      /* from func, or from the module base when func is NULL */
    uintptr_t modoff;   /* from the module base (for addr2line) */
};

static void name_site(uintptr_t addr, struct named *n)
{
    Dl_info info;
    memset(n, 0, sizeof(*n));
    n->module = "?";
    if (!addr || !dladdr((void *)addr, &info))
        return;
    if (info.dli_fname && *info.dli_fname) {
        const char *b = strrchr(info.dli_fname, '/');
        n->module = b ? b + 1 : info.dli_fname;
    }
    n->modoff = addr - (uintptr_t)info.dli_fbase;
    if (info.dli_sname && info.dli_saddr) {
        n->func = info.dli_sname;
        n->off = addr - (uintptr_t)info.dli_saddr;
    } else {
        n->off = n->modoff;
    }
}

static const char *family_name(uint32_t id1)
{
    return id1 && id1 - 1 < pf_family_count() ? pf_family_at(id1 - 1)->name : "?";
}

static void site_text(struct pf_fmt *f, const struct named *n)
{
    if (n->func) {
        pf_fmt_str(f, n->func);
        pf_fmt_char(f, '+');
    } else {
        pf_fmt_str(f, n->module);
        pf_fmt_char(f, '+');
    }
    pf_fmt_hex(f, n->off);
}

static int site_runtime(uint32_t site)
{
    return site && sites && site <= EARLY_ID ? sites[site - 1].runtime : 0;
}

static uintptr_t site_addr(uint32_t site)
{
    return site && sites && site <= EARLY_ID
               ? atomic_load_explicit(&sites[site - 1].addr, memory_order_relaxed)
               : 0;
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
        pf_fmt_str(f, "; the program's own: ");
        pf_fmt_u64(f, total.program_objects);
        pf_fmt_str(f, " objects, ");
        pf_fmt_size(f, total.program_bytes);
    } else {
        pf_fmt_str(f, " (PFALLOC_SITES=1 tells the program's own from the runtime's)");
    }
    pf_fmt_char(f, '\n');
    if (!total.objects)
        return;
    write_reach_text(f);
    for (int pass = 0; pass < 2; pass++) {
        int header = 0;
        for (uint32_t i = 0; i < nleaks; i++) {
            const struct leak *l = order[i];
            if (site_runtime(l->site) != pass)
                continue;
            if (!header) {
                pf_fmt_str(f, pass ? "  allocated by the C/C++ runtime and loader for themselves (not the program's leaks):\n"
                                   : "  allocated by the program:\n");
                pf_fmt_str(f, "     objects        bytes  family                 reachability     site\n");
                header = 1;
            }
            pf_fmt_u64_w(f, l->objects, 12);
            pf_fmt_char(f, ' ');
            pf_fmt_u64_w(f, l->bytes, 12);
            pf_fmt_str(f, "  ");
            pf_fmt_str_w(f, family_name(l->family), -22);
            pf_fmt_char(f, ' ');
            pf_fmt_str_w(f, pf_reach_text(l->reach), -16);
            pf_fmt_char(f, ' ');
            if (!l->site) {
                pf_fmt_str(f, pf_sites_on ? "(not recorded)" : "(call sites off: PFALLOC_SITES=1)");
            } else if (l->site == OTHER_ID) {
                pf_fmt_str(f, "(other sites)");
            } else if (l->site == EARLY_ID) {
                pf_fmt_str(f, "(before start-up: the loader and libc)");
            } else {
                struct named n;
                name_site(site_addr(l->site), &n);
                site_text(f, &n);
                pf_fmt_str(f, " (");
                pf_fmt_str(f, n.module);
                pf_fmt_char(f, ')');
            }
            pf_fmt_char(f, '\n');
        }
    }
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
    pf_fmt_str(f, ",\"sites_recorded\":");
    pf_fmt_str(f, pf_sites_on ? "true" : "false");
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
        uintptr_t addr = site_addr(l->site);
        pf_fmt_str(f, "{\"site\":");
        if (addr) {
            struct named n;
            name_site(addr, &n);
            char buf[320];
            struct pf_fmt t;
            pf_fmt_init(&t, buf, sizeof(buf), -1);
            site_text(&t, &n);
            pf_fmt_json_str(f, pf_fmt_cstr(&t));
            pf_fmt_str(f, ",\"module\":");
            pf_fmt_json_str(f, n.module);
            pf_fmt_str(f, ",\"address\":\"");
            pf_fmt_hex(f, addr);
            pf_fmt_str(f, "\",\"module_offset\":\"");
            pf_fmt_hex(f, n.modoff);
            pf_fmt_char(f, '"');
        } else {
            pf_fmt_str(f, "null,\"module\":null,\"address\":null,\"module_offset\":null");
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
        pf_fmt_str(f, !l->site ? "null" : site_runtime(l->site) ? "true" : "false");
        pf_fmt_str(f, ",\"reachability\":\"");
        pf_fmt_str(f, pf_reach_key((enum pf_reach_kind)l->reach));
        pf_fmt_char(f, '"');
        pf_fmt_char(f, '}');
    }
    pf_fmt_str(f, "]}");
}

void pf_leaks_write(struct pf_fmt *f, int json, void *ctx)
{
    (void)ctx;
    if (json)
        write_json(f);
    else
        write_text(f);
}
