/*
 * siglib_late — loads libsiglib with dlopen, so the library's constructor,
 * which installs its own SA_SIGINFO handler for SIGUSR1, runs after every
 * preloaded one. It raises SIGUSR1 three times and prints how often the
 * library's handler ran.
 * Usage: siglib_late PATH-TO-LIBSIGLIB
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "siglib_late: %s\n", dlerror());
        return 2;
    }
    int (*hits)(void) = (int (*)(void))dlsym(h, "siglib_hits");
    if (!hits)
        return 2;
    for (int i = 0; i < 3; i++) {
        char *p = malloc(64);
        raise(SIGUSR1);
        free(p);
    }
    printf("siglib_late: the library's handler ran %d times\n", hits());
    return hits() == 3 ? 0 : 1;
}
