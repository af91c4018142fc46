/*
 * SQUARED_DIFFERENCE, int8, with broadcasting. Mirrors TFLite Micro's squared_difference.cc
 * (SquaredDifference<int8_t> with ArithmeticParams, ElementWise / BroadcastBinaryFunction4DSlow).
 *
 * Layout: as addsub_s8.c (four loops over the output, per input a stride per loop, 0: broadcast).
 * Arithmetic (left_shift 7):
 *   s_k = MultiplyByQuantizedMultiplierSmallerThanOneExp((input_k + input_k_offset) << left_shift,
 *                                                        input_k_multiplier, input_k_shift)
 *   out = clamp(output_offset + MultiplyByQuantizedMultiplier((s_1 - s_2)^2, output_multiplier,
 *               output_shift), act_min, act_max)       (|s_1 - s_2| < 2^15: the square fits)
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
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
} squared_difference_s8_params;

static void squared_difference_s8(const squared_difference_s8_params *p, const int8_t *input1,
                                  const int8_t *input2, int8_t *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const int8_t *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t shifted1 = (a[i3 * p->strides1[3]] + p->input1_offset) * (1 << p->left_shift);
                    const int32_t shifted2 = (b[i3 * p->strides2[3]] + p->input2_offset) * (1 << p->left_shift);
                    const int32_t diff = adaptc_mbqm(shifted1, p->input1_multiplier, p->input1_shift)
                                         - adaptc_mbqm(shifted2, p->input2_multiplier, p->input2_shift);
                    const int32_t value = p->output_offset
                                          + adaptc_mbqm(diff * diff, p->output_multiplier, p->output_shift);
                    *output++ = (int8_t)adaptc_clamp_i32(value, p->act_min, p->act_max);
                }
            }
        }
    }
}
