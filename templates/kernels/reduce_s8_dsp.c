/*
 * MEAN and SUM over neighbouring axes, int8: DSP-extension drop-in for reduce_s8 (ops 0: mean,
 * sum) -- the same arguments and, bit for bit, the same results (TFLite Micro's reduce_common.cc
 * EvalIntegerMean / EvalSumHelper -> reference_ops::QuantizedMeanOrSum).
 *
 * Layout: input  [batches][count][channels]  int8, output [batches][channels]  int8: as reduce_s8.
 * Arithmetic: as reduce_s8's op 0: acc = the sum of the count inputs + sum_offset,
 *   out = MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_offset, clamped to
 *   [act_min, act_max].  The sums four int8 a word (dsp.h): over contiguous inputs (channels 1)
 *   adaptc_sum_s8, else for each four neighbouring channels adaptc_sum_s8_x4, a word a row (the
 *   last channels % 4 one at a time).  The requantization is adaptc_rq_apply (dsp.h; one
 *   SMMULR), exact for |acc| <= 255 * count, which the builder proves
 *   (targets/cortex_m/kernels/reduce.py, requant_is_exact); saturated by SSAT, and the output
 *   clamped to [act_min, act_max] at the end (nothing to do for [-128, 127]).
 */
typedef struct {
    int32_t batches;
    int32_t count;
    int32_t channels;
    int32_t sum_offset;
    int32_t multiplier;
    int32_t shift;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} reduce_s8_dsp_params;

static void reduce_s8_dsp(const reduce_s8_dsp_params *p, const int8_t *input, int8_t *output)
{
    const adaptc_rq_params q = adaptc_rq_of(p->multiplier, p->shift);
    const int32_t count = p->count, channels = p->channels, sum_offset = p->sum_offset;
    const int32_t output_offset = p->output_offset;
    int32_t batch, c, i, k;
    for (batch = 0; batch < p->batches; ++batch) {
        const int8_t *const image = input + batch * count * channels;
        int8_t *const out = output + batch * channels;
        if (channels == 1) {
            out[0] = (int8_t)adaptc_ssat8(adaptc_rq_apply(adaptc_sum_s8(image, count) + sum_offset, q)
                                          + output_offset);
            continue;
        }
        for (c = 0; c + 4 <= channels; c += 4) {
            int32_t sums[4];
            adaptc_sum_s8_x4(image + c, channels, count, sums);
            for (k = 0; k < 4; ++k) {
                out[c + k] = (int8_t)adaptc_ssat8(adaptc_rq_apply(sums[k] + sum_offset, q) + output_offset);
            }
        }
        for (; c < channels; ++c) {
            const int8_t *x = image + c;
            int32_t acc = sum_offset;
            for (i = 0; i < count; ++i) {
                acc += x[0];
                x += channels;
            }
            out[c] = (int8_t)adaptc_ssat8(adaptc_rq_apply(acc, q) + output_offset);
        }
    }
    adaptc_clamp_s8(output, p->batches * channels, p->act_min, p->act_max);
}
