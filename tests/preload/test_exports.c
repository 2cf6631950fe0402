/*
 * The symbols libpfalloc.so exports are exactly the intended ones: the
 * malloc family and its glibc aliases, the C++ operators, glibc's malloc
 * introspection calls, and every function the public headers declare (the
 * headers of include/ are parsed here, so a new API function is expected
 * without editing this file). Anything else exported, or missing, fails.
 */
#include "spawn.h"

#include <ctype.h>
#include <dirent.h>

#define PF_INCLUDE_DIR PF_SOURCE_DIR "/include"

/* The interposer's fixed part: what LD_PRELOAD must replace. */
static const char *const interposed[] = {
    /* the malloc family */
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "cfree",
    "free_sized",
    "free_aligned_sized",
    /* glibc's internal names, called by some programs and libraries directly */
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_free",
    "__libc_memalign",
    "__libc_valloc",
    "__libc_pvalloc",
    "__posix_memalign",
    /* glibc's introspection and tuning */
    "mallinfo",
    "mallinfo2",
    "malloc_stats",
    "malloc_info",
    "malloc_trim",
    "mallopt",
    "__libc_mallinfo",
    "__libc_mallopt",
    /* show the default action where pfalloc's terminating-signal handler is */
    "sigaction",
    "signal",
    "ssignal",
    "bsd_signal",
    "sysv_signal",
    "__sysv_signal",
    "sigset",
    /* keeps the set signal() reads, which glibc's signal() keeps out of reach */
    "siginterrupt",
    /* unloading code: the stack walker forgets its cached rules */
    "dlclose",
    /* operator new: plain, nothrow, aligned, aligned nothrow; scalar and array */
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    /* operator delete: plain, sized, aligned, sized aligned, nothrow, aligned nothrow */
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t",
    "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

/* ---- a small list of names ------------------------------------------------ */

struct names {
    char **v;
    char *kind; /* per name: 'f' function, 'd' data, or nm's type letter */
    size_t n, cap;
};

static void names_add(struct names *s, const char *name, size_t len, char kind)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && strncmp(s->v[i], name, len) == 0)
            return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        s->kind = realloc(s->kind, s->cap);
        cr_assert(s->v && s->kind);
    }
    s->v[s->n] = strndup(name, len);
    s->kind[s->n] = kind;
    s->n++;
}

static int names_has(const struct names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return 1;
    return 0;
}

static void names_free(struct names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    free(s->kind);
    memset(s, 0, sizeof *s);
}

/* ---- header parsing -------------------------------------------------------- */

/* Comments and preprocessor lines (with their continuations) become spaces;
 * string and character literals are kept. */
static void strip(char *s)
{
    char *p = s;
    int line_start = 1;
    while (*p) {
        if (p[0] == '/' && p[1] == '*') {
            char *e = strstr(p + 2, "*/");
            char *end = e ? e + 2 : p + strlen(p);
            for (; p < end; p++)
                if (*p != '\n')
                    *p = ' ';
            continue;
        }
        if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n')
                *p++ = ' ';
            continue;
        }
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q) {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            if (*p)
                p++;
            line_start = 0;
            continue;
        }
        if (line_start && *p == '#') {
            while (*p && !(*p == '\n' && p[-1] != '\\')) {
                if (*p != '\n')
                    *p = ' ';
                p++;
            }
            continue;
        }
        if (*p == '\n')
            line_start = 1;
        else if (!isspace((unsigned char)*p))
            line_start = 0;
        p++;
    }
}

static int is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static int all_caps(const char *s, size_t len)
{
    int letters = 0;
    for (size_t i = 0; i < len; i++) {
        if (islower((unsigned char)s[i]))
            return 0;
        letters += isupper((unsigned char)s[i]) != 0;
    }
    return letters > 0;
}

static int has_word(const char *s, const char *w)
{
    size_t wl = strlen(w);
    for (const char *p = strstr(s, w); p; p = strstr(p + 1, w))
        if ((p == s || !is_ident(p[-1])) && !is_ident(p[wl]))
            return 1;
    return 0;
}

/* The identifier ending just before `end` (skipping spaces), or NULL. */
static const char *ident_before(const char *start, const char *end, size_t *len)
{
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    const char *b = end;
    while (b > start && is_ident(b[-1]))
        b--;
    if (b == end || isdigit((unsigned char)*b))
        return NULL;
    *len = (size_t)(end - b);
    return b;
}

/* One top-level statement: a function declaration adds its name ('f'); an
 * extern object declaration adds its name ('d'). */
static void statement(const char *st, struct names *out)
{
    while (isspace((unsigned char)*st))
        st++;
    if (!*st || has_word(st, "typedef") || has_word(st, "static") || has_word(st, "using") ||
        has_word(st, "template"))
        return;
    const char *p = st;
    while ((p = strchr(p, '(')) != NULL) {
        /* "void (name)(args)": a parenthesised name, kept out of reach of a
         * function-like macro of the same name. */
        const char *q = p + 1;
        while (isspace((unsigned char)*q))
            q++;
        const char *inner = q;
        while (is_ident(*q))
            q++;
        size_t inner_len = (size_t)(q - inner);
        while (isspace((unsigned char)*q))
            q++;
        if (inner_len > 0 && !isdigit((unsigned char)*inner) && *q == ')') {
            q++;
            while (isspace((unsigned char)*q))
                q++;
            if (*q == '(') {
                names_add(out, inner, inner_len, 'f');
                return;
            }
        }
        size_t len;
        const char *id = ident_before(st, p, &len);
        int skip = !id || all_caps(id, len) ||
                   (len == 13 && strncmp(id, "__attribute__", 13) == 0) ||
                   (len == 7 && strncmp(id, "__asm__", 7) == 0) ||
                   (len == 3 && strncmp(id, "asm", 3) == 0) ||
                   (len == 8 && strncmp(id, "decltype", 8) == 0);
        if (!skip) {
            names_add(out, id, len, 'f');
            return;
        }
        if (!id) {
            /* "(" after something not a name, like "(*fp)(...)": not a plain function. */
            return;
        }
        /* Skip the macro's or attribute's argument list. */
        int depth = 0;
        do {
            if (*p == '(')
                depth++;
            else if (*p == ')')
                depth--;
            p++;
        } while (*p && depth > 0);
    }
    if (has_word(st, "extern")) {
        const char *end = st + strlen(st);
        const char *eq = strchr(st, '=');
        const char *br = strchr(st, '[');
        if (eq && eq < end)
            end = eq;
        if (br && br < end)
            end = br;
        size_t len;
        const char *id = ident_before(st, end, &len);
        if (id && !all_caps(id, len))
            names_add(out, id, len, 'd');
    }
}

/* Every function (and extern object) a header declares at file scope.
 * Bodies (inline functions, structs, C++ namespaces) are skipped whole. */
static void parse_header(const char *path, struct names *out)
{
    size_t len;
    char *text = pf_read_file(path, &len);
    strip(text);
    char *st = malloc(len + 4);
    cr_assert(st != NULL);
    size_t n = 0;
    int depth = 0;
    for (char *p = text; *p; p++) {
        char c = *p;
        if (depth > 0) {
            if (c == '{')
                depth++;
            else if (c == '}' && --depth == 0) {
                st[n] = '\0';
                /* A definition with a body ends here; a struct, enum or
                 * union definition runs on to its ';'. */
                if (!strchr(st, '(') || has_word(st, "struct") || has_word(st, "union") ||
                    has_word(st, "enum"))
                    continue;
                n = 0;
            }
            continue;
        }
        if (c == ';') {
            st[n] = '\0';
            statement(st, out);
            n = 0;
        } else if (c == '{') {
            st[n] = '\0';
            char *q = st + n;
            while (q > st && isspace((unsigned char)q[-1]))
                q--;
            if (q - st >= 10 && strncmp(q - 10, "extern \"C\"", 10) == 0)
                n = 0; /* the contents of extern "C" { } are file scope */
            else
                depth = 1;
        } else if (c == '}') {
            n = 0; /* closes extern "C" */
        } else {
            st[n++] = c == '\n' || c == '\t' ? ' ' : c;
        }
    }
    free(st);
    free(text);
}

static size_t parse_includes(struct names *out)
{
    DIR *d = opendir(PF_INCLUDE_DIR);
    cr_assert(d != NULL, "cannot open %s", PF_INCLUDE_DIR);
    size_t headers = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 3 || strcmp(e->d_name + l - 2, ".h") != 0)
            continue;
        char *path = pf_path(PF_INCLUDE_DIR, e->d_name);
        parse_header(path, out);
        free(path);
        headers++;
    }
    closedir(d);
    return headers;
}

/* ---- nm ---------------------------------------------------------------------- */

/* Defined dynamic symbols of the library, with nm's type letters. */
static void exported(struct names *out)
{
    PF_REQUIRE_PROGRAM("nm");
    cr_assert(pf_spawn_preload_present(), "%s has not been built", PF_PRELOAD_LIB);
    const char *const argv[] = {"nm", "-D", "--defined-only", PF_PRELOAD_LIB, NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .env = (const char *const[]){"LC_ALL=C", NULL}};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "nm");
    for (char *line = r.out; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char addr[64], type[8], name[512];
        /* "0000000000012340 T malloc" or, with version nodes, "... T malloc@@PFALLOC_1" */
        if (sscanf(line, "%63s %7s %511s", addr, type, name) == 3) {
            char *at = strchr(name, '@');
            if (at)
                *at = '\0';
            if (type[0] != 'A' && name[0]) /* 'A': version node names, not code or data */
                names_add(out, name, strlen(name), type[0]);
        }
        line = nl ? nl + 1 : NULL;
    }
    pf_run_free(&r);
}

static void expected(struct names *out)
{
    for (size_t i = 0; i < sizeof interposed / sizeof interposed[0]; i++)
        names_add(out, interposed[i], strlen(interposed[i]), 'f');
    parse_includes(out);
}

/* ---- tests ------------------------------------------------------------------- */

Test(exports, exactly_the_intended_symbols)
{
    struct names want = {0}, have = {0};
    expected(&want);
    exported(&have);

    char missing[4096] = "", extra[4096] = "", wrong[4096] = "";
    for (size_t i = 0; i < want.n; i++) {
        if (!names_has(&have, want.v[i])) {
            strncat(missing, " ", sizeof missing - strlen(missing) - 1);
            strncat(missing, want.v[i], sizeof missing - strlen(missing) - 1);
        }
    }
    for (size_t i = 0; i < have.n; i++) {
        if (!names_has(&want, have.v[i])) {
            strncat(extra, " ", sizeof extra - strlen(extra) - 1);
            strncat(extra, have.v[i], sizeof extra - strlen(extra) - 1);
            continue;
        }
        /* Functions must be code: T (text), W (weak) or i (indirect). */
        size_t j = 0;
        while (strcmp(want.v[j], have.v[i]) != 0)
            j++;
        char t = have.kind[i];
        int code = t == 'T' || t == 'W' || t == 'i';
        if ((want.kind[j] == 'f') != code) {
            char one[600];
            snprintf(one, sizeof one, " %s(%c)", have.v[i], t);
            strncat(wrong, one, sizeof wrong - strlen(wrong) - 1);
        }
    }
    cr_expect(missing[0] == '\0', "not exported:%s", missing);
    cr_expect(extra[0] == '\0', "exported but not intended:%s", extra);
    cr_expect(wrong[0] == '\0', "exported as the wrong kind:%s", wrong);
    names_free(&want);
    names_free(&have);
}

/* PF_API markers in a header's text (comments and #define lines aside). */
static size_t count_pf_api(const char *path)
{
    size_t len, marked = 0;
    char *text = pf_read_file(path, &len);
    strip(text);
    for (char *p = strstr(text, "PF_API"); p; p = strstr(p + 6, "PF_API"))
        if ((p == text || !is_ident(p[-1])) && !is_ident(p[6]))
            marked++;
    free(text);
    return marked;
}

static void expect_header(const char *name, const char *const *must, size_t nmust,
                          const char *const *never, size_t nnever)
{
    char *path = pf_path(PF_INCLUDE_DIR, name);
    if (access(path, R_OK) != 0) {
        cr_expect(strcmp(name, "pfalloc.h") != 0, "%s is missing", path);
        free(path);
        return;
    }
    struct names h = {0};
    parse_header(path, &h);
    /* Counted by a different route: every exported declaration carries PF_API. */
    size_t marked = count_pf_api(path), functions = 0;
    for (size_t i = 0; i < h.n; i++)
        functions += h.kind[i] == 'f';
    cr_expect_eq(functions, marked, "%s: parsed %zu functions, the header marks %zu with PF_API",
                 name, functions, marked);
    for (size_t i = 0; i < nmust; i++)
        cr_expect(names_has(&h, must[i]), "%s: parser missed %s", name, must[i]);
    for (size_t i = 0; i < nnever; i++)
        cr_expect(!names_has(&h, never[i]), "%s: parser took %s for an exported function", name,
                  never[i]);
    names_free(&h);
    free(path);
}

/* The parser on the real headers: it must find the known calls and nothing
 * that is a macro, a type or an inline helper. Guards against an expected
 * list that is silently short. */
Test(exports, header_parser_finds_the_api)
{
    static const char *const api[] = {"pf_malloc",    "pf_free",           "pf_realloc",
                                      "pf_trim",      "pf_family_get",     "pf_typed_alloc",
                                      "pf_stats_get", "pf_print_families", "pf_print_totals"};
    static const char *const api_never[] = {"PF_NEW", "PF_DELETE", "pf_family_t", "void"};
    expect_header("pfalloc.h", api, sizeof api / sizeof api[0], api_never,
                  sizeof api_never / sizeof api_never[0]);
    static const char *const hal[] = {"halloc_print_total_memory_usage",
                                      "halloc_print_type_memory_usage"};
    static const char *const hal_never[] = {"halloc", "hfree", "void"};
    expect_header("halloc.h", hal, sizeof hal / sizeof hal[0], hal_never,
                  sizeof hal_never / sizeof hal_never[0]);
    static const char *const mm[] = {"mm_init", "mm_instantiate_new_page_family",
                                     "mm_print_memory_usage"};
    static const char *const mm_never[] = {"xcalloc", "xfree", "XCALLOC", "MM_REG_STRUCT"};
    expect_header("uapi_mm.h", mm, sizeof mm / sizeof mm[0], mm_never,
                  sizeof mm_never / sizeof mm_never[0]);
}

/* The parser on a header with the awkward cases spelled out. */
Test(exports, header_parser_edge_cases)
{
    char dir_tmpl[] = "/tmp/pf-hdr-XXXXXX";
    char *dir = mkdtemp(dir_tmpl);
    cr_assert(dir != NULL);
    char *path = pf_path(dir, "t.h");
    static const char text[] =
        "#ifndef T_H\n#define T_H\n#define DECL(x) int x(void)\n"
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
        "/* int commented_out(void); */\n"
        "// int also_commented(void);\n"
        "typedef void (*callback_t)(int);\n"
        "struct thing { int (*method)(int); int field; };\n"
        "enum { A = 1, B = 2 };\n"
        "static inline int helper(int x) { return x + 1; }\n"
        "EXPORT_API void *first_fn(size_t n) ATTR_MALLOC;\n"
        "__attribute__((visibility(\"default\"))) int second_fn(const char *s,\n"
        "                                                    int (*cb)(int));\n"
        "DEPRECATED(\"use second_fn\") long third_fn(void);\n"
        "extern int exported_value;\n"
        "extern const char *exported_names[4];\n"
        "struct thing *fourth_fn(struct thing *t);\n"
        "EXPORT_API void (fifth_fn)(const char *name);\n"
        "#define fifth_fn(type) (fifth_fn)(#type)\n"
        "#ifdef __cplusplus\n}\nnamespace ns { inline int cxx_only(int a) { return a; } }\n#endif\n"
        "#endif\n";
    pf_write_file(path, text, sizeof text - 1);
    struct names n = {0};
    parse_header(path, &n);
    const char *want_f[] = {"first_fn", "second_fn", "third_fn", "fourth_fn", "fifth_fn"};
    const char *want_d[] = {"exported_value", "exported_names"};
    for (size_t i = 0; i < 5; i++)
        cr_expect(names_has(&n, want_f[i]), "missed %s", want_f[i]);
    for (size_t i = 0; i < 2; i++)
        cr_expect(names_has(&n, want_d[i]), "missed %s", want_d[i]);
    cr_expect_eq(n.n, 7, "found %zu names, want 7", n.n);
    for (size_t i = 0; i < n.n; i++)
        cr_expect(strcmp(n.v[i], "helper") && strcmp(n.v[i], "commented_out") &&
                      strcmp(n.v[i], "callback_t") && strcmp(n.v[i], "method") &&
                      strcmp(n.v[i], "cxx_only") && strcmp(n.v[i], "DECL") &&
                      strcmp(n.v[i], "void"),
                  "took %s for a declaration", n.v[i]);
    names_free(&n);
    unlink(path);
    free(path);
    rmdir(dir);
}

/* The .so objects mapped into a run of `cat /proc/self/maps`, one per line
 * in out (each ends in '\n'). */
static void mapped_objects(enum pf_mode mode, char *out, size_t cap)
{
    const char *const argv[] = {"cat", "/proc/self/maps", NULL};
    struct pf_spawn_opts o = {.mode = mode}; /* pfalloc's default settings */
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, mode == PF_PRELOAD ? "cat, preloaded" : "cat");
    out[0] = '\0';
    for (char *line = r.out; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *path = strchr(line, '/');
        if (path && strstr(path, ".so")) {
            char one[600];
            snprintf(one, sizeof one, "%s\n", path);
            if (!strstr(out, one))
                strncat(out, one, cap - strlen(out) - 1);
        }
        line = nl ? nl + 1 : NULL;
    }
    pf_run_free(&r);
}

/* A library the preload needs is loaded into every process it goes into:
 * its pages count in each one's memory (libgcc_s, once needed for one
 * bit count, was 100 KiB of every small program's resident set). */
Test(exports, the_preload_brings_no_library_of_its_own)
{
    PF_REQUIRE_PRELOAD();
    static char plain[16384], pre[16384];
    mapped_objects(PF_PLAIN, plain, sizeof plain);
    mapped_objects(PF_PRELOAD, pre, sizeof pre);
    cr_assert(strstr(pre, "libpfalloc.so"), "the preload is not mapped:\n%s", pre);
    char extra[4096] = "";
    for (char *line = pre; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = (size_t)(nl - line) + 1; /* with its '\n' */
        char one[600];
        cr_assert_lt(len, sizeof one, "a path of %zu bytes", len);
        memcpy(one, line, len);
        one[len] = '\0';
        if (!strstr(one, "libpfalloc.so") && !strstr(plain, one))
            strncat(extra, one, sizeof extra - strlen(extra) - 1);
        line = nl + 1;
    }
    cr_expect(extra[0] == '\0', "loaded only with the preload:\n%s", extra);
}
