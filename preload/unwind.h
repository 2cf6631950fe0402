/*
 * unwind.h — the preload's stack walker (see unwind.c).
 */
#ifndef PF_UNWIND_H
#define PF_UNWIND_H

#include <stdint.h>

#include "os.h"

/* The rules a thread used last, by address (see unwind.c): the caller
 * keeps one per thread and passes it to each walk, or NULL. */
#define PF_UNWIND_NEAR_BITS 6
struct pf_unwind_near {
    struct {
        uintptr_t pc;
        uint64_t rule;
    } e[1u << PF_UNWIND_NEAR_BITS];
    uint32_t laps; /* the unload epoch's bits above a rule's tag when e[] was last emptied */
};

/* What a walk from the caller's frame read of the stack (the return
 * addresses and saved rbp values, each with its address), on which thread
 * and under which rules: a walk from the same start on that thread whose
 * reads all find the same values again gives the same frames, since each
 * step depends only on its frame's rule and what it reads. n is -1 when
 * the walk did not start at the caller's frame or read more than r holds. */
#define PF_UNWIND_READS 24
struct pf_unwind_reads {
    int n;
    uint32_t epoch;
    uintptr_t thread;
    struct {
        uintptr_t at, val;
    } r[PF_UNWIND_READS];
};

/* Maps the rule cache; `self` is any address inside pfalloc's own code,
 * whose frames the walk skips. */
PF_HIDDEN void pf_unwind_init(const void *self);
/* Only what tells pfalloc's own frames (no cache). */
PF_HIDDEN void pf_unwind_self(const void *self);
/* Return addresses of the caller's stack, from the first frame outside
 * pfalloc outwards, into pcs[0..max); returns how many. Lock-free, never
 * allocates, async-signal-safe; stops at the first frame without usable
 * unwind information. When `ret` and `sp` (the caller's return address and
 * its stack pointer after the call) are given, the walk starts there; it
 * goes through pfalloc's own frames only when that start cannot be used.
 * `near`, the calling thread's table of recent rules, may be NULL. */
PF_HIDDEN int pf_unwind(uintptr_t *pcs, int max, uintptr_t ret, uintptr_t sp, struct pf_unwind_near *near,
                        struct pf_unwind_reads *reads);
/* When `reads` is given, what the walk read goes there (see struct
 * pf_unwind_reads). */
/* Whether a walk that logged `reads` (n >= 0), from start `sp`, would give
 * the same frames now: the same thread, rules and start, and the same
 * value at each address it read. */
PF_HIDDEN int pf_unwind_same(const struct pf_unwind_reads *reads, uintptr_t sp);
/* Where the function holding code address `look` starts, by its unwind
 * information (which covers functions with no symbol), or 0. */
PF_HIDDEN uintptr_t pf_unwind_func_start(uintptr_t look);
/* The caller of the first frame, outward from the caller's, whose code
 * `last` accepts: its stack pointer at that call (its frame and every one
 * above it lie at and above it) into *sp, and the values its callee-saved
 * registers (rbx, r12 .. r15, rbp) had then, recovered from where the
 * frames below saved them, into regs. 1, or 0 when the walk does not get
 * there (a frame without usable unwind information). Uncached: for the
 * exit. */
#define PF_UNWIND_KEPT 6
PF_HIDDEN int pf_unwind_program_frame(int (*last)(uintptr_t code), uintptr_t *sp, uintptr_t regs[PF_UNWIND_KEPT]);
/* Code may have been unmapped (an object unloaded): forget every cached rule. */
PF_HIDDEN void pf_unwind_forget(void);

#endif
