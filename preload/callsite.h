/*
 * callsite.h — the preload's call-site capture (see callsite.c).
 */
#ifndef PF_CALLSITE_H
#define PF_CALLSITE_H

#include "os.h"
#include "sites.h"

PF_HIDDEN void pf_callsite_init(void);
PF_HIDDEN void pf_callsite_record(const void *p, const void *ret);

/* In an exported entry point: remember who asked for p, when recording. */
#define PF_SITE(p)                                                          \
    do {                                                                    \
        if (PF_UNLIKELY(pf_sites_on) && (p))                                \
            pf_callsite_record((p), __builtin_return_address(0));           \
    } while (0)

#endif
