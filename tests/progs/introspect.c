/*
 * introspect — glibc's malloc introspection calls answer sensibly: mallinfo2
 * and mallinfo count 10 MiB more in use after allocating 10 MiB and less
 * again after freeing it, malloc_trim returns, mallopt accepts the usual
 * parameters (and refuses an M_MXFAST past glibc's largest fast bin),
 * malloc_info writes XML, malloc_stats writes to stderr, and
 * malloc_usable_size covers every request without a neighbour being hurt
 * when all of it is written. Prints only facts every correct allocator
 * shares, so plain and preloaded runs print the same.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEN_MIB (10u << 20)

static unsigned long failures;

static void expect(int ok, const char *what)
{
    printf("%s: %s\n", what, ok ? "yes" : "no");
    if (!ok)
        failures++;
}

static size_t in_use2(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static long in_use1(void)
{
    struct mallinfo mi = mallinfo();
    return (long)(unsigned)mi.uordblks + (long)(unsigned)mi.hblkhd;
}

/* glibc's own name for mallinfo, which a program may call. */
extern struct mallinfo __libc_mallinfo(void);

static long in_use_libc(void)
{
    struct mallinfo mi = __libc_mallinfo();
    return (long)(unsigned)mi.uordblks + (long)(unsigned)mi.hblkhd;
}
#pragma GCC diagnostic pop

static void *hide(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void mallinfo_counts(void)
{
    enum { N = TEN_MIB / 1024 };
    static void *blocks[N];

    /* Every figure is taken before anything is printed: stdio's buffer is
     * allocated by the first printf and would count against the frees. */
    size_t before = in_use2();
    long before1 = in_use1();
    long before_libc = in_use_libc();
    for (int i = 0; i < N; i++) {
        blocks[i] = hide(malloc(1024));
        if (!blocks[i])
            exit(2);
        memset(blocks[i], i, 1024);
    }
    size_t during = in_use2();
    long during1 = in_use1();
    long during_libc = in_use_libc();
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    size_t after = in_use2();
    /* Freed blocks kept for reuse are free bytes of the arena: glibc's
     * figures add up (uordblks + fordblks == arena) and what a trim could
     * release is part of what is free (keepcost <= fordblks). */
    struct mallinfo2 freed = mallinfo2();

    size_t big_before = in_use2();
    unsigned char *big = hide(malloc(TEN_MIB));
    if (!big)
        exit(2);
    memset(big, 1, TEN_MIB);
    size_t big_during = in_use2();
    free(big);
    size_t big_after = in_use2();

    expect(during >= before + TEN_MIB, "mallinfo2 in use grows by 10 MiB of 1 KiB blocks");
    expect(during1 >= before1 + (long)TEN_MIB, "mallinfo in use grows by 10 MiB of 1 KiB blocks");
    expect(during_libc >= before_libc + (long)TEN_MIB, "__libc_mallinfo in use grows by 10 MiB of 1 KiB blocks");
    expect(after + TEN_MIB <= during, "mallinfo2 in use shrinks by 10 MiB after freeing them");
    expect(big_during >= big_before + TEN_MIB, "mallinfo2 in use grows by one 10 MiB block");
    expect(big_after + TEN_MIB <= big_during, "mallinfo2 in use shrinks after freeing it");

    expect(freed.uordblks + freed.fordblks == freed.arena,
           "mallinfo2 after frees: uordblks + fordblks == arena");
    expect(freed.keepcost <= freed.fordblks, "mallinfo2 after frees: keepcost <= fordblks");

    struct mallinfo2 mi = mallinfo2();
    expect(mi.arena + mi.hblkhd >= mi.uordblks, "mallinfo2 arena + hblkhd >= uordblks");
}

static void trim_and_opt(void)
{
    void *p = hide(malloc(TEN_MIB));
    free(p);
    int rc = malloc_trim(0);
    expect(rc == 0 || rc == 1, "malloc_trim(0) returns 0 or 1");
    rc = malloc_trim(1 << 20);
    expect(rc == 0 || rc == 1, "malloc_trim(1 MiB) returns 0 or 1");
    expect(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1, "mallopt(M_TRIM_THRESHOLD) returns 1");
    expect(mallopt(M_TOP_PAD, 1 << 16) == 1, "mallopt(M_TOP_PAD) returns 1");
    expect(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt(M_MMAP_THRESHOLD) returns 1");
    expect(mallopt(M_ARENA_MAX, 4) == 1, "mallopt(M_ARENA_MAX) returns 1");
    /* The one setting glibc refuses: fast bins past its largest size. */
    expect(mallopt(M_MXFAST, 64) == 1, "mallopt(M_MXFAST, 64) returns 1");
    expect(mallopt(M_MXFAST, 1000) == 0, "mallopt(M_MXFAST, 1000) returns 0");
    expect(mallopt(M_MXFAST, -1) == 0, "mallopt(M_MXFAST, -1) returns 0");
    /* Allocation still works after the parameters changed. */
    p = hide(malloc(3u << 20));
    expect(p != NULL, "malloc after mallopt works");
    free(p);
}

static void info_and_stats(void)
{
    FILE *f = tmpfile();
    if (!f)
        exit(2);
    void *keep = hide(malloc(500));
    int rc = malloc_info(0, f);
    expect(rc == 0, "malloc_info(0) returns 0");
    fflush(f);
    rewind(f);
    char head[16] = {0};
    size_t got = fread(head, 1, sizeof head - 1, f);
    expect(got >= 7 && strncmp(head, "<malloc", 7) == 0, "malloc_info writes XML starting <malloc");
    fclose(f);

    /* malloc_stats writes to stderr: catch it in a file. */
    f = tmpfile();
    if (!f)
        exit(2);
    fflush(stderr);
    int saved = dup(2);
    if (saved < 0 || dup2(fileno(f), 2) < 0)
        exit(2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(f, 0, SEEK_END);
    expect(ftell(f) > 0, "malloc_stats writes to stderr");
    fclose(f);
    free(keep);
}

static void usable_sizes(void)
{
    static const size_t sizes[] = {
        1,     7,      8,      15,     16,     17,      24,     31,    32,    33,    48,
        63,    64,     65,     100,    127,    128,     129,    200,   255,   256,   257,
        500,   511,    512,    513,    1000,   1023,    1024,   1025,  2000,  3000,  4095,
        4096,  4097,   6000,   8191,   8192,   8193,    12345,  16384, 32768, 65535, 65536,
        65537, 100000, 200000, 262144, 500000, 1048576, 3000000};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    unsigned char *blocks[NS];
    size_t usable[NS];
    int covered = 1, intact = 1;
    for (int i = 0; i < NS; i++) {
        blocks[i] = malloc(sizes[i]);
        if (!blocks[i])
            exit(2);
        usable[i] = malloc_usable_size(blocks[i]);
        if (usable[i] < sizes[i]) {
            fprintf(stderr, "introspect: usable size %zu for a request of %zu\n", usable[i],
                    sizes[i]);
            covered = 0;
        }
        memset(blocks[i], i + 1, usable[i]);
    }
    for (int i = 0; i < NS; i++) {
        for (size_t j = 0; j < usable[i]; j++)
            if (blocks[i][j] != (unsigned char)(i + 1)) {
                fprintf(stderr, "introspect: block of %zu overwritten at %zu\n", sizes[i], j);
                intact = 0;
                break;
            }
        free(blocks[i]);
    }
    char what[64];
    snprintf(what, sizeof what, "malloc_usable_size >= request for %d sizes", NS);
    expect(covered, what);
    expect(intact, "writing all usable bytes hurts no neighbour");
    expect(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) == 0");
}

int main(void)
{
    mallinfo_counts();
    trim_and_opt();
    info_and_stats();
    usable_sizes();
    printf("failures: %lu\n", failures);
    return failures == 0 ? 0 : 1;
}
