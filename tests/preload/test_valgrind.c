/*
 * The split between the program's objects and the runtime's, checked
 * against valgrind memcheck. valgrind frees the C library's and the C++
 * runtime's own objects before its leak check (__libc_freeres and the C++
 * runtime's __gnu_cxx::__freeres), so what it still finds in use at exit
 * is the program's: pfalloc's program_objects and program_bytes must equal
 * it. valgrind's figures for the repository's leak programs are written
 * here (valgrind-3.19, glibc 2.36, GCC 12), and, where valgrind is
 * installed, a second test runs it and compares live.
 */
#include "spawn.h"

TestSuite(valgrind);

#define PROG(name) PF_PROGS_DIR "/" name

struct figures {
    const char *prog;
    unsigned long blocks, bytes; /* valgrind: "in use at exit: BYTES bytes in BLOCKS blocks" */
};

static const struct figures measured[] = {
    {"leaky", 10, 305536},
    {"leakyxx", 9, 513},
    {"symbols", 10, 382},
    {"symbolsxx", 5, 192},
};

/* pfalloc's program_objects and program_bytes from the JSON exit report. */
static void pfalloc_program(const char *prog, unsigned long *objects, unsigned long *bytes)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {prog, NULL};
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_REPORT=exit", "PFALLOC_FORMAT=json", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, prog);
    const char *po = strstr(r.err, "\"program_objects\":");
    const char *pb = strstr(r.err, "\"program_bytes\":");
    cr_assert(po && pb && sscanf(po, "\"program_objects\":%lu", objects) == 1 &&
                  sscanf(pb, "\"program_bytes\":%lu", bytes) == 1,
              "%s", r.err);
    pf_run_free(&r);
}

static void path_of(const char *prog, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", PF_PROGS_DIR, prog);
}

Test(valgrind, program_objects_equal_valgrinds_figures)
{
    for (size_t i = 0; i < sizeof measured / sizeof measured[0]; i++) {
        char path[512];
        path_of(measured[i].prog, path, sizeof path);
        unsigned long o, b;
        pfalloc_program(path, &o, &b);
        cr_assert(o == measured[i].blocks && b == measured[i].bytes,
                  "%s: pfalloc says the program's own are %lu objects, %lu bytes; valgrind %lu blocks, %lu bytes",
                  measured[i].prog, o, b, measured[i].blocks, measured[i].bytes);
    }
}

/* Runs valgrind and reads "in use at exit: X bytes in N blocks". */
static void valgrind_in_use(const char *prog, unsigned long *blocks, unsigned long *bytes)
{
    const char *const argv[] = {"valgrind", "--leak-check=full", "--show-leak-kinds=all", prog, NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .timeout_s = 300};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "valgrind");
    const char *p = strstr(r.err, "in use at exit: ");
    cr_assert(p != NULL, "%s", r.err);
    char num[32];
    size_t k = 0;
    p += strlen("in use at exit: ");
    /* valgrind writes thousands with commas. */
    for (; *p && *p != ' ' && k + 1 < sizeof num; p++)
        if (*p != ',')
            num[k++] = *p;
    num[k] = 0;
    *bytes = strtoul(num, NULL, 10);
    cr_assert(sscanf(p, " bytes in %lu blocks", blocks) == 1, "%s", p);
    pf_run_free(&r);
}

Test(valgrind, program_objects_equal_a_live_valgrind_run)
{
    PF_REQUIRE_PROGRAM("valgrind");
    for (size_t i = 0; i < sizeof measured / sizeof measured[0]; i++) {
        char path[512];
        path_of(measured[i].prog, path, sizeof path);
        unsigned long vo, vb, o, b;
        valgrind_in_use(path, &vo, &vb);
        pfalloc_program(path, &o, &b);
        cr_assert(o == vo && b == vb, "%s: pfalloc says the program's own are %lu objects, %lu bytes; valgrind %lu, %lu",
                  measured[i].prog, o, b, vo, vb);
    }
}
