/*
 * stats.h — figures of one family, for reports that walk families themselves.
 */
#ifndef PF_STATS_H
#define PF_STATS_H

#include "family.h"

/* The figures of family f, its class's thread-cache counters summed in.
 * Lock-free; async-signal-safe. */
PF_HIDDEN void pf_stats_family(const struct pf_family *f, struct pf_family_stats *out);
/* Objects live now, summed over every family's counters as pf_stats_get
 * does: exact while no other thread allocates or frees. */
PF_HIDDEN uint64_t pf_stats_live_objects(void);

#endif
