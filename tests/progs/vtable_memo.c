/*
 * vtable_memo — an object kept only by a pointer 16 bytes into it, whose
 * first word and the word at 16 both point to address A, in a read-only
 * mapping of a file. While a report signal's walk runs (the program raises
 * PFALLOC_SIGNAL's SIGUSR1 itself), A holds two code addresses, as a C++
 * virtual table does, so the object reads as kept by a pointer to one of
 * its bases; then A is mapped again over a file of zeros, and the object,
 * kept by a pointer to its middle and nothing else, is possibly lost at the
 * exit. Prints "vtable_memo: done".
 *
 * vtable_memo many N: two such tables 8 KiB apart in one file mapping of
 * 64 KiB, made first, then N objects of 64 bytes, each with both words pointing to
 * one of the tables in turn, kept by pointers to their middles in a block
 * a global holds: all still reachable at the exit (the heap's later
 * regions are mapped below the file). Prints "vtable_memo: N objects".
 *
 * vtable_memo tomb: such a table in a file mapped where a freed large
 * block was, for an object kept by a pointer to its middle: still
 * reachable. Prints "vtable_memo: tomb".
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) void vtable_memo_f1(void) { __asm__ volatile(""); }
__attribute__((noinline)) void vtable_memo_f2(void) { __asm__ volatile(""); }

/* A page of a new file, its first words `words`, mapped read-only (at
 * `at` when not NULL, with `fixed`: MAP_FIXED or MAP_FIXED_NOREPLACE). */
static void *map_words(const uintptr_t *words, size_t n, void *at, int fixed)
{
    char path[] = "/tmp/vtable_memo.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return MAP_FAILED;
    unlink(path);
    char page[4096];
    memset(page, 0, sizeof page);
    memcpy(page, words, n * sizeof(uintptr_t));
    void *m = MAP_FAILED;
    if (write(fd, page, sizeof page) == (ssize_t)sizeof page)
        m = mmap(at, sizeof page, PROT_READ, MAP_PRIVATE | (at ? fixed : 0), fd, 0);
    close(fd);
    return m;
}

uintptr_t *volatile vtable_memo_kept;
uintptr_t **volatile vtable_memo_many;

static int many(size_t n)
{
    uintptr_t words[1026];
    memset(words, 0, sizeof words);
    words[0] = words[1024] = (uintptr_t)vtable_memo_f1;
    words[1] = words[1025] = (uintptr_t)vtable_memo_f2;
    char path[] = "/tmp/vtable_memo.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 2;
    unlink(path);
    /* 64 KiB, as the heap's chunks: the regions mapped after it go below
     * it, so it lies inside the span of the heap's addresses. */
    static char pages[16 * 4096];
    memset(pages, 0, sizeof pages);
    memcpy(pages, words, sizeof words);
    void *m = MAP_FAILED;
    if (write(fd, pages, sizeof pages) == (ssize_t)sizeof pages)
        m = mmap(NULL, sizeof pages, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    uintptr_t **keep = malloc(n * sizeof *keep);
    if (m == MAP_FAILED || !keep)
        return 2;
    for (size_t i = 0; i < n; i++) {
        uintptr_t *o = calloc(8, sizeof *o);
        if (!o)
            return 2;
        o[0] = o[2] = (uintptr_t)m + (i & 1) * 8192;
        keep[i] = o + 2;
    }
    vtable_memo_many = keep;
    printf("vtable_memo: %zu objects\n", n);
    return 0;
}

static int tomb(void)
{
    uintptr_t *o = malloc(64);
    char *big = malloc((size_t)300 << 20), *low = malloc((size_t)200 << 20);
    if (!o || !big || !low)
        return 2;
    /* The block's address, kept as a number past its free. */
    static volatile uintptr_t where_at;
    where_at = (uintptr_t)big;
    free(big);
    void *where = (void *)where_at;
    const uintptr_t table[2] = {(uintptr_t)vtable_memo_f1, (uintptr_t)vtable_memo_f2};
    /* Where the freed block began, unless something took it meanwhile. */
    void *a = map_words(table, 2, where, MAP_FIXED_NOREPLACE);
    int there = a == where;
    if (!there)
        a = map_words(table, 2, NULL, 0);
    if (a == MAP_FAILED)
        return 2;
    memset(o, 0, 64);
    o[0] = o[2] = (uintptr_t)a;
    vtable_memo_kept = o + 2;
    vtable_memo_many = (uintptr_t **)low;
    printf("vtable_memo: tomb%s\n", there ? "" : " (not where the block was)");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "tomb") == 0)
        return tomb();
    if (argc == 3 && strcmp(argv[1], "many") == 0)
        return many((size_t)strtoul(argv[2], NULL, 10));
    const uintptr_t table[2] = {(uintptr_t)vtable_memo_f1, (uintptr_t)vtable_memo_f2}, zeros[2] = {0, 0};
    void *a = map_words(table, 2, NULL, 0);
    uintptr_t *o = malloc(64);
    if (a == MAP_FAILED || !o)
        return 2;
    memset(o, 0, 64);
    o[0] = o[2] = (uintptr_t)a;
    vtable_memo_kept = o + 2;
    o = NULL;
    raise(SIGUSR1);
    if (map_words(zeros, 2, a, MAP_FIXED) != a)
        return 2;
    printf("vtable_memo: done\n");
    return 0;
}
