/*
 * report.h — the text and JSON writers built on fmt: the public pf_print_*
 * printers (declared in pfalloc.h) and the full report written on SIGUSR1,
 * on an interval and at exit. Reports are built whole in one static buffer
 * guarded by a try-flag, so a report reaches its fd in as few writes as
 * possible and never interleaves with another report of this process; one
 * that finds the buffer busy writes a one-line notice instead of waiting.
 */
#ifndef PF_REPORT_H
#define PF_REPORT_H

#include <stdint.h>

#include "fmt.h"
#include "os.h"
#include "pfalloc.h"

/* Appends to a report being built, in the same formatter. With json != 0 it
   is called just before the report object's closing brace and must write
   whole members, each preceded by a comma: `,"leaks":{...}`. In text it is
   called after the families table and writes whole lines. */
typedef void (*pf_report_extra_fn)(struct pf_fmt *f, int json, void *ctx);

/* Records the process start time that reports measure from. Idempotent; a
   report written before it was called measures from that first report. */
PF_HIDDEN void pf_report_init(void);
/* Milliseconds since pf_report_init (CLOCK_MONOTONIC). Async-signal-safe. */
PF_HIDDEN uint64_t pf_report_uptime_ms(void);

/* The full report: header (pid, program, reason, time), process totals, the
   families table largest first. json != 0: exactly one line of JSON.
   reason: "signal", "interval", "exit" or "request". Async-signal-safe.
   Returns 0, or -1 with errno from write, or -1 with EAGAIN when another
   report was being built (a one-line notice is written instead).
   `extra` (may be NULL) appends its own section. */
PF_HIDDEN int pf_report_write_ex(int fd, int json, const char *reason,
                                 pf_report_extra_fn extra, void *ctx);

/* Whether a report is being built right now (by any thread, or by the code
   a signal interrupted). A hint for waiting: it may change at once. */
PF_HIDDEN int pf_report_busy(void);

/* Fork child: a report under way in another thread of the parent is not. */
PF_HIDDEN void pf_report_fork_child(void);

/* Pieces of the report, for writers that add their own sections. */
PF_HIDDEN const char *pf_report_kind_name(uint32_t kind); /* "class", "typed", "large" */
/* One "name value" line per field of *t. */
PF_HIDDEN void pf_report_text_totals(struct pf_fmt *f, const struct pf_totals *t);
/* The families table (families with activity, largest first) and a totals row. */
PF_HIDDEN void pf_report_text_families(struct pf_fmt *f, const struct pf_stats *st);
/* {"live_objects":..,...}: every field of *t. */
PF_HIDDEN void pf_report_json_totals(struct pf_fmt *f, const struct pf_totals *t);
/* {"name":..,"kind":..,...}: one family. */
PF_HIDDEN void pf_report_json_family(struct pf_fmt *f, const struct pf_family_stats *fs);
/* [{...},...]: the families with activity, largest first. */
PF_HIDDEN void pf_report_json_families(struct pf_fmt *f, const struct pf_stats *st);

#endif
