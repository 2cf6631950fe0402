/*
 * preloaded — tells whether pfalloc is live in this process: whether
 * pf_malloc can be found, whether the malloc that the program's calls reach
 * lives in libpfalloc, and whether pfalloc recognises a block from malloc as
 * its own. Prints "preloaded: yes" or "preloaded: no"; always exits 0, so a
 * test can run it both ways and assert each answer.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    void *pfm = dlsym(RTLD_DEFAULT, "pf_malloc");
    printf("pf_malloc: %s\n", pfm ? "found" : "absent");

    const char *from = "unknown";
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m && dladdr(m, &info) && info.dli_fname) {
        const char *base = strrchr(info.dli_fname, '/');
        base = base ? base + 1 : info.dli_fname;
        from = strncmp(base, "libpfalloc", 10) == 0 ? "libpfalloc" : "another library";
    }
    printf("malloc comes from: %s\n", from);

    /* pfalloc's usable size of a block malloc gave: nonzero only if pfalloc
     * owns it (it answers 0 for pointers it never returned). */
    int owned = 0;
    size_t (*usable)(const void *) =
        (size_t(*)(const void *))dlsym(RTLD_DEFAULT, "pf_malloc_usable_size");
    void *p = malloc(100);
    if (usable && p)
        owned = usable(p) >= 100;
    free(p);
    printf("malloc's blocks belong to pfalloc: %s\n", owned ? "yes" : "no");

    int yes = pfm && strcmp(from, "libpfalloc") == 0 && owned;
    printf("preloaded: %s\n", yes ? "yes" : "no");
    return 0;
}
