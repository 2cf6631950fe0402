/*
 * misuse — commits one act of heap misuse, named by its argument, after
 * printing the pointer involved on stdout ("pointer 0x..."). Under pfalloc
 * each act must stop the process with one line on stderr and SIGABRT.
 * The C++ operators are reached by their symbol names, so this C program
 * calls whatever operator new and delete the process has.
 *
 * usage: misuse free|realloc|delete|delete-array|delete-sized|large|
 *               foreign|realloc-foreign|interior|interior-large|usable-foreign|
 *               usable-freed|interior-recarved|interior-long-name|typed-newline
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

/* interior-recarved: blocks of 48 bytes, all allocated by fill_48, fill a
 * span and are freed; malloc_trim gives the span to the pool, and the span
 * of a block of 128 bytes (take_128's) is carved from it again. The slots
 * carved after that block's, into the thread's cache, were never
 * allocated as 128-byte blocks: a pointer into the next one names no
 * allocation, fill_48's least of all. */
#define RECARVED_N 3000
static void *recarved[RECARVED_N];

__attribute__((noipa)) static void fill_48(void)
{
    for (int i = 0; i < RECARVED_N; i++) {
        if (!(recarved[i] = malloc(48)))
            abort();
        memset(recarved[i], 1, 48);
    }
}

__attribute__((noipa)) static char *take_128(void)
{
    char *p = malloc(128);
    if (!p)
        abort();
    memset(p, 2, 128);
    return p;
}

/* interior-long-name: a pointer into a block allocated by a function
 * whose name is long (as mangled C++ names are): the line names it whole,
 * with its module. */
__attribute__((noipa)) static char *allocate_a_block_in_a_function_whose_name_is_as_long_as_the_names_of_templated_code_which_a_fatal_line_must_still_hold_whole_with_its_module(void)
{
    char *p = malloc(64);
    if (!p)
        abort();
    memset(p, 1, 64);
    return p;
}

static void interior_recarved(void)
{
    fill_48();
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < RECARVED_N; i++) {
        uintptr_t a = (uintptr_t)recarved[i];
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
        free(recarved[i]);
    }
    malloc_trim(0);
    char *b = hide(take_128());
    if ((uintptr_t)b < lo || (uintptr_t)b > hi) {
        printf("misuse: the 128-byte block at %p is not where the 48-byte ones were\n", (void *)b);
        exit(3);
    }
    char *p = hide(b + 128 + 8);
    show(p);
    free(p);
}

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
    } else if (strcmp(act, "interior-long-name") == 0) {
        char *p = hide(allocate_a_block_in_a_function_whose_name_is_as_long_as_the_names_of_templated_code_which_a_fatal_line_must_still_hold_whole_with_its_module());
        show(p);
        free(hide(p + 16));
    } else if (strcmp(act, "typed-newline") == 0) {
        /* A double free in a typed family (pfalloc's API, found by name)
         * whose name holds a newline. */
        void *(*get)(const char *, size_t) = (void *(*)(const char *, size_t))sym("pf_family_get");
        void *(*alloc)(void *, size_t) = (void *(*)(void *, size_t))sym("pf_family_alloc");
        void *p = hide(alloc(get("struct\nodd", 40), 1));
        memset(p, 1, 40);
        show(p);
        void *again = hide(p);
        free(p);
        free(again);
    } else if (strcmp(act, "interior-recarved") == 0) {
        interior_recarved();
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
