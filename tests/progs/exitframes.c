/*
 * exitframes — what the exit report reads of the exiting thread's stack.
 *   returned  main keeps a list (a head cell and 9 more, each with a
 *             string) in a local struct and returns without freeing it:
 *             the exit's frames are laid over main's dead one, whose stale
 *             words still point at the list; valgrind calls it definitely
 *             lost (the head, 24 bytes) and indirectly lost (the rest)
 *   deep      the same list in a local of a function that calls exit():
 *             its frame is live, the list still reachable
 *   register  a block whose only pointer a function keeps in a
 *             callee-saved register across its call of exit() (made through
 *             a pointer, so the compiler keeps it for after the call): still
 *             reachable
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cell {
    struct cell *next;
    int action;
    char *val;
};

struct opts {
    struct cell *head, *tail;
    int x;
    char *name;
};

static const char *const words[] = {"a", "bb", "ccc", "dddd", "eeeee"};

__attribute__((noinline)) static void append(struct opts *o, const char *v)
{
    struct cell *c = malloc(sizeof *c);
    if (!c)
        exit(2);
    c->next = NULL;
    c->action = 1;
    c->val = strdup(v);
    if (o->tail)
        o->tail->next = c;
    else
        o->head = c;
    o->tail = c;
}

static int total(const struct opts *o)
{
    int n = 0;
    for (const struct cell *c = o->head; c; c = c->next)
        n += (int)strlen(c->val);
    return n;
}

static void (*volatile end)(int) = exit;

__attribute__((noinline)) static void deep(void)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < 5; i++)
        append(&o, words[i]);
    printf("%d\n", total(&o));
    fflush(stdout);
    end(0);
    printf("%d\n", total(&o)); /* not reached */
}

__attribute__((noinline)) static void in_register(void)
{
    char *p = malloc(100);
    if (!p)
        exit(2);
    memset(p, 'r', 100);
    printf("%d\n", p[0]);
    fflush(stdout);
    end(0);
    printf("%d\n", p[1]); /* not reached: keeps p after the call */
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "returned";
    if (strcmp(mode, "deep") == 0)
        deep();
    if (strcmp(mode, "register") == 0)
        in_register();
    if (strcmp(mode, "returned") != 0) {
        fprintf(stderr, "usage: exitframes returned|deep|register\n");
        return 2;
    }
    struct opts o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < 5; i++)
        append(&o, words[i]);
    printf("%d\n", total(&o));
    return 0;
}
