/*
 * heaplist.h — for the test programs: a list of many small blocks, kept
 * from a global, so that an exit report's walk of the heap takes a while.
 */
#ifndef PF_PROGS_HEAPLIST_H
#define PF_PROGS_HEAPLIST_H

#include <stdlib.h>
#include <string.h>

struct heaplist_node {
    struct heaplist_node *next;
    char payload[40];
};

static struct heaplist_node *volatile heaplist_kept;

/* n blocks of `extra` bytes more than a node, filled with `fill`, on
 * heaplist_kept; 0, or -1 when out of memory. */
static int heaplist_build(long n, size_t extra, char fill)
{
    for (long i = 0; i < n; i++) {
        struct heaplist_node *o = malloc(sizeof *o + extra);
        if (!o)
            return -1;
        memset(o->payload, fill, sizeof o->payload);
        o->next = heaplist_kept;
        heaplist_kept = o;
    }
    return 0;
}

#endif
