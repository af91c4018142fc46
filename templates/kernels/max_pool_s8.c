/*
 * MAX_POOL_2D, int8.
 * Mirrors TFLite reference_integer_ops::MaxPool (int8)
 * (tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h).
 *
 * Layout: input  NHWC [batches][in_h][in_w][channels]    int8
 *         output NHWC [batches][out_h][out_w][channels]  int8
 *         (input and output share scale and zero point).
 * Arithmetic: max over the in-bounds window elements (starting from -128);
 *   clamp to [act_min, act_max].
 */
static void max_pool_s8(const pool_s8_params *p, const int8_t *input,
                        int8_t *output)
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
                    int32_t max = INT8_MIN;
                    int32_t filter_y, filter_x;
                    for (filter_y = filter_y_start; filter_y < filter_y_end; ++filter_y) {
                        for (filter_x = filter_x_start; filter_x < filter_x_end; ++filter_x) {
                            const int32_t in_x = in_x_origin + filter_x;
                            const int32_t in_y = in_y_origin + filter_y;
                            const int32_t value = input[((batch * p->in_h + in_y) * p->in_w + in_x) * p->channels + channel];
                            if (value > max) {
                                max = value;
                            }
                        }
                    }
                    max = adaptc_clamp_i32(max, p->act_min, p->act_max);
                    output[((batch * p->out_h + out_y) * p->out_w + out_x) * p->channels + channel] = (int8_t)max;
                }
            }
        }
    }
}
