/*
 * sizeclass.c — the class table. pf_size_class() must agree with it:
 * pf_class_size[pf_size_class(n)] >= n, and the class below is < n.
 * (tests/unit/test_sizeclass.c checks every n up to PF_SMALL_MAX.)
 */
#include "sizeclass.h"

#include "pagemap.h" /* PF_CHUNK: spans are whole chunks */

#define Q(b) (b) * 5 / 4, (b) * 6 / 4, (b) * 7 / 4, (b) * 2
#define S(b) (b) * 17 / 16, (b) * 18 / 16, (b) * 19 / 16, (b) * 20 / 16, (b) * 21 / 16, (b) * 22 / 16, \
    (b) * 23 / 16, (b) * 24 / 16, (b) * 25 / 16, (b) * 26 / 16, (b) * 27 / 16, (b) * 28 / 16, (b) * 29 / 16, \
    (b) * 30 / 16, (b) * 31 / 16, (b) * 2
#define E(b) (b) * 9 / 8, (b) * 10 / 8, (b) * 11 / 8, (b) * 12 / 8, (b) * 13 / 8, (b) * 14 / 8, (b) * 15 / 8, (b) * 2

const uint32_t pf_class_size[PF_NCLASSES] = {
    16, 32, 48, 64, 80, 96, 112, 128,
    Q(128), Q(256), Q(512),
    S(1024), S(2048), S(4096),
    E(8192), E(16384), E(32768), E(65536),
};

const uint8_t pf_class_small[65] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7,                 /* 0..128 */
    8, 8, 9, 9, 10, 10, 11, 11,                /* ..256 */
    12, 12, 12, 12, 13, 13, 13, 13,            /* ..384 */
    14, 14, 14, 14, 15, 15, 15, 15,            /* ..512 */
    16, 16, 16, 16, 16, 16, 16, 16,            /* ..640 */
    17, 17, 17, 17, 17, 17, 17, 17,            /* ..768 */
    18, 18, 18, 18, 18, 18, 18, 18,            /* ..896 */
    19, 19, 19, 19, 19, 19, 19, 19,            /* ..1024 */
};

size_t pf_class_span_bytes(unsigned cls)
{
    /* At least one chunk, and room for at least eight slots. */
    size_t want = (size_t)pf_class_size[cls] * 8;
    if (want <= PF_CHUNK)
        return PF_CHUNK;
    return (want + PF_CHUNK - 1) & ~(PF_CHUNK - 1);
}

size_t pf_class_next_span_bytes(unsigned cls, uint64_t spans)
{
    size_t full = pf_class_span_bytes(cls);
    size_t b = ((size_t)pf_class_size[cls] + PF_CHUNK - 1) & ~(PF_CHUNK - 1);
    for (uint64_t k = 0; k < spans && b < full; k++)
        b *= 2;
    return b < full ? b : full;
}
