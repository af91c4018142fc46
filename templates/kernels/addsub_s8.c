/*
 * ADD / SUB, int8, with broadcasting. Mirrors TFLite Micro's reference_integer_ops::
 * BroadcastAdd6DSlow and reference_ops::BroadcastQuantSubSlow (reference/integer_ops/add.h,
 * reference/sub.h); the same-shape ADD of two activations is add_s8.c.
 *
 * Layout: four loops over the output, outermost first (dims); input k's element of output
 *         position (i0, i1, i2, i3) is at sum(i_d * strides_k[d]) (stride 0: broadcast).
 * Arithmetic (ArithmeticParams, left_shift 20):
 *   s_k = MultiplyByQuantizedMultiplier((input_k + input_k_offset) << left_shift,
 *                                       input_k_multiplier, input_k_shift)
 *   out = clamp(output_offset + MultiplyByQuantizedMultiplier(input1_sign * s_1 + input2_sign * s_2,
 *               output_multiplier, output_shift), act_min, act_max)
 *   ADD: signs 1, 1; SUB: 1, -1; SUB of a constant first operand (stored as input2): -1, 1.
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
} addsub_s8_params;

static void addsub_s8(const addsub_s8_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const int8_t *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t shifted1 = (int32_t)((uint32_t)(a[i3 * p->strides1[3]] + p->input1_offset)
                                                       << p->left_shift);
                    const int32_t shifted2 = (int32_t)((uint32_t)(b[i3 * p->strides2[3]] + p->input2_offset)
                                                       << p->left_shift);
                    const int32_t raw = p->input1_sign * adaptc_mbqm(shifted1, p->input1_multiplier, p->input1_shift)
                                        + p->input2_sign * adaptc_mbqm(shifted2, p->input2_multiplier,
                                                                       p->input2_shift);
                    const int32_t value = p->output_offset
                                          + adaptc_mbqm(raw, p->output_multiplier, p->output_shift);
                    *output++ = (int8_t)adaptc_clamp_i32(value, p->act_min, p->act_max);
                }
            }
        }
    }
}
