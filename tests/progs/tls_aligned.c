/*
 * tls_aligned — four threads that run at once, each using a thread-local
 * variable aligned to 64 KiB, then all joined; nothing is left of the
 * program's. The alignment moves each thread's descriptor to 44 KiB below
 * the top of its stack, against about 2.3 KiB usually (the descriptor is
 * rounded down to the static TLS block's alignment), where the leak report
 * must still find the descriptor and the DTV it holds, which the C library
 * keeps with the thread's cached stack.
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <stdlib.h>
#include <string.h>

#include "joined.h"

static __thread char aligned_tls[64] __attribute__((aligned(65536)));

static void *worker(void *arg)
{
    memset(aligned_tls, 1, sizeof aligned_tls);
    char *p = malloc(100);
    if (p == NULL)
        abort();
    memcpy(p, aligned_tls, 64);
    joined_wait();
    free(p);
    return arg;
}

int main(void)
{
    joined_run(worker);
    return aligned_tls[0]; /* 0: the main thread's copy was never written */
}
