/*
 * forklib_user — a program linking tests/progs/lib/forklib.c, whose fork
 * handlers allocate: with a second thread running, it forks once; the
 * child exits at once. Prints "forked" when the fork returned.
 */
#include <stdio.h>

#include "runtime.h"

int forklib_registered(void);

int main(void)
{
    if (!forklib_registered())
        return 2;
    if (threaded_fork_once() != 0)
        return 2;
    printf("forked\n");
    return 0;
}
