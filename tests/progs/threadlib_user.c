/*
 * threadlib_user — a program linking tests/progs/lib/threadlib.c: it frees
 * 2 000 blocks its worker thread made (each checked: 100 bytes of 'x'),
 * then returns, and the library's destructor joins the worker, which
 * allocates as it ends. Prints "freed N blocks".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *threadlib_take(void);

int main(void)
{
    int freed = 0;
    while (freed < 2000) {
        char *p = threadlib_take();
        if (!p) {
            usleep(100);
            continue;
        }
        for (int i = 0; i < 100; i++)
            if (p[i] != 'x')
                return 1;
        free(p);
        freed++;
    }
    printf("freed %d blocks\n", freed);
    return 0;
}
