/*
 * check.h — the checking mode (PFALLOC_CHECK=1): canaries after blocks,
 * freed blocks filled and held in a quarantine, guard pages after large
 * blocks, faulting zero-size blocks, C++ sized and aligned delete checked.
 * Off, it costs nothing: the fast paths never look at it, and the slow
 * paths test one flag.
 */
#ifndef PF_CHECK_H
#define PF_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

struct pf_family;

/* Nonzero once the mode is on; never turned off. */
PF_HIDDEN extern int pf_check_on;

/* pf_check_free's `size` when the caller does not say (free, unsized delete). */
#define PF_CHECK_ANY_SIZE SIZE_MAX

/* Turns the mode on: called once, early (the preload's constructor). The
 * calling thread's cache is emptied and no thread uses the fast paths from
 * then on. Returns 0, or -1 when its bookkeeping could not be mapped. */
PF_HIDDEN int pf_check_enable(void);
/* A block of n bytes aligned to `align` (a power of two; below 16 means
 * 16), zeroed when `zero`, counted in the typed family f, or in a class or
 * the large family when f is NULL. NULL with errno set on failure. */
PF_HIDDEN void *pf_check_alloc(size_t n, size_t align, int zero, struct pf_family *f);
/* Frees p (not NULL). `size`: what the caller says was requested, or
 * PF_CHECK_ANY_SIZE; `align`: 0 for free(), else what a C++ delete says
 * (1 for an unaligned one). Anything wrong is fatal with one line. */
PF_HIDDEN void pf_check_free(void *p, size_t size, size_t align);
PF_HIDDEN void *pf_check_realloc(void *p, size_t n);
/* The bytes requested for p (0 for NULL); a pointer that is no live block
 * is fatal with one line, as in free. */
PF_HIDDEN size_t pf_check_usable(const void *p);
/* Keeps the call-site id of a block whose site is kept here (large and
 * zero-size blocks); returns 0 when p is not one of them. */
PF_HIDDEN int pf_check_site(const void *p, uint32_t id);
/* At exit: every block in the quarantine is verified and freed, every live
 * block's canary verified. */
PF_HIDDEN void pf_check_exit(void);
/* alloc.c's fork handlers: other threads' checked operations let finish
 * and new ones held (before any lock of pfalloc's is taken; given back in
 * the parent by pf_check_fork_parent, in the child by
 * pf_check_fork_child), the checking mode's locks (taken after every other
 * of pfalloc's, given back first), and the child's own state. */
PF_HIDDEN void pf_check_fork_quiesce(void);
PF_HIDDEN void pf_check_fork_lock(void);
PF_HIDDEN void pf_check_fork_unlock(int child);
PF_HIDDEN void pf_check_fork_parent(void);
PF_HIDDEN void pf_check_fork_child(void);

#endif
