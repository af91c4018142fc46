/*
 * MEAN over the spatial axes (global average pooling), int8.
 * Mirrors TFLite Micro's MEAN (reduce_common.cc EvalIntegerMean ->
 * reference_ops::QuantizedMeanOrSum, tensorflow/lite/kernels/internal/reference/reduce.h).
 *
 * Layout: input  NHWC [batches][count = in_h * in_w][channels]  int8
 *         output      [batches][channels]                       int8
 *         (keep_dims only changes the output's shape, [batches][1][1][channels]).
 * Arithmetic, per batch and channel:
 *   acc = sum of the count inputs + sum_offset       (sum_offset = -input_zp * count)
 *   out = MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_offset,
 *         clamped to [act_min, act_max];
 *   multiplier and shift fold in 1 / count (computed at compile time, adaptc.fixedpoint
 *   mean_multiplier, as TFLM does in Prepare).
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
} mean_s8_params;

static void mean_s8(const mean_s8_params *p, const int8_t *input, int8_t *output)
{
    int32_t batch, channel, i;
    for (batch = 0; batch < p->batches; ++batch) {
        const int8_t *image = input + batch * p->count * p->channels;
        for (channel = 0; channel < p->channels; ++channel) {
            const int8_t *x = image + channel;
            int32_t acc = p->sum_offset;
            for (i = 0; i < p->count; ++i) {
                acc += x[0];
                x += p->channels;
            }
            acc = adaptc_mbqm(acc, p->multiplier, p->shift) + p->output_offset;
            output[batch * p->channels + channel] = (int8_t)adaptc_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
