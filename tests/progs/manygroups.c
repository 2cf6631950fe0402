/*
 * manygroups — keeps one 24-byte block from each of 20 480 distinct call
 * sites (one malloc call each, written out by the macros below), more
 * groups than the leak table of the exit report lists, so that its
 * "(other sites)" rows are needed for the groups to add up to the totals.
 * Run with PFALLOC_SITES=1 PFALLOC_STACK_DEPTH=1: each site is then one
 * group. Prints "manygroups: N kept".
 */
#include <stdio.h>
#include <stdlib.h>

#define SITES 20480
/* Global, so the compiler keeps every allocation. */
void *volatile manygroups_kept[SITES];
static int n;

__attribute__((noinline)) static void keep(void *p)
{
    if (!p) {
        fprintf(stderr, "manygroups: out of memory\n");
        exit(2);
    }
    manygroups_kept[n++] = p;
}

/* Each expansion is a call of its own, so a return address of its own;
 * noipa keeps the five parts, the same code, from being folded into one. */
#define ONE keep(malloc(24));
#define X4 ONE ONE ONE ONE
#define X16 X4 X4 X4 X4
#define X64 X16 X16 X16 X16
#define X256 X64 X64 X64 X64
#define X1024 X256 X256 X256 X256
#define X4096 X1024 X1024 X1024 X1024

__attribute__((noipa)) static void part1(void) { X4096 }
__attribute__((noipa)) static void part2(void) { X4096 }
__attribute__((noipa)) static void part3(void) { X4096 }
__attribute__((noipa)) static void part4(void) { X4096 }
__attribute__((noipa)) static void part5(void) { X4096 }

int main(void)
{
    part1();
    part2();
    part3();
    part4();
    part5();
    printf("manygroups: %d kept\n", n);
    return n == SITES ? 0 : 1;
}
