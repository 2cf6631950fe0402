/*
 * os.h — the only seam to the kernel: mappings, raw writes, the page size and
 * secure-execution flag. Everything here is async-signal-safe except where
 * noted, allocates nothing, and counts its syscalls for the process totals.
 */
#ifndef PF_OS_H
#define PF_OS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PF_HIDDEN __attribute__((visibility("hidden")))
#define PF_LIKELY(x) __builtin_expect(!!(x), 1)
#define PF_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PF_NOINLINE __attribute__((noinline))
#define PF_INLINE static inline __attribute__((always_inline))
/* What a fork's child runs of pfalloc's (its fork handlers): cold code,
 * which the linker puts together at the start of the text, by the PLT. A
 * child faults in each page of text it runs (fork copies no page table
 * entries of a file's mapping), so it takes one fault for them instead of
 * one for each handler's page. */
#define PF_FORK_CHILD __attribute__((cold))
/* A table of zeros of a few KiB or more: in x86-64's large-data section,
 * which the linker puts past .bss, so that the small variables (nearly all
 * of which every process touches) share a few pages instead of lying
 * between the tables. A process pays a fault for each page it touches
 * first, often two (a read, then a write). */
#if defined(__x86_64__)
#define PF_BULK __attribute__((section(".lbss")))
#else
#define PF_BULK
#endif
/* A field written by one thread at a time (under a lock) and read by
 * others without it: relaxed atomic stores and loads, so no read sees half
 * a value. */
#define PF_RELAXED_ADD(field, v) \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)
#define PF_RELAXED_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Syscall counters: atomics, only touched on slow paths. */
struct pf_os_counts {
    uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls;
    uint64_t mapped_bytes;      /* all bytes currently mapped by pfalloc */
    uint64_t peak_mapped_bytes; /* largest mapped_bytes seen */
    uint64_t metadata_bytes;    /* mapped for pfalloc's own bookkeeping */
};

PF_HIDDEN size_t pf_os_page_size(void);
/* Fresh zeroed read-write anonymous memory, or NULL. `align` a power of two,
 * at most 1 GiB; alignments above the page size cost an over-map and trim. */
PF_HIDDEN void *pf_os_map(size_t size, size_t align);
/* Whole seconds of a coarse monotonic clock (cheap: no syscall). */
PF_HIDDEN uint64_t pf_os_seconds(void);
/* Milliseconds of the monotonic clock. */
PF_HIDDEN uint64_t pf_os_now_ms(void);
/* Sleeps for about `us` microseconds (the raw call: not a cancellation
 * point; a signal cuts it short). */
PF_HIDDEN void pf_os_sleep_us(long us);
PF_HIDDEN void pf_os_unmap(void *p, size_t size);
/* Takes a pf_os_map mapping off pfalloc's accounts and leaves it mapped, for
 * good: for what the exit report maps, which the process's end unmaps. */
PF_HIDDEN void pf_os_forget(void *p, size_t size);
/* pf_os_forget when forget, else pf_os_unmap. */
PF_HIDDEN void pf_os_unmap_or_forget(void *p, size_t size, int forget);
/* Metadata mappings: counted apart in metadata_bytes as well, each between
 * two PROT_NONE guard pages so no linear overflow from a neighbouring
 * mapping reaches it. Released only with pf_os_unmap_meta. */
PF_HIDDEN void *pf_os_map_meta(size_t size);
/* The same, starting on a multiple of align (a power of two; 0: a page). */
PF_HIDDEN void *pf_os_map_meta_aligned(size_t size, size_t align);
PF_HIDDEN void pf_os_unmap_meta(void *p, size_t size);
/* Makes the pages of [p, p + size) (page-aligned, in a pf_os_map mapping)
 * resident and writable in one system call, where the kernel can: for
 * memory about to be written, one call instead of a fault per page. A
 * single page is left to fault (the call costs more). A kernel without
 * MADV_POPULATE_WRITE (EINVAL) is not asked again; errno is kept. */
PF_HIDDEN void pf_os_populate(void *p, size_t size);
/* Gives the pages back; their contents read as zero afterwards. 0, or -1
 * when the kernel refused (the pages then keep their contents). */
PF_HIDDEN int pf_os_decommit(void *p, size_t size);
/* mremap without moving the start unless `may_move`; NULL on failure. A
 * range that holds a page table's reach (2 MiB) and has to move keeps its
 * offset within that reach, so the kernel moves its page tables whole. */
PF_HIDDEN void *pf_os_remap(void *p, size_t old_size, size_t new_size, int may_move);
/* A metadata mapping grown to new_size (> old_size), moved if need be. */
PF_HIDDEN void *pf_os_remap_meta(void *p, size_t old_size, size_t new_size);
/* Moves [p, p + old_size) to exactly `to` with new_size bytes; NULL when
 * the range at `to` is not free or the move fails. */
PF_HIDDEN void *pf_os_remap_to(void *p, size_t old_size, size_t new_size, void *to);
/* Address space that faults when touched (never counted as mapped), or NULL. */
PF_HIDDEN void *pf_os_reserve(size_t size);
/* Page-aligned range made inaccessible (access 0) or read-write (1); 0 or -1. */
PF_HIDDEN int pf_os_protect(void *p, size_t size, int access);
/* write(2) until done or a real error; retries EINTR. 0 or -1 (errno kept from write).
 * A non-blocking fd that stays full is waited on (poll) for at most
 * PF_OS_WRITE_WAIT_MS in all, then the call fails with ETIMEDOUT. */
#define PF_OS_WRITE_WAIT_MS 1000
PF_HIDDEN int pf_os_write_all(int fd, const void *buf, size_t len);
/* pfalloc's writes never raise a signal: SIGPIPE (a pipe whose reader has
 * gone) and SIGXFSZ (a file past RLIMIT_FSIZE) are blocked between
 * pf_os_quiet_begin and pf_os_quiet_end, and the one a write of pfalloc's
 * raised in between (err: that write's errno, EPIPE or EFBIG) is taken
 * back; one that was pending before (the program's own) stays pending. */
struct pf_os_quiet {
    uint64_t old[16]; /* the thread's mask before: a sigset_t (os.h leaves signal.h out) */
    int was_pending;  /* bit 0: SIGPIPE was pending before, bit 1: SIGXFSZ */
};
PF_HIDDEN void pf_os_quiet_begin(struct pf_os_quiet *q);
PF_HIDDEN void pf_os_quiet_end(struct pf_os_quiet *q, int err);
/* pf_os_write_all inside pf_os_quiet_begin/end: for pfalloc's own lines on
 * stderr (a warning at start-up meets a pipe whose reader has gone as
 * easily as a report does). errno is that of the write. */
PF_HIDDEN int pf_os_write_quiet(int fd, const void *buf, size_t len);
/* Reads the whole of a file that has no size up front (/proc) into a
 * mapping of its own: *buf, *cap bytes, which the caller gives back with
 * pf_os_unmap. Returns the bytes read, or -1 (nothing to give back). */
PF_HIDDEN long pf_os_read_file(const char *path, char **buf, size_t *cap);
/* Reads up to cap bytes of the file at `path` into buf. Returns the bytes
 * read, or -1. No mapping is made or removed. */
PF_HIDDEN long pf_os_read_into(const char *path, char *buf, size_t cap);
/* Calls fn for every entry of directory `path` named by a decimal number
 * (/proc/self/task). 0, or -1 when it cannot be read. */
PF_HIDDEN int pf_os_each_number(const char *path, void (*fn)(long n, void *ctx), void *ctx);
/* The calling thread's kernel id. */
PF_HIDDEN long pf_os_tid(void);
/* The process's id (not cached: a fork child has its own). */
PF_HIDDEN long pf_os_pid(void);
/* 1 when no thread of this process has id tid any more (errno kept). */
PF_HIDDEN int pf_os_thread_gone(long tid);
/* pthread_atfork, but handlers that stay registered to the process's end.
 * The C library drops a shared object's fork handlers when it starts that
 * object's destructors (__cxa_finalize), which for pfalloc is before its
 * exit report: a fork from another thread while the report holds locks
 * then gave the child those locks held, and its first malloc waited for
 * good. glibc's __register_atfork with no object keeps them; elsewhere
 * pthread_atfork. pfalloc is never unloaded. */
PF_HIDDEN void pf_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));
/* Copies len bytes of this process's memory at src into dst without ever
 * faulting (process_vm_readv on its own pid `pid`: the range as one piece,
 * and again a piece per page when that comes back short).
 * Returns the bytes copied up to the first page that cannot be read
 * (unmapped or inaccessible), or -EFAULT when that is the first. Where a
 * seccomp filter refuses process_vm_readv (ENOSYS, EPERM), the calling
 * thread's /proc/thread-self/mem is read instead (which reads a page the
 * program made inaccessible, too); -errno of the first refusal when that
 * cannot be opened or read either. At most PF_OS_READ_PAGES pages are
 * read (len is cut to that). errno is kept. */
#define PF_OS_READ_PAGES 64
PF_HIDDEN long pf_os_read_mem(long pid, void *dst, uintptr_t src, size_t len);
/* Nonzero when the process runs under secure execution (setuid, capabilities). */
PF_HIDDEN int pf_os_secure(void);
/* Descriptor 2 as exec left it, read before any constructor of any module
 * runs (a library's constructor may open a file that takes the number of a
 * stderr the process was started without): 1 and *st when it was open, 0
 * when it was closed, -1 when that moment was missed (then nothing tells). */
struct stat;
PF_HIDDEN int pf_os_start_stderr(struct stat *st);
/* 1 unless descriptor `fd` is known not to be the stderr the process was
 * started with (by pf_os_start_stderr's device and inode). */
PF_HIDDEN int pf_os_maybe_start_stderr(int fd);
PF_HIDDEN void pf_os_counts(struct pf_os_counts *out);
/* Whether a seccomp filter is on for the calling thread (PR_GET_SECCOMP):
 * then a system call outside the calls every program makes may kill the
 * process (systemd's @system-service set, which most hardened services
 * run under, leaves out mincore). errno is kept. */
PF_HIDDEN int pf_os_filtered(void);
/* Bytes of pfalloc's read-write mappings that are resident now (mincore
 * over each recorded mapping, or /proc/self/pagemap under a seccomp
 * filter; no lock, async-signal-safe), and the part of them holding
 * metadata. Ranges the table could not record count whole, and so do,
 * under a filter, pages whose pagemap entries cannot be read. */
PF_HIDDEN void pf_os_resident(uint64_t *all, uint64_t *meta);
/* Whether [p, p + size) is exactly one of pfalloc's metadata mappings (as
 * recorded for pf_os_resident; no lock, async-signal-safe). */
PF_HIDDEN int pf_os_meta_is(uintptr_t p, size_t size);
/* mincore(2): which pages of [a, a + len) are resident, one byte each
 * into vec. 0, or -1 (ENOMEM: part of it is not mapped). errno is kept. */
PF_HIDDEN int pf_os_mincore(uintptr_t a, size_t len, unsigned char *vec);
/* Which pages of [a, a + len) may hold data, one byte each into vec: 1
 * for a page that is resident or swapped out, 0 for one that reads as
 * zeros (never written, or given back). mincore first; only where some
 * page is not resident and the system has swap space is /proc/self/pagemap
 * asked (where it cannot be read, such pages count as held). Under a
 * seccomp filter every page is asked of pagemap, and no mincore is made
 * (a page not mapped reads as not held then). pg keeps what
 * was learnt: all zeros at first; pf_os_pages_done closes it and zeroes it
 * again. 0, or -1 (part of the range is not mapped). Async-signal-safe;
 * errno is kept. */
struct pf_os_pages {
    int swap;     /* 0: not asked yet; 1: the system has no swap space; 2: it has */
    int fd;       /* /proc/self/pagemap + 1; 0: not opened yet; -1: cannot be */
    int filtered; /* 0: not asked yet; 1: no seccomp filter; 2: one is on (no mincore) */
};
PF_HIDDEN int pf_os_pages_held(struct pf_os_pages *pg, uintptr_t a, size_t len, unsigned char *vec);
PF_HIDDEN void pf_os_pages_done(struct pf_os_pages *pg);
/* Which pages of [a, a + len), in a private mapping of a file, the process
 * wrote (its own copies, present or swapped out; the file's own pages are
 * not), one byte each into vec, from /proc/thread-self/pagemap through pg's
 * descriptor (as pf_os_pages_held's). 0, or -1 when pagemap cannot be
 * read. Async-signal-safe; errno is kept. */
PF_HIDDEN int pf_os_pages_written(struct pf_os_pages *pg, uintptr_t a, size_t len, unsigned char *vec);
/* pfalloc's own read-write mappings that overlap [a, b), clipped to it,
 * into out[0..max) (as recorded for pf_os_resident; no lock,
 * async-signal-safe). How many, or -1 when more than max do, or when some
 * of pfalloc's mappings are not in the table (it was full or busy): then
 * any range may be pfalloc's. */
PF_HIDDEN int pf_os_ours_in(uintptr_t a, uintptr_t b, uintptr_t (*out)[2], int max);
/* In a fork child: forgets a table writer that was in another thread, and
 * closes the pagemap descriptor of a walk that was under way in one. */
PF_HIDDEN void pf_os_fork_child(void);
/* In a fork child, every time (a process of one thread too): the report
 * stacks of other threads are freed, those the forking thread is on stay
 * its own. */
PF_HIDDEN void pf_os_fork_stacks(void);
/* A whole file mapped read-only (open, fstat, mmap, close: async-signal-safe),
 * for reading symbol tables; *size is its length. NULL when it cannot be
 * opened, is not a regular file, or is empty. Stays mapped: callers keep
 * pointers into it. Not counted in mapped_bytes (file pages, not memory). */
PF_HIDDEN const void *pf_os_map_file(const char *path, size_t *size);
/* Unmaps a file mapped by pf_os_map_file. */
PF_HIDDEN void pf_os_unmap_file(const void *p, size_t size);
/* readlink(2) with a terminating NUL; the length, or -1. */
PF_HIDDEN long pf_os_readlink(const char *path, char *buf, size_t cap);
/* Nonzero in the process's initial thread (its thread id is the pid). */
PF_HIDDEN int pf_os_initial_thread(void);
/* Notes the initial thread (called from start-up, in it). */
PF_HIDDEN void pf_os_note_initial(void);
/* Whether the calling thread runs on the stack the C library's
 * __libc_stack_end lies in: the initial thread, but not the only thread of
 * a child forked by another thread (whose id is its process's too). */
PF_HIDDEN int pf_os_on_initial_stack(void);
/* CPUs the process may run on (its affinity mask; 1 when it cannot be
 * read). One system call, no allocation. */
PF_HIDDEN unsigned pf_os_ncpus(void);
/* Sleeps while *word == val (returns at once when it differs, on a signal,
 * or spuriously); wakes up to n sleepers. Process-private futexes. */
PF_HIDDEN void pf_os_futex_wait(atomic_int *word, int val);
/* The same for at most ms milliseconds. */
PF_HIDDEN void pf_os_futex_wait_ms(atomic_int *word, int val, long ms);
PF_HIDDEN void pf_os_futex_wake(atomic_int *word, int n);
/* The general registers of other threads of this process (tids[0..n)),
 * into out[i * PF_OS_REGS_WORDS ...], which stays zero for a thread whose
 * could not be read. A helper task that shares the address space reads
 * them with ptrace, stopping each thread only for that moment; it runs on
 * `work` (its stack and shared state, at least PF_OS_REGS_WORK bytes) and
 * is killed after timeout_ms. Under Yama's ptrace_scope 1 the helper must
 * be named the process's tracer (PR_SET_PTRACER, reset to none after):
 * only with set_ptracer, for a process that is ending, whose own setting
 * no longer matters. Returns how many threads were read, or -1 where
 * ptrace cannot be used (a seccomp filter on the calling thread, Yama's
 * ptrace_scope 2 or 3, or 1 without set_ptracer, a process that is not
 * dumpable), -3 when it could not be tried for want of resources (the
 * helper could not be started, or the thread's status not read), or -2
 * when the helper outlived even its kill:
 * `work` must then stay mapped (the kernel clears a word in it when the
 * helper ends). A thread is stopped only if `unseen` (when not NULL)
 * accepts it, by its index in tids and the system call it is in just then
 * (-1: it runs). errno is kept. */
#define PF_OS_REGS_WORDS 27
#define PF_OS_REGS_MAX 1024 /* threads read at most */
#define PF_OS_REGS_WORK ((size_t)32 * 1024)
PF_HIDDEN int pf_os_thread_regs(const long *tids, uint32_t n, uintptr_t *out, void *work, size_t work_bytes,
                                int timeout_ms, int set_ptracer, int (*unseen)(uint32_t i, long nr));
/* The system call number that starts the text of a /proc .../syscall
 * file (len bytes of it), or -1 ("running", or nothing readable). */
PF_HIDDEN long pf_os_syscall_nr(const char *text, long len);
/* Runs fn(arg) on a stack of pfalloc's own (PF_OS_OWN_STACK bytes, above
 * a PF_OS_OWN_GAP gap that faults, mapped at first use and kept), so that
 * a report needs no more of the program's stack than its signal frame: a
 * thread's stack may be as small as the C library allows. `from` is where
 * the caller leaves its own stack (see pf_os_own_stack_at). There are a
 * few such stacks, one per report under way; when all are taken or none
 * can be mapped, fn runs on the caller's stack. The thread's cancellation
 * is disabled meanwhile: no report is a cancellation point. Returns 1 when
 * it ran on pfalloc's. Async-signal-safe. */
#define PF_OS_OWN_STACKS 4
#define PF_OS_OWN_STACK ((size_t)256 * 1024)
#define PF_OS_OWN_GAP ((size_t)1024 * 1024)
PF_HIDDEN int pf_os_on_own_stack(void (*fn)(void *), void *arg, uintptr_t from);
/* A frame just below the caller's: a call, so the caller's prologue (with
 * every register __builtin_unwind_init makes it save) comes before it. */
PF_HIDDEN PF_NOINLINE uintptr_t pf_os_frame_below(void);
/* Where the program's part of this thread's stack begins, taken first
 * thing in pfalloc's outermost frame of a report (a signal handler, the
 * exit's destructor, a printer the program called): every callee-saved
 * register, which may hold the program's pointers, is spilled into that
 * frame by __builtin_unwind_init, and the leak walk scans the stack from
 * just below it up, not the deeper frames of pfalloc's own (see
 * pf_reach_opts.stack_from). The `from` of pf_os_on_own_stack. */
#define PF_OS_PROGRAM_STACK(sp)         \
    do {                                \
        __builtin_unwind_init();        \
        (sp) = pf_os_frame_below();     \
    } while (0)
/* When p lies on one of those stacks: *top is that stack's top, and the
 * result is the `from` its thread left, when that thread is `tid` (0 for
 * the caller; the result is 0 otherwise: that thread has left it since).
 * 0, *top untouched, when p is on none of them. */
PF_HIDDEN uintptr_t pf_os_own_stack_at(uintptr_t p, long tid, uintptr_t *top);
/* Those of the stacks other threads are on now, as ranges into out[0..max);
 * how many. */
PF_HIDDEN int pf_os_own_stacks_taken(uintptr_t (*out)[2], int max);
/* One line on stderr, then abort(). `msg` is already formatted. */
PF_HIDDEN __attribute__((noreturn)) void pf_os_die(const char *msg, size_t len);

#endif
