/*
 * halloc.h — the Halloc calls on top of pfalloc.
 *
 * Programs written for Halloc compile unchanged: halloc(type, n) hands out n
 * zeroed objects from the typed family named after the type as written,
 * hfree(p) gives them back, and the three halloc_print_* calls write the
 * per-type figures to standard output (fd 1, with write(2): flush stdio first
 * if the program mixes the two). Unlike the original, requests of any size
 * work (not only up to about 1 GiB), every block is 16-byte aligned, a
 * too-large n * sizeof(type) fails with NULL instead of wrapping around,
 * hfree(NULL) does nothing, and every call is thread-safe.
 */
#ifndef PFALLOC_HALLOC_H
#define PFALLOC_HALLOC_H

/* Halloc's examples call assert() after including only this header. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "pfalloc.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
#define PF_HALLOC_ALIGNOF(type) alignof(type)
/* C++ has no implicit conversion from void *, so the result gets the type. */
#define PF_HALLOC_CAST(type, expr) (static_cast<type *>(expr))
#else
#define PF_HALLOC_ALIGNOF(type) _Alignof(type)
#define PF_HALLOC_CAST(type, expr) (expr)
#endif

/* n zeroed objects of `type` as one array, from the family named #type.
 * NULL (errno EINVAL) for n == 0, NULL (errno ENOMEM) when the bytes do not fit. */
#define halloc(type, n) \
    PF_HALLOC_CAST(type, pf_typed_alloc(#type, sizeof(type), PF_HALLOC_ALIGNOF(type), (size_t)(n)))

/* Releases memory from halloc (or any pfalloc call); NULL is a no-op. */
#define hfree(p) pf_free(p)

/* The types that have a family, with their object sizes. */
PF_API void halloc_print_saved_page_items(void);
/* One line per type: arrays (live halloc calls) and used bytes; under it one
 * line per block size its arrays took: blocks of that size, free blocks. */
PF_API void halloc_print_total_memory_usage(void);
/* The spans of one type, then its lines as above. The call site passes the
 * type itself, not a string. */
PF_API void (halloc_print_type_memory_usage)(const char *type_name);
#define halloc_print_type_memory_usage(type) (halloc_print_type_memory_usage)(#type)

#ifdef __cplusplus
}
#endif
#endif /* PFALLOC_HALLOC_H */
