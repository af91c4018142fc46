/*
 * AVERAGE_POOL_2D, float32.
 * Mirrors TFLite reference_ops::AveragePool (float)
 * (tensorflow/lite/kernels/internal/reference/pooling.h).
 *
 * Layout: input  NHWC [batches][in_h][in_w][channels]    float
 *         output NHWC [batches][out_h][out_w][channels]  float
 * Arithmetic: total = sum over the in-bounds window elements;
 *   output = clamp(total / filter_count, act_min, act_max) where
 *   filter_count is the number of in-bounds elements (padding excluded).
 *   An empty window (impossible with TFLite's padding) yields 0, clamped.
 */
static void avg_pool_f32(const pool_f32_params *p, const float *input,
                         float *output)
{
    int32_t batch, out_y, out_x, channel;
    for (batch = 0; batch < p->batches; ++batch) {
        for (out_y = 0; out_y < p->out_h; ++out_y) {
            const int32_t in_y_origin = out_y * p->stride_h - p->pad_top;
            const int32_t filter_y_start = in_y_origin < 0 ? -in_y_origin : 0;
            const int32_t filter_y_end = p->k_h < p->in_h - in_y_origin ? p->k_h : p->in_h - in_y_origin;
            for (out_x = 0; out_x < p->out_w; ++out_x) {
                const int32_t in_x_origin = out_x * p->stride_w - p->pad_left;
                const int32_t filter_x_start = in_x_origin < 0 ? -in_x_origin : 0;
                const int32_t filter_x_end = p->k_w < p->in_w - in_x_origin ? p->k_w : p->in_w - in_x_origin;
                for (channel = 0; channel < p->channels; ++channel) {
                    float total = 0.0f;
                    float filter_count = 0.0f;
                    float average = 0.0f;
                    int32_t filter_y, filter_x;
                    for (filter_y = filter_y_start; filter_y < filter_y_end; ++filter_y) {
                        for (filter_x = filter_x_start; filter_x < filter_x_end; ++filter_x) {
                            const int32_t in_x = in_x_origin + filter_x;
                            const int32_t in_y = in_y_origin + filter_y;
                            total += input[((batch * p->in_h + in_y) * p->in_w + in_x) * p->channels + channel];
                            filter_count += 1.0f;
                        }
                    }
                    if (filter_count > 0.0f) {
                        average = total / filter_count;
                    }
                    average = average < p->act_min ? p->act_min : average;
                    average = average > p->act_max ? p->act_max : average;
                    output[((batch * p->out_h + out_y) * p->out_w + out_x) * p->channels + channel] = average;
                }
            }
        }
    }
}
