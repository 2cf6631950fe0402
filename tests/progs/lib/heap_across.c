/*
 * heap_across — preloaded after libpfalloc.so, so its constructor runs
 * before pfalloc's first regions are mapped: it fills every gap of the
 * address space above a 4 GiB boundary plus PF_TEST_ABOVE_KIB KiB with an
 * inaccessible mapping, so the mappings made next (pfalloc's heap) go just
 * above that boundary and on down across it. Nothing here allocates.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_MAPPINGS 4096

__attribute__((constructor(101))) static void place(void)
{
    const char *e = getenv("PF_TEST_ABOVE_KIB");
    if (!e)
        return;
    uintptr_t above = (uintptr_t)strtoul(e, NULL, 10) << 10;
    void *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return;
    uintptr_t top = (uintptr_t)p, gib4 = (uintptr_t)1 << 32;
    uintptr_t b = top & ~(gib4 - 1);
    if (top - b < above + ((uintptr_t)16 << 20))
        b -= gib4;
    uintptr_t lo = b + above;
    static char buf[1 << 20];
    static uintptr_t maps[MAX_MAPPINGS][2];
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0)
        return;
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)k;
    close(fd);
    buf[got] = 0;
    int n = 0;
    for (char *l = buf; *l && n < MAX_MAPPINGS;) {
        maps[n][0] = strtoul(l, &l, 16);
        maps[n][1] = strtoul(l + 1, &l, 16);
        n++;
        while (*l && *l != '\n')
            l++;
        if (*l)
            l++;
    }
    uintptr_t at = lo;
    for (int i = 0; i < n && at < top; i++) {
        if (maps[i][1] <= at)
            continue;
        uintptr_t end = maps[i][0] < top ? maps[i][0] : top;
        if (end > at)
            mmap((void *)at, end - at, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1,
                 0);
        at = maps[i][1];
    }
    ssize_t w = write(2, "heap_across: placed\n", 20);
    (void)w;
}
