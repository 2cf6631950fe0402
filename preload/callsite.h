/*
 * callsite.h — the preload's call-site capture (see callsite.c).
 */
#ifndef PF_CALLSITE_H
#define PF_CALLSITE_H

#include "os.h"
#include "sites.h"
#include "unwind.h"

PF_HIDDEN void pf_callsite_init(void);
/* In a forked child nobody is adding a runtime module loaded since the
 * start: not another thread of the parent, and not the code a handler
 * that forked interrupted (it goes on, and adds it again or finds it). */
PF_HIDDEN void pf_callsite_fork_child(void);
/* At the exit: the frame of the code that called exit() (or of the C
 * library's code that called main, once main returned), found by
 * unwinding through the exit's frames (exit's own, the C library's and the
 * loader's under it, pfalloc's): its stack pointer and its callee-saved
 * registers (pf_unwind_program_frame). What lies below it on the stack is
 * the exit's own frames, laid over dead ones of the program (main's locals
 * after main returned). 1, or 0 when not found. */
PF_HIDDEN int pf_callsite_program_frame(uintptr_t *sp, uintptr_t regs[PF_UNWIND_KEPT]);
/* `cfa` is the caller's stack pointer after the call (where `ret` was
 * pushed, plus 8), or NULL when unknown: the walk then starts from the
 * caller's frame instead of unwinding through pfalloc's own. */
PF_HIDDEN void pf_callsite_record(const void *p, const void *ret, const void *cfa);

#if defined(__GNUC__) && !defined(__clang__)
#define PF_CALLER_SP() __builtin_dwarf_cfa()
#else
#define PF_CALLER_SP() ((void *)0)
#endif

/* In an exported entry point: remember who asked for p, when recording. */
#define PF_SITE(p) PF_SITE_AT((p), __builtin_return_address(0))
/* The same in a function the entry point tail-called, given its return
 * address: a tail call leaves the return address where it was, so this
 * function's CFA is still the caller's sp (checked before it is trusted). */
#define PF_SITE_AT(p, ret)                                                  \
    do {                                                                    \
        if (PF_UNLIKELY(pf_sites_on) && (p))                                \
            pf_callsite_record((p), (ret), PF_CALLER_SP());                 \
    } while (0)

#endif
