/*
 * tls_aligned — four threads that run at once, each using a thread-local
 * variable aligned to 64 KiB, then all joined; nothing is left of the
 * program's. The alignment moves each thread's descriptor 60 KiB further
 * below the top of its stack than usual (the static TLS block is aligned
 * with it), where the leak report must still find the descriptor and the
 * DTV it holds, which the C library keeps with the thread's cached stack.
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static __thread char aligned_tls[64] __attribute__((aligned(65536)));
static pthread_barrier_t together;

static void *worker(void *arg)
{
    memset(aligned_tls, 1, sizeof aligned_tls);
    char *p = malloc(100);
    if (p == NULL)
        abort();
    memcpy(p, aligned_tls, 64);
    pthread_barrier_wait(&together);
    free(p);
    return arg;
}

int main(void)
{
    pthread_t t[4];
    if (pthread_barrier_init(&together, NULL, 4) != 0)
        abort();
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            abort();
    for (int i = 0; i < 4; i++)
        if (pthread_join(t[i], NULL) != 0)
            abort();
    return aligned_tls[0]; /* 0: the main thread's copy was never written */
}
