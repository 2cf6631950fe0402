/*
 * callsite.c — finding the code that asked for memory. The return address
 * of the exported entry point is the site unless it lies in the C or C++
 * runtime (strdup, fopen, std::string), in which case the stack is unwound
 * to the first frame outside it. The runtime's address ranges are taken
 * from the preload's constructor, after the loader is done (before that
 * every allocation is the runtime's own), and those of runtime modules a
 * dlopen loads later as their code is first seen. The loader's allocations
 * (dlopen) are the runtime's and are not unwound.
 * Whose object is it? When libc called malloc, the program's only if the
 * program called a libc function that hands its result over (strdup, fopen,
 * getline, ...): that function is the last runtime frame before the
 * program's. Otherwise (stdio buffers, locale data, libc called from the C++
 * runtime) libc allocated for itself. When the C++ runtime called operator
 * new (std::string, containers) the object is the program's.
 */
#include "callsite.h"

#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "config.h"
#include "module.h"
#include "sites.h"
#include "symtab.h"
#include "tcache.h"
#include "unwind.h"

#define MAX_RANGES 64

struct range {
    uintptr_t lo, hi;
    int kind; /* 1 runtime, 2 the loader (never unwound from), 3 libc */
};

PF_BULK static struct range ranges[MAX_RANGES];
static int nranges;
static uintptr_t ranges_lo = UINTPTR_MAX, ranges_hi; /* the span of them all */
/* Those of the modules loaded before the program started, the rest added
 * as the runtime's modules that a dlopen loads later are first seen (and
 * forgotten at a dlclose, which may unmap them). */
static int nranges_start;
static uintptr_t start_lo, start_hi;
static atomic_flag adding = ATOMIC_FLAG_INIT;
/* The C library also loads and unloads objects itself, through no dlclose
 * of the program's (iconv's conversion modules, unloaded a few releases of
 * other modules after their own). Such an unload is looked for by the
 * first allocation outside the loader after one of the loader's own
 * (`ready` 2 or more): every load allocates the object's record before the
 * object is mapped, so no code is mapped where an unloaded object was
 * before that look. The look asks the loader's lock-free _dl_find_object
 * whether each object recorded (module.c: every one a rule was worked out
 * for or a frame was found in) is still there: not dl_iterate_phdr, which
 * takes the loader's lock of its list, which the allocating thread may
 * need a lock of the program's to get (a callback of another thread's
 * dl_iterate_phdr waiting for a lock the allocating thread holds), or
 * which no thread can give back (a fork child of a process whose other
 * thread held it). Looks under way: ready is set back to 1 only by the
 * last of them to end, after every forgetting. Their count is the low half
 * of `looking`, the number of forks this process came through the high
 * half: a fork child has none of the parent's looks under way but those of
 * its own thread that a handler's fork interrupted, which end in it, and
 * can tell them only by their half (a look whose start was counted before
 * the fork gives nothing back in the child). Zeroing the count instead
 * left such a look to take it below zero, and every later allocation of
 * the child looked (`progs/lookfork`). */
#define LOOKS_MASK 0xffffffffu
static _Atomic uint64_t looking;

/* libc functions whose allocations belong to their caller, in groups (see
 * for_its_caller): what is allocated under them, with the targets of their
 * jumps (up to KEPT_FROM) or not; what they allocate themselves (from
 * DIRECT_FROM); then those whose allocations are the C library's own even
 * under one of the others (from KEEPS_FROM). */
static const char *const for_caller[] = {
    "strdup", "strndup", "wcsdup", "asprintf", "vasprintf", "getline", "getdelim", "realpath",
    "canonicalize_file_name", "scandir", "scandir64", "open_memstream", "open_wmemstream",
    "fopen", "fopen64", "fdopen", "fmemopen", "popen", "opendir", "fdopendir", "getaddrinfo",
    "tempnam", "get_current_dir_name", "getcwd", "backtrace_symbols", "regcomp", "glob",
    "glob64",
    /* what a program built with _FORTIFY_SOURCE (as distributions build)
     * calls for some of those, and older headers' names for strdup */
    "__asprintf_chk", "__vasprintf_chk", "__realpath_chk", "__getcwd_chk", "__strdup", "__strndup",
    /* what they build into the caller's object: a compiled pattern (GNU's
     * interface too) and the automaton states and registers a match adds
     * to it */
    "re_compile_pattern", "regexec", "re_search", "re_search_2", "re_match", "re_match_2",
    /* more results handed over: word lists, descriptors, interface lists,
     * argz vectors, spawn actions, streams, directory walkers, CPU sets,
     * thread attributes, and the chunks of an obstack that calls malloc
     * itself */
    "wordexp", "iconv_open", "catopen", "getifaddrs", "if_nameindex", "argz_create", "argz_create_sep",
    "argz_add", "argz_add_sep", "argz_append", "argz_insert", "argz_replace", "envz_add", "envz_merge",
    "posix_spawn_file_actions_addopen", "posix_spawn_file_actions_addclose", "posix_spawn_file_actions_adddup2",
    "posix_spawn_file_actions_addchdir_np", "posix_spawn_file_actions_addfchdir_np",
    "posix_spawn_file_actions_addclosefrom_np", "tmpfile", "tmpfile64", "fopencookie", "setmntent", "scandirat",
    "scandirat64", "fts_open", "fts64_open", "__sched_cpualloc", "pthread_getattr_np", "pthread_attr_setaffinity_np",
    "_obstack_begin", "_obstack_begin_1", "_obstack_newchunk",
    /* kept: their own frames count, not where they jump */
    "setenv", "putenv", "strerror", "tsearch", "hcreate", "hcreate_r",
    /* a memory stream's buffer, which fclose reallocates to its
     * contents and fflush grows when it is full (fflush(NULL) jumps to
     * the function that flushes every stream, which is not followed) */
    "fclose", "fflush",
    /* direct: what they allocate themselves (the locale object), not what
     * the functions they call keep in the C library's tables (the locale
     * data loaded, cached for the process) */
    "newlocale", "duplocale",
    /* the C library's own, under any of those: the first conversion of
     * multibyte text in a locale loads its conversion functions, kept for
     * the process (regexec in a UTF-8 locale) */
    "mbrtowc", "mbrlen", "mbsrtowcs", "mbsnrtowcs", "mbstowcs", "mbtowc", "mblen", "wcrtomb",
    "wcsrtombs", "wcsnrtombs", "wcstombs", "wctomb", "btowc", "wctob",
};
#define KEPT_FROM 74   /* for_caller[KEPT_FROM] is "setenv" */
#define DIRECT_FROM 82 /* for_caller[DIRECT_FROM] is "newlocale" */
#define KEEPS_FROM 84  /* for_caller[KEEPS_FROM] is "mbrtowc" */
#define MAX_OWNED (sizeof(for_caller) / sizeof(for_caller[0]))
PF_BULK static struct range owned[MAX_OWNED];
static int nowned;
/* owned is sorted by start; for each range, its place in for_caller (the
 * first listed of those holding an address decides, as aliases of one
 * function are listed together) and the highest end of it and those
 * before it in the order, which tells how far back a lookup has to look. */
PF_BULK static uint8_t owned_at[MAX_OWNED];
PF_BULK static uintptr_t owned_reach[MAX_OWNED];
_Static_assert(MAX_OWNED <= 256, "callsite.c: owned_at holds a place in for_caller in a byte");
/* Where those functions jump to at their end (fopen to __fopen_internal,
 * opendir, scandir, vasprintf to theirs): an internal function without a
 * symbol, which then is the last libc frame before the caller's. Known by
 * its start, which its unwind information gives. Not for the functions
 * whose memory stays libc's to keep (setenv's tree of values, strerror's
 * buffer, hcreate's table): only those listed in front of `kept`. */
#define MAX_TAILS (2 * MAX_OWNED)
PF_BULK static uintptr_t tails[MAX_TAILS];
static int ntails;
/* What for_its_caller answered, by address (see there): 1 << CALLER_MEMO_BITS
 * words, mapped when sites are recorded; NULL: nothing is remembered. */
#define CALLER_MEMO_BITS 12
static _Atomic uint64_t *caller_memo;
/* 0 until the ranges are known, then 1; 2 or more after an allocation of
 * the loader's (moved by each), until an allocation outside it has looked
 * for an unload (notice_unloads): the test of `ready` that every record
 * makes tells. */
static unsigned ready;

/* A C++ runtime linked into the executable itself (g++ -static-libstdc++:
 * gcc's own compilers, many shipped programs), known by its functions'
 * names: operator new and new[] (every variant, and their cold parts),
 * the exception allocator and its pool, the locale and stream set-up,
 * and the start-up code that runs the executable's constructors.
 * Their allocations are the runtime's like those of the shared library:
 * every `new` had operator new itself for its site, and the emergency
 * exception pool counted as the program's own. Kept apart from `ranges`,
 * whose span would otherwise cover the program's code. */
#define MAX_LINKED 32
PF_BULK static struct range linked[MAX_LINKED]; /* touched only when sites are recorded */
static int nlinked;
static uintptr_t linked_lo = UINTPTR_MAX, linked_hi;

static int linked_runtime(const char *name, uintptr_t lo, uintptr_t hi, void *ctx)
{
    (void)ctx;
    static const char *const prefixes[] = {"_Znwm", "_Znam", "__cxa_allocate_", "_GLOBAL__sub_I_eh_alloc",
                                           "_ZN12_GLOBAL__N_14pool", "_ZNSt6locale", "_ZNSt8ios_base",
                                           /* the C library's start-up code in the executable, which runs
                                            * the executable's constructors: names in full */
                                           "_start", "__libc_csu_init"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (i >= 7 ? strcmp(name, prefixes[i]) == 0 : strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) {
            if (nlinked == MAX_LINKED)
                return 1;
            linked[nlinked].lo = lo;
            linked[nlinked].hi = hi;
            linked[nlinked].kind = 1;
            nlinked++;
            if (lo < linked_lo)
                linked_lo = lo;
            if (hi > linked_hi)
                linked_hi = hi;
            break;
        }
    return 0;
}

static __thread int busy __attribute__((tls_model("initial-exec")));
/* The last site this thread saw outside the runtime, its id and the module
 * generation then: a loop that allocates from one place skips the range
 * search and the table. */
static __thread uintptr_t memo_addr __attribute__((tls_model("initial-exec")));
static __thread uint32_t memo_id __attribute__((tls_model("initial-exec")));
static __thread unsigned memo_gen __attribute__((tls_model("initial-exec")));

static int where(uintptr_t a);

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int runtime_kind(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (starts(b, "ld-linux") || starts(b, "ld64.so") || starts(b, "ld-2."))
        return 2;
    if (starts(b, "libc.so") || starts(b, "libc-2."))
        return 3;
    static const char *const names[] = {"libstdc++.so", "libgcc_s.so", "libm.so",  "libpthread.so",
                                        "libdl.so",     "librt.so",    "libc++.so", "libc++abi.so",
                                        "libpfalloc.so"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (starts(b, names[i]))
            return 1;
    return 0;
}

static int add_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    int kind = info->dlpi_name ? runtime_kind(info->dlpi_name) : 0;
    if (!kind)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        ranges[nranges].lo = info->dlpi_addr + ph->p_vaddr;
        ranges[nranges].hi = ranges[nranges].lo + ph->p_memsz;
        ranges[nranges].kind = kind;
        if (ranges[nranges].lo < ranges_lo)
            ranges_lo = ranges[nranges].lo;
        if (ranges[nranges].hi > ranges_hi)
            ranges_hi = ranges[nranges].hi;
        nranges++;
    }
    return 0;
}

/* The targets of the jumps (jmp rel32) in a function's code that land in
 * libc outside it. The bytes are scanned at every offset: a 0xe9 inside
 * another instruction gives a target that no frame's function starts at. */
static void add_tails(const struct range *f)
{
    const uint8_t *q = (const uint8_t *)f->lo, *end = (const uint8_t *)f->hi;
    for (; end - q >= 5 && ntails < (int)MAX_TAILS; q++) {
        /* the next 0xe9 with four bytes after it */
        q = memchr(q, 0xe9, (size_t)(end - q) - 4);
        if (!q)
            break;
        int32_t rel;
        memcpy(&rel, q + 1, sizeof(rel));
        uintptr_t to = (uintptr_t)q + 5 + (uintptr_t)(intptr_t)rel;
        if ((to < f->lo || to >= f->hi) && where(to) == 3)
            tails[ntails++] = to;
    }
}

/* owned[0, nowned) in order of start (stable: of two ranges with one
 * start, the first listed stays first), with owned_reach. */
static void sort_owned(void)
{
    for (int i = 1; i < nowned; i++) {
        struct range r = owned[i];
        uint8_t at = owned_at[i];
        int j = i;
        for (; j > 0 && owned[j - 1].lo > r.lo; j--) {
            owned[j] = owned[j - 1];
            owned_at[j] = owned_at[j - 1];
        }
        owned[j] = r;
        owned_at[j] = at;
    }
    for (int i = 0; i < nowned; i++)
        owned_reach[i] = i && owned_reach[i - 1] > owned[i].hi ? owned_reach[i - 1] : owned[i].hi;
}

_Static_assert(sizeof(for_caller) / sizeof(for_caller[0]) == KEEPS_FROM + 14 && DIRECT_FROM == KEPT_FROM + 8 &&
                   KEEPS_FROM == DIRECT_FROM + 2,
               "callsite.c: KEPT_FROM, DIRECT_FROM, KEEPS_FROM");

void pf_callsite_init(void)
{
    dl_iterate_phdr(add_object, NULL);
    nranges_start = nranges;
    start_lo = ranges_lo;
    start_hi = ranges_hi;
    for (size_t i = 0; i < MAX_OWNED; i++) {
        void *fn = dlsym(RTLD_DEFAULT, for_caller[i]);
        if (!fn)
            continue;
        /* Its size from the hash table of its module's dynamic symbols;
         * dladdr reads every symbol of the module (about 90 000
         * instructions a call in libc's, most of a short process's
         * start-up with call sites on), so it is asked only when that
         * fails. */
        uintptr_t lo = (uintptr_t)fn;
        size_t size = pf_sym_dynamic_size(fn, for_caller[i]);
        if (!size) {
            Dl_info info;
            const ElfW(Sym) *sym = NULL;
            if (!dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || !sym->st_size)
                continue;
            lo = (uintptr_t)info.dli_saddr;
            size = sym->st_size;
        }
        owned[nowned].lo = lo;
        owned[nowned].hi = lo + size;
        owned[nowned].kind = i < DIRECT_FROM ? 1 : i < KEEPS_FROM ? 2 : 3;
        owned_at[nowned] = (uint8_t)i;
        if (i < KEPT_FROM)
            add_tails(&owned[nowned]);
        nowned++;
    }
    sort_owned();
    caller_memo = pf_os_map_meta(sizeof(*caller_memo) << CALLER_MEMO_BITS);
    pf_unwind_init((const void *)pf_callsite_init);
    /* Without a C++ runtime's library, one may be linked into the program:
     * its symbol table (which the report reads anyway) tells. */
    if (!pf_sym_cxx_shared())
        pf_sym_each((uintptr_t)getauxval(AT_PHDR), linked_runtime, NULL);
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
}

/* Whether code address `code` is in exit() itself (the function its
 * unwind information says holds it starts where exit does). */
static int in_exit(uintptr_t code)
{
    return pf_unwind_func_start(code) == (uintptr_t)&exit;
}

int pf_callsite_program_frame(uintptr_t *sp, uintptr_t regs[PF_UNWIND_KEPT])
{
    pf_unwind_self((const void *)pf_callsite_program_frame);
    return pf_unwind_program_frame(in_exit, sp, regs);
}

/* The modules outside the runtime this thread last found code in (a few:
 * a program that allocates from its own code and a library's in turn),
 * each with the module generation (pf_module_gen) it was found under. */
#define OTHERS 4
struct others {
    struct {
        uintptr_t lo, len;
        unsigned gen;
    } m[OTHERS];
    unsigned next; /* the entry the next one found replaces */
    /* Set by late_module when it adds a runtime module: the stack being
     * walked is the first to show its code. */
    int fresh;
};
static __thread struct others others __attribute__((tls_model("initial-exec")));

/* The module holding code address a, found with the loader's lock-free
 * _dl_find_object, its mapping in [*lo, *hi): 0 when none holds it (code
 * made at run time), 1 when it is one of the runtime's that a dlopen may
 * bring in (runtime_kind 1), 2 for any other. */
static int module_at(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
    struct dl_find_object fo;
    if (_dl_find_object((void *)a, &fo) != 0)
        return 0;
    *lo = (uintptr_t)fo.dlfo_map_start;
    *hi = (uintptr_t)fo.dlfo_map_end;
    const char *name = fo.dlfo_link_map ? fo.dlfo_link_map->l_name : NULL;
    return name && *name && runtime_kind(name) == 1 ? 1 : 2;
}

/* Code outside every range known, and outside the modules this thread last
 * found code in: the program's, a library's, or that of a runtime module
 * loaded since the start (a C++ plugin's dlopen brings libstdc++ in),
 * found with the loader's lock-free _dl_find_object and added to the
 * ranges. The kind, as where(). */
static PF_NOINLINE int late_module(uintptr_t a, unsigned gen)
{
    uintptr_t lo, hi;
    int m = module_at(a, &lo, &hi);
    if (m == 0)
        return 0;
    if (m == 2) {
        unsigned i = others.next++ % OTHERS;
        others.m[i].lo = lo;
        others.m[i].len = hi - lo;
        others.m[i].gen = gen;
        return 0;
    }
    /* Another thread adding one: this address is the runtime's all the
     * same (and new: a known one is in the ranges), and a later look
     * finds it added. */
    if (atomic_flag_test_and_set_explicit(&adding, memory_order_acquire)) {
        others.fresh = 1;
        return 1;
    }
    int n = nranges, known = 0;
    for (int i = 0; i < n; i++)
        known |= ranges[i].lo <= a && a < ranges[i].hi;
    if (!known && n < MAX_RANGES) {
        ranges[n] = (struct range){lo, hi, 1};
        if (lo < ranges_lo)
            __atomic_store_n(&ranges_lo, lo, __ATOMIC_RELAXED);
        if (hi > ranges_hi)
            __atomic_store_n(&ranges_hi, hi, __ATOMIC_RELAXED);
        __atomic_store_n(&nranges, n + 1, __ATOMIC_RELEASE);
        others.fresh = 1;
    }
    atomic_flag_clear_explicit(&adding, memory_order_release);
    return 1;
}

/* 0: outside the runtime; else the kind of the range holding a. */
static int where(uintptr_t a)
{
    /* Most frames are the program's, usually far from the runtime's objects. */
    if (PF_UNLIKELY(a >= linked_lo && a < linked_hi))
        for (int i = 0; i < nlinked; i++)
            if (a >= linked[i].lo && a < linked[i].hi)
                return 1;
    if (a >= __atomic_load_n(&ranges_lo, __ATOMIC_RELAXED) && a < __atomic_load_n(&ranges_hi, __ATOMIC_RELAXED)) {
        int n = __atomic_load_n(&nranges, __ATOMIC_ACQUIRE);
        for (int i = 0; i < n; i++)
            if (a >= ranges[i].lo && a < ranges[i].hi)
                return ranges[i].kind;
    }
    unsigned gen = pf_module_gen();
    for (int i = 0; i < OTHERS; i++)
        if (a - others.m[i].lo < others.m[i].len && others.m[i].gen == gen)
            return 0;
    return late_module(a, gen);
}

/* Whether code address a, the last C library frame before the program's,
 * hands what was allocated under it to its caller: 1, whatever was; 2,
 * only what it allocated itself (the frame that called malloc); 0, no; 3,
 * no, and nothing allocated under it is handed over by a frame further
 * out either (the C library's caches). */
static int for_its_caller_looked(uintptr_t a)
{
    /* Past the last range that starts at or below a, then back while a
     * range there may still reach a: the range itself and its aliases,
     * unless ranges overlap. */
    int lo = 0, hi = nowned;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (owned[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    int best = -1;
    for (int i = lo - 1; i >= 0 && owned_reach[i] > a; i--)
        if (a < owned[i].hi && (best < 0 || owned_at[i] < owned_at[best]))
            best = i;
    if (best >= 0)
        return owned[best].kind;
    uintptr_t start = ntails ? pf_unwind_func_start(a) : 0;
    for (int i = 0; start && i < ntails; i++)
        if (tails[i] == start)
            return 1;
    return 0;
}

/* for_its_caller_looked, remembered by address: a frame outside the
 * listed functions is looked for among the functions they jump to at their
 * end, whose start comes from the unwind tables (a binary search and a
 * CIE read), and a program whose allocations come from deep in the C
 * library asks for every C library frame of every walk (sed's regexec:
 * 60 % of its time). One word an entry, written whole: the address (47
 * bits), the answer (2) and the module generation's low 15 bits (an object
 * loaded where an unloaded one was may hold other functions at the same
 * addresses). */
static int for_its_caller(uintptr_t a)
{
    if (!caller_memo || a >= ((uintptr_t)1 << 47))
        return for_its_caller_looked(a);
    uint64_t key = (uint64_t)a | (uint64_t)(pf_module_gen() & 0x7fff) << 49;
    _Atomic uint64_t *e = &caller_memo[(uint32_t)((a * 0x9E3779B97F4A7C15ull) >> (64 - CALLER_MEMO_BITS))];
    uint64_t m = atomic_load_explicit(e, memory_order_relaxed);
    if ((m & ~((uint64_t)3 << 47)) == key)
        return (int)(m >> 47) & 3;
    int kind = for_its_caller_looked(a);
    atomic_store_explicit(e, key | (uint64_t)kind << 47, memory_order_relaxed);
    return kind;
}

/* A thread's memory of call sites, in its cache (pf_tcache.sites): the
 * unwinder's recent rules, and the last stack it interned with its id (a
 * loop that allocates from one place skips the hash and the table). A
 * thread without a cache (before its first, after its exit) walks without
 * them. A cache outlives its thread and passes to a later one: the rules
 * carry their epoch and the stack its id, both true for any thread. The
 * stack's id holds while the module generation is the one it was found
 * under (memo_gen): the same addresses in an object loaded where another
 * was unloaded are another stack. */
struct thread_sites {
    struct pf_unwind_near near;
    uintptr_t memo_pcs[PF_STACK_MAX + PF_SITES_RUNTIME_KEPT];
    int memo_n;
    uint32_t memo_stack;
    unsigned memo_gen;
    /* The last walk's start and what it read, with the id it found: an
     * allocation from the same place of the same stack finds its site by
     * reading those words again (see struct pf_unwind_reads), without a
     * walk, a look at the modules or the table. last_id 0: none. */
    uint32_t last_id;
    int last_w, last_depth;
    unsigned last_gen;
    /* Walks since the memo last served: past two, only one in 32 is kept
     * (its reads logged), so a thread whose stacks keep changing (an
     * interpreter's) pays for the log seldom. */
    unsigned last_misses;
    uintptr_t last_a, last_start;
    struct pf_unwind_reads last_reads;
};
_Static_assert(sizeof(struct thread_sites) <= PF_TC_SITES_BYTES, "tcache.h: PF_TC_SITES_BYTES");

static struct thread_sites *thread_sites(void)
{
    struct pf_tcache *tc = pf_tc;
    return tc ? (struct thread_sites *)(void *)tc->sites : NULL;
}

/* Frames unwound at most: runtime frames in front of the site, then the depth. */
#define MAX_WALK (PF_STACK_MAX + 16)

static uint32_t intern(struct thread_sites *ts, const uintptr_t *pcs, int n, int first, int runtime, unsigned gen)
{
    if (!runtime && ts && n == ts->memo_n && ts->memo_stack && ts->memo_gen == gen) {
        int k = 0;
        while (k < n && ts->memo_pcs[k] == pcs[k])
            k++;
        if (k == n)
            return ts->memo_stack;
    }
    uint32_t id = pf_sites_intern_stack(pcs, n, first, runtime);
    if (!runtime && ts) {
        /* No id while the stack is rewritten, the new id last: a memo
         * left half written (a fork from another thread meanwhile, whose
         * cache a thread of the child adopts) is not used. */
        ts->memo_stack = 0;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        for (int k = 0; k < n; k++) /* a few words: no call */
            ts->memo_pcs[k] = pcs[k];
        ts->memo_n = n;
        ts->memo_gen = gen;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        ts->memo_stack = id;
    }
    return id;
}

/* The site of p, allocated by a call returning to a (which where() put in
 * part w of the process), with busy set. */
/* Keeps the walk just made (its reads are in ts->last_reads) as the
 * thread's last, with the id it gave; not one that found a runtime module
 * loaded since the start (others.fresh: the same stack may be told apart
 * differently next time), nor one whose reads did not fit. */
static void remember(struct thread_sites *ts, uint32_t id, uintptr_t a, const void *cfa, int w, int depth,
                     unsigned gen)
{
    if (!ts || !id || others.fresh || ts->last_reads.n <= 0)
        return;
    ts->last_a = a;
    ts->last_start = (uintptr_t)cfa;
    ts->last_w = w;
    ts->last_depth = depth;
    ts->last_gen = gen;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    ts->last_id = id;
}

static void record_walk(const void *p, uintptr_t a, int w, const void *cfa, int depth, struct thread_sites *ts,
                        unsigned gen);

static void record(const void *p, uintptr_t a, int w, const void *cfa)
{
    int depth = (int)pf_sites_depth();
    if (depth == 1 && w == 0) { /* one frame: the return address is the site */
        unsigned gen = pf_module_gen();
        if (a != memo_addr || !memo_id || memo_gen != gen) {
            memo_id = pf_sites_intern(a, 0);
            memo_addr = a;
            memo_gen = gen;
        }
        pf_sites_store(p, memo_id);
        return;
    }
    struct thread_sites *ts = thread_sites();
    unsigned gen = pf_module_gen();
    if (ts && ts->last_id && ts->last_a == a && ts->last_start == (uintptr_t)cfa && ts->last_w == w &&
        ts->last_depth == depth && ts->last_gen == gen && pf_unwind_same(&ts->last_reads, (uintptr_t)cfa)) {
        ts->last_misses = 0;
        pf_sites_store(p, ts->last_id);
        return;
    }
    record_walk(p, a, w, cfa, depth, ts, gen);
}

/* record's walk, apart: its frame (the walk's frames, their kinds) is big,
 * and an allocation its thread's last walk serves needs none of it. */
__attribute__((noinline)) static void record_walk(const void *p, uintptr_t a, int w, const void *cfa, int depth,
                                                  struct thread_sites *ts, unsigned gen)
{
    /* No id while the memo is rewritten (a fork from another thread
     * meanwhile, whose cache a thread of the child adopts, finds none);
     * one not rewritten stays as true as it was. */
    int log = ts && (ts->last_misses < 2 || (ts->last_misses & 31) == 0);
    if (ts)
        ts->last_misses++;
    if (log) {
        ts->last_id = 0;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    uintptr_t pcs[MAX_WALK];
    int n = pf_unwind(pcs, depth + (w ? MAX_WALK - PF_STACK_MAX : 0), a, (uintptr_t)cfa, ts ? &ts->near : NULL,
                      log ? &ts->last_reads : NULL);
    if (n == 0 || pcs[0] != a) { /* no unwind information here: one frame */
        pf_sites_note(p, a, w != 0);
        return;
    }
    /* The return address is one past the call: ip - 1 is inside the caller. */
    int first = 0, loader = 0, kind[MAX_WALK];
    while (first < n && (kind[first] = where(pcs[first] - 1)) != 0) {
        loader |= kind[first] == 2;
        first++;
    }
    if (first == n) { /* the runtime's own all the way */
        uint32_t id = pf_sites_intern_stack(pcs, n < depth ? n : depth, 0, 1);
        if (log)
            remember(ts, id, a, cfa, w, depth, gen);
        pf_sites_store(p, id);
        return;
    }
    /* libc allocated (a is in libc) and the program did not call one of the
     * functions that hand their result over (the last runtime frame); or a
     * runtime module loaded since the start allocated in code the loader
     * ran, in the first stack that showed its code: its own constructor
     * (libstdc++'s emergency exception pool, made in the dlopen that loads
     * it). Not any allocation of the runtime under the loader: a plugin's
     * constructor that ends in a call to the runtime leaves no frame of its
     * own, and what it allocates is the program's. */
    int libc_own = loader && others.fresh;
    if (!libc_own && w == 3 && first > 0) {
        int hands = kind[first - 1] == 3 ? for_its_caller(pcs[first - 1] - 1) : 0;
        libc_own = !(hands == 1 || (hands == 2 && first == 1));
        for (int j = 0; !libc_own && j < first - 1; j++)
            libc_own = kind[j] == 3 && for_its_caller(pcs[j] - 1) == 3;
    }
    int keep = first < PF_SITES_RUNTIME_KEPT ? first : PF_SITES_RUNTIME_KEPT;
    int start = first - keep;
    int count = n - start < keep + depth ? n - start : keep + depth;
    uint32_t id = intern(ts, pcs + start, count, keep, libc_own, gen);
    if (log)
        remember(ts, id, a, cfa, w, depth, gen);
    pf_sites_store(p, id);
}

static void forget_late_modules(void);

/* After an allocation of the loader's (ready r, 2 or more): whether an
 * object was unloaded since the last look, in which case every cached rule
 * and every memory of a module is forgotten, as after a dlclose. Then, if
 * no other look is under way (one that found an unload may not have
 * forgotten yet) and the loader allocated nothing since r, the records
 * stop looking. */
static PF_NOINLINE void notice_unloads(unsigned r)
{
    uint64_t forks = atomic_fetch_add_explicit(&looking, 1, memory_order_seq_cst) >> 32;
    if (pf_module_any_gone()) {
        pf_unwind_forget();
        forget_late_modules();
    }
    uint64_t w = atomic_load_explicit(&looking, memory_order_seq_cst), nw;
    int last;
    do {
        if (w >> 32 != forks) { /* counted in the parent: the child's count never had it */
            last = (w & LOOKS_MASK) == 0;
            break;
        }
        nw = w - 1;
        last = (w & LOOKS_MASK) == 1;
    } while (!atomic_compare_exchange_weak_explicit(&looking, &w, nw, memory_order_seq_cst,
                                                    memory_order_seq_cst));
    if (last)
        __atomic_compare_exchange_n(&ready, &r, 1, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* An allocation of the loader's: ready moves on (2 or more). */
static void loader_allocated(void)
{
    unsigned r = __atomic_load_n(&ready, __ATOMIC_RELAXED), next;
    do
        next = r >= 2 && r + 1 >= 2 ? r + 1 : 2;
    while (!__atomic_compare_exchange_n(&ready, &r, next, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void pf_callsite_record(const void *p, const void *ret, const void *cfa)
{
    uintptr_t a = (uintptr_t)ret;
    unsigned r = __atomic_load_n(&ready, __ATOMIC_ACQUIRE);
    if (PF_UNLIKELY(!r)) {
        pf_sites_note(p, a, 1);
        return;
    }
    /* An allocation made while this thread records (a signal handler's):
     * one frame, and nothing of the walk's touched. busy covers the walk,
     * both memos, whose two writes a handler's record must not come
     * between, the look for unloads, and others: a handler that cleared
     * others.fresh (set when the walk found a runtime module loaded since
     * the start) made the walk it interrupted take the runtime's own
     * constructor's objects for the program's. */
    if (busy) {
        pf_sites_note(p, a, 1);
        return;
    }
    busy = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    others.fresh = 0;
    /* An unload is looked for outside the loader (which may hold its lock
     * around its list half updated). This look at a may add a runtime
     * module (others.fresh), which the next finds known. */
    if (PF_UNLIKELY(r != 1) && where(a) != 2)
        notice_unloads(r);
    int w = where(a);
    if (w == 2) /* the loader's own: one frame */
        loader_allocated();
    else
        record(p, a, w, cfa);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    busy = 0;
    if (w == 2)
        pf_sites_note(p, a, 1);
}

/* Whether the range of runtime module loaded since the start is still
 * that module's: the dlclose may have unmapped it. */
static int still_runtime(const struct range *r)
{
    uintptr_t lo, hi;
    return module_at(r->lo, &lo, &hi) == 1 && lo == r->lo;
}

/* After a dlclose: each thread's modules outside the runtime are looked up
 * again, and the runtime's modules loaded since the start that it unloaded
 * are forgotten (another module may be mapped at their addresses later).
 * Those still loaded stay known: seen again, one would look new, and a
 * plugin's constructor that ends in a jump to it would have its objects
 * taken for the runtime's own. */
static void forget_late_modules(void)
{
    pf_module_unloaded();
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
        return;
    /* Held briefly by a thread adding a module, or for good by code this
     * thread's handler interrupted (a dlclose in a handler): then the
     * ranges stay, and a module mapped later where one was is taken for
     * the runtime's. */
    for (int i = 0; atomic_flag_test_and_set_explicit(&adding, memory_order_acquire); i++)
        if (i == 1000)
            return;
        else
            sched_yield();
    int n = nranges, kept = nranges_start;
    uintptr_t lo = start_lo, hi = start_hi;
    for (int i = nranges_start; i < n; i++)
        if (still_runtime(&ranges[i])) {
            ranges[kept++] = ranges[i];
            lo = ranges[i].lo < lo ? ranges[i].lo : lo;
            hi = ranges[i].hi > hi ? ranges[i].hi : hi;
        }
    __atomic_store_n(&nranges, kept, __ATOMIC_RELEASE);
    __atomic_store_n(&ranges_lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&ranges_hi, hi, __ATOMIC_RELAXED);
    atomic_flag_clear_explicit(&adding, memory_order_release);
}

PF_FORK_CHILD void pf_callsite_fork_child(void)
{
    atomic_flag_clear_explicit(&adding, memory_order_relaxed);
    /* No look under way here is counted: the parent's other threads are
     * not in the child, and this thread's own (a handler's fork) counted
     * itself in the parent's half. */
    uint64_t w = atomic_load_explicit(&looking, memory_order_relaxed);
    atomic_store_explicit(&looking, ((w >> 32) + 1) << 32, memory_order_relaxed);
}

/* dlclose may unmap code whose unwind rules are cached, and another object
 * may later be mapped at its addresses: every cached rule is forgotten after
 * an unload. The real dlclose is looked up on first use, never at start-up. */
__attribute__((visibility("default"))) int dlclose(void *handle)
{
    static int (*real)(void *);
    int (*fn)(void *) = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
        if (!fn)
            return -1;
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    int rc = fn(handle);
    pf_unwind_forget();
    forget_late_modules();
    return rc;
}
