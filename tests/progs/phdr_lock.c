/*
 * phdr_lock LIB [fork] — a thread inside dl_iterate_phdr's callback (which
 * runs under the loader's lock of its list) waits for a lock of the
 * program's, while the thread holding that lock allocates right after an
 * allocation of the loader's (a dlopen of LIB). The program's lock is never
 * taken inside the loader's, so nothing here can wait for ever unless
 * malloc takes the loader's lock. With `fork`, the allocation is made in a
 * child forked while the other thread holds the loader's lock: no thread of
 * the child can give it back. Prints "phdr_lock: allocated" once the
 * allocation returned; a second's alarm ends a process that never gets
 * there.
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int go, inside;

static int callback(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info;
    (void)size;
    (void)data;
    atomic_store(&inside, 1);
    pthread_mutex_lock(&lock);
    pthread_mutex_unlock(&lock);
    return 1;
}

static void *walker(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        sched_yield();
    dl_iterate_phdr(callback, NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 3 && strcmp(argv[2], "fork") == 0))
        return 2;
    pthread_t t;
    if (pthread_create(&t, NULL, walker, NULL) != 0)
        return 2;
    pthread_mutex_lock(&lock);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL); /* the loader allocates */
    if (!h)
        return 2;
    atomic_store(&go, 1);
    while (!atomic_load(&inside))
        sched_yield();
    int rc = 0;
    if (argc == 3) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(5);
            void *volatile p = malloc(100);
            free(p);
            static const char msg[] = "phdr_lock: allocated\n";
            if (write(1, msg, sizeof msg - 1) < 0)
                _exit(3);
            _exit(0);
        }
        int status = 0;
        pthread_mutex_unlock(&lock);
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
            return 2;
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else {
        alarm(5);
        void *volatile p = malloc(100);
        free(p);
        printf("phdr_lock: allocated\n");
        fflush(stdout);
        pthread_mutex_unlock(&lock);
    }
    pthread_join(t, NULL);
    return rc;
}
