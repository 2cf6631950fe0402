/*
 * report.c — renders stats as text tables or JSON Lines and writes them with
 * pf_os_write_all. Everything reachable from pf_report_write_ex,
 * pf_print_families and pf_print_totals is async-signal-safe: one static
 * snapshot and one static output buffer, owned by whoever wins the try-flag
 * `busy`; a caller that loses (another thread, or a signal landing inside a
 * report) writes a fixed-size notice from a small stack buffer and returns.
 * Never block here, never allocate, never take a lock.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* program_invocation_short_name */
#endif
#include "report.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "family.h"

/* Where a report starts; one that outgrows it moves to a mapping of
   pfalloc's own that grows as needed (and is kept for the next report), so
   every report reaches its fd in one write(2): with O_APPEND, reports of
   several processes sharing one file never interleave. */
#define REPORT_BUF_SIZE (64 * 1024)
/* Spans listed by pf_print_family before "... and N more". */
#define FAMILY_SPANS_SHOWN 64

static atomic_flag busy = ATOMIC_FLAG_INIT; /* owns snap and out while set */
PF_BULK static struct pf_stats snap;               /* ~70 KiB: too big for a signal stack */
PF_BULK static char out0[REPORT_BUF_SIZE];
static char *out = out0;                    /* out0, or the grown mapping */
static size_t out_cap = sizeof out0;
static int out_mapped;                      /* 1 once out is a mapping */
static _Atomic uint64_t start_ns;           /* 0 until pf_report_init */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void remember_name(void);

void pf_report_init(void)
{
    remember_name();
    uint64_t expect = 0;
    uint64_t now = now_ns();
    atomic_compare_exchange_strong(&start_ns, &expect, now ? now : 1);
}

uint64_t pf_report_uptime_ms(void)
{
    pf_report_init();
    uint64_t t0 = atomic_load_explicit(&start_ns, memory_order_relaxed);
    uint64_t now = now_ns();
    return now > t0 ? (now - t0) / 1000000u : 0;
}

const char *pf_report_kind_name(uint32_t kind)
{
    switch (kind) {
    case PF_KIND_CLASS: return "class";
    case PF_KIND_TYPED: return "typed";
    case PF_KIND_LARGE: return "large";
    default: return "?";
    }
}

/* The program's name as it was at start-up: a program may rewrite its
 * argv later (postgres writes its status there, which
 * program_invocation_short_name points into). Control characters become
 * '?', so a text report's header stays one line. */
static char prog_name[64];
static _Atomic int prog_named;

static void remember_name(void)
{
    if (atomic_load_explicit(&prog_named, memory_order_acquire))
        return;
    const char *p = program_invocation_short_name;
    if (!p || !*p)
        return;
    struct pf_fmt f;
    pf_fmt_init(&f, prog_name, sizeof(prog_name), -1);
    pf_fmt_name(&f, p); /* cut to what fits, as before */
    pf_fmt_cstr(&f);
    atomic_store_explicit(&prog_named, 1, memory_order_release);
}

static const char *program_name(void)
{
    remember_name();
    return atomic_load_explicit(&prog_named, memory_order_acquire) ? prog_name : "?";
}

/* Family names are NUL-terminated within PF_NAME_MAX; this bounds the read
   anyway, since a snapshot taken without locks may be caught mid-update. */
static size_t name_len(const struct pf_family_stats *fs)
{
    return strnlen(fs->name, PF_NAME_MAX);
}

static int has_activity(const struct pf_family_stats *fs)
{
    return fs->allocs || fs->live_objects || fs->spans || fs->mapped_bytes;
}

/* Before: a shows ahead of b (more live bytes, then more mapped, then older). */
static int before(const struct pf_family_stats *a, const struct pf_family_stats *b)
{
    if (a->live_bytes != b->live_bytes)
        return a->live_bytes > b->live_bytes;
    if (a->mapped_bytes != b->mapped_bytes)
        return a->mapped_bytes > b->mapped_bytes;
    return a->id < b->id;
}

/* Fills idx[] with the families worth showing, largest first; returns how
   many. Insertion sort: at most PF_STATS_FAMILIES_MAX entries, no memory. */
static size_t order(const struct pf_stats *st, uint16_t idx[PF_STATS_FAMILIES_MAX])
{
    size_t n = st->nfamilies < PF_STATS_FAMILIES_MAX ? st->nfamilies : PF_STATS_FAMILIES_MAX;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!has_activity(&st->fam[i]))
            continue;
        size_t j = k++;
        while (j > 0 && before(&st->fam[i], &st->fam[idx[j - 1]])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = (uint16_t)i;
    }
    return k;
}

/* ---- text --------------------------------------------------------------- */

static void bytes_line(struct pf_fmt *f, const char *label, uint64_t v)
{
    pf_fmt_str_w(f, label, -22);
    pf_fmt_u64(f, v);
    if (v >= 1024) {
        pf_fmt_str(f, " (");
        pf_fmt_size(f, v);
        pf_fmt_char(f, ')');
    }
    pf_fmt_char(f, '\n');
}

static void count_line(struct pf_fmt *f, const char *label, uint64_t v)
{
    pf_fmt_str_w(f, label, -22);
    pf_fmt_u64(f, v);
    pf_fmt_char(f, '\n');
}

void pf_report_text_totals(struct pf_fmt *f, const struct pf_totals *t)
{
    count_line(f, "  live objects", t->live_objects);
    bytes_line(f, "  live bytes", t->live_bytes);
    bytes_line(f, "  live requested", t->live_requested);
    count_line(f, "  allocs", t->allocs);
    count_line(f, "  frees", t->frees);
    bytes_line(f, "  mapped bytes", t->mapped_bytes);
    bytes_line(f, "  peak mapped bytes", t->peak_mapped_bytes);
    bytes_line(f, "  metadata bytes", t->metadata_bytes);
    bytes_line(f, "  resident bytes", t->resident_bytes);
    bytes_line(f, "  metadata resident", t->metadata_resident_bytes);
    bytes_line(f, "  cached bytes", t->cached_bytes);
    count_line(f, "  mmap calls", t->mmap_calls);
    count_line(f, "  munmap calls", t->munmap_calls);
    count_line(f, "  madvise calls", t->madvise_calls);
    count_line(f, "  mremap calls", t->mremap_calls);
    count_line(f, "  families", t->families);
    count_line(f, "  threads", t->threads);
}

/* Column widths of the families table after the name column. */
enum { W_KIND = 6, W_SLOT = 8, W_OBJ = 11, W_SIZE = 11, W_SPANS = 7, W_UTIL = 7, W_OPS = 12 };

/* Columns: `size` is a class's slot or a type's object; `objects` are
 * objects live (a typed array of n counts n), `blocks` the allocations
 * holding them (typed: arrays; otherwise one object each); `requested` the
 * bytes asked for, `held` the slot bytes they occupy; `peak held` see
 * pf_family_stats.peak_live_bytes. */
static void table_head(struct pf_fmt *f, int wname)
{
    pf_fmt_str_w(f, "family", -wname);
    pf_fmt_char(f, ' ');
    pf_fmt_str_w(f, "kind", -W_KIND);
    pf_fmt_str_w(f, "size", W_SLOT);
    pf_fmt_str_w(f, "objects", W_OBJ);
    pf_fmt_str_w(f, "blocks", W_OBJ);
    pf_fmt_str_w(f, "requested", W_SIZE);
    pf_fmt_str_w(f, "held", W_SIZE);
    pf_fmt_str_w(f, "spans", W_SPANS);
    pf_fmt_str_w(f, "mapped", W_SIZE);
    pf_fmt_str_w(f, "util", W_UTIL);
    pf_fmt_str_w(f, "peak held", W_SIZE);
    pf_fmt_str_w(f, "allocs", W_OPS);
    pf_fmt_str_w(f, "frees", W_OPS);
    pf_fmt_char(f, '\n');
}

static void table_row(struct pf_fmt *f, int wname, const struct pf_family_stats *fs)
{
    pf_fmt_name_pad(f, fs->name, name_len(fs), -wname);
    pf_fmt_char(f, ' ');
    pf_fmt_str_w(f, pf_report_kind_name(fs->kind), -W_KIND);
    if (fs->kind == PF_KIND_LARGE)
        pf_fmt_str_w(f, "-", W_SLOT);
    else
        pf_fmt_u64_w(f, fs->slot_size, W_SLOT);
    pf_fmt_u64_w(f, fs->live_elements, W_OBJ);
    pf_fmt_u64_w(f, fs->live_objects, W_OBJ);
    pf_fmt_size_w(f, fs->live_requested, W_SIZE);
    pf_fmt_size_w(f, fs->live_bytes, W_SIZE);
    pf_fmt_u64_w(f, fs->spans, W_SPANS);
    pf_fmt_size_w(f, fs->mapped_bytes, W_SIZE);
    pf_fmt_pct_w(f, fs->live_bytes, fs->mapped_bytes, W_UTIL);
    pf_fmt_size_w(f, fs->peak_live_bytes, W_SIZE);
    pf_fmt_u64_w(f, fs->allocs, W_OPS);
    pf_fmt_u64_w(f, fs->frees, W_OPS);
    pf_fmt_char(f, '\n');
}

void pf_report_text_families(struct pf_fmt *f, const struct pf_stats *st)
{
    uint16_t idx[PF_STATS_FAMILIES_MAX];
    size_t n = order(st, idx);
    int wname = 12;
    for (size_t i = 0; i < n; i++) {
        int len = (int)name_len(&st->fam[idx[i]]);
        if (len > wname)
            wname = len;
    }
    table_head(f, wname);
    struct pf_family_stats sum;
    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < n; i++) {
        const struct pf_family_stats *fs = &st->fam[idx[i]];
        table_row(f, wname, fs);
        sum.live_elements += fs->live_elements;
        sum.live_objects += fs->live_objects;
        sum.live_requested += fs->live_requested;
        sum.live_bytes += fs->live_bytes;
        sum.spans += fs->spans;
        sum.mapped_bytes += fs->mapped_bytes;
        sum.allocs += fs->allocs;
        sum.frees += fs->frees;
    }
    /* The totals row: sums over the rows above (peaks do not add up). */
    pf_fmt_str_w(f, "total", -wname);
    pf_fmt_char(f, ' ');
    pf_fmt_repeat(f, ' ', W_KIND);
    pf_fmt_str_w(f, "-", W_SLOT);
    pf_fmt_u64_w(f, sum.live_elements, W_OBJ);
    pf_fmt_u64_w(f, sum.live_objects, W_OBJ);
    pf_fmt_size_w(f, sum.live_requested, W_SIZE);
    pf_fmt_size_w(f, sum.live_bytes, W_SIZE);
    pf_fmt_u64_w(f, sum.spans, W_SPANS);
    pf_fmt_size_w(f, sum.mapped_bytes, W_SIZE);
    pf_fmt_pct_w(f, sum.live_bytes, sum.mapped_bytes, W_UTIL);
    pf_fmt_str_w(f, "-", W_SIZE);
    pf_fmt_u64_w(f, sum.allocs, W_OPS);
    pf_fmt_u64_w(f, sum.frees, W_OPS);
    pf_fmt_char(f, '\n');
    if (st->truncated) {
        pf_fmt_str(f, "(more families exist than a snapshot holds: ");
        pf_fmt_u64(f, PF_STATS_FAMILIES_MAX);
        pf_fmt_str(f, " shown at most)\n");
    }
}

/* ---- JSON --------------------------------------------------------------- */

static void member_u64(struct pf_fmt *f, const char *key, uint64_t v, int first)
{
    if (!first)
        pf_fmt_char(f, ',');
    pf_fmt_char(f, '"');
    pf_fmt_str(f, key);
    pf_fmt_str(f, "\":");
    pf_fmt_u64(f, v);
}

void pf_report_json_totals(struct pf_fmt *f, const struct pf_totals *t)
{
    pf_fmt_char(f, '{');
    member_u64(f, "live_objects", t->live_objects, 1);
    member_u64(f, "live_bytes", t->live_bytes, 0);
    member_u64(f, "live_requested", t->live_requested, 0);
    member_u64(f, "allocs", t->allocs, 0);
    member_u64(f, "frees", t->frees, 0);
    member_u64(f, "mapped_bytes", t->mapped_bytes, 0);
    member_u64(f, "peak_mapped_bytes", t->peak_mapped_bytes, 0);
    member_u64(f, "metadata_bytes", t->metadata_bytes, 0);
    member_u64(f, "resident_bytes", t->resident_bytes, 0);
    member_u64(f, "metadata_resident_bytes", t->metadata_resident_bytes, 0);
    member_u64(f, "cached_bytes", t->cached_bytes, 0);
    member_u64(f, "mmap_calls", t->mmap_calls, 0);
    member_u64(f, "munmap_calls", t->munmap_calls, 0);
    member_u64(f, "madvise_calls", t->madvise_calls, 0);
    member_u64(f, "mremap_calls", t->mremap_calls, 0);
    member_u64(f, "families", t->families, 0);
    member_u64(f, "threads", t->threads, 0);
    pf_fmt_char(f, '}');
}

void pf_report_json_family(struct pf_fmt *f, const struct pf_family_stats *fs)
{
    char name[PF_NAME_MAX + 1];
    size_t n = name_len(fs);
    memcpy(name, fs->name, n);
    name[n] = '\0';
    pf_fmt_str(f, "{\"name\":");
    pf_fmt_json_str(f, name);
    pf_fmt_str(f, ",\"kind\":");
    pf_fmt_json_str(f, pf_report_kind_name(fs->kind));
    member_u64(f, "id", fs->id, 0);
    member_u64(f, "slot_size", fs->slot_size, 0);
    member_u64(f, "live_objects", fs->live_objects, 0);
    member_u64(f, "live_bytes", fs->live_bytes, 0);
    member_u64(f, "live_requested", fs->live_requested, 0);
    member_u64(f, "spans", fs->spans, 0);
    member_u64(f, "mapped_bytes", fs->mapped_bytes, 0);
    member_u64(f, "peak_live_bytes", fs->peak_live_bytes, 0); /* the old name of peak_held_bytes */
    member_u64(f, "peak_held_bytes", fs->peak_live_bytes, 0);
    member_u64(f, "allocs", fs->allocs, 0);
    member_u64(f, "frees", fs->frees, 0);
    member_u64(f, "live_elements", fs->live_elements, 0);
    pf_fmt_char(f, '}');
}

void pf_report_json_families(struct pf_fmt *f, const struct pf_stats *st)
{
    uint16_t idx[PF_STATS_FAMILIES_MAX];
    size_t n = order(st, idx);
    pf_fmt_char(f, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            pf_fmt_char(f, ',');
        pf_report_json_family(f, &st->fam[idx[i]]);
    }
    pf_fmt_char(f, ']');
}

/* ---- writers ------------------------------------------------------------ */

static int take_busy(void)
{
    return !atomic_flag_test_and_set_explicit(&busy, memory_order_acquire);
}

static void give_busy(void)
{
    atomic_flag_clear_explicit(&busy, memory_order_release);
}

int pf_report_busy(void)
{
    if (!take_busy())
        return 1;
    give_busy();
    return 0;
}

/* A notice for a report skipped while the report under way is being
 * written to that same pipe, terminal or socket is kept until that write
 * is over: written at once it would land inside the report's text, since
 * a write to a pipe that fills goes out in pieces, a handler that
 * interrupts it (the report signal during the exit report) runs between
 * two of them, and so may another thread's write. The writer writes the
 * notices kept when its write ends; one that finds the write over writes
 * its own. A regular file takes the report in one write that no signal
 * cuts: notices go there at once, as they do when every slot is taken. */
#define NOTICE_SLOTS 4
enum { NOTICE_FREE, NOTICE_FILLING, NOTICE_READY, NOTICE_WRITING };
static struct {
    _Atomic int state;
    size_t len;
    char text[192];
} notices[NOTICE_SLOTS];
static _Atomic long writing; /* the thread of the owner of `busy` writing its report to w_dev, w_ino, or 0 */
static dev_t w_dev;
static ino_t w_ino;

static void write_notice(int fd, int i)
{
    int ready = NOTICE_READY;
    if (atomic_compare_exchange_strong(&notices[i].state, &ready, NOTICE_WRITING)) {
        pf_os_write_all(fd, notices[i].text, notices[i].len);
        atomic_store(&notices[i].state, NOTICE_FREE);
    }
}

/* 1 when the notice (len bytes at text) was kept for the writer of the
 * report under way, or written here after all. */
static int keep_notice(int fd, const char *text, size_t len)
{
    struct stat st;
    long w = atomic_load(&writing);
    if (!w || fstat(fd, &st) != 0 || st.st_dev != w_dev || st.st_ino != w_ino)
        return 0;
    /* A writer whose thread has gone (a handler of the program's that
     * interrupted its write ended the thread) never ends its write: the
     * notices kept for it are written now, and this one too. */
    if (w != pf_os_tid() && syscall(SYS_tgkill, (long)getpid(), w, 0) != 0 && errno == ESRCH) {
        if (atomic_compare_exchange_strong(&writing, &w, 0))
            for (int i = 0; i < NOTICE_SLOTS; i++)
                write_notice(fd, i);
        return 0;
    }
    for (int i = 0; i < NOTICE_SLOTS; i++) {
        int free_slot = NOTICE_FREE;
        if (!atomic_compare_exchange_strong(&notices[i].state, &free_slot, NOTICE_FILLING))
            continue;
        memcpy(notices[i].text, text, len);
        notices[i].len = len;
        atomic_store(&notices[i].state, NOTICE_READY);
        /* The write may have ended meanwhile, its writer gone past the
         * slots: then this notice is written here (whoever takes the slot
         * from READY writes it, once). */
        if (!atomic_load(&writing))
            write_notice(fd, i);
        return 1;
    }
    return 0;
}

/* The owner of `busy` writes out the formatter (finish) with a pipe,
 * terminal or socket marked as being written, then the notices kept
 * meanwhile. */
static int finish(struct pf_fmt *f, int saved_errno);

static int finish_owned(struct pf_fmt *f, int saved_errno)
{
    struct stat st;
    int mark = f->fd >= 0 && fstat(f->fd, &st) == 0 && !S_ISREG(st.st_mode);
    if (mark) {
        w_dev = st.st_dev;
        w_ino = st.st_ino;
        atomic_store(&writing, pf_os_tid());
    }
    int rc = finish(f, saved_errno);
    if (mark) {
        int e = errno;
        atomic_store(&writing, 0);
        for (int i = 0; i < NOTICE_SLOTS; i++)
            write_notice(f->fd, i);
        errno = e;
    }
    return rc;
}

void pf_report_fork_child(void)
{
    /* A report another thread was writing when the process forked is not
     * going on in the child; its buffer is free, and so are the notices
     * kept for it (they are the parent's to write). */
    atomic_flag_clear_explicit(&busy, memory_order_relaxed);
    atomic_store_explicit(&writing, 0, memory_order_relaxed);
    for (int i = 0; i < NOTICE_SLOTS; i++)
        atomic_store_explicit(&notices[i].state, NOTICE_FREE, memory_order_relaxed);
}

/* A child of a process with one thread keeps the flag: only that thread's
 * own interrupted report can hold it, and it goes on in the child. The
 * prepare handler keeps the record (the child cannot ask: fork makes it
 * single-threaded), so this works whether or not the program links the
 * fork handlers of alloc.c. Forking threads all write the same 1. */
static int fork_threaded;

static void fork_prepare(void)
{
    /* Stored only when it changes (pf_lock_fork_taken_set). */
    int threaded = pf_lock_threaded();
    if (__atomic_load_n(&fork_threaded, __ATOMIC_RELAXED) != threaded)
        __atomic_store_n(&fork_threaded, threaded, __ATOMIC_RELAXED);
}

PF_FORK_CHILD static void fork_child(void)
{
    if (__atomic_load_n(&fork_threaded, __ATOMIC_RELAXED))
        pf_report_fork_child();
}

/* Registered here, with the code it resets, so a program linking the static
 * library forks as one running under the preload does. */
__attribute__((constructor)) static void report_ctor(void)
{
    pf_os_atfork(fork_prepare, NULL, fork_child);
}

/* The notice written when the static buffer is taken: one short line from a
   small stack buffer, in the report's own format. Returns -1, EAGAIN. */
static int busy_notice(int fd, int json, const char *what)
{
    char buf[192];
    struct pf_fmt f;
    pf_fmt_init(&f, buf, sizeof buf, -1);
    if (json) {
        pf_fmt_str(&f, "{\"pid\":");
        pf_fmt_u64(&f, (uint64_t)getpid());
        pf_fmt_str(&f, ",\"reason\":");
        pf_fmt_json_str(&f, what);
        pf_fmt_str(&f, ",\"skipped\":\"another report in progress\"}\n");
    } else {
        pf_fmt_str(&f, "pfalloc: pid ");
        pf_fmt_u64(&f, (uint64_t)getpid());
        pf_fmt_str(&f, ": ");
        pf_fmt_str(&f, what);
        pf_fmt_str(&f, " skipped, another report in progress\n");
    }
    /* The fixed parts fit; only an oversized `what` can be cut, never the newline. */
    if (f.truncated)
        f.buf[f.len - 1] = '\n';
    if (!keep_notice(fd, buf, f.len) && pf_os_write_all(fd, buf, f.len) != 0)
        return -1;
    errno = EAGAIN;
    return -1;
}

/* The report buffer for the owner of `busy`. */
static void open_out(struct pf_fmt *f, int fd)
{
    pf_fmt_init_grow(f, out, out_cap, out_mapped, fd);
}

/* Writes out the formatter and keeps its buffer for the next report (only
   the owner of `busy` calls it with the report buffer); restores errno on
   success. */
static int finish(struct pf_fmt *f, int saved_errno)
{
    int rc = pf_fmt_flush(f);
    if (f->grow || f->mapped) {
        out = f->buf;
        out_cap = f->cap;
        out_mapped = f->mapped;
    }
    if (rc != 0)
        return -1;
    errno = saved_errno;
    return 0;
}

int pf_report_write_ex(int fd, int json, const char *reason, pf_report_extra_fn extra, void *ctx)
{
    int saved = errno;
    if (!reason)
        reason = "request";
    if (!take_busy())
        return busy_notice(fd, json, reason);
    pf_stats_get(&snap);
    uint64_t ms = pf_report_uptime_ms();
    struct pf_fmt f;
    open_out(&f, fd);
    if (json) {
        pf_fmt_str(&f, "{\"pid\":");
        pf_fmt_u64(&f, (uint64_t)getpid());
        pf_fmt_str(&f, ",\"program\":");
        pf_fmt_json_str(&f, program_name());
        pf_fmt_str(&f, ",\"reason\":");
        pf_fmt_json_str(&f, reason);
        pf_fmt_str(&f, ",\"time_s\":");
        pf_fmt_fixed(&f, ms, 3);
        pf_fmt_str(&f, ",\"totals\":");
        pf_report_json_totals(&f, &snap.totals);
        pf_fmt_str(&f, ",\"families\":");
        pf_report_json_families(&f, &snap);
        pf_fmt_str(&f, ",\"families_truncated\":");
        pf_fmt_str(&f, snap.truncated ? "true" : "false");
        if (extra)
            extra(&f, 1, ctx);
        pf_fmt_str(&f, "}\n");
    } else {
        pf_fmt_str(&f, "==== pfalloc report: pid ");
        pf_fmt_u64(&f, (uint64_t)getpid());
        pf_fmt_str(&f, " (");
        pf_fmt_str(&f, program_name());
        pf_fmt_str(&f, "), reason ");
        pf_fmt_str(&f, reason);
        pf_fmt_str(&f, ", ");
        pf_fmt_fixed(&f, ms, 3);
        pf_fmt_str(&f, " s since start ====\ntotals\n");
        pf_report_text_totals(&f, &snap.totals);
        pf_fmt_char(&f, '\n');
        pf_report_text_families(&f, &snap);
        if (extra)
            extra(&f, 0, ctx);
        pf_fmt_str(&f, "==== end of pfalloc report ====\n");
    }
    int rc = finish_owned(&f, saved);
    give_busy();
    return rc;
}

static int print_families(int fd)
{
    int saved = errno;
    if (!take_busy())
        return busy_notice(fd, 0, "pf_print_families");
    pf_stats_get(&snap);
    struct pf_fmt f;
    open_out(&f, fd);
    pf_report_text_families(&f, &snap);
    int rc = finish_owned(&f, saved);
    give_busy();
    return rc;
}

static int print_totals(int fd)
{
    int saved = errno;
    if (!take_busy())
        return busy_notice(fd, 0, "pf_print_totals");
    pf_stats_get(&snap);
    struct pf_fmt f;
    open_out(&f, fd);
    pf_fmt_str(&f, "pfalloc totals\n");
    pf_report_text_totals(&f, &snap.totals);
    int rc = finish_owned(&f, saved);
    give_busy();
    return rc;
}

/* Not signal-safe (pf_family_spans takes the family's lock), so it keeps to
   the stack and leaves the static buffer to the signal-time writers. */
static int print_family(int fd, const char *name)
{
    int saved = errno;
    if (!name) {
        errno = EINVAL;
        return -1;
    }
    struct pf_family_stats fs;
    struct pf_span_info spans[FAMILY_SPANS_SHOWN];
    long total = pf_family_spans(name, &fs, spans, FAMILY_SPANS_SHOWN);
    if (total < 0) {
        errno = ENOENT;
        return -1;
    }
    size_t shown = (size_t)total < FAMILY_SPANS_SHOWN ? (size_t)total : FAMILY_SPANS_SHOWN;
    char buf[8192];
    struct pf_fmt f;
    pf_fmt_init(&f, buf, sizeof buf, fd);

    pf_fmt_str(&f, "family ");
    pf_fmt_name_pad(&f, fs.name, name_len(&fs), 0);
    pf_fmt_str(&f, " (");
    pf_fmt_str(&f, pf_report_kind_name(fs.kind));
    if (fs.kind != PF_KIND_LARGE) {
        pf_fmt_str(&f, fs.kind == PF_KIND_TYPED ? ", object " : ", slot ");
        pf_fmt_u64(&f, fs.slot_size);
        pf_fmt_str(&f, " B");
    }
    pf_fmt_str(&f, ")\n  live ");
    pf_fmt_u64(&f, fs.live_elements);
    pf_fmt_str(&f, " objects");
    if (fs.kind == PF_KIND_TYPED) {
        pf_fmt_str(&f, " in ");
        pf_fmt_u64(&f, fs.live_objects);
        pf_fmt_str(&f, " arrays");
    }
    pf_fmt_str(&f, ", requested ");
    pf_fmt_size(&f, fs.live_requested);
    pf_fmt_str(&f, ", held ");
    pf_fmt_size(&f, fs.live_bytes);
    pf_fmt_str(&f, ", peak held ");
    pf_fmt_size(&f, fs.peak_live_bytes);
    pf_fmt_str(&f, "\n  spans ");
    pf_fmt_u64(&f, fs.spans);
    pf_fmt_str(&f, ", mapped ");
    pf_fmt_size(&f, fs.mapped_bytes);
    pf_fmt_str(&f, ", utilisation ");
    pf_fmt_pct(&f, fs.live_bytes, fs.mapped_bytes);
    pf_fmt_str(&f, "\n  allocs ");
    pf_fmt_u64(&f, fs.allocs);
    pf_fmt_str(&f, ", frees ");
    pf_fmt_u64(&f, fs.frees);
    pf_fmt_char(&f, '\n');

    if (shown > 0) {
        pf_fmt_str(&f, "  ");
        pf_fmt_str_w(&f, "first slot", -18);
        pf_fmt_str_w(&f, "bytes", 11);
        pf_fmt_str_w(&f, "slot", 8);
        pf_fmt_str_w(&f, "slots", 8);
        pf_fmt_str_w(&f, "used", 8);
        pf_fmt_str_w(&f, "free", 8);
        pf_fmt_str_w(&f, "largest free run", 18);
        pf_fmt_char(&f, '\n');
        for (size_t i = 0; i < shown; i++) {
            const struct pf_span_info *s = &spans[i];
            uint32_t free_slots = s->slots >= s->used ? s->slots - s->used : 0;
            pf_fmt_str(&f, "  ");
            char hex[24];
            struct pf_fmt h;
            pf_fmt_init(&h, hex, sizeof hex, -1);
            pf_fmt_hex(&h, (uint64_t)s->first);
            pf_fmt_pad(&f, hex, h.len, -18);
            pf_fmt_size_w(&f, s->bytes, 11);
            pf_fmt_u64_w(&f, s->slot_size, 8);
            pf_fmt_u64_w(&f, s->slots, 8);
            pf_fmt_u64_w(&f, s->used, 8);
            pf_fmt_u64_w(&f, free_slots, 8);
            pf_fmt_u64_w(&f, s->largest_free_run, 18);
            pf_fmt_char(&f, '\n');
        }
        if ((size_t)total > shown) {
            pf_fmt_str(&f, "  ... and ");
            pf_fmt_u64(&f, (uint64_t)total - shown);
            pf_fmt_str(&f, " more spans\n");
        }
    }
    return finish(&f, saved);
}

/* The printers the program calls run on a stack of pfalloc's own, as the
 * reports do (pf_os_on_own_stack): a program may call them on a thread
 * with a small stack, or from a handler on a small alternate stack, and
 * one family's printer alone takes about 11 KB. */
enum { PRINT_FAMILIES, PRINT_TOTALS, PRINT_FAMILY };
struct print_job {
    int what, fd;
    const char *name;
    int rc;
};

static void print_job(void *arg)
{
    struct print_job *j = arg;
    j->rc = j->what == PRINT_FAMILIES ? print_families(j->fd)
          : j->what == PRINT_TOTALS   ? print_totals(j->fd)
                                      : print_family(j->fd, j->name);
}

/* The printer `what` from the public function, whose frame is the
 * outermost of pfalloc's and takes `from` itself. */
static int print_from(int what, int fd, const char *name, uintptr_t from)
{
    if (fd < 0) { /* the formatter takes a negative fd for "no fd" and would write nothing */
        errno = EBADF;
        return -1;
    }
    struct print_job j = {what, fd, name, -1};
    pf_os_on_own_stack(print_job, &j, from);
    return j.rc;
}

int pf_print_families(int fd)
{
    uintptr_t from;
    PF_OS_PROGRAM_STACK(from);
    return print_from(PRINT_FAMILIES, fd, NULL, from);
}

int pf_print_totals(int fd)
{
    uintptr_t from;
    PF_OS_PROGRAM_STACK(from);
    return print_from(PRINT_TOTALS, fd, NULL, from);
}

int pf_print_family(int fd, const char *name)
{
    uintptr_t from;
    PF_OS_PROGRAM_STACK(from);
    return print_from(PRINT_FAMILY, fd, name, from);
}
