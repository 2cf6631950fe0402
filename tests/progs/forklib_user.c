/*
 * forklib_user — a program linking tests/progs/lib/forklib.c, whose fork
 * handlers allocate: with a second thread running, it forks once; the
 * child exits at once. Prints "forked" when the fork returned.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int forklib_registered(void);

static void *idle(void *arg)
{
    (void)arg;
    pause();
    return NULL;
}

int main(void)
{
    if (!forklib_registered())
        return 2;
    pthread_t t;
    if (pthread_create(&t, NULL, idle, NULL) != 0)
        return 2;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid)
        return 2;
    printf("forked\n");
    return 0;
}
