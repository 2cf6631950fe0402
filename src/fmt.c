/*
 * fmt.c — text formatting for reports and fatal messages, usable inside a
 * signal handler: no allocation, no lock, no stdio, no floating point; the
 * only syscall is write(2) through pf_os_write_all when an fd-backed buffer
 * fills or is flushed. Invariant: len < cap (room for the NUL is kept), and
 * after a write error nothing more is buffered or written.
 */
#include "fmt.h"

#include <errno.h>
#include <string.h>

void pf_fmt_init(struct pf_fmt *f, char *buf, size_t cap, int fd)
{
    f->buf = buf;
    f->cap = cap;
    f->len = 0;
    f->fd = fd;
    f->err = 0;
    f->truncated = 0;
    f->written = 0;
    f->grow = 0;
    f->mapped = 0;
    if (cap > 0)
        buf[0] = '\0';
}

void pf_fmt_init_grow(struct pf_fmt *f, char *buf, size_t cap, int buf_mapped, int fd)
{
    pf_fmt_init(f, buf, cap, fd);
    f->grow = 1;
    f->mapped = buf_mapped;
}

/* Grow mode: doubles the buffer. 0, or -1 when no mapping could be had (the
   formatter then stops growing and behaves as a plain one). */
static int enlarge(struct pf_fmt *f)
{
    size_t ps = pf_os_page_size();
    size_t cap = f->cap < ps ? ps : (f->cap * 2 + ps - 1) & ~(ps - 1);
    char *nb;
    if (cap <= f->cap)
        nb = NULL;
    else if (f->mapped)
        nb = pf_os_remap_meta(f->buf, f->cap, cap);
    else if ((nb = pf_os_map_meta(cap)) != NULL)
        memcpy(nb, f->buf, f->len);
    if (!nb) {
        f->grow = 0;
        return -1;
    }
    f->buf = nb;
    f->cap = cap;
    f->mapped = 1;
    return 0;
}

/* fd mode: hands the buffered text to the fd and empties the buffer. */
static void drain(struct pf_fmt *f)
{
    if (f->len == 0 || f->err)
        return;
    if (pf_os_write_all(f->fd, f->buf, f->len) != 0)
        f->err = errno ? errno : EIO;
    else
        f->written += f->len;
    f->len = 0;
}

int pf_fmt_flush(struct pf_fmt *f)
{
    if (f->fd >= 0)
        drain(f);
    if (f->err) {
        errno = f->err;
        return -1;
    }
    return 0;
}

const char *pf_fmt_cstr(struct pf_fmt *f)
{
    f->buf[f->len] = '\0';
    return f->buf;
}

void pf_fmt_mem(struct pf_fmt *f, const char *s, size_t n)
{
    while (n > 0) {
        if (f->err)
            return;
        size_t room = f->cap - 1 - f->len;
        if (room == 0) {
            if (f->grow && enlarge(f) == 0)
                continue;
            if (f->fd < 0) {
                f->truncated = 1;
                return;
            }
            drain(f);
            continue;
        }
        size_t take = n < room ? n : room;
        memcpy(f->buf + f->len, s, take);
        f->len += take;
        s += take;
        n -= take;
    }
}

void pf_fmt_str(struct pf_fmt *f, const char *s)
{
    if (!s)
        s = "(null)";
    pf_fmt_mem(f, s, strlen(s));
}

/* Bytes of the control character or line break at s[i..n) that a name
 * writes as '?', or 0: C0 and DEL, C1 (U+0080 to U+009F, which a terminal
 * may take as an escape, NEL a line break) and U+2028, U+2029 (line and
 * paragraph separators, where many readers break a line). */
static size_t control_at(const unsigned char *s, size_t i, size_t n)
{
    unsigned char c = s[i];
    if (c < 0x20 || c == 0x7f)
        return 1;
    if (c == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
        return 2;
    if (c == 0xe2 && i + 2 < n && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
        return 3;
    return 0;
}

/* s[0..n) with each control character as '?'; the bytes written. */
static size_t name_mem(struct pf_fmt *f, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, out = 0;
    for (size_t i = 0; i < n;) {
        size_t k = control_at(u, i, n);
        if (!k) {
            i++;
            continue;
        }
        if (f) {
            pf_fmt_mem(f, s + run, i - run);
            pf_fmt_mem(f, "?", 1);
        }
        out += i - run + 1;
        i += k;
        run = i;
    }
    if (f)
        pf_fmt_mem(f, s + run, n - run);
    return out + n - run;
}

void pf_fmt_name(struct pf_fmt *f, const char *s)
{
    if (!s)
        s = "(null)";
    name_mem(f, s, strlen(s));
}

void pf_fmt_char(struct pf_fmt *f, char c)
{
    pf_fmt_mem(f, &c, 1);
}

void pf_fmt_repeat(struct pf_fmt *f, char c, size_t n)
{
    char chunk[32];
    memset(chunk, c, sizeof chunk);
    while (n > 0) {
        size_t take = n < sizeof chunk ? n : sizeof chunk;
        pf_fmt_mem(f, chunk, take);
        n -= take;
    }
}

/* Decimal digits of v, right-aligned in out[0..20); returns the first index. */
static size_t digits(uint64_t v, char out[20])
{
    size_t i = 20;
    do {
        out[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return i;
}

void pf_fmt_u64(struct pf_fmt *f, uint64_t v)
{
    char d[20];
    size_t i = digits(v, d);
    pf_fmt_mem(f, d + i, 20 - i);
}

void pf_fmt_i64(struct pf_fmt *f, int64_t v)
{
    if (v < 0) {
        pf_fmt_char(f, '-');
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        pf_fmt_u64(f, (uint64_t)0 - (uint64_t)v);
    } else {
        pf_fmt_u64(f, (uint64_t)v);
    }
}

void pf_fmt_hex(struct pf_fmt *f, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char d[18];
    size_t i = sizeof d;
    do {
        d[--i] = hex[v & 0xf];
        v >>= 4;
    } while (v != 0);
    d[--i] = 'x';
    d[--i] = '0';
    pf_fmt_mem(f, d + i, sizeof d - i);
}

void pf_fmt_xdigits(struct pf_fmt *f, uint64_t v, unsigned ndigits)
{
    static const char hex[] = "0123456789abcdef";
    char d[16];
    if (ndigits > sizeof d)
        ndigits = sizeof d;
    for (unsigned i = ndigits; i > 0; i--, v >>= 4)
        d[i - 1] = hex[v & 0xf];
    pf_fmt_mem(f, d, ndigits);
}

void pf_fmt_fixed(struct pf_fmt *f, uint64_t v, unsigned decimals)
{
    if (decimals > 19)
        decimals = 19;
    uint64_t scale = 1;
    for (unsigned k = 0; k < decimals; k++)
        scale *= 10;
    pf_fmt_u64(f, v / scale);
    if (decimals == 0)
        return;
    char d[20];
    size_t i = digits(v % scale, d);
    pf_fmt_char(f, '.');
    pf_fmt_repeat(f, '0', decimals - (20 - i));
    pf_fmt_mem(f, d + i, 20 - i);
}

void pf_fmt_size(struct pf_fmt *f, uint64_t bytes)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        pf_fmt_u64(f, bytes);
        pf_fmt_str(f, " B");
        return;
    }
    unsigned k = 1;
    while (k < 6 && (bytes >> (10 * (k + 1))) != 0)
        k++;
    unsigned shift = 10 * k;
    uint64_t whole = bytes >> shift;
    uint64_t rem = bytes & ((UINT64_C(1) << shift) - 1);
    /* rem < 2^60, so rem * 10 + 2^59 stays below 2^64. */
    uint64_t tenths = (rem * 10 + (UINT64_C(1) << (shift - 1))) >> shift;
    if (tenths == 10) {
        whole++;
        tenths = 0;
    }
    if (whole == 1024 && k < 6) { /* 1023.96 KiB rounds up to the next unit */
        whole = 1;
        k++;
    }
    pf_fmt_fixed(f, whole * 10 + tenths, 1);
    pf_fmt_char(f, ' ');
    pf_fmt_str(f, unit[k]);
}

void pf_fmt_pct(struct pf_fmt *f, uint64_t num, uint64_t den)
{
    if (den == 0) {
        pf_fmt_char(f, '-');
        return;
    }
    /* Keep num * 1000 + den / 2 within 64 bits; halving both keeps the ratio
       to far better than the one decimal shown. */
    while (num > UINT64_MAX / 2000) {
        num >>= 1;
        den >>= 1;
    }
    if (den == 0)
        den = 1;
    pf_fmt_fixed(f, (num * 1000 + den / 2) / den, 1);
    pf_fmt_char(f, '%');
}

/* Length of the valid UTF-8 sequence starting at s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0; /* also stops at the NUL */
    return n;
}

/* The character at s (not ASCII): copied when it is valid UTF-8 (and, for
 * XML, one XML can hold: not U+FFFE or U+FFFF), else `bad` in its place;
 * the bytes it took. */
static size_t put_utf8(struct pf_fmt *f, const unsigned char *s, const char *bad, int xml)
{
    size_t n = utf8_len(s);
    if (n && !(xml && n == 3 && s[0] == 0xef && s[1] == 0xbf && s[2] >= 0xbe)) {
        pf_fmt_mem(f, (const char *)s, n);
        return n;
    }
    pf_fmt_str(f, bad);
    return n ? n : 1;
}

void pf_fmt_json_str(struct pf_fmt *f, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    if (!str) {
        pf_fmt_str(f, "null");
        return;
    }
    const unsigned char *s = (const unsigned char *)str;
    pf_fmt_char(f, '"');
    while (*s) {
        /* Copy the longest run that needs no escaping in one go. */
        const unsigned char *run = s;
        while (*s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\')
            s++;
        pf_fmt_mem(f, (const char *)run, (size_t)(s - run));
        unsigned char c = *s;
        if (c == 0)
            break;
        if (c >= 0x80) {
            /* C1 controls and U+2028, U+2029 escaped: they are valid JSON
             * as they are, but line breaks to many readers of a line
             * (Python's str.splitlines(), JavaScript before ES2019). */
            size_t k = control_at(s, 0, 3);
            if (k == 2) {
                char u[6] = {'\\', 'u', '0', '0', hex[s[1] >> 4], hex[s[1] & 0xf]};
                pf_fmt_mem(f, u, sizeof u);
                s += 2;
            } else if (k == 3) {
                pf_fmt_str(f, s[2] == 0xa8 ? "\\u2028" : "\\u2029");
                s += 3;
            } else {
                s += put_utf8(f, s, "\\ufffd", 0);
            }
            continue;
        }
        s++;
        switch (c) {
        case '"': pf_fmt_str(f, "\\\""); break;
        case '\\': pf_fmt_str(f, "\\\\"); break;
        case '\n': pf_fmt_str(f, "\\n"); break;
        case '\r': pf_fmt_str(f, "\\r"); break;
        case '\t': pf_fmt_str(f, "\\t"); break;
        case '\b': pf_fmt_str(f, "\\b"); break;
        case '\f': pf_fmt_str(f, "\\f"); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            pf_fmt_mem(f, u, sizeof u);
        }
        }
    }
    pf_fmt_char(f, '"');
}

void pf_fmt_xml_attr(struct pf_fmt *f, const char *str)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    if (!str)
        return;
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        const unsigned char *run = s;
        while (*s >= 0x20 && *s < 0x80 && *s != '"' && *s != '&' && *s != '<' && *s != '>')
            s++;
        pf_fmt_mem(f, (const char *)run, (size_t)(s - run));
        unsigned char c = *s;
        if (c == 0)
            break;
        if (c >= 0x80) {
            s += put_utf8(f, s, replacement, 1);
            continue;
        }
        s++;
        switch (c) {
        case '"': pf_fmt_str(f, "&quot;"); break;
        case '&': pf_fmt_str(f, "&amp;"); break;
        case '<': pf_fmt_str(f, "&lt;"); break;
        case '>': pf_fmt_str(f, "&gt;"); break;
        case '\t': pf_fmt_str(f, "&#9;"); break;
        case '\n': pf_fmt_str(f, "&#10;"); break;
        case '\r': pf_fmt_str(f, "&#13;"); break;
        default: pf_fmt_str(f, replacement); /* no XML 1.0 character, not even as a reference */
        }
    }
}

static void pad(struct pf_fmt *f, const char *s, size_t n, int width, int name)
{
    size_t w = width < 0 ? (size_t)(-(long)width) : (size_t)width;
    size_t len = name ? name_mem(NULL, s, n) : n; /* the bytes written: the column counts those */
    size_t fill = len < w ? w - len : 0;
    if (width > 0)
        pf_fmt_repeat(f, ' ', fill);
    if (name)
        name_mem(f, s, n);
    else
        pf_fmt_mem(f, s, n);
    if (width < 0)
        pf_fmt_repeat(f, ' ', fill);
}

void pf_fmt_pad(struct pf_fmt *f, const char *s, size_t n, int width)
{
    pad(f, s, n, width, 0);
}

void pf_fmt_name_pad(struct pf_fmt *f, const char *s, size_t n, int width)
{
    pad(f, s, n, width, 1);
}

void pf_fmt_str_w(struct pf_fmt *f, const char *s, int width)
{
    if (!s)
        s = "(null)";
    pad(f, s, strlen(s), width, 0);
}

void pf_fmt_name_w(struct pf_fmt *f, const char *s, int width)
{
    if (!s)
        s = "(null)";
    pad(f, s, strlen(s), width, 1);
}

/* The _w forms format into a small scratch buffer first, then pad. 32 bytes
   hold any of them ("18446744073709551615", "1023.9 EiB", "1844674407370955161.5%"). */
void pf_fmt_u64_w(struct pf_fmt *f, uint64_t v, int width)
{
    char tmp[32];
    struct pf_fmt t;
    pf_fmt_init(&t, tmp, sizeof tmp, -1);
    pf_fmt_u64(&t, v);
    pf_fmt_pad(f, tmp, t.len, width);
}

void pf_fmt_size_w(struct pf_fmt *f, uint64_t bytes, int width)
{
    char tmp[32];
    struct pf_fmt t;
    pf_fmt_init(&t, tmp, sizeof tmp, -1);
    pf_fmt_size(&t, bytes);
    pf_fmt_pad(f, tmp, t.len, width);
}

void pf_fmt_pct_w(struct pf_fmt *f, uint64_t num, uint64_t den, int width)
{
    char tmp[32];
    struct pf_fmt t;
    pf_fmt_init(&t, tmp, sizeof tmp, -1);
    pf_fmt_pct(&t, num, den);
    pf_fmt_pad(f, tmp, t.len, width);
}
