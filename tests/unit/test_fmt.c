/*
 * test_fmt.c — the signal-safe formatter: integer edge values, fixed-width
 * fields, human sizes and percentages, truncation in memory mode, flushing
 * through a small buffer to a pipe, write errors, and JSON string escaping
 * (checked by hand and by a JSON parser).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fmt.h"

/* Formats with `body` into a fresh in-memory formatter and returns the text. */
#define FMT(body)                                                                                  \
    ({                                                                                             \
        static char fmt_buf_[256];                                                                 \
        struct pf_fmt f_;                                                                          \
        struct pf_fmt *f = &f_;                                                                    \
        pf_fmt_init(f, fmt_buf_, sizeof fmt_buf_, -1);                                             \
        body;                                                                                      \
        cr_assert_eq(f_.truncated, 0);                                                             \
        pf_fmt_cstr(f);                                                                            \
    })

Test(fmt, unsigned_edges)
{
    cr_assert_str_eq(FMT(pf_fmt_u64(f, 0)), "0");
    cr_assert_str_eq(FMT(pf_fmt_u64(f, 9)), "9");
    cr_assert_str_eq(FMT(pf_fmt_u64(f, 10)), "10");
    cr_assert_str_eq(FMT(pf_fmt_u64(f, 1000000)), "1000000");
    cr_assert_str_eq(FMT(pf_fmt_u64(f, UINT64_MAX)), "18446744073709551615");
}

Test(fmt, signed_edges)
{
    cr_assert_str_eq(FMT(pf_fmt_i64(f, 0)), "0");
    cr_assert_str_eq(FMT(pf_fmt_i64(f, -1)), "-1");
    cr_assert_str_eq(FMT(pf_fmt_i64(f, 42)), "42");
    cr_assert_str_eq(FMT(pf_fmt_i64(f, INT64_MAX)), "9223372036854775807");
    cr_assert_str_eq(FMT(pf_fmt_i64(f, INT64_MIN)), "-9223372036854775808");
}

Test(fmt, hex)
{
    cr_assert_str_eq(FMT(pf_fmt_hex(f, 0)), "0x0");
    cr_assert_str_eq(FMT(pf_fmt_hex(f, 0xdeadbeef)), "0xdeadbeef");
    cr_assert_str_eq(FMT(pf_fmt_hex(f, 0x7f0000001000)), "0x7f0000001000");
    cr_assert_str_eq(FMT(pf_fmt_hex(f, UINT64_MAX)), "0xffffffffffffffff");
}

Test(fmt, hex_digits_fixed_width)
{
    cr_assert_str_eq(FMT(pf_fmt_xdigits(f, 0x5, 2)), "05");
    cr_assert_str_eq(FMT(pf_fmt_xdigits(f, 0xab, 2)), "ab");
    cr_assert_str_eq(FMT(pf_fmt_xdigits(f, 0x1ab, 2)), "ab"); /* only the low digits */
    cr_assert_str_eq(FMT(pf_fmt_xdigits(f, 0, 4)), "0000");
    cr_assert_str_eq(FMT(pf_fmt_xdigits(f, UINT64_MAX, 16)), "ffffffffffffffff");
    cr_assert_str_eq(FMT(pf_fmt_xdigits(f, 0x12, 0)), "");
}

Test(fmt, fixed_point)
{
    cr_assert_str_eq(FMT(pf_fmt_fixed(f, 1234, 3)), "1.234");
    cr_assert_str_eq(FMT(pf_fmt_fixed(f, 5, 3)), "0.005");
    cr_assert_str_eq(FMT(pf_fmt_fixed(f, 1000, 3)), "1.000");
    cr_assert_str_eq(FMT(pf_fmt_fixed(f, 0, 1)), "0.0");
    cr_assert_str_eq(FMT(pf_fmt_fixed(f, 7, 0)), "7");
    cr_assert_str_eq(FMT(pf_fmt_fixed(f, UINT64_MAX, 19)), "1.8446744073709551615");
}

Test(fmt, sizes)
{
    cr_assert_str_eq(FMT(pf_fmt_size(f, 0)), "0 B");
    cr_assert_str_eq(FMT(pf_fmt_size(f, 1023)), "1023 B");
    cr_assert_str_eq(FMT(pf_fmt_size(f, 1024)), "1.0 KiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, 1536)), "1.5 KiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, 12800)), "12.5 KiB");
    /* 1075 B = 1.0498 KiB rounds down, 1076 B = 1.0508 KiB rounds up. */
    cr_assert_str_eq(FMT(pf_fmt_size(f, 1075)), "1.0 KiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, 1076)), "1.1 KiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, 3u << 20)), "3.0 MiB");
    /* One byte short of a MiB rounds into the next unit, not "1024.0 KiB". */
    cr_assert_str_eq(FMT(pf_fmt_size(f, (1u << 20) - 1)), "1.0 MiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, (uint64_t)5 << 30)), "5.0 GiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, (uint64_t)1 << 40)), "1.0 TiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, (uint64_t)1 << 50)), "1.0 PiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, (uint64_t)1 << 60)), "1.0 EiB");
    cr_assert_str_eq(FMT(pf_fmt_size(f, UINT64_MAX)), "16.0 EiB");
}

Test(fmt, percentages)
{
    cr_assert_str_eq(FMT(pf_fmt_pct(f, 0, 5)), "0.0%");
    cr_assert_str_eq(FMT(pf_fmt_pct(f, 1, 3)), "33.3%");
    cr_assert_str_eq(FMT(pf_fmt_pct(f, 2, 3)), "66.7%");
    cr_assert_str_eq(FMT(pf_fmt_pct(f, 1, 1)), "100.0%");
    cr_assert_str_eq(FMT(pf_fmt_pct(f, 3, 2)), "150.0%");
    cr_assert_str_eq(FMT(pf_fmt_pct(f, 1, 2000)), "0.1%"); /* 0.05% rounds half up */
    cr_assert_str_eq(FMT(pf_fmt_pct(f, 5, 0)), "-");
    cr_assert_str_eq(FMT(pf_fmt_pct(f, UINT64_MAX, UINT64_MAX)), "100.0%");
    cr_assert_str_eq(FMT(pf_fmt_pct(f, UINT64_MAX / 4, UINT64_MAX)), "25.0%");
}

Test(fmt, padding)
{
    cr_assert_str_eq(FMT(pf_fmt_u64_w(f, 42, 5)), "   42");
    cr_assert_str_eq(FMT(pf_fmt_u64_w(f, 42, -5)), "42   ");
    cr_assert_str_eq(FMT(pf_fmt_u64_w(f, 123456, 3)), "123456");
    cr_assert_str_eq(FMT(pf_fmt_u64_w(f, UINT64_MAX, 22)), "  18446744073709551615");
    cr_assert_str_eq(FMT(pf_fmt_str_w(f, "ab", -4); pf_fmt_char(f, '|')), "ab  |");
    cr_assert_str_eq(FMT(pf_fmt_str_w(f, "abcdef", 3)), "abcdef");
    cr_assert_str_eq(FMT(pf_fmt_str_w(f, "", 3)), "   ");
    cr_assert_str_eq(FMT(pf_fmt_size_w(f, 12800, 10)), "  12.5 KiB");
    cr_assert_str_eq(FMT(pf_fmt_pct_w(f, 1, 4, -7); pf_fmt_char(f, '|')), "25.0%  |");
    cr_assert_str_eq(FMT(pf_fmt_repeat(f, '-', 70)),
                     "----------------------------------------------------------------------");
    cr_assert_str_eq(FMT(pf_fmt_str(f, NULL)), "(null)");
}

Test(fmt, names_keep_to_one_line)
{
    cr_assert_str_eq(FMT(pf_fmt_name(f, "a\nb\tc\x7f\001" "d")), "a?b?c??d");
    cr_assert_str_eq(FMT(pf_fmt_name(f, "\n")), "?");
    cr_assert_str_eq(FMT(pf_fmt_name(f, "plain \xc3\xbc\"q")), "plain \xc3\xbc\"q"); /* UTF-8 and quotes as they are */
    cr_assert_str_eq(FMT(pf_fmt_name(f, NULL)), "(null)");
    cr_assert_str_eq(FMT(pf_fmt_name_w(f, "x\ny", -5); pf_fmt_char(f, '|')), "x?y  |");
    cr_assert_str_eq(FMT(pf_fmt_name_w(f, "x\ny", 5)), "  x?y");
    cr_assert_str_eq(FMT(pf_fmt_name_pad(f, "a\nbc", 2, -3); pf_fmt_char(f, '|')), "a? |");
    /* C1 controls (NEL, CSI, which a terminal takes as an escape) and the
     * Unicode line and paragraph separators, where readers break lines;
     * the column is padded by what is written. */
    cr_assert_str_eq(FMT(pf_fmt_name(f, "n\xc2\x85" "c\xc2\x9b" "31m l\xe2\x80\xa8p\xe2\x80\xa9")), "n?c?31m l?p?");
    cr_assert_str_eq(FMT(pf_fmt_name(f, "\xc2\xa0\xe2\x80\xa7\xc2")), "\xc2\xa0\xe2\x80\xa7\xc2"); /* neighbours kept */
    cr_assert_str_eq(FMT(pf_fmt_name_w(f, "a\xe2\x80\xa8" "b", -5); pf_fmt_char(f, '|')), "a?b  |");
    cr_assert_str_eq(FMT(pf_fmt_name_w(f, "\xc2\x85", 3)), "  ?");
}

Test(fmt, memory_mode_truncates)
{
    char buf[8];
    struct pf_fmt f;
    pf_fmt_init(&f, buf, sizeof buf, -1);
    pf_fmt_str(&f, "hello");
    cr_assert_eq(f.truncated, 0);
    pf_fmt_str(&f, " world");
    cr_assert_eq(f.truncated, 1);
    cr_assert_eq(f.len, sizeof buf - 1);
    cr_assert_str_eq(pf_fmt_cstr(&f), "hello w");
    pf_fmt_u64(&f, 12345);
    cr_assert_str_eq(pf_fmt_cstr(&f), "hello w");
    cr_assert_eq(pf_fmt_flush(&f), 0); /* memory mode: nothing to write, text kept */
    cr_assert_str_eq(pf_fmt_cstr(&f), "hello w");
}

/* Everything written into a formatter with a tiny buffer arrives through the
   pipe in order, in several writes. */
Test(fmt, small_buffer_flushes_to_fd)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char small[5];
    struct pf_fmt f;
    pf_fmt_init(&f, small, sizeof small, p[1]);
    char expect[4096];
    size_t n = 0;
    for (unsigned i = 0; i < 300; i++) {
        pf_fmt_u64(&f, i);
        pf_fmt_char(&f, ',');
        n += (size_t)sprintf(expect + n, "%u,", i);
    }
    pf_fmt_json_str(&f, "q\"\n");
    n += (size_t)sprintf(expect + n, "%s", "\"q\\\"\\n\"");
    cr_assert_eq(pf_fmt_flush(&f), 0);
    cr_assert_eq(f.truncated, 0);
    cr_assert_eq(f.written, n);
    cr_assert_eq(f.len, 0);
    close(p[1]);
    char got[4096];
    size_t g = 0;
    ssize_t r;
    while ((r = read(p[0], got + g, sizeof got - 1 - g)) > 0)
        g += (size_t)r;
    close(p[0]);
    got[g] = '\0';
    expect[n] = '\0';
    cr_assert_eq(g, n);
    cr_assert_str_eq(got, expect);
}

Test(fmt, write_error_is_reported)
{
    int fd = open("/dev/null", O_RDONLY);
    cr_assert_geq(fd, 0);
    char buf[4];
    struct pf_fmt f;
    pf_fmt_init(&f, buf, sizeof buf, fd);
    pf_fmt_str(&f, "more than four bytes");
    errno = 0;
    cr_assert_eq(pf_fmt_flush(&f), -1);
    cr_assert_eq(errno, EBADF);
    cr_assert_eq(f.err, EBADF);
    cr_assert_eq(f.written, 0);
    close(fd);
}

Test(fmt, json_escaping)
{
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "")), "\"\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "malloc-64")), "\"malloc-64\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "say \"hi\"")), "\"say \\\"hi\\\"\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "a\\b")), "\"a\\\\b\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "l1\nl2\r\t\b\f")), "\"l1\\nl2\\r\\t\\b\\f\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "\x01\x1f")), "\"\\u0001\\u001f\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "\x7f")), "\"\x7f\"");
    /* Valid as they are, but line breaks to str.splitlines() and older
     * JavaScript: a JSON line stays one line to every reader. */
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c\xc2\x85" "d\xc2\x80\xc2\x9f\xc2\xa0")),
                     "\"a\\u2028b\\u2029c\\u0085d\\u0080\\u009f\xc2\xa0\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")),
                     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* Invalid UTF-8: a lone continuation byte, a truncated sequence, an
       overlong form, a surrogate, 0xff. */
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "\x80")), "\"\\ufffd\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "x\xe2\x82")), "\"x\\ufffd\\ufffd\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "\xc0\xaf")), "\"\\ufffd\\ufffd\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "\xed\xa0\x80")), "\"\\ufffd\\ufffd\\ufffd\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, "\xff")), "\"\\ufffd\"");
    cr_assert_str_eq(FMT(pf_fmt_json_str(f, NULL)), "null");
}

/* malloc_info's family names: what XML 1.0 cannot hold, even as a
   character reference, became part of the document as it was. */
Test(fmt, xml_attribute_escaping)
{
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "malloc-64")), "malloc-64");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "a<b>&\"c\"")), "a&lt;b&gt;&amp;&quot;c&quot;");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "t\tn\nr\r")), "t&#9;n&#10;r&#13;");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "\x01\x1f")), "\xef\xbf\xbd\xef\xbf\xbd");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "caf\xc3\xa9 \xf0\x9f\x98\x80")), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    /* A character cut in half, U+FFFF, a surrogate. */
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "x\xc3")), "x\xef\xbf\xbd");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "\xef\xbf\xbf")), "\xef\xbf\xbd");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "\xed\xa0\x80")), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, "\xef\xbf\xbd")), "\xef\xbf\xbd");
    cr_assert_str_eq(FMT(pf_fmt_xml_attr(f, NULL)), "");
}

/* A parser agrees: every byte 1..255 escaped gives a valid JSON string whose
   ASCII part decodes back to the original characters. */
Test(fmt, json_escaping_parses)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        cr_skip_test("python3 not available");
    char in[256];
    for (int i = 1; i < 256; i++)
        in[i - 1] = (char)i;
    in[255] = '\0';
    static char out[4096];
    struct pf_fmt f;
    pf_fmt_init(&f, out, sizeof out, -1);
    pf_fmt_json_str(&f, in);
    cr_assert_eq(f.truncated, 0);
    char path[] = "/tmp/pf_fmt_json_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, out, f.len), (ssize_t)f.len);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read()); "
             "exp=\"\".join(chr(i) for i in range(1,128)); "
             "sys.exit(0 if s[:127]==exp and set(s[127:])=={chr(0xfffd)} else 1)' %s",
             path);
    int st = system(cmd);
    unlink(path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python rejected %s", out);
}

Test(fmt, grow_mode_keeps_everything_and_writes_once)
{
    /* Memory mode: 1 MiB of text through a 64-byte first buffer, kept whole. */
    char first[64];
    struct pf_fmt f;
    pf_fmt_init_grow(&f, first, sizeof first, 0, -1);
    for (int i = 0; i < 65536; i++)
        pf_fmt_str(&f, "0123456789abcdef");
    cr_assert(!f.truncated);
    cr_assert_eq(f.len, (size_t)1 << 20);
    cr_assert(f.mapped && f.buf != first && f.cap > f.len);
    for (size_t i = 0; i < f.len; i += 16)
        cr_assert(memcmp(f.buf + i, "0123456789abcdef", 16) == 0, "at %zu", i);
    /* Reused as a mapping: it grows again with mremap. */
    char *buf = f.buf;
    size_t cap = f.cap;
    pf_fmt_init_grow(&f, buf, cap, 1, -1);
    pf_fmt_repeat(&f, 'x', cap + 100);
    cr_assert(!f.truncated && f.len == cap + 100 && f.cap > cap);
    pf_os_unmap_meta(f.buf, f.cap);

    /* fd mode: nothing is written before the flush, then all of it at once. */
    int p[2];
    cr_assert(pipe(p) == 0);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    pf_fmt_init_grow(&f, first, sizeof first, 0, p[1]);
    pf_fmt_repeat(&f, 'y', 100000);
    cr_assert_eq(f.written, 0);
    cr_assert(pf_fmt_flush(&f) == 0);
    cr_assert_eq(f.written, 100000);
    close(p[1]);
    static char back[200000];
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], back + got, sizeof back - got)) > 0)
        got += (size_t)n;
    close(p[0]);
    cr_assert_eq(got, 100000);
    if (f.mapped)
        pf_os_unmap_meta(f.buf, f.cap);
}
