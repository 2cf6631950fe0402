/*
 * painted.h — for the test programs: a thread on a stack of the program's
 * own, painted first, and how many bytes of it the thread touched (the
 * deepest byte that lost the paint, up to the stack's top).
 */
#ifndef PF_PROGS_PAINTED_H
#define PF_PROGS_PAINTED_H

#include <pthread.h>
#include <string.h>

#define PAINT 0xa5

/* Bytes of [stack, stack + size) from the lowest one that lost the paint
 * up to the top: what a stack growing down from stack + size used. */
static inline size_t painted_used(const char *stack, size_t size)
{
    size_t untouched = 0;
    while (untouched < size && (unsigned char)stack[untouched] == PAINT)
        untouched++;
    return size - untouched;
}

/* Paints [stack, stack + size) and starts fn(arg) on it in *t; 0, or -1
 * when the thread cannot start. */
static inline int painted_start(pthread_t *t, char *stack, size_t size, void *(*fn)(void *), void *arg)
{
    memset(stack, PAINT, size);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstack(&attr, stack, size) != 0 ||
        pthread_create(t, &attr, fn, arg) != 0)
        return -1;
    return 0;
}

/* fn(arg) on [stack, stack + size), painted first, joined (its result in
 * *res when res is not NULL); the bytes of the stack it used, or 0 when it
 * could not run. */
static inline size_t painted_run(char *stack, size_t size, void *(*fn)(void *), void *arg, void **res)
{
    pthread_t t;
    if (painted_start(&t, stack, size, fn, arg) != 0 || pthread_join(t, res) != 0)
        return 0;
    return painted_used(stack, size);
}

#endif
