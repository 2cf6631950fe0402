/*
 * leaky — leaks a known set of objects from distinct functions, for the leak
 * report tests:
 *   leak_small    5 x malloc(100)
 *   leak_strings  3 x strdup of an 11-character string (12 bytes each)
 *   leak_big      1 x calloc(1, 300000)
 *   leak_realloc  1 block grown by realloc to 5000 bytes
 * and frees everything else it allocates. The leaks stay reachable from a
 * global. With the argument "free" it frees the leaks too, so the program's
 * own objects at exit are none; with "lose" it drops every pointer to them,
 * so they are all definitely lost; with "zero" it also makes five blocks
 * of malloc(0) (leak_zero), keeps three and drops two (definitely lost);
 * with "retitle" it writes over its
 * argv[0], control characters included, as a server writes its status
 * there for ps (postgres). Its output never depends on addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the leaked pointers go, so the compiler keeps every allocation. */
void *volatile leaky_sink[16];
static int nsink;

static void keep(void *p)
{
    if (!p) {
        fprintf(stderr, "leaky: out of memory\n");
        exit(2);
    }
    leaky_sink[nsink++] = p;
}

__attribute__((noinline)) void leak_small(void)
{
    for (int i = 0; i < 5; i++) {
        char *p = malloc(100);
        keep(p);
        memset(p, 'a' + i, 100);
    }
}

__attribute__((noinline)) void leak_strings(void)
{
    /* Built at run time so the compiler cannot turn strdup into malloc. */
    char text[16];
    volatile char seed = 'h';
    snprintf(text, sizeof text, "%cello world", seed);
    for (int i = 0; i < 3; i++)
        keep(strdup(text));
}

__attribute__((noinline)) void leak_big(void)
{
    keep(calloc(1, 300000));
}

__attribute__((noinline)) void leak_realloc(void)
{
    char *p = malloc(1000);
    if (!p)
        exit(2);
    memset(p, 'r', 1000);
    for (size_t n = 2000; n <= 5000; n += 1500) {
        char *q = realloc(p, n);
        if (!q)
            exit(2);
        p = q;
    }
    keep(p);
}

/* Zero-byte blocks: three kept, two dropped. */
void *volatile leaky_zero[3];

__attribute__((noinline)) void leak_zero(void)
{
    for (int i = 0; i < 2; i++) {
        void *volatile dropped = malloc(0);
        if (!dropped)
            exit(2);
        dropped = NULL;
    }
    for (int i = 0; i < 3; i++)
        if (!(leaky_zero[i] = malloc(0)))
            exit(2);
}

/* Allocations that are all freed: they must not show in the leak report. */
struct node {
    struct node *next;
    char payload[40];
};

__attribute__((noinline)) static unsigned long churn(void)
{
    unsigned long sum = 0;
    struct node *head = NULL;
    for (int i = 0; i < 1000; i++) {
        struct node *n = malloc(sizeof *n);
        if (!n)
            exit(2);
        n->next = head;
        n->payload[0] = (char)i;
        head = n;
    }
    while (head) {
        struct node *n = head->next;
        sum += (unsigned char)head->payload[0];
        free(head);
        head = n;
    }
    for (size_t sz = 1; sz < 200000; sz = sz * 3 + 1) {
        char *p = malloc(sz);
        if (!p)
            exit(2);
        p[sz - 1] = 1;
        sum += (unsigned char)p[sz - 1];
        char *q = realloc(p, sz * 2);
        if (!q)
            exit(2);
        free(q);
    }
    char *d = strdup("temporary");
    if (d)
        sum += strlen(d);
    free(d);
    return sum;
}

/* Clears the stack below main, where stale copies of the pointers were. */
__attribute__((noinline)) static void scrub(void)
{
    char buf[64 * 1024];
    explicit_bzero(buf, sizeof buf);
    __asm__ __volatile__("" : : "r"(buf) : "memory");
}

int main(int argc, char **argv)
{
    int free_all = argc > 1 && strcmp(argv[1], "free") == 0;
    int lose = argc > 1 && strcmp(argv[1], "lose") == 0;
    if (argc > 1 && strcmp(argv[1], "retitle") == 0) {
        static const char title[] = "x\"q\n\t\001status: idle ";
        size_t n = strlen(argv[0]);
        for (size_t i = 0; i < n; i++)
            argv[0][i] = title[i % (sizeof title - 1)];
    }
    unsigned long sum = churn();
    leak_small();
    leak_strings();
    leak_big();
    leak_realloc();
    if (argc > 1 && strcmp(argv[1], "zero") == 0) {
        leak_zero();
        scrub();
    }
    printf("leaky: churn %lu, %d objects kept\n", sum, nsink);
    if (free_all) {
        for (int i = 0; i < nsink; i++)
            free(leaky_sink[i]);
        printf("leaky: all freed\n");
    }
    if (lose) {
        for (int i = 0; i < nsink; i++)
            leaky_sink[i] = NULL;
        scrub();
    }
    return 0;
}
