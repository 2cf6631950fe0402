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
 *   argp      argp_parse with --help, which prints the help and calls exit()
 *             from inside the C library, whose frames then hold the parser's
 *             storage and the hook the program made: still reachable
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <argp.h>
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

static error_t parse_opt(int key, char *arg, struct argp_state *state)
{
    (void)arg;
    if (key != ARGP_KEY_INIT)
        return ARGP_ERR_UNKNOWN;
    char *hook = malloc(40);
    if (!hook)
        exit(2);
    strcpy(hook, "the program's hook");
    state->hook = hook;
    return 0;
}

__attribute__((noinline)) static void with_argp(const char *prog)
{
    static struct argp_option options[] = {{"name", 'n', "NAME", 0, "a name", 0}, {0}};
    static struct argp argp = {options, parse_opt, NULL, "exitframes argp", 0, 0, 0};
    char *args[] = {(char *)prog, (char *)"--help", NULL};
    argp_parse(&argp, 2, args, 0, NULL, NULL);
    exit(3); /* not reached: --help exits */
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "returned";
    if (strcmp(mode, "argp") == 0)
        with_argp(argv[0]);
    if (strcmp(mode, "deep") == 0)
        deep();
    if (strcmp(mode, "register") == 0)
        in_register();
    if (strcmp(mode, "returned") != 0) {
        fprintf(stderr, "usage: exitframes returned|deep|register|argp\n");
        return 2;
    }
    struct opts o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < 5; i++)
        append(&o, words[i]);
    printf("%d\n", total(&o));
    return 0;
}
