/*
 * DEPTHWISE_CONV_2D, int8 (per-channel quantized), depth_multiplier 1: Helium (MVE) drop-in for
 * depthwise_conv2d_s8 -- the same arguments and, bit for bit, the same results (TFLite
 * reference_integer_ops::DepthwiseConvPerChannel).
 *
 * Layout: as depthwise_conv2d_s8 (out_c == in_c = channels; bias may be NULL).
 * Arithmetic: per output pixel, eight channels at a time in int16 lanes: over the in-bounds
 *   taps only (as the reference), (x + input_offset) * w by VMULLB / VMULLT into two int32
 *   vectors, the even and the odd channels; then + bias, adaptc_mve_requant (mve.h) on each
 *   and a predicated scatter store of their bytes.  The last channels % 8 are predicated.
 */
static void depthwise_conv2d_s8_mve(const depthwise_conv2d_s8_params *p, const int8_t *input,
                                    const int8_t *filter, const int32_t *bias,
                                    const int32_t *out_mult, const int32_t *out_shift,
                                    int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, depth = p->in_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int16_t input_offset = (int16_t)p->input_offset;
    const int32_t x_step = dil_w * depth, row_step = dil_h * in_w * depth;
    const uint32x4_t even = vidupq_n_u32(0, 2), odd = vidupq_n_u32(1, 2);   /* 0 2 4 6, 1 3 5 7 */
    const uint32x4_t even_bytes = vmulq_n_u32(even, 4), odd_bytes = vmulq_n_u32(odd, 4);
    int32_t batch, out_y, out_x, c, filter_y, filter_x;
    for (batch = 0; batch < p->batches; ++batch) {
        for (out_y = 0; out_y < p->out_h; ++out_y) {
            const int32_t in_y_origin = out_y * p->stride_h - p->pad_top;
            const int32_t y_first = adaptc_tap_first(in_y_origin, dil_h);
            const int32_t y_end = adaptc_tap_end(in_y_origin, in_h, k_h, dil_h);
            for (out_x = 0; out_x < p->out_w; ++out_x) {
                const int32_t in_x_origin = out_x * p->stride_w - p->pad_left;
                const int32_t x_first = adaptc_tap_first(in_x_origin, dil_w);
                const int32_t x_end = adaptc_tap_end(in_x_origin, in_w, k_w, dil_w);
                const int32_t taps_x = x_end > x_first ? x_end - x_first : 0;
                const int32_t taps_y = y_end > y_first && taps_x > 0 ? y_end - y_first : 0;
                int8_t *const out = output + ((batch * p->out_h + out_y) * p->out_w + out_x) * depth;
                const int8_t *window = input, *weights = filter;    /* the first in-bounds tap */
                if (taps_y > 0) {
                    window += ((batch * in_h + in_y_origin + dil_h * y_first) * in_w
                               + in_x_origin + dil_w * x_first) * depth;
                    weights += (y_first * k_w + x_first) * depth;
                }
                for (c = 0; c < depth; c += 8) {
                    const int32_t left = depth - c;
                    const mve_pred16_t lanes16 = vctp16q((uint32_t)left);
                    const mve_pred16_t lanes_even = vcmphiq_u32(vdupq_n_u32((uint32_t)left), even);  /* c + lane < depth */
                    const mve_pred16_t lanes_odd = vcmphiq_u32(vdupq_n_u32((uint32_t)left), odd);
                    int32x4_t acc_even = vdupq_n_s32(0), acc_odd = vdupq_n_s32(0);
                    for (filter_y = 0; filter_y < taps_y; ++filter_y) {
                        const int8_t *x = window + filter_y * row_step + c;
                        const int8_t *w = weights + filter_y * k_w * depth + c;
                        for (filter_x = 0; filter_x < taps_x; ++filter_x) {
                            int16x8_t xv, wv;
                            if (left >= 8) {                /* whole vectors; a partial one predicated */
                                xv = vldrbq_s16(x);
                                wv = vldrbq_s16(w);
                            } else {
                                xv = vldrbq_z_s16(x, lanes16);
                                wv = vldrbq_z_s16(w, lanes16);
                            }
                            xv = vaddq_n_s16(xv, input_offset);
                            acc_even = vaddq_s32(acc_even, vmullbq_int_s16(xv, wv));
                            acc_odd = vaddq_s32(acc_odd, vmulltq_int_s16(xv, wv));
                            x += x_step;
                            w += depth;
                        }
                    }
                    if (bias != NULL) {
                        acc_even = vaddq_s32(acc_even, vldrwq_gather_offset_z_s32(bias + c, even_bytes, lanes_even));
                        acc_odd = vaddq_s32(acc_odd, vldrwq_gather_offset_z_s32(bias + c, odd_bytes, lanes_odd));
                    }
                    acc_even = adaptc_mve_requant(acc_even, vldrwq_gather_offset_z_s32(out_mult + c, even_bytes, lanes_even),
                                                  vldrwq_gather_offset_z_s32(out_shift + c, even_bytes, lanes_even),
                                                  p->output_offset, p->act_min, p->act_max);
                    acc_odd = adaptc_mve_requant(acc_odd, vldrwq_gather_offset_z_s32(out_mult + c, odd_bytes, lanes_odd),
                                                 vldrwq_gather_offset_z_s32(out_shift + c, odd_bytes, lanes_odd),
                                                 p->output_offset, p->act_min, p->act_max);
                    vstrbq_scatter_offset_p_s32(out + c, even, acc_even, lanes_even);
                    vstrbq_scatter_offset_p_s32(out + c, odd, acc_odd, lanes_odd);
                }
            }
        }
    }
}
