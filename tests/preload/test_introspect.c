/*
 * glibc's introspection calls under the preload, seen from a real program
 * (tests/progs/families): mallinfo2's figures and malloc_info's XML hold
 * every family, however many the program made.
 */
#include "spawn.h"

TestSuite(introspect);

#define PROG(name) PF_PROGS_DIR "/" name

/* Runs `families N mode` preloaded, with the default report settings. */
static void families(const char *n, const char *mode, struct pf_run *r)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PROG("families"), n, mode, NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 120};
    pf_spawn(argv, &o, r);
    pf_assert_ok(r, "families");
}

/* stdin: malloc_info's XML, then the program's own lines. Parses the XML;
 * prints the typed families of the program listed, the live objects of
 * malloc-3072 and of large, and the <total type="mmap"> count. */
static const char summary_py[] =
    "import sys, xml.dom.minidom\n"
    "data = sys.stdin.buffer.read()\n"
    "end = data.find(b'</malloc>\\n')\n"
    "if end < 0:\n"
    "    print('BAD no </malloc>: %r' % data[-300:])\n"
    "    sys.exit(1)\n"
    "doc = xml.dom.minidom.parseString(data[:end + 10])\n"
    "fams = doc.getElementsByTagName('family')\n"
    "typed = sum(1 for f in fams if f.getAttribute('name').startswith('family with a long name'))\n"
    "live = dict((f.getAttribute('name'), f.getAttribute('live_objects')) for f in fams)\n"
    "mmap = [t.getAttribute('count') for t in doc.getElementsByTagName('total') if t.getAttribute('type') == 'mmap']\n"
    "print('typed %d, malloc-3072 %s, large %s, mmap %s' % (typed, live.get('malloc-3072', '-'),\n"
    "      live.get('large', '-'), ','.join(mmap)))\n";

/* mallinfo summed the table pf_stats_get fills, which holds 512 families:
 * with 600 typed families made first, the size classes and "large"
 * (registered afterwards) fell outside it, and 30 MB of malloc'd blocks
 * moved neither uordblks nor hblks. */
Test(introspect, mallinfo2_counts_malloc_after_more_families_than_a_snapshot_holds, .timeout = 180)
{
    struct pf_run r;
    families("600", "mallinfo", &r);
    const char *line = strstr(r.out, "mallinfo2: ");
    cr_assert(line != NULL, "%s", pf_tail(r.out, r.out_len, 500));
    size_t uord = 0, hblks = 0, hblkhd = 0;
    cr_assert(sscanf(line, "mallinfo2: uordblks +%zu hblks +%zu hblkhd +%zu", &uord, &hblks, &hblkhd) == 3,
              "%s", line);
    cr_assert(uord >= (size_t)10000 * 3000, "10 000 live blocks of 3000 bytes, uordblks grew by %zu", uord);
    cr_assert(hblks == 10, "10 live blocks of 1 MiB, hblks grew by %zu", hblks);
    cr_assert(hblkhd >= (size_t)10 << 20, "10 live blocks of 1 MiB, hblkhd grew by %zu", hblkhd);
    cr_assert(strstr(r.out, "families: 600 made\n") != NULL, "%s", pf_tail(r.out, r.out_len, 300));
    pf_run_free(&r);
}

/* malloc_info listed only the families of that table, and took its totals
 * from it: the 88 typed families past the cut, malloc-3072 and large were
 * missing without a word, and the mmap total said 0 blocks. */
Test(introspect, malloc_info_lists_every_family_and_counts_large_blocks_after_600_families, .timeout = 180)
{
    struct pf_run r;
    families("600", "mallinfo", &r);
    char *dir = pf_tempdir("introspect");
    char *out = pf_path(dir, "out");
    pf_write_file(out, r.out, r.out_len);
    char *sum = pf_python(summary_py, "-", out);
    cr_assert(strcmp(sum, "typed 600, malloc-3072 10000, large 10, mmap 10\n") == 0, "%s", sum);
    free(sum);
    free(out);
    pf_tempdir_remove(dir);
    pf_run_free(&r);
}

/* stdin: malloc_info's XML, then the program's own lines. Parses the XML
 * and prints, one a line, the names of the families that are not "f<n>"
 * nor pfalloc's own, as Python's repr. */
static const char names_py[] =
    "import sys, xml.dom.minidom\n"
    "data = sys.stdin.buffer.read()\n"
    "end = data.find(b'</malloc>\\n')\n"
    "doc = xml.dom.minidom.parseString(data[:end + 10])\n"
    "for f in doc.getElementsByTagName('family'):\n"
    "    name = f.getAttribute('name')\n"
    "    if f.getAttribute('kind') == 'typed' and not name.startswith('family with a long name'):\n"
    "        print(ascii(name))\n";

/* malloc_info escaped only < > & " in family names: a control character
 * went into the XML as it was, and so did the first byte of a character
 * cut in half by the 63-byte cut, each making the document not
 * well-formed (Python's parser stopped at it). */
Test(introspect, malloc_info_is_well_formed_xml_whatever_the_family_names_hold, .timeout = 120)
{
    struct pf_run r;
    families("3", "names", &r);
    cr_assert(strstr(r.out, "families: 3 made\n") != NULL, "%s", pf_tail(r.out, r.out_len, 300));
    char *dir = pf_tempdir("introspect");
    char *out = pf_path(dir, "out");
    pf_write_file(out, r.out, r.out_len);
    char *names = pf_python(names_py, "-", out);
    /* What XML 1.0 cannot hold is U+FFFD; tab and newline survive as references. */
    cr_assert_str_eq(names, "'ctl\\ufffdname'\n"
                            "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\ufffd'\n"
                            "'nonchar\\ufffd'\n"
                            "'tab\\tnl\\nend'\n"
                            "'mark<&>\"up\"'\n"
                            "'bad\\ufffd\\ufffd'\n");
    free(names);
    free(out);
    pf_tempdir_remove(dir);
    pf_run_free(&r);
}
