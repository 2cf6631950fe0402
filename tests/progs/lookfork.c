/*
 * lookfork — a fork from a signal handler that interrupted the look for
 * objects the C library unloaded (the first allocation after one of the
 * loader's, with call sites recorded).
 *
 * The program defines _dl_find_object (exported: see CMakeLists.txt), which
 * pfalloc's look asks about each object it recorded; the definition counts
 * the calls and hands them to the C library's. After an allocation of the
 * loader's (dlsym of a name no object has: the loader allocates its error),
 * the next allocation looks, and its first question (about the start of a
 * recorded object, where a record of a site asks about code) raises SIGUSR2,
 * whose handler forks. In the child the interrupted look ends, and then 200
 * allocations from one call site must ask (almost) nothing more: the look
 * is over and no loader allocation came since. A child that kept looking
 * at every allocation asks about every recorded object each time. The child
 * prints "child asked N" and exits 1 when N is 100 or more; the program
 * exits with the child's status (2 when the look was not interrupted).
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*find_fn)(void *, struct dl_find_object *);

static find_fn real_find;
static volatile unsigned long asked;
static volatile sig_atomic_t armed, interrupted, in_child;
static volatile pid_t child;

__attribute__((visibility("default"))) int _dl_find_object(void *pc, struct dl_find_object *out)
{
    if (!real_find)
        real_find = (find_fn)dlvsym(RTLD_NEXT, "_dl_find_object", "GLIBC_2.35");
    asked++;
    int rc = real_find ? real_find(pc, out) : -1;
    /* The look asks at the start of each recorded object; a record of a
     * site asks at a code address. */
    if (armed && rc == 0 && out->dlfo_map_start == pc) {
        armed = 0;
        interrupted = 1;
        raise(SIGUSR2);
    }
    return rc;
}

static void on_usr2(int sig)
{
    (void)sig;
    pid_t p = fork();
    if (p == 0)
        in_child = 1;
    else
        child = p;
}

__attribute__((noinline)) static void *one(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    for (int i = 0; i < 8; i++)
        free(one(32));
    void *self = dlopen(NULL, RTLD_NOW);
    if (!self)
        return 3;
    /* The loader allocates its error; the next allocation (the C
     * library's, or this program's) looks, and forks in the middle. */
    armed = 1;
    void *sym = dlsym(self, "lookfork_no_such_symbol");
    void *p = one(48);
    armed = 0;
    free(p);
    if (sym)
        return 3;
    if (in_child) {
        unsigned long before = asked;
        for (int i = 0; i < 200; i++)
            free(one(64));
        unsigned long n = asked - before;
        printf("child asked %lu\n", n);
        fflush(stdout);
        _exit(n >= 100);
    }
    (void)dlerror();
    if (!interrupted || child <= 0) {
        printf("the look was not interrupted\n");
        return 2;
    }
    int ws;
    if (waitpid(child, &ws, 0) != child || !WIFEXITED(ws))
        return 4;
    return WEXITSTATUS(ws);
}
