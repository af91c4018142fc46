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
    /* Offsets run by addition: the multiplies are once per call, not per pixel (the Cortex-M0+
     * may have the 32-cycle multiplier). */
    const int32_t pixel = p->channels;
    const int32_t row = p->in_w * pixel;
    const int32_t step_y = p->stride_h * row;
    const int32_t step_x = p->stride_w * pixel;
    int32_t batch, out_y, out_x, channel;
    for (batch = 0; batch < p->batches; ++batch, input += p->in_h * row) {
        int32_t in_y_origin = -p->pad_top;
        int32_t offset_y = -p->pad_top * row;
        for (out_y = 0; out_y < p->out_h; ++out_y, in_y_origin += p->stride_h, offset_y += step_y) {
            const int32_t filter_y_start = in_y_origin < 0 ? -in_y_origin : 0;
            const int32_t filter_y_end = p->k_h < p->in_h - in_y_origin ? p->k_h : p->in_h - in_y_origin;
            int32_t in_x_origin = -p->pad_left;
            int32_t offset_x = -p->pad_left * pixel;
            for (out_x = 0; out_x < p->out_w; ++out_x, in_x_origin += p->stride_w, offset_x += step_x) {
                const int32_t filter_x_start = in_x_origin < 0 ? -in_x_origin : 0;
                const int32_t filter_x_end = p->k_w < p->in_w - in_x_origin ? p->k_w : p->in_w - in_x_origin;
                /* the window's first in-bounds element (row and column clipped to 0) */
                const int8_t *window = input + (in_y_origin < 0 ? 0 : offset_y) + (in_x_origin < 0 ? 0 : offset_x);
                for (channel = 0; channel < p->channels; ++channel, ++output) {
                    int32_t max = INT8_MIN;
                    const int8_t *in_row = window + channel;
                    int32_t filter_y, filter_x;
                    for (filter_y = filter_y_start; filter_y < filter_y_end; ++filter_y, in_row += row) {
                        const int8_t *in = in_row;
                        for (filter_x = filter_x_start; filter_x < filter_x_end; ++filter_x, in += pixel) {
                            if (*in > max) {
                                max = *in;
                            }
                        }
                    }
                    *output = (int8_t)adaptc_clamp_i32(max, p->act_min, p->act_max);
                }
            }
        }
    }
}
