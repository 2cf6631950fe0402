/*
 * misuse — commits one act of heap misuse, named by its argument, after
 * printing the pointer involved on stdout ("pointer 0x..."). Under pfalloc
 * each act must stop the process with one line on stderr and SIGABRT.
 * The C++ operators are reached by their symbol names, so this C program
 * calls whatever operator new and delete the process has.
 *
 * usage: misuse free|realloc|delete|delete-array|delete-sized|large|
 *               foreign|realloc-foreign|interior|interior-large|usable-foreign|
 *               usable-freed
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the compiler from seeing the misuse and reasoning about it. */
static void *hide(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void show(const void *p)
{
    printf("pointer %p\n", p);
    fflush(stdout);
}

static void *sym(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) {
        printf("no %s in this process\n", name);
        exit(3);
    }
    return f;
}

static void cxx(const char *new_name, const char *delete_name, int sized)
{
    void *(*op_new)(size_t) = (void *(*)(size_t))sym(new_name);
    void *p = op_new(40);
    memset(p, 1, 40);
    show(p);
    if (sized) {
        void (*op_del)(void *, size_t) = (void (*)(void *, size_t))sym(delete_name);
        void *again = hide(p);
        op_del(p, 40);
        op_del(again, 40);
    } else {
        void (*op_del)(void *) = (void (*)(void *))sym(delete_name);
        void *again = hide(p);
        op_del(p);
        op_del(again);
    }
}

static char not_from_malloc[256];

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: misuse ACT\n");
        return 2;
    }
    const char *act = argv[1];
    if (strcmp(act, "free") == 0) {
        void *p = hide(malloc(40));
        memset(p, 1, 40);
        show(p);
        void *again = hide(p);
        free(p);
        free(again);
    } else if (strcmp(act, "realloc") == 0) {
        void *p = hide(malloc(40));
        memset(p, 1, 40);
        show(p);
        void *again = hide(p);
        free(p);
        p = realloc(again, 80);
        printf("realloc returned %p\n", p);
    } else if (strcmp(act, "delete") == 0) {
        cxx("_Znwm", "_ZdlPv", 0);
    } else if (strcmp(act, "delete-array") == 0) {
        cxx("_Znam", "_ZdaPv", 0);
    } else if (strcmp(act, "delete-sized") == 0) {
        cxx("_Znwm", "_ZdlPvm", 1);
    } else if (strcmp(act, "large") == 0) {
        void *p = hide(malloc(4u << 20));
        memset(p, 1, 4u << 20);
        show(p);
        void *again = hide(p);
        free(p);
        free(again);
    } else if (strcmp(act, "foreign") == 0) {
        void *p = hide(not_from_malloc + 64);
        show(p);
        free(p);
    } else if (strcmp(act, "realloc-foreign") == 0) {
        void *p = hide(not_from_malloc + 64);
        show(p);
        p = realloc(p, 100);
        printf("realloc returned %p\n", p);
    } else if (strcmp(act, "interior") == 0) {
        char *p = hide(malloc(64));
        memset(p, 1, 64);
        show(p);
        free(hide(p + 16));
    } else if (strcmp(act, "interior-large") == 0) {
        char *p = hide(malloc(1u << 20));
        memset(p, 1, 1u << 20);
        show(p);
        free(hide(p + 200000));
    } else if (strcmp(act, "usable-foreign") == 0) {
        void *p = hide(not_from_malloc + 64);
        show(p);
        printf("malloc_usable_size returned %zu\n", malloc_usable_size(p));
    } else if (strcmp(act, "usable-freed") == 0) {
        void *p = hide(malloc(40));
        memset(p, 1, 40);
        show(p);
        void *again = hide(p);
        free(p);
        printf("malloc_usable_size returned %zu\n", malloc_usable_size(again));
    } else {
        fprintf(stderr, "misuse: unknown act %s\n", act);
        return 2;
    }
    printf("misuse: %s went unnoticed\n", act);
    return 1;
}
