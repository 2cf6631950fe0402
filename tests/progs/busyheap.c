/*
 * busyheap — a process whose heap takes its reports a while to walk: it
 * builds a list of `objects` small blocks (default 300 000) kept from a
 * global, walks the whole list `passes` times (default 100) summing it, a
 * fixed amount of work with no allocation, then frees it all and prints
 * "busyheap: <sum>". With PFALLOC_INTERVAL shorter than one report (leak
 * walk included), the program must still get its work done.
 * Usage: busyheap [objects [passes]]
 */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *next;
    unsigned long value;
};

static struct node *volatile head;

int main(int argc, char **argv)
{
    long objects = argc > 1 ? atol(argv[1]) : 300000;
    long passes = argc > 2 ? atol(argv[2]) : 100;
    if (objects < 1 || passes < 1)
        return 2;
    for (long i = 0; i < objects; i++) {
        struct node *n = malloc(sizeof *n);
        if (!n)
            return 1;
        n->value = (unsigned long)i;
        n->next = head;
        head = n;
    }
    unsigned long sum = 0;
    for (long p = 0; p < passes; p++)
        for (struct node *n = head; n; n = n->next)
            sum += n->value ^ (unsigned long)p;
    while (head) {
        struct node *n = head;
        head = n->next;
        free(n);
    }
    printf("busyheap: %lu\n", sum);
    return 0;
}
