/*
 * stats.h — figures of one family, for reports that walk families themselves.
 */
#ifndef PF_STATS_H
#define PF_STATS_H

#include "family.h"

/* Per-class sums of every thread cache's counters: [cls][0..2] =
 * allocs, frees, net requested bytes. Lock-free; async-signal-safe. */
PF_HIDDEN void pf_stats_class_sums(uint64_t sums[PF_NCLASSES][3]);
PF_HIDDEN void pf_stats_family(const struct pf_family *f, const uint64_t sums[PF_NCLASSES][3],
                               struct pf_family_stats *out);

#endif
