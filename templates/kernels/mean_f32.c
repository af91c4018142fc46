/*
 * MEAN over the spatial axes (global average pooling), float32.
 * Mirrors ONNX ReduceMean / TFLite reference_ops::Mean (float): the sum of the count inputs
 * of a channel divided by count.
 *
 * Layout: input  NHWC [batches][count = in_h * in_w][channels]  float
 *         output      [batches][channels]                       float
 * Arithmetic: out = clamp(sum / count, act_min, act_max).
 */
typedef struct {
    int32_t batches;
    int32_t count;
    int32_t channels;
    float act_min;
    float act_max;
} mean_f32_params;

static void mean_f32(const mean_f32_params *p, const float *input, float *output)
{
    int32_t batch, channel, i;
    for (batch = 0; batch < p->batches; ++batch) {
        const float *image = input + batch * p->count * p->channels;
        for (channel = 0; channel < p->channels; ++channel) {
            const float *x = image + channel;
            float sum = 0.0f;
            float value;
            for (i = 0; i < p->count; ++i) {
                sum += x[0];
                x += p->channels;
            }
            value = sum / (float)p->count;
            value = value < p->act_min ? p->act_min : value;
            value = value > p->act_max ? p->act_max : value;
            output[batch * p->channels + channel] = value;
        }
    }
}
