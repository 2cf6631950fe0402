/*
 * lock.h — a small futex lock. Chosen over pthread mutexes because it needs
 * no initialisation call (works from the first malloc of the process), holds
 * no hidden state that fork could tear, and is reset in the fork child by a
 * plain store. A waiter spins briefly (critical sections are short and make
 * no syscalls), then sleeps in the kernel: with more threads than cores the
 * holder may be descheduled, and spinning or yielding then only burns the
 * core it needs.
 *   state: 0 free; else the holder's id (even, never 0), plus 1 when a
 *   waiter may sleep on it.
 * The holder is in the lock word itself, set by the compare-and-swap that
 * takes the lock and cleared by the exchange that releases it, so a thread
 * that asks for a lock it already holds — a signal handler that interrupted
 * malloc and calls malloc again — stops with one line instead of waiting
 * for itself forever, wherever in pf_lock or pf_unlock the signal landed.
 */
#ifndef PF_LOCK_H
#define PF_LOCK_H

#include <sched.h>
#include <stdatomic.h>

#include "os.h"

static inline void pf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct {
    atomic_int state; /* 0 free; holder's id, | 1 with possible sleepers */
} pf_lock_t;

#define PF_LOCK_INIT {0}

/* The calling thread's lock id (even, never 0), given on its first lock. */
PF_HIDDEN extern __thread int pf_lock_id __attribute__((tls_model("initial-exec")));
PF_HIDDEN int pf_lock_id_new(void);
/* Locks the calling thread holds or is taking: counted up before the
 * compare-and-swap that takes one and down after the exchange that gives
 * it back, so a signal handler that finds 0 interrupted no pfalloc lock of
 * its thread's, wherever the signal landed. */
PF_HIDDEN extern __thread int pf_lock_depth __attribute__((tls_model("initial-exec")));
/* Whether the calling thread holds (or is taking or giving back) a pfalloc
 * lock: for a signal handler, whether it interrupted the allocator's
 * locked paths. */
static inline int pf_lock_any_mine(void)
{
    return pf_lock_depth != 0;
}

static inline int pf_lock_me(void)
{
    int me = pf_lock_id;
    return PF_LIKELY(me) ? me : pf_lock_id_new();
}

/* Whether the calling thread holds l (for code in a signal handler). */
static inline int pf_lock_mine(pf_lock_t *l)
{
    int s = atomic_load_explicit(&l->state, memory_order_relaxed);
    return s != 0 && (s & ~1) == pf_lock_me();
}

/* The contended path: the self-deadlock check, the spin, the sleep. */
PF_HIDDEN void pf_lock_wait(pf_lock_t *l, int me);
/* Wakes one sleeper (the lock was released from state 2). */
PF_HIDDEN void pf_lock_wake(pf_lock_t *l);

static inline void pf_lock(pf_lock_t *l)
{
    int me = pf_lock_me(), free_ = 0;
    pf_lock_depth++;
    atomic_signal_fence(memory_order_seq_cst);
    if (PF_UNLIKELY(!atomic_compare_exchange_strong_explicit(&l->state, &free_, me, memory_order_acquire,
                                                             memory_order_relaxed)))
        pf_lock_wait(l, me);
}

/* Takes the lock unless it stays held through `tries` yields, for code in
 * a signal handler: the interrupted code may hold it and never give it
 * back while the handler waits. 1 when taken. */
static inline int pf_lock_try(pf_lock_t *l, int tries)
{
    int me = pf_lock_me();
    pf_lock_depth++;
    atomic_signal_fence(memory_order_seq_cst);
    for (int i = 0;; i++) {
        int free_ = 0;
        if (atomic_compare_exchange_strong_explicit(&l->state, &free_, me, memory_order_acquire,
                                                    memory_order_relaxed))
            return 1;
        /* Held by this very thread: the interrupted code, which cannot give
         * it back while the handler waits. */
        if (i >= tries || (free_ & ~1) == me) {
            atomic_signal_fence(memory_order_seq_cst);
            pf_lock_depth--;
            return 0;
        }
        sched_yield();
    }
}

/* Locks lent to the thread that forks (see pf_lock_wait): how many it has
 * now, and the slow path that gives one back, 1 when l was one of them. */
PF_HIDDEN extern __thread int pf_lock_nlent __attribute__((tls_model("initial-exec")));
PF_HIDDEN int pf_lock_give_lent(pf_lock_t *l);

static inline void pf_unlock(pf_lock_t *l)
{
    if (PF_UNLIKELY(pf_lock_nlent) && pf_lock_give_lent(l))
        return;
    int was = atomic_exchange_explicit(&l->state, 0, memory_order_release);
    if (PF_UNLIKELY(was & 1))
        pf_lock_wake(l);
    atomic_signal_fence(memory_order_seq_cst);
    /* Counted off only if it was this thread's: a lock given back by a
     * thread that did not take it (a fork child's code that a signal
     * handler's reset already gave back) leaves the count right. */
    pf_lock_depth -= (was & ~1) == pf_lock_id;
}

/* Whether the process has (or had) more than one thread: fork handlers take
 * and reset their locks only then. Once 1, it stays 1. glibc takes no malloc
 * lock in fork while it has one thread, so that a fork from a signal handler
 * works even when the handler interrupted malloc, free or a fork handler on
 * that thread, holding a lock the fork would wait for forever. With one
 * thread nobody else can hold a lock for the child to inherit, and the
 * interrupted code finishes (and unlocks) in both processes. */
PF_HIDDEN int pf_lock_threaded(void);
/* In fork handlers: 1 when the fork under way took pfalloc's locks (the
 * process has threads), so the child must reset what other threads held;
 * 0 when it took nothing (one thread: whatever is held, this thread's own
 * interrupted code holds, and finishes). Set by alloc.c's prepare handler,
 * by the forking thread with every lock held, or in a process with one
 * thread. */
PF_HIDDEN int pf_lock_fork_taken(void);
PF_HIDDEN void pf_lock_fork_taken_set(int taken);
/* In the parent's and the child's handlers, once the locks are given back:
 * the fork is over (a lock held by its own thread from then on is not the
 * fork's, and none is lent; see pf_lock_wait). */
PF_HIDDEN void pf_lock_fork_over(void);

/* Fork child: the only thread left; whoever held the lock is gone (or is
 * the forking thread itself, which took it in the prepare handler). */
static inline void pf_lock_reset(pf_lock_t *l)
{
    int s = atomic_load_explicit(&l->state, memory_order_relaxed);
    atomic_store_explicit(&l->state, 0, memory_order_relaxed);
    if (s && (s & ~1) == pf_lock_id) /* taken by this thread (the forking one) */
        pf_lock_depth--;
}

#endif
