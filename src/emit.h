/*
 * emit.h — where reports go: stderr, or the PFALLOC_OUT file (with %p
 * replaced by the pid), opened for each report and closed after it, so a
 * program that closes or reuses descriptors never gets our text in its files.
 */
#ifndef PF_EMIT_H
#define PF_EMIT_H

#include "os.h"
#include "report.h"

/* Writes a full report (reason "signal", "interval", "exit", "request") in
 * the configured format; with_leaks appends the leak section collected by
 * pf_leaks_collect (PF_EMIT_LEAKS_EXIT: waits for a report under way in
 * another thread) or pf_leaks_collect_signal (PF_EMIT_LEAKS_NOW: does not
 * wait). Async-signal-safe when with_leaks is 0. */
enum { PF_EMIT_LEAKS_EXIT = 1, PF_EMIT_LEAKS_NOW = 2 };
/* Records which file the starting stderr is (from the preload's constructor). */
PF_HIDDEN void pf_emit_init(void);
/* The exit is under way and the program's atexit handlers have not run yet:
 * keeps a copy of fd 2, while it is still the starting stderr, for the exit
 * report. pf_emit_exit_done closes it after the report. */
PF_HIDDEN void pf_emit_exit_begins(void);
PF_HIDDEN void pf_emit_exit_done(void);
/* 1 when a report written now would reach no reader: no PFALLOC_OUT, and
 * the starting stderr is /dev/null, or was closed at the start, or is
 * closed now and was no terminal to open again (see open_out). The exit
 * report then costs nothing: neither its leak walk nor its text is made. */
PF_HIDDEN int pf_emit_nowhere(void);
PF_HIDDEN int pf_emit_report(const char *reason, int with_leaks);
/* One line made of `parts` (the last ending in a newline) on the starting
 * stderr, when there is one. */
PF_HIDDEN void pf_emit_warn(const char *const *parts, size_t nparts);
/* The same with `extra` (may be NULL) writing the report's last section. */
PF_HIDDEN int pf_emit_report_with(const char *reason, pf_report_extra_fn extra);

#endif
