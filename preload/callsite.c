/*
 * callsite.c — finding the code that asked for memory. The return address
 * of the exported entry point is the site unless it lies in the C or C++
 * runtime (strdup, fopen, std::string), in which case the stack is unwound
 * to the first frame outside it. The runtime's address ranges are taken
 * once, from the preload's constructor, after the loader is done; before
 * that every allocation is the runtime's own. The loader's allocations
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
#include <string.h>
#include <unwind.h>

#include "sites.h"

#define MAX_RANGES 64

struct range {
    uintptr_t lo, hi;
    int kind; /* 1 runtime, 2 the loader (never unwound from), 3 libc */
};

static struct range ranges[MAX_RANGES];
static int nranges;

/* libc functions whose allocations belong to their caller. */
static const char *const for_caller[] = {
    "strdup", "strndup", "wcsdup", "asprintf", "vasprintf", "getline", "getdelim", "realpath",
    "canonicalize_file_name", "scandir", "scandir64", "open_memstream", "open_wmemstream",
    "fopen", "fopen64", "fdopen", "fmemopen", "popen", "opendir", "fdopendir", "getaddrinfo",
    "tempnam", "get_current_dir_name", "getcwd", "backtrace_symbols", "regcomp", "glob",
    "glob64", "setenv", "putenv", "strerror", "tsearch", "hcreate", "hcreate_r",
};
#define MAX_OWNED (sizeof(for_caller) / sizeof(for_caller[0]))
static struct range owned[MAX_OWNED];
static int nowned;
static int ready; /* ranges are known */
static __thread int busy __attribute__((tls_model("initial-exec")));
/* The last site this thread saw outside the runtime, and its id: a loop
 * that allocates from one place skips the range search and the table. */
static __thread uintptr_t memo_addr __attribute__((tls_model("initial-exec")));
static __thread uint32_t memo_id __attribute__((tls_model("initial-exec")));

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
    static const char *const names[] = {"libc.so", "libstdc++.so", "libgcc_s.so", "libm.so",
                                        "libpthread.so", "libdl.so", "librt.so", "libc++.so",
                                        "libc++abi.so", "libpfalloc.so", "libc-2."};
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
        nranges++;
    }
    return 0;
}

void pf_callsite_init(void)
{
    dl_iterate_phdr(add_object, NULL);
    for (size_t i = 0; i < MAX_OWNED; i++) {
        void *fn = dlsym(RTLD_DEFAULT, for_caller[i]);
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        if (!fn || !dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || !sym->st_size)
            continue;
        owned[nowned].lo = (uintptr_t)info.dli_saddr;
        owned[nowned].hi = owned[nowned].lo + sym->st_size;
        nowned++;
    }
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
}

/* 0: outside the runtime; else the kind of the range holding a. */
static int where(uintptr_t a)
{
    for (int i = 0; i < nranges; i++)
        if (a >= ranges[i].lo && a < ranges[i].hi)
            return ranges[i].kind;
    return 0;
}

static int for_its_caller(uintptr_t a)
{
    for (int i = 0; i < nowned; i++)
        if (a >= owned[i].lo && a < owned[i].hi)
            return 1;
    return 0;
}

struct walk {
    uintptr_t found; /* first frame outside the runtime */
    uintptr_t last;  /* the runtime frame just before it */
    int depth;
};

static _Unwind_Reason_Code step(struct _Unwind_Context *ctx, void *arg)
{
    struct walk *w = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    if (!ip || ++w->depth > 64)
        return _URC_END_OF_STACK;
    if (where(ip) == 0) {
        w->found = ip;
        return _URC_END_OF_STACK;
    }
    w->last = ip;
    return _URC_NO_REASON;
}

void pf_callsite_record(const void *p, const void *ret)
{
    uintptr_t a = (uintptr_t)ret;
    if (a == memo_addr && memo_id) {
        pf_sites_store(p, memo_id);
        return;
    }
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        pf_sites_note(p, a, 1);
        return;
    }
    int w = where(a);
    if (w == 0) {
        memo_id = pf_sites_intern(a, 0);
        memo_addr = a;
        pf_sites_store(p, memo_id);
        return;
    }
    if (w == 2 || busy) { /* the loader's own, or an allocation made while unwinding */
        pf_sites_note(p, a, 1);
        return;
    }
    busy = 1;
    struct walk wk = {0, 0, 0};
    _Unwind_Backtrace(step, &wk);
    busy = 0;
    if (!wk.found) {
        pf_sites_note(p, a, 1);
        return;
    }
    /* The return address is one past the call: ip - 1 is inside the caller. */
    /* libc allocated (a is in libc) and the program did not call one of the
     * functions that hand their result over (the last runtime frame). */
    int libc_own = w == 3 && !(where(wk.last - 1) == 3 && for_its_caller(wk.last - 1));
    pf_sites_note(p, wk.found, libc_own);
}
