/*
 * fmt.h — a formatter that is safe inside a signal handler. It appends text
 * into a buffer the caller owns; with an fd it writes the buffer out through
 * pf_os_write_all whenever it fills, without one (fd == -1) it keeps what
 * fits and remembers that the rest was dropped. It never allocates, locks or
 * uses floating point, and its only syscalls are write(2) on a flush and, in
 * grow mode, mmap/mremap of its own buffer.
 * Invariant: len < cap, so buf[len] can always hold the terminating NUL.
 */
#ifndef PF_FMT_H
#define PF_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

struct pf_fmt {
    char *buf;     /* caller's storage */
    size_t cap;    /* bytes of buf; at most cap - 1 hold text */
    size_t len;    /* bytes of text now in buf */
    int fd;           /* where a full buffer goes, or -1 to keep everything in memory */
    int err;          /* errno of the first failed write; output stops after it */
    int truncated;    /* memory mode: 1 once some text did not fit */
    uint64_t written; /* bytes already handed to fd; total text == written + len */
    int grow;         /* 1: a full buffer moves to a bigger mapping instead of being cut or written out */
    int mapped;       /* 1: buf is a pfalloc mapping of cap bytes (grow mode moved it there) */
};

/* cap must be at least 2 (one byte of text plus the NUL). */
PF_HIDDEN void pf_fmt_init(struct pf_fmt *f, char *buf, size_t cap, int fd);
/* Grow mode: when buf fills, the text moves to a mapping of pfalloc's own,
   twice as big each time (mremap once buf is one; buf_mapped says whether the
   caller's buf already is), so a flush hands the whole text to fd in one
   write and memory mode keeps it all. Only when a mapping fails does it fall
   back to the plain behaviour (write out, or cut). The caller takes f->buf,
   f->cap and f->mapped back afterwards to reuse the grown buffer.
   Async-signal-safe: mmap and mremap are plain syscalls. */
PF_HIDDEN void pf_fmt_init_grow(struct pf_fmt *f, char *buf, size_t cap, int buf_mapped, int fd);
/* fd mode: writes out what is buffered. Returns 0, or -1 with errno set to the
   first write error seen. Memory mode: returns 0 and keeps the text. */
PF_HIDDEN int pf_fmt_flush(struct pf_fmt *f);
/* The text so far, NUL-terminated (memory mode: everything that fitted). */
PF_HIDDEN const char *pf_fmt_cstr(struct pf_fmt *f);

PF_HIDDEN void pf_fmt_mem(struct pf_fmt *f, const char *s, size_t n);
PF_HIDDEN void pf_fmt_str(struct pf_fmt *f, const char *s); /* NULL prints "(null)" */
/* A name in a line of text (a family's, a file's, a function's): as
   pf_fmt_str, but each control character (below 0x20, and 0x7f) is written
   as '?', so a name that holds a newline (a file may be called anything, a
   typed family anything the program passed) never splits a row. */
PF_HIDDEN void pf_fmt_name(struct pf_fmt *f, const char *s);
PF_HIDDEN void pf_fmt_char(struct pf_fmt *f, char c);
PF_HIDDEN void pf_fmt_repeat(struct pf_fmt *f, char c, size_t n);
PF_HIDDEN void pf_fmt_u64(struct pf_fmt *f, uint64_t v);
PF_HIDDEN void pf_fmt_i64(struct pf_fmt *f, int64_t v);
/* "0x" then lowercase hex digits, no leading zeros ("0x0" for zero). */
PF_HIDDEN void pf_fmt_hex(struct pf_fmt *f, uint64_t v);
/* The low 4 * ndigits bits of v as exactly ndigits lowercase hex digits, no
   "0x" (pf_fmt_xdigits(f, 0x5, 2) -> "05"); ndigits at most 16. */
PF_HIDDEN void pf_fmt_xdigits(struct pf_fmt *f, uint64_t v, unsigned ndigits);
/* v / 10^decimals with exactly `decimals` digits after the point
   (pf_fmt_fixed(f, 1234, 3) -> "1.234"); decimals at most 19. */
PF_HIDDEN void pf_fmt_fixed(struct pf_fmt *f, uint64_t v, unsigned decimals);
/* Bytes in human form: "0 B", "1023 B", "12.5 KiB", "3.0 MiB", ... "16.0 EiB";
   one decimal, rounded to nearest. */
PF_HIDDEN void pf_fmt_size(struct pf_fmt *f, uint64_t bytes);
/* num / den as a percentage with one decimal, rounded: "37.5%". den == 0
   prints "-". Ratios above 100% print as they are. */
PF_HIDDEN void pf_fmt_pct(struct pf_fmt *f, uint64_t num, uint64_t den);
/* s as a JSON string, quotes included. Control characters, '"' and '\\' are
   escaped; valid UTF-8 passes through, each byte of an invalid sequence
   becomes \ufffd so the output is always valid JSON. NULL prints null. */
PF_HIDDEN void pf_fmt_json_str(struct pf_fmt *f, const char *s);
/* s as the text of an XML 1.0 attribute value, between double quotes the
   caller writes: & < > " escaped, tab, newline and carriage return as
   character references (a parser would turn them into spaces), and what
   XML 1.0 cannot hold at all (other control characters, U+FFFE, U+FFFF)
   or what is not UTF-8 (a sequence cut short) as U+FFFD, so the document
   stays well-formed whatever the bytes. NULL writes nothing. */
PF_HIDDEN void pf_fmt_xml_attr(struct pf_fmt *f, const char *s);

/* Fixed-width fields. width > 0: right-aligned (padded on the left);
   width < 0: left-aligned (padded on the right). Text longer than the field
   is written whole. */
PF_HIDDEN void pf_fmt_pad(struct pf_fmt *f, const char *s, size_t n, int width);
PF_HIDDEN void pf_fmt_str_w(struct pf_fmt *f, const char *s, int width);
/* pf_fmt_pad and pf_fmt_str_w for names (see pf_fmt_name). */
PF_HIDDEN void pf_fmt_name_pad(struct pf_fmt *f, const char *s, size_t n, int width);
PF_HIDDEN void pf_fmt_name_w(struct pf_fmt *f, const char *s, int width);
PF_HIDDEN void pf_fmt_u64_w(struct pf_fmt *f, uint64_t v, int width);
PF_HIDDEN void pf_fmt_size_w(struct pf_fmt *f, uint64_t bytes, int width);
PF_HIDDEN void pf_fmt_pct_w(struct pf_fmt *f, uint64_t num, uint64_t den, int width);

#endif
