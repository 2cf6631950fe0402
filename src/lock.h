/*
 * lock.h — a small spin-then-yield lock. Chosen over pthread mutexes because
 * it needs no initialisation call (works from the first malloc of the
 * process), holds no hidden state that fork could tear, and is reset in the
 * fork child by a plain store. Critical sections in pfalloc are short and
 * never make syscalls, so spinning briefly is the right trade.
 */
#ifndef PF_LOCK_H
#define PF_LOCK_H

#include <sched.h>
#include <stdatomic.h>

static inline void pf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct {
    atomic_int held; /* 0 free, 1 held */
} pf_lock_t;

#define PF_LOCK_INIT {0}

static inline void pf_lock(pf_lock_t *l)
{
    for (;;) {
        if (!atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
            return;
        for (int spin = 0; atomic_load_explicit(&l->held, memory_order_relaxed); spin++) {
            if (spin < 64)
                pf_cpu_relax();
            else
                sched_yield();
        }
    }
}

/* Takes the lock unless it stays held through `tries` yields, for code in
 * a signal handler: the interrupted code may hold it and never give it
 * back while the handler waits. 1 when taken. */
static inline int pf_lock_try(pf_lock_t *l, int tries)
{
    for (int i = 0;; i++) {
        if (!atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
            return 1;
        if (i >= tries)
            return 0;
        sched_yield();
    }
}

static inline void pf_unlock(pf_lock_t *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

/* Fork child: the only thread left; whoever held the lock is gone. */
static inline void pf_lock_reset(pf_lock_t *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_relaxed);
}

#endif
