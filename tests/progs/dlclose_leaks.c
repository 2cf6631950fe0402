/*
 * dlclose_leaks LIB_A LIB_B — loads LIB_A, lets it leak 3 objects, unloads
 * it, then loads LIB_B (which the loader likely maps where LIB_A was) and
 * keeps it. Prints whether LIB_B took LIB_A's address. The leak report must
 * name LIB_A (or say its module was unloaded), never LIB_B.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    void *a = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!a) {
        fprintf(stderr, "dlclose_leaks: %s\n", dlerror());
        return 2;
    }
    void (*leak)(int) = (void (*)(int))dlsym(a, "dlleak_a_leak");
    if (!leak)
        return 2;
    leak(3);
    Dl_info ia, ib;
    if (!dladdr((void *)leak, &ia))
        return 2;
    void *where_a = ia.dli_fbase;
    if (dlclose(a) != 0)
        return 2;
    void *b = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!b) {
        fprintf(stderr, "dlclose_leaks: %s\n", dlerror());
        return 2;
    }
    void (*touch)(int) = (void (*)(int))dlsym(b, "dlleak_b_touch");
    if (!touch)
        return 2;
    touch(2);
    if (!dladdr((void *)touch, &ib))
        return 2;
    printf("dlclose_leaks: same address %s\n", ib.dli_fbase == where_a ? "yes" : "no");
    return 0;
}
