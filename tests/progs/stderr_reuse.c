/*
 * stderr_reuse — closes its stderr and opens its own data file, which gets
 * descriptor 2, writes a line to it and exits: the exit report must not land
 * in the program's file. Usage: stderr_reuse DATAFILE
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    close(2);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd != 2)
        return 3;
    static const char line[] = "the program's data\n";
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
        return 4;
    printf("stderr_reuse: wrote its data on descriptor %d\n", fd);
    return 0;
}
