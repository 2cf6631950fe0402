/*
 * bench.h — helpers shared by the benchmark workloads in tests/bench/.
 *
 * Every workload is a plain program that never links an allocator: the
 * allocator under test comes in with LD_PRELOAD. Arguments are `key=value`
 * pairs (values take k/m/g suffixes, powers of 1024) plus the word `tiny`,
 * which switches every default to the small scale used by a quick run.
 * A workload checks what it computed and exits 1 on a wrong result, so a
 * broken allocator shows up as a failure, not as a fast time.
 *
 * Everything here is `static inline` so that a workload may use any subset
 * without unused-function warnings, and compiles as C11 and as C++17.
 */
#ifndef PF_BENCH_H
#define PF_BENCH_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench_args {
    int argc;
    char **argv;
    int tiny; /* 1 when `tiny` was given: defaults become the quick scale */
};

#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 1, 2)))
#endif
static inline void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Parses argv once: accepts `tiny` and `key=value` for the keys in `known`
 * (a NULL-terminated list); anything else is a usage error. */
static inline struct bench_args bench_parse(int argc, char **argv, const char *const *known)
{
    struct bench_args a;
    a.argc = argc;
    a.argv = argv;
    a.tiny = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "tiny") == 0) {
            a.tiny = 1;
            continue;
        }
        const char *eq = strchr(argv[i], '=');
        int ok = 0;
        for (const char *const *k = known; eq != NULL && *k != NULL; k++)
            if (strlen(*k) == (size_t)(eq - argv[i]) && strncmp(*k, argv[i], (size_t)(eq - argv[i])) == 0)
                ok = 1;
        if (!ok) {
            fprintf(stderr, "usage: %s [tiny]", argv[0]);
            for (const char *const *k = known; *k != NULL; k++)
                fprintf(stderr, " [%s=N]", *k);
            fputc('\n', stderr);
            exit(2);
        }
    }
    return a;
}

/* The value of `key`: from argv if given, else `normal` or `tiny`. */
static inline uint64_t bench_opt(const struct bench_args *a, const char *key, uint64_t normal, uint64_t tiny)
{
    size_t kl = strlen(key);
    for (int i = 1; i < a->argc; i++) {
        if (strncmp(a->argv[i], key, kl) != 0 || a->argv[i][kl] != '=')
            continue;
        char *end = NULL;
        unsigned long long v = strtoull(a->argv[i] + kl + 1, &end, 0);
        switch (*end) {
        case 'k': case 'K': v <<= 10; end++; break;
        case 'm': case 'M': v <<= 20; end++; break;
        case 'g': case 'G': v <<= 30; end++; break;
        default: break;
        }
        if (end == a->argv[i] + kl + 1 || *end != '\0')
            bench_fail("bad value in %s", a->argv[i]);
        return (uint64_t)v;
    }
    return a->tiny ? tiny : normal;
}

/* xorshift64*: fast, deterministic, good enough to pick sizes and slots. */
/* n zeroed elements of `size` bytes (a multiple of 64: types declared
 * aligned(64)) starting on a cache line, so per-thread records the workers
 * write while they run share no line whatever alignment malloc gives: the
 * workload measures the allocator's sharing, not its own. */
static inline void *bench_lines(size_t n, size_t size)
{
    void *p = aligned_alloc(64, n * size);
    if (p == NULL)
        bench_fail("out of memory for %zu records", n);
    memset(p, 0, n * size);
    return p;
}

static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t bench_seed(uint64_t n)
{
    return 0x9E3779B97F4A7C15ULL * (n + 1) | 1;
}

/* A size skewed towards the small end, as real programs ask: half of the
 * requests in [1, 64], the rest spread over [1, max]. */
static inline size_t bench_small_size(uint64_t r, size_t max)
{
    if ((r & 1) == 0 && max > 64)
        return 1 + (size_t)((r >> 8) % 64);
    return 1 + (size_t)((r >> 8) % max);
}

/* Stamps an object so that a later check notices if its memory was handed out
 * twice or overwritten: both ends of blocks of 16 bytes and more, every byte
 * of smaller ones. */
static inline void bench_stamp(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = (unsigned char *)p;
    if (n >= 16) {
        uint64_t t2 = ~tag;
        memcpy(b, &tag, 8);
        memcpy(b + n - 8, &t2, 8);
    } else {
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)(tag + i);
    }
}

static inline int bench_stamp_ok(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = (const unsigned char *)p;
    if (n >= 16) {
        uint64_t h, t;
        memcpy(&h, b, 8);
        memcpy(&t, b + n - 8, 8);
        return h == tag && t == ~tag;
    }
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(tag + i))
            return 0;
    return 1;
}

/* Fills a whole block with a pattern that depends on position and tag, and
 * checks it back: for workloads that must prove every byte survived. */
static inline void bench_fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = (unsigned char *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = tag ^ (uint64_t)i * 0x9E3779B97F4A7C15ULL;
        memcpy(b + i, &w, 8);
    }
    for (; i < n; i++)
        b[i] = (unsigned char)(tag + i);
}

static inline int bench_fill_ok(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w != (tag ^ (uint64_t)i * 0x9E3779B97F4A7C15ULL))
            return 0;
    }
    for (; i < n; i++)
        if (b[i] != (unsigned char)(tag + i))
            return 0;
    return 1;
}

/* malloc alignment promise on x86-64 and aarch64 Linux: 16 bytes for any
 * block that can hold a 16-byte object. */
static inline void bench_check_align(const void *p, size_t n)
{
    if (n >= 16 && ((uintptr_t)p & 15) != 0)
        bench_fail("block %p of %zu bytes is not 16-byte aligned", p, n);
}

/* malloc(n) that fails the run on NULL or on a misaligned block. */
static inline void *bench_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        bench_fail("malloc(%zu) returned NULL", n);
    bench_check_align(p, n);
    return p;
}

#endif /* PF_BENCH_H */
