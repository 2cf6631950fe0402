/*
 * chdir_leak DIR — loses a block, changes its working directory to DIR
 * (as daemons do), then loses another: the leak report must name the
 * function that allocated both, whatever path the program was started by.
 * Prints "chdir_leak: done".
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) static void lose(size_t n)
{
    sink = malloc(n);
    sink = NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    lose(40);
    if (chdir(argv[1]) != 0)
        return 2;
    lose(48);
    printf("chdir_leak: done\n");
    return 0;
}
