/*
 * interpose.c — the symbols that replace glibc's allocator in a whole
 * process: the malloc family and glibc's aliases, the C++ operators, and
 * glibc's introspection calls answered from pfalloc's own figures.
 * Each is a thin call into the core; the core needs no set-up, so the
 * loader's first malloc (before any constructor) is served like any other.
 * Nothing here resolves symbols at start-up; operator new looks up the C++
 * runtime's new-handler only when memory has run out.
 */
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/pfalloc.h"
#include "alloc.h"
#include "callsite.h"
#include "check.h"
#include "fastpath.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- the malloc family --------------------------------------------------- */
/* Everything but the direct case, tail-called with malloc's return address
 * so malloc itself needs no stack frame. */
__attribute__((noinline)) static void *malloc_slow(size_t n, const void *ret)
{
    /* Recording call sites sends every malloc here (pf_malloc_direct). */
    void *p = pf_malloc_slow(n);
    PF_SITE_AT(p, ret);
    return p;
}

EXPORT void *malloc(size_t n)
{
    void *p;
    if (PF_LIKELY(pf_malloc_direct(n, &p)))
        return p;
    return malloc_slow(n, __builtin_return_address(0));
}
EXPORT void free(void *p) { pf_fast_free(p); }
EXPORT void *calloc(size_t n, size_t s)
{
    void *p = pf_calloc_in(n, s);
    PF_SITE(p);
    return p;
}
EXPORT void *realloc(void *old, size_t n)
{
    void *p = pf_realloc_in(old, n);
    PF_SITE(p);
    return p;
}
EXPORT void *reallocarray(void *old, size_t n, size_t s)
{
    void *p = pf_reallocarray_in(old, n, s);
    PF_SITE(p);
    return p;
}
EXPORT int posix_memalign(void **out, size_t a, size_t n)
{
    int rc = pf_posix_memalign_in(out, a, n);
    if (rc == 0)
        PF_SITE(*out);
    return rc;
}
EXPORT void *aligned_alloc(size_t a, size_t n)
{
    void *p = pf_aligned_alloc_in(a, n);
    PF_SITE(p);
    return p;
}
EXPORT void *memalign(size_t a, size_t n)
{
    void *p = pf_memalign_in(a, n);
    PF_SITE(p);
    return p;
}
EXPORT void *valloc(size_t n)
{
    void *p = pf_valloc_in(n);
    PF_SITE(p);
    return p;
}
EXPORT void *pvalloc(size_t n)
{
    void *p = pf_pvalloc_in(n);
    PF_SITE(p);
    return p;
}
EXPORT size_t malloc_usable_size(void *p) { return pf_malloc_usable_size(p); }

EXPORT void cfree(void *p);
EXPORT void cfree(void *p) { pf_free(p); }
EXPORT void free_sized(void *p, size_t n);
EXPORT void free_sized(void *p, size_t n) { (void)n; pf_free(p); }
EXPORT void free_aligned_sized(void *p, size_t a, size_t n);
EXPORT void free_aligned_sized(void *p, size_t a, size_t n) { (void)a; (void)n; pf_free(p); }

/* glibc's internal names, which some programs and libraries call directly. */
#define DECL(ret, name, args) EXPORT ret name args; EXPORT ret name args
DECL(void *, __libc_malloc, (size_t n))
{
    void *p = pf_fast_malloc(n);
    PF_SITE(p);
    return p;
}
DECL(void *, __libc_calloc, (size_t n, size_t s))
{
    void *p = pf_calloc_in(n, s);
    PF_SITE(p);
    return p;
}
DECL(void *, __libc_realloc, (void *old, size_t n))
{
    void *p = pf_realloc_in(old, n);
    PF_SITE(p);
    return p;
}
DECL(void, __libc_free, (void *p)) { pf_free(p); }
DECL(void *, __libc_memalign, (size_t a, size_t n))
{
    void *p = pf_memalign_in(a, n);
    PF_SITE(p);
    return p;
}
DECL(void *, __libc_valloc, (size_t n))
{
    void *p = pf_valloc_in(n);
    PF_SITE(p);
    return p;
}
DECL(void *, __libc_pvalloc, (size_t n))
{
    void *p = pf_pvalloc_in(n);
    PF_SITE(p);
    return p;
}
DECL(int, __posix_memalign, (void **out, size_t a, size_t n))
{
    int rc = pf_posix_memalign_in(out, a, n);
    if (rc == 0)
        PF_SITE(*out);
    return rc;
}

/* ---- C++ operators ----------------------------------------------------------------
 * operator new must not return NULL: it calls the installed new-handler and
 * tries again, and throws std::bad_alloc when there is none. Both come from
 * the C++ runtime, which any program calling operator new has loaded. */
typedef void (*new_handler_fn)(void);
typedef struct nothrow_tag nothrow_t; /* std::nothrow_t: never looked at */

/* One try of operator new: the first and every retry after the new-handler
 * are this same call, so a retry can never be a different (e.g. rounded and
 * overflowed) request. align 0: no alignment asked. */
static void *new_try(size_t n, size_t align)
{
    return align ? pf_memalign_in(align, n) : pf_malloc_slow(n);
}

/* Loaded modules' names, a few at a time (on the stack: two threads may
 * run out of memory at once). */
#define CXX_MODULES_AT_ONCE 32
struct module_names {
    int skip, n;
    const char *name[CXX_MODULES_AT_ONCE];
};

static int note_module(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    struct module_names *m = ctx;
    if (m->skip > 0) {
        m->skip--;
        return 0;
    }
    m->name[m->n++] = info->dlpi_name;
    return m->n == CXX_MODULES_AT_ONCE;
}

/* The C++ runtime's definition of `name` other than `ours` (NULL: pfalloc
 * has none): in the global scope, else in any module loaded. A C++ library
 * that a program loads with RTLD_LOCAL (as Python loads its extensions)
 * keeps its C++ runtime out of the global scope, and an operator new that
 * fails in it must still call its handler and throw to its catch. NULL
 * when no module has one. Only when memory has run out. */
static void *cxx_runtime_sym(const char *name, const void *ours)
{
    void *f = dlsym(ours ? RTLD_NEXT : RTLD_DEFAULT, name);
    if (f && f != ours)
        return f;
    for (int seen = 0;; seen += CXX_MODULES_AT_ONCE) {
        struct module_names m = {.skip = seen};
        dl_iterate_phdr(note_module, &m);
        for (int i = 0; i < m.n; i++) {
            if (!m.name[i] || !m.name[i][0])
                continue; /* the program itself: the global scope above */
            void *h = dlopen(m.name[i], RTLD_LAZY | RTLD_NOLOAD);
            if (!h)
                continue;
            /* The module's own scope: it and what it needs. */
            f = dlsym(h, name);
            dlclose(h);
            if (f && f != ours)
                return f;
        }
        if (m.n < CXX_MODULES_AT_ONCE)
            return NULL;
    }
}

static new_handler_fn new_handler(void)
{
    new_handler_fn (*get)(void) = (new_handler_fn(*)(void))cxx_runtime_sym("_ZSt15get_new_handlerv", NULL);
    return get ? get() : NULL;
}

/* Throws std::bad_alloc from the C++ runtime (stops the process when there
 * is none to throw it). */
__attribute__((noreturn, noinline, cold)) static void throw_bad_alloc(void)
{
    void (*thrower)(void) = (void (*)(void))cxx_runtime_sym("_ZSt17__throw_bad_allocv", NULL);
    if (thrower)
        thrower();
    static const char msg[] = "pfalloc: operator new: out of memory\n";
    pf_os_die(msg, sizeof(msg) - 1);
}

__attribute__((noinline, cold)) static void *new_failed(size_t n, size_t align, int nothrow)
{
    for (;;) {
        new_handler_fn h = new_handler();
        if (!h) {
            if (nothrow)
                return NULL;
            throw_bad_alloc();
        }
        h();
        void *p = new_try(n, align);
        if (p)
            return p;
    }
}

/* A nothrow operator new that failed with a new-handler installed: the
 * handler may throw std::bad_alloc, and the nothrow form must then return
 * NULL, which takes a C++ catch. The C++ runtime's own nothrow operator
 * (`name`, not pfalloc's `ours`) has it, around a call of the throwing
 * form, which is pfalloc's: its retries and handler calls are the ones
 * above. Without a handler, or a runtime's operator: as the throwing form,
 * but NULL at the end. */
__attribute__((noinline, cold)) static void *new_failed_nothrow(size_t n, size_t align, const nothrow_t *t,
                                                                 const char *name, const void *ours)
{
    if (!new_handler())
        return NULL;
    void *f = cxx_runtime_sym(name, ours);
    if (!f)
        return new_failed(n, align, 1);
    if (align)
        return ((void *(*)(size_t, size_t, const nothrow_t *))f)(n, align, t);
    return ((void *(*)(size_t, const nothrow_t *))f)(n, t);
}

__attribute__((noinline)) static void *cxx_new_slow(size_t n, const void *ret)
{
    void *p = new_try(n, 0);
    if (!p)
        p = new_failed(n, 0, 0);
    PF_SITE_AT(p, ret);
    return p;
}

static inline void *cxx_new_nothrow(size_t n, const nothrow_t *t, const char *name, const void *ours)
{
    void *p = new_try(n, 0);
    return p ? p : new_failed_nothrow(n, 0, t, name, ours);
}

/* An alignment that is not a power of two (0 among them) breaks the
 * aligned operator new's precondition. libstdc++'s operator then throws
 * std::bad_alloc at once, without calling the new-handler, and its nothrow
 * form returns NULL; these do the same rather than hand out a block aligned
 * to a rounded-up power of two, which is not a multiple of what was asked. */
static inline int bad_alignment(size_t a)
{
    return a == 0 || (a & (a - 1)) != 0;
}

static inline void *cxx_new_aligned(size_t n, size_t a)
{
    if (PF_UNLIKELY(bad_alignment(a)))
        throw_bad_alloc();
    void *p = new_try(n, a);
    return p ? p : new_failed(n, a, 0);
}

static inline void *cxx_new_aligned_nothrow(size_t n, size_t a, const nothrow_t *t, const char *name,
                                            const void *ours)
{
    if (PF_UNLIKELY(bad_alignment(a)))
        return NULL;
    void *p = new_try(n, a);
    return p ? p : new_failed_nothrow(n, a, t, name, ours);
}

DECL(void *, _Znwm, (size_t n))
{
    void *p;
    if (PF_LIKELY(pf_malloc_direct(n, &p)))
        return p;
    return cxx_new_slow(n, __builtin_return_address(0));
}
DECL(void *, _Znam, (size_t n))
{
    void *p;
    if (PF_LIKELY(pf_malloc_direct(n, &p)))
        return p;
    return cxx_new_slow(n, __builtin_return_address(0));
}
DECL(void *, _ZnwmRKSt9nothrow_t, (size_t n, const nothrow_t *t))
{
    void *p = cxx_new_nothrow(n, t, "_ZnwmRKSt9nothrow_t", (const void *)_ZnwmRKSt9nothrow_t);
    PF_SITE(p);
    return p;
}
DECL(void *, _ZnamRKSt9nothrow_t, (size_t n, const nothrow_t *t))
{
    void *p = cxx_new_nothrow(n, t, "_ZnamRKSt9nothrow_t", (const void *)_ZnamRKSt9nothrow_t);
    PF_SITE(p);
    return p;
}
DECL(void *, _ZnwmSt11align_val_t, (size_t n, size_t a))
{
    void *p = cxx_new_aligned(n, a);
    PF_SITE(p);
    return p;
}
DECL(void *, _ZnamSt11align_val_t, (size_t n, size_t a))
{
    void *p = cxx_new_aligned(n, a);
    PF_SITE(p);
    return p;
}
DECL(void *, _ZnwmSt11align_val_tRKSt9nothrow_t, (size_t n, size_t a, const nothrow_t *t))
{
    void *p = cxx_new_aligned_nothrow(n, a, t, "_ZnwmSt11align_val_tRKSt9nothrow_t",
                                      (const void *)_ZnwmSt11align_val_tRKSt9nothrow_t);
    PF_SITE(p);
    return p;
}
DECL(void *, _ZnamSt11align_val_tRKSt9nothrow_t, (size_t n, size_t a, const nothrow_t *t))
{
    void *p = cxx_new_aligned_nothrow(n, a, t, "_ZnamSt11align_val_tRKSt9nothrow_t",
                                      (const void *)_ZnamSt11align_val_tRKSt9nothrow_t);
    PF_SITE(p);
    return p;
}
DECL(void, _ZdlPv, (void *p)) { pf_fast_free(p); }
DECL(void, _ZdaPv, (void *p)) { pf_fast_free(p); }
/* Sized and aligned deletes pass what the program says it allocated; the
 * checking mode (PFALLOC_CHECK) compares it with the block. */
DECL(void, _ZdlPvm, (void *p, size_t n)) { pf_fast_free_sized(p, n, 1); }
DECL(void, _ZdaPvm, (void *p, size_t n)) { pf_fast_free_sized(p, n, 1); }
DECL(void, _ZdlPvSt11align_val_t, (void *p, size_t a)) { pf_fast_free_sized(p, PF_CHECK_ANY_SIZE, a); }
DECL(void, _ZdaPvSt11align_val_t, (void *p, size_t a)) { pf_fast_free_sized(p, PF_CHECK_ANY_SIZE, a); }
DECL(void, _ZdlPvmSt11align_val_t, (void *p, size_t n, size_t a)) { pf_fast_free_sized(p, n, a); }
DECL(void, _ZdaPvmSt11align_val_t, (void *p, size_t n, size_t a)) { pf_fast_free_sized(p, n, a); }
DECL(void, _ZdlPvRKSt9nothrow_t, (void *p, const nothrow_t *t)) { (void)t; pf_free(p); }
DECL(void, _ZdaPvRKSt9nothrow_t, (void *p, const nothrow_t *t)) { (void)t; pf_free(p); }
DECL(void, _ZdlPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t a, const nothrow_t *t))
{
    (void)t;
    pf_fast_free_sized(p, PF_CHECK_ANY_SIZE, a);
}
DECL(void, _ZdaPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t a, const nothrow_t *t))
{
    (void)t;
    pf_fast_free_sized(p, PF_CHECK_ANY_SIZE, a);
}
