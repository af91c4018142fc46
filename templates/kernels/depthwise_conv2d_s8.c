/*
 * DEPTHWISE_CONV_2D, int8 (per-channel quantized).
 * Mirrors TFLite reference_integer_ops::DepthwiseConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/depthwise_conv.h).
 *
 * Layout: input  NHWC [batches][in_h][in_w][in_c]        int8
 *         filter [k_h][k_w][filter_c] (TFLite 1HWC, leading 1 dropped), int8; the first
 *                out_c channels are read
 *         bias   [out_c]                                 int32, may be NULL
 *         output NHWC [batches][out_h][out_w][out_c]     int8
 *         out_c == in_c * depth_multiplier; output channel
 *         oc = in_channel * depth_multiplier + m reads input channel in_channel.
 * Arithmetic: acc = sum over in-bounds taps of (input + input_offset) * filter
 *   (out-of-bounds taps skipped); acc += bias[oc];
 *   acc = MultiplyByQuantizedMultiplier(acc, out_mult[oc], out_shift[oc]);
 *   acc += output_offset; clamp to [act_min, act_max].
 */
static void depthwise_conv2d_s8(const depthwise_conv2d_s8_params *p,
                                const int8_t *input, const int8_t *filter,
                                const int32_t *bias, const int32_t *out_mult,
                                const int32_t *out_shift, int8_t *output)
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
                        int32_t acc = 0;
                        int32_t filter_y, filter_x;
                        for (filter_y = 0; filter_y < p->k_h; ++filter_y) {
                            const int32_t in_y = in_y_origin + p->dil_h * filter_y;
                            if (in_y < 0 || in_y >= p->in_h) {
                                continue;
                            }
                            for (filter_x = 0; filter_x < p->k_w; ++filter_x) {
                                const int32_t in_x = in_x_origin + p->dil_w * filter_x;
                                int32_t input_val, filter_val;
                                if (in_x < 0 || in_x >= p->in_w) {
                                    continue;
                                }
                                input_val = input[((batch * p->in_h + in_y) * p->in_w + in_x) * p->in_c + in_channel];
                                filter_val = filter[(filter_y * p->k_w + filter_x) * p->filter_c + output_channel];
                                acc += filter_val * (input_val + p->input_offset);
                            }
                        }
                        if (bias != NULL) {
                            acc += bias[output_channel];
                        }
                        acc = adaptc_mbqm(acc, out_mult[output_channel], out_shift[output_channel]);
                        acc += p->output_offset;
                        acc = adaptc_clamp_i32(acc, p->act_min, p->act_max);
                        output[((batch * p->out_h + out_y) * p->out_w + out_x) * p->out_c + output_channel] = (int8_t)acc;
                    }
                }
            }
        }
    }
}
