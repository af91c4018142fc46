/*
 * L2_NORMALIZATION, int8, over the last axis.
 * Mirrors TFLite reference_integer_ops::L2Normalization
 * (tensorflow/lite/kernels/internal/reference/integer_ops/l2normalization.h) with
 * GetInvSqrtQuantizedMultiplierExp (kernels/internal/common.h, kReverseShift -1).
 *
 * Layout: input, output [rows][depth] int8; output scale 1/128, zero point 0.
 * Arithmetic: per row acc = sum (x - input_zp)^2; (multiplier, shift) = the inverse square root
 *   of acc (five Newton-Raphson steps in Q3.28, adaptc_inv_sqrt below); each output
 *   clamp8(MBQM(x - input_zp, multiplier, shift + 7)).
 */
typedef struct {
    int32_t rows;
    int32_t depth;
    int32_t input_zp;
} l2norm_s8_params;

/* GetInvSqrtQuantizedMultiplierExp(value, -1): 1 / sqrt(value) ~ multiplier * 2^(*shift - 31);
 * returns the multiplier */
static int32_t l2norm_s8_inv_sqrt(int32_t value, int32_t *shift)
{
    int32_t s = 11, pairs, fixed_input, half_input, x, k;
    if (value <= 1) {
        *shift = 0;
        return INT32_MAX;
    }
    while (value >= ((int32_t)1 << 29)) {
        value /= 4;
        ++s;
    }
    pairs = (adaptc_clz_u32((uint32_t)value) - 1) / 2 - 1;
    s -= pairs;
    value = (int32_t)((uint32_t)value << (2 * pairs));
    fixed_input = value >> 1;                                  /* Q3.28 */
    half_input = adaptc_rdbpot(fixed_input, 1);
    x = (int32_t)1 << 28;                                      /* 1 in Q3.28 */
    for (k = 0; k < 5; ++k) {
        const int32_t x3 = adaptc_sat_shift_left(adaptc_srdhm(adaptc_srdhm(x, x), x), 6);
        const int32_t d = (int32_t)((uint32_t)adaptc_srdhm((1 << 28) + (1 << 27), x) -
                                    (uint32_t)adaptc_srdhm(half_input, x3));
        x = adaptc_sat_shift_left(d, 3);
    }
    x = adaptc_srdhm(x, 1518500250);                           /* * sqrt(2) / 2 */
    if (s < 0) {
        x = (int32_t)((uint32_t)x << -s);
        s = 0;
    }
    *shift = -s;
    return x;
}

static void l2norm_s8(const l2norm_s8_params *p, const int8_t *input, int8_t *output)
{
    int32_t r, c;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = input + r * p->depth;
        int8_t *y = output + r * p->depth;
        int32_t acc = 0, multiplier, shift;
        for (c = 0; c < p->depth; ++c) {
            const int32_t v = (int32_t)x[c] - p->input_zp;
            acc += v * v;
        }
        multiplier = l2norm_s8_inv_sqrt(acc, &shift);
        for (c = 0; c < p->depth; ++c) {
            y[c] = (int8_t)adaptc_clamp_i32(adaptc_mbqm((int32_t)x[c] - p->input_zp, multiplier, shift + 7),
                                            -128, 127);
        }
    }
}
