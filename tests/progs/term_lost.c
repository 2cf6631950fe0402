/*
 * term_lost — a program whose lost block's address is left on its stack
 * below the stack pointer, in the dead frame of a call that returned, when
 * a terminating signal ends it: main keeps a second block only in a
 * register while it spins, prints "term_lost: started" and waits for the
 * signal (up to 30 s). The lost block is lost (valgrind: definitely lost);
 * the kept one is still reachable.
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

int main(void)
{
    uintptr_t *kept = malloc(640);
    if (!kept)
        return 2;
    memset(kept, 0, 640);
    printf("term_lost: started\n");
    fflush(stdout);
    lose();
    time_t end = time(NULL) + 30;
    uintptr_t x = 0;
    while (time(NULL) < end) {
        __asm__ volatile("" : "+r"(kept), "+r"(x));
        x += kept[1];
    }
    return 1;
}
