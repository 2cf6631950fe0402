/*
 * uapi_mm.h — the Linux Memory Manager calls on top of pfalloc.
 *
 * Programs written for the Linux Memory Manager compile unchanged. Each
 * registered structure is a pfalloc typed family named as the structure is
 * written; XCALLOC(n, type) takes n zeroed objects from it, XFREE(p) gives
 * them back, and the mm_print_* calls write the families' figures to standard
 * output (fd 1, with write(2): flush stdio first if the program mixes the two).
 *
 * Where this differs from the original, on purpose: registering is optional
 * (XCALLOC creates the family on first use), registering twice is harmless,
 * objects may be larger than a page, n * size is checked for overflow (a
 * negative or too-large count gets NULL), XFREE(NULL) is a no-op, every block
 * is aligned for its type (16 bytes at least; a family keeps the largest
 * alignment XCALLOC asked of it, so xcalloc and a family registered before
 * its first XCALLOC get it too), and every call is thread-safe.
 */
#ifndef PFALLOC_UAPI_MM_H
#define PFALLOC_UAPI_MM_H

#include <stddef.h>
#include <stdint.h>

#include "pfalloc.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
#define PF_MM_ALIGNOF(type) alignof(type)
/* C++ has no implicit conversion from void *, so the result gets the type. */
#define PF_MM_CAST(type, expr) (static_cast<type *>(expr))
#else
#define PF_MM_ALIGNOF(type) _Alignof(type)
#define PF_MM_CAST(type, expr) (expr)
#endif

/* Nothing needs setting up; kept so existing programs link. Safe to call any
 * number of times, from any thread. */
PF_API void mm_init(void);

/* Creates the family `struct_name` for objects of struct_size bytes (any
 * size, more than a page included). Again with the same size: nothing
 * happens. With another size: one warning line on stderr, and the family
 * keeps its first size. */
PF_API void mm_instantiate_new_page_family(const char *struct_name, size_t struct_size);
#define MM_REG_STRUCT(type) (mm_instantiate_new_page_family(#type, sizeof(type)))

/* n zeroed objects of `type`, registered or not. */
#define XCALLOC(n, type) \
    PF_MM_CAST(type, pf_typed_alloc(#type, sizeof(type), PF_MM_ALIGNOF(type), (size_t)(n)))
/* `size` zeroed untyped bytes, from the size-class families. */
#define XCALLOC_MISC(size) pf_calloc(1, (size))
/* Any pointer from these calls; NULL is a no-op. */
#define XFREE(p) pf_free(p)

/* The by-name calls of the original: xcalloc needs a registered family
 * (NULL, errno EINVAL otherwise). Both are inline so that a program or
 * library with its own xcalloc/xfree never collides with these. */
PF_API void *pf_mm_calloc_by_name(const char *struct_name, size_t units);
static inline void *xcalloc(const char *struct_name, int units)
{
    /* A negative count becomes a huge one, which the overflow check refuses. */
    return pf_mm_calloc_by_name(struct_name, (size_t)units);
}
static inline void xfree(void *app_ptr)
{
    pf_free(app_ptr);
}

/* Every typed family, with its object size. */
PF_API void mm_print_registered_page_families(void);
/* Families whose name starts with struct_name (all of them for NULL): object
 * size, application bytes, each span, then the totals. */
PF_API void mm_print_memory_usage(const char *struct_name);
/* One line per family: total, free and occupied blocks, application bytes. */
PF_API void mm_print_block_usage(void);

#ifdef __cplusplus
}
#endif
#endif /* PFALLOC_UAPI_MM_H */
