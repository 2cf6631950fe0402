/*
 * dropped.h — for the test programs: a block of `bytes` made and its only
 * pointer dropped, so the leak walk must call it definitely lost. In a
 * function of its own: no copy of the address is left in the caller's
 * frame, nor in a register the caller keeps.
 */
#ifndef PF_PROGS_DROPPED_H
#define PF_PROGS_DROPPED_H

#include <stdlib.h>

static void *volatile dropped;

__attribute__((noinline)) static int drop(size_t bytes)
{
    dropped = malloc(bytes);
    if (!dropped)
        return -1;
    dropped = NULL;
    return 0;
}

#endif
