/*
 * mm_demo.c — a Linux Memory Manager program on pfalloc's uapi_mm.h: two
 * registered structures, one that is never registered, a linked list built
 * with XCALLOC, the three printers, then everything freed and printed again.
 * The printers write to fd 1 directly, so stdio is flushed before each.
 */
#include <stdio.h>
#include <string.h>

#include "uapi_mm.h"

typedef struct emp_ {
    char name[32];
    uint32_t emp_id;
} emp_t;

typedef struct student_ {
    char name[32];
    uint32_t rollno;
    uint32_t marks[3];
    struct student_ *next;
} student_t;

/* Larger than a page: the original refused it, pfalloc takes it. */
typedef struct {
    double samples[1024];
} frame_t;

static void heading(const char *text)
{
    printf("\n== %s ==\n", text);
    fflush(stdout);
}

int main(void)
{
    mm_init();
    MM_REG_STRUCT(emp_t);
    MM_REG_STRUCT(student_t);

    emp_t *boss = XCALLOC(1, emp_t);
    emp_t *team = XCALLOC(3, emp_t);
    frame_t *frame = XCALLOC(2, frame_t); /* never registered */
    if (!boss || !team || !frame) {
        fputs("mm_demo: out of memory\n", stderr);
        return 1;
    }
    strcpy(boss->name, "Ada");
    frame[1].samples[1023] = 1.0;

    student_t *first = NULL, *last = NULL;
    for (uint32_t i = 0; i < 120; i++) {
        student_t *s = XCALLOC(1, student_t);
        if (!s) {
            fputs("mm_demo: out of memory\n", stderr);
            return 1;
        }
        s->rollno = i;
        if (last)
            last->next = s;
        else
            first = s;
        last = s;
    }

    heading("registered page families");
    mm_print_registered_page_families();
    heading("memory usage of emp_t");
    mm_print_memory_usage("emp_t");
    heading("block usage");
    mm_print_block_usage();

    while (first) {
        student_t *next = first->next;
        XFREE(first);
        first = next;
    }
    XFREE(team);
    XFREE(boss);
    XFREE(frame);
    XFREE(NULL); /* a no-op, as free(NULL) */

    heading("block usage after the frees");
    mm_print_block_usage();
    heading("memory usage, all families");
    mm_print_memory_usage(NULL);
    return 0;
}
