/*
 * loglib_user — a program linking tests/progs/lib/loglib.c, whose
 * constructor opened the log file LOGLIB_FILE before pfalloc started:
 * writes a line of its own there, keeps a block (a leak for the exit
 * report) and prints "loglib_user: wrote its data on descriptor N".
 * Started with descriptor 2 closed, N is 2: neither a warning of pfalloc's
 * nor its exit report may land in that file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int loglib_fd(void);

void *volatile loglib_user_kept;

int main(void)
{
    int fd = loglib_fd();
    if (fd < 0)
        return 3;
    static const char line[] = "the program's data\n";
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
        return 4;
    loglib_user_kept = malloc(100);
    printf("loglib_user: wrote its data on descriptor %d\n", fd);
    return 0;
}
