/*
 * lock.c — the contended side of pf_lock: a short spin, then a sleep on the
 * lock word (futex), and the check that stops a thread asking for a lock it
 * already holds. Allocates nothing; the sleep and the wake are the only
 * syscalls, made with no pfalloc lock held by the caller's critical section.
 */
#include "lock.h"

#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#endif

#include "fmt.h"

__thread int pf_lock_id __attribute__((tls_model("initial-exec")));
__thread int pf_lock_depth __attribute__((tls_model("initial-exec")));

/* Ids are never reused while the process lives (2^30 threads in all before
 * they wrap), and a fork child keeps the forking thread's. A signal handler
 * that interrupts this on the same thread takes an id of its own, and the
 * interrupted code then stores its id over it: the handler held no lock by
 * then, having returned. */
int pf_lock_id_new(void)
{
    static atomic_int next;
    int id = (atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % (1 << 30) + 1) * 2;
    pf_lock_id = id;
    return id;
}

static int fork_taken; /* see pf_lock_fork_taken */
static int fork_taker; /* the lock id of the thread that set it */

int pf_lock_threaded(void)
{
#if __has_include(<sys/single_threaded.h>)
    return !__libc_single_threaded;
#else
    return 1;
#endif
}

int pf_lock_fork_taken(void)
{
    return fork_taken;
}

void pf_lock_fork_taken_set(int taken)
{
    /* Stored only when they change: a process that forks again and again
     * (a shell) shares its pages with each child until one of them writes
     * there, and a store of the value already there copies the page. */
    int taker = taken ? pf_lock_me() : 0;
    if (fork_taker != taker)
        fork_taker = taker;
    if (fork_taken != taken)
        fork_taken = taken;
}

/* Fork handlers registered before pfalloc's run after its prepare handler,
 * which took every lock, and before the fork: one that allocates asks the
 * forking thread for a lock it holds already. That thread is not inside
 * pfalloc (every structure is whole), and no other thread can take the
 * lock: it is lent, and the matching pf_unlock gives it back to the fork,
 * still held. Up to LENT_MAX at once (nested calls); past that, the
 * process stops as for any lock asked for twice. */
#define LENT_MAX 16
__thread int pf_lock_nlent __attribute__((tls_model("initial-exec")));
static __thread pf_lock_t *lent[LENT_MAX] __attribute__((tls_model("initial-exec")));

/* Where l is in lent[], or -1. A lock lent now and asked for again before
 * its unlock is a signal handler's that interrupted the fork handler's
 * critical section of l on this thread: the structure l guards is half
 * changed. */
static int lent_at(const pf_lock_t *l)
{
    /* The last lent first: locks are given back in any order. */
    for (int i = pf_lock_nlent - 1; i >= 0; i--)
        if (lent[i] == l)
            return i;
    return -1;
}

int pf_lock_give_lent(pf_lock_t *l)
{
    int i = lent_at(l);
    if (i < 0)
        return 0;
    lent[i] = lent[--pf_lock_nlent];
    atomic_signal_fence(memory_order_seq_cst);
    pf_lock_depth--;
    return 1;
}

void pf_lock_fork_over(void)
{
    fork_taker = 0;
    pf_lock_nlent = 0;
}

/* Polls of the lock word before sleeping: about the length of a short
 * critical section, so a holder that is running lets go before we sleep. */
#define SPIN 100

__attribute__((noreturn, cold)) static void self_deadlock(pf_lock_t *l)
{
    char buf[320];
    struct pf_fmt f;
    pf_fmt_init(&f, buf, sizeof buf, -1);
    if (fork_taker && fork_taker == pf_lock_me() && lent_at(l) < 0)
        /* Between pfalloc's prepare handler, which took every lock, and
         * the fork: glibc runs prepare handlers in the reverse order of
         * their registration. */
        pf_fmt_str(&f, "pfalloc: malloc called from a fork handler registered before pfalloc's (pthread_atfork "
                       "in a library's constructor, say), which runs after pfalloc took its locks for the fork (lock ");
    else
        pf_fmt_str(&f, "pfalloc: malloc called from a signal handler that interrupted malloc on the "
                       "same thread (lock ");
    pf_fmt_hex(&f, (uint64_t)(uintptr_t)l);
    pf_fmt_str(&f, " is already held by this thread)\n");
    pf_os_die(pf_fmt_cstr(&f), f.len);
}

void pf_lock_wait(pf_lock_t *l, int me)
{
    /* The word names the holder, set by the very compare-and-swap that took
     * the lock: seeing this thread's id means this thread holds it, further
     * up its own stack, and waiting would never end. */
    if (PF_UNLIKELY((atomic_load_explicit(&l->state, memory_order_relaxed) & ~1) == me)) {
        if (fork_taker == me && pf_lock_nlent < LENT_MAX && lent_at(l) < 0) {
            lent[pf_lock_nlent++] = l;
            return;
        }
        self_deadlock(l);
    }
    for (int i = 0; i < SPIN; i++) {
        int s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (s == 0) {
            int free_ = 0;
            if (atomic_compare_exchange_weak_explicit(&l->state, &free_, me, memory_order_acquire,
                                                      memory_order_relaxed))
                return;
        } else if (s & 1) {
            break; /* others sleep already: join them rather than compete */
        }
        pf_cpu_relax();
    }
    /* Taking the lock with the sleeper bit is conservative: the release
     * after ours makes one wake that may find nobody, which costs a
     * syscall, never a lost wake-up. */
    for (;;) {
        int s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (s == 0) {
            if (atomic_compare_exchange_weak_explicit(&l->state, &s, me | 1, memory_order_acquire,
                                                      memory_order_relaxed))
                return;
            continue;
        }
        if (!(s & 1) && !atomic_compare_exchange_weak_explicit(&l->state, &s, s | 1, memory_order_relaxed,
                                                                 memory_order_relaxed))
            continue;
        pf_os_futex_wait(&l->state, s | 1);
    }
}

void pf_lock_wake(pf_lock_t *l)
{
    pf_os_futex_wake(&l->state, 1);
}
