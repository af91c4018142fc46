/*
 * CONV_2D with packed low-bit weights (pot2 .. pot5, int4; adaptc.formats), int8 activations.
 * The arithmetic of conv2d_s8 -- TFLite reference_integer_ops::ConvPerChannel -- on weights
 * decoded from `bits`-bit codes; with power-of-two weights and requantization (pot layers)
 * nothing is multiplied: weights by shifting, indices by the strides in p (compile time).
 *
 * Layout: input, bias, output: as conv2d_s8;
 *         filter: the OHWI weights as one bitstream of codes (common.h adaptc_next_code);
 *         out_mult (int32; unused, may be NULL, when pot_requant), out_shift (int8) per channel;
 *         p->scratch: one decoded filter row (depth bytes).
 * Arithmetic: per output channel, its row is decoded once (adaptc_decode), then for every
 *   output pixel acc = sum over in-bounds taps of (input + input_offset) * w -- pot weights
 *   (kind 1) as +-((input + input_offset) << e) (adaptc_pot_mac); acc += bias; requantized by
 *   adaptc_mbqm, or adaptc_mbqm_pot (no multiply) when every multiplier is 2^30
 *   (pot_requant); + output_offset, clamp to [act_min, act_max].
 */
static void conv2d_s8_packed(const conv2d_s8_packed_params *p, const int8_t *input,
                             const uint8_t *filter, const int32_t *bias,
                             const int32_t *out_mult, const int8_t *out_shift,
                             int8_t *output)
{
    int8_t *const row = p->scratch;
    const int32_t in_c = p->in_c, bits = p->bits, kind = p->kind, input_offset = p->input_offset;
    adaptc_codes codes;
    int32_t out_channel, k, batch, out_y, out_x, filter_y, filter_x, c;
    codes.byte = filter;
    codes.bit = 0;
    for (out_channel = 0; out_channel < p->out_c; ++out_channel) {
        int8_t *out = output + out_channel;
        const int8_t *image = input;
        for (k = 0; k < p->depth; ++k) {
            row[k] = (int8_t)adaptc_decode(adaptc_next_code(&codes, bits), bits, kind);
        }
        for (batch = 0; batch < p->batches; ++batch, image += p->image_bytes) {
            int32_t in_y_origin = -p->pad_top;
            int32_t origin_y = p->origin;                        /* byte offset of the first window */
            for (out_y = 0; out_y < p->out_h; ++out_y, in_y_origin += p->stride_h, origin_y += p->step_y) {
                int32_t in_x_origin = -p->pad_left;
                int32_t origin = origin_y;                       /* byte offset of the window's tap 0 */
                for (out_x = 0; out_x < p->out_w; ++out_x, in_x_origin += p->stride_w, origin += p->step_x) {
                    const int8_t *w_row = row;                   /* the filter row's taps, k_w * in_c apart */
                    int32_t acc = 0;
                    int32_t in_y = in_y_origin, tap_row = origin;
                    for (filter_y = 0; filter_y < p->k_h; ++filter_y, in_y += p->dil_h, tap_row += p->tap_y,
                         w_row += p->filter_row) {
                        const int8_t *w = w_row;
                        int32_t in_x = in_x_origin, tap = tap_row;
                        if (in_y < 0 || in_y >= p->in_h) {
                            continue;                           /* padding: the taps are skipped */
                        }
                        for (filter_x = 0; filter_x < p->k_w; ++filter_x, in_x += p->dil_w, tap += p->tap_x) {
                            if (in_x >= 0 && in_x < p->in_w) {
                                const int8_t *const x = image + tap;
                                if (kind == 1) {
                                    for (c = 0; c < in_c; ++c) {
                                        acc = adaptc_pot_mac(acc, x[c] + input_offset, w[c]);
                                    }
                                } else {
                                    for (c = 0; c < in_c; ++c) {
                                        acc += w[c] * (x[c] + input_offset);
                                    }
                                }
                            }
                            w += in_c;
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
