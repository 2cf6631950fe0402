/*
 * nofds — keeps a block in a global, then takes every file descriptor it
 * may have (RLIMIT_NOFILE lowered to 16, then /dev/null opened until none
 * is left), and exits: whatever runs at its exit can open no file.
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static char *kept;

int main(void)
{
    kept = malloc(100);
    if (!kept)
        return 1;
    strcpy(kept, "kept");
    struct rlimit rl = {16, 16};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("nofds: setrlimit");
        return 1;
    }
    while (open("/dev/null", O_RDONLY) >= 0)
        ;
    if (errno != EMFILE) {
        perror("nofds: open");
        return 1;
    }
    printf("%s\n", kept);
    return 0;
}
