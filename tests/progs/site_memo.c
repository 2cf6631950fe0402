/*
 * site_memo — allocations from one place with the same stack pointer but
 * different callers further out, in turn: a function pointer called from
 * one place in a loop goes to one of two wrappers whose frames are alike,
 * each calling the same allocating function. The stack walk starts from
 * the same return address and stack pointer every time; only the words
 * further up the stack (the wrappers' return addresses) tell the sites
 * apart. Threads do the same at once, each with its own pattern.
 *   take <- via_one <- round <- main (or a thread)   ONE objects of 24 bytes each round
 *   take <- via_two <- round <- main (or a thread)   TWO objects
 * Built -O2 -g without frame pointers, like the rest. Every object is kept.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define ROUNDS 4
#define ONE 300
#define TWO 700
#define THREADS 3

static void *volatile sink[(THREADS + 1) * ROUNDS * (ONE + TWO)];
static int nsink;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int count_one, count_two;

__attribute__((noipa)) static void *take(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    return p;
}

__attribute__((noipa)) static void *via_one(size_t n)
{
    void *p = take(n);
    count_one++;
    return p;
}

__attribute__((noipa)) static void *via_two(size_t n)
{
    void *p = take(n);
    count_two++;
    return p;
}

/* ONE calls of via_one and TWO of via_two, mixed by `seed`, from one call
 * site: the same stack pointer in take each time. */
__attribute__((noipa)) static void round_of(unsigned seed, void **out)
{
    int ones = 0, twos = 0;
    for (int i = 0; i < ONE + TWO; i++) {
        seed = seed * 1103515245u + 12345u;
        int pick_one = ones < ONE && (twos == TWO || (seed >> 16) % 10 < 3);
        void *(*fn)(size_t) = pick_one ? via_one : via_two;
        out[i] = fn(24);
        if (pick_one)
            ones++;
        else
            twos++;
    }
}

static void keep(void **v, int n)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n; i++)
        sink[nsink++] = v[i];
    pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
    void *v[ONE + TWO];
    for (int r = 0; r < ROUNDS; r++) {
        round_of((unsigned)(uintptr_t)arg * 7919u + (unsigned)r, v);
        keep(v, ONE + TWO);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0)
            return 1;
    worker((void *)(uintptr_t)0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("site_memo: %d objects kept\n", nsink);
    return 0;
}
