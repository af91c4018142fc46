/*
 * SOFTMAX, int8 input -> int8 output (output scale 1/256, zero point -128).
 * Mirrors TFLite reference_ops::Softmax<int8_t, int8_t>
 * (tensorflow/lite/kernels/internal/reference/softmax.h), as used by
 * TFLite Micro's SOFTMAX kernel.
 *
 * Layout: input, output [rows][depth] int8 (softmax over the last axis).
 * Arithmetic: the per-difference part of TFLite's loop,
 *     exp_on_negative_values<5>(MultiplyByQuantizedMultiplierGreaterThanOne(
 *         input - max_in_row, input_beta_multiplier, input_beta_left_shift))
 *   (0 where input - max_in_row < diff_min), depends only on
 *   k = max_in_row - input in 0..255 and is precomputed by the compiler
 *   into exp_table[k] (Q0.31).  Per row:
 *   sum_of_exps (Q12.19) = sum RoundingDivideByPOT(exp_table[k], 12);
 *   shifted_scale = GetReciprocal(sum_of_exps, 12, &num_bits_over_unit);
 *   output = RoundingDivideByPOT(SRDHM(shifted_scale, exp_table[k]),
 *                                num_bits_over_unit + 31 - 8) - 128,
 *   clamped to [-128, 127]; -128 where exp_table[k] is 0.
 * The Q12.19 sum cannot overflow for depth < 4096 (the same bound as TFLite).
 */
static void softmax_s8(const softmax_s8_params *p, const int8_t *input,
                       int8_t *output)
{
    const int32_t kAccumulationIntegerBits = 12;
    int32_t i, c;
    for (i = 0; i < p->rows; ++i) {
        const int8_t *in_row = input + i * p->depth;
        int8_t *out_row = output + i * p->depth;
        int32_t max_in_row = INT8_MIN;
        int32_t sum_of_exps = 0;
        int32_t headroom_plus_one, num_bits_over_unit, shifted_sum_minus_one;
        int32_t shifted_scale, exponent;

        for (c = 0; c < p->depth; ++c) {
            if (in_row[c] > max_in_row) {
                max_in_row = in_row[c];
            }
        }

        for (c = 0; c < p->depth; ++c) {
            const int32_t exp_in_0 = p->exp_table[max_in_row - in_row[c]];
            /* Rescale<12> from Q0.31 to Q12.19. */
            sum_of_exps += adaptc_rdbpot(exp_in_0, kAccumulationIntegerBits);
        }

        /* GetReciprocal(sum_of_exps, kAccumulationIntegerBits, ...);
         * sum_of_exps > 0 since exp_table[0] (the row maximum) is 1.0. */
        headroom_plus_one = adaptc_clz_u32((uint32_t)sum_of_exps);
        num_bits_over_unit = kAccumulationIntegerBits - headroom_plus_one;
        shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one)
                                          - ((uint32_t)1 << 31));
        shifted_scale = adaptc_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);

        exponent = num_bits_over_unit + 31 - 8;
        for (c = 0; c < p->depth; ++c) {
            const int32_t exp_in_0 = p->exp_table[max_in_row - in_row[c]];
            int32_t unsat_output;
            if (exp_in_0 == 0) {
                out_row[c] = INT8_MIN;
                continue;
            }
            if (exponent > 31) {
                /* Only reachable with >= 512 near-maximal entries in a row; the
                 * quotient of an int32 by 2^32 or more rounds to 0.  (TFLite's
                 * RoundingDivideByPOT asserts exponent <= 31 here.) */
                unsat_output = 0;
            } else {
                unsat_output = adaptc_rdbpot(adaptc_srdhm(shifted_scale, exp_in_0), exponent);
            }
            out_row[c] = (int8_t)adaptc_clamp_i32(unsat_output + INT8_MIN, INT8_MIN, INT8_MAX);
        }
    }
}
