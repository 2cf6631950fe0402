/*
 * sizeclass.h — request size -> class -> slot size.
 * Classes: 16..128 in steps of 16, four per power of two up to 1024,
 * sixteen per power of two up to 8192, then eight up to PF_SMALL_MAX, so no
 * slot wastes more than a quarter of itself, nor more than a sixteenth
 * from 1 KiB to 8 KiB (where programs allocate page-sized buffers plus a
 * header: 1032, 4104 or 4368 bytes, in thousands at a time) and an eighth
 * above. Every slot size is a multiple of 16, so every slot is 16-byte
 * aligned (spans start on a 64 KiB boundary).
 */
#ifndef PF_SIZECLASS_H
#define PF_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

#define PF_NCLASSES 100
#define PF_SMALL_MAX ((size_t)128 * 1024)

/* Classes from this one up (slots above 32 KiB) are cached by threads
 * only while few threads hold caches (tcache.h, pf_tcache_crowded): each
 * bin of them parks up to two slots, and with 64 threads that was tens of
 * MiB resident for a few live blocks. Past the limit their bins hold none
 * and their slots are taken and given back under the family lock. */
#define PF_CACHED_CLASSES 84
#define PF_CACHED_MAX ((size_t)32 * 1024)

/* slot size of each class; a const table */
PF_HIDDEN extern const uint32_t pf_class_size[PF_NCLASSES];
/* class for each (size + 15) / 16 with size <= 1024 */
PF_HIDDEN extern const uint8_t pf_class_small[65];

/* Class of a request of `n` bytes, n <= PF_SMALL_MAX. */
PF_INLINE unsigned pf_size_class(size_t n)
{
    if (PF_LIKELY(n <= 1024))
        return pf_class_small[(n + 15) >> 4];
    size_t m = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(m); /* 2^b <= m < 2^(b+1), b >= 10 */
    if (b < 13)
        return 20u + (b - 10u) * 16u + (unsigned)(m >> (b - 4)) - 16u;
    return 68u + (b - 13u) * 8u + (unsigned)(m >> (b - 3)) - 8u;
}

/* Slots of one class are carved from spans of this many bytes. */
PF_HIDDEN size_t pf_class_span_bytes(unsigned cls);
/* The span a family that holds `spans` spans of the class gets next: its
 * first, the chunks that hold one slot; each after it twice as big, up to
 * pf_class_span_bytes. A program that makes a block or two of each of many
 * sizes above 8 KiB (a Python starting up) takes a chunk or a few of
 * address space for each instead of room for eight; up to 8 KiB every span
 * is one chunk anyway. */
PF_HIDDEN size_t pf_class_next_span_bytes(unsigned cls, uint64_t spans);

#endif
