/*
 * DEPTHWISE_CONV_2D with packed low-bit weights (pot2 .. pot5, int4; adaptc.formats), int8
 * activations.  The arithmetic of depthwise_conv2d_s8 -- TFLite
 * reference_integer_ops::DepthwiseConvPerChannel, any depth multiplier -- on weights decoded
 * from `bits`-bit codes, as conv2d_s8_packed does for CONV_2D: with power-of-two weights and
 * requantization (pot layers) nothing is multiplied -- weights by shifting, indices by the
 * strides in p (compile time).
 *
 * Layout: input, bias, output: as depthwise_conv2d_s8 (output channel
 *         oc = in_channel * depth_multiplier + m reads input channel in_channel);
 *         filter: per output channel its k_h x k_w taps (row-major) as one bitstream of codes
 *         ([out_c][k_h][k_w], common.h adaptc_next_code);
 *         out_mult (int32; unused, may be NULL, when pot_requant), out_shift (int8) per channel;
 *         p->scratch: one output channel's decoded taps (k_h * k_w bytes).
 * Arithmetic: per output channel, its taps are decoded once (adaptc_decode), then for every
 *   output pixel acc = sum over in-bounds taps of (input + input_offset) * w -- pot weights
 *   (kind 1) as +-((input + input_offset) << e) (adaptc_pot_mac); acc += bias; requantized by
 *   adaptc_mbqm, or adaptc_mbqm_pot (no multiply) when every multiplier is 2^30
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
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t depth_multiplier;
    int32_t taps;           /* k_h * k_w */
    int32_t image_bytes;    /* in_h * in_w * in_c */
    int32_t step_y;         /* stride_h * in_w * in_c */
    int32_t step_x;         /* stride_w * in_c */
    int32_t tap_y;          /* dil_h * in_w * in_c */
    int32_t tap_x;          /* dil_w * in_c */
    int32_t origin;         /* -(pad_top * in_w * in_c + pad_left * in_c): the first window */
    int32_t bits;
    int32_t kind;
    int32_t pot_requant;
    int8_t *scratch;        /* arena: one channel's decoded taps, taps bytes */
} depthwise_conv2d_s8_packed_params;

static void depthwise_conv2d_s8_packed(const depthwise_conv2d_s8_packed_params *p, const int8_t *input,
                                       const uint8_t *filter, const int32_t *bias,
                                       const int32_t *out_mult, const int8_t *out_shift,
                                       int8_t *output)
{
    int8_t *const row = p->scratch;
    const int32_t bits = p->bits, kind = p->kind, input_offset = p->input_offset;
    adaptc_codes codes;
    int32_t in_channel, m, k, batch, out_y, out_x, filter_y, filter_x;
    codes.byte = filter;
    codes.bit = 0;
    for (in_channel = 0; in_channel < p->in_c; ++in_channel) {
        for (m = 0; m < p->depth_multiplier; ++m) {
            const int32_t out_channel = in_channel * p->depth_multiplier + m;
            const int8_t *image = input + in_channel;
            int8_t *out = output + out_channel;
            for (k = 0; k < p->taps; ++k) {
                row[k] = (int8_t)adaptc_decode(adaptc_next_code(&codes, bits), bits, kind);
            }
            for (batch = 0; batch < p->batches; ++batch, image += p->image_bytes) {
                int32_t in_y_origin = -p->pad_top;
                int32_t origin_y = p->origin;                    /* byte offset of the first window */
                for (out_y = 0; out_y < p->out_h; ++out_y, in_y_origin += p->stride_h, origin_y += p->step_y) {
                    int32_t in_x_origin = -p->pad_left;
                    int32_t origin = origin_y;                   /* byte offset of the window's tap 0 */
                    for (out_x = 0; out_x < p->out_w; ++out_x, in_x_origin += p->stride_w, origin += p->step_x) {
                        const int8_t *w = row;                   /* the window's taps, k_w a filter row */
                        int32_t acc = 0;
                        int32_t in_y = in_y_origin, tap_row = origin;
                        for (filter_y = 0; filter_y < p->k_h; ++filter_y, in_y += p->dil_h, tap_row += p->tap_y,
                             w += p->k_w) {
                            int32_t in_x = in_x_origin, tap = tap_row;
                            if (in_y < 0 || in_y >= p->in_h) {
                                continue;                       /* padding: the taps are skipped */
                            }
                            for (filter_x = 0; filter_x < p->k_w; ++filter_x, in_x += p->dil_w, tap += p->tap_x) {
                                if (in_x >= 0 && in_x < p->in_w) {
                                    const int32_t x = image[tap] + input_offset;
                                    acc = kind == 1 ? adaptc_pot_mac(acc, x, w[filter_x]) : acc + w[filter_x] * x;
                                }
                            }
                        }
                        if (bias != NULL) {
                            acc += bias[out_channel];
                        }
                        acc = p->pot_requant ? adaptc_mbqm_pot(acc, out_shift[out_channel])
                                             : adaptc_mbqm(acc, out_mult[out_channel], out_shift[out_channel]);
                        *out = (int8_t)adaptc_clamp_i32(acc + p->output_offset, p->act_min, p->act_max);
                        out += p->out_c;
                    }
                }
            }
        }
    }
}
