/*
 * test_report.c — the printers and the full report, after known allocations
 * through the pf_* API: the families table shows the right live counts and
 * order, pf_print_family lists spans (capped) and rejects unknown names, the
 * JSON report is one line a JSON parser accepts with the expected members,
 * and a report started while another is being built (a signal landing
 * inside it) writes a notice instead of blocking or interleaving.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "family.h"
#include "pfalloc.h"
#include "report.h"

/* ---- helpers ------------------------------------------------------------ */

static int cap_open(void)
{
    int fd = memfd_create("pf_report_test", 0);
    cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
    return fd;
}

/* Everything written to fd so far, NUL-terminated; closes fd. */
static char *cap_read(int fd, size_t *len)
{
    static char buf[1 << 20];
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
    if (len)
        *len = n;
    return buf;
}

static struct pf_stats snapshot;

static const struct pf_family_stats *family(const char *name)
{
    pf_stats_get(&snapshot);
    for (uint32_t i = 0; i < snapshot.nfamilies; i++)
        if (strcmp(snapshot.fam[i].name, name) == 0)
            return &snapshot.fam[i];
    return NULL;
}

static uint64_t family_live(const char *name)
{
    const struct pf_family_stats *fs = family(name);
    return fs ? fs->live_objects : 0;
}

/* The line of a families table whose first column is `name`, or NULL. */
static const char *row_of(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return line;
    return NULL;
}

/* The number after `label` at the start of a line ("  live objects   12"). */
static uint64_t value_after(const char *text, const char *label)
{
    const char *p = text;
    size_t n = strlen(label);
    while ((p = strstr(p, label)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtoull(p + n, NULL, 10);
        p += n;
    }
    cr_assert_fail("no line starting with \"%s\" in:\n%s", label, text);
    return 0;
}

static int has_python(void)
{
    return system("command -v python3 >/dev/null 2>&1") == 0;
}

/* Runs a Python check over `data`: the script gets the data file's path as
   argv[1] and `arg` as argv[2]; true when it exits 0. */
static int py_check(const char *data, size_t len, const char *script, const char *arg)
{
    char dpath[] = "/tmp/pf_report_data_XXXXXX";
    char spath[] = "/tmp/pf_report_chk_XXXXXX";
    int dfd = mkstemp(dpath), sfd = mkstemp(spath);
    cr_assert(dfd >= 0 && sfd >= 0);
    cr_assert_eq(write(dfd, data, len), (ssize_t)len);
    cr_assert_eq(write(sfd, script, strlen(script)), (ssize_t)strlen(script));
    close(dfd);
    close(sfd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 %s %s '%s'", spath, dpath, arg ? arg : "");
    int st = system(cmd);
    unlink(dpath);
    unlink(spath);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Checks one JSON Lines report: argv[2] is "pid program reason malloc64_live". */
static const char *report_check =
    "import json, sys\n"
    "text = open(sys.argv[1]).read()\n"
    "pid, prog, reason, live64 = sys.argv[2].split()\n"
    "assert text.endswith('\\n') and text.count('\\n') == 1, 'not one line'\n"
    "d = json.loads(text)\n"
    "assert d['pid'] == int(pid), d['pid']\n"
    "assert d['program'] == prog, d['program']\n"
    "assert d['reason'] == reason, d['reason']\n"
    "assert isinstance(d['time_s'], float) and d['time_s'] >= 0\n"
    "tk = {'live_objects','live_bytes','live_requested','allocs','frees','mapped_bytes',\n"
    "      'peak_mapped_bytes','metadata_bytes','resident_bytes','metadata_resident_bytes',\n"
    "      'cached_bytes','mmap_calls','munmap_calls',\n"
    "      'madvise_calls','mremap_calls','families','threads'}\n"
    "assert set(d['totals']) == tk, sorted(d['totals'])\n"
    "fk = {'name','kind','id','slot_size','live_objects','live_bytes','live_requested','spans',\n"
    "      'mapped_bytes','peak_live_bytes','peak_held_bytes','allocs','frees','live_elements'}\n"
    "fams = d['families']\n"
    "for f in fams:\n"
    "    assert set(f) == fk, sorted(f)\n"
    "    assert f['kind'] in ('class', 'typed', 'large')\n"
    "    assert f['peak_held_bytes'] == f['peak_live_bytes'] >= f['live_bytes'], f\n"
    "    if f['kind'] == 'typed':\n"
    "        assert f['live_elements'] * f['slot_size'] == f['live_requested'], f\n"
    "    else:\n"
    "        assert f['live_elements'] == f['live_objects'], f\n"
    "    assert f['live_objects'] == f['allocs'] - f['frees'], f\n"
    "assert len(fams) >= 2, fams\n"
    "keys = [(f['live_bytes'], f['mapped_bytes']) for f in fams]\n"
    "assert keys == sorted(keys, reverse=True), 'not largest first'\n"
    "m = [f for f in fams if f['name'] == 'malloc-64']\n"
    "assert len(m) == 1 and m[0]['kind'] == 'class' and m[0]['slot_size'] == 64\n"
    "assert m[0]['live_objects'] == int(live64), m[0]\n"
    "assert d['totals']['live_objects'] == sum(f['live_objects'] for f in fams)\n";

#define N64 100
static void *objs64[N64];

/* N64 objects of 64 bytes, plus a few 2 KiB ones so that reports always have
   families of different sizes to order. Returns malloc-64's live count. */
static uint64_t alloc64(void)
{
    uint64_t base = family_live("malloc-64");
    for (int i = 0; i < N64; i++) {
        objs64[i] = pf_malloc(64);
        cr_assert_not_null(objs64[i]);
    }
    for (int i = 0; i < 8; i++)
        cr_assert_not_null(pf_malloc(2048));
    return base + N64;
}

/* ---- families table ----------------------------------------------------- */

Test(report, families_table_counts_malloc64)
{
    uint64_t expect = alloc64();
    int fd = cap_open();
    cr_assert_eq(pf_print_families(fd), 0);
    char *text = cap_read(fd, NULL);
    cr_assert_eq(strncmp(text, "family ", 7), 0, "header: %s", text);
    const char *row = row_of(text, "malloc-64");
    cr_assert_not_null(row, "no malloc-64 row in:\n%s", text);
    char name[64], kind[16];
    unsigned long long slot, live;
    cr_assert_eq(sscanf(row, "%63s %15s %llu %llu", name, kind, &slot, &live), 4);
    cr_assert_str_eq(kind, "class");
    cr_assert_eq(slot, 64);
    cr_assert_eq(live, expect);
    cr_assert_not_null(row_of(text, "total"), "no totals row in:\n%s", text);

    for (int i = 0; i < N64; i++)
        pf_free(objs64[i]);
    fd = cap_open();
    cr_assert_eq(pf_print_families(fd), 0);
    text = cap_read(fd, NULL);
    row = row_of(text, "malloc-64");
    cr_assert_not_null(row, "malloc-64 row gone after frees:\n%s", text);
    cr_assert_eq(sscanf(row, "%63s %15s %llu %llu", name, kind, &slot, &live), 4);
    cr_assert_eq(live, expect - N64);
}

Test(report, families_table_largest_first)
{
    alloc64();
    void *big[40];
    for (int i = 0; i < 40; i++)
        cr_assert_not_null(big[i] = pf_malloc(4096));
    int fd = cap_open();
    cr_assert_eq(pf_print_families(fd), 0);
    char *text = cap_read(fd, NULL);
    /* 40 x 4 KiB live outweighs 100 x 64 B, so its row comes first. */
    const struct pf_family_stats *f64 = family("malloc-64");
    cr_assert_not_null(f64);
    uint64_t bytes64 = f64->live_bytes;
    int found_bigger = 0;
    for (uint32_t i = 0; i < snapshot.nfamilies; i++) {
        const struct pf_family_stats *fs = &snapshot.fam[i];
        if (fs->live_bytes > bytes64) {
            const char *r = row_of(text, fs->name);
            cr_assert_not_null(r, "no row for %s", fs->name);
            cr_assert_lt(r, row_of(text, "malloc-64"), "%s should come before malloc-64:\n%s",
                         fs->name, text);
            found_bigger = 1;
        }
    }
    cr_assert(found_bigger, "no family with more live bytes than malloc-64:\n%s", text);
}

/* ---- totals ------------------------------------------------------------- */

Test(report, totals_every_field)
{
    alloc64();
    int fd = cap_open();
    cr_assert_eq(pf_print_totals(fd), 0);
    char *text = cap_read(fd, NULL);
    struct pf_stats st;
    pf_stats_get(&st);
    cr_assert_eq(value_after(text, "  live objects"), st.totals.live_objects);
    cr_assert_eq(value_after(text, "  live bytes"), st.totals.live_bytes);
    cr_assert_eq(value_after(text, "  live requested"), st.totals.live_requested);
    cr_assert_eq(value_after(text, "  allocs"), st.totals.allocs);
    cr_assert_eq(value_after(text, "  frees"), st.totals.frees);
    cr_assert_eq(value_after(text, "  families"), st.totals.families);
    cr_assert_geq(st.totals.live_objects, N64);
    /* Fields that move with the mappings: present, exact values not stable. */
    const char *labels[] = {"  mapped bytes", "  peak mapped bytes", "  metadata bytes",
                            "  cached bytes", "  mmap calls", "  munmap calls",
                            "  madvise calls", "  mremap calls", "  threads"};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        value_after(text, labels[i]);
}

/* ---- one family --------------------------------------------------------- */

/* A typed family may be named anything the program passes: a newline in
 * the name is written as '?', so its row stays one line of the table and
 * the header of its own listing one line too. */
Test(report, a_name_with_a_newline_keeps_its_row_whole)
{
    const char *name = "struct\nodd 1 2 3";
    pf_family_t *fam = pf_family_get(name, 40);
    cr_assert_not_null(fam);
    void *p = pf_family_alloc(fam, 1);
    cr_assert_not_null(p);
    int fd = cap_open();
    cr_assert_eq(pf_print_families(fd), 0);
    char *text = cap_read(fd, NULL);
    const char *row = strstr(text, "struct?odd 1 2 3 ");
    cr_assert_not_null(row, "%s", text);
    cr_assert(row == text || row[-1] == '\n', "%s", text);
    const char *eol = strchr(row, '\n');
    cr_assert_not_null(eol);
    cr_assert(memmem(row, (size_t)(eol - row), "typed", 5) != NULL, "the row: %.*s", (int)(eol - row), row);
    cr_assert_null(strstr(text, "\nodd 1 2 3"), "%s", text);
    fd = cap_open();
    cr_assert_eq(pf_print_family(fd, name), 0);
    text = cap_read(fd, NULL);
    cr_assert_eq(strncmp(text, "family struct?odd 1 2 3 (typed", 30), 0, "%s", text);
    pf_free(p);
}

Test(report, family_unknown_name)
{
    int fd = cap_open();
    errno = 0;
    cr_assert_eq(pf_print_family(fd, "no such family"), -1);
    cr_assert_eq(errno, ENOENT);
    errno = 0;
    cr_assert_eq(pf_print_family(fd, NULL), -1);
    cr_assert_eq(errno, EINVAL);
    size_t len;
    cap_read(fd, &len);
    cr_assert_eq(len, 0, "an unknown family wrote output");
}

Test(report, family_lists_spans)
{
    uint64_t expect = alloc64();
    int fd = cap_open();
    cr_assert_eq(pf_print_family(fd, "malloc-64"), 0);
    char *text = cap_read(fd, NULL);
    cr_assert_eq(strncmp(text, "family malloc-64 (class, slot 64 B)\n", 36), 0, "%s", text);
    const char *live = strstr(text, "  live ");
    cr_assert_not_null(live);
    cr_assert_eq(strtoull(live + 7, NULL, 10), expect, "%s", text);

    struct pf_span_info one;
    long spans = pf_family_spans("malloc-64", NULL, &one, 1);
    cr_assert_gt(spans, 0);
    long lines = 0;
    unsigned long long used_sum = 0;
    for (const char *l = strstr(text, "\n  0x"); l; l = strstr(l + 1, "\n  0x")) {
        char addr[32], size[16], unit[8];
        unsigned long long slot, slots, used, nfree, run;
        cr_assert_eq(sscanf(l + 1, "%31s %15s %7s %llu %llu %llu %llu %llu", addr, size, unit, &slot,
                            &slots, &used, &nfree, &run),
                     8, "span line: %.80s", l + 1);
        cr_assert_eq(slot, 64);
        cr_assert_eq(used + nfree, slots);
        cr_assert_leq(run, nfree);
        used_sum += used;
        lines++;
    }
    cr_assert_eq(lines, spans < 64 ? spans : 64, "%s", text);
    if (spans <= 64) /* used counts live slots and slots parked in a thread cache */
        cr_assert_geq(used_sum, expect);
}

Test(report, family_caps_span_list)
{
    const char *name = "pf report test object";
    pf_family_t *fam = pf_family_get(name, 2000);
    cr_assert_not_null(fam);
    struct pf_span_info one;
    long spans = 0;
    for (int i = 0; i < 200000 && spans < 70; i++) {
        cr_assert_not_null(pf_family_alloc(fam, 1));
        spans = pf_family_spans(name, NULL, &one, 1);
    }
    cr_assert_geq(spans, 70, "could not grow the family to 70 spans");
    int fd = cap_open();
    cr_assert_eq(pf_print_family(fd, name), 0);
    char *text = cap_read(fd, NULL);
    long lines = 0;
    for (const char *l = strstr(text, "\n  0x"); l; l = strstr(l + 1, "\n  0x"))
        lines++;
    cr_assert_eq(lines, 64, "%s", text);
    char more[64];
    snprintf(more, sizeof more, "  ... and %ld more spans\n", spans - 64);
    cr_assert_not_null(strstr(text, more), "no \"%s\" in:\n%s", more, text);
}

/* ---- the full report ---------------------------------------------------- */

static char check_arg[256];

static void set_check_arg(const char *reason, uint64_t live64)
{
    snprintf(check_arg, sizeof check_arg, "%d %s %s %" PRIu64, (int)getpid(),
             program_invocation_short_name, reason, live64);
}

Test(report, text_report)
{
    uint64_t expect = alloc64();
    int fd = cap_open();
    cr_assert_eq(pf_report_write_ex(fd, 0, "interval", NULL, NULL), 0);
    char *text = cap_read(fd, NULL);
    char head[128];
    snprintf(head, sizeof head, "==== pfalloc report: pid %d (%s), reason interval, ", (int)getpid(),
             program_invocation_short_name);
    cr_assert_eq(strncmp(text, head, strlen(head)), 0, "%s", text);
    cr_assert_geq(value_after(text, "  live objects"), expect);
    const char *row = row_of(text, "malloc-64");
    cr_assert_not_null(row, "%s", text);
    unsigned long long live;
    cr_assert_eq(sscanf(row, "%*s %*s %*u %llu", &live), 1);
    cr_assert_eq(live, expect);
    const char *end = "==== end of pfalloc report ====\n";
    cr_assert_str_eq(text + strlen(text) - strlen(end), end);
}

Test(report, json_report_parses)
{
    if (!has_python())
        cr_skip_test("python3 not available");
    uint64_t expect = alloc64();
    pf_report_init();
    usleep(20000);
    int fd = cap_open();
    cr_assert_eq(pf_report_write_ex(fd, 1, "request", NULL, NULL), 0);
    size_t len;
    char *text = cap_read(fd, &len);
    set_check_arg("request", expect);
    cr_assert(py_check(text, len, report_check, check_arg), "bad report: %s", text);
    /* Time runs from pf_report_init: at least the 20 ms slept since. */
    const char *t = strstr(text, "\"time_s\":");
    cr_assert_not_null(t);
    cr_assert_geq(strtod(t + 9, NULL), 0.02, "%s", text);
}

/* A report triggered by a signal that lands while another report is being
   built: the inner one writes a notice and fails with EAGAIN, the outer one
   completes, and the extra section lands inside the outer JSON object. */
static int sig_fd = -1, sig_json, sig_rc, sig_errno;

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    sig_rc = pf_report_write_ex(sig_fd, sig_json, "signal", NULL, NULL);
    sig_errno = errno;
    errno = saved;
}

static void extra_leaks(struct pf_fmt *f, int json, void *ctx)
{
    raise(SIGUSR1);
    if (json) {
        pf_fmt_str(f, ",\"leaks\":{\"count\":");
        pf_fmt_u64(f, *(uint64_t *)ctx);
        pf_fmt_char(f, '}');
    } else {
        pf_fmt_str(f, "leaks: ");
        pf_fmt_u64(f, *(uint64_t *)ctx);
        pf_fmt_char(f, '\n');
    }
}

static void nested(int json)
{
    uint64_t expect = alloc64();
    signal(SIGUSR1, on_usr1);
    sig_fd = cap_open();
    sig_json = json;
    sig_rc = 0;
    int fd = cap_open();
    uint64_t leaks = 3;
    cr_assert_eq(pf_report_write_ex(fd, json, "exit", extra_leaks, &leaks), 0);
    cr_assert_eq(sig_rc, -1);
    cr_assert_eq(sig_errno, EAGAIN);
    size_t len;
    char *text = cap_read(fd, &len);
    char *outer = strdup(text);
    size_t outer_len = len;
    char *notice = cap_read(sig_fd, &len);
    cr_assert_eq(strchr(notice, '\n'), notice + len - 1, "notice not one line: %s", notice);
    if (json) {
        cr_assert_not_null(strstr(notice, "\"skipped\""), "%s", notice);
        set_check_arg("exit", expect);
        cr_assert(py_check(outer, outer_len, report_check, check_arg), "bad report: %s", outer);
        cr_assert(py_check(outer, outer_len,
                           "import json,sys\nd=json.loads(open(sys.argv[1]).read())\n"
                           "assert d['leaks'] == {'count': 3}, d.get('leaks')\n",
                           NULL));
        cr_assert(py_check(notice, len,
                           "import json,sys\nd=json.loads(open(sys.argv[1]).read())\n"
                           "assert d['reason'] == 'signal'\n",
                           NULL),
                  "bad notice: %s", notice);
    } else {
        cr_assert_not_null(strstr(notice, "signal skipped"), "%s", notice);
        cr_assert_not_null(strstr(outer, "leaks: 3\n==== end of pfalloc report ====\n"), "%s", outer);
    }
    free(outer);
    /* The flag was released: the next report goes through. */
    fd = cap_open();
    cr_assert_eq(pf_report_write_ex(fd, json, "request", NULL, NULL), 0);
    cr_assert_gt(strlen(cap_read(fd, NULL)), 100);
}

Test(report, nested_text_report_skips)
{
    nested(0);
}

Test(report, nested_json_report_skips)
{
    if (!has_python())
        cr_skip_test("python3 not available");
    nested(1);
}

/* pf_print_* share the report's buffer: called from inside a report (as from
   a signal handler) they write a notice and return instead of waiting. */
struct busy_ctx {
    int fd, rc_fam, err_fam, rc_tot, err_tot;
};

static void extra_prints(struct pf_fmt *f, int json, void *arg)
{
    (void)f;
    (void)json;
    struct busy_ctx *c = arg;
    errno = 0;
    c->rc_fam = pf_print_families(c->fd);
    c->err_fam = errno;
    errno = 0;
    c->rc_tot = pf_print_totals(c->fd);
    c->err_tot = errno;
}

Test(report, printers_skip_when_busy)
{
    struct busy_ctx c = {cap_open(), 0, 0, 0, 0};
    int fd = cap_open();
    cr_assert_eq(pf_report_write_ex(fd, 0, "request", extra_prints, &c), 0);
    close(fd);
    cr_assert_eq(c.rc_fam, -1);
    cr_assert_eq(c.err_fam, EAGAIN);
    cr_assert_eq(c.rc_tot, -1);
    cr_assert_eq(c.err_tot, EAGAIN);
    char *notes = cap_read(c.fd, NULL);
    cr_assert_not_null(strstr(notes, "pf_print_families skipped"), "%s", notes);
    cr_assert_not_null(strstr(notes, "pf_print_totals skipped"), "%s", notes);
    /* Outside a report they work again. */
    fd = cap_open();
    cr_assert_eq(pf_print_totals(fd), 0);
    cr_assert_not_null(strstr(cap_read(fd, NULL), "live objects"));
}
