/*
 * fork_leaks — the parent allocates 100 objects and forks; the child (no
 * exec) allocates 5 objects of its own, keeps everything and exits; the
 * parent frees its 100 and exits. Prints the child's exit status. Under
 * the preload the child's leak report must count 5 objects as its own and
 * the 100 as inherited, and PFALLOC_LEAK_EXIT_CODE must leave both exit
 * statuses alone. Writes with write(2) only, so stdio allocates nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INHERITED 100
#define OWN 5

void *volatile fork_sink[INHERITED + OWN];

__attribute__((noinline)) void parent_objects(void)
{
    for (int i = 0; i < INHERITED; i++)
        fork_sink[i] = malloc(40);
}

__attribute__((noinline)) void child_objects(void)
{
    for (int i = 0; i < OWN; i++)
        fork_sink[INHERITED + i] = malloc(24);
}

int main(void)
{
    parent_objects();
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        child_objects();
        exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return 2;
    for (int i = 0; i < INHERITED; i++)
        free(fork_sink[i]);
    char buf[64];
    int len = snprintf(buf, sizeof buf, "fork_leaks: child status %d\n",
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return write(1, buf, (size_t)len) == len ? 0 : 2;
}
