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

/* Turns recording on (before the program's own code runs). */
PF_HIDDEN void pf_sites_enable(void);
PF_HIDDEN extern int pf_sites_on;
/* Remembers that p was allocated at `addr` (`runtime`: no frame outside the
 * runtime was found). Lock-free; allocates only the table, once. */
PF_HIDDEN void pf_sites_note(const void *p, uintptr_t addr, int runtime);
/* The same in two steps, for callers that remember ids: */
PF_HIDDEN uint32_t pf_sites_intern(uintptr_t addr, int runtime);
PF_HIDDEN void pf_sites_store(const void *p, uint32_t id);

struct pf_leaks {
    uint64_t objects, bytes;                 /* every live object */
    uint64_t program_objects, program_bytes; /* those not allocated by the runtime */
    /* By enum pf_reach_kind: objects == sum of kind_objects, and the same
     * for the program's own; all unclassified when no pass ran. */
    uint64_t kind_objects[PF_REACH_KINDS], kind_bytes[PF_REACH_KINDS];
    uint64_t program_kind_objects[PF_REACH_KINDS], program_kind_bytes[PF_REACH_KINDS];
    /* The program's objects definitely or possibly lost, or unclassified:
     * what PFALLOC_LEAK_EXIT_CODE looks at. */
    uint64_t program_lost;
};
/* Groups what is live now; fills *sum. Not signal-safe (takes family locks). */
PF_HIDDEN void pf_leaks_collect(struct pf_leaks *sum);
/* The same from a signal handler: gives up (-1) rather than wait on a lock
 * or on a walk under way. On 0, the caller writes the report, then calls
 * pf_leaks_done. Names sites with dladdr (see docs/REPORTS.md). */
PF_HIDDEN int pf_leaks_collect_signal(struct pf_leaks *sum);
PF_HIDDEN void pf_leaks_done(void);
/* pf_report_extra_fn: writes the leak section collected last. */
PF_HIDDEN void pf_leaks_write(struct pf_fmt *f, int json, void *ctx);

#endif
