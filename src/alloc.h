/*
 * alloc.h — internal entry points shared with the preload and the checking mode.
 */
#ifndef PF_ALLOC_H
#define PF_ALLOC_H

#include <stddef.h>

#include "os.h"

struct pf_family;

/* Registers the fork handlers (once). Called by constructors. */
PF_HIDDEN void pf_alloc_init(void);
/* The public untyped entry points without the call-site note of pfalloc.h's
 * (for pfalloc's own callers: the preload's malloc family records a whole
 * stack itself). */
PF_HIDDEN void *pf_calloc_in(size_t n, size_t size);
PF_HIDDEN void *pf_realloc_in(void *p, size_t n);
PF_HIDDEN void *pf_reallocarray_in(void *p, size_t n, size_t size);
PF_HIDDEN int pf_posix_memalign_in(void **out, size_t align, size_t size);
PF_HIDDEN void *pf_aligned_alloc_in(size_t align, size_t size);
PF_HIDDEN void *pf_memalign_in(size_t align, size_t size);
PF_HIDDEN void *pf_valloc_in(size_t size);
PF_HIDDEN void *pf_pvalloc_in(size_t size);
PF_HIDDEN void *pf_family_alloc_in(struct pf_family *f, size_t n);
/* Aborts with the one-line message for a bad pointer handed to free/realloc. */
PF_HIDDEN __attribute__((noreturn)) void pf_alloc_bad_pointer(const void *p);
/* The same for another operation `op` ("malloc_usable_size"), named in the line. */
PF_HIDDEN __attribute__((noreturn)) void pf_alloc_bad_pointer_op(const void *p, const char *op);

#endif
