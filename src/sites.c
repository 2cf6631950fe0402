/*
 * sites.c — the call-site table and the leak walk.
 * Site table: open addressing on the site address, ids are slot indices + 1
 * (0 means "not recorded"), entries are claimed with a compare-exchange and
 * never removed, so readers need no lock. When it is full, new sites share
 * the id of an "other sites" entry.
 * Leak walk: under each family's lock, every live slot (state >= 2) and large
 * block is added to a (site, family) table; the report then sorts it by
 * bytes. Memory for both tables comes from pfalloc's own mappings.
 */
#include "sites.h"

#include <dlfcn.h>
#include <string.h>

#include "family.h"
#include "module.h"
#include "report.h"
#include "tcache.h"

#define SITE_SLOTS (1u << 16)
#define LEAK_SLOTS (1u << 14)
#define OTHER_ID (SITE_SLOTS + 1) /* shared by sites that found the table full; entry SITE_SLOTS */
#define EARLY_ID (SITE_SLOTS + 2) /* live before recording began: the loader's and libc's */

/* One word per site, claimed whole by one compare-exchange: the address
 * and the runtime flag are published together, so no reader (or racing
 * claimer) ever sees an entry with another site's flag. A site address
 * met with both classes gets two entries. */
struct site {
    _Atomic uintptr_t key; /* address | SITE_RUNTIME, 0: empty */
};
#define SITE_RUNTIME ((uintptr_t)1 << 63) /* no frame outside the runtime was found */

/* What a slot keeps: the site id in the low bits, and above them the fork
 * generation of the process that allocated the object (how many forks
 * without exec lie between this image's start and that process). An
 * object whose generation is below the process's own was inherited
 * through fork: the child did not allocate it. Saturates at GEN_MAX. */
#define ID_BITS 24
#define ID_MASK ((1u << ID_BITS) - 1)
#define GEN_MAX 255u

int pf_sites_on;
static struct site *sites; /* SITE_SLOTS + 2 entries */
/* Per site: the module that held its address when it was first seen,
 * written once by the thread that claimed the entry (read at exit). */
static uint16_t *site_module;
static uint32_t gen;       /* this process's fork generation */

/* Calls fn for every live object of every family, under that family's
 * lock: `site` is where its call-site id is kept (NULL when its span keeps
 * none), `bytes` what the program asked for. */
static void for_each_live(void (*fn)(const struct pf_family *f, uint32_t *site, uint64_t bytes))
{
    uint32_t n = pf_family_count();
    for (uint32_t i = 0; i < n; i++) {
        struct pf_family *f = pf_family_at(i);
        pf_lock(&f->lock);
        for (struct pf_span *s = f->all; s; s = s->anext) {
            if (s->kind == PF_SPAN_LARGE) {
                fn(f, &s->site, s->req);
                continue;
            }
            for (uint32_t k = 0; k < s->bump; k++) {
                uint16_t st = s->state[k];
                if (st >= PF_SLOT_LIVE)
                    fn(f, s->sites ? &s->sites[k] : NULL,
                       s->slot_size - (uint32_t)(st - PF_SLOT_LIVE));
            }
        }
        pf_unlock(&f->lock);
    }
}

static void mark_early(const struct pf_family *f, uint32_t *site, uint64_t bytes)
{
    (void)f;
    (void)bytes;
    if (site)
        *site = EARLY_ID;
}

void pf_sites_enable(void)
{
    if (!sites)
        sites = pf_os_map_meta(sizeof(struct site) * (SITE_SLOTS + 2));
    if (!site_module)
        site_module = pf_os_map_meta(sizeof(*site_module) * (SITE_SLOTS + 2));
    if (!sites)
        return;
    pf_module_init();
    atomic_store_explicit(&sites[EARLY_ID - 1].key, SITE_RUNTIME, memory_order_release);
    pf_span_enable_sites();
    /* What is live now was allocated before the program's code ran. */
    for_each_live(mark_early);
    pf_sites_on = 1;
    pf_direct_below = 0;
}

uint32_t pf_sites_intern(uintptr_t addr, int runtime)
{
    uintptr_t key = addr | (runtime ? SITE_RUNTIME : 0);
    uint32_t h = (uint32_t)((addr * 0x9E3779B97F4A7C15ull) >> 48);
    for (uint32_t i = 0; i < 64; i++) {
        struct site *s = &sites[(h + i) & (SITE_SLOTS - 1)];
        uintptr_t cur = atomic_load_explicit(&s->key, memory_order_acquire);
        if (cur == 0 && atomic_compare_exchange_strong(&s->key, &cur, key)) {
            uint32_t idx = (h + i) & (SITE_SLOTS - 1);
            if (site_module)
                site_module[idx] = (uint16_t)pf_module_of(addr);
            return idx + 1;
        }
        if (cur == key)
            return ((h + i) & (SITE_SLOTS - 1)) + 1;
    }
    return OTHER_ID;
}

void pf_sites_note(const void *p, uintptr_t addr, int runtime)
{
    pf_sites_store(p, pf_sites_intern(addr, runtime));
}

void pf_sites_fork_child(void)
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
    id |= gen << ID_BITS;
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
    uint32_t site;      /* site id, 0 unknown */
    uint32_t family;    /* family id + 1, 0 empty */
    uint32_t inherited; /* allocated before the fork that made this process */
    uint64_t objects, bytes;
};

static struct leak *leaks;  /* LEAK_SLOTS entries */
static struct leak **order; /* sorted view */
static uint32_t nleaks;
static struct pf_leaks total;
static int grouped; /* the last walk had its tables (else: totals only) */

static void add(uint32_t word, uint32_t fam, uint64_t bytes)
{
    uint32_t site = word & ID_MASK;
    uint32_t inherited = word && (word >> ID_BITS) < gen;
    uint32_t h = (site * 2654435761u ^ fam * 40503u ^ inherited) & (LEAK_SLOTS - 1);
    for (uint32_t i = 0; grouped && i < LEAK_SLOTS; i++) {
        struct leak *l = &leaks[(h + i) & (LEAK_SLOTS - 1)];
        if (l->family == 0) {
            if (nleaks + 1 >= LEAK_SLOTS)
                break; /* full: count it only in the totals */
            l->site = site;
            l->family = fam;
            l->inherited = inherited;
            nleaks++;
        }
        if (l->site == site && l->family == fam && l->inherited == inherited) {
            l->objects++;
            l->bytes += bytes;
            break;
        }
    }
    total.objects++;
    total.bytes += bytes;
    if (inherited) {
        total.inherited_objects++;
        total.inherited_bytes += bytes;
    } else if (!pf_sites_runtime(site)) {
        total.program_objects++;
        total.program_bytes += bytes;
    }
}

static void add_live(const struct pf_family *f, uint32_t *site, uint64_t bytes)
{
    add(site ? *site : 0, f->id + 1, bytes);
}

void pf_leaks_reserve(void)
{
    if (!leaks)
        leaks = pf_os_map_meta(sizeof(*leaks) * LEAK_SLOTS);
    if (!order)
        order = pf_os_map_meta(sizeof(*order) * LEAK_SLOTS);
}

void pf_leaks_collect(struct pf_leaks *sum)
{
    /* Reserved at start-up when leaks are reported; this late try is for a
     * caller that did not reserve. Without the tables the walk still counts
     * every object (totals and the program's share are exact), it only
     * cannot group them. */
    pf_leaks_reserve();
    memset(&total, 0, sizeof(total));
    grouped = leaks && order;
    nleaks = 0;
    if (grouped)
        memset(leaks, 0, sizeof(*leaks) * LEAK_SLOTS);
    for_each_live(add_live);
    if (grouped) {
        /* Largest first: shell sort of the occupied entries (no qsort: it may allocate). */
        uint32_t m = 0;
        for (uint32_t i = 0; i < LEAK_SLOTS; i++)
            if (leaks[i].family)
                order[m++] = &leaks[i];
        nleaks = m;
        for (uint32_t gap = m / 2; gap; gap /= 2)
            for (uint32_t i = gap; i < m; i++)
                for (uint32_t j = i; j >= gap && order[j - gap]->bytes < order[j]->bytes; j -= gap) {
                    struct leak *t = order[j];
                    order[j] = order[j - gap];
                    order[j - gap] = t;
                }
    }
    if (sum)
        *sum = total;
}

/* ---- naming a frame ------------------------------------------------------------ */
/* What a report says about one code address. */
struct named {
    const char *func;   /* symbol, or NULL */
    const char *path;   /* the module's path, or "?" */
    const char *module; /* its base name */
    uintptr_t off;      /* from func, or from the module base when func is NULL */
    uintptr_t modoff;   /* from the module base (for addr2line) */
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
        if (n->unloaded)
            return;
    }
    Dl_info info;
    if (!addr || !dladdr((void *)addr, &info))
        return;
    if (!m) {
        if (info.dli_fname && *info.dli_fname)
            n->path = info.dli_fname, n->module = pf_module_basename(info.dli_fname);
        n->modoff = n->off = addr - (uintptr_t)info.dli_fbase;
    }
    if (info.dli_sname && info.dli_saddr) {
        n->func = info.dli_sname;
        n->off = addr - (uintptr_t)info.dli_saddr;
    }
}

static uint32_t site_module_of(uint32_t site)
{
    return site && site_module && site <= EARLY_ID ? site_module[site - 1] : 0;
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

int pf_sites_runtime(uint32_t site)
{
    return site && sites && site <= EARLY_ID
               ? (atomic_load_explicit(&sites[site - 1].key, memory_order_relaxed) & SITE_RUNTIME) != 0
               : 0;
}

static uintptr_t site_addr(uint32_t site)
{
    return site && sites && site <= EARLY_ID
               ? atomic_load_explicit(&sites[site - 1].key, memory_order_relaxed) & ~SITE_RUNTIME
               : 0;
}

static void write_text(struct pf_fmt *f)
{
    pf_fmt_str(f, "\nleaks: ");
    pf_fmt_u64(f, total.objects);
    pf_fmt_str(f, " objects, ");
    pf_fmt_size(f, total.bytes);
    if (pf_sites_on) {
        pf_fmt_str(f, " still live at exit; the program's own: ");
        pf_fmt_u64(f, total.program_objects);
        pf_fmt_str(f, " objects, ");
        pf_fmt_size(f, total.program_bytes);
    } else {
        pf_fmt_str(f, " still live at exit (PFALLOC_SITES=1 tells the program's own from the runtime's)");
    }
    if (total.inherited_objects) {
        pf_fmt_str(f, "; inherited from the parent: ");
        pf_fmt_u64(f, total.inherited_objects);
        pf_fmt_str(f, " objects, ");
        pf_fmt_size(f, total.inherited_bytes);
    }
    pf_fmt_char(f, '\n');
    if (!total.objects)
        return;
    if (!grouped)
        pf_fmt_str(f, "  (out of memory: no room to group them by site; the counts are exact)\n");
    static const char *const headers[] = {
        "  allocated by the program:\n",
        "  allocated by the C/C++ runtime and loader for themselves (not the program's leaks):\n",
        "  inherited from the parent (allocated before the fork that made this process; not its leaks):\n",
    };
    for (int pass = 0; pass < 3; pass++) {
        int header = 0;
        for (uint32_t i = 0; i < nleaks; i++) {
            const struct leak *l = order[i];
            if ((l->inherited ? 2 : pf_sites_runtime(l->site)) != pass)
                continue;
            if (!header) {
                pf_fmt_str(f, headers[pass]);
                pf_fmt_str(f, "     objects        bytes  family                 site\n");
                header = 1;
            }
            pf_fmt_u64_w(f, l->objects, 12);
            pf_fmt_char(f, ' ');
            pf_fmt_u64_w(f, l->bytes, 12);
            pf_fmt_str(f, "  ");
            pf_fmt_str_w(f, family_name(l->family), -22);
            pf_fmt_char(f, ' ');
            if (!l->site) {
                pf_fmt_str(f, pf_sites_on ? "(not recorded)" : "(call sites off: PFALLOC_SITES=1)");
            } else if (l->site == OTHER_ID) {
                pf_fmt_str(f, "(other sites)");
            } else if (l->site == EARLY_ID) {
                pf_fmt_str(f, "(before start-up: the loader and libc)");
            } else {
                struct named n;
                name_frame(site_addr(l->site), site_module_of(l->site), &n);
                site_text(f, &n);
                pf_fmt_str(f, " (");
                pf_fmt_str(f, n.module);
                pf_fmt_str(f, n.unloaded ? ", unloaded)" : ")");
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
    pf_fmt_str(f, ",\"inherited_objects\":");
    pf_fmt_u64(f, total.inherited_objects);
    pf_fmt_str(f, ",\"inherited_bytes\":");
    pf_fmt_u64(f, total.inherited_bytes);
    pf_fmt_str(f, ",\"sites_recorded\":");
    pf_fmt_str(f, pf_sites_on ? "true" : "false");
    pf_fmt_str(f, ",\"grouped\":");
    pf_fmt_str(f, grouped ? "true" : "false");
    pf_fmt_str(f, ",\"sites\":[");
    for (uint32_t i = 0; i < nleaks; i++) {
        const struct leak *l = order[i];
        if (i)
            pf_fmt_char(f, ',');
        uintptr_t addr = site_addr(l->site);
        pf_fmt_str(f, "{\"site\":");
        if (addr) {
            struct named n;
            name_frame(addr, site_module_of(l->site), &n);
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
            pf_fmt_str(f, "\",\"module_path\":");
            pf_fmt_json_str(f, n.path);
            pf_fmt_str(f, ",\"module_unloaded\":");
            pf_fmt_str(f, n.unloaded ? "true" : "false");
        } else {
            pf_fmt_str(f, "null,\"module\":null,\"address\":null,\"module_offset\":null,"
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
        pf_fmt_str(f, !l->site ? "null" : pf_sites_runtime(l->site) ? "true" : "false");
        pf_fmt_str(f, ",\"inherited\":");
        pf_fmt_str(f, l->inherited ? "true" : "false");
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
