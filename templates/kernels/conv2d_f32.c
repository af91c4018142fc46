/*
 * CONV_2D, float32.
 * Mirrors TFLite reference_ops::Conv (float)
 * (tensorflow/lite/kernels/internal/reference/conv.h).
 *
 * Layout: input  NHWC [batches][in_h][in_w][in_c]        float
 *         filter OHWI [out_c][k_h][k_w][in_c]            float
 *         bias   [out_c]                                 float, may be NULL
 *         output NHWC [batches][out_h][out_w][out_c]     float
 * Arithmetic: total = sum over in-bounds taps, in (filter_y, filter_x,
 *   in_channel) order, of input * filter (out-of-bounds taps skipped, i.e.
 *   zero padding); output = clamp(total + bias[oc], act_min, act_max).
 */
static void conv2d_f32(const conv2d_f32_params *p, const float *input,
                       const float *filter, const float *bias, float *output)
{
    int32_t batch, out_y, out_x, out_channel;
    for (batch = 0; batch < p->batches; ++batch) {
        for (out_y = 0; out_y < p->out_h; ++out_y) {
            const int32_t in_y_origin = out_y * p->stride_h - p->pad_top;
            for (out_x = 0; out_x < p->out_w; ++out_x) {
                const int32_t in_x_origin = out_x * p->stride_w - p->pad_left;
                for (out_channel = 0; out_channel < p->out_c; ++out_channel) {
                    float total = 0.0f;
                    float bias_value = 0.0f;
                    float value;
                    int32_t filter_y, filter_x, in_channel;
                    for (filter_y = 0; filter_y < p->k_h; ++filter_y) {
                        const int32_t in_y = in_y_origin + p->dil_h * filter_y;
                        if (in_y < 0 || in_y >= p->in_h) {
                            continue;
                        }
                        for (filter_x = 0; filter_x < p->k_w; ++filter_x) {
                            const int32_t in_x = in_x_origin + p->dil_w * filter_x;
                            const float *in_ptr;
                            const float *filter_ptr;
                            if (in_x < 0 || in_x >= p->in_w) {
                                continue;
                            }
                            in_ptr = input + ((batch * p->in_h + in_y) * p->in_w + in_x) * p->in_c;
                            filter_ptr = filter + ((out_channel * p->k_h + filter_y) * p->k_w + filter_x) * p->in_c;
                            for (in_channel = 0; in_channel < p->in_c; ++in_channel) {
                                total += in_ptr[in_channel] * filter_ptr[in_channel];
                            }
                        }
                    }
                    if (bias != NULL) {
                        bias_value = bias[out_channel];
                    }
                    value = total + bias_value;
                    value = value < p->act_min ? p->act_min : value;
                    value = value > p->act_max ? p->act_max : value;
                    output[((batch * p->out_h + out_y) * p->out_w + out_x) * p->out_c + out_channel] = value;
                }
            }
        }
    }
}
