/*
 * alloc.h — internal entry points shared with the preload and the checking mode.
 */
#ifndef PF_ALLOC_H
#define PF_ALLOC_H

#include <stddef.h>

#include "os.h"

/* Registers the fork handlers (once). Called by constructors. */
PF_HIDDEN void pf_alloc_init(void);
/* Aborts with the one-line message for a bad pointer handed to free/realloc. */
PF_HIDDEN __attribute__((noreturn)) void pf_alloc_bad_pointer(const void *p);

#endif
