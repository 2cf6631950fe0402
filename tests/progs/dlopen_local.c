/*
 * dlopen_local [--new] LIB... — loads each library with RTLD_NOW |
 * RTLD_LOCAL (out of the global scope, as plugins are loaded) and keeps it
 * (one named -LIB is unloaded again with dlclose at once); prints how many
 * were loaded. Loading libstdc++ so is what binutils does
 * with the LTO plugin. --new: then asks the last library's operator new
 * for 100 bytes and drops them (definitely lost, the program's own).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int loaded = 0, with_new = argc > 1 && strcmp(argv[1], "--new") == 0;
    void *last = NULL;
    for (int i = 1 + with_new; i < argc; i++) {
        int close_it = argv[i][0] == '-';
        void *h = dlopen(argv[i] + close_it, RTLD_NOW | RTLD_LOCAL);
        if (h && close_it) {
            loaded++;
            dlclose(h);
        } else if (h) {
            loaded++;
            last = h;
        } else {
            fprintf(stderr, "dlopen_local: %s\n", dlerror());
        }
    }
    if (with_new) {
        void *(*op_new)(size_t) = last ? (void *(*)(size_t))dlsym(last, "_Znwm") : NULL;
        if (!op_new) {
            fprintf(stderr, "dlopen_local: no operator new\n");
            return 1;
        }
        void *volatile p = op_new(100);
        memset(p, 1, 100);
        p = NULL;
    }
    printf("dlopen_local: %d\n", loaded);
    return 0;
}
