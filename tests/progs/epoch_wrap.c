/*
 * epoch_wrap LIB_A LIB_B LIB_X COUNT — loads LIB_A and has it allocate 3
 * blocks of 24 bytes, unloads it, then loads and unloads LIB_X COUNT times
 * (allocating nothing through it), then loads LIB_B, laid out like LIB_A
 * (the loader likely maps it where LIB_A was), and has it allocate 3 more,
 * both from one call of one helper. Every unload makes pfalloc forget the
 * unwind rules it cached (it counts unloads); run with COUNT around the
 * width of that count, a rule of LIB_A's cached before the unloads must
 * not be taken for LIB_B's. Prints whether LIB_B took LIB_A's address.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *volatile epoch_wrap_kept[6];

__attribute__((noinline)) static void use(void *(*alloc)(size_t), int at)
{
    for (int i = 0; i < 3; i++)
        epoch_wrap_kept[at + i] = alloc(24);
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays */
}

static void *load(const char *path, void *(**alloc)(size_t), void **base)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "epoch_wrap: %s\n", dlerror());
        exit(2);
    }
    *alloc = (void *(*)(size_t))dlsym(h, "pfgconv_alloc");
    Dl_info info;
    if (!*alloc || !dladdr((void *)*alloc, &info))
        exit(2);
    *base = info.dli_fbase;
    return h;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    long count = atol(argv[4]);
    void *(*alloc)(size_t);
    void *base[2];
    for (int k = 0; k < 2; k++) { /* one call of use() for both */
        void *h = load(argv[1 + k], &alloc, &base[k]);
        use(alloc, 3 * k);
        if (k == 0) {
            if (dlclose(h) != 0)
                return 2;
            for (long i = 0; i < count; i++) {
                void *x = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
                if (!x || dlclose(x) != 0)
                    return 2;
            }
        }
    }
    printf("epoch_wrap: same address %s\n", base[0] == base[1] ? "yes" : "no");
    return 0;
}
