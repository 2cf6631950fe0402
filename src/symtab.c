/*
 * symtab.c — code address -> module, file address, function.
 * The module comes from the loader (_dl_find_object: lock-free and
 * async-signal-safe; older C libraries: dl_iterate_phdr, not signal-safe).
 * Its file is mapped whole, read-only, and its function symbols (FUNC and
 * IFUNC, defined) sorted into a table in pfalloc's metadata, once per module:
 * .symtab when the file has one (static functions too), else the one of its
 * separate debug file of the same build (/usr/lib/debug by build-id, or
 * .gnu_debuglink: its build-id, or the CRC the link records, checked), else
 * .dynsym. A file that is not the one the module's code in memory came from
 * (its path renamed over since) gives no names, not another build's. Every
 * read of a file is checked against its size, so a truncated or corrupt
 * file gives no names, never a fault. Names point into the mapped
 * string tables, which stay mapped. One builder at a time (a try-flag): a
 * lookup that finds it taken answers with the module only.
 */
#include "symtab.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "fmt.h"
#include "module.h"

#define MAX_MODULES 1024
#define ARENA_CHUNK (64u * 1024)
#define DEBUG_DIR "/usr/lib/debug"
/* A symbol without a size (hand-written assembly) covers at most this much:
 * no name is better than a distant wrong one. */
#define UNSIZED_REACH 4096

/* A function symbol: [lo, lo + size) in the file's addresses. */
struct fn {
    uintptr_t lo;
    uint32_t size;     /* 0: unknown (assembly); taken to reach the next symbol */
    uint32_t name : 30; /* offset in the string table */
    uint32_t rank : 2;  /* among aliases at one address, the lowest is kept */
};

struct table {
    struct fn *fns; /* sorted by lo, one entry per address */
    uint32_t n;
    const char *str; /* string table; str[strsize - 1] == 0 */
    size_t strsize;
    size_t mapped; /* bytes mapped for fns */
};

struct module {
    uintptr_t bias;      /* load bias: run-time address - file address */
    const void *key;     /* the loader's handle (link map), with bias telling reloads apart */
    uint64_t name_hash;  /* of the loader's name: another object may take an unloaded one's
                            handle and address */
    const char *path;    /* in the arena */
    const char *base;    /* the base name of path */
    _Atomic int state;   /* 0: table not built, 1: built (possibly empty) */
    struct table t;
};

static struct module *mods; /* MAX_MODULES entries */
static _Atomic uint32_t nmods;
static atomic_flag busy = ATOMIC_FLAG_INIT; /* one builder: adds modules, builds tables */
static char *arena;
static size_t arena_left;
PF_BULK static char scratch[4096]; /* debug file paths; used under busy */

/* ---- small helpers -------------------------------------------------------------- */

static char *arena_copy(const char *s)
{
    size_t n = strlen(s) + 1;
    if (n > ARENA_CHUNK)
        return NULL;
    if (n > arena_left) {
        arena = pf_os_map_meta(ARENA_CHUNK);
        arena_left = arena ? ARENA_CHUNK : 0;
        if (!arena)
            return NULL;
    }
    char *p = arena;
    memcpy(p, s, n);
    arena += n;
    arena_left -= n;
    return p;
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* [off, off + len) lies inside a file of `size` bytes. */
static int inside(size_t size, uint64_t off, uint64_t len)
{
    return off <= size && len <= size - off;
}

/* ---- the ELF file -------------------------------------------------------------- */

struct elf {
    const unsigned char *p;
    size_t size;
    const ElfW(Shdr) *sh; /* section headers, all inside the file */
    uint32_t shnum;
};

static int elf_open(struct elf *e, const void *p, size_t size)
{
    e->p = p;
    e->size = size;
    e->sh = NULL;
    e->shnum = 0;
    if (size < sizeof(ElfW(Ehdr)))
        return 0;
    ElfW(Ehdr) eh;
    memcpy(&eh, p, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32))
        return 0;
    if (eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shoff % sizeof(uintptr_t))
        return 0;
    uint64_t n = eh.e_shnum;
    if (n == 0 && eh.e_shoff) { /* extended numbering: the count is in section 0 */
        if (!inside(size, eh.e_shoff, sizeof(ElfW(Shdr))))
            return 0;
        n = ((const ElfW(Shdr) *)(e->p + eh.e_shoff))->sh_size;
    }
    if (n == 0 || n > 1u << 20 || !inside(size, eh.e_shoff, n * sizeof(ElfW(Shdr))))
        return 0;
    e->sh = (const ElfW(Shdr) *)(e->p + eh.e_shoff);
    e->shnum = (uint32_t)n;
    return 1;
}

/* Section i's contents, or NULL when it has none in the file. */
static const unsigned char *sec_data(const struct elf *e, uint32_t i, size_t *len)
{
    if (i >= e->shnum)
        return NULL;
    const ElfW(Shdr) *s = &e->sh[i];
    if (s->sh_type == SHT_NOBITS || !inside(e->size, s->sh_offset, s->sh_size))
        return NULL;
    *len = s->sh_size;
    return e->p + s->sh_offset;
}

static const ElfW(Shdr) *find_type(const struct elf *e, uint32_t type, uint32_t *idx)
{
    for (uint32_t i = 1; i < e->shnum; i++)
        if (e->sh[i].sh_type == type) {
            *idx = i;
            return &e->sh[i];
        }
    return NULL;
}

/* Sorts by (lo, rank): heap sort, in place, O(n log n), no allocation. */
static int before(const struct fn *a, const struct fn *b)
{
    return a->lo < b->lo || (a->lo == b->lo && a->rank < b->rank);
}

static void sift(struct fn *v, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && before(&v[c], &v[c + 1]))
            c++;
        if (!before(&v[i], &v[c]))
            return;
        struct fn t = v[i];
        v[i] = v[c];
        v[c] = t;
        i = c;
    }
}

static void heap_sort_fns(struct fn *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(v, i, n);
    for (size_t k = n; k > 1; k--) {
        struct fn t = v[0];
        v[0] = v[k - 1];
        v[k - 1] = t;
        sift(v, 0, k - 1);
    }
}

/* The same order by a radix sort on (lo, rank), ten bits a pass, through a
 * scratch mapping of the table's size: a few passes over the symbols
 * instead of n log n steps of a heap (libc's 3 000 functions: about 2.5
 * million instructions of the heap sort, a short process's exit report
 * with call sites spent most of its time there). The heap sort when the
 * scratch cannot be mapped or an address does not leave room for the rank. */
#define RADIX_BITS 10
static inline uint32_t radix_digit(const struct fn *f, unsigned shift)
{
    return (uint32_t)(((f->lo << 2 | f->rank) >> shift) & ((1u << RADIX_BITS) - 1));
}

static void sort_fns(struct fn *v, size_t n)
{
    uintptr_t max = 0;
    for (size_t i = 0; i < n; i++)
        max |= v[i].lo;
    /* The scratch holds the counts too: names are looked up on the
     * program's stacks (the checking mode names a bad free's site on the
     * thread that made it), which may be small. */
    size_t bytes = n * sizeof(*v), whole = bytes + sizeof(uint32_t) * (1u << RADIX_BITS);
    struct fn *tmp = n > 64 && max >> 61 == 0 ? pf_os_map_meta(whole) : NULL;
    if (!tmp) {
        heap_sort_fns(v, n);
        return;
    }
    uint32_t *at = (uint32_t *)(void *)((char *)tmp + bytes);
    unsigned bits = 2; /* the rank's */
    while (bits < 64 && max >> (bits - 2))
        bits++;
    struct fn *from = v, *to = tmp;
    for (unsigned shift = 0; shift < bits; shift += RADIX_BITS) {
        memset(at, 0, sizeof(uint32_t) * (1u << RADIX_BITS));
        for (size_t i = 0; i < n; i++)
            at[radix_digit(&from[i], shift)]++;
        uint32_t sum = 0;
        for (uint32_t d = 0; d < 1u << RADIX_BITS; d++) {
            uint32_t c = at[d];
            at[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            to[at[radix_digit(&from[i], shift)]++] = from[i];
        struct fn *t = from;
        from = to;
        to = t;
    }
    if (from != v)
        memcpy(v, from, bytes);
    pf_os_unmap_meta(tmp, whole);
}

/* Builds t from the section of type `type` (SHT_SYMTAB or SHT_DYNSYM). */
static int load_table(const struct elf *e, uint32_t type, struct table *t)
{
    uint32_t si;
    const ElfW(Shdr) *ss = find_type(e, type, &si);
    size_t symlen, strsize;
    if (!ss || ss->sh_entsize != sizeof(ElfW(Sym)))
        return 0;
    const unsigned char *syms = sec_data(e, si, &symlen);
    if (!syms || ss->sh_link >= e->shnum || e->sh[ss->sh_link].sh_type != SHT_STRTAB)
        return 0;
    const char *str = (const char *)sec_data(e, ss->sh_link, &strsize);
    /* Every name must end inside the table: cut it after its last NUL. */
    while (str && strsize && str[strsize - 1])
        strsize--;
    if (!str || !strsize)
        return 0;
    size_t nsym = symlen / sizeof(ElfW(Sym)), count = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nsym; i++) {
            ElfW(Sym) s;
            memcpy(&s, syms + i * sizeof s, sizeof s);
            int typ = ELF64_ST_TYPE(s.st_info), bind = ELF64_ST_BIND(s.st_info);
            if ((typ != STT_FUNC && typ != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF || !s.st_value ||
                !s.st_name || s.st_name >= strsize || s.st_name >= 1u << 30)
                continue;
            if (pass == 1) {
                struct fn *f = &t->fns[count];
                f->lo = s.st_value;
                f->size = s.st_size > UINT32_MAX ? UINT32_MAX : (uint32_t)s.st_size;
                f->name = (uint32_t)s.st_name;
                /* Prefer a symbol with a size, then a global one. */
                f->rank = (uint32_t)((s.st_size == 0) * 2 + (bind != STB_GLOBAL));
            }
            count++;
        }
        if (pass == 0) {
            if (!count)
                return 0;
            size_t ps = pf_os_page_size();
            t->mapped = (count * sizeof(struct fn) + ps - 1) & ~(ps - 1);
            t->fns = pf_os_map_meta(t->mapped);
            if (!t->fns)
                return 0;
            count = 0;
        }
    }
    sort_fns(t->fns, count);
    uint32_t m = 0;
    for (size_t i = 0; i < count; i++)
        if (m == 0 || t->fns[m - 1].lo != t->fns[i].lo)
            t->fns[m++] = t->fns[i];
    t->n = m;
    t->str = str;
    t->strsize = strsize;
    return 1;
}

static const char *table_find(const struct table *t, uintptr_t a, uintptr_t *off)
{
    if (!t->n || a < t->fns[0].lo)
        return NULL;
    uint32_t lo = 0, hi = t->n; /* the last entry with fns[i].lo <= a is in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->fns[mid].lo <= a)
            lo = mid;
        else
            hi = mid;
    }
    const struct fn *f = &t->fns[lo];
    if (a - f->lo >= (f->size ? f->size : UNSIZED_REACH))
        return NULL; /* between functions */
    *off = a - f->lo;
    return t->str + f->name;
}

/* The build-id note's bytes, or NULL. */
/* The GNU build-id among the notes in [d, d + n), or NULL. */
static const unsigned char *note_build_id(const unsigned char *d, size_t n, size_t *len)
{
    size_t at = 0;
    while (n - at >= 12) {
        uint32_t nh[3];
        memcpy(nh, d + at, sizeof nh);
        uint64_t name = (nh[0] + 3ull) & ~3ull, desc = (nh[1] + 3ull) & ~3ull;
        if (name + desc > n - at - 12)
            break;
        if (nh[2] == NT_GNU_BUILD_ID && nh[0] == 4 && memcmp(d + at + 12, "GNU", 4) == 0 && nh[1] && nh[1] <= 64) {
            *len = nh[1];
            return d + at + 12 + name;
        }
        at += 12 + name + desc;
    }
    return NULL;
}

static const unsigned char *build_id(const struct elf *e, size_t *len)
{
    for (uint32_t i = 1; i < e->shnum; i++) {
        size_t n;
        const unsigned char *d, *id;
        if (e->sh[i].sh_type == SHT_NOTE && (d = sec_data(e, i, &n)) && (id = note_build_id(d, n, len)))
            return id;
    }
    return NULL;
}

/* The file named by .gnu_debuglink, or NULL; *crc the CRC-32 of that
 * file's contents that the link records. */
static const char *debuglink(const struct elf *e, uint32_t *crc)
{
    ElfW(Ehdr) eh;
    memcpy(&eh, e->p, sizeof eh);
    size_t nlen, dlen;
    const char *names = (const char *)sec_data(e, eh.e_shstrndx, &nlen);
    if (!names || e->sh[eh.e_shstrndx].sh_type != SHT_STRTAB)
        return NULL;
    for (uint32_t i = 1; i < e->shnum; i++) {
        uint32_t at = e->sh[i].sh_name;
        if (at >= nlen || nlen - at < sizeof ".gnu_debuglink" ||
            memcmp(names + at, ".gnu_debuglink", sizeof ".gnu_debuglink") != 0)
            continue;
        const char *d = (const char *)sec_data(e, i, &dlen);
        const char *nul = d && dlen ? memchr(d, 0, dlen) : NULL;
        if (!nul || !*d || strchr(d, '/'))
            continue;
        /* The name, padded to 4 bytes, then the CRC. */
        size_t c = ((size_t)(nul - d) + 4) & ~(size_t)3;
        if (c > dlen || dlen - c < 4)
            continue;
        memcpy(crc, d + c, 4);
        return d;
    }
    return NULL;
}

/* CRC-32 (ISO-HDLC, zlib's), the one .gnu_debuglink records. */
static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    static uint32_t tab[256];
    if (!tab[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            tab[i] = c;
        }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = tab[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* What a debug file must match to be the module's: its build-id when the
 * module has one, else the CRC its debug link records. */
struct debug_want {
    const unsigned char *id; /* NULL: none */
    size_t idlen;
    uint32_t crc;
    int has_crc;
};

/* Tries the debug file at scratch: its .symtab into t, when it is the
 * module's. A debug file of another build of the module (an older package's
 * left installed, a rebuilt program's copied beside it) has other
 * addresses: its names would be wrong ones, so it is not used. */
static int try_debug_file(struct table *t, const struct debug_want *w)
{
    size_t size, idlen;
    const void *p = pf_os_map_file(scratch, &size);
    struct elf e;
    if (!p)
        return 0;
    const unsigned char *id;
    int ok = elf_open(&e, p, size);
    if (ok && w->id)
        ok = (id = build_id(&e, &idlen)) && idlen == w->idlen && memcmp(id, w->id, idlen) == 0;
    else if (ok)
        ok = w->has_crc && crc32_of(p, size) == w->crc;
    if (ok && load_table(&e, SHT_SYMTAB, t))
        return 1;
    pf_os_unmap_file(p, size);
    return 0;
}

/* The separate debug file's .symtab for module `path`, if one is installed. */
static int load_debug(const struct elf *e, const char *path, struct table *t)
{
    struct debug_want w = {0};
    struct pf_fmt f; /* a path into scratch; one that does not fit is not tried */
    w.id = build_id(e, &w.idlen);
    if (w.id && w.idlen >= 2) {
        pf_fmt_init(&f, scratch, sizeof scratch, -1);
        pf_fmt_str(&f, DEBUG_DIR "/.build-id/");
        for (size_t i = 0; i < w.idlen; i++) {
            pf_fmt_xdigits(&f, w.id[i], 2);
            if (i == 0)
                pf_fmt_char(&f, '/');
        }
        pf_fmt_str(&f, ".debug");
        pf_fmt_cstr(&f);
        if (!f.truncated && try_debug_file(t, &w))
            return 1;
    }
    const char *link = debuglink(e, &w.crc);
    const char *slash = strrchr(path, '/');
    if (!link || !slash)
        return 0;
    w.has_crc = 1;
    size_t dir = (size_t)(slash - path);
    static const char *const forms[] = {"/", "/.debug/", "/"};
    for (int k = 0; k < 3; k++) {
        pf_fmt_init(&f, scratch, sizeof scratch, -1);
        if (k == 2)
            pf_fmt_str(&f, DEBUG_DIR);
        pf_fmt_mem(&f, path, dir);
        pf_fmt_str(&f, forms[k]);
        pf_fmt_str(&f, link);
        pf_fmt_cstr(&f);
        if (!f.truncated && strcmp(scratch, path) != 0 && try_debug_file(t, &w))
            return 1;
    }
    return 0;
}

/* Builds a table for the ELF image at p: .symtab, else the debug file's,
 * else .dynsym (path: the module's file, for finding its debug file; NULL
 * to skip that step). */
static int build(const void *p, size_t size, const char *path, struct table *t)
{
    struct elf e;
    if (!elf_open(&e, p, size))
        return 0;
    if (load_table(&e, SHT_SYMTAB, t))
        return 1;
    if (path && load_debug(&e, path, t))
        return 1;
    return load_table(&e, SHT_DYNSYM, t);
}

const char *pf_sym_in_file(const void *file, size_t size, uintptr_t fileaddr, uintptr_t *symoff)
{
    struct table t = {0};
    if (!build(file, size, NULL, &t))
        return NULL;
    const char *name = table_find(&t, fileaddr, symoff);
    /* Tests call this in a loop: give the table back. */
    pf_os_unmap_meta(t.fns, t.mapped);
    return name;
}

/* ---- modules -------------------------------------------------------------------- */

/* The loader's view of addr: its handle, load bias and file name. */
struct found {
    const void *key;
    uintptr_t bias;
    uintptr_t start;  /* its lowest mapped address: its ELF header */
    const char *name; /* "" for the executable */
};

#ifdef DLFO_STRUCT_HAS_EH_DBASE
static int locate(uintptr_t addr, struct found *out)
{
    struct dl_find_object r;
    if (_dl_find_object((void *)addr, &r) != 0 || !r.dlfo_link_map)
        return 0;
    out->key = r.dlfo_link_map;
    out->bias = r.dlfo_link_map->l_addr;
    out->start = (uintptr_t)r.dlfo_map_start;
    out->name = r.dlfo_link_map->l_name ? r.dlfo_link_map->l_name : "";
    return 1;
}
#else
struct search {
    uintptr_t addr;
    struct found *out;
    int hit;
};

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct search *s = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->addr >= lo && s->addr - lo < ph->p_memsz) {
            s->out->key = info->dlpi_phdr;
            s->out->bias = info->dlpi_addr;
            s->out->start = UINTPTR_MAX;
            for (int j = 0; j < info->dlpi_phnum; j++)
                if (info->dlpi_phdr[j].p_type == PT_LOAD && info->dlpi_addr + info->dlpi_phdr[j].p_vaddr < s->out->start)
                    s->out->start = info->dlpi_addr + info->dlpi_phdr[j].p_vaddr;
            s->out->start &= ~(uintptr_t)(pf_os_page_size() - 1);
            s->out->name = info->dlpi_name ? info->dlpi_name : "";
            s->hit = 1;
            return 1;
        }
    }
    return 0;
}

/* Without _dl_find_object the module list is walked: not signal-safe. */
static int locate(uintptr_t addr, struct found *out)
{
    struct search s = {addr, out, 0};
    dl_iterate_phdr(visit, &s);
    return s.hit;
}
#endif

/* ---- whether a file holds the code that runs -------------------------------- */

PF_BULK static unsigned char mem_buf[8192]; /* a module's memory being compared; used under busy */

/* Copies len bytes of this process's memory at src into dst; 1 when all
 * were copied. Through the kernel, which fails where a plain read would
 * fault: a module's file truncated under its mapping raises SIGBUS on the
 * pages past its new end, and a file's headers may place a range in a
 * hole between the module's segments. Where the kernel refuses every way
 * of reading (a seccomp filter and no /proc), nothing is copied: no names
 * rather than a fault. */
static int mem_copy(void *dst, uintptr_t src, size_t len)
{
    for (size_t done = 0; done < len;) {
        long got = pf_os_read_mem(pf_os_tid(), (char *)dst + done, src + done, len - done);
        if (got <= 0)
            return 0;
        done += (size_t)got;
    }
    return 1;
}

/* Whether memory at addr holds the file's bytes [off, off + len). */
static int mem_same(const struct elf *e, uint64_t off, uintptr_t addr, uint64_t len)
{
    if (!inside(e->size, off, len))
        return 0;
    for (uint64_t at = 0; at < len;) {
        size_t n = len - at < sizeof mem_buf ? (size_t)(len - at) : sizeof mem_buf;
        if (!mem_copy(mem_buf, addr + at, n) || memcmp(mem_buf, e->p + off + at, n) != 0)
            return 0;
        at += n;
    }
    return 1;
}

/* The file offset of the module's address vaddr (unrelocated) by e's
 * PT_LOAD headers, or UINT64_MAX. */
static uint64_t vaddr_off(const struct elf *e, const ElfW(Phdr) *ph, uint32_t phnum, uint64_t vaddr)
{
    for (uint32_t i = 0; i < phnum; i++) {
        ElfW(Phdr) h;
        memcpy(&h, ph + i, sizeof h);
        if (h.p_type == PT_LOAD && vaddr >= h.p_vaddr && vaddr - h.p_vaddr < h.p_filesz &&
            inside(e->size, h.p_offset + (vaddr - h.p_vaddr), 1))
            return h.p_offset + (vaddr - h.p_vaddr);
    }
    return UINT64_MAX;
}

/* Whether a word at the module's address vaddr is one its dynamic
 * relocations write (DT_RELA or DT_REL): the loader writes into a
 * read-only segment of a module with text relocations. */
static int relocated(const struct elf *e, const ElfW(Phdr) *ph, uint32_t phnum, uint64_t vaddr)
{
    for (uint32_t i = 0; i < phnum; i++) {
        ElfW(Phdr) h;
        memcpy(&h, ph + i, sizeof h);
        if (h.p_type != PT_DYNAMIC || !inside(e->size, h.p_offset, h.p_filesz))
            continue;
        uint64_t tab[2] = {0, 0}, sz[2] = {0, 0}, ent[2] = {sizeof(ElfW(Rela)), sizeof(ElfW(Rel))};
        for (uint64_t at = 0; at + sizeof(ElfW(Dyn)) <= h.p_filesz; at += sizeof(ElfW(Dyn))) {
            ElfW(Dyn) d;
            memcpy(&d, e->p + h.p_offset + at, sizeof d);
            if (d.d_tag == DT_NULL)
                break;
            if (d.d_tag == DT_RELA) tab[0] = d.d_un.d_ptr;
            if (d.d_tag == DT_RELASZ) sz[0] = d.d_un.d_val;
            if (d.d_tag == DT_RELAENT && d.d_un.d_val) ent[0] = d.d_un.d_val;
            if (d.d_tag == DT_REL) tab[1] = d.d_un.d_ptr;
            if (d.d_tag == DT_RELSZ) sz[1] = d.d_un.d_val;
            if (d.d_tag == DT_RELENT && d.d_un.d_val) ent[1] = d.d_un.d_val;
        }
        for (int k = 0; k < 2; k++) {
            uint64_t off = tab[k] && sz[k] ? vaddr_off(e, ph, phnum, tab[k]) : UINT64_MAX;
            if (off == UINT64_MAX || ent[k] < sizeof(ElfW(Addr)) || !inside(e->size, off, sz[k]))
                continue;
            for (uint64_t r = 0; r + ent[k] <= sz[k]; r += ent[k]) {
                ElfW(Addr) where; /* r_offset leads both forms */
                memcpy(&where, e->p + off + r, sizeof where);
                if (vaddr >= where && vaddr - where < sizeof(ElfW(Addr)))
                    return 1;
            }
        }
        return 0;
    }
    return 0;
}

/* Whether memory holds the bytes of read-only segment h but the words
 * the module's text relocations write. */
static int mem_same_textrel(const struct elf *e, const ElfW(Phdr) *ph, uint32_t phnum, const ElfW(Phdr) *h,
                            uintptr_t bias)
{
    if (!inside(e->size, h->p_offset, h->p_filesz))
        return 0;
    for (uint64_t at = 0; at < h->p_filesz;) {
        size_t n = h->p_filesz - at < sizeof mem_buf ? (size_t)(h->p_filesz - at) : sizeof mem_buf;
        if (!mem_copy(mem_buf, bias + h->p_vaddr + at, n))
            return 0;
        const unsigned char *f = e->p + h->p_offset + at;
        for (size_t i = 0; i < n; i++)
            if (mem_buf[i] != f[i] && !relocated(e, ph, phnum, h->p_vaddr + at + i))
                return 0;
        at += n;
    }
    return 1;
}

/* Whether the file's dynamic section asks for text relocations. */
static int has_textrel(const struct elf *e, const ElfW(Phdr) *ph, uint32_t phnum)
{
    for (uint32_t i = 0; i < phnum; i++) {
        ElfW(Phdr) h;
        memcpy(&h, ph + i, sizeof h);
        if (h.p_type != PT_DYNAMIC || !inside(e->size, h.p_offset, h.p_filesz))
            continue;
        for (uint64_t at = 0; at + sizeof(ElfW(Dyn)) <= h.p_filesz; at += sizeof(ElfW(Dyn))) {
            ElfW(Dyn) d;
            memcpy(&d, e->p + h.p_offset + at, sizeof d);
            if (d.d_tag == DT_NULL)
                break;
            if (d.d_tag == DT_TEXTREL || (d.d_tag == DT_FLAGS && (d.d_un.d_val & DF_TEXTREL)))
                return 1;
        }
    }
    return 0;
}

/* Whether the ELF file e is the one the module fo was loaded from, so
 * that its symbols name the code in memory. The path the loader keeps may
 * name another file by now: a package upgrade renames a new build over a
 * library or program in use, a plugin rebuilt and copied over, a library
 * loaded from /proc/self/fd/N whose descriptor now holds another file.
 * The same ELF and program headers, and the same notes: with a build-id
 * among them, the same build; without one, the same bytes in each
 * read-only segment (code and constants, which the loader never writes). */
static int same_code(const struct elf *e, const struct found *fo)
{
    ElfW(Ehdr) eh;
    memcpy(&eh, e->p, sizeof eh);
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) || !eh.e_phnum ||
        (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)) > sizeof mem_buf ||
        !inside(e->size, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr))) ||
        !mem_same(e, 0, fo->start, sizeof eh) ||
        !mem_same(e, eh.e_phoff, fo->start + eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr))))
        return 0;
    const unsigned char *ph = e->p + eh.e_phoff;
    int has_id = 0;
    for (int pass = 0; pass < 2 && !has_id; pass++)
        for (uint32_t i = 0; i < eh.e_phnum; i++) {
            ElfW(Phdr) h;
            memcpy(&h, ph + i * sizeof h, sizeof h);
            if (pass == 0 && h.p_type == PT_NOTE) {
                size_t idlen;
                if (!mem_same(e, h.p_offset, fo->bias + h.p_vaddr, h.p_filesz))
                    return 0;
                if (note_build_id(e->p + h.p_offset, h.p_filesz, &idlen))
                    has_id = 1;
            } else if (pass == 1 && h.p_type == PT_LOAD && !(h.p_flags & PF_W) &&
                       !mem_same(e, h.p_offset, fo->bias + h.p_vaddr, h.p_filesz) &&
                       !(has_textrel(e, (const ElfW(Phdr) *)ph, eh.e_phnum) &&
                         mem_same_textrel(e, (const ElfW(Phdr) *)ph, eh.e_phnum, &h, fo->bias))) {
                return 0;
            }
        }
    return 1;
}

/* The file at path mapped, when it holds the module fo's code; else NULL:
 * no names rather than wrong ones. */
static const void *map_same(const char *path, const struct found *fo, size_t *size)
{
    const void *p = pf_os_map_file(path, size);
    struct elf e;
    if (p && (!elf_open(&e, p, *size) || !same_code(&e, fo))) {
        pf_os_unmap_file(p, *size);
        p = NULL;
    }
    return p;
}

static struct module *cached(const struct found *fo)
{
    uint32_t n = atomic_load_explicit(&nmods, memory_order_acquire);
    uint64_t h = pf_module_name_hash(fo->name);
    for (uint32_t i = 0; i < n; i++)
        if (mods[i].key == fo->key && mods[i].bias == fo->bias && mods[i].name_hash == h)
            return &mods[i];
    return NULL;
}

/* Adds the module; called under busy. */
static struct module *add_module(const struct found *fo)
{
    if (!mods && !(mods = pf_os_map_meta(sizeof(struct module) * MAX_MODULES)))
        return NULL;
    uint32_t n = atomic_load_explicit(&nmods, memory_order_relaxed);
    if (n >= MAX_MODULES)
        return NULL;
    const char *name = fo->name;
    if (!*name) { /* the executable: the loader keeps no name for it */
        if (pf_os_readlink("/proc/thread-self/exe", scratch, sizeof scratch) <= 0)
            return NULL;
        name = scratch;
    } else if (name[0] != '/') {
        pf_module_abs_path(name, scratch, sizeof scratch);
        name = scratch;
    }
    char *path = arena_copy(name);
    if (!path)
        return NULL;
    struct module *m = &mods[n];
    m->key = fo->key;
    m->bias = fo->bias;
    m->name_hash = pf_module_name_hash(fo->name);
    m->path = path;
    m->base = base_name(path);
    atomic_store_explicit(&m->state, 0, memory_order_relaxed);
    atomic_store_explicit(&nmods, n + 1, memory_order_release);
    return m;
}

/* The module fo names, its table built: NULL when someone else is
 * building one, or there is no room for it. */
static struct module *module_built(const struct found *fo)
{
    struct module *m = mods ? cached(fo) : NULL;
    if (!m || !atomic_load_explicit(&m->state, memory_order_acquire)) {
        if (atomic_flag_test_and_set_explicit(&busy, memory_order_acquire))
            return NULL;
        if (!m && !(m = mods ? cached(fo) : NULL))
            m = add_module(fo);
        if (m && !atomic_load_explicit(&m->state, memory_order_relaxed)) {
            /* The executable's file by the kernel's link, which stays
             * the mapped file when its path is removed or renamed over. */
            size_t size;
            const void *p = map_same(*fo->name ? m->path : "/proc/thread-self/exe", fo, &size);
            const char *x;
            if (!p && !*fo->name && (x = (const char *)getauxval(AT_EXECFN)) && *x) {
                /* Run as `ld.so prog`: the kernel's link is the loader's
                 * file; the loader sets AT_EXECFN to the program's path. */
                pf_module_abs_path(x, scratch, sizeof scratch);
                char *path;
                if ((p = map_same(scratch, fo, &size)) && (path = arena_copy(scratch))) {
                    m->path = path;
                    m->base = base_name(path);
                }
            }
            if (!p || !build(p, size, m->path, &m->t))
                memset(&m->t, 0, sizeof m->t);
            atomic_store_explicit(&m->state, 1, memory_order_release);
        }
        atomic_flag_clear_explicit(&busy, memory_order_release);
    }
    return m;
}

int pf_sym_each(uintptr_t addr, int (*fn)(const char *name, uintptr_t lo, uintptr_t hi, void *ctx), void *ctx)
{
    struct found fo;
    struct module *m = addr && locate(addr, &fo) ? module_built(&fo) : NULL;
    if (!m)
        return 0;
    for (uint32_t i = 0; i < m->t.n; i++) {
        const struct fn *f = &m->t.fns[i];
        uintptr_t lo = f->lo + m->bias;
        if (f->size && fn(m->t.str + f->name, lo, lo + f->size, ctx))
            break;
    }
    return 1;
}

int pf_sym_name(uintptr_t addr, struct pf_sym *out)
{
    out->path = out->module = "?";
    out->modoff = 0;
    out->name = NULL;
    out->symoff = 0;
    struct found fo;
    if (!addr || !locate(addr, &fo))
        return 0;
    out->modoff = addr - fo.bias;
    if (*fo.name) {
        out->path = fo.name;
        out->module = base_name(fo.name);
    }
    struct module *m = module_built(&fo);
    if (!m)
        return 1; /* someone else is building: the module only */
    out->path = m->path;
    out->module = m->base;
    out->name = table_find(&m->t, out->modoff, &out->symoff);
    return 1;
}

int pf_sym_name_return(uintptr_t ret, struct pf_sym *out)
{
    if (!ret || !pf_sym_name(ret - 1, out))
        return 0;
    out->modoff++;
    if (out->name)
        out->symoff++;
    return 1;
}

/* ---- C++ names ------------------------------------------------------------------- */

typedef char *(*demangle_fn)(const char *mangled, char *buf, size_t *len, int *status);
static demangle_fn demangler;
static int demangle_looked;
/* Per thread: a signal report being written in one thread while the exit's
 * is in another never demangles (it would allocate in a handler). */
static __thread int demangle_on __attribute__((tls_model("initial-exec")));

/* Whether a module is a C++ runtime's (GNU's libstdc++, LLVM's libc++ and
 * libc++abi): the only ones that give __cxa_demangle. */
static int cxx_runtime(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    const char *base = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
    base = base ? base + 1 : info->dlpi_name;
    return base && (strncmp(base, "libstdc++", 9) == 0 || strncmp(base, "libc++", 6) == 0);
}

int pf_sym_cxx_shared(void)
{
    return dl_iterate_phdr(cxx_runtime, NULL);
}

static int find_demangler(const char *name, uintptr_t lo, uintptr_t hi, void *ctx)
{
    (void)hi;
    (void)ctx;
    if (strcmp(name, "__cxa_demangle") != 0)
        return 0;
    demangler = (demangle_fn)lo;
    return 1;
}

/* The dynamic symbol `name` of the module loaded at `base` whose dynamic
 * section is `dyn`, through its GNU hash table, both in memory: what dlsym
 * does, without the loader's locks, its error state (made on a failure,
 * freed by the next call) or a file read. With `at` not 0, only the
 * version of `name` defined at that run-time address (a name can have
 * several, `realpath@GLIBC_2.2.5` and `realpath@@GLIBC_2.3`). NULL when
 * the module has no GNU hash table or defines no such symbol. */
static const ElfW(Sym) *dynamic_sym(uintptr_t base, const ElfW(Dyn) *dyn, const char *name, uintptr_t at)
{
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const uint32_t *ht = NULL;
    for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
        /* The loader makes these absolute in place on x86-64; an offset
         * from the module's start otherwise. */
        uintptr_t v = dyn->d_un.d_ptr < base ? base + dyn->d_un.d_ptr : dyn->d_un.d_ptr;
        if (dyn->d_tag == DT_SYMTAB)
            symtab = (const ElfW(Sym) *)v;
        else if (dyn->d_tag == DT_STRTAB)
            strtab = (const char *)v;
        else if (dyn->d_tag == DT_GNU_HASH)
            ht = (const uint32_t *)v;
    }
    if (!symtab || !strtab || !ht || ht[0] == 0)
        return NULL;
    uint32_t nbuckets = ht[0], first = ht[1], bloom_words = ht[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(ht + 4) + bloom_words);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t h = 5381;
    for (const char *c = name; *c; c++)
        h = h * 33 + (uint8_t)*c;
    for (uint32_t i = buckets[h % nbuckets]; i >= first; i++) {
        const ElfW(Sym) *sym = &symtab[i];
        uint32_t ch = chain[i - first];
        if ((ch | 1) == (h | 1) && sym->st_shndx != SHN_UNDEF && (!at || base + sym->st_value == at) &&
            strcmp(strtab + sym->st_name, name) == 0)
            return sym;
        if (ch & 1)
            break;
    }
    return NULL;
}

/* The address of the function `name` defined in a loaded module (see
 * dynamic_sym). */
static void *dynamic_lookup(const struct dl_phdr_info *info, const char *name)
{
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    const ElfW(Sym) *sym = dynamic_sym(info->dlpi_addr, dyn, name, 0);
    return sym ? (void *)(info->dlpi_addr + sym->st_value) : NULL;
}

/* The dynamic symbol `name` of the loaded module that holds `in` (see
 * dynamic_sym; `at`, when not 0, the address it must cover), and that
 * module's load address into *base; NULL when no module holds `in`. */
static const ElfW(Sym) *module_sym(const void *in, const char *name, uintptr_t at, uintptr_t *base)
{
#ifndef DLFO_STRUCT_HAS_EH_DBASE
    (void)in;
    (void)name;
    (void)at;
    (void)base;
    return NULL;
#else
    struct dl_find_object fo;
    if (_dl_find_object((void *)in, &fo) != 0 || !fo.dlfo_link_map)
        return NULL;
    const struct link_map *m = fo.dlfo_link_map;
    *base = (uintptr_t)m->l_addr;
    return dynamic_sym((uintptr_t)m->l_addr, m->l_ld, name, at);
#endif
}

size_t pf_sym_dynamic_size(const void *fn, const char *name)
{
    uintptr_t base = 0;
    const ElfW(Sym) *sym = module_sym(fn, name, (uintptr_t)fn, &base);
    return sym ? (size_t)sym->st_size : 0;
}

const void *pf_sym_dynamic_addr(const void *in, const char *name)
{
    uintptr_t base = 0;
    const ElfW(Sym) *sym = module_sym(in, name, 0, &base);
    return sym ? (const void *)(base + sym->st_value) : NULL;
}

/* __cxa_demangle from the first C++ runtime module that defines it
 * (libc++ keeps it in libc++abi, beside it); *(int *)seen set when any
 * C++ runtime module is loaded. */
static int cxx_demangler(struct dl_phdr_info *info, size_t size, void *seen)
{
    if (cxx_runtime(info, size, NULL)) {
        *(int *)seen = 1;
        demangler = (demangle_fn)(uintptr_t)dynamic_lookup(info, "__cxa_demangle");
    }
    return demangler != NULL;
}

void pf_sym_allow_demangle(int on)
{
    demangle_on = on;
}

/* __cxa_demangle, looked up when the first C++ name is to be demangled,
 * never at start-up or for a report that names none: in the C++ runtime's
 * modules (loaded: libstdc++, libc++ and libc++abi), or in the program's
 * symbol table for a runtime linked into it (g++ -static-libstdc++),
 * which a C program's exit would otherwise read from its file for
 * nothing. Never with dlsym: a runtime loaded by dlopen without
 * RTLD_GLOBAL is not in the global scope, and a dlsym that fails leaves
 * glibc's error state allocated (two objects, made after the leak walk,
 * which the exit report's totals counted live and its leak section did
 * not list). */
static void look_up_demangler(void)
{
    /* The program's table may be being built by another thread (no
     * answer then): looked up again at the next name. */
    int shared = 0;
    dl_iterate_phdr(cxx_demangler, &shared);
    demangle_looked = shared || pf_sym_each((uintptr_t)getauxval(AT_PHDR), find_demangler, NULL);
}

const char *pf_sym_demangle(const char *name, char *buf, size_t cap)
{
    if (!name || !demangle_on || name[0] != '_' || name[1] != 'Z' || cap < 2)
        return name;
    if (!demangle_looked)
        look_up_demangler();
    if (!demangler)
        return name;
    int status = -1;
    char *d = demangler(name, NULL, NULL, &status);
    if (!d)
        return name;
    const char *r = name;
    if (status == 0) {
        size_t n = strlen(d);
        if (n < cap) {
            memcpy(buf, d, n + 1);
            r = buf;
        } else if (cap > 4) { /* cut, and says so: a cut name must not pass for another */
            memcpy(buf, d, cap - 4);
            memcpy(buf + cap - 4, "...", 4);
            r = buf;
        }
    }
    /* The runtime allocated it with malloc: give it back the same way. */
    free(d);
    return r;
}
