/*
 * TRANSPOSE_CONV (ONNX ConvTranspose), int8, per-channel quantized.
 * Mirrors TFLite reference_integer_ops::TransposeConv
 * (tensorflow/lite/kernels/internal/reference/integer_ops/transpose_conv.h), with ONNX's
 * dilation and depthwise grouping added to the scatter.
 *
 * Layout: input  NHWC [batches][in_h][in_w][in_c]               int8
 *         filter [in_c][k_h][k_w][out_group]                    int8 (symmetric; the IOHW
 *                filter with the output channels of its group innermost)
 *         bias   [out_c]                                        int32, may be NULL
 *         output NHWC [batches][out_h][out_w][out_c]            int8
 *         p->scratch: int32 [batches][out_h][out_w][out_c] accumulators (arena).
 * Arithmetic: the scratch is zeroed; every input element, in (batch, in_y, in_x, in_channel)
 *   order, scatters (input + input_offset) * filter into the outputs it reaches --
 *   out_y = in_y * stride_h - pad_top + filter_y * dil_h (out_x likewise), out-of-bounds ones
 *   dropped -- for the out_group output channels of its group (in_channel / in_group);
 *   then per output acc += bias[oc]; acc = MultiplyByQuantizedMultiplier(acc, out_mult[oc],
 *   out_shift[oc]); acc += output_offset; clamp to [act_min, act_max].
 */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t out_c;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t in_group;       /* input channels per group (in_c when groups == 1) */
    int32_t out_group;      /* output channels per group (out_c when groups == 1) */
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t *scratch;       /* arena: batches * out_h * out_w * out_c int32 accumulators */
} transpose_conv_s8_params;

static void transpose_conv_s8(const transpose_conv_s8_params *p, const int8_t *input,
                              const int8_t *filter, const int32_t *bias,
                              const int32_t *out_mult, const int32_t *out_shift,
                              int8_t *output)
{
    int32_t *const acc = p->scratch;
    const int32_t count = p->batches * p->out_h * p->out_w * p->out_c;
    int32_t i, batch, in_y, in_x, in_channel, filter_y, filter_x, k;
    for (i = 0; i < count; ++i) {
        acc[i] = 0;
    }
    for (batch = 0; batch < p->batches; ++batch) {
        for (in_y = 0; in_y < p->in_h; ++in_y) {
            for (in_x = 0; in_x < p->in_w; ++in_x) {
                const int8_t *in_ptr = input + ((batch * p->in_h + in_y) * p->in_w + in_x) * p->in_c;
                for (in_channel = 0; in_channel < p->in_c; ++in_channel) {
                    const int32_t value = in_ptr[in_channel] + p->input_offset;
                    const int32_t first = (in_channel / p->in_group) * p->out_group;
                    for (filter_y = 0; filter_y < p->k_h; ++filter_y) {
                        const int32_t out_y = in_y * p->stride_h - p->pad_top + filter_y * p->dil_h;
                        if (out_y < 0 || out_y >= p->out_h) {
                            continue;
                        }
                        for (filter_x = 0; filter_x < p->k_w; ++filter_x) {
                            const int32_t out_x = in_x * p->stride_w - p->pad_left + filter_x * p->dil_w;
                            const int8_t *filter_ptr;
                            int32_t *out_ptr;
                            if (out_x < 0 || out_x >= p->out_w) {
                                continue;
                            }
                            filter_ptr = filter + ((in_channel * p->k_h + filter_y) * p->k_w + filter_x) * p->out_group;
                            out_ptr = acc + ((batch * p->out_h + out_y) * p->out_w + out_x) * p->out_c + first;
                            for (k = 0; k < p->out_group; ++k) {
                                out_ptr[k] += value * filter_ptr[k];
                            }
                        }
                    }
                }
            }
        }
    }
    for (i = 0; i < count; ++i) {
        const int32_t out_channel = i % p->out_c;
        int32_t v = acc[i];
        if (bias != NULL) {
            v += bias[out_channel];
        }
        v = adaptc_mbqm(v, out_mult[out_channel], out_shift[out_channel]);
        v += p->output_offset;
        output[i] = (int8_t)adaptc_clamp_i32(v, p->act_min, p->act_max);
    }
}
