/*
 * ADD / SUB, int8, with broadcasting: DSP-extension drop-in for addsub_s8 -- the same arguments
 * and, bit for bit, the same results (TFLite Micro reference_integer_ops::BroadcastAdd6DSlow,
 * reference_ops::BroadcastQuantSubSlow).
 *
 * Layout: as addsub_s8: four loops over the output, outermost first (dims); input k's element of
 *         output position (i0, i1, i2, i3) is at sum(i_d * strides_k[d]) (stride 0: broadcast).
 * Arithmetic: as addsub_s8, each MultiplyByQuantizedMultiplier done as adaptc_rq_apply (dsp.h;
 *   one SMMULR), which equals it for the step's bounded values -- the builder proves it for
 *   every int8 input (targets/cortex_m/kernels/binary.py, requant_is_exact) and declines the
 *   step otherwise.  An input's rescaling (x + offset) << left_shift is folded into the shift
 *   before the SMMULR (adaptc_addsub_scale).  Where the innermost loop does not move along an
 *   input (stride 0), that input is rescaled once per row; each row runs four outputs an
 *   iteration where the inputs it moves along are contiguous (strides 1 / 1, 1 / 0, 0 / 1), the
 *   rest one at a time.  Each output is saturated to int8 (SSAT); the whole output is then
 *   clamped to [act_min, act_max] (nothing to do for [-128, 127]).
 * Parameters: addsub_s8's, field for field.
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    int32_t left_shift;
    int32_t input1_offset;
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input1_sign;
    int32_t input2_offset;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t input2_sign;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} addsub_s8_dsp_params;

static void addsub_s8_dsp(const addsub_s8_dsp_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const adaptc_rq_params q1 = adaptc_rq_of(p->input1_multiplier, p->input1_shift);
    const adaptc_rq_params q2 = adaptc_rq_of(p->input2_multiplier, p->input2_shift);
    const adaptc_rq_params qo = adaptc_rq_of(p->output_multiplier, p->output_shift);
    const int32_t shift1 = p->left_shift + q1.left_shift, shift2 = p->left_shift + q2.left_shift;
    const int32_t offset1 = p->input1_offset, offset2 = p->input2_offset, output_offset = p->output_offset;
    const int32_t sign1 = p->input1_sign, sign2 = p->input2_sign;
    const int32_t n = p->dims[3], step1 = p->strides1[3], step2 = p->strides2[3];
    int8_t *const first = output;
    int32_t i0, i1, i2, i3, k;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const int8_t *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                i3 = 0;
                if (step2 == 0) {               /* input2 fixed along the row (input1 too for 0 / 0) */
                    const int32_t t2 = sign2 * adaptc_addsub_scale(b[0], offset2, shift2, q2);
                    if (step1 == 1) {
                        for (; i3 + 4 <= n; i3 += 4) {
                            for (k = 0; k < 4; ++k) {
                                const int32_t s1 = adaptc_addsub_scale(a[k], offset1, shift1, q1);
                                output[k] = adaptc_addsub_out(sign1 * s1 + t2, qo, output_offset);
                            }
                            a += 4;
                            output += 4;
                        }
                    }
                    for (; i3 < n; ++i3) {
                        *output++ = adaptc_addsub_out(sign1 * adaptc_addsub_scale(*a, offset1, shift1, q1) + t2, qo,
                                                      output_offset);
                        a += step1;
                    }
                } else if (step1 == 0) {        /* input1 fixed along the row */
                    const int32_t t1 = sign1 * adaptc_addsub_scale(a[0], offset1, shift1, q1);
                    if (step2 == 1) {
                        for (; i3 + 4 <= n; i3 += 4) {
                            for (k = 0; k < 4; ++k) {
                                const int32_t s2 = adaptc_addsub_scale(b[k], offset2, shift2, q2);
                                output[k] = adaptc_addsub_out(t1 + sign2 * s2, qo, output_offset);
                            }
                            b += 4;
                            output += 4;
                        }
                    }
                    for (; i3 < n; ++i3) {
                        *output++ = adaptc_addsub_out(t1 + sign2 * adaptc_addsub_scale(*b, offset2, shift2, q2), qo,
                                                      output_offset);
                        b += step2;
                    }
                } else {                        /* both inputs move */
                    if (step1 == 1 && step2 == 1) {
                        for (; i3 + 4 <= n; i3 += 4) {
                            for (k = 0; k < 4; ++k) {
                                const int32_t s1 = adaptc_addsub_scale(a[k], offset1, shift1, q1);
                                const int32_t s2 = adaptc_addsub_scale(b[k], offset2, shift2, q2);
                                output[k] = adaptc_addsub_out(sign1 * s1 + sign2 * s2, qo, output_offset);
                            }
                            a += 4;
                            b += 4;
                            output += 4;
                        }
                    }
                    for (; i3 < n; ++i3) {
                        const int32_t s1 = adaptc_addsub_scale(*a, offset1, shift1, q1);
                        const int32_t s2 = adaptc_addsub_scale(*b, offset2, shift2, q2);
                        *output++ = adaptc_addsub_out(sign1 * s1 + sign2 * s2, qo, output_offset);
                        a += step1;
                        b += step2;
                    }
                }
            }
        }
    }
    adaptc_clamp_s8(first, (int32_t)(output - first), p->act_min, p->act_max);
}
