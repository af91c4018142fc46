/*
 * Reductions over neighbouring axes, int8: MEAN, SUM, REDUCE_MAX.
 * Mirrors TFLite Micro's reduce_common.cc: MEAN and SUM (EvalIntegerMean / EvalSumHelper ->
 * reference_ops::QuantizedMeanOrSum, tensorflow/lite/kernels/internal/reference/reduce.h),
 * REDUCE_MAX (EvalMinMaxHelper -> reference_ops::ReduceGeneric; input and output parameters equal).
 *
 * Layout: input  [batches][count][channels]  int8  (count: the product of the reduced axes,
 *                                                    e.g. in_h * in_w of NHWC)
 *         output [batches][channels]         int8  (keep_dims only changes the output's shape)
 * Arithmetic, per batch and channel, by op:
 *   0 (mean, sum): acc = sum of the count inputs + sum_offset       (sum_offset = -input_zp * count)
 *                  out = MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_offset;
 *                  for a mean multiplier and shift fold in 1 / count (adaptc.fixedpoint
 *                  mean_multiplier, as TFLM does), for a sum they are in_scale / out_scale;
 *   1 (max):       out = the largest of the count inputs;
 *   then out is clamped to [act_min, act_max].
 */
typedef struct {
    int32_t batches;
    int32_t count;
    int32_t channels;
    int32_t op;
    int32_t sum_offset;
    int32_t multiplier;
    int32_t shift;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} reduce_s8_params;

static void reduce_s8(const reduce_s8_params *p, const int8_t *input, int8_t *output)
{
    int32_t batch, channel, i;
    for (batch = 0; batch < p->batches; ++batch) {
        const int8_t *image = input + batch * p->count * p->channels;
        for (channel = 0; channel < p->channels; ++channel) {
            const int8_t *x = image + channel;
            int32_t acc;
            if (p->op == 1) {
                acc = -128;
                for (i = 0; i < p->count; ++i) {
                    acc = x[0] > acc ? x[0] : acc;
                    x += p->channels;
                }
            } else {
                acc = p->sum_offset;
                for (i = 0; i < p->count; ++i) {
                    acc += x[0];
                    x += p->channels;
                }
                acc = adaptc_mbqm(acc, p->multiplier, p->shift) + p->output_offset;
            }
            output[batch * p->channels + channel] = (int8_t)adaptc_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
