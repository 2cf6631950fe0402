/*
 * The page of pfalloc-view in a real browser (headless Chromium): built from
 * the reports of real programs run under the preload — daemonish asked for
 * several signal reports and then ended (its exit report), and symbols'
 * exit report with its leak sites — it loads without a script error, each
 * series of each chart has one point per report of its process, and the
 * leak sites show their file:line and their callers'. A screenshot of the
 * page is left in the build directory (tests/view-screenshot.png) for
 * people to look at.
 *
 * The page records script errors in #pf-errors and marks <body data-ready>
 * when its script has run to the end; Chromium's --dump-dom gives the page
 * as the script left it.
 */
#include "spawn.h"

TestSuite(view);

#define SCRIPT(name) PF_SOURCE_DIR "/scripts/" name
#define PROG(name) PF_PROGS_DIR "/" name
#define SCREENSHOT PF_BUILD_DIR "/tests/view-screenshot.png"
#define SIGNAL_REPORTS 4

/* The line of tests/progs/symbols.c holding `needle` (1-based). */
static int symbols_line(const char *needle)
{
    char *src = pf_read_file(PF_SOURCE_DIR "/tests/progs/symbols.c", NULL);
    const char *hit = strstr(src, needle);
    cr_assert(hit != NULL, "%s not in symbols.c", needle);
    int line = 1;
    for (const char *p = src; p < hit; p++)
        line += *p == '\n';
    free(src);
    return line;
}

/* Checks the page as the browser left it. argv: the dumped DOM, then
 * PROGRAM=REPORTS for each process, then SITE-PREFIX=TEXT for leak rows
 * whose text must hold TEXT. Prints what it saw; exits 1 on the first
 * failure, saying which. */
static const char check_dom_py[] =
    "import sys, html.parser\n"
    "dom = open(sys.argv[1], encoding='utf-8').read()\n"
    "want = dict(a.split('=', 1) for a in sys.argv[2:] if '+' not in a.split('=', 1)[0])\n"
    "rows = [a.split('=', 1) for a in sys.argv[2:] if '+' in a.split('=', 1)[0]]\n"
    "class P(html.parser.HTMLParser):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.body = {}; self.errors = None; self.in_errors = False; self.watching = None\n"
    "        self.sections = []; self.chart = None; self.h2 = False\n"
    "        self.row = None; self.rows = []\n"
    "    def handle_starttag(self, tag, attrs):\n"
    "        a = dict(attrs)\n"
    "        if tag == 'body': self.body = a\n"
    "        if tag == 'pre' and a.get('id') == 'pf-errors':\n"
    "            self.in_errors = True; self.errors = ''; self.watching = a.get('data-watching')\n"
    "        if tag == 'section' and 'process' in (a.get('class') or '').split():\n"
    "            self.sections.append({'reports': a.get('data-reports'), 'program': '', 'charts': []})\n"
    "        if tag == 'h2' and self.sections and not self.sections[-1]['program']: self.h2 = True\n"
    "        if tag == 'svg' and 'chart' in (a.get('class') or '').split():\n"
    "            self.chart = {'name': a.get('data-chart'), 'series': []}\n"
    "            self.sections[-1]['charts'].append(self.chart)\n"
    "        if tag == 'g' and a.get('class') == 'series':\n"
    "            self.chart['series'].append([a.get('data-series'), a.get('data-points'), 0])\n"
    "        if tag == 'circle' and self.chart and self.chart['series']: self.chart['series'][-1][2] += 1\n"
    "        if tag == 'tr' and 'leak' in (a.get('class') or '').split():\n"
    "            self.row = [a.get('data-site') or '', '']\n"
    "    def handle_endtag(self, tag):\n"
    "        if tag == 'pre': self.in_errors = False\n"
    "        if tag == 'h2': self.h2 = False\n"
    "        if tag == 'svg': self.chart = None\n"
    "        if tag == 'tr' and self.row: self.rows.append(self.row); self.row = None\n"
    "    def handle_data(self, d):\n"
    "        if self.in_errors: self.errors += d\n"
    "        if self.h2: self.sections[-1]['program'] += d\n"
    "        if self.row: self.row[1] += d\n"
    "p = P(); p.feed(dom); p.close()\n"
    "def fail(msg):\n"
    "    print('FAIL:', msg); sys.exit(1)\n"
    "if p.errors is None: fail('no #pf-errors element in the page')\n"
    "if p.errors.strip(): fail('script errors on the page: ' + p.errors.strip())\n"
    "if p.watching != '1': fail('the error recorder did not run (no data-watching on #pf-errors)')\n"
    "if p.body.get('data-ready') != '1': fail('the page script did not run to the end (no data-ready)')\n"
    "seen = {}\n"
    "for s in p.sections:\n"
    "    prog = s['program'].split(',')[0]\n"
    "    seen[prog] = s\n"
    "    print('process %s: %s reports, %d charts' % (prog, s['reports'], len(s['charts'])))\n"
    "    for c in s['charts']:\n"
    "        if not c['series']: fail('%s: chart %s has no series' % (prog, c['name']))\n"
    "        for name, points, circles in c['series']:\n"
    "            print('  %s / %s: %s points' % (c['name'], name, points))\n"
    "            if points != str(circles):\n"
    "                fail('%s: chart %s, series %s says %s points but holds %d' % (prog, c['name'], name, points, circles))\n"
    "            if points != s['reports']:\n"
    "                fail('%s: chart %s, series %s has %s points for %s reports' % (prog, c['name'], name, points, s['reports']))\n"
    "for prog, n in want.items():\n"
    "    s = seen.get(prog)\n"
    "    if not s: fail('no section for ' + prog)\n"
    "    if s['reports'] != n: fail('%s: the page counts %s reports, the stream has %s' % (prog, s['reports'], n))\n"
    "    names = [c['name'] for c in s['charts']]\n"
    "    for c in ('families', 'families-log', 'totals-live_bytes', 'totals-cached_bytes', 'totals-resident_bytes',\n"
    "              'totals-metadata_resident_bytes', 'totals-mapped_bytes'):\n"
    "        if c not in names: fail('%s: no chart %s (%s)' % (prog, c, names))\n"
    "for prefix, text in rows:\n"
    "    hit = [t for site, t in p.rows if site.startswith(prefix)]\n"
    "    if not hit: fail('no leak row for ' + prefix)\n"
    "    for t in hit:\n"
    "        t = ' '.join(t.split())\n"
    "        print('leak row: ' + t)\n"
    "        if text not in t: fail('the row of %s does not show %s: %s' % (prefix, text, t))\n"
    "print('ok')\n";

static void browser(const char *dir, const char *const extra[], struct pf_run *r)
{
    char profile[600];
    snprintf(profile, sizeof profile, "--user-data-dir=%s/profile", dir);
    const char *argv[16] = {"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--disable-background-networking", profile, "--virtual-time-budget=5000"};
    size_t n = 8;
    for (size_t i = 0; extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    struct pf_spawn_opts o = {.mode = PF_PLAIN, .timeout_s = 120};
    pf_spawn(argv, &o, r);
    pf_assert_ok(r, "chromium");
}

Test(view, page_loads_in_a_browser, .timeout = 300)
{
    PF_REQUIRE_PRELOAD();
    PF_REQUIRE_PROGRAM("python3");
    PF_REQUIRE_PROGRAM("addr2line");
    PF_REQUIRE_PROGRAM("chromium");
    char *dir = pf_tempdir("browser");
    char *stream = pf_path(dir, "reports.jsonl");
    char *page = pf_path(dir, "page.html");
    char *dom = pf_path(dir, "dom.html");
    char var[600];
    snprintf(var, sizeof var, "PFALLOC_OUT=%s", stream);

    /* daemonish: a signal report at a time, each waited for, then SIGTERM,
     * which writes its exit report before the process dies of it. */
    const char *const env[] = {var, "PFALLOC_FORMAT=json", "PFALLOC_SITES=1", NULL};
    const char *const dargv[] = {PROG("daemonish"), "60", NULL};
    struct pf_child c;
    pf_child_start(&c, "browserd", dargv, env, PF_PRELOAD);
    cr_assert(pf_wait_for_text(c.out_path, "daemonish: started\n", 20000), "daemonish did not start");
    for (int i = 0; i < 2000 && !pf_catches(c.pid, SIGUSR1); i++)
        pf_sleep_ms(5);
    cr_assert(pf_catches(c.pid, SIGUSR1), "daemonish does not catch SIGUSR1");
    for (int i = 1; i <= SIGNAL_REPORTS; i++) {
        kill(c.pid, SIGUSR1);
        size_t got = 0;
        for (int w = 0; w < 2000; w++) {
            char *s = pf_read_file(stream, NULL);
            got = pf_count(s, "\"reason\":\"signal\"");
            free(s);
            if (got >= (size_t)i)
                break;
            pf_sleep_ms(10);
        }
        cr_assert(got == (size_t)i, "signal report %d did not come (%zu in the stream)", i, got);
    }
    kill(c.pid, SIGTERM);
    struct pf_run r;
    pf_child_wait(&c, 60, &r);
    cr_assert(!r.exited && r.signo == SIGTERM, "daemonish: %s\n%s", pf_run_how(&r), r.err);
    pf_run_free(&r);
    pf_child_free(&c);

    /* symbols: leaks from static and inlined functions, -O2 -g. */
    const char *const senv[] = {var, "PFALLOC_FORMAT=json", "PFALLOC_SITES=1", "PFALLOC_REPORT=exit", NULL};
    const char *const sargv[] = {PROG("symbols"), NULL};
    struct pf_spawn_opts so = {.mode = PF_PRELOAD, .env = senv, .timeout_s = 60};
    pf_spawn(sargv, &so, &r);
    pf_assert_ok(&r, "symbols");
    pf_run_free(&r);

    char *data = pf_read_file(stream, NULL);
    cr_assert(pf_count(data, "\"reason\":\"signal\"") == SIGNAL_REPORTS && pf_count(data, "\"reason\":\"exit\"") == 2 &&
                  pf_count(data, "\n") == SIGNAL_REPORTS + 2,
              "want %d signal and 2 exit reports:\n%.2000s", SIGNAL_REPORTS, data);
    free(data);

    const char *const vargv[] = {SCRIPT("pfalloc-view"), "-o", page, stream, NULL};
    struct pf_spawn_opts vo = {.mode = PF_PLAIN, .timeout_s = 120};
    pf_spawn(vargv, &vo, &r);
    pf_assert_ok(&r, "pfalloc-view");
    cr_assert(r.err_len == 0, "%s", r.err);
    pf_run_free(&r);

    char url[700];
    snprintf(url, sizeof url, "file://%s", page);
    const char *const dump[] = {"--dump-dom", url, NULL};
    browser(dir, dump, &r);
    pf_write_file(dom, r.out, r.out_len);
    pf_run_free(&r);

    char daemonish[32], site_b[64], inlined[160], caller[64];
    snprintf(daemonish, sizeof daemonish, "daemonish=%d", SIGNAL_REPORTS + 1);
    snprintf(site_b, sizeof site_b, "leak_static_b+=symbols.c:%d", symbols_line("/* symbols: leak_static_b's"));
    snprintf(inlined, sizeof inlined, "leak_inlined+=symbols.c:%d in xalloc, inlined into leak_inlined at symbols.c:%d",
             symbols_line("/* symbols: the inlined allocation"),
             symbols_line("/* symbols: the call of the inlined wrapper"));
    /* The caller of leak_static_b, in the site's stack. */
    snprintf(caller, sizeof caller, "leak_static_b+=by main+0x");
    char caller_line[64];
    snprintf(caller_line, sizeof caller_line, "leak_static_b+=symbols.c:%d", symbols_line("    leak_static_b();"));
    const char *const cargv[] = {"python3", "-c", check_dom_py, dom, daemonish, "symbols=1", site_b, inlined,
                                 caller, caller_line, NULL};
    pf_spawn(cargv, &vo, &r);
    cr_assert(r.exited && r.code == 0, "the page in the browser does not check out:\n%s%s", r.out, r.err);
    pf_run_free(&r);

    /* The screenshot, for people: a PNG with something in it. */
    unlink(SCREENSHOT);
    const char *const shot[] = {"--screenshot=" SCREENSHOT, "--window-size=1280,2000", url, NULL};
    browser(dir, shot, &r);
    pf_run_free(&r);
    size_t len;
    char *png = pf_read_file(SCREENSHOT, &len);
    cr_assert(len > 1000 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0, "%s is not a PNG (%zu bytes)", SCREENSHOT, len);
    free(png);
    fprintf(stderr, "view: the page's screenshot is %s (%zu bytes)\n", SCREENSHOT, len);

    free(stream);
    free(page);
    free(dom);
    pf_tempdir_remove(dir);
}
