/*
 * test_list.c — the intrusive span list (list.h): push puts an element
 * first, unlink takes it from the front, the middle or the end and clears
 * its links, and one element sits on two lists through two pairs of links.
 */
#include <criterion/criterion.h>

#include "list.h"

struct node {
    int id;
    struct node *next, *prev;   /* first list */
    struct node *anext, *aprev; /* second list */
};

/* The ids on the list from its head, checking every back link on the way. */
static void expect(struct node *head, const int *ids, int n)
{
    int k = 0;
    cr_assert(!head || head->prev == NULL);
    for (struct node *e = head; e; e = e->next, k++) {
        cr_assert_lt(k, n);
        cr_assert_eq(e->id, ids[k]);
        if (e->next)
            cr_assert_eq(e->next->prev, e);
    }
    cr_assert_eq(k, n);
}

Test(list, push_and_unlink_everywhere)
{
    struct node a = {1, 0, 0, 0, 0}, b = {2, 0, 0, 0, 0}, c = {3, 0, 0, 0, 0}, d = {4, 0, 0, 0, 0};
    struct node *head = NULL;
    PF_LIST_PUSH(&head, &a, next, prev);
    PF_LIST_PUSH(&head, &b, next, prev);
    PF_LIST_PUSH(&head, &c, next, prev);
    PF_LIST_PUSH(&head, &d, next, prev);
    expect(head, (int[]){4, 3, 2, 1}, 4);
    PF_LIST_UNLINK(&head, &c, next, prev); /* middle */
    expect(head, (int[]){4, 2, 1}, 3);
    cr_assert(c.next == NULL && c.prev == NULL);
    PF_LIST_UNLINK(&head, &d, next, prev); /* first */
    expect(head, (int[]){2, 1}, 2);
    PF_LIST_UNLINK(&head, &a, next, prev); /* last */
    expect(head, (int[]){2}, 1);
    PF_LIST_UNLINK(&head, &b, next, prev); /* only */
    cr_assert_null(head);
    PF_LIST_PUSH(&head, &c, next, prev);
    expect(head, (int[]){3}, 1);
}

Test(list, one_element_on_two_lists)
{
    struct node a = {1, 0, 0, 0, 0}, b = {2, 0, 0, 0, 0};
    struct node *l1 = NULL, *l2 = NULL;
    PF_LIST_PUSH(&l1, &a, next, prev);
    PF_LIST_PUSH(&l1, &b, next, prev);
    PF_LIST_PUSH(&l2, &b, anext, aprev);
    PF_LIST_PUSH(&l2, &a, anext, aprev);
    cr_assert(l1 == &b && b.next == &a && a.prev == &b);
    cr_assert(l2 == &a && a.anext == &b && b.aprev == &a);
    PF_LIST_UNLINK(&l2, &a, anext, aprev);
    cr_assert(l2 == &b && b.aprev == NULL);
    expect(l1, (int[]){2, 1}, 2); /* the first list is untouched */
}
