/*
 * reach.h — which live objects the program can still reach. A conservative
 * mark pass, as leak checkers do: every aligned word of the roots (writable
 * segments of the loaded modules, the stacks of the threads, the registers
 * of the one that runs the pass and, for the exit report, of the others
 * (see roots.c), thread-local storage, memory the program mapped itself)
 * that points into a live object marks it, and marked objects are scanned
 * in turn. Every object then falls in one category, with valgrind
 * memcheck's meanings. Run at exit, before the leak walk; the results stay
 * until pf_reach_release.
 */
#ifndef PF_REACH_H
#define PF_REACH_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

struct pf_span;

/* In the order a report lists them: lost ones first. */
enum pf_reach_kind {
    PF_REACH_DEFINITE = 0,     /* no pointer to it from anything reachable or from another lost object */
    PF_REACH_INDIRECT = 1,     /* not reachable, but pointed to from a lost object */
    PF_REACH_POSSIBLE = 2,     /* reachable from the roots only through pointers into its interior */
    PF_REACH_STILL = 3,        /* a chain of pointers to its start leads to it from the roots */
    PF_REACH_UNCLASSIFIED = 4, /* no pass ran, or it could not (see pf_reach_note) */
    PF_REACH_KINDS = 5
};

struct pf_reach_opts {
    /* Objects whose contents count as roots (those the runtime and the
     * loader made for themselves: dynamic TLS blocks, thread descriptors'
     * key data); NULL for none. The object itself is still classified. */
    int (*root_object)(const struct pf_span *s, uint32_t idx, void *ctx);
    void *ctx;
    /* More root ranges [ranges[i][0], ranges[i][1]). */
    const uintptr_t (*ranges)[2];
    size_t nranges;
    /* 1: only `ranges` (and root_object) are roots: no modules, stacks, TLS. */
    int only_ranges;
    /* 1: called from a signal handler: gives up (-1) rather than wait on a
     * lock the interrupted code may hold, and finds the modules' segments
     * in /proc/self/maps instead of asking the loader (dl_iterate_phdr
     * takes the loader's lock). */
    int in_signal;
    /* 1: the process is about to end (the exit's destructor): what the run
     * maps is not unmapped but given up to the process's end (pf_os_forget):
     * the syscalls would cost a short-lived process more than the walk. */
    int at_exit;
    /* 1: this is the exit report's pass (the process ends when its report
     * is written: the destructor, or a terminating signal's handler): other
     * threads' registers are read (see roots.c); with at_exit the helper
     * that reads them may be named the process's tracer. */
    int exit_report;
    /* 0, or where the part of the caller's stack that is the program's
     * begins: the stack pointer of pfalloc's outermost frame (a report's
     * signal handler, the exit's destructor), which has spilled every
     * register the program held into that frame. The current thread's
     * stack is scanned from there up instead of from the pass's own frame:
     * what pfalloc's frames below it hold (stale words left in their slots
     * by the program's earlier calls) is no root. The pass itself may run
     * on another stack (pfalloc's own, see pf_os_on_own_stack): the
     * thread's stack is the one that holds stack_from. */
    uintptr_t stack_from;
};

/* Classifies every live object. Takes every family's lock while it scans
 * (no syscall under them). Returns 0, or -1 when it could not (no memory,
 * or a lock stayed held in a signal handler): every object is then
 * unclassified. Only async-signal-safe calls with in_signal. */
PF_HIDDEN int pf_reach_run(const struct pf_reach_opts *opts);
/* The category of the live object that starts at p, from the last run. */
PF_HIDDEN enum pf_reach_kind pf_reach_of(uintptr_t p);
/* Gives back the memory of the last run; pf_reach_of says unclassified. */
PF_HIDDEN void pf_reach_release(void);
/* Whether the last run classified anything, and why not when it did not:
 * NULL after a complete run. */
PF_HIDDEN const char *pf_reach_note(void);
/* "definitely_lost", ... (JSON) and "definitely lost", ... (text). */
PF_HIDDEN const char *pf_reach_key(enum pf_reach_kind k);
PF_HIDDEN const char *pf_reach_text(enum pf_reach_kind k);

#endif
