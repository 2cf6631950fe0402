/*
 * dlopen_local [--new] LIB... — loads each library with RTLD_NOW |
 * RTLD_LOCAL (out of the global scope, as plugins are loaded) and keeps it
 * (one named -LIB is unloaded again with dlclose at once); prints how many
 * were loaded. Loading libstdc++ so is what binutils does
 * with the LTO plugin. --new: then asks the last library's operator new
 * for 100 bytes and drops them (definitely lost, the program's own).
 * --huge: then calls the last library's cxxplug_try_huge (an operator new
 * that must fail, in a C++ runtime out of the global scope) and prints
 * what it said: "caught std::bad_alloc" is what the plugin expects.
 * --huge-threads: the same 4 000 times in each of 8 threads at once
 * (cxxplug_try_huge_threads); prints how many were caught.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int loaded = 0, with_new = argc > 1 && strcmp(argv[1], "--new") == 0;
    int huge = argc > 1 && strcmp(argv[1], "--huge") == 0;
    int huge_threads = argc > 1 && strcmp(argv[1], "--huge-threads") == 0;
    with_new |= huge | huge_threads;
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
    if (huge_threads) {
        int (*try_threads)(int, int) = last ? (int (*)(int, int))dlsym(last, "cxxplug_try_huge_threads") : NULL;
        if (!try_threads) {
            fprintf(stderr, "dlopen_local: no cxxplug_try_huge_threads\n");
            return 1;
        }
        printf("dlopen_local: caught %d of %d\n", try_threads(8, 4000), 8 * 4000);
    } else if (huge) {
        int (*try_huge)(void) = last ? (int (*)(void))dlsym(last, "cxxplug_try_huge") : NULL;
        if (!try_huge) {
            fprintf(stderr, "dlopen_local: no cxxplug_try_huge\n");
            return 1;
        }
        static const char *const said[] = {"nothing", "caught std::bad_alloc", "an array"};
        printf("dlopen_local: %s\n", said[try_huge()]);
    } else if (with_new) {
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
