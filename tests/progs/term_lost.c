/*
 * term_lost — a program whose lost block's address is left on its stack
 * below the stack pointer, in the dead frame of a call that returned, when
 * a terminating signal ends it: main keeps a second block only in a
 * register while it spins, prints "term_lost: started" and waits for the
 * signal (up to 30 s). The lost block is lost (valgrind: definitely lost);
 * the kept one is still reachable. With the argument "xmm", a third block,
 * of 320 bytes, is kept only in the SSE register xmm8 by the spinning loop
 * (x86-64): still reachable too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *volatile sink;

/* Copies of the lost block's address, over a dead frame of 8 KiB once this
 * returns: all of it but the 128 bytes below the caller's stack pointer,
 * which code may use without moving it. */
__attribute__((noinline)) static void lose(void)
{
    volatile uintptr_t slots[1024];
    uintptr_t below = (uintptr_t)__builtin_frame_address(0) + 16 - 128 - 16;
    void *p = malloc(50);
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        if ((uintptr_t)&slots[i] + sizeof slots[i] <= below)
            slots[i] = (uintptr_t)p;
    sink = p;
    sink = NULL;
}

#if defined(__x86_64__)
static void *volatile xmm_sink;

__attribute__((noinline)) static void spin_xmm(void)
{
    void *p = malloc(320);
    /* No general register, no stack slot: the pointer is in xmm8 alone
     * while the loop counts down (the process is killed long before). */
    __asm__ volatile("movq %0, %%xmm8\n\t"
                     "xor %0, %0\n\t"
                     "movabs $100000000000, %%rcx\n"
                     "1:\n\t"
                     "dec %%rcx\n\t"
                     "jnz 1b\n\t"
                     "movq %%xmm8, %0"
                     : "+r"(p)
                     :
                     : "rcx", "xmm8", "cc");
    xmm_sink = p;
}
#endif

int main(int argc, char **argv)
{
    uintptr_t *kept = malloc(640);
    if (!kept)
        return 2;
    memset(kept, 0, 640);
    printf("term_lost: started\n");
    fflush(stdout);
    lose();
#if defined(__x86_64__)
    if (argc > 1 && strcmp(argv[1], "xmm") == 0)
        spin_xmm();
#else
    (void)argc;
    (void)argv;
#endif
    time_t end = time(NULL) + 30;
    uintptr_t x = 0;
    while (time(NULL) < end) {
        __asm__ volatile("" : "+r"(kept), "+r"(x));
        x += kept[1];
    }
    return 1;
}
