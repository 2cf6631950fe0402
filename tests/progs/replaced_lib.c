/*
 * replaced_lib MODE DIR LIB_A LIB_B — loads a copy of LIB_A, lets it leak 3
 * objects, then makes the path it was loaded by name LIB_B's code, which
 * has another function where LIB_A's leaking call is:
 *   rename  DIR/libplug.so, replaced as a package upgrade does (a new file
 *           renamed over the old path);
 *   memfd   /proc/self/fd/N, a memfd that held LIB_A, closed, and N reused
 *           for a memfd that holds LIB_B (a JIT's or a sandbox's plugin).
 * LIB_A stays loaded. The leak report must never name LIB_B's functions.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Copies the file `from` to descriptor out. */
static int copy_to(const char *from, int out)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0 || out < 0)
        return -1;
    char buf[16384];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            return -1;
    close(in);
    return n == 0 ? 0 : -1;
}

static int copy(const char *from, const char *to)
{
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    int rc = copy_to(from, out);
    if (out >= 0)
        close(out);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    const char *mode = argv[1], *dir = argv[2], *lib_a = argv[3], *lib_b = argv[4];
    char path[4096], next[4096];
    int fd = -1;
    if (strcmp(mode, "rename") == 0) {
        snprintf(path, sizeof path, "%s/libplug.so", dir);
        snprintf(next, sizeof next, "%s/libplug.so.new", dir);
        if (copy(lib_a, path) != 0)
            return 2;
    } else if (strcmp(mode, "memfd") == 0) {
        fd = memfd_create("plug", 0);
        if (copy_to(lib_a, fd) != 0)
            return 2;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    } else {
        return 2;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "replaced_lib: %s\n", dlerror());
        return 2;
    }
    void (*leak)(int) = (void (*)(int))dlsym(h, "dlleak_a_leak");
    if (!leak)
        return 2;
    leak(3);
    if (fd < 0) {
        if (copy(lib_b, next) != 0 || rename(next, path) != 0)
            return 2;
    } else {
        close(fd);
        int again = memfd_create("plug", 0);
        if (again != fd || copy_to(lib_b, again) != 0)
            return 2;
    }
    printf("replaced_lib: replaced\n");
    return 0;
}
