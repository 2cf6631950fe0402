/*
 * badheap — commits one heap error, named by its argument, of the kinds
 * allocator test suites probe: writes past the end (by 1 and 8 bytes, and
 * far), writes after free, double and invalid frees, realloc of a freed
 * block, mismatched C++ sized and aligned delete, touching a zero-size
 * block, malloc_usable_size of a pointer into a block, of a freed block and
 * of a static buffer, a double free and a realloc of a freed block of
 * 9 MiB (above what the checking mode's quarantine holds), a free of a
 * pointer 4 KiB into a freed block of 1 MiB, and an overflow left in a
 * block that is never freed.
 * It prints
 * "pointer 0x..." before the act and "survived" when it returns, so a run
 * that ends in neither a signal nor a message went unnoticed.
 * The C++ operators are reached by their symbol names, so this C program
 * calls whatever operator new and delete the process has.
 *
 * The acts usable, zero-ok, cxx-ok and reuse are correct programs that
 * print what they saw. overflow-at-term and quarantine-at-term end by
 * SIGTERM with 97 blocks freed (the checking mode holds them back) and 3
 * kept, the first of them overflowed by overflow-at-term. alloc-until-term
 * prints "started" and allocates blocks of 24..136 bytes, keeping them all,
 * until a signal ends it (or 20 s pass). fork-at-exit returns from main while
 * another thread forks children that malloc, free and _exit, on and on.
 *
 * usage: badheap ACT  (badheap list: the acts of misuse)
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The acts are the point of the program. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wstringop-overflow"

#define SMALL 24
#define LARGE 300000
#define HUGE ((size_t)9 << 20)

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

/* Allocations and frees of one size: enough to push a freed block out of
 * any quarantine, and to hand its slot to a new owner where there is none. */
static void churn(size_t n)
{
    for (int i = 0; i < 20000; i++) {
        char *q = hide(malloc(n));
        q[0] = 1;
        free(q);
    }
}

static char static_buf[256];

static void over(size_t n, size_t by)
{
    char *p = hide(malloc(n));
    memset(p, 1, n);
    show(p);
    memset(hide(p + n), 0, by);
    free(p);
}

static void uaf(size_t n)
{
    char *p = hide(malloc(n));
    memset(p, 1, n);
    show(p);
    free(p);
    p[n / 2] = 7;
    churn(n);
}

static void double_free_later(void)
{
    /* The slot may have a new owner by the second free. */
    char *p = hide(malloc(SMALL));
    show(p);
    free(p);
    char *q = hide(malloc(SMALL));
    memset(q, 1, SMALL);
    free(hide(p));
    printf("new owner %s\n", q == p ? "freed" : "kept");
}

static void sized_delete(void)
{
    void *(*op_new)(size_t) = (void *(*)(size_t))sym("_Znwm");
    void (*op_del)(void *, size_t) = (void (*)(void *, size_t))sym("_ZdlPvm");
    void *p = op_new(40);
    show(p);
    op_del(p, 24);
}

static void aligned_delete(void)
{
    void *(*op_new)(size_t, size_t) = (void *(*)(size_t, size_t))sym("_ZnwmSt11align_val_t");
    void (*op_del)(void *, size_t, size_t) = (void (*)(void *, size_t, size_t))sym("_ZdlPvmSt11align_val_t");
    void *p = op_new(64, 64);
    show(p);
    op_del(p, 64, 256);
}

static void unaligned_delete_of_aligned(void)
{
    void *(*op_new)(size_t, size_t) = (void *(*)(size_t, size_t))sym("_ZnwmSt11align_val_t");
    void (*op_del)(void *, size_t) = (void (*)(void *, size_t))sym("_ZdlPvm");
    void *p = op_new(64, 128);
    show(p);
    op_del(p, 64);
}

/* Forks on and on: each child allocates, frees, says "done PID" and
 * ends; the parent says "forked PID" first. */
static void say(const char *what, long pid)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%s %ld\n", what, pid);
    if (write(1, line, (size_t)n) != n)
        _exit(4);
}

static void *forker(void *arg)
{
    (void)arg;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) {
            char *p = hide(malloc(100));
            p[0] = 1;
            free(p);
            say("done", (long)getpid());
            _exit(0);
        }
        if (pid > 0) {
            say("forked", (long)pid);
            waitpid(pid, NULL, 0);
        }
    }
    return NULL;
}

static const char *const acts[] = {
    "overflow-1",  "overflow-8",      "large-overflow-1", "large-overflow-far", "uaf-write",
    "large-uaf-write", "large-uaf-read", "double-free",  "double-free-later",  "large-double-free",
    "free-stack",  "free-static",     "free-interior",   "realloc-freed",      "sized-delete",
    "aligned-delete", "unaligned-delete", "zero-read",   "zero-write",         "overflow-at-exit",
    "underflow-1", "usable-interior", "usable-freed", "usable-static", "huge-double-free",
    "huge-realloc-freed", "large-interior-after-free", NULL,
};

/* malloc_usable_size of what is no live block's start: a pointer 16 bytes
 * into a block of 1000, a freed block, a static buffer. */
static void usable_of(const char *what)
{
    char *p = hide(malloc(1000));
    char *q = what[0] == 'i' ? p + 16 : what[0] == 'f' ? p : static_buf;
    if (what[0] == 'f')
        free(p);
    show(q);
    printf("malloc_usable_size returned %zu\n", malloc_usable_size(hide(q)));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: badheap ACT|list\n");
        return 2;
    }
    const char *act = argv[1];
    volatile char sink;
    if (strcmp(act, "list") == 0) {
        for (int i = 0; acts[i]; i++)
            puts(acts[i]);
        return 0;
    } else if (strcmp(act, "overflow-1") == 0) {
        over(SMALL, 1);
    } else if (strcmp(act, "overflow-8") == 0) {
        over(SMALL, 8);
    } else if (strcmp(act, "large-overflow-1") == 0) {
        over(LARGE, 1);
    } else if (strcmp(act, "large-overflow-far") == 0) {
        over(LARGE, 200);
    } else if (strcmp(act, "uaf-write") == 0) {
        uaf(SMALL);
    } else if (strcmp(act, "large-uaf-write") == 0) {
        uaf(LARGE);
    } else if (strcmp(act, "large-uaf-read") == 0) {
        char *p = hide(malloc(LARGE));
        memset(p, 1, LARGE);
        show(p);
        free(p);
        sink = p[100];
    } else if (strcmp(act, "double-free") == 0) {
        char *p = hide(malloc(SMALL));
        show(p);
        free(p);
        free(hide(p));
    } else if (strcmp(act, "double-free-later") == 0) {
        double_free_later();
    } else if (strcmp(act, "large-double-free") == 0) {
        char *p = hide(malloc(LARGE));
        show(p);
        free(p);
        free(hide(p));
    } else if (strcmp(act, "huge-double-free") == 0) {
        char *p = hide(malloc(HUGE));
        show(p);
        free(p);
        free(hide(p));
    } else if (strcmp(act, "huge-realloc-freed") == 0) {
        char *p = hide(malloc(HUGE));
        show(p);
        free(p);
        p = realloc(hide(p), 100);
        printf("realloc returned %p\n", (void *)p);
    } else if (strcmp(act, "large-interior-after-free") == 0) {
        char *p = hide(malloc((size_t)1 << 20));
        show(p + 4096);
        free(p);
        free(hide(p + 4096));
    } else if (strcmp(act, "free-stack") == 0) {
        char buf[64];
        buf[0] = 1;
        show(buf);
        free(hide(buf));
    } else if (strcmp(act, "free-static") == 0) {
        show(static_buf + 32);
        free(hide(static_buf + 32));
    } else if (strcmp(act, "free-interior") == 0) {
        char *p = hide(malloc(64));
        show(p);
        free(hide(p + 16));
    } else if (strcmp(act, "realloc-freed") == 0) {
        char *p = hide(malloc(SMALL));
        show(p);
        free(p);
        p = realloc(hide(p), 100);
        printf("realloc returned %p\n", (void *)p);
    } else if (strcmp(act, "sized-delete") == 0) {
        sized_delete();
    } else if (strcmp(act, "aligned-delete") == 0) {
        aligned_delete();
    } else if (strcmp(act, "unaligned-delete") == 0) {
        unaligned_delete_of_aligned();
    } else if (strcmp(act, "zero-read") == 0) {
        char *p = hide(malloc(0));
        show(p);
        sink = p[0];
        free(p);
    } else if (strcmp(act, "zero-write") == 0) {
        char *p = hide(malloc(0));
        show(p);
        *(volatile char *)p = 1;
        free(p);
    } else if (strcmp(act, "overflow-at-exit") == 0) {
        char *p = hide(malloc(SMALL));
        show(p);
        p[SMALL] = 1;
    } else if (strcmp(act, "overflow-at-term") == 0 || strcmp(act, "quarantine-at-term") == 0) {
        static char *kept[3];
        char *all[100];
        for (int i = 0; i < 100; i++)
            all[i] = hide(malloc(SMALL));
        for (int i = 0; i < 100; i++) {
            if (i % 34 == 0)
                kept[i / 34] = all[i];
            else
                free(all[i]);
        }
        show(kept[0]);
        if (act[0] == 'o')
            kept[0][SMALL] = 1;
        raise(SIGTERM);
    } else if (strcmp(act, "alloc-until-term") == 0) {
        void *volatile last = static_buf;
        puts("started");
        fflush(stdout);
        for (long i = 0; i < 400000000L && last; i++)
            last = malloc(24 + (size_t)(i & 7) * 16);
        puts(last ? "not ended" : "out of memory");
    } else if (strcmp(act, "fork-at-exit") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, forker, NULL) != 0)
            return 3;
        struct timespec ms = {0, 50 * 1000 * 1000};
        nanosleep(&ms, NULL);
        return 0;
    } else if (strcmp(act, "underflow-1") == 0) {
        char *p = hide(malloc(SMALL));
        show(p);
        p[-1] = 1;
        free(p);
    } else if (strncmp(act, "usable-", 7) == 0) {
        usable_of(act + 7);
    } else if (strcmp(act, "usable") == 0) {
        /* Correct use: every usable byte may be written. */
        char *p = hide(malloc(SMALL));
        size_t n = malloc_usable_size(p);
        memset(p, 1, n);
        printf("usable %zu\n", n);
        free(p);
    } else if (strcmp(act, "zero-ok") == 0) {
        /* Correct use: distinct zero-size blocks, freed, resized. */
        static void *z[1000];
        for (int i = 0; i < 1000; i++)
            z[i] = hide(malloc(0));
        int same = 0;
        for (int i = 1; i < 1000; i++)
            same += z[i] == z[i - 1];
        void *(*op_new)(size_t) = (void *(*)(size_t))sym("_Znwm");
        void (*op_del)(void *, size_t) = (void (*)(void *, size_t))sym("_ZdlPvm");
        void *c = op_new(0);
        op_del(c, 0);
        char *r = hide(realloc(z[0], 10));
        memcpy(r, "123456789", 10);
        for (int i = 1; i < 1000; i++)
            free(z[i]);
        free(r);
        printf("zero-size blocks alike: %d\n", same);
    } else if (strcmp(act, "cxx-ok") == 0) {
        void *(*op_new)(size_t) = (void *(*)(size_t))sym("_Znwm");
        void *(*op_new_al)(size_t, size_t) = (void *(*)(size_t, size_t))sym("_ZnwmSt11align_val_t");
        void (*op_del)(void *, size_t) = (void (*)(void *, size_t))sym("_ZdlPvm");
        void (*op_del_al)(void *, size_t) = (void (*)(void *, size_t))sym("_ZdlPvSt11align_val_t");
        void (*op_del_sal)(void *, size_t, size_t) =
            (void (*)(void *, size_t, size_t))sym("_ZdlPvmSt11align_val_t");
        for (size_t n = 1; n < 300000; n = n * 3 + 1) {
            op_del(op_new(n), n);
            op_del_al(op_new_al(n, 64), 64);
            op_del_sal(op_new_al(n, 4096), n, 4096);
        }
    } else if (strcmp(act, "reuse") == 0) {
        /* A freed block's address is not handed out again at once. */
        char *p = hide(malloc(SMALL));
        free(p);
        char *q = hide(malloc(SMALL));
        printf("reused at once: %s\n", p == q ? "yes" : "no");
        free(q);
    } else {
        fprintf(stderr, "badheap: unknown act %s\n", act);
        return 2;
    }
    (void)sink;
    puts("survived");
    return 0;
}
