/*
 * adaptc optimized kernels: helpers for the DSP extension (Armv7E-M: Cortex-M4, M7; also M55).
 *
 * Included after common.h by the *_dsp kernels (targets/kernels_dsp.py).  Contents:
 *   - SIMD primitives on packed words: four int8 bytes (b0 = bits 0..7 ... b3 = bits 24..31)
 *     or two int16 halves (lo = bits 0..15, hi = bits 16..31) held in an int32_t.  On a core
 *     with the DSP extension (__ARM_FEATURE_DSP) each is one instruction -- SXTB16, SXTAB16,
 *     SMLAD, SMLABB, SMLATT through <arm_acle.h>; the ROR #8 forms of SXTB16 / SXTAB16 by
 *     inline assembly, since gcc 12's ACLE has no __ror and does not fold a rotate into them.
 *     Anywhere else (the host build) a C99 definition computes the same bits, so the kernels
 *     build, run and are tested on the host as well.
 *   - adaptc_rq_*: TFLite's MultiplyByQuantizedMultiplier in about ten instructions.
 *   - the int8 x int16 matrix core of conv2d_s8_dsp.
 *
 * Implementation-defined behaviour relied upon: as common.h.
 */
#ifndef ADAPTC_KERNELS_DSP_H
#define ADAPTC_KERNELS_DSP_H

#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define ADAPTC_HAVE_DSP 1
#else
#define ADAPTC_HAVE_DSP 0
#endif

/* The assembly loops, which pin more registers than an unoptimized function leaves free (gcc -O0
 * keeps a frame pointer and spills): in optimized builds; a -O0 (debug) build takes their C form,
 * with the same results. */
#if ADAPTC_HAVE_DSP && defined(__OPTIMIZE__)
#define ADAPTC_DSP_ASM 1
#else
#define ADAPTC_DSP_ASM 0
#endif

/* A helper compiled as a function of its own, so that its loop gets the registers to itself
 * ("unused": no warning in a model that does not call it). */
#if defined(__GNUC__)
#define ADAPTC_NOINLINE __attribute__((noinline, unused))
#define ADAPTC_INLINE __attribute__((always_inline)) inline   /* a hot loop body, in each caller */
#else
#define ADAPTC_NOINLINE
#define ADAPTC_INLINE inline
#endif

/* ------------------------------------------------------------------------ */
/* Parameter structs                                                        */
/* ------------------------------------------------------------------------ */

/* conv2d_s8_dsp: the conv2d_s8 geometry; its channel blocks as adaptc_conv_rows reads them. */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t out_c;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t row_bytes;      /* a filter row in the blocks: k_w * in_c, or padded to whole groups */
    int32_t rq_mode;        /* 2: every channel pair requantized the fast way, 3: some, 0: none (conv2d_s8_dsp.c) */
    int32_t *scratch;       /* arena: four im2col columns (8 * groups words), 4 * out_c + 4 * groups bytes */
} conv2d_s8_dsp_params;

/* conv2d_s8_packed_dsp: as conv2d_s8_dsp, its filter rows codes of a packed format (common.h;
 * 2 .. 4 bits) decoded a row at a time -- `values`: each code's int8 value; `lut` (2 and 4
 * bits, else NULL): each byte's two or four values. */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t out_c;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t bits;
    const void *lut;
    const int8_t *values;
    int32_t rq_exact;       /* as conv2d_s8_dsp's */
    int32_t *scratch;       /* arena: four im2col columns (8 * groups words), a decoded row
                               (groups words), 4 * out_c + 4 * groups bytes */
} conv2d_s8_packed_dsp_params;

/* conv2d_s8_prefix_dsp: the conv2d_s8 geometry over a channel prefix of a stored filter (width
 * levels), its rows in input-channel blocks (conv2d_s8_prefix_dsp.c). */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t out_c;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t row_bytes;      /* one block: a filter row (k_w taps) as stored, k_w * in_c or padded to whole
                               groups (as conv2d_s8_dsp's); 0 with several blocks */
    int32_t row_words;      /* words from one stored row to the next */
    int32_t groups;         /* words of a row the layer reads (its blocks') */
    int32_t blocks;         /* input-channel blocks the layer reads; 0: one, read as conv2d_s8_dsp does */
    const int32_t *block_channels;  /* per block {first channel, channels} */
    int32_t rq_exact;       /* 1: adaptc_rq_exact (the accumulator bound not provable); 0: adaptc_rq */
    int32_t *scratch;       /* arena: four im2col columns (8 * groups words), 4 * groups bytes */
} conv2d_s8_prefix_dsp_params;

/* depthwise_conv2d_s8_dsp: the depthwise_conv2d_s8 geometry, depth_multiplier 1. */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t right_shifts;   /* 1: the fast requantization (proven exact); 0: adaptc_rq_exact */
    int8_t *scratch;        /* arena: the input-row ring and expanded filters (depthwise_conv2d_s8_dsp.c) */
} depthwise_conv2d_s8_dsp_params;

/* fully_connected_s8_packed_dsp: the fully_connected_s8 sizes (filter_offset 0), its rows packed
 * codes (as conv2d_s8_packed_dsp). */
typedef struct {
    int32_t batches;
    int32_t in_features;
    int32_t out_features;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t bits;
    const void *lut;
    const int8_t *values;
    int32_t *scratch;       /* arena: one column of the input (2 * groups words), a decoded row (groups words) */
} fully_connected_s8_packed_dsp_params;

/* ------------------------------------------------------------------------ */
/* Packed-word primitives                                                   */
/* ------------------------------------------------------------------------ */

/* Four bytes from memory as one word (any alignment; one LDR on a Cortex-M). */
static inline int32_t adaptc_read_s8x4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Four bytes to memory as one word (any alignment; one STR on a Cortex-M). */
static inline void adaptc_write_u8x4(int8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

#if ADAPTC_HAVE_DSP

/* (b0, b2) sign-extended to (lo, hi). */
static inline int32_t adaptc_sxtb16(int32_t x)
{
    return (int32_t)__sxtb16(x);
}

/* (b1, b3) sign-extended to (lo, hi). */
static inline int32_t adaptc_sxtb16_ror8(int32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* (a.lo + b0, a.hi + b2), each half modulo 2^16. */
static inline int32_t adaptc_sxtab16(int32_t a, int32_t x)
{
    return (int32_t)__sxtab16(a, x);
}

/* (a.lo + b1, a.hi + b3), each half modulo 2^16. */
static inline int32_t adaptc_sxtab16_ror8(int32_t a, int32_t x)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* acc + a.lo * b.lo + a.hi * b.hi (modulo 2^32). */
static inline int32_t adaptc_smlad(int32_t a, int32_t b, int32_t acc)
{
    return __smlad(a, b, acc);
}

/* acc + a.lo * b.lo */
static inline int32_t adaptc_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return __smlabb(a, b, acc);
}

/* acc + a.hi * b.hi */
static inline int32_t adaptc_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return __smlatt(a, b, acc);
}

#else /* portable C99 definitions with the same results */

static inline int32_t adaptc_byte(int32_t x, int32_t k)
{
    return (int32_t)((uint32_t)x << (24 - 8 * k)) >> 24;
}

static inline int32_t adaptc_lo16(int32_t x)
{
    return (int32_t)((uint32_t)x << 16) >> 16;
}

static inline int32_t adaptc_hi16(int32_t x)
{
    return x >> 16;
}

static inline int32_t adaptc_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

static inline int32_t adaptc_sxtb16(int32_t x)
{
    return adaptc_pack16(adaptc_byte(x, 0), adaptc_byte(x, 2));
}

static inline int32_t adaptc_sxtb16_ror8(int32_t x)
{
    return adaptc_pack16(adaptc_byte(x, 1), adaptc_byte(x, 3));
}

static inline int32_t adaptc_sxtab16(int32_t a, int32_t x)
{
    return adaptc_pack16(adaptc_lo16(a) + adaptc_byte(x, 0), adaptc_hi16(a) + adaptc_byte(x, 2));
}

static inline int32_t adaptc_sxtab16_ror8(int32_t a, int32_t x)
{
    return adaptc_pack16(adaptc_lo16(a) + adaptc_byte(x, 1), adaptc_hi16(a) + adaptc_byte(x, 3));
}

static inline int32_t adaptc_smlad(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(adaptc_lo16(a) * adaptc_lo16(b))
                     + (uint32_t)(adaptc_hi16(a) * adaptc_hi16(b)));
}

static inline int32_t adaptc_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(adaptc_lo16(a) * adaptc_lo16(b)));
}

static inline int32_t adaptc_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(adaptc_hi16(a) * adaptc_hi16(b)));
}

#endif /* ADAPTC_HAVE_DSP */

/* ------------------------------------------------------------------------ */
/* Requantization                                                           */
/* ------------------------------------------------------------------------ */

/* floor((a * b + 2^31) / 2^32): SMMULR */
static inline int32_t adaptc_smmulr(int32_t a, int32_t b)
{
#if ADAPTC_HAVE_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* Signed saturation to int8: SSAT #8 */
static inline int32_t adaptc_ssat8(int32_t x)
{
#if ADAPTC_HAVE_DSP
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x));   /* gcc 12's __ssat trips -Wsign-conversion */
    return r;
#else
    return adaptc_clamp_i32(x, -128, 127);
#endif
}

/* adaptc_mbqm(acc, mult, shift) for 0 <= mult < 2^31 and |acc << max(shift, 0)| < 2^30:
 *   x   = acc << max(shift, 0)
 *   s   = floor((x * mult + 2^30) / 2^31)    = adaptc_srdhm(x, mult): gemmlowp's nudge-then-
 *                                             truncate is this floor for either sign, and it
 *                                             cannot saturate (mult > INT32_MIN).  Computed as
 *                                             SMMULR(2 * x, mult), exact since |2x| < 2^31.
 *   out = (s + round + (negmask & (s >> 31))) >> right_shift
 *         round = 2^(right_shift - 1), negmask = -1 when right_shift > 0; both 0 otherwise
 *                                           = adaptc_rdbpot(s, right_shift): to nearest, ties
 *                                             away from zero (|s| < 2^30: no overflow).
 * Seven instructions.  The kernel builder proves the bound on |acc| for every channel from
 * the weights and the bias at compile time (targets/kernels_dsp.py, requant_is_exact).  The
 * per-channel constants come from TFLite's (mult, shift), once per output channel and block
 * of pixels, so flash holds the same 8 bytes per channel as for the reference kernels. */
typedef struct {
    int32_t mult;
    int32_t left_shift;     /* max(shift, 0) + 1 */
    int32_t right_shift;
    int32_t round;
    int32_t negmask;
} adaptc_rq_params;

static inline adaptc_rq_params adaptc_rq_of(int32_t mult, int32_t shift)
{
    adaptc_rq_params q;
    q.mult = mult;
    q.left_shift = (shift > 0 ? shift : 0) + 1;
    q.right_shift = shift > 0 ? 0 : -shift;
    q.round = (int32_t)(((uint32_t)1 << q.right_shift) >> 1);
    q.negmask = -(int32_t)(q.right_shift > 0);
    return q;
}

static inline int32_t adaptc_rq_apply(int32_t acc, adaptc_rq_params q)
{
    const int32_t s = adaptc_smmulr((int32_t)((uint32_t)acc << q.left_shift), q.mult);
    return (s + q.round + (q.negmask & (s >> 31))) >> q.right_shift;
}

/* adaptc_mbqm(acc, mult, shift) for shift < 0 (right_shift = -shift >= 1) and |acc| < 2^30:
 * adaptc_rq_apply with left_shift 0 and negmask -1 folded in -- five instructions and the
 * rounding constant. */
static inline int32_t adaptc_rq_right(int32_t acc, int32_t mult, int32_t right_shift)
{
    const int32_t s = adaptc_smmulr((int32_t)((uint32_t)acc << 1), mult);
    return (s + (s >> 31) + (int32_t)(((uint32_t)1 << right_shift) >> 1)) >> right_shift;
}

/* adaptc_rq_right with its rounding constant 2^(right_shift - 1) given */
static inline int32_t adaptc_rq_right_rounded(int32_t acc, int32_t mult, int32_t right_shift, int32_t round)
{
    const int32_t s = adaptc_smmulr((int32_t)((uint32_t)acc << 1), mult);
    return (s + (s >> 31) + round) >> right_shift;
}

/* adaptc_mbqm for |acc << max(shift, 0)| < 2^30, through the cheaper form when it applies */
static inline int32_t adaptc_rq(int32_t acc, int32_t mult, int32_t shift)
{
    return shift < 0 ? adaptc_rq_right(acc, mult, -shift) : adaptc_rq_apply(acc, adaptc_rq_of(mult, shift));
}

/* Records of four int32 per channel, {bias, mult, shift, round}: round = 2^(-shift - 1) for
 * shift < 0, else 0 -- the rounding constant of adaptc_rq_right, precomputed. */
static inline int32_t adaptc_rq_record(int32_t acc, const int32_t *record)
{
    if (record[2] < 0) {
        const int32_t s = adaptc_smmulr((int32_t)((uint32_t)acc << 1), record[1]);
        return (s + (s >> 31) + record[3]) >> -record[2];
    }
    return adaptc_rq_apply(acc, adaptc_rq_of(record[1], record[2]));
}

/* adaptc_mbqm(acc, mult, shift) for ANY accumulator (0 <= mult < 2^31, -31 <= shift <= 30): the
 * exact general path of a layer whose accumulator bound requant_is_exact cannot prove.
 *   s   = floor((x * mult + 2^30) / 2^31), x = acc << max(shift, 0) (wrapping, as adaptc_mbqm)
 *       = gemmlowp's nudge-then-truncate SRDHM for either sign: one SMLAL into the nudge;
 *   out = (s >> r) + ((s & mask) > (mask >> 1) + (s < 0)), r = max(-shift, 0), mask = 2^r - 1
 *       = adaptc_rdbpot(s, r), which cannot overflow for any s.
 * About 14 instructions on a Cortex-M4, per output (not per MAC). */
static inline int32_t adaptc_rq_exact(int32_t acc, int32_t mult, int32_t shift)
{
    const int32_t x = (int32_t)((uint32_t)acc << (shift > 0 ? shift : 0));
    const int32_t s = (int32_t)(((int64_t)x * mult + ((int64_t)1 << 30)) >> 31);
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    return (s >> right) + ((s & mask) > (mask >> 1) + (int32_t)((uint32_t)s >> 31));
}

/* transpose_conv_s8_dsp: an output of a record {bias, mult, shift, round}'s accumulator
 * (adaptc_rq_record's records) before its activation's clamp, requantized by `mode` -- 2:
 * adaptc_rq_record's shift < 0 form (every channel's shift is < 0), 1: adaptc_rq_record (both
 * proven exact by the builder: |acc << max(shift, 0)| < 2^30), 0: adaptc_mbqm --,
 * + output_offset, saturated to int8 (SSAT). */
static inline int8_t adaptc_tconv_out(int32_t acc, const int32_t *record, int32_t mode, int32_t output_offset)
{
    int32_t v;
    if (mode == 2) {
        const int32_t s = adaptc_smmulr((int32_t)((uint32_t)acc << 1), record[1]);
        v = (s + (s >> 31) + record[3]) >> -record[2];
    } else {
        v = mode ? adaptc_rq_record(acc, record) : adaptc_mbqm(acc, record[1], record[2]);
    }
    return (int8_t)adaptc_ssat8(v + output_offset);
}

/* One weight word of channel ACC's (assembly operands of adaptc_tconv_x4): ww = the word, wa
 * its halves; two SMLAD against the column's x0 = (x0, x2), x1 = (x1, x3). */
#define ADAPTC_TCONV_CHANNEL(ACC) \
    "ldr    %[ww], [%[w]], #4\n\t" \
    "sxtb16 %[wa], %[ww]\n\t" \
    "smlad  %[" ACC "], %[wa], %[x0], %[" ACC "]\n\t" \
    "sxtb16 %[wa], %[ww], ror #8\n\t" \
    "smlad  %[" ACC "], %[wa], %[x1], %[" ACC "]\n\t"

/* transpose_conv_s8_dsp: four output channels' sums over one output pixel's taps,
 * acc[k] += <column, weights of channel k> for each of the n taps -- the column at word
 * cols + taps[2 t], `groups` pairs of int16 words (dsp.h's column layout), the weights at word
 * w + 4 taps[2 t + 1], per group one word for each of the four channels.  A DSP core runs a
 * group in assembly: 21 instructions per 16 MACs (an LDRD of the column's two words, 4 LDR,
 * 8 SXTB16, 8 SMLAD), and a compare and branch; a function of its own, so that the four sums
 * stay in registers (inlined, gcc 12 spills them and spends twice as many). */
static ADAPTC_NOINLINE void adaptc_tconv_x4(const int32_t *cols, const int32_t *taps, int32_t n, const int32_t *w,
                                            int32_t groups, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int32_t *const taps_end = taps + 2 * n;
    for (; taps != taps_end; taps += 2) {
        const int32_t *x = cols + taps[0];
        const int32_t *wt = w + 4 * taps[1];
        const int32_t *const end = x + 2 * groups;
#if ADAPTC_DSP_ASM
        int32_t x0, x1, ww, wa;
        __asm__ volatile(
                "1:\n\t"
                "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
                ADAPTC_TCONV_CHANNEL("a0")
                ADAPTC_TCONV_CHANNEL("a1")
                ADAPTC_TCONV_CHANNEL("a2")
                ADAPTC_TCONV_CHANNEL("a3")
                "cmp    %[x], %[end]\n\t"
                "bne    1b"
                : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [x] "+&r"(x), [w] "+&r"(wt),
                  [x0] "=&r"(x0), [x1] "=&r"(x1), [ww] "=&r"(ww), [wa] "=&r"(wa)
                : [end] "r"(end)
                : "cc", "memory");
#else
        while (x != end) {
            a0 = adaptc_smlad(adaptc_sxtb16_ror8(wt[0]), x[1], adaptc_smlad(adaptc_sxtb16(wt[0]), x[0], a0));
            a1 = adaptc_smlad(adaptc_sxtb16_ror8(wt[1]), x[1], adaptc_smlad(adaptc_sxtb16(wt[1]), x[0], a1));
            a2 = adaptc_smlad(adaptc_sxtb16_ror8(wt[2]), x[1], adaptc_smlad(adaptc_sxtb16(wt[2]), x[0], a2));
            a3 = adaptc_smlad(adaptc_sxtb16_ror8(wt[3]), x[1], adaptc_smlad(adaptc_sxtb16(wt[3]), x[0], a3));
            x += 2;
            wt += 4;
        }
#endif
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* out[i] = clamp(out[i], act_min, act_max): nothing to do for [-128, 127] */
static inline void adaptc_clamp_s8(int8_t *out, int32_t size, int32_t act_min, int32_t act_max)
{
    int32_t i;
    if (act_min > -128 || act_max < 127) {
        for (i = 0; i < size; ++i) {
            out[i] = (int8_t)adaptc_clamp_i32(out[i], act_min, act_max);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* int8 weights x int16 columns                                             */
/* ------------------------------------------------------------------------ */

/* Weights: a row of `depth` int8 values packed four to an int32_t word (b0 first), zero-padded
 * to groups = ceil(depth / 4) words.
 * Columns: `depth` values (x + input_offset) as int16, two per word: group g of four values is
 * the two words SXTAB16 / SXTAB16 ROR #8 make of four int8 bytes, (x0, x2) and (x1, x3) -- the
 * halves SXTB16 / SXTB16 ROR #8 make of a weight word, so that SMLAD pairs them up.  Four
 * columns are interleaved group by group, [c0 g0 (2 words)][c1 g0][c2 g0][c3 g0][c0 g1]...,
 * 8 * groups words; the tail of a last, partial group is 0. */

/* (offset, offset) as two int16 halves */
static inline int32_t adaptc_offset2(int32_t offset)
{
    return (int32_t)(((uint32_t)offset << 16) | ((uint32_t)offset & 0xFFFFu));
}

/* Column helpers: `col` points at a column's group g, groups `stride` words apart (8 for
 * four interleaved columns: cols + 8 g + 2 c); each returns the pointer to the group after the
 * last one written. */

/* n groups from 4 n int8 values at src (any alignment).  A DSP core converts two groups an
 * iteration in assembly: 12 instructions per eight values (2 LDR, 4 SXTAB16, 2 STRD, 2 ADD and
 * the loop's SUBS and BNE) where gcc 12 spends 18. */
static inline int32_t *adaptc_col_convert(int32_t *col, int32_t stride, const int8_t *src, int32_t n,
                                          int32_t offset2)
{
    const int8_t *end;
#if ADAPTC_DSP_ASM
    const int32_t step = 4 * stride;                  /* bytes from a group to the next */
    int32_t pairs = n >> 1, t0, t1, c0, c1;
    if (pairs > 0) {
        __asm__ volatile(
                "1:\n\t"
                "ldr    %[t0], [%[src]], #4\n\t"
                "ldr    %[t1], [%[src]], #4\n\t"
                "sxtab16 %[c0], %[off], %[t0]\n\t"
                "sxtab16 %[c1], %[off], %[t0], ror #8\n\t"
                "strd   %[c0], %[c1], [%[col]]\n\t"
                "add    %[col], %[col], %[step]\n\t"
                "sxtab16 %[c0], %[off], %[t1]\n\t"
                "sxtab16 %[c1], %[off], %[t1], ror #8\n\t"
                "strd   %[c0], %[c1], [%[col]]\n\t"
                "add    %[col], %[col], %[step]\n\t"
                "subs   %[pairs], %[pairs], #1\n\t"
                "bne    1b"
                : [col] "+&r"(col), [src] "+&r"(src), [pairs] "+&r"(pairs), [t0] "=&r"(t0), [t1] "=&r"(t1),
                  [c0] "=&r"(c0), [c1] "=&r"(c1)
                : [off] "r"(offset2), [step] "r"(step)
                : "cc", "memory");
    }
    n &= 1;
#endif
    end = src + 4 * n;
    while (src != end) {
        const int32_t word = adaptc_read_s8x4(src);
        col[0] = adaptc_sxtab16(offset2, word);
        col[1] = adaptc_sxtab16_ror8(offset2, word);
        col += stride;
        src += 4;
    }
    return col;
}

/* n groups of 0 (padding) */
static inline int32_t *adaptc_col_clear(int32_t *col, int32_t stride, int32_t n)
{
    int32_t g;
    for (g = 0; g < n; ++g) {
        col[0] = 0;
        col[1] = 0;
        col += stride;
    }
    return col;
}

/* A whole column from `depth` int8 values at src; the tail of a partial last group is 0. */
static inline void adaptc_col_from_s8(int32_t *col, int32_t stride, const int8_t *src, int32_t depth,
                                      int32_t input_offset)
{
    const int32_t whole = depth / 4, left = depth - 4 * whole;
    col = adaptc_col_convert(col, stride, src, whole, adaptc_offset2(input_offset));
    if (left > 0) {                                   /* 1..3 values */
        const int8_t *const t = src + 4 * whole;
        const int32_t x0 = t[0] + input_offset;
        const int32_t x1 = left > 1 ? t[1] + input_offset : 0;
        const int32_t x2 = left > 2 ? t[2] + input_offset : 0;
        col[0] = (int32_t)(((uint32_t)x2 << 16) | ((uint32_t)x0 & 0xFFFFu));
        col[1] = (int32_t)((uint32_t)x1 & 0xFFFFu);
    }
}

/* Geometry of a convolution, for adaptc_im2col_x4 (and where it stands: the next pixel). */
typedef struct {
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t row_bytes;      /* a filter row as the weights lay it out: k_w * in_c, or rounded up
                               to whole groups (dil_w 1: padded rows, conv2d.py) */
    int32_t batch;
    int32_t out_y;
    int32_t out_x;
} adaptc_conv_geometry;

/* The output pixel after g's: x, then y, then the batch. */
static inline void adaptc_next_pixel(adaptc_conv_geometry *g)
{
    if (++g->out_x == g->out_w) {
        g->out_x = 0;
        if (++g->out_y == g->out_h) {
            g->out_y = 0;
            ++g->batch;
        }
    }
}

#if ADAPTC_DSP_ASM
/* Two groups of eight int8 values at src (operands of adaptc_col_rows' assembly) */
#define ADAPTC_COL_PAIR \
    "ldr    %[t0], [%[src]], #4\n\t" \
    "ldr    %[t1], [%[src]], #4\n\t" \
    "sxtab16 %[c0], %[off], %[t0]\n\t" \
    "sxtab16 %[c1], %[off], %[t0], ror #8\n\t" \
    "strd   %[c0], %[c1], [%[col]], #32\n\t" \
    "sxtab16 %[c0], %[off], %[t1]\n\t" \
    "sxtab16 %[c1], %[off], %[t1], ror #8\n\t" \
    "strd   %[c0], %[c1], [%[col]], #32\n\t"
#endif

/* k_h filter rows of `row_groups` groups from src, rows `src_step` bytes apart (any alignment),
 * into a column of four interleaved ones: a receptive field inside the input, its filter rows
 * whole groups.  A DSP core converts in assembly, four groups an iteration where row_groups
 * allows (18 instructions per sixteen values), else two (10 per eight) or one (6 per four). */
static inline void adaptc_col_rows(int32_t *col, const int8_t *src, int32_t rows, int32_t row_groups,
                                   int32_t src_step, int32_t offset2)
{
#if ADAPTC_DSP_ASM
    const int32_t skip = src_step - 4 * row_groups;
    int32_t cnt, t0, t1, c0, c1;
    if ((row_groups & 3) == 0) {
        __asm__ volatile(
                "1:\n\t"
                "mov    %[cnt], %[n]\n"
                "2:\n\t"
                ADAPTC_COL_PAIR
                ADAPTC_COL_PAIR
                "subs   %[cnt], %[cnt], #1\n\t"
                "bne    2b\n\t"
                "add    %[src], %[src], %[skip]\n\t"
                "subs   %[rows], %[rows], #1\n\t"
                "bne    1b"
                : [col] "+&r"(col), [src] "+&r"(src), [rows] "+&r"(rows), [cnt] "=&r"(cnt), [t0] "=&r"(t0),
                  [t1] "=&r"(t1), [c0] "=&r"(c0), [c1] "=&r"(c1)
                : [n] "r"(row_groups >> 2), [off] "r"(offset2), [skip] "r"(skip)
                : "cc", "memory");
    } else if ((row_groups & 1) == 0) {
        __asm__ volatile(
                "1:\n\t"
                "mov    %[cnt], %[n]\n"
                "2:\n\t"
                ADAPTC_COL_PAIR
                "subs   %[cnt], %[cnt], #1\n\t"
                "bne    2b\n\t"
                "add    %[src], %[src], %[skip]\n\t"
                "subs   %[rows], %[rows], #1\n\t"
                "bne    1b"
                : [col] "+&r"(col), [src] "+&r"(src), [rows] "+&r"(rows), [cnt] "=&r"(cnt), [t0] "=&r"(t0),
                  [t1] "=&r"(t1), [c0] "=&r"(c0), [c1] "=&r"(c1)
                : [n] "r"(row_groups >> 1), [off] "r"(offset2), [skip] "r"(skip)
                : "cc", "memory");
    } else {
        __asm__ volatile(
                "1:\n\t"
                "mov    %[cnt], %[n]\n"
                "2:\n\t"
                "ldr    %[t0], [%[src]], #4\n\t"
                "sxtab16 %[c0], %[off], %[t0]\n\t"
                "sxtab16 %[c1], %[off], %[t0], ror #8\n\t"
                "strd   %[c0], %[c1], [%[col]], #32\n\t"
                "subs   %[cnt], %[cnt], #1\n\t"
                "bne    2b\n\t"
                "add    %[src], %[src], %[skip]\n\t"
                "subs   %[rows], %[rows], #1\n\t"
                "bne    1b"
                : [col] "+&r"(col), [src] "+&r"(src), [rows] "+&r"(rows), [cnt] "=&r"(cnt), [t0] "=&r"(t0),
                  [c0] "=&r"(c0), [c1] "=&r"(c1)
                : [n] "r"(row_groups), [off] "r"(offset2), [skip] "r"(skip)
                : "cc", "memory");
        (void)t1;
    }
#else
    for (; rows > 0; --rows) {
        col = adaptc_col_convert(col, 8, src, row_groups, offset2);
        src += src_step;
    }
#endif
}

/* n bytes from src to dst (any alignment): a word at a time, then the last 0..3 bytes (no byte
 * loop: gcc would call memcpy for it) */
static inline void adaptc_copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        adaptc_write_u8x4(dst, (uint32_t)adaptc_read_s8x4(src));
    }
    if (n & 2) {
        dst[0] = src[0];
        dst[1] = src[1];
        dst += 2;
        src += 2;
    }
    if (n & 1) {
        dst[0] = src[0];
    }
}

/* n bytes of the low byte of v4 (the byte in all four) at dst: a word at a time, then 0..3 bytes */
static inline void adaptc_fill_bytes(int8_t *dst, uint32_t v4, int32_t n)
{
    for (; n >= 4; n -= 4, dst += 4) {
        adaptc_write_u8x4(dst, v4);
    }
    if (n & 2) {
        dst[0] = (int8_t)v4;
        dst[1] = (int8_t)v4;
        dst += 2;
    }
    if (n & 1) {
        dst[0] = (int8_t)v4;
    }
}

/* The receptive field of the output pixel with input origin (in_y0, in_x0) in `image` as k_h
 * filter rows of g->row_bytes bytes at dst (k_w * in_c values, then the zero point up to a
 * padded row's end), the zero point at padded taps: each row filled with the zero point, then
 * its taps inside copied over -- for dil_w 1 one run of bytes, else tap by tap. */
static ADAPTC_NOINLINE void adaptc_gather_field(const adaptc_conv_geometry *g, const int8_t *image, int32_t in_y0,
                                                int32_t in_x0, int8_t *dst)
{
    const int32_t in_w = g->in_w, in_c = g->in_c, k_w = g->k_w, dil_w = g->dil_w, row_bytes = g->row_bytes;
    const uint32_t zp4 = 0x01010101u * (uint8_t)(int8_t)-g->input_offset;
    const int32_t fx0 = in_x0 < 0 ? (-in_x0 < k_w ? -in_x0 : k_w) : 0;   /* dil_w 1: taps fx0 .. fx1 - 1 inside */
    const int32_t fx1 = in_w - in_x0 < k_w ? (in_w - in_x0 > fx0 ? in_w - in_x0 : fx0) : k_w;
    int32_t filter_y, filter_x;
    for (filter_y = 0; filter_y < g->k_h; ++filter_y, dst += row_bytes) {
        const int32_t in_y = in_y0 + g->dil_h * filter_y;
        const int8_t *row;
        adaptc_fill_bytes(dst, zp4, row_bytes);
        if (in_y < 0 || in_y >= g->in_h) {
            continue;
        }
        row = image + in_y * in_w * in_c;
        if (dil_w == 1) {
            adaptc_copy_bytes(dst + fx0 * in_c, row + (in_x0 + fx0) * in_c, (fx1 - fx0) * in_c);
            continue;
        }
        for (filter_x = 0; filter_x < k_w; ++filter_x) {
            const int32_t in_x = in_x0 + dil_w * filter_x;
            if (in_x >= 0 && in_x < in_w) {
                adaptc_copy_bytes(dst + filter_x * in_c, row + in_x * in_c, in_c);
            }
        }
    }
}

/* The im2col columns (four interleaved, dsp.h layout) of the next n <= 4 output pixels, the last
 * one repeated in the spare columns, then the position moved on by n pixels: each receptive
 * field as (input + input_offset) in int16, 0 at padded taps.  Filter rows of whole groups
 * (row_bytes a multiple of 4, dil_w 1) convert straight from the input where the row's bytes
 * lie inside the input row -- a padded row's bytes past its taps too, which meet zero weights:
 * the whole field at once where every row does (adaptc_col_rows), else row by row, padded rows
 * cleared; taps one by one when in_c is a multiple of 4; otherwise the field is gathered as
 * bytes (adaptc_gather_field, `gather`: 4 * groups bytes) and then converted. */
static inline void adaptc_im2col_x4(adaptc_conv_geometry *g, const int8_t *input, int32_t n, int32_t *cols,
                                    int8_t *gather)
{
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c;
    const int32_t k_h = g->k_h, k_w = g->k_w, dil_h = g->dil_h, dil_w = g->dil_w;
    const int32_t input_offset = g->input_offset, row_bytes = g->row_bytes;
    const int32_t depth = k_h * row_bytes;
    const int32_t row_groups = row_bytes / 4;       /* a filter row, when it is whole groups */
    const int32_t whole_rows = dil_w == 1 && (row_bytes & 3) == 0;
    const int32_t offset2 = adaptc_offset2(input_offset);
    int32_t c;
    for (c = 0; c < 4; ++c) {
        const int32_t in_y_origin = g->out_y * g->stride_h - g->pad_top;
        const int32_t in_x_origin = g->out_x * g->stride_w - g->pad_left;
        const int8_t *const image = input + g->batch * in_h * in_w * in_c;
        const int32_t rows_inside = whole_rows && in_x_origin >= 0 && in_x_origin * in_c + row_bytes <= in_w * in_c;
        const int32_t y_inside = in_y_origin >= 0 && in_y_origin + (k_h - 1) * dil_h < in_h;
        int32_t *col = cols + 2 * c;
        int32_t filter_y, filter_x;
        if (rows_inside && y_inside) {
            adaptc_col_rows(col, image + (in_y_origin * in_w + in_x_origin) * in_c, k_h, row_groups,
                            dil_h * in_w * in_c, offset2);
        } else if (rows_inside || (in_c & 3) == 0) {
            for (filter_y = 0; filter_y < k_h; ++filter_y) {
                const int32_t in_y = in_y_origin + dil_h * filter_y;
                if (in_y < 0 || in_y >= in_h) {
                    col = adaptc_col_clear(col, 8, row_groups);
                } else if (rows_inside) {
                    col = adaptc_col_convert(col, 8, image + (in_y * in_w + in_x_origin) * in_c, row_groups, offset2);
                } else {
                    for (filter_x = 0; filter_x < k_w; ++filter_x) {
                        const int32_t in_x = in_x_origin + dil_w * filter_x;
                        col = in_x >= 0 && in_x < in_w
                            ? adaptc_col_convert(col, 8, image + (in_y * in_w + in_x) * in_c, in_c / 4, offset2)
                            : adaptc_col_clear(col, 8, in_c / 4);
                    }
                }
            }
        } else {
            adaptc_gather_field(g, image, in_y_origin, in_x_origin, gather);
            adaptc_col_from_s8(col, 8, gather, depth, input_offset);
        }
        if (c + 1 < n) {                              /* spare columns repeat the last pixel */
            adaptc_next_pixel(g);
        }
    }
    adaptc_next_pixel(g);
}

/* One group of four weights against the four columns (assembly operands of adaptc_row_x4). */
#define ADAPTC_DOT_GROUP \
    "ldr    %[wt], [%[w]], #4\n\t" \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t" \
    "sxtb16 %[wa], %[wt]\n\t" \
    "sxtb16 %[wb], %[wt], ror #8\n\t" \
    "smlad  %[a0], %[wa], %[x0], %[a0]\n\t" \
    "smlad  %[a0], %[wb], %[x1], %[a0]\n\t" \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t" \
    "smlad  %[a1], %[wa], %[x0], %[a1]\n\t" \
    "smlad  %[a1], %[wb], %[x1], %[a1]\n\t" \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t" \
    "smlad  %[a2], %[wa], %[x0], %[a2]\n\t" \
    "smlad  %[a2], %[wb], %[x1], %[a2]\n\t" \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t" \
    "smlad  %[a3], %[wa], %[x0], %[a3]\n\t" \
    "smlad  %[a3], %[wb], %[x1], %[a3]\n\t"

/* acc[c] += <row, column c> for one row of weights (w: `groups` words) and the four interleaved
 * columns c from `x` to `cols_end` (groups >= 1): on a DSP core the loop of adaptc_row_x4's
 * assembly without its requantization (15 instructions per 16 MACs and a compare and branch per
 * two groups). */
static ADAPTC_INLINE void adaptc_dot_x4(const int32_t *w, const int32_t *x, const int32_t *cols_end, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if ADAPTC_DSP_ASM
    int32_t wt, wa, wb, x0, x1;
    __asm__ volatile(
            "sub    %[wt], %[end], %[x]\n\t"
            "tst    %[wt], #32\n\t"
            "beq    2f\n\t"
            ADAPTC_DOT_GROUP
            "cmp    %[x], %[end]\n\t"
            "beq    3f\n"
            "2:\n\t"
            ADAPTC_DOT_GROUP
            ADAPTC_DOT_GROUP
            "cmp    %[x], %[end]\n\t"
            "bne    2b\n"
            "3:"
            : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [w] "+&r"(w), [x] "+&r"(x),
              [wt] "=&r"(wt), [wa] "=&r"(wa), [wb] "=&r"(wb), [x0] "=&r"(x0), [x1] "=&r"(x1)
            : [end] "r"(cols_end)
            : "cc", "memory");
#else
    do {
        const int32_t wa = adaptc_sxtb16(*w), wb = adaptc_sxtb16_ror8(*w);
        a0 = adaptc_smlad(wb, x[1], adaptc_smlad(wa, x[0], a0));
        a1 = adaptc_smlad(wb, x[3], adaptc_smlad(wa, x[2], a1));
        a2 = adaptc_smlad(wb, x[5], adaptc_smlad(wa, x[4], a2));
        a3 = adaptc_smlad(wb, x[7], adaptc_smlad(wa, x[6], a3));
        ++w;
        x += 8;
    } while (x != cols_end);
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* out[c * stride] = adaptc_mbqm(bias + <row, column c>, mult, shift) + output_offset,
 * saturated to int8, for the four columns c (from `cols` to `cols_end`, groups >= 1) and one row
 * of weights (w: `groups` words) with its record.  `exact` 0: the builder proved the layer's
 * accumulators small enough for adaptc_rq_apply (simd.requant_is_exact); a DSP core then runs a
 * channel with shift < 0 (every channel of a typical layer) in the assembly below: 16 MACs take
 * 15 instructions -- 5 loads, 2 SXTB16, 8 SMLAD -- plus a compare and branch per two groups
 * (gcc 12 spends 22 per group, reloading operands); then 8 per output to requantize as
 * adaptc_rq_apply does and store.  Otherwise adaptc_dot_x4, then adaptc_rq_apply or, `exact` 1,
 * adaptc_rq_exact (any accumulator). */
static ADAPTC_INLINE void adaptc_row_x4(const int32_t *w, const int32_t *cols, const int32_t *cols_end,
                                 const int32_t *record, int32_t output_offset, int8_t *out,
                                 int32_t stride, int32_t exact)
{
    int32_t acc[4];
    adaptc_rq_params q;
#if ADAPTC_DSP_ASM
    if (!exact && record[2] < 0) {
        const int32_t *x = cols;
        int32_t a0 = record[0], a1 = record[0], a2 = record[0], a3 = record[0];
        int32_t wt, wa, wb, x0, x1;
        __asm__ volatile(
                /* an odd number of groups: one first, then two per iteration */
                "sub    %[wt], %[end], %[x]\n\t"
                "tst    %[wt], #32\n\t"
                "beq    2f\n\t"
                ADAPTC_DOT_GROUP
                "cmp    %[x], %[end]\n\t"
                "beq    3f\n"
                "2:\n\t"
                ADAPTC_DOT_GROUP
                ADAPTC_DOT_GROUP
                "cmp    %[x], %[end]\n\t"
                "bne    2b\n"
                "3:\n\t"
                /* x0 = mult, x1 = right_shift = -shift >= 1, wb = round, wt = output_offset */
                "ldrd   %[x0], %[x1], [%[rec], #4]\n\t"
                "rsb    %[x1], %[x1], #0\n\t"
                "mov    %[wb], #1\n\t"
                "lsl    %[wb], %[wb], %[x1]\n\t"
                "lsr    %[wb], %[wb], #1\n\t"
                "ldr    %[wt], %[off]\n\t"
                /* s = SMMULR(2 acc, mult); (s + round - (s < 0)) >> right_shift; + offset */
                "lsl    %[a0], %[a0], #1\n\t"
                "smmulr %[a0], %[a0], %[x0]\n\t"
                "add    %[a0], %[a0], %[a0], asr #31\n\t"
                "add    %[a0], %[a0], %[wb]\n\t"
                "asr    %[a0], %[a0], %[x1]\n\t"
                "add    %[a0], %[a0], %[wt]\n\t"
                "ssat   %[a0], #8, %[a0]\n\t"
                "lsl    %[a1], %[a1], #1\n\t"
                "smmulr %[a1], %[a1], %[x0]\n\t"
                "add    %[a1], %[a1], %[a1], asr #31\n\t"
                "add    %[a1], %[a1], %[wb]\n\t"
                "asr    %[a1], %[a1], %[x1]\n\t"
                "add    %[a1], %[a1], %[wt]\n\t"
                "ssat   %[a1], #8, %[a1]\n\t"
                "lsl    %[a2], %[a2], #1\n\t"
                "smmulr %[a2], %[a2], %[x0]\n\t"
                "add    %[a2], %[a2], %[a2], asr #31\n\t"
                "add    %[a2], %[a2], %[wb]\n\t"
                "asr    %[a2], %[a2], %[x1]\n\t"
                "add    %[a2], %[a2], %[wt]\n\t"
                "ssat   %[a2], #8, %[a2]\n\t"
                "lsl    %[a3], %[a3], #1\n\t"
                "smmulr %[a3], %[a3], %[x0]\n\t"
                "add    %[a3], %[a3], %[a3], asr #31\n\t"
                "add    %[a3], %[a3], %[wb]\n\t"
                "asr    %[a3], %[a3], %[x1]\n\t"
                "add    %[a3], %[a3], %[wt]\n\t"
                "ssat   %[a3], #8, %[a3]\n\t"
                /* wa = out, x = stride */
                "ldr    %[wa], %[out]\n\t"
                "ldr    %[x], %[stride]\n\t"
                "strb   %[a0], [%[wa]]\n\t"
                "strb   %[a1], [%[wa], %[x]]\n\t"
                "add    %[wa], %[wa], %[x], lsl #1\n\t"
                "strb   %[a2], [%[wa]]\n\t"
                "strb   %[a3], [%[wa], %[x]]"
                : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [w] "+&r"(w), [x] "+&r"(x),
                  [wt] "=&r"(wt), [wa] "=&r"(wa), [wb] "=&r"(wb), [x0] "=&r"(x0), [x1] "=&r"(x1)
                : [end] "r"(cols_end), [rec] "r"(record), [off] "m"(output_offset), [out] "m"(out),
                  [stride] "m"(stride)
                : "cc", "memory");
        return;
    }
#endif
    acc[0] = acc[1] = acc[2] = acc[3] = record[0];
    adaptc_dot_x4(w, cols, cols_end, acc);
    if (exact) {
        int32_t c;
        for (c = 0; c < 4; ++c) {
            out[c * stride] = (int8_t)adaptc_ssat8(adaptc_rq_exact(acc[c], record[1], record[2]) + output_offset);
        }
        return;
    }
    q = adaptc_rq_of(record[1], record[2]);
    out[0] = (int8_t)adaptc_ssat8(adaptc_rq_apply(acc[0], q) + output_offset);
    out[stride] = (int8_t)adaptc_ssat8(adaptc_rq_apply(acc[1], q) + output_offset);
    out[2 * stride] = (int8_t)adaptc_ssat8(adaptc_rq_apply(acc[2], q) + output_offset);
    out[3 * stride] = (int8_t)adaptc_ssat8(adaptc_rq_apply(acc[3], q) + output_offset);
}

/* `depth` weights of a packed row from the reader to int8 bytes at dst, then zeros up to a whole
 * word: 2-bit and 4-bit codes a byte at a time through `lut` when the row starts on a byte,
 * otherwise code by code through `values` (each code's int8 value), a 32-bit buffer of bits
 * refilled a byte at a time. */
static inline void adaptc_unpack_row(adaptc_codes *codes, int32_t depth, int32_t bits, const void *lut,
                                     const int8_t *values, int8_t *dst)
{
    int32_t k = 0;
    if (lut != NULL && codes->bit == 0 && bits == 4) {
        const uint16_t *table = (const uint16_t *)lut;
        for (; k + 2 <= depth; k += 2) {
            const uint16_t pair = table[*codes->byte++];
            dst[k] = (int8_t)(pair & 0xFFu);
            dst[k + 1] = (int8_t)(pair >> 8);
        }
    } else if (lut != NULL && codes->bit == 0 && bits == 2) {
        const uint32_t *table = (const uint32_t *)lut;
        for (; k + 4 <= depth; k += 4) {
            const uint32_t quad = table[*codes->byte++];
            memcpy(dst + k, &quad, sizeof quad);
        }
    }
    if (k < depth) {
        const uint32_t mask = (1u << bits) - 1u;
        const uint8_t *byte = codes->byte;
        uint32_t buffer = (uint32_t)*byte++ >> codes->bit;
        int32_t held = 8 - codes->bit, used = 0;
        for (; k < depth; ++k) {
            if (held < bits) {
                buffer |= (uint32_t)*byte++ << held;
                held += 8;
            }
            dst[k] = values[buffer & mask];
            buffer >>= bits;
            held -= bits;
            used += bits;
        }
        used += codes->bit;                       /* bits consumed from the reader's byte on */
        codes->byte += used >> 3;
        codes->bit = used & 7;
    }
    for (; k < (depth + 3) / 4 * 4; ++k) {
        dst[k] = 0;
    }
}

/* Where adaptc_rows_x4 finds packed weight rows: codes of `bits` bits (2 .. 4), decoded a row
 * of `depth` at a time into row_buf (adaptc_unpack_row). */
typedef struct {
    int32_t depth;
    int32_t bits;
    const void *lut;
    const int8_t *values;
    int32_t *row_buf;
} adaptc_packed_rows;

/* The four columns' outputs of every row clamped to [act_min, act_max] (nothing to do for the
 * whole int8 range, which the requantization saturates to). */
static inline void adaptc_clamp_x4(int8_t *out, int32_t rows, int32_t out_stride, int32_t act_min, int32_t act_max)
{
    int32_t r, c;
    if (act_min > -128 || act_max < 127) {
        for (c = 0; c < 4; ++c) {
            for (r = 0; r < rows; ++r) {
                int8_t *o = out + c * out_stride + r;
                *o = (int8_t)adaptc_clamp_i32(*o, act_min, act_max);
            }
        }
    }
}

/* adaptc_rows_x4 for packed weight rows: each decoded in turn into packed->row_buf. */
static ADAPTC_NOINLINE void adaptc_rows_x4_packed(const uint8_t *weights, const int32_t *cols, int32_t rows,
                                                  int32_t groups, const int32_t *channels, int32_t output_offset,
                                                  int32_t act_min, int32_t act_max, int8_t *out, int32_t out_stride,
                                                  const adaptc_packed_rows *packed, int32_t exact)
{
    const int32_t *const cols_end = cols + 8 * groups;
    adaptc_codes codes;
    int32_t r;
    codes.byte = weights;
    codes.bit = 0;
    for (r = 0; r < rows; ++r) {
        adaptc_unpack_row(&codes, packed->depth, packed->bits, packed->lut, packed->values, (int8_t *)packed->row_buf);
        adaptc_row_x4(packed->row_buf, cols, cols_end, channels + 3 * r, output_offset, out + r, out_stride, exact);
    }
    adaptc_clamp_x4(out, rows, out_stride, act_min, act_max);
}

/* ------------------------------------------------------------------------ */
/* Element-wise int8: four outputs a word                                   */
/* ------------------------------------------------------------------------ */

/* a.lo * b.lo (SMULBB) */
static inline int32_t adaptc_smulbb(int32_t a, int32_t b)
{
#if ADAPTC_HAVE_DSP
    int32_t r;
    __asm__("smulbb %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));   /* gcc 12's ACLE has no __smulbb */
    return r;
#else
    return adaptc_lo16(a) * adaptc_lo16(b);
#endif
}

/* a.hi * b.hi (SMULTT) */
static inline int32_t adaptc_smultt(int32_t a, int32_t b)
{
#if ADAPTC_HAVE_DSP
    int32_t r;
    __asm__("smultt %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));   /* gcc 12's ACLE has no __smultt */
    return r;
#else
    return adaptc_hi16(a) * adaptc_hi16(b);
#endif
}

/* mul_s8_dsp: out[k] = saturate(adaptc_rq_apply(x_k * y_k, q) + output_offset) for the four
 * int16 pairs x02 = (x0, x2), x13 = (x1, x3) and y02, y13 likewise (one SMULBB / SMULTT each). */
static ADAPTC_INLINE void adaptc_mul_x4(int32_t x02, int32_t x13, int32_t y02, int32_t y13,
                                        adaptc_rq_params q, int32_t output_offset, int8_t *out)
{
    out[0] = (int8_t)adaptc_ssat8(adaptc_rq_apply(adaptc_smulbb(x02, y02), q) + output_offset);
    out[1] = (int8_t)adaptc_ssat8(adaptc_rq_apply(adaptc_smulbb(x13, y13), q) + output_offset);
    out[2] = (int8_t)adaptc_ssat8(adaptc_rq_apply(adaptc_smultt(x02, y02), q) + output_offset);
    out[3] = (int8_t)adaptc_ssat8(adaptc_rq_apply(adaptc_smultt(x13, y13), q) + output_offset);
}

/* addsub_s8_dsp: an input's rescaling adaptc_mbqm((x + offset) << left_shift, mult, shift) as
 * adaptc_rq_apply, the two left shifts as one (`shift` = left_shift + q.left_shift <= 31):
 * exact while |(x + offset) << left_shift << max(shift, 0)| < 2^30. */
static ADAPTC_INLINE int32_t adaptc_addsub_scale(int32_t x, int32_t offset, int32_t shift, adaptc_rq_params q)
{
    const int32_t s = adaptc_smmulr((int32_t)((uint32_t)(x + offset) << shift), q.mult);
    return (s + q.round + (q.negmask & (s >> 31))) >> q.right_shift;
}

/* addsub_s8_dsp: an output before its activation's clamp, adaptc_rq_apply(raw, q) + output_offset
 * saturated to int8 (SSAT) */
static ADAPTC_INLINE int8_t adaptc_addsub_out(int32_t raw, adaptc_rq_params q, int32_t output_offset)
{
    return (int8_t)adaptc_ssat8(adaptc_rq_apply(raw, q) + output_offset);
}

/* The byte-wise maximum of two words of four int8: SSUB8 sets each byte's GE flag
 * where a >= b, SEL takes those bytes from its first operand, the others from its second (one
 * asm statement: nothing comes between them to change the GE flags). */
static inline int32_t adaptc_max_s8x4(int32_t a, int32_t b)
{
#if ADAPTC_HAVE_DSP
    int32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b));
    return r;
#else
    uint32_t r = 0;
    int32_t k;
    for (k = 0; k < 4; ++k) {
        const int32_t x = adaptc_byte(a, k), y = adaptc_byte(b, k);
        r |= (uint32_t)(uint8_t)(x >= y ? x : y) << (8 * k);
    }
    return (int32_t)r;
#endif
}

/* byte-wise a ^ b ^ max(a, b): the other of each pair of bytes */
static inline int32_t adaptc_min_s8x4(int32_t a, int32_t b)
{
    return a ^ b ^ adaptc_max_s8x4(a, b);
}

/* A pooling output pixel's in-bounds window (avg_pool_s8_dsp, max_pool_s8_dsp) in `image` as
 * `runs` runs of `len` elements `channels` bytes apart from `first`, the runs in_w * channels
 * bytes apart: its rows, or one run of rows * cols elements where it spans the input's whole
 * width (the rows follow one another in memory); count = rows * cols; runs, len 0 when empty. */
typedef struct {
    const int8_t *first;
    int32_t runs;
    int32_t len;
    int32_t count;
} adaptc_pool_window;

static inline adaptc_pool_window adaptc_pool_window_at(const pool_s8_params *p, const int8_t *image, int32_t out_y,
                                                       int32_t out_x)
{
    const int32_t in_y0 = out_y * p->stride_h - p->pad_top, in_x0 = out_x * p->stride_w - p->pad_left;
    const int32_t y0 = in_y0 < 0 ? 0 : in_y0, x0 = in_x0 < 0 ? 0 : in_x0;
    const int32_t y1 = in_y0 + p->k_h < p->in_h ? in_y0 + p->k_h : p->in_h;
    const int32_t x1 = in_x0 + p->k_w < p->in_w ? in_x0 + p->k_w : p->in_w;
    const int32_t rows = y1 - y0, cols = x1 - x0, whole = cols == p->in_w;
    adaptc_pool_window w;
    w.count = rows > 0 && cols > 0 ? rows * cols : 0;
    w.first = w.count > 0 ? image + (y0 * p->in_w + x0) * p->channels : image;
    w.runs = w.count == 0 ? 0 : whole ? 1 : rows;
    w.len = w.count == 0 ? 0 : whole ? w.count : cols;
    return w;
}

/* ------------------------------------------------------------------------ */
/* Sums of int8: four values a word in int16 lanes                          */
/* ------------------------------------------------------------------------ */

/* The sum of n int8 values at src (contiguous; any alignment): four a word into two int16
 * lanes (SXTAB16, SXTAB16 ROR #8: |lane| <= 2 * 128 a word), folded into the int32 total by one
 * SMLAD with (1, 1) every 127 words at most (|lane| <= 32512), then the last n % 4 one by one. */
static inline int32_t adaptc_sum_s8(const int8_t *src, int32_t n)
{
    int32_t total = 0, words = n / 4, k;
    while (words > 0) {
        const int32_t block = words < 127 ? words : 127;
        int32_t lanes = 0;
        for (k = 0; k < block; ++k) {
            const int32_t x = adaptc_read_s8x4(src);
            lanes = adaptc_sxtab16_ror8(adaptc_sxtab16(lanes, x), x);
            src += 4;
        }
        total = adaptc_smlad(lanes, 0x00010001, total);
        words -= block;
    }
    for (k = 0; k < n % 4; ++k) {
        total += src[k];
    }
    return total;
}

/* sums[c] = the sum of the n int8 values src[c + i * stride] (i < n) of four neighbouring
 * channels c < 4: a word a row, its bytes into int16 lanes (c0, c2) and (c1, c3) (SXTAB16,
 * SXTAB16 ROR #8: |lane| <= 128 a row), added to the int32 sums every 255 rows at most. */
static inline void adaptc_sum_s8_x4(const int8_t *src, int32_t stride, int32_t n, int32_t *sums)
{
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, k;
    while (n > 0) {
        const int32_t block = n < 255 ? n : 255;
        int32_t lanes02 = 0, lanes13 = 0;
        for (k = 0; k < block; ++k) {
            const int32_t x = adaptc_read_s8x4(src);
            lanes02 = adaptc_sxtab16(lanes02, x);
            lanes13 = adaptc_sxtab16_ror8(lanes13, x);
            src += stride;
        }
        s0 += (int32_t)((uint32_t)lanes02 << 16) >> 16;
        s1 += (int32_t)((uint32_t)lanes13 << 16) >> 16;
        s2 += lanes02 >> 16;
        s3 += lanes13 >> 16;
        n -= block;
    }
    sums[0] = s0;
    sums[1] = s1;
    sums[2] = s2;
    sums[3] = s3;
}

/* lut_s8_dsp: the four bytes of the word u each looked up in the 256-byte table, indexed by the
 * byte as unsigned, as one word (UXTB / UBFX / LSR, LDRB, and ORR a byte). */
static inline uint32_t adaptc_lut_x4(const uint8_t *table, uint32_t u)
{
    return (uint32_t)table[u & 0xFFu] | (uint32_t)table[(u >> 8) & 0xFFu] << 8
           | (uint32_t)table[(u >> 16) & 0xFFu] << 16 | (uint32_t)table[u >> 24] << 24;
}

/* ------------------------------------------------------------------------ */
/* LSTM (lstm_s8_dsp): dot products and the int16 activations               */
/* ------------------------------------------------------------------------ */

/* acc + <row, column>: a row of int8 weights (`groups` words, dsp.h's row layout) and one
 * column of int16 values (adaptc_col_from_s8 with stride 2), two SMLAD per four weights, eight
 * weights an iteration; a function of its own, so that the loop has the registers.  A DSP core
 * runs the loop in assembly: 15 instructions per eight MACs (an LDRD of two weight words, two of
 * four column words, 4 SXTB16, 4 SMLAD, compare and branch) where gcc 12 spends 19. */
static ADAPTC_NOINLINE int32_t adaptc_dot_row(const int32_t *w, const int32_t *col, int32_t groups, int32_t acc)
{
    const int32_t *const end = w + (groups & ~1);
#if ADAPTC_DSP_ASM
    if (w != end) {
        int32_t w0, w1, c0, c1, c2, c3, t;
        __asm__ volatile(
                "1:\n\t"
                "ldrd   %[w0], %[w1], [%[w]], #8\n\t"
                "ldrd   %[c0], %[c1], [%[col]], #16\n\t"
                "ldrd   %[c2], %[c3], [%[col], #-8]\n\t"
                "sxtb16 %[t], %[w0]\n\t"
                "smlad  %[acc], %[t], %[c0], %[acc]\n\t"
                "sxtb16 %[t], %[w0], ror #8\n\t"
                "smlad  %[acc], %[t], %[c1], %[acc]\n\t"
                "sxtb16 %[t], %[w1]\n\t"
                "smlad  %[acc], %[t], %[c2], %[acc]\n\t"
                "sxtb16 %[t], %[w1], ror #8\n\t"
                "smlad  %[acc], %[t], %[c3], %[acc]\n\t"
                "cmp    %[w], %[end]\n\t"
                "bne    1b"
                : [acc] "+&r"(acc), [w] "+&r"(w), [col] "+&r"(col), [w0] "=&r"(w0), [w1] "=&r"(w1), [c0] "=&r"(c0),
                  [c1] "=&r"(c1), [c2] "=&r"(c2), [c3] "=&r"(c3), [t] "=&r"(t)
                : [end] "r"(end)
                : "cc", "memory");
    }
#else
    while (w != end) {
        const int32_t w0 = w[0], w1 = w[1];
        acc = adaptc_smlad(adaptc_sxtb16(w0), col[0], acc);
        acc = adaptc_smlad(adaptc_sxtb16_ror8(w0), col[1], acc);
        acc = adaptc_smlad(adaptc_sxtb16(w1), col[2], acc);
        acc = adaptc_smlad(adaptc_sxtb16_ror8(w1), col[3], acc);
        w += 2;
        col += 4;
    }
#endif
    if (groups & 1) {
        acc = adaptc_smlad(adaptc_sxtb16(w[0]), col[0], acc);
        acc = adaptc_smlad(adaptc_sxtb16_ror8(w[0]), col[1], acc);
    }
    return acc;
}

/* lstm_s8.c's lstm_s8_sigmoid: reference_integer_ops::Logistic (int16, input_multiplier 0:
 * x * 3), Q3.12 -> Q0.15 */
static inline int16_t adaptc_lstm_sigmoid(const uint16_t *table, int32_t x)
{
    const int32_t input = x * 3;
    const uint32_t mag = (uint32_t)(input < 0 ? -input : input);
    const uint32_t uh = mag >> 9;
    uint32_t result;
    if (uh >= 255u) {
        result = 0x7FFFu << 10;
    } else {
        const uint32_t ua = table[uh];
        const uint32_t ub = table[uh + 1u];
        result = (ua << 9) + (mag & 0x1FFu) * (ub - ua);
    }
    result = input >= 0 ? result + (1u << 9) : (1u << 25) - result + (1u << 9) - 1u;
    return (int16_t)(result >> 10);
}

/* lstm_s8.c's lstm_s8_tanh: reference_integer_ops::Tanh (int16): input = (x * mult + round) >>
 * shift, output Q0.15 */
static inline int16_t adaptc_lstm_tanh(const uint16_t *table, int32_t x, int32_t mult, int32_t shift)
{
    const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
    const int32_t input = (x * mult + round) >> shift;
    const uint32_t mag = (uint32_t)(input < 0 ? -input : input);
    const uint32_t uh = mag >> 8;
    int32_t result;
    if (uh >= 255u) {
        result = (int32_t)(0xFFFFu << 8);
    } else {
        const uint32_t ua = table[uh];
        const uint32_t ub = table[uh + 1u];
        result = (int32_t)((ua << 8) + (mag & 0xFFu) * (ub - ua));
    }
    result = input >= 0 ? result - (1 << 23) + (1 << 7) : -result + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(result >> 8);
}

#endif /* ADAPTC_KERNELS_DSP_H */
