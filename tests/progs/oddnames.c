/*
 * oddnames — makes typed families (through the preloaded pfalloc's
 * pf_family_get, found with dlsym) whose names a reader of the reports
 * must take as names, not as text of its own: Unicode's line and paragraph
 * separators and NEL (line breaks to Python's str.splitlines), a C1
 * control (CSI, which a terminal takes as an escape sequence), the lines
 * that open and close a text report, a leak row's site and markup. It
 * keeps one object in each, reachable from a global, so the exit report
 * lists every family and a leak row for each.
 * Usage: oddnames
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

/* The names, in the order of their object sizes (40, 48, ...). */
const char *const odd_names[] = {
    "struct line\xe2\x80\xa8sep",
    "struct para\xe2\x80\xa9sep",
    "struct nel\xc2\x85next",
    "struct csi\xc2\x9b" "31m",
    "==== pfalloc report: pid 1 (fake), reason exit, 0.000 s since start ====",
    "==== end of pfalloc report ====",
    "x+0x1 (/bin/sh+0x2)",
    "struct <b>&\"amp\"</b>",
};
#define NNAMES (sizeof odd_names / sizeof odd_names[0])
void *kept[NNAMES];

int main(void)
{
    void *(*get)(const char *, size_t) = (void *(*)(const char *, size_t))dlsym(RTLD_DEFAULT, "pf_family_get");
    void *(*alloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "pf_family_alloc");
    if (!get || !alloc) {
        fprintf(stderr, "oddnames: pfalloc is not preloaded\n");
        return 2;
    }
    for (size_t i = 0; i < NNAMES; i++) {
        void *fam = get(odd_names[i], 40 + 8 * i);
        if (!fam || !(kept[i] = alloc(fam, 1))) {
            fprintf(stderr, "oddnames: family %zu not made\n", i);
            return 1;
        }
    }
    printf("oddnames: %zu families\n", NNAMES);
    return 0;
}
