/*
 * roots.h — the memory the reachability pass starts from (see roots.c).
 */
#ifndef PF_ROOTS_H
#define PF_ROOTS_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

#define PF_ROOTS_MAX 16384 /* root ranges kept; beyond, the rest are not scanned */
/* pf_roots.partial when the list was full */
#define PF_ROOTS_FULL "partial (more root ranges than it keeps: the rest were not scanned)"

struct map;

/* Room the pass's buffers are carved from: one mapping for most of them
 * (the roots' lists and text, the pass's tables and bounce buffer) instead
 * of one each, sized by pf_reach_run from what it knows up front. Pieces
 * start on page boundaries, are never reused (so they are zero when taken),
 * and stay until the whole room is given back; one that does not fit gets
 * a mapping of its own. */
struct pf_scratch {
    char *base;   /* NULL: no room mapped */
    size_t bytes; /* mapped */
    size_t used;  /* carved so far: used <= bytes, a whole number of pages */
};
/* want bytes rounded up to whole pages (into *bytes), zeroed, from the
 * room when they fit there (sc may be NULL), else from a mapping of their
 * own; NULL (and *bytes 0) when none can be had. */
PF_HIDDEN void *pf_scratch_take(struct pf_scratch *sc, size_t *bytes, size_t want);
/* Gives back a piece: a mapping of its own is unmapped (forget: only taken
 * off pfalloc's accounts, see pf_os_forget); a piece of the room waits for
 * pf_scratch_release. */
PF_HIDDEN void pf_scratch_give(struct pf_scratch *sc, void *p, size_t bytes, int forget);
/* Gives back the room itself. */
PF_HIDDEN void pf_scratch_release(struct pf_scratch *sc, int forget);
/* The room pf_roots_gather takes in the common case (a list of mappings
 * that fits the first read). */
PF_HIDDEN size_t pf_roots_room(int only_extra);

struct pf_roots {
    uintptr_t (*ranges)[2]; /* [ranges[i][0], ranges[i][1]) hold roots */
    uint32_t n;             /* ranges filled */
    uintptr_t stack_top;    /* the caller's stack ends here (scanned by the caller, from its own
                               frame with the registers spilled); 0: not found */
    uintptr_t stack_from;   /* 0, or where the caller's part of that stack begins (stack_at, or
                               where the report it runs in left it for pfalloc's own stack) */
    uint32_t threads;       /* threads other than the caller */
    uint32_t threads_sp;    /* of them, those whose stack was taken from their stack pointer */
    int solo;               /* 1: the caller was seen to be the process's only thread, so no
                               other can start, exit or unmap anything during the scan */
    /* /proc/self/maps as a list and as text, kept mapped until release */
    struct map *maps;
    uint32_t nmaps;
    char *text;
    /* the dynamic thread vectors (DTVs) that thread descriptors hold: a root range of their own */
    uintptr_t *held;
    uint32_t nheld;
    /* the dynamic TLS blocks that exited threads' DTVs name (see exited_tls in roots.c):
       [i][0] the address of the DTV's word that names the block, [i][1] the block; no roots */
    uintptr_t (*dead_tls)[2];
    uint32_t ndead_tls;
    size_t dead_tls_bytes;
    /* the other threads' registers (see other_registers in roots.c): a root range */
    uintptr_t *regs;
    size_t regs_bytes;
    int regs_busy; /* the helper that read them may still run on this memory */
    /* which pages hold data: asked of the program's mappings here, of large blocks by the pass */
    struct pf_os_pages pages;
    /* NULL, or why some roots were not gathered: what only they reach cannot be told lost */
    const char *partial;
    size_t ranges_bytes, maps_bytes, text_bytes, held_bytes;
    struct pf_scratch *scratch; /* where the buffers above come from (see pf_scratch_take) */
};

/* Fills *rt: `extra` ranges first, then (unless only_extra) the process's
 * own roots. in_signal: only async-signal-safe calls (no dl_iterate_phdr).
 * regs: 0, other threads' registers are not read; 1, they are (for the
 * exit report: the program sees nothing of it, see roots.c); 2, the same,
 * and the process is surely ending (it may name the helper its tracer).
 * stack_at: 0, or an address on the calling thread's stack when the call
 * runs on another one (pfalloc's own): the thread's stack is the mapping
 * that holds it. sc: the room its buffers are taken from (NULL: none).
 * 0, or -1 when no memory could be mapped for the list. */
PF_HIDDEN int pf_roots_gather(struct pf_roots *rt, const uintptr_t (*extra)[2], size_t nextra, int only_extra,
                              int in_signal, int regs, uintptr_t stack_at, struct pf_scratch *sc);
/* From the list of mappings (none without it): the end of the readable,
 * not executable mapping of a file that holds p (a module's read-only data,
 * where C++ keeps its virtual tables), or 0; whether p is in a file's
 * executable mapping (a module's code). */
PF_HIDDEN uintptr_t pf_roots_file_data_end(const struct pf_roots *rt, uintptr_t p);
PF_HIDDEN int pf_roots_file_code(const struct pf_roots *rt, uintptr_t p);
/* Gives back what pf_roots_gather mapped (forget: only off pfalloc's
 * accounts, see pf_os_forget); the ranges are gone with it. */
PF_HIDDEN void pf_roots_release(struct pf_roots *rt, int forget);

#endif
