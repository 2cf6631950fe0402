/*
 * gconv_unload MODULE_A LIB_B [signal] — a module the C library loads and unloads on
 * its own, not through dlclose: MODULE_A is made iconv's conversion module
 * for PFGCONV// (a gconv-modules file in a directory of its own, named by
 * GCONV_PATH); iconv_open loads it, and its set-up allocates a block that
 * it keeps (lost once the module is gone). iconv_close releases it, and the
 * C library unloads it after a few more conversions of other modules are
 * opened and closed. Then LIB_B, laid out like MODULE_A, is loaded with
 * dlopen (likely where MODULE_A was) and allocates 3 blocks of 24 bytes
 * from the same offset as MODULE_A did, which it keeps. Prints whether
 * MODULE_A was unloaded and whether LIB_B took its address. With `signal`,
 * asks for a report (SIGUSR1) while MODULE_A is loaded and again at the end.
 */
#include <dlfcn.h>
#include <iconv.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile gconv_unload_kept[3];

/* Where the object `path` is loaded (its executable mapping less its file
 * offset; a read-only mapping of the file is not a load): 0 when it is
 * not, 1 when the list cannot be read. */
static uintptr_t mapped(const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 1;
    char line[PATH_MAX + 128], perms[8];
    uintptr_t at = 0, start, off;
    while (!at && fgets(line, sizeof line, f))
        if (strstr(line, path) && sscanf(line, "%" SCNxPTR "-%*x %7s %" SCNxPTR, &start, perms, &off) == 3 &&
            strcmp(perms, "r-xp") == 0)
            at = start - off;
    fclose(f);
    return at;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "signal") == 0))
        return 2;
    int signal = argc == 4;
    char a[PATH_MAX], dir[] = "/tmp/gconv_unload.XXXXXX", conf[sizeof dir + 16];
    if (!realpath(argv[1], a) || !mkdtemp(dir))
        return 2;
    snprintf(conf, sizeof conf, "%s/gconv-modules", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return 2;
    fprintf(f, "module INTERNAL PFGCONV// %s 1\n", a);
    fclose(f);
    setenv("GCONV_PATH", dir, 1);
    iconv_t cd = iconv_open("PFGCONV//", "UTF-8");
    unlink(conf);
    rmdir(dir);
    if (cd == (iconv_t)-1) {
        perror("gconv_unload: iconv_open");
        return 2;
    }
    uintptr_t loaded = mapped(a);
    if (signal)
        raise(SIGUSR1);
    iconv_close(cd);
    /* The C library unloads a released module when others have been
     * released a few times since. */
    static const char *const others[] = {"ISO-8859-2", "KOI8-R", "CP1251", "ISO-8859-5"};
    for (int i = 0; i < 8 && mapped(a) == loaded; i++) {
        iconv_t o = iconv_open(others[i % 4], "UTF-8");
        if (o != (iconv_t)-1)
            iconv_close(o);
    }
    printf("gconv_unload: unloaded %s\n", loaded > 1 && mapped(a) == 0 ? "yes" : "no");
    fflush(stdout);
    void *b = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!b) {
        fprintf(stderr, "gconv_unload: %s\n", dlerror());
        return 2;
    }
    void *(*alloc)(size_t) = (void *(*)(size_t))dlsym(b, "pfgconv_alloc");
    Dl_info ib;
    if (!alloc || !dladdr((void *)alloc, &ib))
        return 2;
    for (int i = 0; i < 3; i++)
        gconv_unload_kept[i] = alloc(24);
    printf("gconv_unload: same address %s\n", (uintptr_t)ib.dli_fbase == loaded ? "yes" : "no");
    fflush(stdout);
    if (signal)
        raise(SIGUSR1);
    return 0;
}
