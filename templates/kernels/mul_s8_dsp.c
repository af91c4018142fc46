/*
 * MUL, int8, with broadcasting: DSP-extension drop-in for mul_s8 -- the same arguments and, bit
 * for bit, the same results (TFLite Micro reference_integer_ops::Mul / BroadcastMul6DSlow).
 *
 * Layout: as mul_s8: four loops over the output, outermost first (dims); input k's element of
 *         output position (i0, i1, i2, i3) is at sum(i_d * strides_k[d]) (stride 0: broadcast).
 * Arithmetic: as mul_s8.  Where the innermost loop reads one input contiguously and the other
 *   contiguously or not at all (strides 1 / 1, 1 / 0, 0 / 1), four outputs at a time: a word of
 *   each contiguous input, its four (x + offset) as int16 halves (SXTAB16, dsp.h), four SMULBB /
 *   SMULTT products (adaptc_mul_x4); the rest of a row one output at a time.  Each product
 *   (|.| <= 255 * 255) is requantized by adaptc_rq_apply (dsp.h; one SMMULR), which equals
 *   MultiplyByQuantizedMultiplier for the step's multiplier and shift -- the builder proves it
 *   (targets/cortex_m/kernels/mul.py, requant_is_exact) --, + output_offset, saturated to int8
 *   (SSAT); the whole output is then clamped to [act_min, act_max] (nothing to do for [-128, 127]).
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} mul_s8_dsp_params;

static void mul_s8_dsp(const mul_s8_dsp_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const adaptc_rq_params q = adaptc_rq_of(p->output_multiplier, p->output_shift);
    const int32_t n = p->dims[3], step1 = p->strides1[3], step2 = p->strides2[3];
    const int32_t offset1 = p->input1_offset, offset2 = p->input2_offset, output_offset = p->output_offset;
    const int32_t pair1 = adaptc_offset2(offset1), pair2 = adaptc_offset2(offset2);
    int8_t *const first = output;
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const int8_t *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                i3 = 0;
                if (step1 == 1 && step2 == 1) {
                    for (; i3 + 4 <= n; i3 += 4) {
                        const int32_t x = adaptc_read_s8x4(a + i3), y = adaptc_read_s8x4(b + i3);
                        adaptc_mul_x4(adaptc_sxtab16(pair1, x), adaptc_sxtab16_ror8(pair1, x),
                                      adaptc_sxtab16(pair2, y), adaptc_sxtab16_ror8(pair2, y), q, output_offset,
                                      output);
                        output += 4;
                    }
                } else if (step1 == 1 && step2 == 0) {
                    const int32_t y = adaptc_offset2(b[0] + offset2);
                    for (; i3 + 4 <= n; i3 += 4) {
                        const int32_t x = adaptc_read_s8x4(a + i3);
                        adaptc_mul_x4(adaptc_sxtab16(pair1, x), adaptc_sxtab16_ror8(pair1, x), y, y, q,
                                      output_offset, output);
                        output += 4;
                    }
                } else if (step1 == 0 && step2 == 1) {
                    const int32_t x = adaptc_offset2(a[0] + offset1);
                    for (; i3 + 4 <= n; i3 += 4) {
                        const int32_t y = adaptc_read_s8x4(b + i3);
                        adaptc_mul_x4(x, x, adaptc_sxtab16(pair2, y), adaptc_sxtab16_ror8(pair2, y), q,
                                      output_offset, output);
                        output += 4;
                    }
                }
                for (; i3 < n; ++i3) {
                    const int32_t product = (a[i3 * step1] + offset1) * (b[i3 * step2] + offset2);
                    *output++ = (int8_t)adaptc_ssat8(adaptc_rq_apply(product, q) + output_offset);
                }
            }
        }
    }
    adaptc_clamp_s8(first, (int32_t)(output - first), p->act_min, p->act_max);
}
