/*
 * unwind.c — walking the stack of an allocation without frame pointers, by
 * the unwind tables (.eh_frame) every x86-64 object carries. Per return
 * address, the rule giving the caller's frame (CFA = rsp or rbp + offset,
 * return address at CFA - 8, rbp saved at CFA + k or unchanged) is worked out
 * once — the object found with the loader's lock-free _dl_find_object, its
 * FDE by binary search of .eh_frame_hdr, the CFA program run up to the
 * address — and kept in a direct-mapped cache, so a walk is a few loads per
 * frame. The walk starts at the caller's frame, given by the exported entry
 * point, so pfalloc's own frames cost nothing; it goes through them only
 * when that start does not check out or the caller's rbp is needed. Never
 * allocates, takes no lock, async-signal-safe: the cache is
 * written with a sequence check and every rule carries a tag of its address
 * and the unload epoch (an unload forgets them all; the object of every
 * rule worked out is recorded by module.c, which tells when it is gone). Without the cache (no
 * memory for it at start-up) every rule is worked out each time: slower,
 * the same stacks.
 * Safety: every table read stays inside the object's mapping; the walk
 * stops at an address without an FDE, at a rule it does not handle (CFA
 * expressions, signal frames), at a return address marked undefined (the
 * outermost frame), and when a CFA does not move up the stack by a sane step.
 */
#include "unwind.h"

/* The rules, the register names (rsp, rbp, rip) and the asm are x86-64's. */
#if !defined(__x86_64__) || !defined(__LP64__)
#error "pfalloc's stack walker supports x86-64 only"
#endif

#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>

#include "module.h"

#define CACHE_BITS 14
#define CACHE_SLOTS (1u << CACHE_BITS)
#define MAX_FRAME ((uintptr_t)1 << 22) /* a frame larger than 4 MiB ends the walk */
#define MAX_STEPS 64

/* A rule in one word: */
#define R_CFA_OFF(r) ((int64_t)((r) << 40) >> 40) /* bits 0-23, signed */
#define R_CFA_RBP ((uint64_t)1 << 24)             /* CFA from rbp (else rsp) */
#define R_RBP_SAVED ((uint64_t)1 << 25)           /* rbp saved at CFA + R_RBP_OFF */
#define R_END ((uint64_t)1 << 26)                 /* stop here */
#define R_VALID ((uint64_t)1 << 27)
#define R_RBP_OFF(r) ((int64_t)((r) << 24) >> 52) /* bits 28-39, signed */
#define R_TAG_SHIFT 40                            /* bits 40-55: address bits above the index */
#define R_EPOCH_SHIFT 56                          /* bits 56-63 */

struct entry {
    _Atomic uintptr_t pc;
    _Atomic uint64_t rule;
};

static struct entry *cache; /* CACHE_SLOTS entries */
static _Atomic uint32_t epoch;
static uintptr_t self_lo, self_hi; /* pfalloc's own object */

void pf_unwind_self(const void *self)
{
    struct dl_find_object fo;
    if (!self_hi && _dl_find_object((void *)self, &fo) == 0) {
        self_lo = (uintptr_t)fo.dlfo_map_start;
        self_hi = (uintptr_t)fo.dlfo_map_end;
    }
}

void pf_unwind_init(const void *self)
{
    if (!cache)
        cache = pf_os_map_meta(sizeof(*cache) * CACHE_SLOTS);
    pf_unwind_self(self);
}

/* A rule's tag holds the epoch's low 8 bits, which come round again after
 * 256 unloads: a rule cached before them, in a slot no walk wrote since,
 * would pass for the code mapped at its address now (a library loaded
 * where an unloaded one was: its frames walked by the old one's rules, the
 * walk read past the stack). Every 128 unloads the shared cache is
 * emptied, so a rule lives at most 255 of them (one written by a walk
 * that read the epoch just before the emptying at most 128 more); each
 * thread empties its own rules (pf_unwind_near) when a walk finds the
 * bits above the tag moved. */
#define EMPTY_EVERY 128

void pf_unwind_forget(void)
{
    uint32_t now = atomic_fetch_add_explicit(&epoch, 1, memory_order_release) + 1;
    if (now % EMPTY_EVERY == 0 && cache)
        for (uint32_t i = 0; i < CACHE_SLOTS; i++)
            atomic_store_explicit(&cache[i].pc, 0, memory_order_relaxed);
}

/* Empties a thread's rules of an earlier lap of the epoch (see above). */
static inline __attribute__((always_inline)) void near_lap(struct pf_unwind_near *near, uint32_t ep)
{
    if (PF_LIKELY(!near || near->laps == ep >> 8))
        return;
    for (uint32_t i = 0; i < (1u << PF_UNWIND_NEAR_BITS); i++)
        near->e[i].pc = 0;
    near->laps = ep >> 8;
}

/* ---- reading the tables, bounded by the object's mapping -------------------- */
struct cur {
    const uint8_t *p, *end;
    int bad;
};

static uint8_t u8(struct cur *c)
{
    if (c->p >= c->end) {
        c->bad = 1;
        return 0;
    }
    return *c->p++;
}

static uint64_t fixed(struct cur *c, int n)
{
    if (c->end - c->p < n) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    memcpy(&v, c->p, (size_t)n); /* little-endian */
    c->p += n;
    return v;
}

static uint64_t uleb(struct cur *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b = u8(c);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}

static int64_t sleb(struct cur *c)
{
    int64_t v = 0;
    int shift = 0;
    uint8_t b;
    do {
        b = u8(c);
        v |= (int64_t)(b & 0x7f) << shift;
        shift += 7;
    } while ((b & 0x80) && shift < 64);
    if (shift < 64 && (b & 0x40))
        v |= -((int64_t)1 << shift);
    return v;
}

/* A pointer in DWARF EH encoding `enc`; `data` is the datarel base. */
static uintptr_t encoded(struct cur *c, uint8_t enc, uintptr_t data)
{
    if (enc == 0xff)
        return 0;
    uintptr_t at = (uintptr_t)c->p, v;
    switch (enc & 0x0f) {
    case 0x00: v = (uintptr_t)fixed(c, 8); break;
    case 0x01: v = (uintptr_t)uleb(c); break;
    case 0x02: v = (uintptr_t)fixed(c, 2); break;
    case 0x03: v = (uintptr_t)fixed(c, 4); break;
    case 0x04: v = (uintptr_t)fixed(c, 8); break;
    case 0x09: v = (uintptr_t)sleb(c); break;
    case 0x0a: v = (uintptr_t)(int64_t)(int16_t)fixed(c, 2); break;
    case 0x0b: v = (uintptr_t)(int64_t)(int32_t)fixed(c, 4); break;
    case 0x0c: v = (uintptr_t)fixed(c, 8); break;
    default: c->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += at; break;
    case 0x30: v += data; break;
    default: c->bad = 1; return 0;
    }
    return v; /* indirect (0x80): personality pointers only, never followed here */
}

/* ---- running the CFA program -------------------------------------------------- */
enum { REG_RBP = 6, REG_RSP = 7, REG_RA = 16 };
enum { SAME = 0, AT_OFFSET = 1, UNHANDLED = 2, UNDEFINED = 3 };

/* The other callee-saved registers, by DWARF number: rbx, r12 .. r15
 * (tracked for pf_unwind_program_frame only). */
#define NKEPT 5
static const uint8_t kept_reg[NKEPT] = {3, 12, 13, 14, 15};

struct row {
    int cfa_reg, cfa_ok;
    int64_t cfa_off;
    int rbp, ra; /* SAME, AT_OFFSET, UNHANDLED, UNDEFINED */
    int64_t rbp_off, ra_off;
    int kept[NKEPT];
    int64_t kept_off[NKEPT];
};

struct cie {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    int has_z, signal;
    const uint8_t *insns, *end;
};

static void set_reg(struct row *r, uint64_t reg, int how, int64_t off)
{
    if (reg == REG_RBP) {
        r->rbp = how;
        r->rbp_off = off;
    } else if (reg == REG_RA) {
        r->ra = how;
        r->ra_off = off;
    } else {
        for (int i = 0; i < NKEPT; i++)
            if (reg == kept_reg[i]) {
                r->kept[i] = how;
                r->kept_off[i] = off;
            }
    }
}

/* A register's rule back to the CIE's (DW_CFA_restore). */
static void restore_reg(struct row *r, uint64_t reg, const struct row *initial)
{
    if (reg == REG_RBP) {
        set_reg(r, reg, initial->rbp, initial->rbp_off);
    } else if (reg == REG_RA) {
        set_reg(r, reg, initial->ra, initial->ra_off);
    } else {
        for (int i = 0; i < NKEPT; i++)
            if (reg == kept_reg[i])
                set_reg(r, reg, initial->kept[i], initial->kept_off[i]);
    }
}

/* Runs insns until the location passes `target`; 0 on an instruction it
 * does not know. */
static int run(struct cur *c, const struct cie *ci, uintptr_t loc, uintptr_t target, struct row *r,
               const struct row *initial)
{
    struct row saved[4];
    int nsaved = 0;
    while (c->p < c->end && !c->bad) {
        uint8_t op = u8(c);
        uint64_t reg, delta = 0;
        switch (op >> 6) {
        case 1: delta = (op & 0x3f) * ci->code_align; goto advance;
        case 2: set_reg(r, op & 0x3f, AT_OFFSET, (int64_t)uleb(c) * ci->data_align); continue;
        case 3: restore_reg(r, op & 0x3f, initial); continue;
        }
        switch (op) {
        case 0x00: break;
        case 0x01: loc = encoded(c, ci->fde_enc, 0); if (loc > target) return 1; break;
        case 0x02: delta = fixed(c, 1) * ci->code_align; goto advance;
        case 0x03: delta = fixed(c, 2) * ci->code_align; goto advance;
        case 0x04: delta = fixed(c, 4) * ci->code_align; goto advance;
        case 0x05: reg = uleb(c); set_reg(r, reg, AT_OFFSET, (int64_t)uleb(c) * ci->data_align); break;
        case 0x06: restore_reg(r, uleb(c), initial); break;
        case 0x07: set_reg(r, uleb(c), UNDEFINED, 0); break;
        case 0x08: set_reg(r, uleb(c), SAME, 0); break;
        case 0x09: reg = uleb(c); uleb(c); set_reg(r, reg, UNHANDLED, 0); break;
        case 0x0a:
            if (nsaved == 4)
                return 0;
            saved[nsaved++] = *r;
            break;
        case 0x0b:
            if (!nsaved)
                return 0;
            *r = saved[--nsaved]; /* the whole row, CFA included */
            break;
        case 0x0c: r->cfa_reg = (int)uleb(c); r->cfa_off = (int64_t)uleb(c); r->cfa_ok = 1; break;
        case 0x0d: r->cfa_reg = (int)uleb(c); break;
        case 0x0e: r->cfa_off = (int64_t)uleb(c); break;
        case 0x0f: c->p += uleb(c); r->cfa_ok = 0; break;
        case 0x10: reg = uleb(c); c->p += uleb(c); set_reg(r, reg, UNHANDLED, 0); break;
        case 0x11: reg = uleb(c); set_reg(r, reg, AT_OFFSET, sleb(c) * ci->data_align); break;
        case 0x12: r->cfa_reg = (int)uleb(c); r->cfa_off = sleb(c) * ci->data_align; r->cfa_ok = 1; break;
        case 0x13: r->cfa_off = sleb(c) * ci->data_align; break;
        case 0x14: reg = uleb(c); uleb(c); set_reg(r, reg, UNHANDLED, 0); break;
        case 0x15: reg = uleb(c); sleb(c); set_reg(r, reg, UNHANDLED, 0); break;
        case 0x16: reg = uleb(c); c->p += uleb(c); set_reg(r, reg, UNHANDLED, 0); break;
        case 0x2e: uleb(c); break;
        case 0x2f: reg = uleb(c); set_reg(r, reg, AT_OFFSET, -(int64_t)uleb(c) * ci->data_align); break;
        default: return 0;
        }
        continue;
    advance:
        loc += delta;
        if (loc > target)
            return 1;
    }
    return !c->bad;
}

static int parse_cie(const uint8_t *p, uintptr_t lo, uintptr_t hi, struct cie *ci)
{
    struct cur c = {p, (const uint8_t *)hi, 0};
    if ((uintptr_t)p < lo)
        return 0;
    uint32_t len = (uint32_t)fixed(&c, 4);
    if (len == 0 || len == 0xffffffffu || (uintptr_t)(hi - (uintptr_t)c.p) < len)
        return 0;
    c.end = c.p + len;
    if (fixed(&c, 4) != 0) /* CIE id */
        return 0;
    uint8_t version = u8(&c);
    const char *aug = (const char *)c.p;
    while (u8(&c) && !c.bad) {
    }
    if (aug[0] && aug[0] != 'z')
        return 0;
    ci->code_align = uleb(&c);
    ci->data_align = sleb(&c);
    ci->ra_reg = version == 1 ? u8(&c) : uleb(&c);
    ci->fde_enc = 0;
    ci->has_z = aug[0] == 'z';
    ci->signal = 0;
    if (ci->has_z) {
        uint64_t alen = uleb(&c);
        const uint8_t *after = c.p + alen;
        for (const char *a = aug + 1; *a && !c.bad; a++) {
            if (*a == 'R')
                ci->fde_enc = u8(&c);
            else if (*a == 'P') {
                uint8_t e = u8(&c);
                encoded(&c, e & 0x7f, 0);
            } else if (*a == 'L')
                u8(&c);
            else if (*a == 'S')
                ci->signal = 1;
            else
                break; /* unknown: the length lets us skip the rest */
        }
        c.p = after;
    }
    ci->insns = c.p;
    ci->end = c.end;
    return !c.bad && ci->insns <= ci->end && ci->ra_reg == REG_RA;
}

/* The FDE that covers code address `look`: its instructions in *f, its
 * CIE in *ci, the code it covers starting at *begin. 0 when there is none
 * (no object, no .eh_frame_hdr, a signal frame's). */
static int fde_of(uintptr_t look, struct cur *f, struct cie *ci, uintptr_t *begin)
{
    struct dl_find_object fo;
    if (_dl_find_object((void *)look, &fo) != 0 || !fo.dlfo_eh_frame)
        return 0;
    uintptr_t lo = (uintptr_t)fo.dlfo_map_start, hi = (uintptr_t)fo.dlfo_map_end;
    const uint8_t *hdr = fo.dlfo_eh_frame;
    if ((uintptr_t)hdr < lo || (uintptr_t)hdr + 12 > hi || hdr[0] != 1)
        return 0;
    struct cur c = {hdr + 4, (const uint8_t *)hi, 0};
    encoded(&c, hdr[1], (uintptr_t)hdr); /* .eh_frame's address: not needed */
    if (c.bad || hdr[2] != 0x03 || hdr[3] != 0x3b) /* udata4 count, datarel sdata4 table */
        return 0;
    uint32_t n = (uint32_t)fixed(&c, 4);
    const uint8_t *tab = c.p;
    if (c.bad || !n || (uintptr_t)(hi - (uintptr_t)tab) / 8 < n)
        return 0;
    /* The last entry whose start is <= look. */
    uint32_t a = 0, b = n;
    while (b - a > 1) {
        uint32_t m = (a + b) / 2;
        int32_t start;
        memcpy(&start, tab + 8 * m, 4);
        if ((uintptr_t)hdr + (intptr_t)start <= look)
            a = m;
        else
            b = m;
    }
    int32_t start, off;
    memcpy(&start, tab + 8 * a, 4);
    memcpy(&off, tab + 8 * a + 4, 4);
    if ((uintptr_t)hdr + (intptr_t)start > look)
        return 0;
    const uint8_t *fde = hdr + off;
    if ((uintptr_t)fde < lo || (uintptr_t)fde + 8 > hi)
        return 0;
    *f = (struct cur){fde, (const uint8_t *)hi, 0};
    uint32_t len = (uint32_t)fixed(f, 4);
    if (len == 0 || len == 0xffffffffu || (uintptr_t)(hi - (uintptr_t)f->p) < len)
        return 0;
    f->end = f->p + len;
    const uint8_t *idp = f->p;
    uint32_t cie_off = (uint32_t)fixed(f, 4);
    if (!cie_off || !parse_cie(idp - cie_off, lo, hi, ci) || ci->signal)
        return 0;
    *begin = encoded(f, ci->fde_enc, 0);
    uintptr_t range = encoded(f, ci->fde_enc & 0x0f, 0);
    if (f->bad || look < *begin || look - *begin >= range)
        return 0;
    if (ci->has_z)
        f->p += uleb(f);
    return !f->bad && f->p <= f->end;
}

uintptr_t pf_unwind_func_start(uintptr_t look)
{
    struct cur f;
    struct cie ci;
    uintptr_t begin;
    return fde_of(look, &f, &ci, &begin) ? begin : 0;
}

/* The row of code address `look`: 0 where there is none to use. */
static int row_of(uintptr_t look, struct row *r)
{
    struct cur f;
    struct cie ci;
    uintptr_t begin;
    if (!fde_of(look, &f, &ci, &begin))
        return 0;
    *r = (struct row){REG_RSP, 0, 0, SAME, UNHANDLED, 0, 0, {SAME, SAME, SAME, SAME, SAME}, {0}};
    struct cur ic = {ci.insns, ci.end, 0};
    if (!run(&ic, &ci, begin, (uintptr_t)-1, r, r))
        return 0;
    struct row initial = *r;
    return run(&f, &ci, begin, look, r, &initial);
}

/* The rule for code address `look` (a return address minus one, or the
 * walk's own first address). */
static __attribute__((noinline)) uint64_t compute(uintptr_t look)
{
    const uint64_t stop = R_VALID | R_END;
    struct row r;
    /* The object is recorded before its tables are read: an unload of it
     * is then seen by pf_module_any_gone, which the forgetting of every
     * rule follows (see callsite.c). */
    pf_module_of(look);
    if (!row_of(look, &r))
        return stop;
    if (r.ra == UNDEFINED || !r.cfa_ok || (r.cfa_reg != REG_RSP && r.cfa_reg != REG_RBP) ||
        r.ra != AT_OFFSET || r.ra_off != -8 || r.rbp == UNHANDLED || r.rbp == UNDEFINED ||
        r.cfa_off < 8 || r.cfa_off >= ((int64_t)1 << 23) ||
        (r.rbp == AT_OFFSET && (r.rbp_off < -2048 || r.rbp_off >= 0)))
        return stop;
    /* A CFA from rsp moves the walk up by cfa_off, which the walk would
     * check at every step: check it here once. The stack is 8-aligned at
     * every instruction, so the offset is a multiple of 8, at most a frame,
     * and a saved rbp lies between the old and the new stack pointer. */
    if (r.cfa_reg == REG_RSP &&
        ((r.cfa_off & 7) || (uint64_t)r.cfa_off > MAX_FRAME ||
         (r.rbp == AT_OFFSET && r.cfa_off + r.rbp_off < 0)))
        return stop;
    uint64_t rule = R_VALID | ((uint64_t)r.cfa_off & 0xffffff);
    if (r.cfa_reg == REG_RBP)
        rule |= R_CFA_RBP;
    if (r.rbp == AT_OFFSET)
        rule |= R_RBP_SAVED | (((uint64_t)r.rbp_off & 0xfff) << 28);
    return rule;
}

/* The bits of a cached rule that say whose it is: the low 16 bits of the
 * address and the unload epoch. With the address compared whole too, they
 * make a rule torn between two writers of one slot (each writing the
 * address, then the rule) tell itself apart. */
static inline __attribute__((always_inline)) uint64_t tag_of(uintptr_t look, uint64_t ep_bits)
{
    return ((uint64_t)(look & 0xffff) << R_TAG_SHIFT) | ep_bits;
}

static inline uint64_t epoch_bits(void)
{
    return (uint64_t)(atomic_load_explicit(&epoch, memory_order_acquire) & 0xff) << R_EPOCH_SHIFT;
}

static inline __attribute__((always_inline)) uint64_t rule_of(uintptr_t look, uint64_t ep_bits)
{
    uint64_t tag = tag_of(look, ep_bits);
    if (PF_UNLIKELY(!cache)) /* no memory for it: every rule worked out again */
        return compute(look) | tag;
    struct entry *e = &cache[(uint32_t)((look * 0x9E3779B97F4A7C15ull) >> (64 - CACHE_BITS))];
    if (atomic_load_explicit(&e->pc, memory_order_acquire) == look) {
        uint64_t r = atomic_load_explicit(&e->rule, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->pc, memory_order_relaxed) == look && (r & ~(uint64_t)0xffffffffff) == tag)
            return r;
    }
    uint64_t r = compute(look) | tag;
    atomic_store_explicit(&e->pc, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->rule, r, memory_order_relaxed);
    atomic_store_explicit(&e->pc, look, memory_order_release);
    return r;
}

/* One step of the walk from (pc, sp, fp): the caller's state, or 0 at the
 * end. `fp_known` 0: rbp is not known at this frame (the walk began at the
 * caller's frame, and rbp has not been reloaded from the stack since): a
 * rule that needs it gives -1. Rules with a CFA from rsp were checked when
 * they were made (compute): only a CFA from rbp needs checking here. */
static inline __attribute__((always_inline)) int step(uintptr_t look, uint64_t ep_bits, uintptr_t *pc,
                                                      uintptr_t *sp, uintptr_t *fp, int *fp_known)
{
    uint64_t r = rule_of(look, ep_bits);
    if (r & R_END)
        return 0;
    uintptr_t cfa = *sp + (uintptr_t)R_CFA_OFF(r);
    if (PF_UNLIKELY(r & R_CFA_RBP)) {
        if (!*fp_known)
            return -1;
        cfa = *fp + (uintptr_t)R_CFA_OFF(r);
        if (cfa <= *sp || cfa - *sp > MAX_FRAME || (cfa & 7))
            return 0;
    }
    uintptr_t ra = *(const uintptr_t *)(cfa - 8);
    if (r & R_RBP_SAVED) {
        uintptr_t at = cfa + (uintptr_t)R_RBP_OFF(r);
        if (PF_UNLIKELY(at < *sp))
            return 0;
        *fp = *(const uintptr_t *)at;
        *fp_known = 1;
    }
    *sp = cfa;
    *pc = ra;
    return ra >= 4096;
}

/* The rules this thread used last, by address (struct pf_unwind_near,
 * kept by the caller in the thread's cache rather than in TLS, which glibc
 * carves out of every thread's stack): the frames of a program's
 * allocations repeat (the outer ones above all), and this small table stays
 * in the thread's first-level cache where the shared one would miss. Only
 * the cache's thread writes it; a rule carries its tag (the address's low
 * bits and the epoch), compared whole: an entry left half written (a fork
 * from another thread between its two stores, whose cache a thread of the
 * child then adopts) pairs one address with another's rule, and is not
 * taken for that address. */
static inline __attribute__((always_inline)) uint64_t near_rule_of(struct pf_unwind_near *near, uintptr_t look,
                                                                   uint64_t ep_bits)
{
    if (PF_UNLIKELY(!near))
        return rule_of(look, ep_bits);
    __typeof__(near->e[0]) *e = &near->e[(uint32_t)((look * 0x9E3779B97F4A7C15ull) >> (64 - PF_UNWIND_NEAR_BITS))];
    if (PF_LIKELY(e->pc == look && (e->rule & ~(uint64_t)0xffffffffff) == tag_of(look, ep_bits)))
        return e->rule;
    uint64_t r = rule_of(look, ep_bits);
    e->pc = look;
    e->rule = r;
    return r;
}

static inline uintptr_t thread_pointer(void)
{
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    return tp;
}

/* Keeps a word the walk read, and its address, in reads (when given and
 * while there is room); *k counts them. */
static inline __attribute__((always_inline)) void logged(struct pf_unwind_reads *reads, int *k, uintptr_t at,
                                                         uintptr_t val)
{
    if (!reads)
        return;
    if (*k < PF_UNWIND_READS) {
        reads->r[*k].at = at;
        reads->r[*k].val = val;
    }
    (*k)++;
}

/* From the caller's frame: its return address is pcs[0]; no frame of
 * pfalloc is looked at. -1 when the start cannot be used. max <= MAX_STEPS.
 * The step of the full walk, written out with rbp unknown until a frame
 * restores it (0: no frame has; a restored 0 ends a walk that needs it),
 * so that the loop keeps its state in registers. With `reads`, what it
 * reads of the stack goes there too (a constant NULL compiles that away). */
static inline __attribute__((always_inline)) int walk_from(uintptr_t *pcs, int max, uintptr_t pc, uintptr_t sp,
                                                           struct pf_unwind_near *near,
                                                           struct pf_unwind_reads *reads)
{
    uint32_t ep = atomic_load_explicit(&epoch, memory_order_acquire);
    uint64_t ep_bits = (uint64_t)(ep & 0xff) << R_EPOCH_SHIFT;
    near_lap(near, ep);
    uintptr_t fp = 0;
    int n = 0, k = 0;
    pcs[n++] = pc;
    if (reads) {
        reads->epoch = ep;
        reads->thread = thread_pointer();
        logged(reads, &k, sp - 8, pc); /* the start's check */
    }
    while (n < max) {
        uint64_t r = near_rule_of(near, pc - 1, ep_bits);
        if (PF_UNLIKELY(r & (R_END | R_CFA_RBP))) {
            if (r & R_END)
                break;
            if (!fp)
                return -1;
            uintptr_t cfa = fp + (uintptr_t)R_CFA_OFF(r);
            if (cfa <= sp || cfa - sp > MAX_FRAME || (cfa & 7))
                break;
            if ((r & R_RBP_SAVED) && cfa + (uintptr_t)R_RBP_OFF(r) < sp)
                break;
            sp = cfa;
        } else {
            sp += (uintptr_t)R_CFA_OFF(r);
        }
        pc = *(const uintptr_t *)(sp - 8);
        logged(reads, &k, sp - 8, pc);
        if (r & R_RBP_SAVED) {
            fp = *(const uintptr_t *)(sp + (uintptr_t)R_RBP_OFF(r));
            logged(reads, &k, sp + (uintptr_t)R_RBP_OFF(r), fp);
        }
        if (PF_UNLIKELY(pc < 4096))
            break;
        pcs[n++] = pc;
    }
    if (reads)
        reads->n = k <= PF_UNWIND_READS ? k : -1;
    return n;
}

static int from_caller(uintptr_t *pcs, int max, uintptr_t pc, uintptr_t sp, struct pf_unwind_near *near)
{
    return walk_from(pcs, max, pc, sp, near, NULL);
}

static int from_caller_logged(uintptr_t *pcs, int max, uintptr_t pc, uintptr_t sp, struct pf_unwind_near *near,
                              struct pf_unwind_reads *reads)
{
    return walk_from(pcs, max, pc, sp, near, reads);
}

int pf_unwind_same(const struct pf_unwind_reads *reads, uintptr_t start)
{
    uintptr_t sp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
    /* The start's checks, as pf_unwind makes them; the same thread (whose
     * stack holds every address read, above the start) and rules. */
    if (reads->n <= 0 || reads->thread != thread_pointer() || start <= sp || start - sp > MAX_FRAME ||
        reads->epoch != atomic_load_explicit(&epoch, memory_order_acquire))
        return 0;
    for (int i = 0; i < reads->n; i++)
        if (*(const uintptr_t *)reads->r[i].at != reads->r[i].val)
            return 0;
    return 1;
}

__attribute__((noinline)) int pf_unwind(uintptr_t *pcs, int max, uintptr_t ret, uintptr_t start,
                                        struct pf_unwind_near *near, struct pf_unwind_reads *reads)
{
    if (reads)
        reads->n = -1;
    if (max < 1)
        return 0;
    if (max > MAX_STEPS)
        max = MAX_STEPS;
    uintptr_t pc, sp, fp;
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(fp));
    /* The start is used when it is what it claims: above this frame, 8-byte
     * aligned, holding `ret` just below it, and `ret` outside pfalloc. Its
     * rbp is not known (pfalloc's frames may use rbp as they like): the
     * first rule that needs it sends the walk back to the full one. */
    if (start && ret >= 4096 && !(ret >= self_lo && ret < self_hi) && start > sp &&
        start - sp <= MAX_FRAME && !(start & 7) && *(const uintptr_t *)(start - 8) == ret) {
        int n = reads ? from_caller_logged(pcs, max, ret, start, near, reads)
                      : from_caller(pcs, max, ret, start, near);
        if (n >= 0)
            return n;
        if (reads)
            reads->n = -1;
    }
    uint64_t ep_bits = epoch_bits();
    int n = 0, inside = 1, fp_known = 1;
    for (int k = 0; k < MAX_STEPS && n < max; k++) {
        /* A return address is one past its call: the call is at pc - 1. */
        if (step(k ? pc - 1 : pc, ep_bits, &pc, &sp, &fp, &fp_known) <= 0)
            break;
        if (inside && pc >= self_lo && pc < self_hi)
            continue; /* still in pfalloc */
        inside = 0;
        pcs[n++] = pc;
    }
    return n;
}

/* ---- the program's frame at the exit -------------------------------------------- */

__attribute__((noinline)) int pf_unwind_program_frame(int (*last)(uintptr_t code), uintptr_t *sp_out,
                                                      uintptr_t regs[PF_UNWIND_KEPT])
{
    /* This function's own state, read in one go: the rules of `pc` say
     * where its caller's registers are (saved by the prologue, or still
     * in place). */
    uintptr_t pc, sp, v[NKEPT + 1]; /* rbx, r12 .. r15, rbp */
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbx, 0(%2)\n\tmov %%r12, 8(%2)\n\t"
                     "mov %%r13, 16(%2)\n\tmov %%r14, 24(%2)\n\tmov %%r15, 32(%2)\n\tmov %%rbp, 40(%2)"
                     : "=&r"(pc), "=&r"(sp)
                     : "r"(v)
                     : "memory");
    for (int k = 0; k < MAX_STEPS; k++) {
        struct row r;
        uintptr_t look = k ? pc - 1 : pc;
        if (!row_of(look, &r) || r.ra != AT_OFFSET || r.ra_off != -8 || !r.cfa_ok ||
            (r.cfa_reg != REG_RSP && r.cfa_reg != REG_RBP))
            return 0;
        uintptr_t cfa = (r.cfa_reg == REG_RSP ? sp : v[NKEPT]) + (uintptr_t)r.cfa_off;
        if (cfa <= sp || cfa - sp > MAX_FRAME || (cfa & 7))
            return 0;
        /* Each saved register lies in the frame, between sp and the CFA. */
        for (int i = 0; i <= NKEPT; i++) {
            int how = i < NKEPT ? r.kept[i] : r.rbp;
            int64_t off = i < NKEPT ? r.kept_off[i] : r.rbp_off;
            if (how == AT_OFFSET) {
                if (off >= 0 || cfa + (uintptr_t)off < sp)
                    return 0;
                v[i] = *(const uintptr_t *)(cfa + (uintptr_t)off);
            } else if (how != SAME) {
                return 0;
            }
        }
        pc = *(const uintptr_t *)(cfa - 8);
        sp = cfa;
        if (pc < 4096)
            return 0;
        if (last(look)) { /* now at its caller's */
            *sp_out = sp;
            for (int i = 0; i <= NKEPT; i++)
                regs[i] = v[i];
            return 1;
        }
    }
    return 0;
}
