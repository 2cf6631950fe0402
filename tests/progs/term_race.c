/*
 * term_race loop|threads — a program that sets SIGTERM's default action
 * while something else happens to it:
 *   loop     sets it again and again for up to 20 s (keeping a block),
 *            after printing "term_race: looping"; a SIGTERM sent
 *            meanwhile must kill it with its exit report, every time;
 *   threads  20 000 times, a thread sets the default while the main
 *            thread sets a handler of its own; whenever the main thread
 *            then reads its own handler back, raising SIGTERM must run
 *            it. Prints "term_race: ok, N of 20000 read back the handler".
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *volatile kept;
static volatile sig_atomic_t ran;
static int go, done;

static void on_term(int sig)
{
    (void)sig;
    ran = 1;
}

static void *set_default(void *arg)
{
    (void)arg;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int round = 1;; round++) {
        int g;
        while ((g = __atomic_load_n(&go, __ATOMIC_ACQUIRE)) != round)
            if (g < 0)
                return NULL;
        sigaction(SIGTERM, &dfl, NULL);
        __atomic_store_n(&done, round, __ATOMIC_RELEASE);
    }
}

static int threads(void)
{
    enum { ROUNDS = 20000 };
    pthread_t t;
    if (pthread_create(&t, NULL, set_default, NULL) != 0)
        return 2;
    struct sigaction mine, back;
    memset(&mine, 0, sizeof mine);
    mine.sa_handler = on_term;
    sigemptyset(&mine.sa_mask);
    int seen = 0;
    for (int round = 1; round <= ROUNDS; round++) {
        __atomic_store_n(&go, round, __ATOMIC_RELEASE);
        for (volatile int k = 0; k < (round % 50) * 10; k++) {
        }
        sigaction(SIGTERM, &mine, NULL);
        while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) != round) {
        }
        if (sigaction(SIGTERM, NULL, &back) == 0 && back.sa_handler == on_term) {
            seen++;
            ran = 0;
            raise(SIGTERM);
            if (!ran) {
                printf("term_race: round %d read back the handler, which did not run\n", round);
                return 1;
            }
        }
    }
    __atomic_store_n(&go, -1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    printf("term_race: ok, %d of %d read back the handler\n", seen, ROUNDS);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "threads") == 0)
        return threads();
    if (argc != 2 || strcmp(argv[1], "loop") != 0)
        return 2;
    kept = malloc(100);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    printf("term_race: looping\n");
    fflush(stdout);
    time_t end = time(NULL) + 20;
    while (time(NULL) < end)
        for (int i = 0; i < 1000; i++)
            sigaction(SIGTERM, &dfl, NULL);
    return 3;
}
