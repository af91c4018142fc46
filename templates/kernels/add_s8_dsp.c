/*
 * ADD, int8, same-shape inputs: DSP-extension drop-in for add_s8 -- bit for bit its results
 * (TFLite reference_integer_ops::AddElementwise).
 *
 * Layout: input1, input2, output: flat [size] int8, as add_s8;
 *         p->table (or NULL): 512 int32, each input's rescaling of every int8 value x (indexed by
 *         x read as unsigned), input k's at 256 (k - 1): MultiplyByQuantizedMultiplier((x +
 *         offset_k) << left_shift, multiplier_k, shift_k), computed at compile time
 *         (targets/cortex_m/kernels/add.py), so that it is exact for any parameters.
 * Arithmetic, with a table: per element the two entries' sum, requantized by p->rq_mode -- 2:
 *   the tables hold twice the rescaled values, and the sum s2 = 2 sum takes SMMULR(s2, mult), the
 *   sign correction, + p->rq_round (2^(right - 1) + output_offset * 2^right: the rounding and the
 *   output offset at once), the right shift and SSAT (the builder proves |sum|, |rq_round| < 2^30
 *   and the shift negative: 11 instructions an element, the loads and the store included); 1:
 *   adaptc_rq; 0: adaptc_rq_exact -- + output_offset, saturated to int8 (SSAT); the output then
 *   clamped to [act_min, act_max] (nothing to do for [-128, 127]).
 *   Without (a tensor smaller than the table's 2 KiB, where the builder proves every rescaling
 *   exact for adaptc_rq): add_s8's arithmetic with each MultiplyByQuantizedMultiplier done by
 *   adaptc_rq_right (all shifts negative) or adaptc_rq, about 45 instructions an element.
 */
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
    int32_t rq_mode;        /* with a table: 2 the fast form, 1 adaptc_rq, 0 adaptc_rq_exact */
    int32_t rq_round;       /* rq_mode 2: 2^(right - 1) + output_offset * 2^right */
    int32_t act_min;
    int32_t act_max;
    const int32_t *table;   /* NULL: each input rescaled in the loop */
} add_s8_dsp_params;

static void add_s8_dsp(const add_s8_dsp_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t size = p->size, mult = p->output_multiplier, shift = p->output_shift;
    const int32_t output_offset = p->output_offset;
    int32_t i;
    if (p->table != NULL) {
        const int32_t *const t1 = p->table, *const t2 = p->table + 256;
        const uint8_t *const a = (const uint8_t *)input1, *const b = (const uint8_t *)input2;
        if (p->rq_mode == 2) {
            const int32_t right = -shift, k = p->rq_round;
            for (i = 0; i < size; ++i) {
                const int32_t s = adaptc_smmulr(t1[a[i]] + t2[b[i]], mult);
                output[i] = (int8_t)adaptc_ssat8((s + (s >> 31) + k) >> right);
            }
        } else {
            for (i = 0; i < size; ++i) {
                const int32_t sum = t1[a[i]] + t2[b[i]];
                const int32_t v = p->rq_mode == 0 ? adaptc_rq_exact(sum, mult, shift) : adaptc_rq(sum, mult, shift);
                output[i] = (int8_t)adaptc_ssat8(v + output_offset);
            }
        }
        adaptc_clamp_s8(output, size, p->act_min, p->act_max);
        return;
    }
    {
        const int32_t left_shift = p->left_shift, offset1 = p->input1_offset, offset2 = p->input2_offset;
        const int32_t mult1 = p->input1_multiplier, mult2 = p->input2_multiplier;
        const int32_t shift1 = p->input1_shift, shift2 = p->input2_shift;
        const int32_t act_min = p->act_min, act_max = p->act_max;
        if (shift1 < 0 && shift2 < 0 && shift < 0) {
            for (i = 0; i < size; ++i) {
                const int32_t s1 = adaptc_rq_right((int32_t)((uint32_t)(input1[i] + offset1) << left_shift), mult1,
                                                   -shift1);
                const int32_t s2 = adaptc_rq_right((int32_t)((uint32_t)(input2[i] + offset2) << left_shift), mult2,
                                                   -shift2);
                const int32_t raw = adaptc_rq_right(s1 + s2, mult, -shift) + output_offset;
                output[i] = (int8_t)adaptc_clamp_i32(raw, act_min, act_max);
            }
            return;
        }
        for (i = 0; i < size; ++i) {
            const int32_t s1 = adaptc_rq((int32_t)((uint32_t)(input1[i] + offset1) << left_shift), mult1, shift1);
            const int32_t s2 = adaptc_rq((int32_t)((uint32_t)(input2[i] + offset2) << left_shift), mult2, shift2);
            const int32_t raw = adaptc_rq(s1 + s2, mult, shift) + output_offset;
            output[i] = (int8_t)adaptc_clamp_i32(raw, act_min, act_max);
        }
    }
}
