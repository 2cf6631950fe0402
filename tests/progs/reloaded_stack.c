/*
 * reloaded_stack LIB_A LIB_B [signal] — loads LIB_A and has it allocate 3
 * blocks of 24 bytes, unloads it with dlclose, then loads LIB_B, laid out
 * like LIB_A (the loader likely maps it where LIB_A was), and has it
 * allocate 3 more: both from one call of one helper, so when LIB_B took
 * LIB_A's address the two stacks hold the same return addresses. With
 * `signal`, asks for a report (SIGUSR1) while LIB_A is loaded. Prints
 * whether LIB_B took LIB_A's address.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

void *volatile reloaded_stack_kept[6];

__attribute__((noinline)) static void use(void *(*alloc)(size_t), int at)
{
    for (int i = 0; i < 3; i++)
        reloaded_stack_kept[at + i] = alloc(24);
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays */
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "signal") == 0))
        return 2;
    void *base[2];
    for (int k = 0; k < 2; k++) { /* one call of use() for both */
        void *h = dlopen(argv[1 + k], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "reloaded_stack: %s\n", dlerror());
            return 2;
        }
        void *(*alloc)(size_t) = (void *(*)(size_t))dlsym(h, "pfgconv_alloc");
        Dl_info info;
        if (!alloc || !dladdr((void *)alloc, &info))
            return 2;
        base[k] = info.dli_fbase;
        use(alloc, 3 * k);
        if (k == 0) {
            if (argc == 4)
                raise(SIGUSR1);
            if (dlclose(h) != 0)
                return 2;
        }
    }
    printf("reloaded_stack: same address %s\n", base[0] == base[1] ? "yes" : "no");
    return 0;
}
