/*
 * adaptc reference kernels: common definitions.
 *
 * This header is the first piece of the single C99 translation unit the
 * code generator emits per model; the kernel files (*.c in this directory)
 * are concatenated after it, each depending on this header only.
 *
 * Contents:
 *   - standard includes (fixed-width integers, NULL, float limits);
 *   - the integer fixed-point helpers of gemmlowp / TFLite, bit-exact with
 *     TFLite Micro's reference kernels (tensorflow/lite/kernels/internal/
 *     common.h and third_party/gemmlowp/fixedpoint/fixedpoint.h);
 *   - the parameter structs of every kernel.
 *
 * Every function is static (no external symbols).  Helpers are
 * `static inline` so that a model that does not use one of them compiles
 * warning-free under -Wall -Wextra -Werror.
 *
 * Implementation-defined behaviour relied upon (true for gcc, clang and
 * arm-none-eabi-gcc, and required by TFLite/gemmlowp themselves):
 *   - `x >> n` on a negative int32_t is an arithmetic (sign-extending) shift;
 *   - converting an out-of-range value to int32_t wraps modulo 2^32.
 */
#ifndef ADAPTC_KERNELS_COMMON_H
#define ADAPTC_KERNELS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <float.h>

/* ------------------------------------------------------------------------ */
/* Integer fixed-point helpers                                               */
/* ------------------------------------------------------------------------ */

static inline int32_t adaptc_clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* Window taps inside the input: of k taps dil apart from input index `origin`, those in
 * [adaptc_tap_first, adaptc_tap_end) fall inside [0, size) (an empty range when none do). */
static inline int32_t adaptc_tap_first(int32_t origin, int32_t dil)
{
    return origin >= 0 ? 0 : (dil - 1 - origin) / dil;
}

static inline int32_t adaptc_tap_end(int32_t origin, int32_t size, int32_t k, int32_t dil)
{
    const int32_t last = size - 1 - origin;
    if (last < 0) {
        return 0;
    }
    return last / dil + 1 < k ? last / dil + 1 : k;
}

/* gemmlowp SaturatingRoundingDoublingHighMul (ARM VQRDMULH): the high 32 bits
 * of 2*a*b, rounded to nearest (ties toward +infinity); INT32_MIN*INT32_MIN
 * saturates to INT32_MAX.  The division truncates toward zero, as in C99. */
static inline int32_t adaptc_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away
 * from zero; 0 <= exponent <= 31. */
static inline int32_t adaptc_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double-rounding variant, the default
 * build): x * multiplier * 2^(shift - 31), with a saturating rounding doubling
 * high multiply followed by a rounding right shift.  -31 <= shift <= 30. */
static inline int32_t adaptc_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    return adaptc_rdbpot(
        adaptc_srdhm((int32_t)((uint32_t)x << left_shift), multiplier),
        right_shift);
}

/* adaptc_mbqm(x, 2^30, shift) -- the requantization of a power-of-two scale ratio 2^(shift - 1)
 * -- without a multiply: SRDHM(a, 2^30) = floor((a + 1) / 2), written so that it cannot
 * overflow. */
static inline int32_t adaptc_mbqm_pot(int32_t x, int32_t shift)
{
    const int32_t a = (int32_t)((uint32_t)x << (shift > 0 ? shift : 0));
    return adaptc_rdbpot((a >> 1) + (a & 1), shift > 0 ? 0 : -shift);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for 0 < exponent < 31:
 * x * 2^exponent, saturated to the int32 range. */
static inline int32_t adaptc_sat_shift_left(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((int32_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* gemmlowp RoundingHalfSum for int32: (a + b) / 2 rounded to nearest, ties
 * away from zero. */
static inline int32_t adaptc_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* Number of leading zero bits of a non-zero uint32 (TFLite CountLeadingZeros). */
static inline int32_t adaptc_clz_u32(uint32_t x)
{
#if defined(__GNUC__)
    return (int32_t)__builtin_clz(x);
#else
    int32_t n = 0;
    while (n < 32 && (x & 0x80000000u) == 0u) {
        x <<= 1;
        n++;
    }
    return n;
#endif
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1 on raw int32 values:
 * a is Q0.31 in [0, 1); returns 1 / (1 + a) in Q0.31.  Newton-Raphson
 * division in Q2.29 (three iterations), exactly as gemmlowp. */
static inline int32_t adaptc_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    const int32_t f2_one = (int32_t)1 << 29;             /* 1.0 in Q2.29 */
    /* F0::One() is INT32_MAX for a format with 0 integer bits. */
    const int32_t half_denominator = adaptc_rounding_half_sum(a, INT32_MAX);
    int32_t x = constant_48_over_17
              + adaptc_srdhm(half_denominator, constant_neg_32_over_17);
    int32_t i;
    for (i = 0; i < 3; i++) {
        const int32_t half_denominator_times_x = adaptc_srdhm(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = f2_one - half_denominator_times_x;
        /* Q2.29 * Q2.29 = Q4.27; Rescale<2> = saturating multiply by 2^2. */
        x = x + adaptc_sat_shift_left(adaptc_srdhm(x, one_minus_half_denominator_times_x), 2);
    }
    /* Rescale<0>(ExactMulByPot<-1>(x)): ExactMulByPot reinterprets the raw
     * Q2.29 value as Q1.30 (x/2); Rescale from 1 to 0 integer bits is a
     * saturating multiply by 2^1. */
    return adaptc_sat_shift_left(x, 1);
}

/* ------------------------------------------------------------------------ */
/* Parameter structs: int8 kernels                                           */
/* ------------------------------------------------------------------------ */

/* conv2d_s8: NHWC input/output, OHWI filter [out_c][k_h][k_w][filter_in_c]: the layer reads the
 * first in_c of each tap's filter_in_c (a narrower width level of a wider stored filter). */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t filter_in_c;
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
    int32_t input_offset;   /* -input_zero_point */
    int32_t output_offset;  /* output_zero_point */
    int32_t act_min;
    int32_t act_max;
} conv2d_s8_params;

/* depthwise_conv2d_s8: NHWC input/output, filter [k_h][k_w][filter_c] of which the layer reads
 * the first out_c channels, out_c == in_c * depth_multiplier. */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t out_c;
    int32_t filter_c;
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
    int32_t depth_multiplier;
} depthwise_conv2d_s8_params;

/* fully_connected_s8: input [batches][in_features], weights [out_features][filter_stride] of
 * which each row's first in_features are read, output [batches][out_features]. */
typedef struct {
    int32_t batches;
    int32_t in_features;
    int32_t filter_stride;
    int32_t out_features;
    int32_t input_offset;   /* -input_zero_point */
    int32_t filter_offset;  /* -filter_zero_point (0 for symmetric weights) */
    int32_t output_offset;  /* output_zero_point */
    int32_t act_min;
    int32_t act_max;
} fully_connected_s8_params;

/* add_s8: elementwise, same-shape inputs (TFLite ArithmeticParams). */
typedef struct {
    int32_t size;
    int32_t left_shift;
    int32_t input1_offset;
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input2_offset;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} add_s8_params;

/* avg_pool_s8 / max_pool_s8: NHWC input/output. */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t channels;
    int32_t out_h;
    int32_t out_w;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t act_min;
    int32_t act_max;
} pool_s8_params;

/* softmax_s8: [rows][depth], output zero point -128, scale 1/256.
 * exp_table[k] = exp(-k * input_scale * beta) in Q0.31, for k = max - x. */
typedef struct {
    int32_t rows;
    int32_t depth;
    const int32_t *exp_table; /* 256 entries */
} softmax_s8_params;

/* gate_*_s8: confidence of an int8 exit head [classes] (adaptc/gates.py); the model leaves at
 * the exit when confidence >= threshold. exp_table[d] = round(2^15 exp(-scale d)) for d in
 * 0..exp_len-1, up to its last nonzero entry (0 beyond: not stored); ln_table[i] =
 * round(2^12 ln((256 + i + 0.5) / 256)), i in 0..255. */
typedef struct {
    int32_t classes;
    int32_t threshold;
} gate_margin_s8_params;

typedef struct {
    int32_t classes;
    int32_t threshold;
    int32_t exp_len;        /* entries of exp_table, 1..256 */
    const uint16_t *exp_table;
} gate_max_prob_s8_params;

typedef struct {
    int32_t classes;
    int32_t threshold;
    int32_t scale_q16;      /* round(2^16 * the head's output scale) */
    int32_t exp_len;        /* entries of exp_table, 1..256 */
    const uint16_t *exp_table;
    const uint16_t *ln_table; /* 256 entries */
} gate_entropy_s8_params;

/* pad_s8: 4-D NHWC constant pad; after[i] = out_dims[i] - in_dims[i] - before[i]. */
typedef struct {
    int32_t in_dims[4];
    int32_t out_dims[4];
    int32_t before[4];
    int32_t pad_value;      /* int8 value written into the padding */
} pad_params;
typedef pad_params pad_s8_params;

/* lut_s8: output[i] = table[input[i] + 128]. */
typedef struct {
    int32_t size;
    const int8_t *table;    /* 256 entries */
} lut_s8_params;

/* conv2d_s8_packed: conv2d_s8's geometry, the strides of its loops in bytes (computed at
 * compile time: the kernel multiplies nothing but weights), and its weight codes: a bitstream
 * of `bits`-bit codes (OHWI order, least significant bit first) -- kind 1 (pot): sign bit,
 * then m: 0 -> 0, m -> 2^(m-1); kind 0 (int): two's complement.  pot_requant: every
 * multiplier is 2^30 (out_mult unused). */
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
    int32_t depth;          /* k_h * k_w * in_c */
    int32_t image_bytes;    /* in_h * in_w * in_c */
    int32_t row_bytes;      /* in_w * in_c */
    int32_t step_y;         /* stride_h * row_bytes */
    int32_t step_x;         /* stride_w * in_c */
    int32_t tap_y;          /* dil_h * row_bytes */
    int32_t tap_x;          /* dil_w * in_c */
    int32_t origin;         /* -(pad_top * row_bytes + pad_left * in_c): the first window */
    int32_t filter_row;     /* k_w * in_c */
    int32_t bits;
    int32_t kind;
    int32_t pot_requant;
    int8_t *scratch;        /* arena: one decoded filter row, depth bytes */
} conv2d_s8_packed_params;

/* fully_connected_s8_packed: fully_connected_s8's sizes (filter_offset 0); weights as for
 * conv2d_s8_packed, rows [out_features][in_features]. */
typedef struct {
    int32_t batches;
    int32_t in_features;
    int32_t out_features;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t bits;
    int32_t kind;
    int32_t pot_requant;
    int8_t *scratch;        /* arena: one decoded row, in_features bytes */
} fully_connected_s8_packed_params;

/* Sequential reader of a bitstream of codes (least significant bit first); a code straddles
 * two bytes only when 8 % bits != 0, and such streams end with a padding byte. */
typedef struct {
    const uint8_t *byte;
    int32_t bit;            /* 0..7: the next code's first bit in *byte */
} adaptc_codes;

static inline int32_t adaptc_next_code(adaptc_codes *r, int32_t bits)
{
    uint32_t word = r->byte[0];
    int32_t code;
    if (r->bit + bits > 8) {
        word |= (uint32_t)r->byte[1] << 8;
    }
    code = (int32_t)((word >> r->bit) & ((1u << bits) - 1u));
    r->bit += bits;
    r->byte += r->bit >> 3;
    r->bit &= 7;
    return code;
}

/* A decoded weight: kind 0 (int), its value; kind 1 (pot), 0 for 0 and +-m for +-2^(m-1). */
static inline int32_t adaptc_decode(int32_t code, int32_t bits, int32_t kind)
{
    const int32_t sign = code >> (bits - 1);
    if (kind == 0) {
        return sign ? code - (1 << bits) : code;
    }
    return sign ? -(code & ((1 << (bits - 1)) - 1)) : code;
}

/* acc + x * w for a decoded power-of-two weight m (0, or +-2^(|m| - 1)): shifts, no multiply */
static inline int32_t adaptc_pot_mac(int32_t acc, int32_t x, int32_t m)
{
    if (m > 0) {
        return acc + (int32_t)((uint32_t)x << (m - 1));
    }
    if (m < 0) {
        return acc - (int32_t)((uint32_t)x << (-m - 1));
    }
    return acc;
}

/* ------------------------------------------------------------------------ */
/* Parameter structs: float32 kernels                                        */
/* ------------------------------------------------------------------------ */

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
    float act_min;
    float act_max;
} conv2d_f32_params;

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
    float act_min;
    float act_max;
    int32_t depth_multiplier;
} depthwise_conv2d_f32_params;

typedef struct {
    int32_t batches;
    int32_t in_features;
    int32_t out_features;
    float act_min;
    float act_max;
} fully_connected_f32_params;

typedef struct {
    int32_t size;
    float act_min;
    float act_max;
} add_f32_params;

typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t channels;
    int32_t out_h;
    int32_t out_w;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    float act_min;
    float act_max;
} pool_f32_params;

typedef struct {
    int32_t rows;
    int32_t depth;
    float beta;             /* TFLite SoftmaxOptions.beta; 1.0f by default */
    int32_t log;            /* 1: the logarithm of the softmax (LOG_SOFTMAX, ONNX LogSoftmax) */
} softmax_f32_params;

/* gate_*_f32: confidence of a float exit head [classes]; leave when confidence >= threshold. */
typedef struct {
    int32_t classes;
    float threshold;
} gate_f32_params;

typedef struct {
    int32_t in_dims[4];
    int32_t out_dims[4];
    int32_t before[4];
    float pad_value;
} pad_f32_params;

/* clamp_f32: relu (0, FLT_MAX), relu6 (0, 6), relu_n1_to_1, clip. */
typedef struct {
    int32_t size;
    float act_min;
    float act_max;
} clamp_f32_params;

/* ------------------------------------------------------------------------ */
/* Layout kernels (any element type)                                          */
/* ------------------------------------------------------------------------ */

/* transpose_{s8,f32}: 4-D permutation; output dim i is input dim perm[i]. */
typedef struct {
    int32_t in_dims[4];
    int32_t perm[4];
} transpose_params;

#endif /* ADAPTC_KERNELS_COMMON_H */
