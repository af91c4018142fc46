/*
 * ADD, int8, same-shape inputs: DSP-extension drop-in for add_s8 -- same arguments and, bit for
 * bit, the same results (TFLite reference_integer_ops::AddElementwise).
 *
 * Layout: input1, input2, output: flat [size] int8, as add_s8.
 * Arithmetic: as add_s8, with each MultiplyByQuantizedMultiplier done by adaptc_rq (dsp.h;
 *   one SMMULR): exact for the bounded values an int8 add produces, which
 *   targets/kernels_dsp.py checks.  With every shift negative (TFLite's usual parameters) the
 *   loop uses adaptc_rq_right throughout.
 */
static void add_s8_dsp(const add_s8_params *p, const int8_t *input1, const int8_t *input2,
                       int8_t *output)
{
    const int32_t size = p->size, left_shift = p->left_shift;
    const int32_t offset1 = p->input1_offset, offset2 = p->input2_offset, output_offset = p->output_offset;
    const int32_t mult1 = p->input1_multiplier, mult2 = p->input2_multiplier, mult_out = p->output_multiplier;
    const int32_t shift1 = p->input1_shift, shift2 = p->input2_shift, shift_out = p->output_shift;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    int32_t i;
    if (shift1 < 0 && shift2 < 0 && shift_out < 0) {
        for (i = 0; i < size; ++i) {
            const int32_t s1 = adaptc_rq_right((int32_t)((uint32_t)(input1[i] + offset1) << left_shift), mult1, -shift1);
            const int32_t s2 = adaptc_rq_right((int32_t)((uint32_t)(input2[i] + offset2) << left_shift), mult2, -shift2);
            const int32_t raw = adaptc_rq_right(s1 + s2, mult_out, -shift_out) + output_offset;
            output[i] = (int8_t)adaptc_clamp_i32(raw, act_min, act_max);
        }
        return;
    }
    for (i = 0; i < size; ++i) {
        const int32_t s1 = adaptc_rq((int32_t)((uint32_t)(input1[i] + offset1) << left_shift), mult1, shift1);
        const int32_t s2 = adaptc_rq((int32_t)((uint32_t)(input2[i] + offset2) << left_shift), mult2, shift2);
        const int32_t raw = adaptc_rq(s1 + s2, mult_out, shift_out) + output_offset;
        output[i] = (int8_t)adaptc_clamp_i32(raw, act_min, act_max);
    }
}
