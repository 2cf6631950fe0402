/*
 * walk_handler — loads the C++ runtime with dlopen, whose constructor
 * makes its emergency exception pool there (the runtime's own object),
 * and has a SIGUSR2 handler that allocates 40 bytes (kept). The test runs
 * it under gdb, which delivers SIGUSR2 while pfalloc walks the stack of
 * the pool's allocation (tests/preload/test_sites.c). Prints
 * "walk_handler: loaded", or why not.
 *
 * usage: walk_handler
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void *volatile kept;

static void on_usr2(int sig)
{
    (void)sig;
    kept = malloc(40);
}

int main(void)
{
    signal(SIGUSR2, on_usr2);
    void *h = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("walk_handler: %s\n", dlerror());
        return 1;
    }
    printf("walk_handler: loaded\n");
    return 0;
}
