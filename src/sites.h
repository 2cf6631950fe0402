/*
 * sites.h — call sites and the leak report. A call site is the address of
 * the first frame outside pfalloc and the C/C++ runtime that asked for
 * memory; the preload finds it, this module interns it as a small id kept
 * per slot (only when recording is on), and at exit walks every family's
 * spans to group the objects still live by family and site.
 */
#ifndef PF_SITES_H
#define PF_SITES_H

#include <stdint.h>

#include "fmt.h"
#include "os.h"
#include "reach.h"

/* Turns recording on (before the program's own code runs): 0, or -1 when
 * its tables could not be mapped (recording stays off, and the report says
 * why). */
PF_HIDDEN int pf_sites_enable(void);
PF_HIDDEN extern int pf_sites_on;
/* Remembers that p was allocated at `addr` (`runtime`: no frame outside the
 * runtime was found). Lock-free; allocates only the table, once. */
PF_HIDDEN void pf_sites_note(const void *p, uintptr_t addr, int runtime);
/* For the public entry points: when sites are on and p is a block, its site
 * is the entry point's caller (ret: the entry point's return address). */
PF_INLINE void pf_sites_note_caller(const void *p, const void *ret)
{
    if (PF_UNLIKELY(pf_sites_on) && p)
        pf_sites_note(p, (uintptr_t)ret, 0);
}
/* The same in two steps, for callers that remember ids: */
PF_HIDDEN uint32_t pf_sites_intern(uintptr_t addr, int runtime);
/* Interns a stack: pcs[0..n) innermost first, pcs[first] the first frame
 * outside the runtime (the site). Lock-free, never allocates. */
PF_HIDDEN uint32_t pf_sites_intern_stack(const uintptr_t *pcs, int n, int first, int runtime);
/* Frames kept from the site outwards (PFALLOC_STACK_DEPTH). */
PF_HIDDEN uint32_t pf_sites_depth(void);
/* Runtime frames kept in front of the site. */
#define PF_SITES_RUNTIME_KEPT 2
PF_HIDDEN void pf_sites_store(const void *p, uint32_t id);
/* 1 when site `id` was interned as the runtime's. */
PF_HIDDEN int pf_sites_runtime(uint32_t id);

/* ", allocated at func+0x1c in prog" for a site word whose address is
 * known; nothing for an unknown, shared or early one. For the fatal lines. */
struct pf_fmt;
PF_HIDDEN void pf_sites_fmt_allocated(struct pf_fmt *f, uint32_t id);

struct pf_leaks {
    uint64_t objects, bytes;                 /* every live object */
    uint64_t program_objects, program_bytes; /* allocated here, not by the runtime for itself */
    uint64_t inherited_objects, inherited_bytes; /* allocated before the fork that made this process */
    /* By enum pf_reach_kind: objects == sum of kind_objects, and the same
     * for the program's own; all unclassified when no pass ran. */
    uint64_t kind_objects[PF_REACH_KINDS], kind_bytes[PF_REACH_KINDS];
    uint64_t program_kind_objects[PF_REACH_KINDS], program_kind_bytes[PF_REACH_KINDS];
    /* The program's objects definitely or possibly lost, or unclassified:
     * what PFALLOC_LEAK_EXIT_CODE looks at. */
    uint64_t program_lost;
};
/* In a fork child: objects allocated from now on are the child's own. */
PF_HIDDEN void pf_sites_fork_child(void);
/* Fork child: a leak walk under way in another thread at the fork is
 * forgotten. */
PF_HIDDEN void pf_leaks_fork_child(void);
/* 1 in a process forked (without exec) from the one this image started in. */
PF_HIDDEN int pf_sites_forked(void);
/* Maps the leak walk's tables now, so an exit in a process that has run
 * out of memory still groups its leaks. */
PF_HIDDEN void pf_leaks_reserve(void);
/* Groups what is live now; fills *sum. Not signal-safe (takes family
 * locks). stack_from and at_exit: see pf_reach_opts (at_exit only where
 * the process surely ends: a terminating signal's handler may find that
 * it does not). Besides, the nwords words at `words` (none when NULL) are
 * roots. */
PF_HIDDEN void pf_leaks_collect(struct pf_leaks *sum, uintptr_t stack_from, int at_exit, const uintptr_t *words,
                                size_t nwords);
/* The same for the exit report, which returns with other threads'
 * allocations still held (family.h, the hold) until pf_leaks_exit_written:
 * one that would end the process meanwhile (another thread's exit, which
 * finds no handler left and ends it at once) waits for the report to be
 * written, unless it ends it without allocating. -1 (*sum zeroed, nothing
 * held): a signal report's walk was still reading the heap after the wait
 * for it (or, in this thread, one the exit interrupted), and was left to
 * it (PF_LEAKS_BUSY). */
#define PF_LEAKS_BUSY "a signal report's walk of the heap was still under way"
PF_HIDDEN int pf_leaks_collect_exit(struct pf_leaks *sum, uintptr_t stack_from, int at_exit,
                                    const uintptr_t *words, size_t nwords);
PF_HIDDEN void pf_leaks_exit_written(void);
/* The same from a signal handler: gives up (-1) rather than wait on a lock
 * or on a walk under way. On 0, the caller writes the report, then calls
 * pf_leaks_done. Names sites with dladdr (see docs/REPORTS.md). */
PF_HIDDEN int pf_leaks_collect_signal(struct pf_leaks *sum, uintptr_t stack_from);
PF_HIDDEN void pf_leaks_done(void);
/* pf_report_extra_fn: writes the leak section collected last. */
PF_HIDDEN void pf_leaks_write(struct pf_fmt *f, int json, void *ctx);
/* The leak section's place when it was not collected, and why. */
PF_HIDDEN void pf_leaks_write_skipped(struct pf_fmt *f, int json, const char *why);

#endif
