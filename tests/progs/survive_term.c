/*
 * survive_term — a process that outlives its own SIGTERM. Run as the first
 * process of a PID namespace (`unshare -pf`), it is the namespace's init,
 * and the kernel drops a default-action signal it sends itself: pfalloc's
 * SIGTERM handler writes the exit report, gives the signal back its default
 * action and raises it again, and the process goes on. It allocates `n`
 * blocks (kept live), raises SIGTERM, and prints VmSize before and after in
 * KiB, as /proc/self/status has them (read without stdio), then
 * "survived".
 *
 * usage: survive_term [n]
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void **blocks;

static long vm_size(void)
{
    static char status[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, status, sizeof status - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    status[n] = 0;
    const char *p = strstr(status, "VmSize:");
    return p ? strtol(p + 7, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    blocks = malloc((size_t)n * sizeof *blocks);
    if (!blocks)
        return 2;
    for (long i = 0; i < n; i++)
        if (!(blocks[i] = malloc(24)))
            return 2;
    long before = vm_size();
    raise(SIGTERM);
    long after = vm_size();
    printf("VmSize-before %ld\nVmSize-after %ld\nsurvived\n", before, after);
    return 0;
}
