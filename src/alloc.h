/*
 * alloc.h — internal entry points shared with the preload and reports.
 */
#ifndef PF_ALLOC_H
#define PF_ALLOC_H

#include <stddef.h>

#include "os.h"

/* Registers the fork handlers (once). Called by constructors. */
PF_HIDDEN void pf_alloc_init(void);
/* In fork handlers: 1 when the fork under way took pfalloc's locks (the
 * process has threads), so the child must reset what other threads held;
 * 0 when it took nothing (one thread: whatever is held, this thread's own
 * interrupted code holds, and finishes). */
PF_HIDDEN int pf_alloc_fork_locked(void);
/* Whether the process has (or had) more than one thread: fork handlers take
 * their locks only then (see alloc.c). Once 1, it stays 1. */
PF_HIDDEN int pf_alloc_threaded(void);
/* Aborts with the one-line message for a bad pointer handed to free/realloc. */
PF_HIDDEN __attribute__((noreturn)) void pf_alloc_bad_pointer(const void *p);

#endif
