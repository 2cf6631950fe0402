/*
 * os.c — every syscall pfalloc makes goes through here, and is counted.
 * Never allocates, never uses stdio; errno may change (callers on paths that
 * must keep errno save it themselves). Counters are atomics: these paths are
 * slow by nature, so a read-modify-write here costs nothing that matters.
 */
#include "os.h"

#include <errno.h>
#include <poll.h>
#include <linux/futex.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint64_t n_mmap, n_munmap, n_madvise, n_mremap;
static _Atomic uint64_t mapped, peak_mapped, meta_mapped;
static size_t page_size;

/* ---- the table of mappings ---------------------------------------------------
 * Every range pfalloc maps read-write is recorded here, so a report can ask
 * the kernel (mincore) which of its pages are resident (mapped_bytes is
 * address space, resident bytes are memory), and the leak walk can tell
 * pfalloc's pages from the program's own mappings. An entry is one word
 * (first page, number of pages, metadata bit), so a reader without a lock
 * sees a range whole, old or new. Writers are slow paths after their
 * syscall; they take `tab_busy` (a spin lock, never held across a syscall),
 * waiting for another thread that holds it, and count `tab_seq` up as they
 * take it and as they give it back: a reader's scan saw one state of the
 * table when the count was even and the same before and after it (a join
 * or a split changes two entries). A report's own mapping made or given
 * back in a signal handler that interrupted this very thread's writer does
 * not wait: the change is kept for that thread to make as it gives the
 * table back (tab_defer), and an added range counts as `untracked` until
 * then (taken as wholly resident, an upper bound; a leak walk meanwhile is
 * partial). A data range next to data entries joins them (large blocks are
 * mapped side by side: thousands of them make a few runs). An unmap may
 * cover part of an entry, so removal trims or splits it. */
#define TAB_SLOTS 16384
#define TAB_SHIFT 12                       /* entries count 4 KiB pages */
#define TAB_MAX_PAGES (((uint64_t)1 << 28) - 1) /* 1 TiB: larger ranges go untracked */
PF_BULK static _Atomic uint64_t tab[TAB_SLOTS]; /* first page << 29 | pages << 1 | meta; 0: empty */
static _Atomic uint32_t tab_hi;            /* entries [0, tab_hi) may be in use */
static _Atomic uintptr_t tab_busy;        /* 0, or &tab_me of the thread that holds the table */
static __thread char tab_me;
static _Atomic uint64_t untracked, untracked_meta; /* bytes mapped but not in tab */

static _Atomic uint64_t *untracked_of(int meta)
{
    return meta ? &untracked_meta : &untracked;
}

static uint64_t tab_word(uintptr_t start, size_t bytes, int meta)
{
    return ((uint64_t)start >> TAB_SHIFT) << 29 | (uint64_t)(bytes >> TAB_SHIFT) << 1 | (uint64_t)(meta != 0);
}

/* Entry i: 0, or 1 with [*a, *b) and *meta. */
static int tab_read(uint32_t i, uintptr_t *a, uintptr_t *b, int *meta)
{
    uint64_t w = atomic_load_explicit(&tab[i], memory_order_acquire);
    if (!w)
        return 0;
    *a = (uintptr_t)(w >> 29) << TAB_SHIFT;
    *b = *a + ((uintptr_t)((w >> 1) & TAB_MAX_PAGES) << TAB_SHIFT);
    *meta = (int)(w & 1);
    return 1;
}

static void tab_set(uint32_t i, uintptr_t a, uintptr_t b, int meta)
{
    atomic_store_explicit(&tab[i], a < b ? tab_word(a, b - a, meta) : 0, memory_order_release);
}

/* Bumped by a writer as it takes the table (odd) and as it gives it back
 * (even): a reader's scan is whole when the count was even before it and
 * is the same after it (a join or a split changes two entries). */
static _Atomic uint64_t tab_seq;

/* 1 when the table is had; -1 when this thread holds it already (a signal
 * handler interrupted its writer); 0 when another holder kept it for about
 * a second. */
static int tab_lock(void)
{
    uintptr_t me = (uintptr_t)&tab_me;
    for (long i = 0; i < 1L << 20; i++) {
        uintptr_t held = 0;
        if (atomic_compare_exchange_weak_explicit(&tab_busy, &held, me, memory_order_acquire,
                                                  memory_order_relaxed)) {
            /* Odd before any entry changes: entries are stored with release. */
            atomic_fetch_add_explicit(&tab_seq, 1, memory_order_relaxed);
            return 1;
        }
        if (held == me)
            return -1;
        if (i < 1 << 10)
            __builtin_ia32_pause();
        else
            sched_yield(); /* the holder is another thread, perhaps descheduled */
    }
    return 0;
}

static void tab_drain(void);
static _Atomic int tab_stale;
/* Mapping calls between their system call and their change to the table:
 * a fork child in which one was under way in another thread has an entry
 * too many or too few, and its table is stale. */
static _Atomic uint32_t tab_inflight;
#define INFLIGHT(stmt)                                                          \
    atomic_fetch_add_explicit(&tab_inflight, 1, memory_order_seq_cst);        \
    stmt;                                                                       \
    atomic_fetch_sub_explicit(&tab_inflight, 1, memory_order_release)
static __thread _Atomic uint32_t tab_nops;

static void tab_unlock(void)
{
    for (;;) {
        tab_drain();
        atomic_fetch_add_explicit(&tab_seq, 1, memory_order_release);
        atomic_store_explicit(&tab_busy, 0, memory_order_release);
        /* A handler that came between the drain and the store queued its
         * change: take the table again and make it. */
        if (!atomic_load_explicit(&tab_nops, memory_order_acquire))
            return;
        if (tab_lock() != 1) {
            atomic_store_explicit(&tab_stale, 1, memory_order_relaxed);
            return;
        }
    }
}

/* A reader's scan: begin (0 while a writer holds the table), then the scan,
 * then whole() says whether it saw one state of the table. */
static uint64_t tab_begin(void)
{
    /* This very thread's writer, interrupted: it cannot finish meanwhile. */
    if (atomic_load_explicit(&tab_busy, memory_order_relaxed) == (uintptr_t)&tab_me)
        return 1;
    for (int i = 0; i < 1 << 12; i++) {
        uint64_t q = atomic_load_explicit(&tab_seq, memory_order_acquire);
        if (!(q & 1))
            return q;
        if (i < 1 << 8)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
    return 1; /* odd: never whole (a signal handler that interrupted the writer) */
}

static int tab_whole(uint64_t q)
{
    /* After the scan's loads of entries, which are acquires. */
    return !(q & 1) && atomic_load_explicit(&tab_seq, memory_order_relaxed) == q;
}

/* Under tab_busy. 0, or -1 when the table is full (or the range too long
 * for an entry). A data range joins the data entries that end where it
 * starts and start where it ends. */
static int tab_put(uintptr_t start, size_t bytes, int meta)
{
    uint32_t hi = atomic_load_explicit(&tab_hi, memory_order_relaxed);
    uint32_t free_at = hi, before = UINT32_MAX, after = UINT32_MAX;
    uintptr_t end = start + bytes, ba = 0, ab = 0;
    for (uint32_t k = 0; k < hi; k++) {
        uintptr_t a, b;
        int m;
        if (!tab_read(k, &a, &b, &m)) {
            if (free_at == hi)
                free_at = k;
            continue;
        }
        if (meta || m)
            continue;
        if (b == start && before == UINT32_MAX) {
            before = k;
            ba = a;
        } else if (a == end && after == UINT32_MAX) {
            after = k;
            ab = b;
        }
    }
    uintptr_t a = before != UINT32_MAX ? ba : start, b = after != UINT32_MAX ? ab : end;
    if (((b - a) >> TAB_SHIFT) > TAB_MAX_PAGES) { /* joined or not, too long for one entry */
        before = after = UINT32_MAX;
        a = start;
        b = end;
        if ((bytes >> TAB_SHIFT) > TAB_MAX_PAGES)
            return -1;
    }
    if (before != UINT32_MAX || after != UINT32_MAX) {
        /* The joined range first, then the entry it swallowed goes. */
        uint32_t keep = before != UINT32_MAX ? before : after;
        tab_set(keep, a, b, 0);
        if (before != UINT32_MAX && after != UINT32_MAX)
            tab_set(after, 0, 0, 0);
        return 0;
    }
    if (free_at == TAB_SLOTS)
        return -1;
    tab_set(free_at, start, end, meta);
    if (free_at == hi)
        atomic_store_explicit(&tab_hi, hi + 1, memory_order_release);
    return 0;
}

static void sub_floor(_Atomic uint64_t *v, uint64_t n)
{
    uint64_t old = atomic_load_explicit(v, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(v, &old, old > n ? old - n : 0,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* Under tab_busy: takes [a, b) out of the table; the bytes no entry
 * covered. */
static size_t untrack_locked(uintptr_t a, uintptr_t b)
{
    size_t found = 0;
    uint32_t hi = atomic_load_explicit(&tab_hi, memory_order_relaxed);
    for (uint32_t i = 0; i < hi; i++) {
        uintptr_t s, e;
        int m;
        if (!tab_read(i, &s, &e, &m) || e <= a || s >= b)
            continue;
        found += (e < b ? e : b) - (s > a ? s : a);
        if (s >= a && e <= b) { /* wholly gone */
            tab_set(i, 0, 0, 0);
        } else if (s < a) { /* keeps its head, and its tail past b if any */
            if (e > b && tab_put(b, e - b, m) != 0)
                atomic_fetch_add_explicit(untracked_of(m), e - b, memory_order_relaxed);
            tab_set(i, s, a, m);
        } else { /* keeps its tail */
            tab_set(i, b, e, m);
        }
    }
    return (size_t)(b - a) - found;
}

/* Changes a signal handler made while its own thread held the table (a
 * report's mappings, made and given back in the handler): kept per thread
 * and made by that thread as it gives the table back. Until then an added
 * range counts as untracked (a walk meanwhile is partial, not wrong). */
#define TAB_DEFER 32
/* Two words, the flags in the top bits of the length (no range is near
 * 2^62 bytes): the queue is in TLS, which glibc takes out of every
 * thread's stack. */
#define TAB_OP_META ((uint64_t)1 << 62)
#define TAB_OP_ADD ((uint64_t)1 << 63)
struct tab_op {
    uintptr_t a;
    uint64_t bytes; /* with TAB_OP_META and TAB_OP_ADD */
};
static __thread struct tab_op tab_ops[TAB_DEFER];

/* The slot is claimed before it is written: a handler nested in this one
 * takes the next. Only the thread that holds the table drains, after its
 * handlers have returned. */
static int tab_defer(uintptr_t a, size_t bytes, int meta, int add)
{
    uint32_t n = atomic_fetch_add_explicit(&tab_nops, 1, memory_order_acq_rel);
    if (n >= TAB_DEFER)
        return 0; /* the drain sees the count past the queue: marks the table stale */
    tab_ops[n] = (struct tab_op){a, (uint64_t)bytes | (meta ? TAB_OP_META : 0) | (add ? TAB_OP_ADD : 0)};
    return 1;
}

static void tab_drain(void)
{
    for (uint32_t done = 0;;) {
        uint32_t n = atomic_load_explicit(&tab_nops, memory_order_acquire);
        if (n > TAB_DEFER) {
            atomic_store_explicit(&tab_stale, 1, memory_order_relaxed);
            n = TAB_DEFER;
        }
        for (; done < n; done++) {
            struct tab_op op = tab_ops[done];
            int meta = (op.bytes & TAB_OP_META) != 0;
            size_t bytes = (size_t)(op.bytes & ~(TAB_OP_META | TAB_OP_ADD));
            _Atomic uint64_t *u = untracked_of(meta);
            if (op.bytes & TAB_OP_ADD) {
                if (tab_put(op.a, bytes, meta) == 0)
                    sub_floor(u, bytes);
            } else {
                sub_floor(u, untrack_locked(op.a, op.a + bytes));
            }
        }
        uint32_t expect = atomic_load_explicit(&tab_nops, memory_order_acquire);
        if (expect > n && n < TAB_DEFER)
            continue; /* a handler added one meanwhile */
        if (atomic_compare_exchange_strong_explicit(&tab_nops, &expect, 0, memory_order_acq_rel,
                                                    memory_order_relaxed))
            return;
    }
}

static void track(const void *p, size_t bytes, int meta)
{
    int got = tab_lock();
    if (got == 1) {
        int ok = tab_put((uintptr_t)p, bytes, meta) == 0;
        tab_unlock();
        if (ok)
            return;
    }
    atomic_fetch_add_explicit(untracked_of(meta), bytes, memory_order_relaxed);
    if (got == -1)
        tab_defer((uintptr_t)p, bytes, meta, 1);
}

/* Takes [p, p + bytes) out of the table; what no entry covered comes off
 * the untracked count. 0 when the table could not be had (nothing done:
 * the entry stays, and reads as not resident once unmapped). */
static int untrack(const void *p, size_t bytes, int meta)
{
    uintptr_t a = (uintptr_t)p;
    int got = tab_lock();
    if (got == -1 && tab_defer(a, bytes, meta, 0))
        return 1;
    if (got != 1) {
        /* Its entry stays, over memory that may become the program's: the
         * table can no longer tell the two apart. */
        atomic_store_explicit(&tab_stale, 1, memory_order_relaxed);
        return 0;
    }
    size_t missing = untrack_locked(a, a + bytes);
    tab_unlock();
    sub_floor(untracked_of(meta), missing);
    return 1;
}

int pf_os_filtered(void)
{
    int saved = errno;
    int mode = prctl(PR_GET_SECCOMP, 0L, 0L, 0L, 0L);
    errno = saved;
    return mode != 0;
}

/* Entries of /proc/self/pagemap read at a time: bit 63 present, bit 62
 * swapped out. Few: a report in a signal handler may run on a small stack. */
#define PAGEMAP_BATCH 64

/* Bytes of [start, start + bytes) that are resident, in pieces whose page
 * vector fits on the stack: by mincore, or, where a seccomp filter may
 * forbid that call (filtered), by /proc/self/pagemap's present bits (read
 * with pread, which every filter a service runs under allows). A piece
 * mincore fails on (not mapped) counts 0; under a filter, one whose
 * pagemap entries cannot be read (pagemap < 0: no descriptor was free, or
 * no /proc) counts whole: mincore, which the filter may punish with
 * SIGSYS, is never the way out. */
static uint64_t resident_of(uintptr_t start, size_t bytes, size_t ps, int filtered, int pagemap)
{
    unsigned char vec[1024];
    uint64_t n = 0;
    if (filtered) {
        uint64_t ent[PAGEMAP_BATCH];
        for (uintptr_t page = start / ps, end = (start + bytes + ps - 1) / ps; page < end;) {
            size_t k = end - page < PAGEMAP_BATCH ? end - page : PAGEMAP_BATCH;
            ssize_t got = pagemap >= 0 ? pread(pagemap, ent, k * sizeof ent[0], (off_t)(page * sizeof ent[0])) : -1;
            size_t read = got > 0 ? (size_t)got / sizeof ent[0] : 0;
            for (size_t j = 0; j < read; j++)
                n += ent[j] >> 63;
            n += k - read;
            page += k;
        }
        return n * ps;
    }
    while (bytes) {
        size_t len = bytes < sizeof(vec) * ps ? bytes : sizeof(vec) * ps;
        if (mincore((void *)start, len, vec) == 0)
            for (size_t i = 0; i < (len + ps - 1) / ps; i++)
                n += vec[i] & 1;
        start += len;
        bytes -= len;
    }
    return n * ps;
}

void pf_os_resident(uint64_t *all, uint64_t *meta)
{
    size_t ps = pf_os_page_size();
    uint64_t r = 0, rm = 0;
    int saved = errno;
    int filtered = pf_os_filtered();
    int pagemap = filtered ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
    /* A few tries for a scan that saw one state of the table; after them
     * the last one's count stands (a join or split met halfway counts a
     * range twice or not at all). */
    for (int tries = 0; tries < 4; tries++) {
        uint64_t q = tab_begin();
        r = rm = 0;
        uint32_t hi = atomic_load_explicit(&tab_hi, memory_order_acquire);
        for (uint32_t i = 0; i < hi; i++) {
            uintptr_t s, e;
            int m;
            if (!tab_read(i, &s, &e, &m))
                continue;
            uint64_t n = resident_of(s, e - s, ps, filtered, pagemap);
            r += n;
            if (m)
                rm += n;
        }
        if (tab_whole(q))
            break;
    }
    if (pagemap >= 0)
        close(pagemap);
    errno = saved;
    uint64_t um = atomic_load_explicit(&untracked_meta, memory_order_relaxed);
    *all = r + um + atomic_load_explicit(&untracked, memory_order_relaxed);
    *meta = rm + um;
}

int pf_os_meta_is(uintptr_t p, size_t size)
{
    /* The whole range must match one metadata entry (they are never
     * joined): a stale entry (an unmap that could not take the table)
     * hardly ever does, and a wrong yes would hide a thread's stack from
     * the leak walk. Metadata entries are never joined nor split, so a
     * scan need not see one state of the table. */
    uint32_t hi = atomic_load_explicit(&tab_hi, memory_order_acquire);
    for (uint32_t i = 0; i < hi; i++) {
        uintptr_t s, e;
        int m;
        if (tab_read(i, &s, &e, &m) && m && s == p && e - s == size)
            return 1;
    }
    return 0;
}

int pf_os_mincore(uintptr_t a, size_t len, unsigned char *vec)
{
    int saved = errno;
    int rc = mincore((void *)a, len, vec);
    errno = saved;
    return rc;
}

/* The descriptor a walk has open on /proc/self/pagemap, or -1. A fork
 * child closes it (pf_os_fork_child): the walk was its parent's, and the
 * child's copy of the walk's state must not close a descriptor of the
 * child's own that took the number. */
static _Atomic int pagemap_fd = -1;

/* pg's walk's descriptor on /proc/thread-self/pagemap, opened at its first
 * need and kept until pf_os_pages_done; -1 when it cannot be (or another
 * walk's is open). */
static int pages_fd(struct pf_os_pages *pg)
{
    if (pg->fd == 0) {
        int fd = open("/proc/thread-self/pagemap", O_RDONLY | O_CLOEXEC), none = -1;
        if (fd >= 0 && !atomic_compare_exchange_strong(&pagemap_fd, &none, fd)) {
            close(fd); /* another walk's is open: this one reads nothing */
            fd = -1;
        }
        pg->fd = fd >= 0 ? fd + 1 : -1;
    }
    /* Closed by a fork since: not this process's walk's. */
    if (pg->fd > 0 && atomic_load(&pagemap_fd) != pg->fd - 1)
        pg->fd = -1;
    return pg->fd > 0 ? pg->fd - 1 : -1;
}

int pf_os_pages_held(struct pf_os_pages *pg, uintptr_t a, size_t len, unsigned char *vec)
{
    size_t ps = pf_os_page_size(), n = (len + ps - 1) / ps, i;
    if (!pg->filtered)
        pg->filtered = pf_os_filtered() ? 2 : 1;
    if (pg->filtered == 2) {
        /* mincore may be what the filter forbids: every page is asked
         * of pagemap, as if the system swapped. */
        memset(vec, 0, n);
        pg->swap = 2;
    } else if (pf_os_mincore(a, len, vec) != 0) {
        return -1;
    }
    for (i = 0; i < n && (vec[i] & 1); i++)
        vec[i] = 1;
    if (i == n)
        return 0;
    int saved = errno;
    if (!pg->swap) {
        /* Without swap space a page not resident has never been written
         * (or was given back): it reads as zeros. */
        struct sysinfo si;
        pg->swap = sysinfo(&si) != 0 || si.totalswap > 0 ? 2 : 1;
    }
    int fd = pg->swap == 2 ? pages_fd(pg) : -1;
    uint64_t ent[PAGEMAP_BATCH];
    while (i < n) {
        if ((vec[i] & 1) || pg->swap == 1) {
            vec[i] = vec[i] & 1;
            i++;
            continue;
        }
        /* Swapped out or not: pagemap says. Unreadable: taken as held. */
        size_t k = n - i < PAGEMAP_BATCH ? n - i : PAGEMAP_BATCH;
        ssize_t got = fd >= 0 ? pread(fd, ent, k * sizeof ent[0], (off_t)((a / ps + i) * sizeof ent[0])) : -1;
        for (size_t j = 0; j < k; j++, i++) {
            int known = got > 0 && (size_t)got >= (j + 1) * sizeof ent[0];
            vec[i] = (vec[i] & 1) || !known || (ent[j] >> 62) != 0;
        }
    }
    errno = saved;
    return 0;
}

int pf_os_pages_written(struct pf_os_pages *pg, uintptr_t a, size_t len, unsigned char *vec)
{
    size_t ps = pf_os_page_size(), n = (len + ps - 1) / ps;
    int saved = errno;
    int fd = pages_fd(pg), rc = fd < 0 ? -1 : 0;
    uint64_t ent[PAGEMAP_BATCH];
    for (size_t i = 0; i < n && rc == 0;) {
        size_t k = n - i < PAGEMAP_BATCH ? n - i : PAGEMAP_BATCH;
        ssize_t got = pread(fd, ent, k * sizeof ent[0], (off_t)((a / ps + i) * sizeof ent[0]));
        if (got != (ssize_t)(k * sizeof ent[0])) {
            rc = -1;
            break;
        }
        /* Swapped out (only the process's own copies are), or present
         * and not a page of the file (nor shared). */
        for (size_t j = 0; j < k; j++, i++)
            vec[i] = ((ent[j] >> 62) & 1) || (((ent[j] >> 63) & 1) && !((ent[j] >> 61) & 1));
    }
    errno = saved;
    return rc;
}

void pf_os_pages_done(struct pf_os_pages *pg)
{
    int fd = pg->fd - 1;
    if (pg->fd > 0 && atomic_compare_exchange_strong(&pagemap_fd, &fd, -1)) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    pg->fd = 0;
    pg->swap = 0;
    pg->filtered = 0;
}

int pf_os_ours_in(uintptr_t a, uintptr_t b, uintptr_t (*out)[2], int max)
{
    /* Only a scan that saw one state of the table: a join or a split met
     * halfway could leave a range of pfalloc's out. */
    for (int tries = 0; tries < 16; tries++) {
        uint64_t q = tab_begin();
        if (atomic_load_explicit(&untracked, memory_order_acquire) ||
            atomic_load_explicit(&untracked_meta, memory_order_acquire) ||
            atomic_load_explicit(&tab_stale, memory_order_relaxed))
            return -1;
        int n = 0;
        uint32_t hi = atomic_load_explicit(&tab_hi, memory_order_acquire);
        for (uint32_t i = 0; i < hi && n <= max; i++) {
            uintptr_t s, e;
            int m;
            if (!tab_read(i, &s, &e, &m) || e <= a || s >= b)
                continue;
            if (n < max) {
                out[n][0] = s > a ? s : a;
                out[n][1] = e < b ? e : b;
            }
            n++;
        }
        if (tab_whole(q))
            return n > max ? -1 : n;
    }
    return -1;
}

/* pfalloc's own stacks for reports (pf_os_on_own_stack): a few, so that
 * reports in several threads at once, or one nested in a handler that
 * interrupted another, each have one. A stack is taken by its thread
 * (owner: that thread's &own_me), which says where it left its own stack
 * (from) for the leak walk. */
#define OWN_STACKS PF_OS_OWN_STACKS
struct own_stack {
    _Atomic uintptr_t owner; /* 0, or &own_me of the thread on it */
    _Atomic uintptr_t base;  /* its lowest usable byte; 0 until mapped */
    _Atomic uintptr_t from;  /* the owner's position on the stack it left */
    _Atomic long tid;        /* the owner's kernel id */
};
static struct own_stack own[OWN_STACKS];
static __thread char own_me;
static __thread long own_tid; /* the id this thread writes into the slots it is on */

void pf_os_fork_child(void)
{
    /* A thread that held the table at fork does not exist here; what it
     * left half made is ranges twice, never none (a join widens one entry
     * before it clears the other; a split puts its tail in before it
     * shortens the head). The fork handlers do not take the table: it is
     * never held across a system call. */
    atomic_store_explicit(&tab_busy, 0, memory_order_relaxed);
    uint64_t q = atomic_load_explicit(&tab_seq, memory_order_relaxed);
    if (q & 1) /* even again, whatever step the holder was at */
        atomic_store_explicit(&tab_seq, q + 1, memory_order_relaxed);
    atomic_store_explicit(&tab_nops, 0, memory_order_relaxed);
    /* The forking thread is in none; another thread's call may have made
     * its system call without its change to the table. */
    if (atomic_exchange_explicit(&tab_inflight, 0, memory_order_relaxed))
        atomic_store_explicit(&tab_stale, 1, memory_order_relaxed);
    /* Nor does the walk that opened this. */
    int fd = atomic_exchange(&pagemap_fd, -1);
    if (fd >= 0)
        close(fd);
}

PF_FORK_CHILD void pf_os_fork_stacks(void)
{
    /* The report stacks other threads were on are free: those threads are
     * not here. One this thread is on (a handler of the program's that
     * interrupted its report forked) stays its own, under the child's id:
     * it holds the id this thread wrote (own_tid, copied into the child);
     * a slot whose owner had this thread's TLS under another id was a
     * thread that has ended. Its id is cleared before its owner, as a
     * release does: a free slot has no id. */
    long parent = own_tid;
    for (int i = 0; i < OWN_STACKS; i++) {
        long tid = atomic_load_explicit(&own[i].tid, memory_order_relaxed);
        if (atomic_load_explicit(&own[i].owner, memory_order_relaxed) == (uintptr_t)&own_me && tid &&
            tid == parent) {
            if (own_tid == parent)
                own_tid = pf_os_tid();
            atomic_store_explicit(&own[i].tid, own_tid, memory_order_relaxed);
        } else if (tid || atomic_load_explicit(&own[i].owner, memory_order_relaxed)) {
            /* Only a slot in use is written: the child of a fork shares
             * its parent's pages until it writes one, and a store of the
             * zero already there would copy this page for nothing. */
            atomic_store_explicit(&own[i].tid, 0, memory_order_relaxed);
            atomic_store_explicit(&own[i].owner, 0, memory_order_relaxed);
        }
    }
}

/* ---- fault injection (tests only) ------------------------------------------
 * PFALLOC_FAULT=N makes the Nth mapping call (mmap, mremap and madvise
 * counted together, from the process's first) fail with ENOMEM as if the
 * kernel had said no; N:K makes K calls from the Nth on fail (K == 0: every
 * one). It exists so tests can walk a failure over every mapping a workload
 * makes. Read with getenv at the first mapping call that sees an
 * environment (never allocates), ignored under secure execution. The
 * default build pays one relaxed load per mapping syscall, a slow path. */
static _Atomic uint64_t fault_calls;   /* mapping calls seen so far */
static uint64_t fault_first, fault_last; /* calls [first, last] fail; first == 0: off */
static _Atomic int fault_state;          /* 0: not read yet, 1: read */

static const char *parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = s;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return NULL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return s == start ? NULL : s;
}

static void fault_read(void)
{
    extern char **environ;
    if (!environ) /* too early in start-up to tell: ask again next time */
        return;
    const char *v = pf_os_secure() ? NULL : getenv("PFALLOC_FAULT");
    uint64_t n = 0, k = 1;
    const char *end = v ? parse_u64(v, &n) : NULL;
    if (end && *end == ':')
        end = parse_u64(end + 1, &k);
    if (end && *end == 0 && n > 0) {
        fault_first = n;
        fault_last = k == 0 || k - 1 > UINT64_MAX - n ? UINT64_MAX : n + k - 1;
    }
    atomic_store_explicit(&fault_state, 1, memory_order_release);
}

/* Nonzero when this mapping call is to fail (errno set to ENOMEM). */
static int fault_now(void)
{
    if (PF_UNLIKELY(!atomic_load_explicit(&fault_state, memory_order_acquire)))
        fault_read();
    uint64_t n = atomic_fetch_add_explicit(&fault_calls, 1, memory_order_relaxed) + 1;
    if (PF_LIKELY(fault_first == 0 || n < fault_first || n > fault_last))
        return 0;
    errno = ENOMEM;
    return 1;
}

size_t pf_os_page_size(void)
{
    /* Racing first callers store the same value; atomically, so that is
     * not a data race. */
    size_t ps = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
    if (PF_UNLIKELY(ps == 0)) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (size_t)v : 4096;
        __atomic_store_n(&page_size, ps, __ATOMIC_RELAXED);
    }
    return ps;
}

static void account_map(size_t size)
{
    uint64_t now = atomic_fetch_add_explicit(&mapped, size, memory_order_relaxed) + size;
    uint64_t peak = atomic_load_explicit(&peak_mapped, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&peak_mapped, &peak, now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static void *os_map(size_t size, size_t align)
{
    size_t ps = pf_os_page_size();
    if (align < ps)
        align = ps;
    size_t over = size + align - ps;
    if (over < size)
        return NULL;
    if (fault_now())
        return NULL;
    atomic_fetch_add_explicit(&n_mmap, 1, memory_order_relaxed);
    void *m = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t base = (uintptr_t)m;
    uintptr_t start = (base + align - 1) & ~(uintptr_t)(align - 1);
    /* Trim the over-mapping so only [start, start+size) stays mapped. */
    if (start > base) {
        atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
        munmap(m, start - base);
    }
    size_t tail = (base + over) - (start + size);
    if (tail) {
        atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
        munmap((void *)(start + size), tail);
    }
    account_map(size);
    track((void *)start, size, 0);
    return (void *)start;
}

void *pf_os_map(size_t size, size_t align)
{
    INFLIGHT(void *r = os_map(size, align));
    return r;
}

void pf_os_forget(void *p, size_t size)
{
    /* Left in the table, a mapping that stays would read as resident for
     * good: when the table cannot be had, it is unmapped after all. */
    if (!untrack(p, size, 0)) {
        pf_os_unmap(p, size);
        return;
    }
    atomic_fetch_sub_explicit(&mapped, size, memory_order_relaxed);
}

void pf_os_unmap_or_forget(void *p, size_t size, int forget)
{
    if (forget)
        pf_os_forget(p, size);
    else
        pf_os_unmap(p, size);
}

/* A munmap the kernel refused: a range in the middle of one of its
 * mappings (neighbours merge: large blocks and regions mapped side by side
 * are one) needs a split, which it refuses with ENOMEM while the process
 * holds vm.max_map_count mappings. The range stays mapped and counted, but
 * its pages go back (madvise splits nothing), or every block freed then
 * would hold its memory for good. */
static void unmap_refused(void *p, size_t size)
{
    atomic_fetch_add_explicit(&n_madvise, 1, memory_order_relaxed);
    (void)madvise(p, size, MADV_DONTNEED);
}

static void os_unmap(void *p, size_t size)
{
    atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
    if (munmap(p, size) == 0) {
        atomic_fetch_sub_explicit(&mapped, size, memory_order_relaxed);
        untrack(p, size, 0);
    } else {
        unmap_refused(p, size);
    }
}

void pf_os_unmap(void *p, size_t size)
{
    INFLIGHT(os_unmap(p, size));
}

/* Metadata mappings sit between two PROT_NONE guard pages: a user block
 * mapped next to one (large blocks and regions go where the kernel puts
 * them) cannot overflow into it, nor can metadata overflow into a block.
 * The guards cost address space only (no memory) and one mprotect. */
void *pf_os_map_meta(size_t size)
{
    return pf_os_map_meta_aligned(size, 0);
}

/* The metadata [at, at + size) of the PROT_NONE reservation [m, m + whole)
 * made read-write, counted and recorded; or the reservation given back and
 * NULL. */
static void *meta_open(char *m, size_t whole, char *at, size_t size)
{
    if (mprotect(at, size, PROT_READ | PROT_WRITE) != 0) {
        atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
        munmap(m, whole);
        return NULL;
    }
    account_map(size);
    atomic_fetch_add_explicit(&meta_mapped, size, memory_order_relaxed);
    track(at, size, 1);
    return at;
}

static void *os_map_meta_aligned(size_t size, size_t align)
{
    size_t ps = pf_os_page_size();
    size = (size + ps - 1) & ~(ps - 1);
    size_t extra = align > ps ? align - ps : 0; /* room to move the start to a boundary */
    size_t whole = size + 2 * ps + extra;
    if (whole < size || fault_now())
        return NULL;
    atomic_fetch_add_explicit(&n_mmap, 1, memory_order_relaxed);
    char *m = mmap(NULL, whole, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (extra) { /* keep one guard page on each side of the aligned start, unmap the rest */
        char *start = (char *)(((uintptr_t)m + ps + align - 1) & ~(uintptr_t)(align - 1));
        char *end = start + size + ps;
        if (start - ps > m) {
            atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
            munmap(m, (size_t)(start - ps - m));
        }
        if (end < m + whole) {
            atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
            munmap(end, (size_t)(m + whole - end));
        }
        m = start - ps;
        whole = size + 2 * ps;
    }
    return meta_open(m, whole, m + ps, size);
}

void *pf_os_map_meta_aligned(size_t size, size_t align)
{
    INFLIGHT(void *r = os_map_meta_aligned(size, align));
    return r;
}

static void os_unmap_meta(void *p, size_t size)
{
    size_t ps = pf_os_page_size();
    size = (size + ps - 1) & ~(ps - 1);
    atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
    if (munmap((char *)p - ps, size + 2 * ps) == 0) {
        atomic_fetch_sub_explicit(&mapped, size, memory_order_relaxed);
        atomic_fetch_sub_explicit(&meta_mapped, size, memory_order_relaxed);
        untrack(p, size, 1);
    } else {
        unmap_refused(p, size);
    }
}

void pf_os_unmap_meta(void *p, size_t size)
{
    INFLIGHT(os_unmap_meta(p, size));
}

/* Set when the kernel does not know MADV_POPULATE_WRITE (before Linux
 * 5.14, or a filter that says so): no more calls that cannot work. */
static atomic_int populate_unknown;

void pf_os_populate(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
    /* One page is left to fault in when it is first written: the call
     * costs more than the fault it saves (2.4 against 1.5 us on x86-64
     * under Linux 6.x, where no hypervisor shadows the page tables: see
     * docs/DESIGN.md), and 0.9 us for nothing where the page is resident
     * already (a page of states or metadata another family's carve
     * populated before). A failure (fault injection's too) leaves the
     * pages to be faulted in one by one. */
    if (size <= pf_os_page_size() || atomic_load_explicit(&populate_unknown, memory_order_relaxed) || fault_now())
        return;
    atomic_fetch_add_explicit(&n_madvise, 1, memory_order_relaxed);
    int e = errno;
    if (madvise(p, size, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
        atomic_store_explicit(&populate_unknown, 1, memory_order_relaxed);
    errno = e;
#else
    (void)p;
    (void)size;
#endif
}

int pf_os_decommit(void *p, size_t size)
{
    if (fault_now())
        return -1;
    atomic_fetch_add_explicit(&n_madvise, 1, memory_order_relaxed);
    return madvise(p, size, MADV_DONTNEED);
}

static void account_remap(void *p, size_t old_size, void *q, size_t new_size, int meta)
{
    /* Out and in again in one hold of the table: a reader never finds the
     * block in neither place. */
    int got = tab_lock();
    if (got == 1) {
        size_t missing = untrack_locked((uintptr_t)p, (uintptr_t)p + old_size);
        int ok = tab_put((uintptr_t)q, new_size, meta) == 0;
        tab_unlock();
        sub_floor(untracked_of(meta), missing);
        if (!ok)
            atomic_fetch_add_explicit(untracked_of(meta), new_size, memory_order_relaxed);
    } else if (got == -1) { /* a handler on the holder's thread: both changes queued */
        untrack(p, old_size, meta);
        track(q, new_size, meta);
    } else { /* held elsewhere for a second: what untrack and track would do, without two more waits */
        atomic_store_explicit(&tab_stale, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(untracked_of(meta), new_size, memory_order_relaxed);
    }
    if (new_size > old_size)
        account_map(new_size - old_size);
    else
        atomic_fetch_sub_explicit(&mapped, old_size - new_size, memory_order_relaxed);
}

/* Bytes one page-table page maps (2 MiB with 4 KiB pages). */
static size_t table_reach(void)
{
    size_t ps = pf_os_page_size();
    return ps * (ps / sizeof(uint64_t));
}

/* Moves [p, p + old_size) to a new place of new_size bytes at the same
 * offset within a page table's reach as p, or MAP_FAILED. The kernel moves
 * such a range's page tables whole; at any other offset it moves the
 * entries one by one into new tables, and on a host whose hypervisor
 * shadows the guest's page tables each moved page then costs about half a
 * page fault at its next touch (a 64 MiB block: 4.4 us a page against
 * 0.05). Where mremap alone would put the block is the kernel's choice,
 * which keeps no such offset. */
static void *move_in_step(void *p, size_t old_size, size_t new_size)
{
    size_t reach = table_reach();
    if (new_size > SIZE_MAX - reach)
        return MAP_FAILED;
    size_t room = new_size + reach;
    atomic_fetch_add_explicit(&n_mmap, 1, memory_order_relaxed);
    char *r = mmap(NULL, room, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return MAP_FAILED;
    size_t head = ((uintptr_t)p - (uintptr_t)r) & (reach - 1);
    char *to = r + head;
    size_t tail = room - head - new_size;
    atomic_fetch_add_explicit(&n_mremap, 1, memory_order_relaxed);
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    int saved = errno;
    if (q == MAP_FAILED) {
        atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
        munmap(r, room);
    } else {
        /* the room's ends the block did not take */
        atomic_fetch_add_explicit(&n_munmap, (head != 0) + (tail != 0), memory_order_relaxed);
        if (head)
            munmap(r, head);
        if (tail)
            munmap(to + new_size, tail);
    }
    errno = saved;
    return q;
}

static void *remap(void *p, size_t old_size, size_t new_size, int may_move, int meta)
{
    if (fault_now())
        return NULL;
    atomic_fetch_add_explicit(&n_mremap, 1, memory_order_relaxed);
    void *q = MAP_FAILED;
    if (may_move && new_size > old_size && old_size >= table_reach()) {
        /* In place if the room after it is free, else in step (see
         * move_in_step); a range too small to hold a whole page table's
         * reach has none to move whole. */
        q = mremap(p, old_size, new_size, 0);
        if (q == MAP_FAILED && errno == ENOMEM)
            q = move_in_step(p, old_size, new_size);
        if (q == MAP_FAILED)
            atomic_fetch_add_explicit(&n_mremap, 1, memory_order_relaxed);
    }
    if (q == MAP_FAILED)
        q = mremap(p, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
    if (q == MAP_FAILED)
        return NULL;
    account_remap(p, old_size, q, new_size, meta);
    return q;
}

void *pf_os_remap(void *p, size_t old_size, size_t new_size, int may_move)
{
    INFLIGHT(void *r = remap(p, old_size, new_size, may_move, 0));
    return r;
}

void *pf_os_remap_meta(void *p, size_t old_size, size_t new_size)
{
    /* Not mremap: the guard pages around a metadata mapping are mappings of
     * their own, so the inner part could only move away from them, and
     * pf_os_unmap_meta would then unmap a page on each side of the new
     * place, which is someone else's. A fresh guarded mapping and a copy. */
    void *q = pf_os_map_meta(new_size);
    if (!q)
        return NULL;
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    pf_os_unmap_meta(p, old_size);
    return q;
}

static void *os_remap_to(void *p, size_t old_size, size_t new_size, void *to)
{
    /* Not subject to fault injection: it undoes a move, back into the
     * range the block has just left. */
    /* Claim the target first: MREMAP_FIXED would replace whatever another
     * thread mapped there meanwhile; MAP_FIXED_NOREPLACE refuses to. */
    atomic_fetch_add_explicit(&n_mmap, 1, memory_order_relaxed);
    void *r = mmap(to, new_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    if (r != to) { /* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
        munmap(r, new_size);
        return NULL;
    }
    atomic_fetch_add_explicit(&n_mremap, 1, memory_order_relaxed);
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (q == MAP_FAILED) {
        munmap(to, new_size);
        return NULL;
    }
    account_remap(p, old_size, q, new_size, 0);
    return q;
}

void *pf_os_remap_to(void *p, size_t old_size, size_t new_size, void *to)
{
    INFLIGHT(void *r = os_remap_to(p, old_size, new_size, to));
    return r;
}

void *pf_os_reserve(size_t size)
{
    atomic_fetch_add_explicit(&n_mmap, 1, memory_order_relaxed);
    void *m = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

int pf_os_protect(void *p, size_t size, int access)
{
    return mprotect(p, size, access ? PROT_READ | PROT_WRITE : PROT_NONE);
}

uint64_t pf_os_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec;
}

uint64_t pf_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void pf_os_sleep_us(long us)
{
    struct timespec t = {us / 1000000L, us % 1000000L * 1000L};
    syscall(SYS_nanosleep, &t, NULL);
}

int pf_os_write_all(int fd, const void *buf, size_t len)
{
    const char *s = buf;
    uint64_t deadline = 0;
    while (len) {
        ssize_t n = write(fd, s, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            /* A non-blocking descriptor that is full (a FIFO whose reader
             * is slow or stopped): wait for room, but never for long. */
            uint64_t now = pf_os_now_ms();
            if (!deadline)
                deadline = now + PF_OS_WRITE_WAIT_MS;
            if (now >= deadline) {
                errno = ETIMEDOUT;
                return -1;
            }
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, (int)(deadline - now));
            continue;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

_Static_assert(sizeof(((struct pf_os_quiet *)0)->old) >= sizeof(sigset_t), "pf_os_quiet holds a sigset_t");

static void quiet_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGPIPE);
    sigaddset(set, SIGXFSZ);
}

static int quiet_pending(void)
{
    sigset_t pending;
    if (sigpending(&pending) != 0)
        return 0;
    return (sigismember(&pending, SIGPIPE) == 1 ? 1 : 0) | (sigismember(&pending, SIGXFSZ) == 1 ? 2 : 0);
}

void pf_os_quiet_begin(struct pf_os_quiet *q)
{
    sigset_t set;
    quiet_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, (sigset_t *)(void *)q->old);
    q->was_pending = quiet_pending();
}

void pf_os_quiet_end(struct pf_os_quiet *q, int err)
{
    int mine = err == EPIPE ? 1 : err == EFBIG ? 2 : 0;
    if (mine && !(q->was_pending & mine) && (quiet_pending() & mine)) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, mine == 1 ? SIGPIPE : SIGXFSZ);
        struct timespec zero = {0, 0};
        sigtimedwait(&set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, (sigset_t *)(void *)q->old, NULL);
}

int pf_os_write_quiet(int fd, const void *buf, size_t len)
{
    struct pf_os_quiet q;
    pf_os_quiet_begin(&q);
    int rc = pf_os_write_all(fd, buf, len);
    int e = errno;
    pf_os_quiet_end(&q, rc != 0 ? e : 0);
    errno = e;
    return rc;
}

long pf_os_read_file(const char *path, char **buf, size_t *cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t size = 64 * 1024, len = 0;
    char *b = pf_os_map(size, 0);
    while (b) {
        if (len == size) { /* full: twice the room, the text so far copied over */
            char *nb = pf_os_map(size * 2, 0);
            if (nb)
                for (size_t i = 0; i < len; i++)
                    nb[i] = b[i];
            pf_os_unmap(b, size);
            b = nb;
            size *= 2;
            continue;
        }
        ssize_t n = read(fd, b + len, size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0) {
                pf_os_unmap(b, size);
                b = NULL;
            }
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    if (!b)
        return -1;
    *buf = b;
    *cap = size;
    return (long)len;
}

long pf_os_read_into(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                len = (size_t)-1;
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    return (long)len;
}

int pf_os_each_number(const char *path, void (*fn)(long n, void *ctx), void *ctx)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
     * About 40 entries a call: the leak walk calls this from a signal
     * handler, perhaps on a thread's smallest stack. */
    _Alignas(8) char buf[1024];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (long at = 0; at < n;) {
            unsigned short reclen;
            memcpy(&reclen, buf + at + 16, sizeof(reclen));
            const char *name = buf + at + 19;
            long v = 0;
            int digits = 0;
            for (; *name >= '0' && *name <= '9' && digits < 18; name++, digits++)
                v = v * 10 + (*name - '0');
            if (digits && !*name)
                fn(v, ctx);
            at += reclen;
        }
    }
    close(fd);
    return 0;
}

long pf_os_tid(void)
{
    return syscall(SYS_gettid);
}

long pf_os_pid(void)
{
    return getpid();
}

int pf_os_thread_gone(long tid)
{
    int saved = errno;
    int gone = syscall(SYS_tgkill, (long)getpid(), tid, 0) != 0 && errno == ESRCH;
    errno = saved;
    return gone;
}

extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso)
    __attribute__((weak));

void pf_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    if (__register_atfork)
        __register_atfork(prepare, parent, child, NULL);
    else
        pthread_atfork(prepare, parent, child);
}

/* The read of pf_os_read_mem where a seccomp filter refuses
 * process_vm_readv: through the calling thread's /proc/.../mem (a thread's
 * own, which stays readable after the main thread has ended), opened for
 * the one read (nothing is left open for a fork or the program to meet).
 * The kernel stops at the first page it cannot read, as process_vm_readv
 * does. `refused` (the first call's answer) when this is refused too. */
static long read_proc_mem(void *dst, uintptr_t src, size_t len, long refused)
{
    int fd = open("/proc/thread-self/mem", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return refused;
    ssize_t got = pread(fd, dst, len, (off_t)src);
    long rc = got > 0 ? (long)got : got == 0 || errno == EIO || errno == EFAULT ? -EFAULT : refused;
    close(fd);
    return rc;
}

long pf_os_read_mem(long pid, void *dst, uintptr_t src, size_t len)
{
    size_t ps = pf_os_page_size();
    size_t most = PF_OS_READ_PAGES * ps - (src & (ps - 1));
    size_t total = len < most ? len : most;
    if (!total)
        return 0;
    int saved = errno;
    /* All of it as one piece first: the kernel pins a run of pages at a
     * time, where a piece per page costs a lookup each (200 MB in reads of
     * 128 KiB: 29 ms against 41). */
    struct iovec local = {dst, total}, whole = {(void *)src, total};
    long got = syscall(SYS_process_vm_readv, (pid_t)pid, &local, 1UL, &whole, 1UL, 0UL);
    long rc = got >= 0 ? got : -(long)errno;
    if (rc == -ENOSYS || rc == -EPERM) {
        rc = read_proc_mem(dst, src, total, rc);
    } else if (rc != (long)total) {
        /* Short, or refused at some page: again with one piece per page.
         * The kernel stops at the first piece it cannot read, so the count
         * says which page was missing, whatever a kernel does with a piece
         * it could read only in part. */
        struct iovec remote[PF_OS_READ_PAGES];
        unsigned long n = 0;
        for (uintptr_t a = src, end = src + total; a < end; n++) {
            size_t piece = ps - (a & (ps - 1));
            if (piece > end - a)
                piece = end - a;
            remote[n].iov_base = (void *)a;
            remote[n].iov_len = piece;
            a += piece;
        }
        got = syscall(SYS_process_vm_readv, (pid_t)pid, &local, 1UL, remote, n, 0UL);
        rc = got > 0 ? got : got == 0 ? -EFAULT : -(long)errno;
    }
    errno = saved;
    return rc;
}

int pf_os_secure(void)
{
    return getauxval(AT_SECURE) != 0;
}

/* Read by the resolver of an IFUNC of this module: the loader applies
 * IRELATIVE relocations while it relocates the module, before it runs any
 * module's constructors, so fd 2 is then still what exec left. The
 * resolver may run before the C library is relocated: a raw system call,
 * no stack protector. */
static struct stat start_fd2;
static int start_fd2_state = -1; /* -1 not read, 0 closed, 1 open */

static void start_probe_done(void) {}

#if defined(__has_attribute) && __has_attribute(no_stack_protector)
__attribute__((no_stack_protector))
#endif
/* Nor a sanitizer's hooks: its runtime is not set up yet either. */
__attribute__((no_sanitize("thread", "address", "undefined")))
static void (*start_probe_resolve(void))(void)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "0"((long)SYS_fstat), "D"(2L), "S"(&start_fd2) : "rcx", "r11", "memory");
    start_fd2_state = r == 0 ? 1 : r == -EBADF ? 0 : -1;
    return start_probe_done;
}

static void start_probe(void) __attribute__((ifunc("start_probe_resolve")));

int pf_os_start_stderr(struct stat *st)
{
    start_probe(); /* the call that makes the relocation (it does nothing) */
    if (start_fd2_state == 1)
        *st = start_fd2;
    return start_fd2_state;
}

int pf_os_maybe_start_stderr(int fd)
{
    struct stat was, now;
    int state = pf_os_start_stderr(&was);
    if (state < 0)
        return 1;
    return state == 1 && fstat(fd, &now) == 0 && now.st_dev == was.st_dev && now.st_ino == was.st_ino;
}

void pf_os_counts(struct pf_os_counts *out)
{
    out->mmap_calls = atomic_load_explicit(&n_mmap, memory_order_relaxed);
    out->munmap_calls = atomic_load_explicit(&n_munmap, memory_order_relaxed);
    out->madvise_calls = atomic_load_explicit(&n_madvise, memory_order_relaxed);
    out->mremap_calls = atomic_load_explicit(&n_mremap, memory_order_relaxed);
    out->mapped_bytes = atomic_load_explicit(&mapped, memory_order_relaxed);
    out->peak_mapped_bytes = atomic_load_explicit(&peak_mapped, memory_order_relaxed);
    out->metadata_bytes = atomic_load_explicit(&meta_mapped, memory_order_relaxed);
}

const void *pf_os_map_file(const char *path, size_t *size)
{
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return NULL;
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size <= (uint64_t)SIZE_MAX) {
        atomic_fetch_add_explicit(&n_mmap, 1, memory_order_relaxed);
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    close(fd);
    if (m == MAP_FAILED)
        return NULL;
    *size = (size_t)st.st_size;
    return m;
}

void pf_os_unmap_file(const void *p, size_t size)
{
    atomic_fetch_add_explicit(&n_munmap, 1, memory_order_relaxed);
    munmap((void *)(uintptr_t)p, size);
}

long pf_os_readlink(const char *path, char *buf, size_t cap)
{
    if (cap < 2)
        return -1;
    ssize_t n = readlink(path, buf, cap - 1);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return (long)n;
}

int pf_os_initial_thread(void)
{
    return syscall(SYS_gettid) == getpid();
}

/* pthread_self() of the initial thread, once noted: a fork child's thread
 * keeps its own (its descriptor is the forking thread's), while its id
 * becomes the child's process id. */
static _Atomic uintptr_t initial_self;

void pf_os_note_initial(void)
{
    if (pf_os_initial_thread())
        atomic_store_explicit(&initial_self, (uintptr_t)pthread_self(), memory_order_relaxed);
}

int pf_os_on_initial_stack(void)
{
    uintptr_t s = atomic_load_explicit(&initial_self, memory_order_relaxed);
    return s ? (uintptr_t)pthread_self() == s : pf_os_initial_thread();
}

unsigned pf_os_ncpus(void)
{
    /* The raw call: glibc's wrapper is the same, and the mask of up to 4096
     * CPUs lives on the stack. */
    uint64_t mask[64];
    long n = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (n <= 0)
        return 1;
    unsigned c = 0;
    /* Bits counted one by one: __builtin_popcountll is a call into libgcc_s
     * on x86-64 without POPCNT, a library the preload would load into
     * every process for this one count. */
    for (long i = 0; i < n / (long)sizeof mask[0]; i++)
        for (uint64_t w = mask[i]; w; w &= w - 1)
            c++;
    return c ? c : 1;
}

/* Not counted: the lock word's own traffic, not memory traffic. errno is
 * kept, since a lock may be taken on paths (free) that must not change it. */
static void futex_wait(atomic_int *word, int val, const struct timespec *t)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, t, NULL, 0);
    errno = saved;
}

void pf_os_futex_wait(atomic_int *word, int val)
{
    futex_wait(word, val, NULL);
}

void pf_os_futex_wait_ms(atomic_int *word, int val, long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    futex_wait(word, val, &t);
}

void pf_os_futex_wake(atomic_int *word, int n)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
    errno = saved;
}

void pf_os_die(const char *msg, size_t len)
{
    pf_os_write_all(2, msg, len);
    abort();
}

/* ---- other threads' registers ------------------------------------------------------------- */

/* What the helper task shares with the thread that starts it. */
struct regs_job {
    int (*unseen)(uint32_t i, long nr);
    const long *tids;
    uint32_t n;
    uint32_t got;
    uintptr_t *out;
    long parent;      /* the process that started it */
    atomic_int go;    /* 1: attach (its ptracer permission is set); -1: give up */
    atomic_int alive; /* the helper's tid until it has exited (set and cleared by the kernel) */
};

/* Shared futexes: the kernel wakes the word it clears at a task's exit
 * with a shared wake, which a private waiter would not see. */
static void futex_wait_shared(atomic_int *word, int val, long ns)
{
    struct timespec t = {ns / 1000000000L, ns % 1000000000L};
    syscall(SYS_futex, word, FUTEX_WAIT, val, &t, NULL, 0);
}

_Static_assert(sizeof(struct user_regs_struct) == PF_OS_REGS_WORDS * sizeof(uintptr_t), "os.h: PF_OS_REGS_WORDS");

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

#define HELPER_CLOSE_RANGE 436   /* close_range(2) */
#define HELPER_UNSHARE_FDS 2u    /* CLOSE_RANGE_UNSHARE */
#define HELPER_RESTARTNOHAND 514 /* the kernel's ERESTARTNOHAND */
#define HELPER_STOP_NS 50000000L       /* a stop's wait, then only for a thread that runs: */
#define HELPER_RUNNABLE_NS 1000000000L /* see regs_helper */

long pf_os_syscall_nr(const char *text, long len)
{
    if (len <= 0 || text[0] < '0' || text[0] > '9')
        return -1;
    long nr = 0;
    for (long i = 0; i < len && text[i] >= '0' && text[i] <= '9' && nr < 100000; i++)
        nr = nr * 10 + (text[i] - '0');
    return nr;
}

/* The system call thread `tid` is in now (the first field of its
 * /proc syscall file), -1 when it runs or cannot be told. Raw calls: no
 * cancellation point in the helper. */
static long syscall_of(long pid, long tid)
{
    char path[64], buf[32];
    char *p = path, *end = path + sizeof(path) - 1;
    const char *parts[] = {"/proc/", NULL, "/task/", NULL, "/syscall"};
    const long nums[] = {0, pid, 0, tid, 0};
    for (int i = 0; i < 5; i++) {
        if (parts[i]) {
            for (const char *c = parts[i]; *c && p < end; c++)
                *p++ = *c;
            continue;
        }
        char digits[24];
        int nd = 0;
        for (long v = nums[i]; nd == 0 || v; v /= 10)
            digits[nd++] = (char)('0' + v % 10);
        while (nd && p < end)
            *p++ = digits[--nd];
    }
    *p = 0;
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long len = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
    syscall(SYS_close, fd);
    return pf_os_syscall_nr(buf, len);
}

/* The helper: a task of its own (its own thread group, so it may trace
 * this process's threads) that shares the address space, and the thread
 * pointer of the thread that started it: it makes system calls through
 * syscall() only (no cancellation point; the errno it sets is that
 * thread's, which pf_os_thread_regs restores). It first gives up every
 * descriptor (the process's pipes must close when the process ends, not
 * when the helper does) and asks to die with the thread that started it,
 * then, within two seconds of the go, attaches to every thread without a
 * signal (PTRACE_SEIZE) and stops it (PTRACE_INTERRUPT), then reads each
 * as it has stopped and lets it go. A system call that the stop made fail
 * with EINTR is turned into one the kernel restarts (as it restarts every
 * call it can after a stop); a call that had done part of its work (a long
 * write) would return that part, which is why the caller lists only
 * threads in calls that cannot have (see roots.c). A thread that has not
 * stopped 50 ms after the stops were asked for is looked at (its /proc
 * syscall file): one that runs or waits for the CPU (a computation the
 * scheduler has not run since, on a busy machine; or one whose file says
 * no call) stops as soon as it runs, and is waited for, a look every
 * millisecond, until a second after the stops were asked; one in a call a
 * stop does not end (a vfork parent) is left as it is, and so is one not
 * stopped by then. Such a thread is let go when the helper exits. Threads
 * that all stop in time cost no look. */
static int regs_helper(void *arg)
{
    struct regs_job *j = arg;
    if (syscall(HELPER_CLOSE_RANGE, 0U, ~0U, HELPER_UNSHARE_FDS) != 0)
        return 0;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0L, 0L, 0L);
    if (getppid() != j->parent)
        return 0;
    for (long until = now_ns() + 2000000000L; atomic_load(&j->go) == 0 && now_ns() < until;)
        futex_wait_shared(&j->go, 0, 100000000L);
    if (atomic_load(&j->go) <= 0)
        return 0;
    /* Every thread stopped first, then each read as it has stopped: the
     * stops overlap instead of each costing a wait. */
    uint8_t seized[PF_OS_REGS_MAX];
    uint32_t n = j->n < PF_OS_REGS_MAX ? j->n : PF_OS_REGS_MAX;
    for (uint32_t i = 0; i < n; i++)
        seized[i] = syscall(SYS_ptrace, PTRACE_SEIZE, j->tids[i], 0L, 0L) == 0 &&
                    (!j->unseen || j->unseen(i, syscall_of(j->parent, j->tids[i]))) &&
                    syscall(SYS_ptrace, PTRACE_INTERRUPT, j->tids[i], 0L, 0L) == 0;
    long asked = now_ns(), until = asked + HELPER_STOP_NS, runnable_until = asked + HELPER_RUNNABLE_NS;
    for (uint32_t i = 0; i < n; i++) {
        long tid = j->tids[i];
        if (!seized[i])
            continue;
        int st = 0;
        long w = 0;
        for (int spin = 0; (w = syscall(SYS_wait4, tid, &st, __WALL | WNOHANG, NULL)) == 0; spin++) {
            long t = now_ns();
            if (t > until) {
                /* Late: waited for longer only while it waits for the CPU. */
                if (t > runnable_until || syscall_of(j->parent, tid) != -1)
                    break;
                pf_os_sleep_us(1000);
            } else if (spin < 64) {
                syscall(SYS_sched_yield);
            } else {
                pf_os_sleep_us(20);
            }
        }
        if (w != tid || !WIFSTOPPED(st))
            continue; /* gone, or not stopped in time */
        struct user_regs_struct *regs = (struct user_regs_struct *)(j->out + (size_t)i * PF_OS_REGS_WORDS);
        if (syscall(SYS_ptrace, PTRACE_GETREGS, tid, 0L, regs) == 0) {
            j->got++;
            if ((long)regs->orig_rax >= 0 && (long)regs->rax == -EINTR) {
                struct user_regs_struct again = *regs;
                again.rax = (unsigned long long)-HELPER_RESTARTNOHAND;
                syscall(SYS_ptrace, PTRACE_SETREGS, tid, 0L, &again);
            }
        }
        /* A signal that arrived meanwhile stopped it first: it goes on to
         * the thread as it would have. */
        long sig = (st >> 16) == 0 ? WSTOPSIG(st) : 0;
        syscall(SYS_ptrace, PTRACE_DETACH, tid, 0L, sig);
    }
    return 0;
}

/* A number at the start of a file, or -1. */
static long read_number(const char *path)
{
    char buf[32];
    long len = pf_os_read_into(path, buf, sizeof(buf) - 1);
    if (len <= 0 || buf[0] < '0' || buf[0] > '9')
        return -1;
    return buf[0] - '0';
}

/* Whether a seccomp filter (or strict mode) is on for the calling thread,
 * whose filters the helper inherits: their rules may kill the process on a
 * system call they do not expect. The thread's own status (a filter may be
 * on one thread only), read whole (it grows with the supplementary
 * groups): into a buffer on the stack, or one mapped for a longer file.
 * 1 (unreadable, or without the line, counts as on), 0, or -1 when a longer
 * file could not be read for want of memory. */
static int seccomp_on(void)
{
    char small[4096];
    char *buf = small;
    size_t cap = 0;
    long len = pf_os_read_into("/proc/thread-self/status", small, sizeof(small));
    if (len <= 0)
        return 1;
    if ((size_t)len >= sizeof(small)) {
        len = pf_os_read_file("/proc/thread-self/status", &buf, &cap);
        if (len <= 0)
            return -1;
    }
    int on = 1;
    for (long i = 0; i + 9 < len; i++)
        if ((i == 0 || buf[i - 1] == '\n') && memcmp(buf + i, "Seccomp:", 8) == 0) {
            long k = i + 8;
            while (k < len && (buf[k] == ' ' || buf[k] == '\t'))
                k++;
            on = k >= len || buf[k] != '0';
            break;
        }
    if (buf != small)
        pf_os_unmap(buf, cap);
    return on;
}

/* The thread's signal mask set to *set (*old: the one before, unless old
 * is NULL) by the system call itself, which, unlike the C library's
 * wrapper, blocks the library's own signals too. 0, or -1 when it could
 * not be set. */
static int mask_set(const uint64_t *set, uint64_t *old)
{
    return syscall(SYS_rt_sigprocmask, SIG_SETMASK, set, old, sizeof(*set)) == 0 ? 0 : -1;
}

/* The mask *old back, when mask_set changed it (blocked == 0): a mask that
 * could not be set is not "restored" from what was never read. */
static void unblock(int blocked, const uint64_t *old)
{
    if (blocked == 0)
        mask_set(old, NULL);
}

int pf_os_thread_regs(const long *tids, uint32_t n, uintptr_t *out, void *work, size_t work_bytes, int timeout_ms,
                      int set_ptracer, int (*unseen)(uint32_t i, long nr))
{
    if (!n)
        return 0;
    int saved = errno;
    long yama = read_number("/proc/sys/kernel/yama/ptrace_scope");
    int seccomp = seccomp_on();
    if (yama >= 2 || (yama == 1 && !set_ptracer) || prctl(PR_GET_DUMPABLE, 0L, 0L, 0L, 0L) != 1 || seccomp) {
        errno = saved;
        return seccomp < 0 ? -3 : -1;
    }
    struct regs_job *j = work;
    memset(j, 0, sizeof(*j));
    j->unseen = unseen;
    j->tids = tids;
    j->n = n;
    j->out = out;
    j->parent = getpid();
    char *top = (char *)(((uintptr_t)work + work_bytes) & ~(uintptr_t)15);
    /* No exit signal: the program's SIGCHLD handler and its wait() for
     * any child never see the helper (one that waits with __WALL may reap
     * it). Every signal blocked in it, glibc's own too (it inherits this
     * thread's mask): the program's handlers are its too, and a tracee's
     * stops send it SIGCHLD. */
    uint64_t all = ~(uint64_t)0, old = 0;
    int blocked = mask_set(&all, &old);
    int pid = clone(regs_helper, top,
                    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID, j,
                    &j->alive, NULL, &j->alive);
    unblock(blocked, &old);
    if (pid <= 0) { /* no memory, or the process's limit of tasks */
        errno = saved;
        return -3;
    }
    int go = yama != 1 || prctl(PR_SET_PTRACER, (unsigned long)pid, 0L, 0L, 0L) == 0 ? 1 : -1;
    atomic_store(&j->go, go);
    syscall(SYS_futex, &j->go, FUTEX_WAKE, 1, NULL, NULL, 0);
    int killed = 0;
    long until = now_ns() + (long)timeout_ms * 1000000L;
    for (int v; (v = atomic_load(&j->alive)) != 0;) {
        long left = until - now_ns();
        if (left <= 0) {
            if (killed)
                break;
            kill(pid, SIGKILL);
            killed = 1;
            until = now_ns() + 1000000000L;
            continue;
        }
        futex_wait_shared(&j->alive, v, left);
    }
    /* Reaped: with no exit signal it never is by itself. */
    int st;
    for (int i = 0; i < 1000 && syscall(SYS_wait4, pid, &st, __WALL | WNOHANG, NULL) == 0; i++)
        pf_os_sleep_us(100);
    if (yama == 1)
        prctl(PR_SET_PTRACER, 0L, 0L, 0L, 0L);
    errno = saved;
    if (atomic_load(&j->alive) != 0)
        return -2; /* still running on `work`: it must stay mapped */
    return go > 0 ? (int)j->got : -1;
}

/* ---- pfalloc's own stacks for reports ------------------------------------ */

/* A stack: PF_OS_OWN_STACK bytes read-write with PF_OS_OWN_GAP bytes of
 * PROT_NONE below (a frame larger than a page that skips the first guard
 * page, in code built without stack-clash probes, still faults) and a
 * guard page above. Counted as metadata, the gap not. */
static void *map_stack(void)
{
    size_t ps = pf_os_page_size(), size = PF_OS_OWN_STACK, whole = PF_OS_OWN_GAP + size + ps;
    if (fault_now())
        return NULL;
    atomic_fetch_add_explicit(&n_mmap, 1, memory_order_relaxed);
    char *m = mmap(NULL, whole, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    return meta_open(m, whole, m + PF_OS_OWN_GAP, size);
}

#if defined(__x86_64__)
/* fn(arg) with the stack pointer at top (16-byte aligned), back on the
 * caller's stack after. rbp keeps the caller's stack pointer, and the CFI
 * says so. Marked a signal frame: a debugger then follows the step from
 * pfalloc's stack to the caller's wherever the two lie (a normal frame
 * whose caller's stack is below its own looks like a corrupt stack to
 * gdb). */
__attribute__((naked, noinline)) static void call_on(void (*fn)(void *) __attribute__((unused)),
                                                    void *arg __attribute__((unused)),
                                                    void *top __attribute__((unused)))
{
    __asm__(".cfi_signal_frame\n\t"
            "push %rbp\n\t"
            ".cfi_adjust_cfa_offset 8\n\t"
            ".cfi_rel_offset %rbp, 0\n\t"
            "mov %rsp, %rbp\n\t"
            ".cfi_def_cfa_register %rbp\n\t"
            "mov %rdx, %rsp\n\t"
            "mov %rdi, %rax\n\t"
            "mov %rsi, %rdi\n\t"
            "call *%rax\n\t"
            "mov %rbp, %rsp\n\t"
            ".cfi_def_cfa_register %rsp\n\t"
            "pop %rbp\n\t"
            ".cfi_adjust_cfa_offset -8\n\t"
            ".cfi_restore %rbp\n\t"
            "ret\n\t");
}
#define HAVE_CALL_ON 1
#endif

/* A slot for the calling thread (owner me, id 0 until the caller gives
 * it its own), or NULL when all four are taken by threads that still
 * exist. A slot whose thread has ended (in a handler of the program's that
 * interrupted its report: pthread_exit, a cancellation) is taken over:
 * that owner never gives it back. Called with every signal blocked. */
static struct own_stack *own_take(uintptr_t me)
{
    for (int i = 0; i < OWN_STACKS; i++) {
        uintptr_t none = 0;
        if (!atomic_load_explicit(&own[i].owner, memory_order_relaxed) &&
            atomic_compare_exchange_strong_explicit(&own[i].owner, &none, me, memory_order_acquire,
                                                    memory_order_relaxed))
            return &own[i];
    }
    int saved = errno;
    long pid = getpid();
    struct own_stack *got = NULL;
    for (int i = 0; i < OWN_STACKS && !got; i++) {
        long tid = atomic_load_explicit(&own[i].tid, memory_order_acquire);
        /* Never one this thread is on: in a child forked without the fork
         * handlers (_Fork, a raw clone) its own id is no thread's there. */
        if (tid == own_tid && atomic_load_explicit(&own[i].owner, memory_order_relaxed) == me)
            continue;
        /* Taken over by its id, cleared first as a release would: of two
         * threads that found it gone, one clears it and the other's
         * exchange fails; a walk finds no id until the new owner sets its
         * own, after where it left its stack. */
        if (tid > 0 && syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH &&
            atomic_compare_exchange_strong_explicit(&own[i].tid, &tid, 0, memory_order_acquire,
                                                    memory_order_relaxed)) {
            atomic_store_explicit(&own[i].owner, me, memory_order_relaxed);
            got = &own[i];
        }
    }
    errno = saved;
    return got;
}

/* Every signal blocked (*old: the mask before), and back: taking and
 * giving back a slot is not interrupted by a handler of this thread's (a
 * report nested there, a fork, an exit or a cancellation) half done. Not
 * the signals of a fault, whose handler runs only when the code faults (a
 * blocked one would kill the process without it: a stack overflow, a
 * seccomp trap on a system call). 0, or -1 when the mask could not be set
 * (nothing to restore then). */
static int block_all(uint64_t *old)
{
    uint64_t all = ~(uint64_t)0;
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        all &= ~((uint64_t)1 << (faults[i] - 1));
    return mask_set(&all, old);
}

static void own_give_back(struct own_stack *o)
{
    atomic_store_explicit(&o->tid, 0, memory_order_relaxed);
    atomic_store_explicit(&o->owner, 0, memory_order_release);
}

PF_NOINLINE uintptr_t pf_os_frame_below(void)
{
    return (uintptr_t)__builtin_frame_address(0);
}

static int on_own_stack(void (*fn)(void *), void *arg, uintptr_t from)
{
#ifdef HAVE_CALL_ON
    uint64_t old = 0;
    int saved = errno;
    int blocked = block_all(&old);
    struct own_stack *o = own_take((uintptr_t)&own_me);
    uintptr_t base = 0;
    if (o) {
        base = atomic_load_explicit(&o->base, memory_order_acquire);
        if (!base) {
            INFLIGHT(base = (uintptr_t)map_stack());
            atomic_store_explicit(&o->base, base, memory_order_release);
        }
        if (base) {
            own_tid = pf_os_tid();
            atomic_store_explicit(&o->from, from, memory_order_release);
            atomic_store_explicit(&o->tid, own_tid, memory_order_release);
        } else { /* refused: the caller's stack this time */
            own_give_back(o);
        }
    }
    unblock(blocked, &old);
    errno = saved;
    if (base) {
        call_on(fn, arg, (void *)((base + PF_OS_OWN_STACK) & ~(uintptr_t)15));
        saved = errno;
        blocked = block_all(&old);
        own_give_back(o);
        unblock(blocked, &old);
        errno = saved;
        return 1;
    }
#else
    (void)from;
#endif
    fn(arg);
    return 0;
}

int pf_os_on_own_stack(void (*fn)(void *), void *arg, uintptr_t from)
{
    /* No report is a cancellation point. Its write(2) to a full pipe, its
     * reads of /proc and its waits are; a thread cancelled there left the
     * report buffer, its stack slot or the leak walk taken for good, and
     * every later report of the process was skipped, the exit report with
     * its leaks included. A cancellation asked for meanwhile takes effect
     * at the thread's next cancellation point after the report. */
    int cancel = PTHREAD_CANCEL_ENABLE;
    int disabled = pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel) == 0;
    int rc = on_own_stack(fn, arg, from);
    if (disabled)
        pthread_setcancelstate(cancel, NULL);
    return rc;
}

uintptr_t pf_os_own_stack_at(uintptr_t p, long tid, uintptr_t *top)
{
    for (int i = 0; i < OWN_STACKS; i++) {
        struct own_stack *o = &own[i];
        uintptr_t base = atomic_load_explicit(&o->base, memory_order_acquire);
        if (!base || p < base || p >= base + PF_OS_OWN_STACK)
            continue;
        *top = base + PF_OS_OWN_STACK;
        if (!tid) /* the caller's position: the stack is its own */
            return atomic_load_explicit(&o->owner, memory_order_relaxed) == (uintptr_t)&own_me
                       ? atomic_load_explicit(&o->from, memory_order_relaxed)
                       : 0;
        /* The same thread before and after reading where it left its stack:
         * one that gave the slot back and another that took it meanwhile
         * would lend the second one's position to the first. */
        if (atomic_load_explicit(&o->tid, memory_order_acquire) != tid)
            return 0;
        uintptr_t from = atomic_load_explicit(&o->from, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        return atomic_load_explicit(&o->tid, memory_order_relaxed) == tid ? from : 0;
    }
    return 0;
}

int pf_os_own_stacks_taken(uintptr_t (*out)[2], int max)
{
    int n = 0;
    for (int i = 0; i < OWN_STACKS && n < max; i++) {
        uintptr_t base = atomic_load_explicit(&own[i].base, memory_order_acquire);
        uintptr_t owner = atomic_load_explicit(&own[i].owner, memory_order_relaxed);
        if (base && owner && owner != (uintptr_t)&own_me) {
            out[n][0] = base;
            out[n][1] = base + PF_OS_OWN_STACK;
            n++;
        }
    }
    return n;
}
