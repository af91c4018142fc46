/*
 * DEPTHWISE_CONV_2D, float32.
 * Mirrors TFLite reference_ops::DepthwiseConv (float)
 * (tensorflow/lite/kernels/internal/reference/depthwiseconv_float.h).
 *
 * Layout: input  NHWC [batches][in_h][in_w][in_c]        float
 *         filter [k_h][k_w][out_c] (TFLite 1HWC, leading 1 dropped), float
 *         bias   [out_c]                                 float, may be NULL
 *         output NHWC [batches][out_h][out_w][out_c]     float
 *         out_c == in_c * depth_multiplier; output channel
 *         oc = in_channel * depth_multiplier + m reads input channel in_channel.
 * Arithmetic: total = sum over in-bounds taps, in (filter_y, filter_x) order,
 *   of input * filter; output = clamp(total + bias[oc], act_min, act_max).
 */
static void depthwise_conv2d_f32(const depthwise_conv2d_f32_params *p,
                                 const float *input, const float *filter,
                                 const float *bias, float *output)
{
    int32_t batch, out_y, out_x, in_channel, m;
    for (batch = 0; batch < p->batches; ++batch) {
        for (out_y = 0; out_y < p->out_h; ++out_y) {
            const int32_t in_y_origin = out_y * p->stride_h - p->pad_top;
            for (out_x = 0; out_x < p->out_w; ++out_x) {
                const int32_t in_x_origin = out_x * p->stride_w - p->pad_left;
                for (in_channel = 0; in_channel < p->in_c; ++in_channel) {
                    for (m = 0; m < p->depth_multiplier; ++m) {
                        const int32_t output_channel = m + in_channel * p->depth_multiplier;
                        float total = 0.0f;
                        float bias_value = 0.0f;
                        float value;
                        int32_t filter_y, filter_x;
                        for (filter_y = 0; filter_y < p->k_h; ++filter_y) {
                            const int32_t in_y = in_y_origin + p->dil_h * filter_y;
                            if (in_y < 0 || in_y >= p->in_h) {
                                continue;
                            }
                            for (filter_x = 0; filter_x < p->k_w; ++filter_x) {
                                const int32_t in_x = in_x_origin + p->dil_w * filter_x;
                                if (in_x < 0 || in_x >= p->in_w) {
                                    continue;
                                }
                                total += input[((batch * p->in_h + in_y) * p->in_w + in_x) * p->in_c + in_channel]
                                       * filter[(filter_y * p->k_w + filter_x) * p->out_c + output_channel];
                            }
                        }
                        if (bias != NULL) {
                            bias_value = bias[output_channel];
                        }
                        value = total + bias_value;
                        value = value < p->act_min ? p->act_min : value;
                        value = value > p->act_max ? p->act_max : value;
                        output[((batch * p->out_h + out_y) * p->out_w + out_x) * p->out_c + output_channel] = value;
                    }
                }
            }
        }
    }
}
