/*
 * libc_leaks — the program loses what a libc function handed it: the
 * object is the program's leak, not the C library's own. One argument
 * picks the function; the result is dropped through a volatile global
 * (cleared), so it is definitely lost:
 *   fopen      a FILE never closed (still reachable: the C library lists
 *              its open streams)
 *   opendir    a DIR never closed
 *   scandir    the list of entries and the entries
 *   vasprintf  the formatted string
 *   strdup     (a function that calls malloc itself, for comparison)
 *   asprintf_chk  the string of __asprintf_chk, which programs built with
 *              _FORTIFY_SOURCE (as distributions build them) call for asprintf
 *   memstream  the buffer of an open_memstream stream, which fclose sizes
 *              to its contents (a realloc under fclose)
 *   newlocale  a locale from newlocale and its copy from duplocale
 *   regcomp    a compiled pattern (its regex_t in a block of the
 *              program's, dropped without regfree)
 *   regexec    the same pattern after regexec and re_search matched with
 *              it, which add their blocks to it (the automaton's states,
 *              re_search's registers)
 *   regexec_utf8  the same in a UTF-8 locale, where matching converts
 *              multibyte text and the C library loads its conversion
 *              functions for the process (its own, kept for good)
 *   none       every result given back: nothing of the program's is lost
 * In glibc 2.36 the first four jump at their end to an internal function
 * without a symbol, which then calls malloc.
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <dirent.h>
#include <locale.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile dropped;

/* What a fortified build calls for asprintf. */
extern int __asprintf_chk(char **out, int flag, const char *fmt, ...);

/* Each case in a function of its own, which drops the result through a
 * volatile global before it returns: no copy stays in main's registers. */
__attribute__((noinline)) static void drop(void *p)
{
    if (!p) {
        fprintf(stderr, "libc_leaks: the call failed\n");
        exit(2);
    }
    dropped = p;
    dropped = NULL;
}

static int format(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(out, fmt, ap);
    va_end(ap);
    return n;
}

static int every_entry(const struct dirent *d)
{
    (void)d;
    return 1;
}

__attribute__((noinline)) static void lose_file(void)
{
    drop(fopen("/proc/self/stat", "r"));
}

__attribute__((noinline)) static void lose_dir(void)
{
    drop(opendir("/"));
}

__attribute__((noinline)) static void lose_list(void)
{
    struct dirent **list = NULL;
    int n = scandir("/", &list, every_entry, alphasort);
    if (n < 1)
        exit(2);
    for (int i = 0; i < n; i++)
        drop(list[i]);
    drop(list);
}

__attribute__((noinline)) static void lose_string(void)
{
    char *s = NULL;
    if (format(&s, "%s %d", "page families", 42) < 0)
        exit(2);
    drop(s);
}

__attribute__((noinline)) static void lose_fortified(void)
{
    char *s = NULL;
    if (__asprintf_chk(&s, 1, "%s %d", "page families", 42) < 0)
        exit(2);
    drop(s);
}

__attribute__((noinline)) static void lose_stream_buffer(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        exit(2);
    fprintf(f, "%s %d", "page families", 42);
    fclose(f);
    drop(buf);
}

__attribute__((noinline)) static void lose_locales(void)
{
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!l)
        exit(2);
    locale_t d = duplocale(l);
    drop(l);
    drop(d);
}

/* A pattern compiled into a block of the program's; with `run`, matched
 * with regexec and (GNU's interface) re_search, registers kept in the
 * same block. Dropped without regfree. */
struct pattern {
    regex_t posix;
    struct re_pattern_buffer gnu;
    struct re_registers regs;
};

static void lose_pattern(int run)
{
    struct pattern *p = calloc(1, sizeof *p);
    static const char re[] = "(mov|call)[a-z]*[ \t]+([^,]+),";
    if (!p || regcomp(&p->posix, re, REG_EXTENDED) != 0)
        exit(2);
    re_syntax_options = RE_SYNTAX_POSIX_EXTENDED;
    if (re_compile_pattern(re, sizeof re - 1, &p->gnu) != NULL)
        exit(2);
    if (run) {
        static const char text[] = "\tmovq %rax, %rbx\n\tcallq *%rdx, x\n";
        regmatch_t m[3];
        for (int i = 0; i < 4; i++)
            if (regexec(&p->posix, text + i, 3, m, 0) != 0)
                exit(2);
        if (re_search(&p->gnu, text, (regoff_t)(sizeof text - 1), 0, (regoff_t)(sizeof text - 1), &p->regs) < 0)
            exit(2);
    }
    drop(p);
}

__attribute__((noinline)) static void lose_compiled(void)
{
    lose_pattern(0);
}

__attribute__((noinline)) static void lose_matched(void)
{
    lose_pattern(1);
}

__attribute__((noinline)) static void lose_matched_utf8(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        exit(2);
    lose_pattern(1);
}

__attribute__((noinline)) static void lose_copy(void)
{
    drop(strdup("page families"));
}

__attribute__((noinline)) static void give_back(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    DIR *d = opendir("/");
    char *s = NULL;
    if (!f || !d || format(&s, "%d", 7) < 0)
        exit(2);
    fclose(f);
    closedir(d);
    free(s);
}

/* Clears the stack below main, where the cases' frames were. */
__attribute__((noinline)) static void scrub(void)
{
    char buf[64 * 1024];
    explicit_bzero(buf, sizeof buf);
    __asm__ __volatile__("" : : "r"(buf) : "memory");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {{"fopen", lose_file},       {"opendir", lose_dir},  {"scandir", lose_list},
                 {"vasprintf", lose_string}, {"strdup", lose_copy}, {"asprintf_chk", lose_fortified},
                 {"memstream", lose_stream_buffer}, {"newlocale", lose_locales},
                 {"regcomp", lose_compiled},        {"regexec", lose_matched},
                 {"regexec_utf8", lose_matched_utf8}, {"none", give_back}};
    const char *what = argc > 1 ? argv[1] : "none";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(what, cases[i].name) == 0) {
            cases[i].run();
            scrub();
            printf("libc_leaks: %s\n", what);
            return 0;
        }
    fprintf(stderr, "usage: libc_leaks fopen|opendir|scandir|vasprintf|strdup|asprintf_chk|memstream|newlocale|regcomp|regexec|regexec_utf8|none\n");
    return 2;
}
