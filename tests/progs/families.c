/*
 * families — makes N typed families (through the preloaded pfalloc's
 * pf_family_get, found with dlsym), allocates one object in each and keeps
 * it, so its reports are as big as the families table gets. With "info" it
 * then writes malloc_info's XML to stdout. With "wide" the names are full of
 * control characters, six bytes each once escaped in JSON, so that a JSON
 * report of 500 families weighs several hundred KiB. With "cookie" it writes
 * malloc_info's XML to a stream whose write function asks mallinfo2 (as a
 * stream whose writer allocates or inspects the heap would): it must not
 * find the allocator's lock held by malloc_info. With "mallinfo" it then
 * keeps 10 000 blocks of 3000 bytes and 10 of 1 MiB live, prints how much
 * mallinfo2's figures grew ("mallinfo2: uordblks +N hblks +N hblkhd +N")
 * and writes malloc_info's XML: the size class and "large" are registered
 * after the N families.
 * With "names" it also makes families whose names no XML may hold as they
 * are (a control character, a character cut in half by the 63-byte cut
 * of reports, U+FFFF, tab and newline, XML's own markup) and writes
 * malloc_info's XML.
 * Usage: families N [info|wide|cookie|mallinfo|names]
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t cookie_bytes;
/* Kept live to the end, and global so the compiler keeps the mallocs. */
void *small_blocks[10000], *large_blocks[10];

static ssize_t cookie_write(void *c, const char *buf, size_t n)
{
    (void)c;
    (void)buf;
    struct mallinfo2 m = mallinfo2();
    if (m.uordblks == 0)
        return -1;
    cookie_bytes += n;
    return (ssize_t)n;
}

typedef void *(*get_fn)(const char *, size_t);
typedef void *(*alloc_fn)(void *, size_t);

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 400;
    int wide = argc > 2 && strcmp(argv[2], "wide") == 0;
    get_fn get = (get_fn)dlsym(RTLD_DEFAULT, "pf_family_get");
    alloc_fn alloc = (alloc_fn)dlsym(RTLD_DEFAULT, "pf_family_alloc");
    if (!get || !alloc) {
        fprintf(stderr, "families: pfalloc is not preloaded\n");
        return 2;
    }
    for (int i = 0; i < n; i++) {
        char name[80];
        snprintf(name, sizeof name, "family with a long name for big reports, padded to limit %04d", i);
        if (wide) {
            snprintf(name, sizeof name, "f%04d ", i);
            memset(name + 6, 1, 57);
            name[63] = 0;
        }
        void *f = get(name, 48);
        if (!f || !alloc(f, 1)) {
            fprintf(stderr, "families: family %d failed\n", i);
            return 2;
        }
    }
    if (argc > 2 && strcmp(argv[2], "names") == 0) {
        char cut[70];
        memset(cut, 'x', 62);
        strcpy(cut + 62, "\xc3\xa9"); /* é across the cut at 63 bytes */
        const char *const odd[] = {"ctl\x01name", cut, "nonchar\xef\xbf\xbf", "tab\tnl\nend",
                                   "mark<&>\"up\"", "bad\xff\xc3"};
        for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
            void *f = get(odd[i], 24);
            if (!f || !alloc(f, 1)) {
                fprintf(stderr, "families: odd family %zu failed\n", i);
                return 2;
            }
        }
        if (malloc_info(0, stdout) != 0) {
            fprintf(stderr, "families: malloc_info failed\n");
            return 3;
        }
    }
    if (argc > 2 && strcmp(argv[2], "info") == 0) {
        if (malloc_info(0, stdout) != 0) {
            fprintf(stderr, "families: malloc_info failed\n");
            return 3;
        }
    }
    if (argc > 2 && strcmp(argv[2], "mallinfo") == 0) {
        struct mallinfo2 a = mallinfo2();
        for (size_t i = 0; i < sizeof(small_blocks) / sizeof(small_blocks[0]); i++)
            if (!(small_blocks[i] = malloc(3000)))
                return 2;
        for (size_t i = 0; i < sizeof(large_blocks) / sizeof(large_blocks[0]); i++)
            if (!(large_blocks[i] = malloc(1 << 20)))
                return 2;
        struct mallinfo2 b = mallinfo2();
        if (malloc_info(0, stdout) != 0) {
            fprintf(stderr, "families: malloc_info failed\n");
            return 3;
        }
        printf("mallinfo2: uordblks +%zu hblks +%zu hblkhd +%zu\n", b.uordblks - a.uordblks, b.hblks - a.hblks,
               b.hblkhd - a.hblkhd);
    }
    if (argc > 2 && strcmp(argv[2], "cookie") == 0) {
        cookie_io_functions_t io = {.write = cookie_write};
        FILE *fp = fopencookie(NULL, "w", io);
        if (!fp || malloc_info(0, fp) != 0 || fclose(fp) != 0) {
            fprintf(stderr, "families: malloc_info to a cookie stream failed\n");
            return 3;
        }
        printf("families: %zu bytes of XML through the cookie\n", cookie_bytes);
    }
    printf("families: %d made\n", n);
    return 0;
}
