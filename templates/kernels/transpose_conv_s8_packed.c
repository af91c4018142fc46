/*
 * TRANSPOSE_CONV (ONNX ConvTranspose) with packed low-bit weights (pot2 .. pot5, int4;
 * adaptc.formats), int8 activations.  The arithmetic of transpose_conv_s8 -- TFLite
 * reference_integer_ops::TransposeConv with ONNX's dilation and depthwise grouping -- on weights
 * decoded from `bits`-bit codes, as conv2d_s8_packed does for CONV_2D: with power-of-two weights
 * and requantization (pot layers) nothing is multiplied -- weights by shifting, indices by the
 * strides in p (compile time).
 *
 * Layout: input, bias, output: as transpose_conv_s8;
 *         filter: per input channel its [k_h][k_w][out_group] weights (transpose_conv_s8's
 *         order) as one bitstream of codes (common.h adaptc_next_code);
 *         out_mult (int32; unused, may be NULL, when pot_requant), out_shift (int8) per channel;
 *         p->scratch: int32 [batches][out_h][out_w][out_c] accumulators, then one input
 *         channel's decoded weights (depth bytes).
 * Arithmetic: the accumulators are zeroed; per input channel, its weights are decoded once
 *   (adaptc_decode), then every input element of that channel scatters
 *   (input + input_offset) * w into the outputs it reaches -- out_y = in_y * stride_h - pad_top
 *   + filter_y * dil_h (out_x likewise), out-of-bounds ones dropped -- for the out_group output
 *   channels of its group; pot weights (kind 1) as +-((input + input_offset) << e)
 *   (adaptc_pot_mac).  The sums are those of transpose_conv_s8 in another order (int32
 *   addition wraps, so the order does not matter).  Then per output acc += bias; requantized
 *   by adaptc_mbqm, or adaptc_mbqm_pot (no multiply) when every multiplier is 2^30
 *   (pot_requant); + output_offset, clamp to [act_min, act_max].
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
    int32_t depth;          /* k_h * k_w * out_group: one input channel's weights */
    int32_t outputs;        /* batches * out_h * out_w * out_c */
    int32_t out_image;      /* out_h * out_w * out_c */
    int32_t step_y;         /* stride_h * out_w * out_c */
    int32_t step_x;         /* stride_w * out_c */
    int32_t tap_y;          /* dil_h * out_w * out_c */
    int32_t tap_x;          /* dil_w * out_c */
    int32_t origin_y;       /* -pad_top * out_w * out_c */
    int32_t origin_x;       /* -pad_left * out_c */
    int32_t filter_row;     /* k_w * out_group */
    int32_t bits;
    int32_t kind;
    int32_t pot_requant;
    int32_t *scratch;       /* arena: outputs int32 accumulators, then depth bytes */
} transpose_conv_s8_packed_params;

static void transpose_conv_s8_packed(const transpose_conv_s8_packed_params *p, const int8_t *input,
                                     const uint8_t *filter, const int32_t *bias,
                                     const int32_t *out_mult, const int8_t *out_shift,
                                     int8_t *output)
{
    int32_t *const acc = p->scratch;
    int8_t *const row = (int8_t *)(acc + p->outputs);
    const int32_t bits = p->bits, kind = p->kind, out_group = p->out_group;
    adaptc_codes codes;
    int32_t i, in_channel, k, batch, in_y, in_x, filter_y, filter_x, out_channel;
    int32_t group_left = 0, first = -out_group;
    codes.byte = filter;
    codes.bit = 0;
    for (i = 0; i < p->outputs; ++i) {
        acc[i] = 0;
    }
    for (in_channel = 0; in_channel < p->in_c; ++in_channel) {
        const int8_t *in_ptr = input + in_channel;
        int32_t image = 0;                                   /* the batch's first accumulator */
        if (group_left == 0) {                               /* the next group: its output channels */
            group_left = p->in_group;
            first += out_group;
        }
        --group_left;
        for (k = 0; k < p->depth; ++k) {
            row[k] = (int8_t)adaptc_decode(adaptc_next_code(&codes, bits), bits, kind);
        }
        for (batch = 0; batch < p->batches; ++batch, image += p->out_image) {
            int32_t out_y0 = -p->pad_top, origin_y = p->origin_y;
            for (in_y = 0; in_y < p->in_h; ++in_y, out_y0 += p->stride_h, origin_y += p->step_y) {
                int32_t out_x0 = -p->pad_left, origin_x = p->origin_x;
                for (in_x = 0; in_x < p->in_w; ++in_x, out_x0 += p->stride_w, origin_x += p->step_x,
                     in_ptr += p->in_c) {
                    const int32_t value = *in_ptr + p->input_offset;
                    const int8_t *w_row = row;
                    int32_t out_y = out_y0, tap_row = image + origin_y + first;
                    for (filter_y = 0; filter_y < p->k_h; ++filter_y, out_y += p->dil_h, tap_row += p->tap_y) {
                        int32_t out_x = out_x0, tap = tap_row + origin_x;
                        const int8_t *w = w_row;
                        w_row += p->filter_row;
                        if (out_y < 0 || out_y >= p->out_h) {
                            continue;
                        }
                        for (filter_x = 0; filter_x < p->k_w; ++filter_x, out_x += p->dil_w, tap += p->tap_x,
                             w += out_group) {
                            int32_t *out;
                            if (out_x < 0 || out_x >= p->out_w) {
                                continue;
                            }
                            out = acc + tap;
                            if (kind == 1) {
                                for (k = 0; k < out_group; ++k) {
                                    out[k] = adaptc_pot_mac(out[k], value, w[k]);
                                }
                            } else {
                                for (k = 0; k < out_group; ++k) {
                                    out[k] += value * w[k];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out_channel = 0;
    for (i = 0; i < p->outputs; ++i) {
        int32_t v = acc[i];
        if (bias != NULL) {
            v += bias[out_channel];
        }
        v = p->pot_requant ? adaptc_mbqm_pot(v, out_shift[out_channel])
                           : adaptc_mbqm(v, out_mult[out_channel], out_shift[out_channel]);
        output[i] = (int8_t)adaptc_clamp_i32(v + p->output_offset, p->act_min, p->act_max);
        if (++out_channel == p->out_c) {
            out_channel = 0;
        }
    }
}
