/*
 * libc_users — libc functions that allocate behind the caller's back and
 * hand back memory the caller frees with free(): strdup, asprintf, getline,
 * open_memstream, getcwd(NULL), realpath(NULL), regcomp, qsort, iconv,
 * setenv, dlopen, stdio buffers. If any part of the malloc family were left
 * to libc, free() here would meet a pointer it never returned. Prints a
 * result line per function; the same under any complete replacement.
 */
#include <dlfcn.h>
#include <errno.h>
#include <iconv.h>
#include <limits.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long failures;

static void report(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    if (!ok)
        failures++;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void strings(void)
{
    char *s = strdup("page families");
    report("strdup", s && strcmp(s, "page families") == 0);
    free(s);
    s = strndup("abcdefgh", 3);
    report("strndup", s && strcmp(s, "abc") == 0);
    free(s);
    char *a = NULL;
    int n = asprintf(&a, "%d-%s-%0*d", 42, "x", 2000, 7);
    report("asprintf of 2000+ bytes", n == 2005 && a && a[n - 1] == '7' && a[5] == '0');
    free(a);
}

static void streams(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        report("open_memstream", 0);
        return;
    }
    size_t want = 0;
    for (int i = 0; i < 20000; i++)
        want += (size_t)fprintf(m, "line %d\n", i);
    fclose(m);
    report("open_memstream of 20000 lines",
           len == want && strncmp(buf, "line 0\n", 7) == 0 && strstr(buf, "line 19999\n"));

    FILE *in = fmemopen(buf, len, "r");
    char *line = NULL;
    size_t cap = 0;
    long lines = 0;
    ssize_t got;
    while (in && (got = getline(&line, &cap, in)) > 0)
        lines++;
    report("getline over them", lines == 20000);
    free(line);
    if (in)
        fclose(in);
    free(buf);

    FILE *t = tmpfile();
    int ok = t != NULL;
    if (t) {
        static char big[1 << 16];
        memset(big, 'z', sizeof big);
        ok = setvbuf(t, NULL, _IOFBF, 1 << 20) == 0 && fwrite(big, 1, sizeof big, t) == sizeof big;
        ok = ok && fclose(t) == 0;
    }
    report("stdio with a 1 MiB buffer of its own", ok);
}

static void paths(void)
{
    char *cwd = getcwd(NULL, 0);
    report("getcwd(NULL, 0)", cwd && cwd[0] == '/');
    free(cwd);
    char *rp = realpath("/", NULL);
    report("realpath(\"/\", NULL)", rp && strcmp(rp, "/") == 0);
    free(rp);
}

static void regexes(void)
{
    regex_t re;
    int ok = regcomp(&re, "^([a-z]+)-([0-9]{2,})$", REG_EXTENDED) == 0;
    regmatch_t m[3];
    ok = ok && regexec(&re, "family-1234", 3, m, 0) == 0 && m[2].rm_so == 7 && m[2].rm_eo == 11;
    ok = ok && regexec(&re, "Family-1", 3, m, 0) == REG_NOMATCH;
    regfree(&re);
    report("regcomp/regexec/regfree", ok);
}

static void sorting(void)
{
    enum { N = 1 << 20 };
    uint32_t *v = malloc(N * sizeof *v);
    if (!v) {
        report("qsort", 0);
        return;
    }
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        v[i] = x;
    }
    qsort(v, N, sizeof *v, cmp_u32);
    int ok = 1;
    for (int i = 1; i < N; i++)
        ok &= v[i - 1] <= v[i];
    report("qsort of 1M values", ok);
    free(v);
}

static void conversions(void)
{
    iconv_t cd = iconv_open("UTF-16LE", "UTF-8");
    if (cd == (iconv_t)-1) {
        /* gconv modules may be missing on a minimal system: not an allocator matter. */
        report("iconv (not available)", 1);
        return;
    }
    char in[] = "caf\xc3\xa9";
    char out[32];
    char *ip = in, *op = out;
    size_t il = strlen(in), ol = sizeof out;
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    iconv_close(cd);
    report("iconv UTF-8 to UTF-16LE", r != (size_t)-1 && sizeof out - ol == 8);
}

static void environment(void)
{
    char name[32], value[64];
    int ok = 1;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "PF_LIBC_USERS_%d", i);
        snprintf(value, sizeof value, "value-%d", i * 7);
        ok &= setenv(name, value, 1) == 0;
    }
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "PF_LIBC_USERS_%d", i);
        snprintf(value, sizeof value, "value-%d", i * 7);
        const char *got = getenv(name);
        ok &= got && strcmp(got, value) == 0;
        ok &= unsetenv(name) == 0;
    }
    report("setenv/getenv/unsetenv x 200", ok);
}

static void loader(void)
{
    int ok = 1;
    for (int i = 0; i < 5 && ok; i++) {
        void *h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        ok = h != NULL;
        if (h) {
            double (*cosine)(double) = (double (*)(double))dlsym(h, "cos");
            ok = cosine && cosine(0.0) == 1.0;
            ok &= dlclose(h) == 0;
        }
    }
    void *none = dlopen("libpf-no-such-library.so", RTLD_NOW);
    ok &= none == NULL && dlerror() != NULL;
    report("dlopen/dlsym/dlclose/dlerror", ok);
}

int main(void)
{
    strings();
    streams();
    paths();
    regexes();
    sorting();
    conversions();
    environment();
    loader();
    printf("failures: %lu\n", failures);
    return failures == 0 ? 0 : 1;
}
