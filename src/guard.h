/*
 * guard.h — memory that faults, for the checking mode (check.c): large
 * blocks placed at the end of their pages with a PROT_NONE guard page
 * after them, found by the program's pointer in a table of their own, and
 * zero-size blocks, distinct 16-byte cells of a PROT_NONE reserve. This
 * module keeps them; check.c judges what the program did with them.
 */
#ifndef PF_GUARD_H
#define PF_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

struct pf_family;
struct pf_span;

/* A large block: [s->start, s->start + room) holds the block at p and its
 * canary; the guard page follows. */
struct pf_guarded {
    uintptr_t p;       /* what the program got; 0: empty entry */
    struct pf_span *s; /* the large span */
    size_t n;          /* bytes requested */
    size_t room;       /* bytes before the guard page */
    uint32_t site;     /* call-site id */
    uint8_t freed;     /* freed by the program (waiting in the quarantine) */
};

/* Maps the table and the reserve; 0 or -1. */
PF_HIDDEN int pf_guard_init(void);
/* For alloc.c's fork handlers (check.c's pf_check_fork_lock). */
PF_HIDDEN void pf_guard_fork_lock(void);
PF_HIDDEN void pf_guard_fork_unlock(int child);
/* A block of n bytes aligned to align (>= 16), counted in f, followed by
 * at least `canary_min` bytes of `canary` up to the guard page; NULL with
 * errno set. When the table is full the block is a plain large one. */
PF_HIDDEN void *pf_guard_alloc(size_t n, size_t align, int zero, struct pf_family *f, size_t canary_min,
                               uint8_t canary);
/* Copies p's entry into *g and returns 1, or returns 0 when p is not a
 * guarded block. With `mark_freed`, a live entry is marked freed (*g holds
 * it as it was). */
PF_HIDDEN int pf_guard_find(uintptr_t p, struct pf_guarded *g, int mark_freed);
/* Makes the block (freed, not yet released) inaccessible; 1 when done. */
PF_HIDDEN int pf_guard_seal(const struct pf_guarded *g);
/* Really frees a guarded block: access back, entry gone, pf_large_free. */
PF_HIDDEN void pf_guard_release(const struct pf_guarded *g);
/* What holds p, a pointer that is no block's start, for a fatal line: a
 * guarded block, live or freed, whose bytes from its pointer to its guard
 * page hold p, or (with `released`) one of the last blocks released, the
 * newest first. 0 when none does. */
struct pf_guard_owner {
    uintptr_t p;         /* the block's pointer, as the program got it */
    struct pf_family *f; /* its family */
    uint32_t site;       /* call-site id */
    uint8_t freed;       /* freed by the program (in the quarantine, or released) */
};
PF_HIDDEN int pf_guard_owner(uintptr_t p, int released, struct pf_guard_owner *o);
/* Calls fn for every guarded block not freed (fn may not free). */
PF_HIDDEN void pf_guard_each_live(void (*fn)(const struct pf_guarded *g));

/* A zero-size cell, or NULL when the reserve is full. */
PF_HIDDEN void *pf_guard_zero_take(void);
PF_HIDDEN int pf_guard_is_zero(uintptr_t p);
/* Whether p is a live cell (its site in *site); with `take`, it is freed. */
PF_HIDDEN int pf_guard_zero_live(uintptr_t p, uint32_t *site, int take);
/* Live zero-size cells: how many, and each in address order with its site
 * word (fn under the guard lock: it takes no lock and makes no syscall).
 * in_signal: only when the lock is free (a handler may have interrupted
 * its holder); -1 when it was not. */
PF_HIDDEN int64_t pf_guard_zero_count(int in_signal);
/* The same with the lock waited for (tries 0) or tried that many times. */
PF_HIDDEN int64_t pf_guard_zero_count_tries(int tries);
PF_HIDDEN int pf_guard_zero_each(void (*fn)(uint32_t *site, uintptr_t p, void *ctx), void *ctx, int in_signal);

/* Keeps the call-site id of a guarded block or cell; 0 when p is neither. */
PF_HIDDEN int pf_guard_set_site(uintptr_t p, uint32_t id);

#endif
