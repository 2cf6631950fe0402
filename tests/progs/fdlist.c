/*
 * fdlist — prints the descriptors open in the process, one line
 * "fds: 0 1 2 ...", read from /proc/self/fd (the directory's own descriptor
 * left out), so that a test can compare the table with and without a
 * preload. Usage: fdlist
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static int by_number(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int main(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 2;
    int fds[1024], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 1024) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != dirfd(d))
            fds[n++] = fd;
    }
    closedir(d);
    qsort(fds, (size_t)n, sizeof fds[0], by_number);
    printf("fds:");
    for (int i = 0; i < n; i++)
        printf(" %d", fds[i]);
    printf("\n");
    return 0;
}
