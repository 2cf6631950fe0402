/*
 * papi — leaks through pfalloc's own untyped API, looked up at run time (the
 * program is not linked with pfalloc; under the preload the names resolve
 * to it), each from a static function of its own:
 *   pf_malloc            <- via_malloc          1 x 40 bytes
 *   pf_calloc            <- via_calloc          1 x 40 bytes
 *   pf_realloc           <- via_realloc         1 x 200 bytes (grown from 40)
 *   pf_aligned_alloc     <- via_aligned_alloc   1 x 64 bytes, 64-aligned
 *   pf_posix_memalign    <- via_posix_memalign  1 x 64 bytes, 128-aligned
 *   pf_mm_calloc_by_name <- via_mm_untyped      1 x 40 bytes (no name: untyped)
 * Each must be named by its own caller. Built -O2 -g without frame
 * pointers, like the rest.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static void *volatile sink[8];
static int nsink;

static void *sym(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) {
        fprintf(stderr, "papi: no %s (run it under the preload)\n", name);
        exit(2);
    }
    return f;
}

static void keep(void *p)
{
    if (!p)
        abort();
    sink[nsink++] = p;
}

__attribute__((noipa)) static void via_malloc(void *(*f)(size_t)) { keep(f(40)); }
__attribute__((noipa)) static void via_calloc(void *(*f)(size_t, size_t)) { keep(f(1, 40)); }
__attribute__((noipa)) static void via_realloc(void *(*f)(void *, size_t), void *old) { keep(f(old, 200)); }
__attribute__((noipa)) static void via_aligned_alloc(void *(*f)(size_t, size_t)) { keep(f(64, 64)); }
__attribute__((noipa)) static void via_posix_memalign(int (*f)(void **, size_t, size_t))
{
    void *p = NULL;
    if (f(&p, 128, 64) != 0)
        abort();
    keep(p);
}
__attribute__((noipa)) static void via_mm_untyped(void *(*f)(const char *, size_t)) { keep(f(NULL, 40)); }

int main(void)
{
    void *(*pf_malloc)(size_t) = (void *(*)(size_t))sym("pf_malloc");
    void *(*pf_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))sym("pf_calloc");
    void *(*pf_realloc)(void *, size_t) = (void *(*)(void *, size_t))sym("pf_realloc");
    void *(*pf_aligned_alloc)(size_t, size_t) = (void *(*)(size_t, size_t))sym("pf_aligned_alloc");
    int (*pf_posix_memalign)(void **, size_t, size_t) = (int (*)(void **, size_t, size_t))sym("pf_posix_memalign");
    void *(*pf_mm)(const char *, size_t) = (void *(*)(const char *, size_t))sym("pf_mm_calloc_by_name");
    void (*pf_free)(void *) = (void (*)(void *))sym("pf_free");

    void *old = malloc(40); /* grown by pf_realloc: named by via_realloc */
    via_malloc(pf_malloc);
    via_calloc(pf_calloc);
    via_realloc(pf_realloc, old);
    via_aligned_alloc(pf_aligned_alloc);
    via_posix_memalign(pf_posix_memalign);
    via_mm_untyped(pf_mm);
    void *gone = pf_malloc(40);
    pf_free(gone);
    printf("papi: %d objects kept\n", nsink);
    return 0;
}
