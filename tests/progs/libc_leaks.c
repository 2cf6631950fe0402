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
 *   wordexp    the words of wordexp, never given to wordfree
 *   iconv      a conversion descriptor of iconv_open, never closed
 *   ifaddrs    the list of getifaddrs, never given to freeifaddrs
 *   ifnames    the array of if_nameindex, never freed
 *   argz       an argz vector of argz_create, grown by argz_add
 *   spawn      posix_spawn file actions with an open added, never
 *              destroyed (the actions and the copy of the path)
 *   tmpfile    a FILE of tmpfile, never closed (still reachable)
 *   cpuset     a CPU set of CPU_ALLOC (__sched_cpualloc), never freed
 *   obstack    an obstack whose chunks come from malloc itself (the C
 *              library's _obstack_begin and _obstack_newchunk call it)
 *   none       every result given back: nothing of the program's is lost
 * In glibc 2.36 the first four jump at their end to an internal function
 * without a symbol, which then calls malloc.
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <argz.h>
#include <dirent.h>
#include <iconv.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <obstack.h>
#include <sched.h>
#include <spawn.h>
#include <wordexp.h>
#include <fcntl.h>
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

__attribute__((noinline)) static void lose_words(void)
{
    wordexp_t w;
    if (wordexp("page families", &w, 0) != 0)
        exit(2);
    drop(w.we_wordv);
}

__attribute__((noinline)) static void lose_converter(void)
{
    iconv_t c = iconv_open("UTF-16LE", "UTF-8");
    if (c == (iconv_t)-1)
        exit(2);
    drop(c);
}

__attribute__((noinline)) static void lose_addresses(void)
{
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) != 0)
        exit(2);
    drop(list);
}

__attribute__((noinline)) static void lose_interfaces(void)
{
    drop(if_nameindex());
}

__attribute__((noinline)) static void lose_argz(void)
{
    static char *const words[] = {"page", "families", NULL};
    char *argz = NULL;
    size_t len = 0;
    if (argz_create(words, &argz, &len) != 0 || argz_add(&argz, &len, "report") != 0)
        exit(2);
    drop(argz);
}

__attribute__((noinline)) static void lose_spawn_actions(void)
{
    posix_spawn_file_actions_t *a = malloc(sizeof *a);
    if (!a || posix_spawn_file_actions_init(a) != 0 ||
        posix_spawn_file_actions_addopen(a, 1, "/dev/null", O_WRONLY, 0) != 0)
        exit(2);
    drop(a);
}

__attribute__((noinline)) static void lose_tmpfile(void)
{
    drop(tmpfile());
}

__attribute__((noinline)) static void lose_cpuset(void)
{
    drop(CPU_ALLOC(256));
}

#define obstack_chunk_alloc malloc
#define obstack_chunk_free free

__attribute__((noinline)) static void lose_obstack(void)
{
    struct obstack *o = malloc(sizeof *o);
    if (!o || !obstack_init(o))
        exit(2);
    for (int i = 0; i < 2000; i++)
        obstack_grow(o, "page families ", 14);
    drop(o);
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
                 {"regexec_utf8", lose_matched_utf8}, {"wordexp", lose_words},
                 {"iconv", lose_converter},           {"ifaddrs", lose_addresses},
                 {"ifnames", lose_interfaces},        {"argz", lose_argz},
                 {"spawn", lose_spawn_actions},       {"tmpfile", lose_tmpfile},
                 {"cpuset", lose_cpuset},             {"obstack", lose_obstack},
                 {"none", give_back}};
    const char *what = argc > 1 ? argv[1] : "none";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(what, cases[i].name) == 0) {
            cases[i].run();
            scrub();
            printf("libc_leaks: %s\n", what);
            return 0;
        }
    fprintf(stderr, "usage: libc_leaks fopen|opendir|scandir|vasprintf|strdup|asprintf_chk|memstream|newlocale|regcomp|regexec|regexec_utf8|"
                    "wordexp|iconv|ifaddrs|ifnames|argz|spawn|tmpfile|cpuset|obstack|none\n");
    return 2;
}
