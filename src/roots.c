/*
 * roots.c — where the reachability pass starts: ranges of memory that hold
 * the program's own pointers. The writable segments of every module (from
 * the loader, or from /proc/self/maps in a signal handler), the caller's TLS
 * blocks and thread descriptor, the caller's stack up to its top, and the
 * stacks of the other threads from the stack pointer the kernel shows for a
 * blocked one (or whole, for one that runs, the main thread's included),
 * their registers (see other_registers), and the start of every thread's
 * dynamic thread vector (see thread_vectors); and, apart, the dynamic TLS
 * blocks of exited threads, which are no roots (see exited_tls). Only async-signal-safe calls
 * (and dl_iterate_phdr outside a handler); all memory mapped here stays
 * mapped until pf_roots_release, so no hole opens in a root range.
 */
#include "roots.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "fmt.h"
#include "lock.h"
#include "pagemap.h"
#include "symtab.h"

/* One line of /proc/self/maps. */
struct map {
    uintptr_t a, b;  /* [a, b) */
    uint64_t inode;  /* of the file behind it */
    uint8_t r;       /* readable */
    uint8_t w;       /* writable */
    uint8_t x;       /* executable */
    uint8_t file;    /* a file's pages (private, writable: a module's data) */
    uint8_t anon;    /* no file behind it */
    uint8_t shm;     /* shared memory with no file of its own (anonymous, memfd, System V) */
    uint8_t dev;     /* a device's pages (a file under /dev that is no shared memory) */
    uint8_t shared;  /* MAP_SHARED ('s') */
    uint8_t guard;   /* an inaccessible mapping right below it: a thread stack's guard */
    uint8_t taken;   /* scanned as some thread's stack, or inaccessible: not to scan again */
    uint8_t thread;  /* a thread descriptor at its top: a thread's stack (see thread_vectors) */
};

static struct pf_roots *R; /* the one being gathered */

/* Bytes of /proc/self/maps text read at first (see read_maps). */
#define MAPS_ROOM ((size_t)64 << 10)

/* Bytes of a thread stack's top read at a time (see thread_vectors). */
#define PIECE ((size_t)8192)

static size_t whole_pages(size_t n)
{
    size_t ps = pf_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

void *pf_scratch_take(struct pf_scratch *sc, size_t *bytes, size_t want)
{
    *bytes = whole_pages(want);
    if (sc && sc->base && *bytes <= sc->bytes - sc->used) {
        void *p = sc->base + sc->used;
        sc->used += *bytes;
        return p;
    }
    void *p = pf_os_map(*bytes, 0);
    if (!p)
        *bytes = 0;
    return p;
}

void pf_scratch_give(struct pf_scratch *sc, void *p, size_t bytes, int forget)
{
    if (!p || !bytes)
        return;
    if (sc && sc->base && (char *)p >= sc->base && (char *)p < sc->base + sc->bytes)
        return;
    pf_os_unmap_or_forget(p, bytes, forget);
}

void pf_scratch_release(struct pf_scratch *sc, int forget)
{
    if (sc->base)
        pf_os_unmap_or_forget(sc->base, sc->bytes, forget);
    sc->base = NULL;
    sc->bytes = sc->used = 0;
}

static void *map_zeroed(size_t *bytes, size_t want)
{
    return pf_scratch_take(R->scratch, bytes, want);
}

/* What map_text's list takes for room bytes of text. */
static size_t maps_list_bytes(size_t room)
{
    return sizeof(struct map) * (room / 24 + 1);
}

size_t pf_roots_room(int only_extra)
{
    size_t n = whole_pages(sizeof(uintptr_t[2]) * PF_ROOTS_MAX);
    if (!only_extra) /* the text, its list, and held for up to 255 mappings */
        n += whole_pages(MAPS_ROOM) + whole_pages(maps_list_bytes(MAPS_ROOM)) +
             whole_pages(sizeof(uintptr_t) * 256 + PIECE);
    return n;
}

static void add_range(uintptr_t a, uintptr_t b)
{
    if (a < b && R->n < PF_ROOTS_MAX) {
        R->ranges[R->n][0] = a;
        R->ranges[R->n][1] = b;
        R->n++;
    } else if (a < b) {
        R->partial = PF_ROOTS_FULL;
    }
}

/* Pages of the program's own mappings (see program_mappings) and of a
 * module's .bss (see add_held) at most this far apart are scanned as one
 * range, the pages between read too. */
#define RUN_GAP_PAGES 16
/* Pages asked of mincore at a time. */
#define RESIDENT_WINDOW 4096
/* Root ranges kept free for the ranges after the program's mappings: past
 * this many, pieces up to 16 MiB apart are joined (the pages between are
 * read too: zero pages, about 5 ms for 16 MiB); beyond that the list fills
 * and the result is partial. */
#define RANGES_COARSE (PF_ROOTS_MAX - 1024)
#define COARSE_GAP_PAGES 4096

/* Which pages of a window hold data: not on the stack, as a report in a
 * signal handler may run on a small one (walks are one at a time, see
 * sites.c's `walking`). */
PF_BULK static unsigned char resident_vec[RESIDENT_WINDOW];

static uintptr_t run_a, run_b; /* the range being gathered: [run_a, run_b) */

static void run_flush(void)
{
    if (run_b > run_a)
        add_range(run_a, run_b);
    run_a = run_b = 0;
}

/* [page, end) into the range being gathered, when it lies at most
 * RUN_GAP_PAGES (COARSE_GAP_PAGES once the list is long) past its end;
 * otherwise that range is added and this one begins. */
static void run_add(uintptr_t page, uintptr_t end)
{
    uintptr_t gap = (R->n > RANGES_COARSE ? COARSE_GAP_PAGES : RUN_GAP_PAGES) * pf_os_page_size();
    if (run_b && page - run_b <= gap) {
        run_b = end;
    } else {
        run_flush();
        run_a = page;
        run_b = end;
    }
}

/* Anonymous memory of a module's, [a, b) from a page boundary: its .bss
 * past the last page of its file. Only the pages that hold data
 * (pf_os_pages_held: resident or swapped out; one never written holds
 * zeros), pieces up to RUN_GAP_PAGES apart as one range; a window the
 * kernel cannot tell of, whole. A static array the program barely uses (a
 * buffer of megabytes, a table sized for the worst case) would otherwise
 * be read whole, every page of it faulted in by the walk: 256 faults and
 * 1 MiB read for a 1 MiB array never touched. */
static void add_held(uintptr_t a, uintptr_t b)
{
    size_t ps = pf_os_page_size();
    for (uintptr_t w; a < b; a = w) {
        w = b - a < RESIDENT_WINDOW * ps ? b : a + RESIDENT_WINDOW * ps;
        int whole = pf_os_pages_held(&R->pages, a, w - a, resident_vec) != 0;
        for (uintptr_t page = a; page < w; page += ps)
            if (whole || resident_vec[(page - a) / ps])
                run_add(page, w - page < ps ? w : page + ps);
    }
    run_flush();
}

static uintptr_t hex(const char **s)
{
    uintptr_t v = 0;
    const char *p = *s;
    if (p[0] == '0' && p[1] == 'x')
        p += 2;
    for (;; p++) {
        unsigned d = (unsigned)*p;
        if (d >= '0' && d <= '9')
            d -= '0';
        else if ((d | 32) >= 'a' && (d | 32) <= 'f')
            d = (d | 32) - 'a' + 10;
        else
            break;
        v = v * 16 + d;
    }
    *s = p;
    return v;
}

/* Skips one field of a maps line and the blanks after it. */
static const char *skip_field(const char *p, const char *eol)
{
    while (p < eol && *p != ' ')
        p++;
    while (p < eol && *p == ' ')
        p++;
    return p;
}

/* The text buffer and the list, room bytes of text. */
static int map_text(size_t room)
{
    R->text = map_zeroed(&R->text_bytes, room);
    R->maps = map_zeroed(&R->maps_bytes, maps_list_bytes(room));
    return R->text && R->maps;
}

static void unmap_text(void)
{
    pf_scratch_give(R->scratch, R->text, R->text_bytes, 0);
    pf_scratch_give(R->scratch, R->maps, R->maps_bytes, 0);
    R->text = NULL;
    R->maps = NULL;
    R->text_bytes = R->maps_bytes = 0;
}

/* Whether [p, eol) starts with `prefix`. */
static int starts(const char *p, const char *eol, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(eol - p) >= n && memcmp(p, prefix, n) == 0;
}

/* The process's mappings into R->maps (sorted by address, as the kernel
 * lists them), read as /proc/thread-self/maps: /proc/self/maps is empty
 * once the main thread has ended with pthread_exit (as process_vm_readv of
 * the process id fails then: pf_reach_run reads by the caller's id).
 * The text is read into a buffer mapped before the read and kept until the
 * scan is over: the list then shows every mapping of ours as it will be
 * while roots are scanned (an anonymous mapping of ours may have merged
 * with a neighbour that holds roots; unmapping it later would leave a hole
 * in a root range). */
static int maps_unmapped; /* read_maps found no memory for the list */
static int maps_errno;    /* why /proc/self/maps could not be opened or read, or 0 */

static void read_maps(void)
{
    maps_unmapped = 0;
    maps_errno = 0;
    /* Room for most processes' lists (a line takes 50 to 150 bytes), so
     * the list is read once: the kernel looks up a path for each line,
     * which costs a short-lived process's exit report more than its walk. */
    size_t room = MAPS_ROOM;
    if (!map_text(room)) {
        unmap_text();
        maps_unmapped = 1;
        return;
    }
    long len = pf_os_read_into("/proc/thread-self/maps", R->text, room);
    if (len > 0 && (size_t)len >= room) {
        /* A longer list: its size first, then room for twice it. */
        unmap_text();
        char *buf;
        size_t cap;
        long full = pf_os_read_file("/proc/thread-self/maps", &buf, &cap);
        if (full < 0) {
            maps_errno = errno;
            return;
        }
        pf_os_unmap(buf, cap);
        room = (size_t)full * 2 + 64 * 1024;
        if (!map_text(room)) {
            unmap_text();
            maps_unmapped = 1;
            return;
        }
        len = pf_os_read_into("/proc/thread-self/maps", R->text, room);
    }
    if (len <= 0 || (size_t)len >= room) {
        if (len < 0) /* either read's: nothing ran since */
            maps_errno = errno;
        unmap_text(); /* unreadable, or grown past the room: no list */
        return;
    }
    char *buf = R->text;
    uint32_t lines = (uint32_t)(room / 24);
    int prev_noaccess = 0;
    uintptr_t prev_end = 0;
    /* start-end perms offset dev inode [path] */
    for (const char *p = buf, *end = buf + len; R->maps && p < end && R->nmaps <= lines;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        struct map *m = &R->maps[R->nmaps];
        m->a = hex(&p);
        if (p < eol && *p == '-')
            p++;
        m->b = hex(&p);
        while (p < eol && *p == ' ')
            p++;
        if (p + 4 <= eol && m->a < m->b) {
            int noaccess = p[0] == '-' && p[1] == '-';
            int shared = p[3] == 's';
            m->r = p[0] == 'r';
            m->w = p[0] == 'r' && p[1] == 'w';
            m->x = p[2] == 'x';
            p = skip_field(skip_field(skip_field(p, eol), eol), eol); /* perms, offset, dev */
            int inode0 = p < eol && *p == '0' && (p + 1 == eol || p[1] == ' ');
            for (const char *d = p; d < eol && *d >= '0' && *d <= '9'; d++)
                m->inode = m->inode * 10 + (uint64_t)(*d - '0');
            p = skip_field(p, eol);
            /* Shared memory: mmap(MAP_SHARED | MAP_ANONYMOUS) ("/dev/zero
             * (deleted)": python's mmap.mmap(-1, n) is one), memfd_create,
             * System V segments, POSIX shm_open (/dev/shm). */
            m->shm = shared && !inode0 &&
                     (starts(p, eol, "/dev/zero (deleted)") || starts(p, eol, "/memfd:") ||
                      starts(p, eol, "/SYSV") || starts(p, eol, "/dev/shm/"));
            m->anon = inode0 && (p >= eol || *p == '[');
            m->file = !inode0 && p < eol && *p == '/' && !m->shm;
            m->dev = m->file && starts(p, eol, "/dev/");
            m->shared = (uint8_t)shared;
            m->guard = prev_noaccess && prev_end == m->a;
            m->taken = noaccess; /* never scanned */
            prev_noaccess = noaccess;
            prev_end = m->b;
            R->nmaps++;
        }
        p = eol + 1;
    }
}

static const struct map *map_in(const struct pf_roots *rt, uintptr_t p)
{
    uint32_t lo = 0, hi = rt->nmaps;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (rt->maps[mid].b <= p)
            lo = mid + 1;
        else if (rt->maps[mid].a > p)
            hi = mid;
        else
            return &rt->maps[mid];
    }
    return NULL;
}

static struct map *map_of(uintptr_t p)
{
    return (struct map *)map_in(R, p);
}

uintptr_t pf_roots_file_data_end(const struct pf_roots *rt, uintptr_t p)
{
    const struct map *m = map_in(rt, p);
    return m && m->file && m->r && !m->x ? m->b : 0;
}

int pf_roots_file_code(const struct pf_roots *rt, uintptr_t p)
{
    const struct map *m = map_in(rt, p);
    return m && m->file && m->x;
}

/* Writable segments and the caller's TLS blocks of every module but
 * pfalloc's own (its data names only its metadata). */
static int each_module(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    int self = 0;
    if (info->dlpi_name && info->dlpi_name[0])
        for (int i = 0; i < info->dlpi_phnum; i++) {
            const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
            uintptr_t a = info->dlpi_addr + ph->p_vaddr;
            if (ph->p_type == PT_LOAD && (uintptr_t)&R >= a && (uintptr_t)&R < a + ph->p_memsz)
                self = 1;
        }
    if (self)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
            /* The pages of the file whole (the module's data, as loaded
             * and relocated), the anonymous rest (.bss) by the pages that
             * hold data. */
            size_t ps = pf_os_page_size();
            uintptr_t end = a + ph->p_memsz, file_end = (a + ph->p_filesz + ps - 1) & ~(uintptr_t)(ps - 1);
            if (file_end < end) {
                add_range(a, file_end);
                add_held(file_end, end);
            } else {
                add_range(a, end);
            }
        } else if (ph->p_type == PT_TLS && info->dlpi_tls_data)
            add_range((uintptr_t)info->dlpi_tls_data, (uintptr_t)info->dlpi_tls_data + ph->p_memsz);
    }
    return 0;
}

/* /proc/self/task/<tid>/syscall starts with the number of the system call
 * a blocked thread is in (into *nr; -1 when it runs or is in none, -2 when
 * the file cannot be read: the thread is gone) and ends with its stack
 * pointer and program counter ("running" otherwise). */
static uintptr_t thread_sp(long tid, long *nr)
{
    char path[64];
    struct pf_fmt f;
    pf_fmt_init(&f, path, sizeof(path), -1);
    pf_fmt_str(&f, "/proc/self/task/");
    pf_fmt_i64(&f, tid);
    pf_fmt_str(&f, "/syscall");
    pf_fmt_cstr(&f);
    char buf[512];
    long len = pf_os_read_into(path, buf, sizeof(buf));
    *nr = -2;
    if (len <= 0 || (size_t)len >= sizeof(buf))
        return 0;
    *nr = pf_os_syscall_nr(buf, len);
    uintptr_t tok[2] = {0, 0};
    int ntok = 0;
    for (const char *p = buf, *end = buf + len; p < end;) {
        while (p < end && (*p == ' ' || *p == '\n'))
            p++;
        if (p >= end)
            break;
        if (p[0] == '0' && p + 1 < end && p[1] == 'x') {
            tok[0] = tok[1];
            tok[1] = hex(&p);
            ntok++;
        }
        while (p < end && *p != ' ' && *p != '\n')
            p++;
    }
    return ntok >= 2 ? tok[0] : 0;
}

static long self_tid;

/* Threads whose registers are read (see other_registers); others' are not. */
#define REGS_MAX PF_OS_REGS_MAX

/* The gather's pf_roots_gather `regs`. */
static int regs_mode;

/* The list of other threads' ids, and room for their registers, mapped at
 * the first one: [registers | ids | runs | the helper's stack]. runs[i]
 * (see settle_runners): 0, thread i is stopped only in a call stop_unseen
 * accepts; 1, it ran at the last look and was never seen in another call,
 * and may be stopped running too; 2, the same but last seen in a call
 * stop_unseen accepts, where alone it is stopped. */
static long *tids;
static uint8_t *runs;
static uint32_t ntids;

/* Registers that could have been read and were not, for want of memory or
 * of a task for the helper: what only one of them held would look lost. */
#define NOTE_NO_REGS "partial (no memory to read other threads' registers)"

static void note_tid(long tid, uint8_t running)
{
    if (!R->regs) {
        size_t bytes = REGS_MAX * (PF_OS_REGS_WORDS + 1) * sizeof(uintptr_t) + REGS_MAX + PF_OS_REGS_WORK;
        R->regs = pf_scratch_take(NULL, &R->regs_bytes, bytes); /* see pf_roots_release */
        if (!R->regs) {
            R->partial = NOTE_NO_REGS;
            return;
        }
        tids = (long *)(R->regs + REGS_MAX * PF_OS_REGS_WORDS);
        runs = (uint8_t *)(tids + REGS_MAX);
        ntids = 0;
    }
    if (ntids < REGS_MAX) {
        runs[ntids] = running;
        tids[ntids++] = tid;
    }
}

/* The registers of the other threads: a pointer a thread holds only in a
 * register while it is blocked (a callee-saved one, across a system call
 * the C library's wrapper makes without saving it) is on no stack. Read
 * with ptrace by a helper task (pf_os_thread_regs); where that cannot be,
 * they are not seen. The list of registers is a root range. `ending`: the
 * process is about to end (may name the helper its tracer under Yama).
 * The helper may wait up to a second for a thread that waits for the CPU
 * (a computation on a busy machine) and needs the CPU itself, at the
 * process's priority, to finish: it is killed only after REGS_TIMEOUT_MS. */
#define REGS_TIMEOUT_MS 3000

static int stop_unseen(long nr);

/* The helper's question for thread i in call nr (see runs): running, only
 * one that ran at the last look (one last seen waiting is stopped in its
 * call, as any other). */
static int may_stop(uint32_t i, long nr)
{
    return stop_unseen(nr) || (nr == -1 && runs[i] == 1);
}

static void other_registers(int ending)
{
    if (!R->regs || !ntids)
        return;
    int got = pf_os_thread_regs(tids, ntids, R->regs, runs + REGS_MAX, PF_OS_REGS_WORK, REGS_TIMEOUT_MS, ending,
                                may_stop);
    if (got > 0)
        add_range((uintptr_t)R->regs, (uintptr_t)(R->regs + (size_t)ntids * PF_OS_REGS_WORDS));
    else if (got == -3)
        R->partial = NOTE_NO_REGS;
    R->regs_busy = got == -2;
}

/* Whether a thread found in system call `nr` (x86-64 numbers; -1: it
 * runs) may be stopped to read its registers, unseen by the program: the
 * calls that wait without doing part of their work first (a stop in the
 * middle of a long write or send, or of recv with MSG_WAITALL, makes it
 * return the part done; a connect restarted says EALREADY). Those that a
 * stop makes fail with EINTR (epoll_wait, a socket with a timeout) are
 * restarted by the helper. Other threads are left alone, their registers
 * not read: those in other calls, and running ones (one could enter any
 * call before its stop; its whole stack is scanned) except at the
 * process's end (see settle_runners). The helper asks again just before it
 * stops a thread (pf_os_thread_regs). */
static int stop_unseen(long nr)
{
    switch (nr) {
    case 0: case 19:              /* read, readv */
    case 7: case 23: case 270: case 271: /* poll, select, pselect6, ppoll */
    case 232: case 281: case 441: /* epoll_wait, epoll_pwait, epoll_pwait2 */
    case 34: case 130:            /* pause, rt_sigsuspend */
    case 35: case 230:            /* nanosleep, clock_nanosleep */
    case 43: case 288:            /* accept, accept4 */
    case 61: case 247:            /* wait4, waitid */
    case 65: case 220:            /* semop, semtimedop */
    case 70: case 243:            /* msgrcv, mq_timedreceive */
    case 73:                      /* flock */
    case 128:                     /* rt_sigtimedwait */
    case 202: case 449:           /* futex, futex_waitv */
    case 208: case 333:           /* io_getevents, io_pgetevents */
        return 1;
    default:
        return 0;
    }
}

/* A thread's stack position sp (tid's, 0 for the caller), on the thread's
 * own stack: a thread in a report runs it on pfalloc's
 * (pf_os_on_own_stack), where a handler of the program's that interrupted
 * it may have run in turn, and a report nested in that on another of
 * pfalloc's stacks. What lies above sp on pfalloc's stack is a root range
 * (the program's handler's frames); then the thread goes on where it left
 * the stack below. 0 when that is not known (the thread left pfalloc's
 * stack meanwhile, and another may be on it): the thread's stack is then
 * scanned whole with every other thread's, and pfalloc's stacks that
 * threads are on with them. */
static uintptr_t from_own_stack(uintptr_t sp, long tid)
{
    for (int depth = 0; sp && depth <= PF_OS_OWN_STACKS; depth++) { /* a slot each, then the stack */
        uintptr_t top = 0, left = pf_os_own_stack_at(sp, tid, &top);
        if (!top)
            return sp;
        if (!left)
            return 0;
        add_range(sp, top);
        sp = left;
    }
    return 0;
}

/* At the process's end, threads that were running when listed: a pointer
 * one holds only in a register is on no stack, and the report would call
 * its block lost. A thread is stopped where a stop cannot be seen: in a
 * call stop_unseen accepts, or running, where the stop finds it between
 * instructions of its own, or in a call it has just entered, which it then
 * restarts or finishes before it stops. The risk is a call that does part
 * of its work and would wait for the rest (a long write to a pipe): a stop
 * makes it return the part. So each runner is looked at again, every
 * 0.1 to 2 ms for up to SETTLE_MS: one seen in a call stop_unseen does not
 * accept (a writer between its waits) is not stopped running; the looks
 * end early when none runs (a thread on its way into a call it waits in).
 * A thread still running at the last look, and never seen in such a call
 * (a computation), is stopped running: it stops when it next has the CPU,
 * which the helper waits for (see other_registers). */
#define SETTLE_MS 20

static void settle_runners(void)
{
    uint32_t running = 0;
    for (uint32_t i = 0; i < ntids; i++)
        running += runs[i] == 1;
    uint64_t start = pf_os_now_ms(), spent;
    for (long us = 100; running && (spent = pf_os_now_ms() - start) < SETTLE_MS; us = us < 2000 ? us * 2 : 2000) {
        long left = (long)(SETTLE_MS - spent) * 1000;
        pf_os_sleep_us(us < left ? us : left); /* the last sleep ends at the budget's end */
        running = 0;
        for (uint32_t i = 0; i < ntids; i++) {
            if (!runs[i])
                continue;
            long nr;
            thread_sp(tids[i], &nr);
            runs[i] = nr == -1 ? 1 : stop_unseen(nr) ? 2 : 0;
            running += runs[i] == 1;
        }
    }
}

static void each_thread(long tid, void *ctx)
{
    (void)ctx;
    if (tid == self_tid)
        return;
    R->threads++;
    long nr;
    uintptr_t sp = thread_sp(tid, &nr);
    if (regs_mode && stop_unseen(nr))
        note_tid(tid, 0);
    else if (regs_mode == 2 && nr == -1)
        note_tid(tid, 1);
    if (sp)
        sp = from_own_stack(sp, tid);
    struct map *m = sp ? map_of(sp) : NULL;
    if (m && m->w) {
        /* From its stack pointer to the top of its stack mapping, which for
         * the C library's threads also holds the thread's descriptor and
         * static TLS. */
        add_range(sp, m->b);
        m->taken = 1;
        R->threads_sp++;
    }
}

/* Without the loader: a module's data is a writable private mapping of its
 * file, and its .bss the anonymous mapping right after the last of them.
 * pfalloc's own (the mappings around its own data) are left out. */
static void modules_from_maps(void)
{
    /* pfalloc's own data: the file mapping that holds `R`, or the one right
     * below the .bss that does; none when pfalloc is linked into the
     * program (same file as the program's headers). */
    struct map *self = map_of((uintptr_t)&R), *self_file = NULL;
    if (self && self->file)
        self_file = self;
    else if (self && self > R->maps && self[-1].file && self[-1].b == self->a)
        self_file = self - 1;
    struct map *exe = map_of((uintptr_t)getauxval(AT_PHDR));
    if (!self_file || (exe && exe->inode == self_file->inode))
        self = self_file = NULL;
    for (uint32_t i = 0; i < R->nmaps; i++) {
        struct map *m = &R->maps[i];
        /* (right after a module's data: one taken just before) */
        int bss = m->anon && m->w && i && R->maps[i - 1].file && R->maps[i - 1].w && R->maps[i - 1].taken &&
                  R->maps[i - 1].b == m->a;
        if (!m->w || (!m->file && !bss) || m->taken)
            continue;
        /* A file no module was loaded from (a database's map, a table
         * shared through a file) is the program's own mapping: its pages
         * in memory only, as program_mappings reads them. Read whole, a
         * sparse map of gigabytes had every hole read into memory. */
        struct dl_find_object fo;
        if (m->file && _dl_find_object((void *)m->a, &fo) != 0)
            continue;
        m->taken = 1; /* a module's, or pfalloc's own: not the program's mappings */
        if (m == self || m == self_file)
            continue;
        if (self_file && bss && &R->maps[i - 1] == self_file)
            continue;
        if (self_file && m->file && m->inode == self_file->inode)
            continue;
        if (bss)
            add_held(m->a, m->b);
        else
            add_range(m->a, m->b);
    }
}

/* The C library's thread descriptor begins with its TCB header: a pointer
 * to itself, the thread's DTV (pointing one 16-byte entry past the start of
 * the block the loader allocated for it, the entry that holds its length),
 * and the pointer to itself again. A DTV is the C library's for as long as
 * the descriptor lives, and a descriptor outlives its thread: an exited
 * thread's stack, descriptor at its top, is kept for the next thread to
 * reuse, and nothing scanned points to it. Without this its DTV (one per
 * thread the program ever ran at once) would be listed as lost though the
 * program freed everything. */
#define DTV_HEAD 16

static uint32_t held_cap; /* entries R->held has room for */

/* Where a thread descriptor keeps its thread's id: the kernel clears it
 * when the thread exits (CLONE_CHILD_CLEARTID, what pthread_join waits
 * on), and pthread_join sets it to -1; the C library takes a stack whose
 * descriptor's id is 0 or less for a free one. From its table for debuggers
 * (_thread_db_pthread_tid: bits, count, offset; 720 on x86-64 since glibc
 * 2.x). -1: not known (a C library without it), and no thread's TLS is
 * told exited. */
static long tid_offset = -2;

static long descriptor_tid_offset(void)
{
    if (tid_offset == -2) {
        const uint32_t *d = pf_sym_dynamic_addr((const void *)(uintptr_t)pthread_self, "_thread_db_pthread_tid");
        tid_offset = d && d[0] == 32 && d[1] == 1 && d[2] >= 3 * sizeof(uintptr_t) && d[2] < 4096 ? (long)d[2] : -1;
    }
    return tid_offset;
}

/* Entries of an exited thread's DTV looked at, at most. */
#define DTV_LOOK 4096
/* Blocks noted, at most (the rest stay roots, as any runtime object). */
#define DEAD_TLS_MAX 4096

/* The dynamic TLS blocks of the thread whose descriptor is at `desc`, its
 * DTV at `dtv` (the TCB's pointer), when the thread has exited (its id 0
 * or less): noted in R->dead_tls. A module's entry is 16 bytes at dtv +
 * 16 m: the block as the module sees it, then the loader's allocation
 * (NULL for static TLS); the vector's length is in the entry before
 * dtv[0]. The C library keeps an exited thread's stack, with its
 * descriptor, DTV and these blocks, for the next thread, which frees the
 * blocks: until then they are the C library's (its objects, reached
 * through the DTV), but nothing the program can run reads them, and
 * scanned as roots they kept whatever the thread left in a plugin's
 * thread-local variables still reachable (valgrind's --run-libc-freeres
 * frees them, and a thread-local variable of the program's own, in the
 * thread's static TLS on the same cached stack, is no root either). */
static void exited_tls(uintptr_t desc, uintptr_t dtv, long pid)
{
    long off = descriptor_tid_offset();
    int32_t tid = 1;
    uintptr_t len = 0;
    if (off < 0 || pf_os_read_mem(pid, &tid, desc + (uintptr_t)off, sizeof tid) != (long)sizeof tid || tid > 0 ||
        pf_os_read_mem(pid, &len, dtv - DTV_HEAD, sizeof len) != (long)sizeof len)
        return;
    if (len > DTV_LOOK)
        len = DTV_LOOK;
    uintptr_t e[64]; /* 32 entries */
    for (uintptr_t m = 1; m <= len; m += 32) {
        size_t k = len - m + 1 < 32 ? len - m + 1 : 32;
        if (pf_os_read_mem(pid, e, dtv + 16 * m, 16 * k) != (long)(16 * k))
            return;
        for (size_t j = 0; j < k; j++) {
            if (!e[2 * j + 1])
                continue;
            if (!R->dead_tls) {
                /* Only here: most processes have no such block. */
                R->dead_tls = map_zeroed(&R->dead_tls_bytes, sizeof(*R->dead_tls) * DEAD_TLS_MAX);
                if (!R->dead_tls)
                    return; /* they stay roots: nothing is called lost for it */
            }
            if (R->ndead_tls >= DEAD_TLS_MAX)
                return;
            R->dead_tls[R->ndead_tls][0] = dtv + 16 * (m + j) + sizeof(uintptr_t);
            R->dead_tls[R->ndead_tls][1] = e[2 * j + 1];
            R->ndead_tls++;
        }
    }
}

/* Words [w, w + n) read from address `at` (16-byte aligned): the DTVs of
 * the descriptors among them, and how many there were; with `pid` (not
 * 0), the dynamic TLS blocks of those whose thread exited (exited_tls). */
static int descriptors_in(const uintptr_t *w, size_t n, uintptr_t at, long pid)
{
    int found = 0;
    for (size_t i = 0; i + 2 < n && R->nheld < held_cap; i += 2) {
        uintptr_t self = at + i * sizeof(uintptr_t);
        if (w[i] == self && w[i + 2] == self && w[i + 1] > DTV_HEAD && (w[i + 1] & 15) == 0) {
            R->held[R->nheld++] = w[i + 1] - DTV_HEAD;
            if (pid)
                exited_tls(self, w[i + 1], pid);
            found++;
        }
    }
    return found;
}

/* The DTVs of the caller's descriptor and of every descriptor at the top of
 * a mapping that looks like a thread stack (writable, anonymous, above a
 * guard, not pfalloc's), whether its thread runs or has exited: their
 * starts go in a list that is a root range, so a DTV is reached through its
 * start, as the C library reaches it. A mapping with a descriptor is marked
 * as a thread's stack. glibc puts the descriptor (about 2.3 KiB) at the top
 * of a stack, rounded down to the static TLS's alignment, which the
 * caller's descriptor shares: the window looked at is 4 KiB more than the
 * alignment that address shows (at least 8 KiB, at most 1 MiB), read a
 * piece at a time with pf_os_read_mem (a stack may be unmapped meanwhile).
 * A mapping whose top cannot be read at all counts as a stack. The
 * dynamic TLS blocks of descriptors whose thread has exited are noted
 * (exited_tls). */
static void thread_vectors(void)
{
    const uintptr_t *self = (const uintptr_t *)pthread_self();
    uintptr_t low = (uintptr_t)self & -(uintptr_t)self;
    size_t window = low && low < ((size_t)1 << 20) ? low + 4096 : (size_t)1 << 20;
    if (window < PIECE)
        window = PIECE;
    R->held = map_zeroed(&R->held_bytes, sizeof(uintptr_t) * (R->nmaps + 1) + PIECE);
    if (!R->held) {
        /* Neither the vectors nor which mappings are stacks are known. */
        R->partial = "partial (no memory to find the threads' stacks and vectors)";
        return;
    }
    uintptr_t *buf = (uintptr_t *)((char *)R->held + R->held_bytes - PIECE);
    held_cap = (uint32_t)((R->held_bytes - PIECE) / sizeof(uintptr_t));
    descriptors_in(self, 3, (uintptr_t)self, 0);
    long pid = pf_os_tid(); /* see pf_reach_run */
    /* A process that never had a second thread (nor had its parent before
     * the fork that made it: a fork's child keeps the C library's flag
     * that says so) has no other descriptor: its mappings are not read for
     * one, a few pieces each (40 us or so of a short process's walk). */
    for (uint32_t i = 0; i < R->nmaps && pf_lock_threaded(); i++) {
        struct map *x = &R->maps[i];
        /* pfalloc's own metadata sits above a guard page too, and holds no
         * descriptor: not read. */
        if (!x->w || !x->anon || !x->guard || pf_pagemap_get((void *)x->a) || pf_os_meta_is(x->a, x->b - x->a))
            continue;
        uintptr_t lo = x->b - x->a > window ? x->b - window : x->a;
        for (uintptr_t top = x->b; top > lo && !x->thread;) {
            size_t len = top - lo < PIECE ? top - lo : PIECE;
            if (pf_os_read_mem(pid, buf, top - len, len) != (long)len) {
                x->thread = top == x->b; /* unreadable: it may be a stack, as it looks */
                break;
            }
            x->thread = descriptors_in(buf, len / sizeof(uintptr_t), top - len, pid) > 0;
            top -= len;
        }
    }
    add_range((uintptr_t)R->held, (uintptr_t)(R->held + R->nheld));
}

extern void *__libc_stack_end;

/* Address space of the program's mappings looked at, at most (mincore
 * and a look at each page: about 0.1 s for 64 GiB). A program that maps
 * more (reserving terabytes it barely touches) gets a partial result. */
#define MAPPED_LOOK_MAX ((uintptr_t)64 << 30)
/* Address space of writable file mappings looked at, at most. A file
 * mapped bigger than what is left of it (a database's map, often sparse
 * and of terabytes, or gigabytes in the page cache: about 0.3 s a GiB to
 * scan) is no root, as no file mapping was before they were scanned: its
 * pages hold the file's data, and it does not make the rest partial. */
#define FILE_LOOK_MAX ((uintptr_t)1 << 30)


/* pfalloc's own ranges within one window of a mapping, at most this many
 * (a window with more is left out, and the result is partial). */
#define OURS_MAX 512
PF_BULK static uintptr_t ours_buf[OURS_MAX][2];

/* Memory the program mapped itself — anonymous, shared memory with no
 * file of its own, or a file mapped privately, and writable: an
 * interpreter's arenas and frame stacks (python's; its mmap.mmap(-1, n) is
 * shared), a JIT's tables, a custom allocator's pools, a dump file mapped
 * privately and relocated in place (emacs's). Objects only it holds were
 * listed as definitely lost where valgrind, which scans every mapping,
 * sees them reachable. Only pages that hold data (resident or swapped
 * out; a page never touched holds nothing: pf_os_pages_held); of a file
 * mapped privately, only the pages the program wrote (its own copies,
 * pf_os_pages_written): the rest are the file's, and reading them would
 * bring a file of gigabytes into memory at the exit. Not a file mapped
 * shared (a database's pages, which the program shares with the file and
 * other processes, not where it keeps its heap's addresses; reading them
 * cost a second and the file's size in memory for 2 GiB), nor a device's
 * pages (a file under /dev: reading them may act on the device). Nor the
 * pages of a mapping that is one of these: pfalloc's own (its heap, metadata and the pass's lists, from
 * its table of mappings, asked a window at a time; where that table is
 * incomplete, the window is left out and the result is partial),
 * a module's (its .bss is a root already, and pfalloc's own data is none),
 * a stack (scanned from its stack pointer, or an exited thread's, kept for
 * reuse, whose words are stale), or taken already. */
static void program_mappings(void)
{
    size_t ps = pf_os_page_size();
    unsigned char *vec = resident_vec;
    uintptr_t looked = 0;
    /* A file's pages are read only through the kernel: read in place, a
     * page past the end of a file truncated since it was mapped faults
     * (SIGBUS). Where the kernel refuses every read (pf_os_read_mem), the
     * walk would read in place, so such mappings are left out. */
    int kernel_reads = -1;
    uintptr_t file_looked = 0;
    for (uint32_t i = 0; i < R->nmaps; i++) {
        struct map *x = &R->maps[i];
        if (!x->w || !(x->anon || x->shm || (x->file && !x->dev && !x->shared)) || x->taken || x->thread)
            continue;
        if (x->file) {
            if (x->b - x->a > FILE_LOOK_MAX - file_looked)
                continue;
            file_looked += x->b - x->a;
            if (kernel_reads < 0) {
                uintptr_t word = 0, probe = (uintptr_t)&looked;
                kernel_reads = pf_os_read_mem(pf_os_tid(), &word, probe, sizeof word) == (long)sizeof word;
            }
            if (!kernel_reads) {
                R->partial = "partial (the kernel refuses reads of memory: files the program mapped were not scanned)";
                continue;
            }
        }
        uintptr_t a = x->a;
        /* A module's .bss and what merged with it: from the module's end. */
        struct dl_find_object fo;
        if (_dl_find_object((void *)a, &fo) == 0 && (uintptr_t)fo.dlfo_map_end > a)
            a = ((uintptr_t)fo.dlfo_map_end + ps - 1) & ~(ps - 1);
        for (uintptr_t w; a < x->b; a = w) {
            w = x->b - a < RESIDENT_WINDOW * ps ? x->b : a + RESIDENT_WINDOW * ps;
            /* Anonymous mappings side by side merge into one, pfalloc's
             * and the program's alike: the window's pieces that are
             * pfalloc's, by address (a window holds few: pfalloc's data
             * mappings are 64 KiB or more, and side by side they are one). */
            uintptr_t(*ours)[2] = ours_buf;
            int nours = pf_os_ours_in(a, w, ours, OURS_MAX);
            if (nours < 0) {
                /* pfalloc's pages cannot be told from the program's here:
                 * what only the program's hold is not lost, it is unknown. */
                R->partial = "partial (pfalloc's own mappings could not be told from the program's: not all "
                             "of the program's were scanned)";
                run_flush();
                continue;
            }
            for (int o = 1; o < nours; o++)
                for (int q = o; q > 0 && ours[q][0] < ours[q - 1][0]; q--) {
                    uintptr_t t0 = ours[q][0], t1 = ours[q][1];
                    ours[q][0] = ours[q - 1][0];
                    ours[q][1] = ours[q - 1][1];
                    ours[q - 1][0] = t0;
                    ours[q - 1][1] = t1;
                }
            /* Only the program's part counts against the budget. */
            uintptr_t theirs = w - a;
            for (int o = 0; o < nours; o++)
                theirs = theirs > ours[o][1] - ours[o][0] ? theirs - (ours[o][1] - ours[o][0]) : 0;
            if (theirs > MAPPED_LOOK_MAX - looked) {
                R->partial = "partial (the program maps more than 64 GiB itself: not all of it was scanned)";
                run_flush();
                return;
            }
            looked += theirs;
            /* The whole window pfalloc's: passed over in one step. */
            if (nours == 1 && ours[0][0] == a && ours[0][1] == w) {
                run_flush();
                continue;
            }
            int unread = x->file ? pf_os_pages_written(&R->pages, a, w - a, vec)
                                 : pf_os_pages_held(&R->pages, a, w - a, vec);
            if (unread != 0) {
                if (x->file)
                    R->partial = "partial (/proc/self/pagemap could not be read: files the program mapped were not "
                                 "scanned)";
                run_flush();
                continue;
            }
            int next = 0; /* the first of ours that does not end before the page */
            for (size_t k = 0; k < (w - a) / ps; k++) {
                uintptr_t page = a + k * ps;
                while (next < nours && ours[next][1] <= page)
                    next++;
                if (next < nours && ours[next][0] < page + ps) {
                    run_flush();
                    continue;
                }
                if (vec[k])
                    run_add(page, page + ps);
            }
        }
        run_flush();
    }
}

int pf_roots_gather(struct pf_roots *rt, const uintptr_t (*extra)[2], size_t nextra, int only_extra,
                    int in_signal, int regs, uintptr_t stack_at, struct pf_scratch *sc)
{
    memset(rt, 0, sizeof(*rt));
    R = rt;
    rt->scratch = sc;
    rt->ranges = map_zeroed(&rt->ranges_bytes, sizeof(*rt->ranges) * PF_ROOTS_MAX);
    if (!rt->ranges)
        return -1;
    for (size_t i = 0; i < nextra; i++)
        add_range(extra[i][0], extra[i][1]);
    if (only_extra)
        return 0;
    read_maps();
    if (in_signal) {
        if (R->maps)
            modules_from_maps();
    } else {
        dl_iterate_phdr(each_module, NULL);
    }
    uintptr_t here = stack_at ? from_own_stack(stack_at, 0) : (uintptr_t)&here;
    rt->stack_from = stack_at ? here : 0;
    struct map *m = R->maps && here ? map_of(here) : NULL;
    if (m) {
        rt->stack_top = m->b;
        m->taken = 1;
    } else if (here && pf_os_on_initial_stack()) {
        /* Not the only thread of a child that another thread forked: its
         * id is the process's, its stack another mapping far below. */
        rt->stack_top = (uintptr_t)__libc_stack_end;
    }
    /* The thread descriptor (keys' values, the DTV of dynamic TLS): it sits
     * at the thread pointer, beside the static TLS, in the main thread's
     * case in memory of the loader's that no module's segment covers. */
    uintptr_t tp = (uintptr_t)pthread_self();
    struct map *t = R->maps ? map_of(tp) : NULL;
    if (t && !t->taken) {
        uintptr_t a = tp - 4096 > t->a && tp > 4096 ? tp - 4096 : t->a;
        uintptr_t b = tp + 4096 < t->b ? tp + 4096 : t->b;
        add_range(a, b);
    }
    if (!R->maps) {
        /* Other threads' stacks and the program's own mappings cannot be
         * found: what only they hold is not lost, it is unknown. */
#define NOT_SCANNED "other threads' stacks and the program's own mappings were not scanned)"
        if (maps_unmapped)
            R->partial = "partial (no memory to list the process's mappings: " NOT_SCANNED;
        else if (maps_errno == EMFILE || maps_errno == ENFILE)
            R->partial = "partial (/proc/self/maps could not be read: no file descriptor was free; " NOT_SCANNED;
        else if (maps_errno == ENOENT)
            R->partial =
                "partial (/proc/self/maps could not be read: /proc/self is missing (is /proc mounted?); " NOT_SCANNED;
        else
            R->partial = "partial (/proc/self/maps could not be read: " NOT_SCANNED;
#undef NOT_SCANNED
        return 0;
    }
    thread_vectors();
    self_tid = pf_os_tid();
    ntids = 0;
    regs_mode = regs;
    rt->solo = pf_os_each_number("/proc/self/task", each_thread, NULL) == 0 && rt->threads == 0;
    if (regs == 2)
        settle_runners();
    if (regs)
        other_registers(regs == 2);
    /* A thread that was running has no stack pointer to read: every thread
     * stack (a descriptor at its top; pfalloc's metadata mappings sit above
     * a guard too, and hold every large block's address) not taken yet is
     * scanned whole. */
    if (rt->threads > rt->threads_sp) {
        for (uint32_t i = 0; i < R->nmaps; i++) {
            struct map *x = &R->maps[i];
            if (x->thread && !x->taken)
                add_range(x->a, x->b);
        }
        /* The main thread's stack has neither: no guard mapping below it,
         * its descriptor in the loader's memory. Found by the address the C
         * library keeps near its top; not taken yet means the caller is
         * another thread and the main thread was running (or gone). */
        struct map *s = map_of((uintptr_t)__libc_stack_end);
        if (s && s->w && !s->taken) {
            add_range(s->a, s->b);
            s->taken = 1;
        }
        /* A running thread may be in a report, on one of pfalloc's stacks,
         * in a handler of the program's that interrupted it there. */
        uintptr_t own[PF_OS_OWN_STACKS][2];
        for (int i = 0, n = pf_os_own_stacks_taken(own, PF_OS_OWN_STACKS); i < n; i++)
            add_range(own[i][0], own[i][1]);
    }
    program_mappings();
    return 0;
}

void pf_roots_release(struct pf_roots *rt, int forget)
{
    pf_os_pages_done(&rt->pages);
    struct pf_scratch *sc = rt->scratch;
    pf_scratch_give(sc, rt->ranges, rt->ranges_bytes, forget);
    pf_scratch_give(sc, rt->maps, rt->maps_bytes, forget);
    pf_scratch_give(sc, rt->text, rt->text_bytes, forget);
    pf_scratch_give(sc, rt->held, rt->held_bytes, forget);
    pf_scratch_give(sc, rt->dead_tls, rt->dead_tls_bytes, forget);
    /* A helper that outlived its kill still runs on it: kept for good (its
     * own mapping: too big for the room). */
    pf_scratch_give(NULL, rt->regs, rt->regs_bytes, forget || rt->regs_busy);
    rt->regs = NULL;
    rt->regs_busy = 0;
    rt->regs_bytes = 0;
    rt->ranges = NULL;
    rt->held = NULL;
    rt->nheld = 0;
    rt->dead_tls = NULL;
    rt->ndead_tls = 0;
    rt->dead_tls_bytes = 0;
    rt->maps = NULL;
    rt->text = NULL;
    rt->ranges_bytes = rt->maps_bytes = rt->text_bytes = rt->held_bytes = 0;
    rt->n = rt->nmaps = 0;
}
