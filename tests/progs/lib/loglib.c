/*
 * loglib — a library the program links that opens its log file in its
 * constructor (before pfalloc's, whose constructor runs after it), with
 * open(2) alone: started with descriptor 2 closed, the file takes that
 * number. The file is named by LOGLIB_FILE.
 */
#include <fcntl.h>
#include <stdlib.h>

static int log_fd = -1;

__attribute__((constructor)) static void loglib_open(void)
{
    const char *path = getenv("LOGLIB_FILE");
    if (path)
        log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
}

int loglib_fd(void)
{
    return log_fd;
}
