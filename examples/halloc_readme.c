/*
 * halloc_readme.c — the usage example of Halloc's README, built against
 * pfalloc's halloc.h without changes: ten typeX records, the three printers,
 * then the records go back. Only halloc.h is included, as in the original
 * (it brings assert() along).
 */
#include "halloc.h"

typedef struct {
    char name[25];
    long values[10];
} typeX;

int main(void)
{
    typeX *p = halloc(typeX, 10);

    assert(p != NULL);

    halloc_print_saved_page_items();

    halloc_print_total_memory_usage();
    halloc_print_type_memory_usage(typeX);

    hfree(p);

    halloc_print_total_memory_usage();
}
