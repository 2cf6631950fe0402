/*
 * test_sizeclass.c — the class table and the size -> class lookup: every
 * request up to PF_SMALL_MAX lands in the smallest class that holds it, the
 * table is 16-byte granular and strictly increasing with four classes per
 * power of two from 128 to 1024, sixteen to 8192 and eight above, no slot
 * wastes a quarter of itself above 64 bytes, a sixteenth from 1024 to 8192
 * nor an eighth above,
 * and every class's span holds at least eight slots within 1 MiB.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "sizeclass.h"
#include "span.h"

Test(sizeclass, every_size_gets_the_smallest_class_that_holds_it)
{
    unsigned prev = 0;
    for (size_t n = 0; n <= PF_SMALL_MAX; n++) {
        unsigned c = pf_size_class(n);
        if (c >= PF_NCLASSES)
            cr_assert_fail("size %zu: class %u out of range", n, c);
        if (pf_class_size[c] < n)
            cr_assert_fail("size %zu: class %u holds only %u bytes", n, c, pf_class_size[c]);
        if (c > 0 && pf_class_size[c - 1] >= n)
            cr_assert_fail("size %zu: class %u (%u bytes) but class %u (%u bytes) already holds it", n,
                     c, pf_class_size[c], c - 1, pf_class_size[c - 1]);
        if (c < prev)
            cr_assert_fail("size %zu: class %u below the class %u of a smaller size", n, c, prev);
        prev = c;
    }
    cr_assert_eq(pf_size_class(PF_SMALL_MAX), PF_NCLASSES - 1);
    cr_assert_eq(pf_class_size[PF_NCLASSES - 1], PF_SMALL_MAX);
}

Test(sizeclass, table_is_16_byte_granular_and_strictly_increasing)
{
    cr_assert_eq(pf_class_size[0], 16);
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        cr_assert_eq(pf_class_size[c] % 16, 0, "class %u: %u bytes", c, pf_class_size[c]);
        if (c > 0)
            cr_assert_gt(pf_class_size[c], pf_class_size[c - 1], "class %u", c);
    }
}

Test(sizeclass, steps_of_16_to_128_then_four_sixteen_and_eight_classes_per_power_of_two)
{
    for (unsigned c = 0; c < PF_NCLASSES && pf_class_size[c] <= 128; c++)
        cr_assert_eq(pf_class_size[c], 16 * (c + 1), "class %u", c);
    /* Above 128: each power-of-two interval (2^k, 2^(k+1)] holds exactly
     * four classes, spaced 2^k / 4 apart, up to 1024; sixteen, spaced
     * 2^k / 16 apart, up to 8192; eight, spaced 2^k / 8 apart, above. */
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        uint32_t s = pf_class_size[c];
        if (s <= 128)
            continue;
        uint32_t low = s - 1;
        unsigned k = 31u - (unsigned)__builtin_clz(low); /* 2^k < s <= 2^(k+1) */
        unsigned per = s > 8192 ? 8 : s > 1024 ? 16 : 4;
        uint32_t step = ((uint32_t)1 << k) / per;
        cr_assert_eq(s - pf_class_size[c - 1], step, "class %u (%u bytes): step %u, expected %u",
                     c, s, s - pf_class_size[c - 1], step);
        unsigned in_interval = 0;
        for (unsigned d = 0; d < PF_NCLASSES; d++)
            if (pf_class_size[d] > ((uint32_t)1 << k) && pf_class_size[d] <= ((uint32_t)2 << k))
                in_interval++;
        cr_assert_eq(in_interval, per, "interval (2^%u, 2^%u]: %u classes", k, k + 1, in_interval);
    }
}

Test(sizeclass, no_slot_wastes_a_quarter_of_itself_above_64_bytes_nor_a_sixteenth_of_a_page_or_so)
{
    for (size_t n = 65; n <= PF_SMALL_MAX; n++) {
        uint32_t slot = pf_class_size[pf_size_class(n)];
        if ((slot - n) * 4 >= slot)
            cr_assert_fail("size %zu: slot %u wastes %zu bytes", n, slot, slot - n);
        if (n > 1024 && (slot - n) * 8 >= slot)
            cr_assert_fail("size %zu: slot %u wastes %zu bytes, an eighth", n, slot, slot - n);
        if (n > 1024 && n <= 8192 && (slot - n) * 16 >= slot)
            cr_assert_fail("size %zu: slot %u wastes %zu bytes, a sixteenth", n, slot, slot - n);
    }
    /* Every waste fits the 16-bit slot state (state == 2 + waste). */
    for (size_t n = 1; n <= PF_SMALL_MAX; n++)
        if (pf_class_size[pf_size_class(n)] - n > 65535u - PF_SLOT_LIVE)
            cr_assert_fail("size %zu: waste does not fit the slot state", n);
}

Test(sizeclass, span_sizes_hold_eight_slots_within_a_megabyte)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        size_t b = pf_class_span_bytes(c);
        size_t slots = b / pf_class_size[c];
        cr_assert_eq(b % ((size_t)64 << 10), 0, "class %u: span of %zu bytes", c, b);
        cr_assert_eq(b % PF_CHUNK, 0, "class %u", c);
        cr_assert_geq(slots, 8, "class %u: %zu slots", c, slots);
        cr_assert_leq(b, (size_t)1 << 20, "class %u: span of %zu bytes", c, b);
        cr_assert_leq(b / PF_CHUNK, PF_SPAN_MAX_CHUNKS, "class %u", c);
        /* Slot metadata is sized for PF_MAX_SLOTS per span. */
        cr_assert_leq(slots, PF_MAX_SLOTS, "class %u: %zu slots", c, slots);
    }
}

Test(sizeclass, a_family_s_spans_start_at_one_slot_and_double_to_the_class_s_size)
{
    for (unsigned c = 0; c < PF_NCLASSES; c++) {
        size_t full = pf_class_span_bytes(c), slot = pf_class_size[c];
        size_t first = pf_class_next_span_bytes(c, 0), prev = first;
        cr_assert_eq(first % PF_CHUNK, 0, "class %u: first span of %zu bytes", c, first);
        cr_assert(first >= slot && first - slot < PF_CHUNK, "class %u: first span of %zu bytes, slot %zu", c, first,
                  slot);
        if (slot <= 8192)
            cr_assert_eq(first, full, "class %u: one chunk, as every span of it", c);
        for (uint64_t k = 1; k < 8; k++) {
            size_t b = pf_class_next_span_bytes(c, k);
            cr_assert(b == full || b == 2 * prev, "class %u, span %lu: %zu bytes after %zu", c, (unsigned long)k, b,
                      prev);
            prev = b;
        }
        cr_assert_eq(prev, full, "class %u: the class's size is reached", c);
        cr_assert_eq(pf_class_next_span_bytes(c, UINT64_MAX), full, "class %u", c);
    }
}
