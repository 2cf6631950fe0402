/*
 * list.h — the doubly-linked, NULL-terminated intrusive list that holds
 * spans: the pool's lists, a family's partial lists and its list of all
 * spans. The element carries its two links as fields of its own, named by
 * the caller, so one struct can sit on two lists at once; the list itself
 * is a pointer to its first element. Macros, so the links stay plain
 * pointer fields of the element (no layout change, no casts) and the code
 * is what the hand-written lists were. No allocation, no lock: the caller
 * holds whatever guards the list. e may be evaluated more than once.
 * Invariant: e->prev == NULL iff *head == e; e->next->prev == e.
 */
#ifndef PF_LIST_H
#define PF_LIST_H

#include <stddef.h>

/* Puts e first on the list *head (head is evaluated once: the stores
 * through e could otherwise make the compiler compute it again). */
#define PF_LIST_PUSH(head, e, next, prev)                                                          \
    do {                                                                                           \
        __typeof__(head) pf_list_h_ = (head);                                                      \
        (e)->prev = NULL;                                                                          \
        (e)->next = *pf_list_h_;                                                                   \
        if (*pf_list_h_)                                                                           \
            (*pf_list_h_)->prev = (e);                                                             \
        *pf_list_h_ = (e);                                                                         \
    } while (0)

/* Takes e off the list *head (head is evaluated only when e is first) and
 * clears its links. */
#define PF_LIST_UNLINK(head, e, next, prev)                                                        \
    do {                                                                                           \
        if ((e)->prev)                                                                             \
            (e)->prev->next = (e)->next;                                                           \
        else                                                                                       \
            *(head) = (e)->next;                                                                   \
        if ((e)->next)                                                                             \
            (e)->next->prev = (e)->prev;                                                           \
        (e)->next = (e)->prev = NULL;                                                              \
    } while (0)

#endif
