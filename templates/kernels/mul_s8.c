/*
 * MUL, int8, with broadcasting. Mirrors TFLite Micro's reference_integer_ops::Mul /
 * BroadcastMul6DSlow (tensorflow/lite/kernels/internal/reference/integer_ops/mul.h).
 *
 * Layout: four loops over the output, outermost first (dims); input k's element of output
 *         position (i0, i1, i2, i3) is at sum(i_d * strides_k[d]) (stride 0: broadcast).
 * Arithmetic: out = clamp(output_offset + MultiplyByQuantizedMultiplier(
 *                 (input1 + input1_offset) * (input2 + input2_offset), multiplier, shift),
 *                 act_min, act_max)
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
} mul_s8_params;

static void mul_s8(const mul_s8_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const int8_t *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t product = (a[i3 * p->strides1[3]] + p->input1_offset)
                                            * (b[i3 * p->strides2[3]] + p->input2_offset);
                    const int32_t value = p->output_offset
                                          + adaptc_mbqm(product, p->output_multiplier, p->output_shift);
                    *output++ = (int8_t)adaptc_clamp_i32(value, p->act_min, p->act_max);
                }
            }
        }
    }
}
