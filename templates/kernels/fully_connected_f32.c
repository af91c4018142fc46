/*
 * FULLY_CONNECTED, float32.
 * Mirrors TFLite reference_ops::FullyConnected (float)
 * (tensorflow/lite/kernels/internal/reference/fully_connected.h).
 *
 * Layout: input   [batches][in_features]                 float
 *         weights [out_features][in_features]            float
 *         bias    [out_features]                         float, may be NULL
 *         output  [batches][out_features]                float
 * Arithmetic: total = sum over d of input[d] * weights[o][d];
 *   output = clamp(total + bias[o], act_min, act_max).
 */
static void fully_connected_f32(const fully_connected_f32_params *p,
                                const float *input, const float *weights,
                                const float *bias, float *output)
{
    int32_t b, out_c, d;
    for (b = 0; b < p->batches; ++b) {
        const float *input_row = input + b * p->in_features;
        for (out_c = 0; out_c < p->out_features; ++out_c) {
            const float *weights_row = weights + out_c * p->in_features;
            float total = 0.0f;
            float bias_value = 0.0f;
            float value;
            for (d = 0; d < p->in_features; ++d) {
                total += input_row[d] * weights_row[d];
            }
            if (bias != NULL) {
                bias_value = bias[out_c];
            }
            value = total + bias_value;
            value = value < p->act_min ? p->act_min : value;
            value = value > p->act_max ? p->act_max : value;
            output[b * p->out_features + out_c] = value;
        }
    }
}
