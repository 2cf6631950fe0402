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
#define PF_SITE(p) PF_SITE_AT((p), __builtin_return_address(0))
/* The same in a function the entry point tail-called, given its return address. */
#define PF_SITE_AT(p, ret)                                                  \
    do {                                                                    \
        if (PF_UNLIKELY(pf_sites_on) && (p))                                \
            pf_callsite_record((p), (ret));                                 \
    } while (0)

#endif
