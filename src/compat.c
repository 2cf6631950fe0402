/*
 * compat.c — the Halloc (halloc.h) and Linux Memory Manager (uapi_mm.h) calls
 * that are more than a macro: registration, allocation by family name, and
 * the printers. Allocation itself is the core's typed door; nothing here keeps
 * state of its own.
 * The printers write to fd 1 with write(2) through fmt, never stdio, and never
 * allocate from pfalloc (that would change the figures they are printing).
 * Their scratch space is on the stack they run on, one of pfalloc's own for
 * reports (the first report of the process maps it, which the process
 * totals count, not any family's figures) or the caller's when those are
 * all taken, so they need no lock of their own: any number of threads may
 * print at once, and a fork never leaves one held.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "family.h"
#include "fmt.h"
#include "halloc.h"
#include "os.h"
#include "pfalloc.h"
#include "sites.h"
#include "uapi_mm.h"

#define SPAN_BUF_CAP 256

/* A printer's scratch space (about 10 KiB of stack). */
struct printer {
    struct pf_fmt f;                          /* text on its way to fd 1 */
    char out[2048];                           /* f's buffer */
    struct pf_span_info spans[SPAN_BUF_CAP];  /* spans of the family in view */
    struct pf_span_info *map;                 /* bigger buffer, mapped on demand */
    size_t map_cap;                           /* entries map holds */
};

/* One family as the printers see it. blocks == free_blocks + live_objects
 * whenever the program is quiet: a block is a slot of one of its spans (a
 * large block is one span of one slot). */
struct fam_view {
    struct pf_family_stats st;       /* figures taken with the spans */
    const struct pf_span_info *span; /* span[0 .. nspans) */
    size_t nspans;
    uint64_t blocks;      /* slots in all its spans */
    uint64_t free_blocks; /* blocks not held by a live object */
};

/* Fills *v for the family `name`; 0, or -1 when there is no such family. */
static int view_family(struct printer *pr, const char *name, struct fam_view *v)
{
    struct pf_span_info *buf = pr->map ? pr->map : pr->spans;
    size_t cap = pr->map ? pr->map_cap : SPAN_BUF_CAP;
    long n;

    for (;;) {
        n = pf_family_spans(name, &v->st, buf, cap);
        if (n < 0)
            return -1;
        if ((size_t)n <= cap)
            break;
        /* Rare (hundreds of spans in one family): map room for all of them,
         * with slack because the family may grow before the next look. */
        size_t want = (size_t)n + (size_t)n / 4 + 64;
        struct pf_span_info *m = pf_os_map(want * sizeof(struct pf_span_info), 16);
        if (!m) {
            n = (long)cap; /* print what fitted rather than nothing */
            break;
        }
        if (pr->map)
            pf_os_unmap(pr->map, pr->map_cap * sizeof(struct pf_span_info));
        pr->map = m;
        pr->map_cap = want;
        buf = m;
        cap = want;
    }
    v->span = buf;
    v->nspans = (size_t)n;
    v->blocks = 0;
    for (size_t i = 0; i < v->nspans; i++)
        v->blocks += buf[i].slots;
    v->free_blocks = v->blocks > v->st.live_objects ? v->blocks - v->st.live_objects : 0;
    return 0;
}

static void print_begin(struct printer *pr)
{
    pf_fmt_init(&pr->f, pr->out, sizeof pr->out, 1);
    pr->map = NULL;
    pr->map_cap = 0;
}

static void print_end(struct printer *pr)
{
    (void)pf_fmt_flush(&pr->f);
    if (pr->map)
        pf_os_unmap(pr->map, pr->map_cap * sizeof(struct pf_span_info));
}

static int name_has_prefix(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* The printers walk the registry, not pf_stats_get(): a family registered
 * but not used yet is listed too. Registered families never go away and
 * their name, kind and size never change, so reading them needs no lock. */
static int family_used(const struct fam_view *v)
{
    return v->st.allocs != 0 || v->nspans != 0;
}

/* ---- Halloc ------------------------------------------------------------- */

/* One line per typed family, "<prefix><name> object size N bytes".
 * Returns how many were shown. */
static uint32_t print_typed(struct printer *pr, const char *prefix)
{
    uint32_t shown = 0;
    for (uint32_t i = 0, n = pf_family_count(); i < n; i++) {
        const struct pf_family *fam = pf_family_at(i);
        if (fam->kind != PF_KIND_TYPED)
            continue;
        pf_fmt_str(&pr->f, prefix);
        pf_fmt_name_w(&pr->f, fam->name, -32);
        pf_fmt_str(&pr->f, " object size ");
        pf_fmt_u64(&pr->f, fam->obj_size);
        pf_fmt_str(&pr->f, " bytes\n");
        shown++;
    }
    return shown;
}

static void saved_page_items(const char *unused)
{
    (void)unused;
    struct printer pr;

    print_begin(&pr);
    pf_fmt_str(&pr.f, "halloc: types with a family\n");
    if (!print_typed(&pr, "  "))
        pf_fmt_str(&pr.f, "  (none)\n");
    print_end(&pr);
}

/* "  <name>  arrays A  used bytes U": a type's figures that add up. */
static void halloc_usage_line(struct pf_fmt *f, const char *name, uint64_t arrays, uint64_t used)
{
    pf_fmt_str(f, "  ");
    pf_fmt_name_w(f, name, -32);
    pf_fmt_str(f, " arrays ");
    pf_fmt_u64_w(f, arrays, -8);
    pf_fmt_str(f, " used bytes ");
    pf_fmt_u64(f, used);
    pf_fmt_char(f, '\n');
}

/* "    block size S  blocks B  free blocks F", one line per block size of
 * the type's spans (an array of n objects takes one block of the size that
 * fits it, so a type holds blocks of several sizes: counts of different
 * sizes are never added together). Sizes in increasing order. */
static void halloc_block_lines(struct pf_fmt *f, const struct fam_view *v)
{
    uint64_t last = 0;
    for (;;) {
        uint64_t size = UINT64_MAX, blocks = 0, taken = 0;
        for (size_t i = 0; i < v->nspans; i++)
            if (v->span[i].slot_size > last && v->span[i].slot_size < size)
                size = v->span[i].slot_size;
        if (size == UINT64_MAX)
            return;
        for (size_t i = 0; i < v->nspans; i++)
            if (v->span[i].slot_size == size) {
                blocks += v->span[i].slots;
                taken += v->span[i].used;
            }
        pf_fmt_str(f, "    block size ");
        pf_fmt_u64_w(f, size, -8);
        pf_fmt_str(f, " blocks ");
        pf_fmt_u64_w(f, blocks, -8);
        pf_fmt_str(f, " free blocks ");
        pf_fmt_u64(f, blocks > taken ? blocks - taken : 0);
        pf_fmt_char(f, '\n');
        last = size;
    }
}

static void total_memory_usage(const char *unused)
{
    (void)unused;
    struct printer pr;
    struct fam_view v;
    uint64_t arrays = 0, used = 0, mapped = 0;

    print_begin(&pr);
    pf_fmt_str(&pr.f, "halloc: memory usage by type\n");
    for (uint32_t i = 0, n = pf_family_count(); i < n; i++) {
        const struct pf_family *fam = pf_family_at(i);
        if (fam->kind != PF_KIND_TYPED || view_family(&pr, pf_family_name(fam), &v) != 0)
            continue;
        halloc_usage_line(&pr.f, v.st.name, v.st.live_objects, v.st.live_bytes);
        halloc_block_lines(&pr.f, &v);
        arrays += v.st.live_objects;
        used += v.st.live_bytes;
        mapped += v.st.mapped_bytes;
    }
    pf_fmt_str(&pr.f, "  ");
    pf_fmt_str_w(&pr.f, "(all types)", -32);
    pf_fmt_str(&pr.f, " arrays ");
    pf_fmt_u64_w(&pr.f, arrays, -8);
    pf_fmt_str(&pr.f, " used bytes ");
    pf_fmt_u64(&pr.f, used);
    pf_fmt_str(&pr.f, "  mapped bytes ");
    pf_fmt_u64(&pr.f, mapped);
    pf_fmt_char(&pr.f, '\n');
    print_end(&pr);
}

static void type_memory_usage(const char *type_name)
{
    struct printer pr;
    struct fam_view v;

    print_begin(&pr);
    if (!type_name || view_family(&pr, type_name, &v) != 0) {
        pf_fmt_str(&pr.f, "halloc: type ");
        pf_fmt_name(&pr.f, type_name);
        pf_fmt_str(&pr.f, " has no family (nothing allocated yet)\n");
        print_end(&pr);
        return;
    }
    pf_fmt_str(&pr.f, "halloc: memory usage of type ");
    pf_fmt_name(&pr.f, v.st.name);
    pf_fmt_str(&pr.f, " (object size ");
    pf_fmt_u64(&pr.f, v.st.slot_size);
    pf_fmt_str(&pr.f, " bytes)\n");
    for (size_t i = 0; i < v.nspans; i++) {
        const struct pf_span_info *s = &v.span[i];
        pf_fmt_str(&pr.f, "    span ");
        pf_fmt_hex(&pr.f, s->first);
        pf_fmt_str(&pr.f, "  ");
        pf_fmt_u64(&pr.f, s->bytes);
        pf_fmt_str(&pr.f, " bytes  block size ");
        pf_fmt_u64(&pr.f, s->slot_size);
        pf_fmt_str(&pr.f, "  blocks ");
        pf_fmt_u64(&pr.f, s->slots);
        pf_fmt_str(&pr.f, "  taken ");
        pf_fmt_u64(&pr.f, s->used);
        pf_fmt_str(&pr.f, "  largest free run ");
        pf_fmt_u64(&pr.f, s->largest_free_run);
        pf_fmt_char(&pr.f, '\n');
    }
    halloc_usage_line(&pr.f, v.st.name, v.st.live_objects, v.st.live_bytes);
    halloc_block_lines(&pr.f, &v);
    print_end(&pr);
}

/* ---- Linux Memory Manager -------------------------------------------------- */

void mm_init(void)
{
    /* The core sets itself up on first use; there is nothing to do. */
}

static void mm_warn(const char *what, const char *name)
{
    char buf[160];
    struct pf_fmt f;

    pf_fmt_init(&f, buf, sizeof buf, 2);
    pf_fmt_str(&f, "uapi_mm: page family ");
    pf_fmt_name(&f, name);
    pf_fmt_str(&f, what);
    pf_fmt_char(&f, '\n');
    (void)pf_fmt_flush(&f);
}

void mm_instantiate_new_page_family(const char *struct_name, size_t struct_size)
{
    int saved = errno;

    if (!struct_name || !struct_size) {
        mm_warn(" not registered: it needs a name and a nonzero size", struct_name);
    } else if (!pf_family_get(struct_name, struct_size)) {
        mm_warn(errno == EINVAL ? " not registered: the name is taken by another size"
                                : " not registered: out of memory",
                struct_name);
    }
    errno = saved;
}

void *pf_mm_calloc_by_name(const char *struct_name, size_t units)
{
    struct pf_family *fam;

    void *p;
    /* The original's xcalloc(NULL, size) was its untyped door. */
    if (!struct_name) {
        p = pf_calloc_in(1, units);
    } else {
        fam = pf_family_find(struct_name);
        if (!fam || fam->kind != PF_KIND_TYPED) {
            errno = EINVAL;
            return NULL;
        }
        p = pf_family_alloc_in(fam, units);
    }
    /* The site is this function's caller, not this function. */
    pf_sites_note_caller(p, __builtin_return_address(0));
    return p;
}

static void registered_page_families(const char *unused)
{
    (void)unused;
    struct printer pr;

    print_begin(&pr);
    print_typed(&pr, "page family ");
    print_end(&pr);
}

static void memory_usage(const char *struct_name)
{
    struct printer pr;
    struct fam_view v;
    uint64_t app = 0, spans = 0, span_bytes = 0;
    uint32_t shown = 0;
    size_t page = pf_os_page_size();

    print_begin(&pr);
    pf_fmt_str(&pr.f, "page size ");
    pf_fmt_u64(&pr.f, page);
    pf_fmt_str(&pr.f, " bytes\n");
    for (uint32_t i = 0, n = pf_family_count(); i < n; i++) {
        const struct pf_family *fam = pf_family_at(i);
        if (struct_name && !name_has_prefix(pf_family_name(fam), struct_name))
            continue;
        /* Untyped families only once used: there are dozens of classes. */
        if (view_family(&pr, pf_family_name(fam), &v) != 0 || (fam->kind != PF_KIND_TYPED && !family_used(&v)))
            continue;
        shown++;
        pf_fmt_str(&pr.f, "page family ");
        pf_fmt_name(&pr.f, v.st.name);
        pf_fmt_str(&pr.f, "  object size ");
        pf_fmt_u64(&pr.f, v.st.slot_size);
        pf_fmt_str(&pr.f, "  application bytes ");
        pf_fmt_u64(&pr.f, v.st.live_requested);
        pf_fmt_str(&pr.f, "  live objects ");
        pf_fmt_u64(&pr.f, v.st.live_objects);
        pf_fmt_str(&pr.f, "  allocs ");
        pf_fmt_u64(&pr.f, v.st.allocs);
        pf_fmt_str(&pr.f, "  frees ");
        pf_fmt_u64(&pr.f, v.st.frees);
        pf_fmt_char(&pr.f, '\n');
        for (size_t k = 0; k < v.nspans; k++) {
            const struct pf_span_info *s = &v.span[k];
            pf_fmt_str(&pr.f, "    span ");
            pf_fmt_u64_w(&pr.f, k, -4);
            pf_fmt_str(&pr.f, " at ");
            pf_fmt_hex(&pr.f, s->first);
            pf_fmt_str(&pr.f, "  pages ");
            pf_fmt_u64(&pr.f, (s->bytes + page - 1) / page);
            pf_fmt_str(&pr.f, "  block size ");
            pf_fmt_u64(&pr.f, s->slot_size);
            pf_fmt_str(&pr.f, "  blocks ");
            pf_fmt_u64(&pr.f, s->slots);
            pf_fmt_str(&pr.f, "  taken ");
            pf_fmt_u64(&pr.f, s->used);
            pf_fmt_str(&pr.f, "  largest free run ");
            pf_fmt_u64(&pr.f, s->largest_free_run);
            pf_fmt_char(&pr.f, '\n');
            span_bytes += s->bytes;
        }
        spans += v.nspans;
        app += v.st.live_requested;
    }
    if (!shown) {
        pf_fmt_str(&pr.f, "no page family");
        if (struct_name) {
            pf_fmt_str(&pr.f, " starting with ");
            pf_fmt_name(&pr.f, struct_name);
        }
        pf_fmt_char(&pr.f, '\n');
    }
    pf_fmt_str(&pr.f, "total application bytes ");
    pf_fmt_u64(&pr.f, app);
    pf_fmt_str(&pr.f, "\nspans ");
    pf_fmt_u64(&pr.f, spans);
    pf_fmt_str(&pr.f, " (");
    pf_fmt_u64(&pr.f, span_bytes);
    pf_fmt_str(&pr.f, " bytes)\napplication share of span bytes ");
    pf_fmt_pct(&pr.f, app, span_bytes);
    pf_fmt_char(&pr.f, '\n');
    print_end(&pr);
}

static void block_usage(const char *unused)
{
    (void)unused;
    struct printer pr;
    struct fam_view v;

    print_begin(&pr);
    for (uint32_t i = 0, n = pf_family_count(); i < n; i++) {
        const struct pf_family *fam = pf_family_at(i);
        if (view_family(&pr, pf_family_name(fam), &v) != 0 || (fam->kind != PF_KIND_TYPED && !family_used(&v)))
            continue;
        pf_fmt_name_w(&pr.f, v.st.name, -32);
        pf_fmt_str(&pr.f, " total blocks ");
        pf_fmt_u64_w(&pr.f, v.blocks, -8);
        pf_fmt_str(&pr.f, " free blocks ");
        pf_fmt_u64_w(&pr.f, v.free_blocks, -8);
        pf_fmt_str(&pr.f, " occupied blocks ");
        pf_fmt_u64_w(&pr.f, v.st.live_objects, -8);
        pf_fmt_str(&pr.f, " application bytes ");
        pf_fmt_u64(&pr.f, v.st.live_requested);
        pf_fmt_char(&pr.f, '\n');
    }
    print_end(&pr);
}

/* The printers run on a stack of pfalloc's own (pf_os_on_own_stack), as
 * the reports do: each takes about 11 KB of scratch space, and a program
 * may call one on a thread with a small stack. */
struct print_job {
    void (*fn)(const char *);
    const char *arg;
};

static void print_job(void *arg)
{
    const struct print_job *j = arg;
    j->fn(j->arg);
}

#define ON_OWN_STACK(f, a)                            \
    do {                                              \
        uintptr_t from;                               \
        PF_OS_PROGRAM_STACK(from);                    \
        struct print_job j = {(f), (a)};              \
        pf_os_on_own_stack(print_job, &j, from);      \
    } while (0)

void halloc_print_saved_page_items(void)
{
    ON_OWN_STACK(saved_page_items, NULL);
}

void halloc_print_total_memory_usage(void)
{
    ON_OWN_STACK(total_memory_usage, NULL);
}

/* Parenthesised: halloc.h defines a macro of the same name. */
void (halloc_print_type_memory_usage)(const char *type_name)
{
    ON_OWN_STACK(type_memory_usage, type_name);
}

void mm_print_registered_page_families(void)
{
    ON_OWN_STACK(registered_page_families, NULL);
}

void mm_print_memory_usage(const char *struct_name)
{
    ON_OWN_STACK(memory_usage, struct_name);
}

void mm_print_block_usage(void)
{
    ON_OWN_STACK(block_usage, NULL);
}
