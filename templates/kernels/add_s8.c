/*
 * ADD, int8, same-shape inputs (no broadcasting).
 * Mirrors TFLite reference_integer_ops::AddElementwise
 * (tensorflow/lite/kernels/internal/reference/integer_ops/add.h).
 *
 * Layout: input1, input2, output: flat [size] int8 (any layout, identical
 *         for the three tensors).
 * Arithmetic (TFLite ArithmeticParams, left_shift is 20 for int8):
 *   v1 = (input1 + input1_offset) << left_shift;
 *   s1 = MultiplyByQuantizedMultiplier(v1, input1_multiplier, input1_shift);
 *   v2, s2 likewise;
 *   raw = MultiplyByQuantizedMultiplier(s1 + s2, output_multiplier,
 *                                       output_shift) + output_offset;
 *   clamp to [act_min, act_max].
 * TFLite uses MultiplyByQuantizedMultiplierSmallerThanOneExp, which is the
 * same function for the non-positive shifts TFLite produces here.
 */
static void add_s8(const add_s8_params *p, const int8_t *input1,
                   const int8_t *input2, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t input1_val = p->input1_offset + input1[i];
        const int32_t input2_val = p->input2_offset + input2[i];
        const int32_t shifted_input1_val = (int32_t)((uint32_t)input1_val << p->left_shift);
        const int32_t shifted_input2_val = (int32_t)((uint32_t)input2_val << p->left_shift);
        const int32_t scaled_input1_val = adaptc_mbqm(
            shifted_input1_val, p->input1_multiplier, p->input1_shift);
        const int32_t scaled_input2_val = adaptc_mbqm(
            shifted_input2_val, p->input2_multiplier, p->input2_shift);
        const int32_t raw_sum = scaled_input1_val + scaled_input2_val;
        const int32_t raw_output = adaptc_mbqm(
            raw_sum, p->output_multiplier, p->output_shift) + p->output_offset;
        output[i] = (int8_t)adaptc_clamp_i32(raw_output, p->act_min, p->act_max);
    }
}
