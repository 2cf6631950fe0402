/*
 * Reports from the preload, seen from outside: real programs (tests/progs)
 * run with LD_PRELOAD set in their own environment only, and their reports
 * are read back from stderr or from the PFALLOC_OUT file.
 *  - the leak report of leaky (C) and leakyxx (C++): objects and bytes per
 *    site exactly as the programs leak them, sites named by function, the
 *    runtime's own objects apart from the program's;
 *  - JSON reports parsed by a real JSON parser (python3's json module);
 *  - sigstorm hammered with thousands of SIGUSR1 while its threads allocate:
 *    same checksum as a quiet run, every report on its file whole;
 *  - interval reports, both formats, every PFALLOC_* variable with good and
 *    bad values, PFALLOC_OUT with %p and planted as a symlink, a program's
 *    own handler for the report signal.
 */
#include "spawn.h"

#include <poll.h>
#include <sys/auxv.h>
#include <sys/prctl.h>

#include <ctype.h>

TestSuite(reports);

#define PROG(name) PF_PROGS_DIR "/" name

/* Starts daemonish for `seconds` and waits until its main runs (so the
 * preload's constructor, which installs the handlers, is done). */
static void start_daemonish(struct pf_child *c, const char *seconds, const char *const *env)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("daemonish"), seconds, NULL};
    pf_child_start(c, "reports", argv, env, PF_PRELOAD);
    cr_assert(pf_wait_for_text(c->out_path, "daemonish: started\n", 20000), "daemonish did not start");
}

/* ---- reading reports -------------------------------------------------------- */

static size_t count_lines_starting(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, len) == 0)
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

/* The first line of text that starts with prefix, copied into buf. */
static int line_starting(const char *text, const char *prefix, char *buf, size_t cap)
{
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n >= len && strncmp(p, prefix, len) == 0) {
            if (n >= cap)
                n = cap - 1;
            memcpy(buf, p, n);
            buf[n] = '\0';
            return 1;
        }
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

/*
 * Checks a JSON Lines report stream with python3's json module and prints
 * one summary line per report for the C side:
 *   report PID PROGRAM REASON TIME_S NFAMILIES CACHED_BYTES
 *   skipped PID REASON
 *   leaks OBJECTS BYTES PROGRAM_OBJECTS PROGRAM_BYTES RECORDED NSITES
 *   site FUNCTION MODULE FAMILY OBJECTS BYTES RUNTIME
 * It exits 1 with a "BAD ..." line for a line that does not parse, a line
 * cut short, a report missing a key, or a leak section whose parts do not
 * add up.
 */
static const char summary_py[] =
    "import json, sys\n"
    "f = sys.stdin if sys.argv[1] == '-' else open(sys.argv[1])\n"
    "data = f.read()\n"
    "def bad(msg):\n"
    "    print('BAD ' + msg)\n"
    "    sys.exit(1)\n"
    "if data and not data.endswith('\\n'):\n"
    "    bad('stream does not end with a newline')\n"
    "keys = ('pid', 'program', 'reason', 'time_s', 'totals', 'families')\n"
    "tkeys = ('live_objects', 'live_bytes', 'mapped_bytes', 'cached_bytes', 'allocs', 'frees')\n"
    "for i, line in enumerate(data.splitlines(), 1):\n"
    "    try:\n"
    "        d = json.loads(line)\n"
    "    except ValueError as e:\n"
    "        bad('line %d: %s: %r' % (i, e, line[:300]))\n"
    "    if not isinstance(d, dict):\n"
    "        bad('line %d is not an object' % i)\n"
    "    if 'skipped' in d:\n"
    "        print('skipped', d['pid'], d['reason'])\n"
    "        continue\n"
    "    for k in keys:\n"
    "        if k not in d:\n"
    "            bad('line %d has no %s' % (i, k))\n"
    "    for k in tkeys:\n"
    "        if not isinstance(d['totals'].get(k), int):\n"
    "            bad('line %d: totals.%s is not an integer' % (i, k))\n"
    "    for fam in d['families']:\n"
    "        if not isinstance(fam.get('name'), str) or not isinstance(fam.get('live_bytes'), int):\n"
    "            bad('line %d: a family without name or live_bytes' % i)\n"
    "    print('report', d['pid'], d['program'], d['reason'], d['time_s'], len(d['families']),\n"
    "          d['totals']['cached_bytes'])\n"
    "    if 'leaks' not in d:\n"
    "        continue\n"
    "    L = d['leaks']\n"
    "    print('leaks', L['objects'], L['bytes'], L['program_objects'], L['program_bytes'],\n"
    "          'yes' if L['sites_recorded'] else 'no', len(L['sites']))\n"
    "    if sum(s['objects'] for s in L['sites']) != L['objects']:\n"
    "        bad('line %d: sites do not add up to the leaked objects' % i)\n"
    "    if sum(s['bytes'] for s in L['sites']) != L['bytes']:\n"
    "        bad('line %d: sites do not add up to the leaked bytes' % i)\n"
    "    own = [s for s in L['sites'] if s['runtime'] is not True]\n"
    "    if sum(s['objects'] for s in own) != L['program_objects']:\n"
    "        bad('line %d: sites do not add up to the program objects' % i)\n"
    "    if sum(s['bytes'] for s in own) != L['program_bytes']:\n"
    "        bad('line %d: sites do not add up to the program bytes' % i)\n"
    "    bases = {}\n"
    "    for s in L['sites']:\n"
    "        name = s['site']\n"
    "        if name is not None:\n"
    "            if '+0x' not in name:\n"
    "                bad('line %d: site %r is not name+0xoffset' % (i, name))\n"
    "            base = int(s['address'], 16) - int(s['module_offset'], 16)\n"
    "            if base % 4096 or bases.setdefault(s['module'], base) != base:\n"
    "                bad('line %d: address - module_offset is not one page-aligned base per module' % i)\n"
    "        rt = {True: 'true', False: 'false', None: 'null'}[s['runtime']]\n"
    "        print('site', (name or '-').split('+0x')[0], s['module'] or '-',\n"
    "              s['family'].replace(' ', '_'), s['objects'], s['bytes'], rt)\n";

/* Runs the summary over a JSON Lines file ("-": over `input` on stdin);
 * asserts it parses; returns the summary (malloc'd). */
static char *json_summary(const char *path, const char *input)
{
    PF_REQUIRE_PROGRAM("python3");
    char *tmp = NULL;
    if (input) {
        tmp = strdup("/tmp/pf-reports-json-XXXXXX");
        int fd = mkstemp(tmp);
        cr_assert(fd >= 0);
        close(fd);
        pf_write_file(tmp, input, strlen(input));
    }
    const char *const argv[] = {"python3", "-c", summary_py, "-", NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .stdin_path = tmp ? tmp : path, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    cr_assert(r.exited && r.code == 0, "JSON check failed (%s):\n%s%s", pf_run_how(&r),
              pf_tail(r.out, r.out_len, 2000), r.err);
    char *s = r.out;
    free(r.err);
    return s;
}

struct site_row {
    char func[128], module[64], family[64], runtime[8];
    unsigned long objects, bytes;
};

/* The summary's site rows for function `func` (first match), or 0. */
static int find_site(const char *summary, const char *func, struct site_row *row)
{
    char prefix[160];
    snprintf(prefix, sizeof prefix, "site %s ", func);
    char line[512];
    if (!line_starting(summary, prefix, line, sizeof line))
        return 0;
    return sscanf(line, "site %127s %63s %63s %lu %lu %7s", row->func, row->module, row->family,
                  &row->objects, &row->bytes, row->runtime) == 6;
}

/* The family a small object of `size` bytes lands in is a size class that
 * holds it without wasting more than a quarter of the slot (or "large"). */
static void assert_family_fits(const char *family, unsigned long size)
{
    if (strcmp(family, "large") == 0)
        return;
    cr_assert(strncmp(family, "malloc-", 7) == 0, "family %s for an untyped %lu-byte object", family, size);
    unsigned long slot = strtoul(family + 7, NULL, 10);
    cr_assert(slot >= size && (slot - size) * 4 <= slot + 48,
              "a %lu-byte object in family %s", size, family);
}

struct expect {
    const char *func;
    unsigned long objects, bytes;
};

/* leaky's leaks, as tests/progs/leaky.c makes them. */
static const struct expect leaky_expect[] = {
    {"leak_small", 5, 5 * 100},
    {"leak_strings", 3, 3 * 12},
    {"leak_big", 1, 300000},
    {"leak_realloc", 1, 5000},
};
#define LEAKY_OBJECTS (5 + 3 + 1 + 1)
#define LEAKY_BYTES (500 + 36 + 300000 + 5000)

/* The text leak table's row for site function `func` in the section that
 * starts with `section` (up to the next section or the report's end). */
static int text_leak_row(const char *err, const char *section, const char *func, unsigned long *objects,
                         unsigned long *bytes, char *family, size_t famcap)
{
    const char *sec = strstr(err, section);
    if (!sec)
        return 0;
    const char *end = strstr(sec + 1, "  allocated by ");
    const char *stop = strstr(sec, "==== end of pfalloc report");
    if (!end || (stop && stop < end))
        end = stop ? stop : sec + strlen(sec);
    char pat[160];
    snprintf(pat, sizeof pat, " %s+0x", func);
    const char *hit = strstr(sec, pat);
    if (!hit || hit >= end)
        return 0;
    const char *bol = hit;
    while (bol > sec && bol[-1] != '\n')
        bol--;
    char fam[128];
    if (sscanf(bol, "%lu %lu %127s", objects, bytes, fam) != 3)
        return 0;
    snprintf(family, famcap, "%s", fam);
    return 1;
}

/* ---- the leak report ---------------------------------------------------------- */

Test(reports, leaky_text_leak_table)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("leaky"), NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(strstr(r.out, ", 10 objects kept\n") != NULL, "stdout: %s", r.out);
    cr_assert(pf_count(r.err, PF_REPORT_MARK) == 1 && pf_count(r.err, "==== end of pfalloc report ====\n") == 1,
              "want one whole report:\n%s", r.err);
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);

    unsigned long objs, progobjs;
    const char *l = strstr(r.err, "\nleaks: ");
    cr_assert(l != NULL, "no leaks line:\n%s", r.err);
    cr_assert(sscanf(l, "\nleaks: %lu objects,", &objs) == 1);
    const char *own = strstr(l, "the program's own: ");
    cr_assert(own && sscanf(own, "the program's own: %lu objects", &progobjs) == 1, "%s", l);
    cr_assert(progobjs == LEAKY_OBJECTS, "the program's own objects: %lu, want %d\n%s", progobjs,
              LEAKY_OBJECTS, l);
    cr_assert(objs >= progobjs);

    for (size_t i = 0; i < sizeof leaky_expect / sizeof leaky_expect[0]; i++) {
        const struct expect *e = &leaky_expect[i];
        unsigned long o_, b_;
        char fam[128];
        cr_assert(text_leak_row(r.err, "  allocated by the program:", e->func, &o_, &b_, fam, sizeof fam),
                  "no row for %s among the program's leaks:\n%s", e->func, l);
        cr_assert(o_ == e->objects && b_ == e->bytes, "%s: %lu objects, %lu bytes; want %lu, %lu\n%s", e->func,
                  o_, b_, e->objects, e->bytes, l);
        assert_family_fits(fam, e->bytes / e->objects);
        /* Never also filed under the runtime. */
        cr_assert(!text_leak_row(r.err, "  allocated by the C/C++ runtime", e->func, &o_, &b_, fam, sizeof fam),
                  "%s listed as the runtime's:\n%s", e->func, l);
    }
    /* The frees all happened: churn's allocations are not leaks. */
    cr_assert(strstr(l, "churn") == NULL, "%s", l);
    pf_run_free(&r);
}

/* The exit report's totals and its leak section count the same objects:
 * the report made none of its own after the walk. In a C program, whose
 * modules have no __cxa_demangle, the report's look-up of it failed in
 * dlsym, which left glibc's error state allocated: two objects live in the
 * totals that the leak section, walked before, did not list. */
Test(reports, the_totals_count_what_the_leak_section_lists)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("leaky"), NULL};
    static const char *const sites[] = {"PFALLOC_SITES=0", "PFALLOC_SITES=1"};
    for (int i = 0; i < 2; i++) {
        const char *const env[] = {sites[i], NULL};
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        pf_assert_ok(&r, "leaky");
        unsigned long live, objs;
        const char *t = strstr(r.err, "  live objects ");
        cr_assert(t && sscanf(t, "  live objects %lu", &live) == 1, "%s", r.err);
        const char *l = strstr(r.err, "\nleaks: ");
        cr_assert(l && sscanf(l, "\nleaks: %lu objects,", &objs) == 1, "%s", r.err);
        cr_assert_eq(live, objs, "%s: the totals say %lu live, the leak section %lu:\n%s", sites[i], live, objs,
                     r.err);
        pf_run_free(&r);
    }
}

Test(reports, leaky_json_leak_section)
{
    PF_REQUIRE_PRELOAD();
    struct pf_child c;
    const char *const argv[] = {PROG("leaky"), NULL};
    char *dir = pf_tempdir("leakyjson");
    char *out = pf_path(dir, "report.json");
    char outvar[600];
    snprintf(outvar, sizeof outvar, "PFALLOC_OUT=%s", out);
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_FORMAT=json", outvar, NULL};
    pf_child_start(&c, "reports", argv, env, PF_PRELOAD);
    struct pf_run r;
    pf_child_wait(&c, 60, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(r.err_len == 0, "stderr should be empty, the report goes to the file:\n%s", r.err);

    char *sum = json_summary(out, NULL);
    cr_assert(count_lines_starting(sum, "report ") == 1, "%s", sum);
    char line[512], want[128];
    snprintf(want, sizeof want, "report %d leaky exit ", (int)c.pid);
    cr_assert(line_starting(sum, want, line, sizeof line), "want \"%s...\" in\n%s", want, sum);

    unsigned long objs, bytes, pobjs, pbytes, nsites;
    char recorded[8];
    cr_assert(line_starting(sum, "leaks ", line, sizeof line));
    cr_assert(sscanf(line, "leaks %lu %lu %lu %lu %7s %lu", &objs, &bytes, &pobjs, &pbytes, recorded, &nsites) == 6);
    cr_assert(pobjs == LEAKY_OBJECTS && pbytes == LEAKY_BYTES,
              "program_objects %lu program_bytes %lu, want %d %d\n%s", pobjs, pbytes, LEAKY_OBJECTS,
              LEAKY_BYTES, sum);
    cr_assert(strcmp(recorded, "yes") == 0);
    cr_assert(objs >= pobjs && bytes >= pbytes);

    for (size_t i = 0; i < sizeof leaky_expect / sizeof leaky_expect[0]; i++) {
        const struct expect *e = &leaky_expect[i];
        struct site_row row;
        cr_assert(find_site(sum, e->func, &row), "no site %s in\n%s", e->func, sum);
        cr_assert(row.objects == e->objects && row.bytes == e->bytes, "%s: %lu objects %lu bytes, want %lu %lu",
                  e->func, row.objects, row.bytes, e->objects, e->bytes);
        cr_assert(strcmp(row.module, "leaky") == 0, "%s in module %s", e->func, row.module);
        cr_assert(strcmp(row.runtime, "false") == 0, "%s: runtime %s", e->func, row.runtime);
        assert_family_fits(row.family, e->bytes / e->objects);
    }
    /* Every other live object is the runtime's own (stdio's buffer, ...). */
    size_t rows = count_lines_starting(sum, "site ");
    size_t runtime_rows = pf_count(sum, " true\n");
    cr_assert(rows == 4 + runtime_rows, "sites other than leaky's four are not all the runtime's:\n%s", sum);
    free(sum);
    pf_run_free(&r);
    pf_child_free(&c);
    free(out);
    pf_tempdir_remove(dir);
}

Test(reports, leaky_freeing_everything_leaves_only_runtime_objects)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("leaky"), "free", NULL};
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_FORMAT=json", "PFALLOC_REPORT=exit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leaky free");
    cr_assert(strstr(r.out, "leaky: all freed\n") != NULL);
    char *sum = json_summary(NULL, r.err);
    char line[256];
    unsigned long objs, bytes, pobjs, pbytes;
    cr_assert(line_starting(sum, "leaks ", line, sizeof line), "%s", sum);
    cr_assert(sscanf(line, "leaks %lu %lu %lu %lu", &objs, &bytes, &pobjs, &pbytes) == 4);
    cr_assert(pobjs == 0 && pbytes == 0, "the program freed everything, yet:\n%s", sum);
    cr_assert(strstr(sum, "site leak_") == NULL, "%s", sum);
    free(sum);
    pf_run_free(&r);
}

Test(reports, cxx_leaks_through_new)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("leakyxx"), NULL};
    const char *const env[] = {"PFALLOC_SITES=1", "PFALLOC_FORMAT=json", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "leakyxx");
    cr_assert(strncmp(r.out, "leakyxx: churn ", 15) == 0, "%s", r.out);
    char *sum = json_summary(NULL, r.err);

    /* C++ names come mangled (_Z12leak_recordsv): match the name inside. */
    unsigned long rec_objs = 0, rec_bytes = 0, text_objs = 0, text_bytes = 0, buffers = 0;
    for (const char *p = strstr(sum, "site "); p; p = strstr(p + 1, "\nsite ")) {
        if (*p == '\n')
            p++;
        struct site_row row;
        cr_assert(sscanf(p, "site %127s %63s %63s %lu %lu %7s", row.func, row.module, row.family, &row.objects,
                         &row.bytes, row.runtime) == 6);
        if (strstr(row.func, "leak_records")) {
            cr_assert(strcmp(row.runtime, "false") == 0);
            assert_family_fits(row.family, 40);
            rec_objs += row.objects;
            rec_bytes += row.bytes;
        } else if (strstr(row.func, "leak_text")) {
            cr_assert(strcmp(row.runtime, "false") == 0, "std::string's buffer is the program's");
            text_objs += row.objects;
            text_bytes += row.bytes;
            buffers += row.bytes == 201; /* 200 characters and the terminator */
        }
    }
    cr_assert(rec_objs == 7 && rec_bytes == 7 * 40, "leak_records: %lu objects, %lu bytes\n%s", rec_objs,
              rec_bytes, sum);
    /* The std::string object itself and its heap buffer. */
    cr_assert(text_objs == 2 && buffers == 1, "leak_text: %lu objects, %lu bytes\n%s", text_objs, text_bytes, sum);
    unsigned long objs, bytes, pobjs, pbytes;
    char line[256];
    cr_assert(line_starting(sum, "leaks ", line, sizeof line));
    cr_assert(sscanf(line, "leaks %lu %lu %lu %lu", &objs, &bytes, &pobjs, &pbytes) == 4);
    cr_assert(pobjs == 9 && pbytes == rec_bytes + text_bytes,
              "the program's own: %lu objects %lu bytes, want 9 (leak_records and leak_text)\n%s", pobjs, pbytes,
              sum);
    free(sum);
    pf_run_free(&r);
}

/* The line of the text report's "allocated by the program:" table whose
 * site starts with `site` (malloc'd, without its newline), or NULL. */
static char *own_row(const char *err, const char *site)
{
    const char *sec = strstr(err, "  allocated by the program:\n");
    if (!sec)
        return NULL;
    const char *end = strstr(sec + 1, "  allocated by ");
    char pat[160];
    snprintf(pat, sizeof pat, "  %s", site);
    for (const char *hit = strstr(sec, pat); hit && (!end || hit < end); hit = strstr(hit + 1, pat)) {
        const char *bol = hit, *eol = strchr(hit, '\n');
        while (bol > sec && bol[-1] != '\n')
            bol--;
        const char *t = bol + strspn(bol, " ");
        if (*t < '0' || *t > '9' || !eol)
            continue; /* a caller's line ("by ..."), not a row */
        return strndup(bol, (size_t)(eol - bol));
    }
    return NULL;
}

/* C++'s new[] of a type with a destructor puts a count before the elements
 * and gives the program the address past it; new T[0] is that count alone,
 * with the pointer at the block's end. Kept in globals, both are reachable
 * (they were "definitely lost" and "possibly lost"), a large array too (it
 * was "possibly lost"); a dropped one is still lost. An object of a class
 * with two bases kept by a pointer to the second (its virtual table
 * pointer, inside the object) is reachable, as valgrind says (it was
 * "possibly lost", which fails PFALLOC_LEAK_EXIT_CODE). Demangled names longer than the report's room were cut
 * without a mark, so a cut name read as another function's. */
Test(reports, cxx_arrays_kept_by_new_and_long_names)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("cxxnames"), NULL};
    const char *const env[] = {"PFALLOC_SITES=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "cxxnames");
    cr_assert(strcmp(r.out, "cxxnames: done\n") == 0, "%s", r.out);
    static const struct {
        const char *site, *reach;
    } rows[] = {{"keep_zero()+0x", "still reachable"},
                {"keep_three()+0x", "still reachable"},
                {"drop_two()+0x", "definitely lost"},
                {"keep_big()+0x", "still reachable"},
                {"keep_by_base()+0x", "still reachable"},
                {"void keep_named<", "still reachable"},
                {"void keep_longer<", "still reachable"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *row = own_row(r.err, rows[i].site);
        cr_assert(row, "no row for %s in\n%s", rows[i].site, r.err);
        cr_assert(strstr(row, rows[i].reach), "%s: want %s: %s", rows[i].site, rows[i].reach, row);
        free(row);
    }
    /* 445 characters: whole, to its last parameter. */
    char *named = own_row(r.err, "void keep_named<");
    cr_assert(strstr(named, ", Tail_of_the_name)"), "cut: %s", named);
    free(named);
    /* 32 370 characters: cut, and marked so. */
    char *longer = own_row(r.err, "void keep_longer<");
    cr_assert(strstr(longer, "...+0x"), "cut without a mark: %s", longer);
    cr_assert(strlen(longer) < 2000, "%zu characters", strlen(longer));
    free(longer);
    cr_assert(strstr(r.err, "    definitely lost:            1 objects, 24 B\n"), "%s", r.err);
    pf_run_free(&r);
}

/* What the walk learnt of an address (a virtual table there, or not) held
 * for later walks too: the count of runs that dates it was cleared with the
 * walk's state, so every run was the first. An object kept by a pointer to
 * its middle, at a word pointing where a table of code addresses was during
 * a signal report's walk and zeros are at the exit, read as still reachable
 * at the exit (tests/progs/vtable_memo.c). */
Test(reports, a_later_walk_does_not_trust_what_an_earlier_one_read)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("vtable_memo"), NULL};
    const char *const env[] = {"PFALLOC_REACH_SIGNAL=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "vtable_memo");
    cr_assert_str_eq(r.out, "vtable_memo: done\n", "%s", r.err);
    const char *exit_report = strstr(r.err, "reason exit");
    cr_assert(exit_report != NULL, "no exit report:\n%s", r.err);
    cr_assert(strstr(exit_report, "\n    possibly lost:              1 objects, 64 B\n") != NULL,
              "the object kept by a pointer to its middle, no table there now:\n%s", r.err);
    pf_run_free(&r);
}

/* Objects of a class with two bases, kept by pointers to the second, whose
 * virtual tables lie in a file mapped before the heap grew past it
 * (tests/progs/vtable_memo.c many): the walk took every address between
 * the heap's lowest and highest for a heap pointer, so those tables were
 * never looked at, and all 80 000 were possibly lost. With that mended,
 * two tables 8 KiB apart shared one place of the walk's memo, each object
 * read its table again, and past the walk's bound of reads the last
 * thousands were possibly lost. */
Test(reports, objects_kept_by_a_second_base_are_reachable_whatever_the_layout, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("vtable_memo"), "many", "80000", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 100};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "vtable_memo many 80000");
    cr_assert_str_eq(r.out, "vtable_memo: 80000 objects\n", "%s", r.err);
    cr_assert(strstr(r.err, "\n    possibly lost:              0 objects, 0 B\n") != NULL, "%s",
              pf_tail(r.err, r.err_len, 3000));
    pf_run_free(&r);
}

/* The table may lie where a freed large block began: pfalloc's pagemap
 * keeps a tombstone there, which the walk took for a heap span, so the
 * object was possibly lost (tests/progs/vtable_memo.c tomb). */
Test(reports, a_table_mapped_where_a_freed_block_was_is_read)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("vtable_memo"), "tomb", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "vtable_memo tomb");
    if (strcmp(r.out, "vtable_memo: tomb\n") != 0) {
        pf_run_free(&r);
        cr_skip_test("the freed block's place was taken before the file could be mapped there");
    }
    cr_assert(strstr(r.err, "\n    possibly lost:              0 objects, 0 B\n") != NULL, "%s",
              pf_tail(r.err, r.err_len, 3000));
    pf_run_free(&r);
}

/* ---- a storm of report signals ------------------------------------------------ */

#define STORM_ROUNDS "6000000"
#define STORM_SIGNALS 3000

static void storm(int json, char **file_text, pid_t *pid_out, unsigned long *sent_out, char checksum[128])
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("sigstorm"), STORM_ROUNDS, NULL};

    /* The checksum the work gives when nothing interrupts it (preloaded
     * too: sigstorm_plain_and_preloaded_agree compares with a plain run). */
    const char *const quiet_env[] = {"PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts qo = {.mode = PF_PRELOAD, .env = quiet_env, .timeout_s = 60};
    struct pf_run quiet;
    pf_spawn(argv, &qo, &quiet);
    pf_assert_ok(&quiet, "sigstorm, quiet");
    cr_assert(strstr(quiet.out, ", 0 bad blocks\n") != NULL, "%s", quiet.out);
    snprintf(checksum, 128, "%s", quiet.out);
    pf_run_free(&quiet);

    struct pf_child c;
    char *dir = pf_tempdir("storm");
    char *out = pf_path(dir, "reports.%p");
    char outvar[600];
    snprintf(outvar, sizeof outvar, "PFALLOC_OUT=%s", out);
    const char *const env[] = {outvar, json ? "PFALLOC_FORMAT=json" : "PFALLOC_FORMAT=text", NULL};
    pf_child_start(&c, "reports", argv, env, PF_PRELOAD);
    /* Sending before the constructor installed the handler would kill it. */
    int ready = 0;
    for (int i = 0; i < 2000 && !(ready = pf_catches(c.pid, SIGUSR1)); i++)
        pf_sleep_ms(1);
    cr_assert(ready, "sigstorm never caught SIGUSR1");
    unsigned long sent = 0;
    int status = 0, reaped = 0;
    for (int i = 0; i < STORM_SIGNALS; i++) {
        if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
            reaped = 1; /* it finished before the storm did */
            break;
        }
        if (kill(c.pid, SIGUSR1) != 0)
            break;
        sent++;
        /* A short spin rather than a sleep: a sleeping sender wakes late
         * on a busy machine, and the storm would thin out. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t1);
        while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 30000);
    }
    struct pf_run r;
    if (reaped) {
        memset(&r, 0, sizeof r);
        r.status = status;
        r.exited = WIFEXITED(status);
        r.code = r.exited ? WEXITSTATUS(status) : -1;
        r.signo = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        r.out = pf_read_file(c.out_path, &r.out_len);
        r.err = pf_read_file(c.err_path, &r.err_len);
    } else {
        pf_child_wait(&c, 60, &r);
    }
    pf_assert_ok(&r, "sigstorm under a signal storm");
    cr_assert(strcmp(r.out, checksum) == 0, "checksum under the storm:\n%s\nquiet:\n%s", r.out, checksum);
    /* The storm must have hit it while it worked, not after. */
    cr_assert(sent == STORM_SIGNALS, "only %lu signals reached sigstorm before it ended", sent);

    char path[700];
    snprintf(path, sizeof path, "%s/reports.%d", dir, (int)c.pid);
    *file_text = pf_read_file(path, NULL);
    *pid_out = c.pid;
    *sent_out = sent;
    pf_run_free(&r);
    pf_child_free(&c);
    free(out);
    pf_tempdir_remove(dir);
}

Test(reports, sigstorm_plain_and_preloaded_agree)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("sigstorm"), "300000", NULL};
    struct pf_run plain, pre;
    pf_compare_runs(argv, NULL, NULL, NULL, NULL, &plain, &pre);
    cr_assert(strstr(plain.out, ", 0 bad blocks\n") != NULL, "%s", plain.out);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

Test(reports, storm_json_reports_all_parse, .timeout = 200)
{
    char *text, checksum[128];
    pid_t pid;
    unsigned long sent;
    storm(1, &text, &pid, &sent, checksum);
    char *sum = json_summary(NULL, text);
    char want[64];
    snprintf(want, sizeof want, "report %d sigstorm signal ", (int)pid);
    size_t signals = count_lines_starting(sum, want);
    snprintf(want, sizeof want, "report %d sigstorm exit ", (int)pid);
    size_t exits = count_lines_starting(sum, want);
    size_t reports = count_lines_starting(sum, "report ");
    size_t skipped = count_lines_starting(sum, "skipped ");
    cr_assert(exits == 1, "%zu exit reports", exits);
    cr_assert(reports == signals + exits, "reports from elsewhere in the file:\n%s", pf_tail(sum, strlen(sum), 2000));
    cr_assert(signals >= 10 && signals <= sent, "%zu signal reports for %lu signals", signals, sent);
    cr_assert(count_lines_starting(text, "{") == reports + skipped);
    free(sum);
    free(text);
}

Test(reports, storm_text_reports_all_whole, .timeout = 200)
{
    char *text, checksum[128];
    pid_t pid;
    unsigned long sent;
    storm(0, &text, &pid, &sent, checksum);
    char head[128], notice[128];
    snprintf(head, sizeof head, PF_REPORT_MARK "%d (sigstorm), reason ", (int)pid);
    snprintf(notice, sizeof notice, "pfalloc: pid %d: signal skipped, another report in progress", (int)pid);
    const char *end = "==== end of pfalloc report ====";
    size_t signals = 0, exits = 0, lineno = 0;
    int inside = 0;
    for (char *p = text; *p;) {
        char *eol = strchr(p, '\n');
        cr_assert(eol != NULL, "the file ends in the middle of a line: %.200s", p);
        *eol = '\0';
        lineno++;
        if (!inside) {
            if (strncmp(p, head, strlen(head)) == 0) {
                inside = 1;
                const char *why = p + strlen(head);
                signals += strncmp(why, "signal,", 7) == 0;
                exits += strncmp(why, "exit,", 5) == 0;
                cr_assert(strncmp(why, "signal,", 7) == 0 || strncmp(why, "exit,", 5) == 0, "line %zu: %s",
                          lineno, p);
            } else {
                cr_assert(strcmp(p, notice) == 0, "line %zu outside any report: %s", lineno, p);
            }
        } else {
            cr_assert(strncmp(p, PF_REPORT_MARK, strlen(PF_REPORT_MARK)) != 0,
                      "line %zu: a report starts inside another one", lineno);
            cr_assert(strncmp(p, "pfalloc: pid", 12) != 0, "line %zu: a notice inside a report", lineno);
            if (strcmp(p, end) == 0)
                inside = 0;
        }
        p = eol + 1;
    }
    cr_assert(!inside, "the last report is cut short");
    cr_assert(exits == 1, "%zu exit reports", exits);
    cr_assert(signals >= 10 && signals <= sent, "%zu signal reports for %lu signals", signals, sent);
    free(text);
}

/* ---- interval reports ----------------------------------------------------------- */

Test(reports, interval_reports, .timeout = 120)
{
    struct pf_child c;
    const char *const env[] = {"PFALLOC_INTERVAL=0.2", "PFALLOC_FORMAT=json", "PFALLOC_REPORT=exit", NULL};
    start_daemonish(&c, "1.5", env);
    struct pf_run r;
    pf_child_wait(&c, 60, &r);
    pf_assert_ok(&r, "daemonish");
    char *sum = json_summary(NULL, r.err);
    char want[64];
    snprintf(want, sizeof want, "report %d daemonish interval ", (int)c.pid);
    size_t n = count_lines_starting(sum, want);
    /* 1.5 s at one report per 0.2 s: 7 at most; allow for a loaded machine. */
    cr_assert(n >= 3 && n <= 7, "%zu interval reports in 1.5 s at 0.2 s:\n%s", n, sum);
    cr_assert(count_lines_starting(sum, "report ") == n + 1, "%s", sum);
    /* Reports come in time order, at least ~0.2 s apart. */
    double last = 0;
    for (const char *p = strstr(sum, want); p; p = strstr(p + 1, want)) {
        double t;
        cr_assert(sscanf(p + strlen(want), "%lf", &t) == 1);
        cr_assert(t >= last + 0.15, "interval report at %.3f s after one at %.3f s", t, last);
        last = t;
    }
    free(sum);
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(reports, interval_text_reports)
{
    struct pf_child c;
    const char *const env[] = {"PFALLOC_INTERVAL=0.15", NULL};
    start_daemonish(&c, "0.7", env);
    struct pf_run r;
    pf_child_wait(&c, 60, &r);
    pf_assert_ok(&r, "daemonish");
    char want[128];
    snprintf(want, sizeof want, PF_REPORT_MARK "%d (daemonish), reason interval, ", (int)c.pid);
    size_t n = pf_count(r.err, want);
    cr_assert(n >= 2 && n <= 5, "%zu interval reports:\n%s", n, r.err);
    cr_assert(pf_count(r.err, PF_REPORT_MARK) == pf_count(r.err, "==== end of pfalloc report ====\n"));
    cr_assert(pf_has_report(r.err, "daemonish"));
    pf_run_free(&r);
    pf_child_free(&c);
}

/* A process forked without exec gets interval reports of its own: the
 * parent's timer is not inherited (the child had none, and its exit
 * deleted a timer id that was not its). daemonish's child runs 0.8 s at
 * one report per 0.15 s while its parent waits. */
Test(reports, a_fork_child_has_its_own_interval_reports, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("daemonish"), "0.8", "fork", NULL};
    const char *const env[] = {"PFALLOC_INTERVAL=0.15", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "daemonish");
    cr_assert_str_eq(r.out, "daemonish: started\ndaemonish: done\n");
    /* Interval reports per process: the parent's and the child's. */
    int pids[4] = {0};
    size_t n[4] = {0}, procs = 0;
    for (const char *p = strstr(r.err, PF_REPORT_MARK); p; p = strstr(p + 1, PF_REPORT_MARK)) {
        int pid;
        char reason[32];
        if (sscanf(p + strlen(PF_REPORT_MARK), "%d (daemonish), reason %31[a-z]", &pid, reason) != 2 ||
            strcmp(reason, "interval") != 0)
            continue;
        size_t i = 0;
        while (i < procs && pids[i] != pid)
            i++;
        cr_assert(i < 4, "interval reports of more than two processes:\n%s", r.err);
        pids[i] = pid;
        n[i]++;
        procs += i == procs;
    }
    cr_assert(procs == 2, "interval reports of %zu processes, not the parent and the child:\n%s", procs, r.err);
    for (size_t i = 0; i < 2; i++)
        cr_assert(n[i] >= 2 && n[i] <= 7, "%zu interval reports of pid %d in 0.8 s at 0.15 s", n[i], pids[i]);
    pf_run_free(&r);
}

/* The line "<what>: N of M bytes, K without the signal" of smallstack or
 * ownstack: a report took at most its signal frame (AT_MINSIGSTKSZ, at
 * least the 2 KiB of an x86-64 frame with AVX for a kernel that does not
 * say) and 1 KiB for the handler's frame of the thread's stack. */
static void assert_report_stack(const char *out, const char *what)
{
    char fmt[96];
    snprintf(fmt, sizeof fmt, "%s: %%lu of %%lu bytes, %%lu without the signal", what);
    unsigned long used, size, plain;
    cr_assert(sscanf(out, fmt, &used, &size, &plain) == 3, "%s", out);
    unsigned long frame = getauxval(AT_MINSIGSTKSZ);
    if (frame < 2048)
        frame = 2048;
    cr_log_info("%s: a report used %lu of %lu bytes of stack, %lu without it (signal frame at most %lu)", what, used,
                size, plain, frame);
    cr_assert(used <= plain + frame + 1024,
              "%s: the report took %lu bytes of the thread's stack (%lu used, %lu without the signal): more than "
              "its signal frame (at most %lu) and 1 KiB for the handler's frame",
              what, used - plain, used, plain, frame);
}

/* The report signal, with the leak section, handled on a thread with the
 * smallest stack the C library allows (16 KiB here). The report runs on a
 * stack of pfalloc's own: of the thread's, it takes the signal frame the
 * kernel puts there (at most AT_MINSIGSTKSZ) and the handler's own frame.
 * It used to run on the thread's stack: about 8.8 KB of it in all here,
 * with 2 KiB or so to spare, which a CPU with a larger signal frame does
 * not have (and a walk that once put a 4 KiB buffer more on the stack died
 * of SIGSEGV). */
Test(reports, a_signal_report_takes_little_of_a_minimal_thread_stack)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("smallstack"), NULL};
    const char *const env[] = {"PFALLOC_REACH_SIGNAL=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "smallstack: %s\n%s", pf_run_how(&r), pf_tail(r.err, r.err_len, 2000));
    cr_assert(strstr(r.err, "reason signal") != NULL && strstr(r.err, "  by reachability:\n") != NULL, "%s",
              pf_tail(r.err, r.err_len, 2000));
    assert_report_stack(r.out, "smallstack");
    pf_run_free(&r);
}

/* A thread on such a stack calls exit(): the exit report, leak walk and
 * all, runs from it, and the other thread (main, blocked in pthread_join)
 * is walked as usual. */
Test(reports, the_exit_report_runs_from_a_minimal_thread_stack)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("smallstack"), "exit", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 3, "smallstack exit: %s\n%s", pf_run_how(&r), pf_tail(r.err, r.err_len, 2000));
    cr_assert(strstr(r.err, "reason exit") != NULL && strstr(r.err, "==== end of pfalloc report ====") != NULL,
              "%s", pf_tail(r.err, r.err_len, 2000));
    /* The block and the mapping that holds nothing of pfalloc's: the big
     * block is kept in a global, so nothing is lost. */
    cr_assert(strstr(r.err, "definitely lost:            0 objects") != NULL, "%s", pf_tail(r.err, r.err_len, 3000));
    pf_run_free(&r);
}

/* tests/progs/ownstack: thread A's report, on pfalloc's stack, blocks in a
 * write to a full pipe, and a handler of the program's (SIGALRM) runs on
 * that stack inside it. A's block of 1000 bytes is kept only in A's own
 * stack, so with PFALLOC_LEAK_EXIT_CODE=9 the exit status says whether the
 * exit walk found that stack. Each run waits out pfalloc's bounded write
 * to the full pipe (about 2 s). */
static void run_ownstack(const char *mode, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("ownstack"), mode, NULL};
    const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=9", "PFALLOC_INTERVAL=1000", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
}

/* Main calls exit() while A waits in the handler. The walk once took A's
 * stack to be pfalloc's, where its stack pointer was: A's own stack went
 * unscanned and the block was definitely lost (exit status 9). */
Test(reports, the_exit_walk_finds_the_stack_of_a_thread_in_a_report)
{
    struct pf_run r;
    run_ownstack("other", &r);
    cr_assert(r.exited && r.code == 0, "ownstack other: %s\n%s", pf_run_how(&r), r.out);
    pf_run_free(&r);
}

/* The handler calls exit() itself: the exit report runs on another of
 * pfalloc's stacks, from a position on the first. The same walk missed
 * A's stack then. */
Test(reports, an_exit_from_a_handler_inside_a_report_walks_the_threads_stack)
{
    struct pf_run r;
    run_ownstack("nested", &r);
    cr_assert(r.exited && r.code == 0, "ownstack nested: %s\n%s", pf_run_how(&r), r.out);
    pf_run_free(&r);
}

/* The handler keeps a block only in its own frame, on pfalloc's stack, and
 * spins: a running thread has no stack pointer to read, and the exit walk
 * scans every thread's stack whole then, pfalloc's stacks that threads are
 * on with them. It once left those out: the block was definitely lost. */
Test(reports, the_exit_walk_scans_a_running_handler_inside_a_report)
{
    struct pf_run r;
    run_ownstack("running", &r);
    cr_assert(r.exited && r.code == 0, "ownstack running: %s\n%s", pf_run_how(&r), r.out);
    pf_run_free(&r);
}

/* Five threads' handlers leave their reports for good (pthread_exit): the
 * stacks those reports had are taken over, and a thread on a minimal stack
 * still reports on one of pfalloc's. They stayed taken, and after four the
 * report ran on the thread's stack again. */
Test(reports, stacks_of_reports_left_for_good_are_taken_over)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("ownstack"), "abandon", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "ownstack abandon: %s\n%s", pf_run_how(&r), r.out);
    assert_report_stack(r.out, "abandon");
    pf_run_free(&r);
}

/* The handler runs on a sigaltstack and forks; in the child it raises the
 * interval signal, then returns into the report it interrupted. The child
 * once took pfalloc's stack to be free (the handler was not on it), ran
 * the second report over the first one's frames and died of SIGSEGV. */
Test(reports, a_fork_inside_a_report_keeps_its_stack_in_the_child)
{
    struct pf_run r;
    run_ownstack("fork", &r);
    cr_assert(r.exited && r.code == 0, "ownstack fork: %s\n%s", pf_run_how(&r), r.out);
    cr_assert(strstr(r.out, "in child: the report resumed and returned\n") != NULL &&
                  strstr(r.out, "child: exit 0\n") != NULL,
              "%s", r.out);
    pf_run_free(&r);
}

/* The handler takes 160 KB of stack (pfalloc's, where it runs): it has the
 * room a thread's stack would give it. pfalloc's stack was 128 KiB with
 * one guard page, and the program died of SIGSEGV. */
Test(reports, a_handler_inside_a_report_has_room_on_its_stack)
{
    struct pf_run r;
    run_ownstack("bigframe", &r);
    cr_assert(r.exited && r.code == 0, "ownstack bigframe: %s\n%s", pf_run_how(&r), r.out);
    cr_assert(strstr(r.out, "bigframe: handler ran\n") != NULL, "%s", r.out);
    pf_run_free(&r);
}

/* gdb, stopped in a handler of the program's inside a report on pfalloc's
 * stack, gives a backtrace that goes on through pfalloc's frames to the
 * thread's own (`reporter`, which raised the report signal). A's stack is
 * below pfalloc's, and gdb once stopped at the switch: "previous frame
 * inner to this frame (corrupt stack?)". */
Test(reports, a_debugger_follows_a_report_back_to_the_programs_frames)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("gdb");
    const char *const argv[] = {"gdb", "-q", "-nx", "-batch",
                                "-ex", "set environment LD_PRELOAD " PF_PRELOAD_LIB,
                                "-ex", "handle SIGUSR1 nostop noprint pass",
                                "-ex", "handle SIGALRM nostop noprint pass",
                                "-ex", "run",
                                "-ex", "bt",
                                "--args", PROG("ownstack"), "trace", NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited, "gdb: %s\n%s", pf_run_how(&r), pf_tail(r.err, r.err_len, 2000));
    cr_assert(strstr(r.out, "SIGTRAP") != NULL, "the program never stopped:\n%s\n%s", pf_tail(r.out, r.out_len, 3000),
              pf_tail(r.err, r.err_len, 2000));
    cr_assert(strstr(r.out, " in reporter (") != NULL && strstr(r.out, "start_thread") != NULL,
              "the backtrace stops before the thread's own frames:\n%s\n%s", pf_tail(r.out, r.out_len, 3000),
              pf_tail(r.err, r.err_len, 1000));
    pf_run_free(&r);
}

/* Four threads on the smallest stacks raise SIGUSR1 together, 200 times:
 * each report has a stack of pfalloc's. With one, the reports that found
 * it taken ran on the thread's stack, and used 9 KB of it or more. */
Test(reports, reports_at_once_each_take_little_of_a_minimal_thread_stack)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("ownstack"), "storm", NULL};
    const char *const env[] = {"PFALLOC_REACH_SIGNAL=1", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 0, "ownstack storm: %s\n%s", pf_run_how(&r), pf_tail(r.err, r.err_len, 2000));
    assert_report_stack(r.out, "storm");
    pf_run_free(&r);
}

/* An interval shorter than one report (tests/progs/busyheap: 300 000
 * objects, each interval report walking them for its leak section): the
 * program still runs a whole interval between two reports and gets its
 * work done. A periodic timer had its next signal pending by the time a
 * report ended, and reports ran back to back for good. */
Test(reports, an_interval_shorter_than_a_report_leaves_the_program_time, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("busyheap"), NULL};
    const char *const env[] = {"PFALLOC_INTERVAL=0.002", "PFALLOC_REACH_SIGNAL=1", "PFALLOC_FORMAT=json", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    cr_assert(!r.timed_out, "busyheap made no progress between interval reports in 60 s");
    pf_assert_ok(&r, "busyheap");
    cr_assert_str_eq(r.out, "busyheap: 4499985110592\n");
    cr_assert(strstr(r.err, "\"reason\":\"interval\"") != NULL, "no interval report:\n%s",
              pf_tail(r.err, r.err_len, 2000));
    pf_run_free(&r);
}

/* ---- formats and destinations -------------------------------------------------- */

static void run_leaky(const char *const *env, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("leaky"), NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
}

Test(reports, text_is_the_default_format)
{
    struct pf_run r;
    const char *const env[] = {NULL};
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(strncmp(r.err, PF_REPORT_MARK, strlen(PF_REPORT_MARK)) == 0, "%s", r.err);
    cr_assert(strstr(r.err, "), reason exit, ") != NULL);
    const char *end = "==== end of pfalloc report ====\n";
    cr_assert(r.err_len > strlen(end) && strcmp(r.err + r.err_len - strlen(end), end) == 0, "%s", r.err);
    cr_assert(strstr(r.err, "\ntotals\n") && strstr(r.err, "\nfamily ") && strstr(r.err, "\nleaks: "));
    /* Sites are off unless asked for. */
    cr_assert(strstr(r.err, "(call sites off: PFALLOC_SITES=1)") != NULL, "%s", r.err);
    pf_run_free(&r);
}

/* tests/progs/cxxlinked.cpp, with the C++ runtime as a shared library and
 * linked into the executable (-static-libstdc++, as gcc's own compilers):
 * the same leak section. Before, the linked one had operator new for every
 * site ("_Znwm+0x1c"), mangled names, and the runtime's emergency exception
 * pool (about 71 KiB) among the program's own objects. */
Test(reports, a_cxx_runtime_linked_into_the_program_reads_like_a_shared_one)
{
    PF_REQUIRE_PRELOAD();
    char own[2][160];
    static const char *const progs[2] = {PROG("cxxlinked"), PROG("cxxlinked_static")};
    for (int k = 0; k < 2; k++) {
        const char *const argv[] = {progs[k], NULL};
        const char *const env[] = {"PFALLOC_SITES=1", NULL};
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        pf_assert_ok(&r, progs[k]);
        cr_assert_str_eq(r.out, "cxxlinked: 100 100 1\n", "%s: %s", progs[k], r.out);
        const char *leaks = strstr(r.err, "\nleaks: ");
        cr_assert(leaks != NULL, "%s", r.err);
        const char *eol = strchr(leaks + 1, '\n');
        cr_assert(eol && (size_t)(eol - leaks) < sizeof own[k], "%s", r.err);
        memcpy(own[k], leaks + 1, (size_t)(eol - leaks - 1));
        own[k][eol - leaks - 1] = 0;
        cr_assert(strstr(leaks, "definitely lost  store::cache::fill") != NULL, "%s: no site in fill\n%s", progs[k],
                  leaks);
        cr_assert(strstr(leaks, " _Z") == NULL && strstr(leaks, "operator new") == NULL,
                  "%s: mangled names, or operator new for a site\n%s", progs[k], leaks);
        pf_run_free(&r);
    }
    cr_assert_str_eq(own[0], own[1], "shared: %s\nlinked: %s", own[0], own[1]);
}

/* The exit report's totals and its leak section count the same objects
 * after a C++ runtime was loaded out of the global scope (dlopen without
 * RTLD_GLOBAL, as binutils loads its LTO plugin): looking up the
 * demangler with dlsym failed there, and glibc's error state (two
 * objects) was made after the leak walk, so the totals said 21 live and
 * the leak section 19. */
Test(reports, totals_and_leaks_agree_after_a_local_cxx_runtime_load)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("dlopen_local"), "libstdc++.so.6", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 60}, &r);
    pf_assert_ok(&r, "dlopen_local libstdc++.so.6");
    cr_assert_str_eq(r.out, "dlopen_local: 1\n", "%s", r.err);
    const char *live = strstr(r.err, "\n  live objects ");
    const char *leaks = strstr(r.err, "\nleaks: ");
    cr_assert(live && leaks, "%s", r.err);
    unsigned long n_live = strtoul(live + strlen("\n  live objects "), NULL, 10);
    unsigned long n_leaks = strtoul(leaks + strlen("\nleaks: "), NULL, 10);
    cr_assert(n_live > 0 && n_live == n_leaks, "totals: %lu live, leak section: %lu\n%s", n_live, n_leaks, r.err);
    pf_run_free(&r);
}

/* exit() while other threads free (tests/progs/freers.c: two threads
 * free lists of 64 size classes): the totals and the leak section count
 * the same objects. The threads' allocations waited for the leak walk
 * only; between the walk and the totals, written after it, they went on
 * freeing (and made their next allocation wait) and the totals came out
 * 4 000 to 6 000 objects short of the leak section (python threads killed
 * by SIGTERM: 52 521 against 46 855). Other threads' allocations now wait
 * until the report is written, so a thread frees at most a few bins' worth
 * before it waits, and those frees land before the walk counts. */
/* Runs argv (freers) three times under the preload: each exit report's
 * totals count as many live objects as its leak section, 200 000 or more. */
static void totals_agree_with_leaks(const char *const *argv)
{
    PF_REQUIRE_PRELOAD();
    for (int round = 0; round < 3; round++) {
        struct pf_run r;
        pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 60}, &r);
        pf_assert_ok(&r, "freers");
        const char *live = strstr(r.err, "\n  live objects ");
        const char *leaks = strstr(r.err, "\nleaks: ");
        cr_assert(live && leaks, "%s", pf_tail(r.err, r.err_len, 3000));
        unsigned long n_live = strtoul(live + strlen("\n  live objects "), NULL, 10);
        unsigned long n_leaks = strtoul(leaks + strlen("\nleaks: "), NULL, 10);
        cr_assert(n_live >= 200000 && n_live == n_leaks, "round %d: totals %lu live, leak section %lu", round,
                  n_live, n_leaks);
        pf_run_free(&r);
    }
}

Test(reports, totals_and_leaks_agree_while_threads_free, .timeout = 120)
{
    const char *const argv[] = {PROG("freers"), "2", "200000", "300", NULL};
    totals_agree_with_leaks(argv);
}

/* The same where the exit comes while the other threads only free
 * (freers "once": each builds a list of a million blocks, then frees it
 * from 1 ms before the exit on). Frees went on into the threads' caches
 * under the walk and while the report was written, waiting for nothing:
 * the totals came out 5 000 to 6 000 objects short of the leak section in
 * every run. The exit's walk now sends every span's frees to the slow
 * path, where they wait for the hold. */
Test(reports, totals_and_leaks_agree_while_threads_only_free, .timeout = 120)
{
    const char *const argv[] = {PROG("freers"), "2", "200000", "1", "1000000", "once", NULL};
    totals_agree_with_leaks(argv);
}

/* A program that writes over its argv (postgres's status for ps) keeps
 * the name it started with in its reports' headers, text and JSON: the
 * header was "(?)" or "(er )", or split in two by a newline written there. */
Test(reports, a_program_that_rewrites_its_argv_keeps_its_name)
{
    PF_REQUIRE_PRELOAD();
    for (int json = 0; json < 2; json++) {
        const char *const env[] = {json ? "PFALLOC_FORMAT=json" : "PFALLOC_FORMAT=text", NULL};
        const char *const argv[] = {PROG("leaky"), "retitle", NULL};
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        pf_assert_ok(&r, "leaky retitle");
        if (json)
            cr_assert(strncmp(r.err, "{\"pid\":", 7) == 0 && strstr(r.err, ",\"program\":\"leaky\",") != NULL &&
                          pf_count(r.err, "\n") == 1,
                      "%s", r.err);
        else
            cr_assert(strstr(r.err, " (leaky), reason exit, ") != NULL && strncmp(r.err, PF_REPORT_MARK, strlen(PF_REPORT_MARK)) == 0,
                      "%s", pf_tail(r.err, r.err_len, 400));
        pf_run_free(&r);
    }
}

Test(reports, json_is_one_line_per_report)
{
    struct pf_run r;
    const char *const env[] = {"PFALLOC_FORMAT=json", NULL};
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(pf_count(r.err, "\n") == 1 && r.err[r.err_len - 1] == '\n', "%s", r.err);
    char *sum = json_summary(NULL, r.err);
    cr_assert(strstr(sum, " leaky exit ") != NULL, "%s", sum);
    char line[256];
    cr_assert(line_starting(sum, "leaks ", line, sizeof line));
    cr_assert(strstr(line, " no ") != NULL, "sites_recorded without PFALLOC_SITES: %s", line);
    free(sum);
    pf_run_free(&r);
}

Test(reports, out_file_with_pid)
{
    struct pf_child c;
    char *dir = pf_tempdir("outpid");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s/leaky-%%p.txt", dir);
    const char *const env[] = {var, NULL};
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("leaky"), NULL};
    pf_child_start(&c, "reports", argv, env, PF_PRELOAD);
    struct pf_run r;
    pf_child_wait(&c, 60, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(r.err_len == 0, "%s", r.err);
    char path[700];
    snprintf(path, sizeof path, "%s/leaky-%d.txt", dir, (int)c.pid);
    char *text = pf_read_file(path, NULL);
    cr_assert(pf_has_report(text, "leaky"), "no report in %s: %s", path, text);
    struct stat st;
    cr_assert(stat(path, &st) == 0 && (st.st_mode & 0077) == 0, "the report file is readable by others");
    free(text);
    pf_run_free(&r);
    pf_child_free(&c);
    pf_tempdir_remove(dir);
}

Test(reports, out_file_appends)
{
    char *dir = pf_tempdir("outappend");
    char *path = pf_path(dir, "all.txt");
    pf_write_file(path, "kept line\n", 10);
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", path);
    const char *const env[] = {var, NULL};
    struct pf_run r;
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    pf_run_free(&r);
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    pf_run_free(&r);
    char *text = pf_read_file(path, NULL);
    cr_assert(strncmp(text, "kept line\n" PF_REPORT_MARK, 10 + strlen(PF_REPORT_MARK)) == 0, "%.300s", text);
    cr_assert(pf_count(text, PF_REPORT_MARK) == 2, "two runs, two reports");
    free(text);
    free(path);
    pf_tempdir_remove(dir);
}

Test(reports, out_symlink_is_refused)
{
    char *dir = pf_tempdir("outlink");
    char *target = pf_path(dir, "target");
    char *link = pf_path(dir, "link");
    cr_assert(symlink(target, link) == 0);
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", link);
    const char *const env[] = {var, NULL};
    struct pf_run r;
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    /* One warning line, then the report where it would go by default. */
    cr_assert(count_lines_starting(r.err, "pfalloc: ") == 1, "%s", r.err);
    char line[256];
    cr_assert(line_starting(r.err, "pfalloc: ", line, sizeof line));
    cr_assert(strstr(line, "PFALLOC_OUT") != NULL, "%s", line);
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);
    struct stat st;
    cr_assert(lstat(target, &st) != 0 && errno == ENOENT, "the symlink was followed");
    cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    pf_run_free(&r);
    free(target);
    free(link);
    pf_tempdir_remove(dir);
}

Test(reports, out_stderr_keyword)
{
    struct pf_run r;
    const char *const env[] = {"PFALLOC_OUT=stderr", NULL};
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);
    cr_assert(strstr(r.err, "ignoring") == NULL, "%s", r.err);
    pf_run_free(&r);
}

Test(reports, stderr_reused_by_the_program_is_left_alone)
{
    /* The program closes stderr and its data file takes descriptor 2: the
     * exit report never lands in the program's file. No copy of the old
     * stderr is kept during the program's life, so the report has nowhere
     * to go (PFALLOC_OUT is the way to get it). */
    PF_REQUIRE_PRELOAD();
    struct pf_child c;
    char *dir = pf_tempdir("reuse");
    char *data = pf_path(dir, "data");
    const char *const argv[] = {PROG("stderr_reuse"), data, NULL};
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    pf_child_start(&c, "reports", argv, env, PF_PRELOAD);
    struct pf_run r;
    pf_child_wait(&c, 60, &r);
    pf_assert_ok(&r, "stderr_reuse");
    cr_assert(strstr(r.out, "on descriptor 2") != NULL, "%s", r.out);
    char *text = pf_read_file(data, NULL);
    cr_assert(strcmp(text, "the program's data\n") == 0, "the program's file holds:\n%.400s", text);
    cr_assert(!pf_has_report(text, NULL), "the report went into the program's file");
    free(text);
    pf_run_free(&r);
    pf_child_free(&c);
    free(data);
    pf_tempdir_remove(dir);
}

/* The same program run at a terminal, as a user runs tar, xz or mawk
 * (which close their stderr before they exit): the exit report goes to the
 * terminal, opened again by its name, and still not into the program's
 * file. The terminal is a pseudo-terminal whose slave is the program's
 * controlling terminal, stdout and stderr; the program's process group is
 * its foreground group. */
static size_t read_master(int m, char *buf, size_t cap, pid_t pid, int *status)
{
    size_t len = 0;
    for (int waited = 0; waited < 600;) {
        struct pollfd p = {m, POLLIN, 0};
        int n = poll(&p, 1, 100);
        if (n > 0 && (p.revents & POLLIN)) {
            ssize_t got = read(m, buf + len, cap - 1 - len);
            if (got > 0) {
                len += (size_t)got;
                continue;
            }
        }
        if (waitpid(pid, status, WNOHANG) == pid) {
            while (len < cap - 1 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
                ssize_t got = read(m, buf + len, cap - 1 - len);
                if (got <= 0)
                    break;
                len += (size_t)got;
            }
            buf[len] = 0;
            return len;
        }
        if (n == 0)
            waited++;
    }
    kill(pid, SIGKILL);
    waitpid(pid, status, 0);
    buf[len] = 0;
    return len;
}

Test(reports, stderr_closed_at_a_terminal_reports_to_the_terminal, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    char *dir = pf_tempdir("tty");
    char *data = pf_path(dir, "data");
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || !ptsname(m))
        cr_skip_test("no pseudo-terminal here: %s", strerror(errno));
    char slave[128];
    snprintf(slave, sizeof slave, "%s", ptsname(m));
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setsid();
        int s = open(slave, O_RDWR); /* the session's controlling terminal */
        if (s < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
            _exit(126);
        if (s > 2)
            close(s);
        close(m);
        setenv("LD_PRELOAD", PF_PRELOAD_LIB, 1);
        setenv("PFALLOC_REPORT", "exit", 1);
        execl(PROG("stderr_reuse"), "stderr_reuse", data, (char *)NULL);
        _exit(127);
    }
    static char out[1 << 20];
    int status = 0;
    read_master(m, out, sizeof out, pid, &status);
    close(m);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "stderr_reuse: status %#x\n%s", status, out);
    cr_assert(strstr(out, "on descriptor 2") != NULL, "%s", out);
    cr_assert(strstr(out, "(stderr_reuse), reason exit") != NULL, "no exit report at the terminal:\n%s", out);
    char *text = pf_read_file(data, NULL);
    cr_assert(strcmp(text, "the program's data\n") == 0, "the program's file holds:\n%.400s", text);
    free(text);
    free(data);
    pf_tempdir_remove(dir);
}

/* ---- PFALLOC_REPORT and PFALLOC_SIGNAL -------------------------------------------- */

Test(reports, report_off_writes_nothing)
{
    struct pf_run r;
    const char *const env[] = {"PFALLOC_REPORT=off", NULL};
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
    /* Nor is the signal caught: its default action ends the process. */
    struct pf_child c;
    start_daemonish(&c, "20", env);
    cr_assert(!pf_catches(c.pid, SIGUSR1));
    kill(c.pid, SIGUSR1);
    pf_child_wait(&c, 30, &r);
    cr_assert(r.signo == SIGUSR1, "%s", pf_run_how(&r));
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);
    pf_child_free(&c);
}

/* A process can outlive the terminating signal whose handler wrote its
 * exit report: the init of a PID namespace (a container's first process)
 * does, since the kernel drops a default-action signal it sends itself.
 * What the report's leak walk mapped must then be given back, not left
 * mapped off the accounts as at a real exit: with a million live blocks
 * the walk maps about 10 MiB. Needs `unshare -pf` (root, PID namespaces
 * allowed). */
Test(reports, a_process_that_survives_its_term_signal_keeps_no_walk_memory, .timeout = 120)
{
    PF_REQUIRE_PRELOAD();
    struct pf_run probe;
    const char *const probe_argv[] = {"unshare", "-pf", "--mount-proc", "true", NULL};
    pf_spawn(probe_argv, &(struct pf_spawn_opts){.mode = PF_PLAIN, .timeout_s = 30}, &probe);
    int can = probe.exited && probe.code == 0;
    pf_run_free(&probe);
    if (!can)
        cr_skip_test("unshare -pf is not allowed here");
    const char *const argv[] = {"unshare", "-pf", "--mount-proc", PROG("survive_term"), "1000000", NULL};
    struct pf_run r;
    pf_spawn(argv, &(struct pf_spawn_opts){.mode = PF_PRELOAD, .timeout_s = 90}, &r);
    cr_assert(r.exited && r.code == 0, "%s\n%s", pf_run_how(&r), r.err);
    cr_assert(strstr(r.out, "survived") != NULL, "%s", r.out);
    cr_assert(strstr(r.err, "reason exit") != NULL, "no exit report:\n%s", r.err);
    const char *b = strstr(r.out, "VmSize-before "), *a = strstr(r.out, "VmSize-after ");
    cr_assert(a && b, "%s", r.out);
    long before = strtol(b + 14, NULL, 10), after = strtol(a + 13, NULL, 10);
    cr_assert_leq(after - before, 2048, "the walk left %ld KiB mapped (VmSize %ld -> %ld KiB)", after - before,
                  before, after);
    pf_run_free(&r);
}

Test(reports, report_exit_does_not_catch_the_signal)
{
    struct pf_child c;
    const char *const env[] = {"PFALLOC_REPORT=exit", NULL};
    start_daemonish(&c, "20", env);
    cr_assert(!pf_catches(c.pid, SIGUSR1));
    kill(c.pid, SIGUSR1);
    struct pf_run r;
    pf_child_wait(&c, 30, &r);
    cr_assert(r.signo == SIGUSR1, "%s", pf_run_how(&r));
    /* Killed by a signal, it never reached exit: no report at all. */
    cr_assert(strstr(r.err, PF_REPORT_MARK) == NULL, "%s", r.err);
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(reports, report_signal_has_no_exit_report)
{
    struct pf_child c;
    const char *const env[] = {"PFALLOC_REPORT=signal", NULL};
    start_daemonish(&c, "0.6", env);
    cr_assert(pf_catches(c.pid, SIGUSR1));
    kill(c.pid, SIGUSR1);
    struct pf_run r;
    pf_child_wait(&c, 30, &r);
    pf_assert_ok(&r, "daemonish");
    char want[128];
    snprintf(want, sizeof want, PF_REPORT_MARK "%d (daemonish), reason signal, ", (int)c.pid);
    cr_assert(pf_count(r.err, want) == 1, "%s", r.err);
    cr_assert(pf_count(r.err, PF_REPORT_MARK) == 1, "%s", r.err);
    cr_assert(strstr(r.err, "\nleaks: ") == NULL, "a signal report has no leak section");
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(reports, signal_usr2_leaves_usr1_alone)
{
    struct pf_child c;
    const char *const env[] = {"PFALLOC_SIGNAL=USR2", NULL};
    start_daemonish(&c, "20", env);
    cr_assert(pf_catches(c.pid, SIGUSR2));
    cr_assert(!pf_catches(c.pid, SIGUSR1));
    kill(c.pid, SIGUSR2);
    char want[128];
    snprintf(want, sizeof want, PF_REPORT_MARK "%d (daemonish), reason signal, ", (int)c.pid);
    cr_assert(pf_wait_for_text(c.err_path, "==== end of pfalloc report ====\n", 10000), "no report on SIGUSR2");
    kill(c.pid, SIGUSR1);
    struct pf_run r;
    pf_child_wait(&c, 30, &r);
    cr_assert(r.signo == SIGUSR1, "SIGUSR1 should take its default action: %s", pf_run_how(&r));
    cr_assert(pf_count(r.err, want) == 1 && pf_count(r.err, PF_REPORT_MARK) == 1, "%s", r.err);
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(reports, signal_by_number_and_none)
{
    struct pf_child c;
    char var[64];
    snprintf(var, sizeof var, "PFALLOC_SIGNAL=%d", SIGUSR2);
    const char *const by_number[] = {var, NULL};
    start_daemonish(&c, "0.3", by_number);
    cr_assert(pf_catches(c.pid, SIGUSR2) && !pf_catches(c.pid, SIGUSR1));
    struct pf_run r;
    pf_child_wait(&c, 30, &r);
    pf_assert_ok(&r, "daemonish");
    cr_assert(strstr(r.err, "ignoring") == NULL, "%s", r.err);
    pf_run_free(&r);
    pf_child_free(&c);

    const char *const none[] = {"PFALLOC_SIGNAL=none", NULL};
    start_daemonish(&c, "0.3", none);
    cr_assert(!pf_catches(c.pid, SIGUSR1) && !pf_catches(c.pid, SIGUSR2));
    pf_child_wait(&c, 30, &r);
    pf_assert_ok(&r, "daemonish");
    cr_assert(pf_has_report(r.err, "daemonish"), "the exit report stays on:\n%s", r.err);
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(reports, program_handler_wins)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("ownsignal"), NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "ownsignal");
    cr_assert(strcmp(r.out, "ownsignal: handler ran 3 times\n") == 0, "%s", r.out);
    cr_assert(pf_count(r.err, PF_REPORT_MARK) == 1 && pf_has_report(r.err, "ownsignal"),
              "only the exit report, none for the program's signals:\n%s", r.err);
    cr_assert(strstr(r.err, "reason signal") == NULL, "%s", r.err);
    pf_run_free(&r);
}

/* ---- PFALLOC_LEAK_EXIT_CODE, PFALLOC_SITES, PFALLOC_CACHE --------------------------- */

Test(reports, leak_exit_code)
{
    PF_REQUIRE_PRELOAD();
    struct pf_run r;
    const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=7", "PFALLOC_REPORT=off", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    const char *const argv_lose[] = {PROG("leaky"), "lose", NULL};
    pf_spawn(argv_lose, &o, &r);
    cr_assert(r.exited && r.code == 7, "leaky lose: %s, want exit 7\n%s", pf_run_how(&r), r.err);
    cr_assert(strstr(r.out, ", 10 objects kept\n") != NULL, "stdout is flushed first: %s", r.out);
    pf_run_free(&r);

    /* Still reachable from a global: not a leak that fails the run. */
    run_leaky(env, &r);
    cr_assert(r.exited && r.code == 0, "leaky: %s, want 0 (all still reachable)\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);

    const char *const argv_free[] = {PROG("leaky"), "free", NULL};
    pf_spawn(argv_free, &o, &r);
    cr_assert(r.exited && r.code == 0, "leaky free: %s, want 0\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);

    const char *t = pf_which("true");
    cr_assert(t != NULL);
    char *true_path = strdup(t);
    const char *const argv_true[] = {true_path, NULL};
    pf_spawn(argv_true, &o, &r);
    cr_assert(r.exited && r.code == 0, "true: %s, want 0\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    free(true_path);
}

Test(reports, leak_exit_code_records_sites)
{
    PF_REQUIRE_PRELOAD();
    struct pf_run r;
    const char *const env[] = {"PFALLOC_LEAK_EXIT_CODE=9", NULL};
    const char *const argv[] = {PROG("leaky"), "lose", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, &r);
    cr_assert(r.exited && r.code == 9, "%s", pf_run_how(&r));
    unsigned long o_, b_;
    char fam[128];
    cr_assert(text_leak_row(r.err, "  allocated by the program:", "leak_small", &o_, &b_, fam, sizeof fam),
              "%s", r.err);
    cr_assert(o_ == 5 && b_ == 500);
    pf_run_free(&r);
}

static unsigned long cached_at_exit(const char *cache)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("sigstorm"), "100000", NULL};
    char var[64];
    snprintf(var, sizeof var, "PFALLOC_CACHE=%s", cache);
    const char *const env[] = {"PFALLOC_FORMAT=json", "PFALLOC_REPORT=exit", var, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "sigstorm");
    const char *json = strchr(r.err, '{');
    cr_assert(json != NULL, "%s", r.err);
    char *sum = json_summary(NULL, json);
    char line[256];
    cr_assert(line_starting(sum, "report ", line, sizeof line));
    const char *last = strrchr(line, ' ');
    unsigned long cached = strtoul(last + 1, NULL, 10);
    free(sum);
    pf_run_free(&r);
    return cached;
}

/* PFALLOC_CACHE=0 gives pages back as soon as a span empties. (Any other
 * value is what stays resident once the rest has decayed, which takes
 * seconds: tests/unit/test_span.c checks that against the clock.) */
Test(reports, cache_zero_keeps_nothing_cached)
{
    cr_assert(cached_at_exit("0") == 0);
}

/* ---- bad values ---------------------------------------------------------------- */

/* Runs `argv` preloaded with NAME=VALUE (and `more`), asserts exactly one
 * warning naming it, in the documented shape, and a normal exit. */
static void run_bad(const char *const argv[], const char *name, const char *value, const char *more, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    char var[256];
    snprintf(var, sizeof var, "%s=%s", name, value);
    const char *const env[] = {var, more, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .env = env, .timeout_s = 60};
    pf_spawn(argv, &o, r);
    pf_assert_ok(r, argv[0]);
    char want[320], line[512];
    snprintf(want, sizeof want, "pfalloc: ignoring %s=%s: expected ", name, value);
    cr_assert(count_lines_starting(r->err, "pfalloc: ignoring ") == 1, "want one warning:\n%s", r->err);
    cr_assert(line_starting(r->err, want, line, sizeof line), "want \"%s...\" in\n%s", want, r->err);
    const char *tail = " (using the default)";
    cr_assert(strlen(line) > strlen(tail) && strcmp(line + strlen(line) - strlen(tail), tail) == 0, "%s", line);
}

static const char *const leaky_argv[] = {PROG("leaky"), NULL};

Test(reports, bad_report_keeps_both)
{
    struct pf_run r;
    run_bad(leaky_argv, "PFALLOC_REPORT", "sometimes", NULL, &r);
    cr_assert(strstr(r.out, ", 10 objects kept\n") != NULL);
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);
    pf_run_free(&r);
}

Test(reports, bad_signal_keeps_usr1)
{
    static const char *const bad[] = {"USR9", "KILL", "9", "SIGSEGV", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pf_run r;
        run_bad(leaky_argv, "PFALLOC_SIGNAL", bad[i], NULL, &r);
        pf_run_free(&r);
    }
    struct pf_child c;
    const char *const env[] = {"PFALLOC_SIGNAL=USR9", NULL};
    start_daemonish(&c, "20", env);
    cr_assert(pf_catches(c.pid, SIGUSR1));
    kill(c.pid, SIGUSR1);
    cr_assert(pf_wait_for_text(c.err_path, "reason signal", 10000), "no report on SIGUSR1");
    kill(c.pid, SIGTERM);
    struct pf_run r;
    pf_child_wait(&c, 30, &r);
    cr_assert(r.signo == SIGTERM, "%s", pf_run_how(&r));
    pf_run_free(&r);
    pf_child_free(&c);
}

Test(reports, bad_interval_means_none)
{
    static const char *const bad[] = {"soon", "-1", "0.0001", "1e3", ""};
    const char *const argv[] = {PROG("daemonish"), "0.4", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pf_run r;
        run_bad(argv, "PFALLOC_INTERVAL", bad[i], "PFALLOC_REPORT=both", &r);
        cr_assert(strstr(r.err, "reason interval") == NULL, "%s", r.err);
        cr_assert(pf_has_report(r.err, "daemonish"));
        pf_run_free(&r);
    }
}

Test(reports, bad_out_uses_stderr)
{
    struct pf_run r;
    run_bad(leaky_argv, "PFALLOC_OUT", "", NULL, &r);
    cr_assert(pf_has_report(r.err, "leaky"), "%s", r.err);
    pf_run_free(&r);
}

Test(reports, bad_format_uses_text)
{
    struct pf_run r;
    run_bad(leaky_argv, "PFALLOC_FORMAT", "xml", NULL, &r);
    cr_assert(pf_has_report(r.err, "leaky") && strstr(r.err, "{\"pid\"") == NULL, "%s", r.err);
    pf_run_free(&r);
}

Test(reports, bad_sites_keeps_them_off)
{
    struct pf_run r;
    run_bad(leaky_argv, "PFALLOC_SITES", "maybe", NULL, &r);
    cr_assert(strstr(r.err, "(call sites off: PFALLOC_SITES=1)") != NULL, "%s", r.err);
    pf_run_free(&r);
}

Test(reports, bad_leak_exit_code_keeps_status)
{
    static const char *const bad[] = {"300", "seven", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pf_run r;
        run_bad(leaky_argv, "PFALLOC_LEAK_EXIT_CODE", bad[i], NULL, &r); /* asserts exit 0 */
        pf_run_free(&r);
    }
}

Test(reports, bad_cache_keeps_the_default)
{
    struct pf_run r;
    run_bad(leaky_argv, "PFALLOC_CACHE", "lots", NULL, &r);
    pf_run_free(&r);
    run_bad(leaky_argv, "PFALLOC_CACHE", "12Q", NULL, &r);
    pf_run_free(&r);
    /* The default keeps some empty spans (a bad value is not read as 0). */
    cr_assert(cached_at_exit("lots") > 0);
}

Test(reports, good_values_give_no_warning)
{
    const char *const env[] = {"PFALLOC_REPORT=both", "PFALLOC_SIGNAL=SIGUSR1", "PFALLOC_INTERVAL=30",
                               "PFALLOC_OUT=stderr", "PFALLOC_FORMAT=TEXT", "PFALLOC_SITES=1",
                               "PFALLOC_LEAK_EXIT_CODE=0", "PFALLOC_CACHE=4M", NULL};
    struct pf_run r;
    run_leaky(env, &r);
    pf_assert_ok(&r, "leaky");
    cr_assert(strstr(r.err, "pfalloc: ignoring") == NULL, "%s", r.err);
    cr_assert(pf_has_report(r.err, "leaky"));
    pf_run_free(&r);
}
