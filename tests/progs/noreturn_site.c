/*
 * noreturn_site — main's last instruction is its call of a function that
 * does not return, and that function loses the blocks it allocates, then
 * exits: the return address of main's frame is past main's end, so a
 * frame named by it would take whatever follows main for its function.
 */
#include <stdlib.h>

static void *volatile sink;

__attribute__((noreturn, noinline)) static void serve(int n)
{
    for (int i = 0; i < n; i++)
        sink = malloc(24 + (size_t)i);
    sink = NULL;
    exit(0);
}

int main(int argc, char **argv)
{
    (void)argv;
    serve(argc + 2);
}
