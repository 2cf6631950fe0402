/* pfgconv — a conversion module for iconv (INTERNAL to PFGCONV//, one byte
 * per character) whose set-up allocates through pfgconv_alloc and keeps the
 * block in the module's own data: once the C library unloads the module,
 * the block is lost. Built twice with the same layout: libpfgconv_a.so,
 * whose pfgconv_alloc has a frame of 2 MiB, and libpfgconv_b.so, whose
 * pfgconv_alloc has one of 8 bytes, so the two modules' calls to malloc
 * return to the same offset under different unwind rules. */
#include <gconv.h>
#include <stddef.h>

#ifndef PFGCONV_FRAME
#define PFGCONV_FRAME "0x200008"
#endif

/* void *pfgconv_alloc(size_t): malloc with a frame of PFGCONV_FRAME bytes
 * (sub and add with a 32-bit immediate whatever the size, so both builds
 * lay the code out alike). */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl pfgconv_alloc\n"
        ".type pfgconv_alloc, @function\n"
        "pfgconv_alloc:\n"
        ".cfi_startproc\n"
        ".byte 0x48, 0x81, 0xec\n"
        ".long " PFGCONV_FRAME "\n"
        ".cfi_adjust_cfa_offset " PFGCONV_FRAME "\n"
        "call malloc@PLT\n"
        ".byte 0x48, 0x81, 0xc4\n"
        ".long " PFGCONV_FRAME "\n"
        ".cfi_adjust_cfa_offset -" PFGCONV_FRAME "\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size pfgconv_alloc, . - pfgconv_alloc\n");

void *pfgconv_alloc(size_t n);
int gconv_init(struct __gconv_step *step);
void gconv_end(struct __gconv_step *step);
int gconv(struct __gconv_step *step, struct __gconv_step_data *data, const unsigned char **inptrp,
          const unsigned char *inend, unsigned char **outbufstart, size_t *irreversible, int do_flush,
          int consume_incomplete);

void *volatile pfgconv_kept;

int gconv_init(struct __gconv_step *step)
{
    pfgconv_kept = pfgconv_alloc(40);
    step->__min_needed_from = step->__max_needed_from = 4;
    step->__min_needed_to = step->__max_needed_to = 1;
    step->__stateful = 0;
    step->__data = NULL;
    return __GCONV_OK;
}

void gconv_end(struct __gconv_step *step)
{
    (void)step;
}

/* Characters below 0x80 as one byte each; anything else is refused. */
int gconv(struct __gconv_step *step, struct __gconv_step_data *data, const unsigned char **inptrp,
          const unsigned char *inend, unsigned char **outbufstart, size_t *irreversible, int do_flush,
          int consume_incomplete)
{
    (void)step;
    (void)irreversible;
    (void)consume_incomplete;
    if (do_flush)
        return __GCONV_EMPTY_INPUT;
    unsigned char *out = outbufstart ? *outbufstart : data->__outbuf;
    const unsigned char *in = *inptrp;
    int rc = __GCONV_EMPTY_INPUT;
    while (in + 4 <= inend) {
        if (out >= data->__outbufend) {
            rc = __GCONV_FULL_OUTPUT;
            break;
        }
        unsigned c = (unsigned)in[0] | (unsigned)in[1] << 8 | (unsigned)in[2] << 16 | (unsigned)in[3] << 24;
        if (c >= 0x80) {
            rc = __GCONV_ILLEGAL_INPUT;
            break;
        }
        *out++ = (unsigned char)c;
        in += 4;
    }
    *inptrp = in;
    if (outbufstart)
        *outbufstart = out;
    else
        data->__outbuf = out;
    return rc;
}
