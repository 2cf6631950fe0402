/*
 * lifecycle — allocation at the edges of a process's life: in a constructor
 * before main, in thread-specific-data destructors as threads exit, in
 * atexit handlers and in a destructor after main has returned, and blocks
 * still live at exit. Each edge checks the contents it expects and prints
 * one line; the last lines come from exit time, so a crash there shows as
 * missing output or a bad status.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *early;
static char *for_atexit;
static char *for_destructor;
static pthread_key_t key;
static unsigned long tsd_freed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void before_main(void)
{
    early = malloc(1000);
    if (early)
        memset(early, 'e', 999), early[999] = '\0';
    for_destructor = calloc(1, 300000);
}

static void tsd_free(void *p)
{
    unsigned char *b = p;
    int ok = b[0] == 0x77 && b[4095] == 0x77;
    free(p);
    pthread_mutex_lock(&lock);
    tsd_freed += ok;
    pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
    size_t n = 4096 + (size_t)(uintptr_t)arg * 100;
    unsigned char *b = malloc(n);
    if (!b)
        return NULL;
    memset(b, 0x77, n);
    pthread_setspecific(key, b);
    /* Some garbage the thread leaves for others to free. */
    return malloc(64);
}

static void at_exit_handler(void)
{
    int ok = for_atexit && strcmp(for_atexit, "kept until exit") == 0;
    free(for_atexit);
    /* New allocations during exit work too. */
    char *late = malloc(5000);
    ok = ok && late != NULL;
    if (late)
        memset(late, 1, 5000);
    free(late);
    printf("atexit handler: block intact and freed, new block at exit: %s\n", ok ? "yes" : "no");
    fflush(stdout);
}

__attribute__((destructor)) static void after_main(void)
{
    int zero = 1;
    for (size_t i = 0; i < 300000 && for_destructor; i += 997)
        zero &= for_destructor[i] == 0;
    free(for_destructor);
    free(early);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "destructor: zeroed block intact and freed: %s\n",
                     zero && for_destructor ? "yes" : "no");
    /* stdio may be gone this late: write directly. */
    if (write(1, buf, (size_t)n) != n)
        _exit(3);
}

int main(void)
{
    printf("constructor block: %s\n",
           early && strlen(early) == 999 && early[500] == 'e' ? "intact" : "damaged");
    pthread_key_create(&key, tsd_free);
    enum { T = 16 };
    pthread_t t[T];
    void *garbage[T];
    for (int i = 0; i < T; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0)
            return 2;
    for (int i = 0; i < T; i++)
        pthread_join(t[i], &garbage[i]);
    for (int i = 0; i < T; i++)
        free(garbage[i]);
    printf("thread-specific destructors freed %lu of %d blocks intact\n", tsd_freed, T);

    for_atexit = strdup("kept until exit");
    atexit(at_exit_handler);
    /* Leaked on purpose: live at exit. */
    for (int i = 0; i < 100; i++) {
        void *leak = malloc((size_t)(i + 1) * 16);
        if (leak)
            memset(leak, i, (size_t)(i + 1) * 16);
        __asm__ volatile("" : : "r"(leak) : "memory");
    }
    printf("main returns with 100 blocks live\n");
    return tsd_freed == T ? 0 : 1;
}
