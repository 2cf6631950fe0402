/*
 * dlopen_local LIB... — loads each library with RTLD_NOW | RTLD_LOCAL (out
 * of the global scope, as plugins are loaded) and keeps it; prints how
 * many were loaded. Loading libstdc++ so is what binutils does with the
 * LTO plugin.
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int loaded = 0;
    for (int i = 1; i < argc; i++) {
        if (dlopen(argv[i], RTLD_NOW | RTLD_LOCAL))
            loaded++;
        else
            fprintf(stderr, "dlopen_local: %s\n", dlerror());
    }
    printf("dlopen_local: %d\n", loaded);
    return 0;
}
