/*
 * Reductions over neighbouring axes, float32: MEAN, SUM, REDUCE_MAX.
 * Mirrors ONNX ReduceMean / ReduceSum / ReduceMax and TFLite's reference_ops::Mean and
 * ReduceGeneric (float): the inputs of an output visited in memory order.
 *
 * Layout: input  [batches][count][channels]  float  (count: the product of the reduced axes)
 *         output [batches][channels]         float
 * Arithmetic, by op: 0 (mean) sum / count, 1 (sum) sum, 2 (max) the largest input;
 *   out = clamp(value, act_min, act_max).
 */
typedef struct {
    int32_t batches;
    int32_t count;
    int32_t channels;
    int32_t op;
    float act_min;
    float act_max;
} reduce_f32_params;

static void reduce_f32(const reduce_f32_params *p, const float *input, float *output)
{
    int32_t batch, channel, i;
    for (batch = 0; batch < p->batches; ++batch) {
        const float *image = input + batch * p->count * p->channels;
        for (channel = 0; channel < p->channels; ++channel) {
            const float *x = image + channel;
            float value = x[0];
            if (p->op == 2) {
                for (i = 1; i < p->count; ++i) {
                    x += p->channels;
                    value = x[0] > value ? x[0] : value;
                }
            } else {
                for (i = 1; i < p->count; ++i) {
                    x += p->channels;
                    value += x[0];
                }
                if (p->op == 0) {
                    value = value / (float)p->count;
                }
            }
            value = value < p->act_min ? p->act_min : value;
            value = value > p->act_max ? p->act_max : value;
            output[batch * p->channels + channel] = value;
        }
    }
}
