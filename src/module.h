/*
 * module.h — which loaded object (executable or shared library) holds a
 * code address, remembered at the time it was seen: the object's path is
 * copied into pfalloc's own memory, so a site keeps its module's name after
 * the module is unloaded and another is mapped at the same address.
 */
#ifndef PF_MODULE_H
#define PF_MODULE_H

#include <stdatomic.h>
#include <stdint.h>

#include "os.h"

struct pf_module {
    uintptr_t start, end; /* the object's mapping when it was recorded */
    const void *map;      /* its loader handle then (may be reused after unload) */
    uint64_t name_hash;   /* of the name the loader had for it (path is that name made absolute) */
    char path[240];       /* full path as the loader named it (the program's for the executable) */
};

/* Moved by every unload pfalloc sees: what was found about the object at
 * an address before it moved may be about an object since unloaded, whose
 * addresses another may hold now. */
PF_HIDDEN extern _Atomic unsigned pf_module_generation;
static inline unsigned pf_module_gen(void)
{
    return atomic_load_explicit(&pf_module_generation, memory_order_acquire);
}
/* An object may have been unloaded. */
PF_HIDDEN void pf_module_unloaded(void);

/* Maps the table (once; nothing is recorded without it): 0, or -1 when it
 * cannot be mapped. */
PF_HIDDEN int pf_module_init(void);
/* The record of the object holding addr (made on first sight; lock-free,
 * no allocation): its id (>= 1), or 0 when no object holds addr or the
 * table is full or missing. */
PF_HIDDEN uint32_t pf_module_of(uintptr_t addr);
PF_HIDDEN const struct pf_module *pf_module_get(uint32_t id);
/* Whether an object recorded here was unloaded since the last call (each
 * unload is told once; 1 too when the table is missing or full, as an
 * object may then have no record). Lock-free, no allocation, takes none
 * of the loader's locks: _dl_find_object at the start of each record. */
PF_HIDDEN int pf_module_any_gone(void);
/* 1 when module `id` is still the object mapped at addr. */
PF_HIDDEN int pf_module_loaded(uint32_t id, uintptr_t addr);
/* path, made absolute when it is relative and holds a slash (a library
 * the loader found by a relative path: dlopen("./lib.so"), a relative
 * LD_LIBRARY_PATH) by the working directory, into out (cap bytes, cut to
 * fit); its length. No allocation, async-signal-safe. */
PF_HIDDEN size_t pf_module_abs_path(const char *path, char *out, size_t cap);
/* A hash of the name the loader has for an object (FNV-1a). */
PF_HIDDEN uint64_t pf_module_name_hash(const char *name);
/* The base name of a path. */
PF_HIDDEN const char *pf_module_basename(const char *path);

#endif
