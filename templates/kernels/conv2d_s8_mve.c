/*
 * CONV_2D, int8 (per-channel quantized): Helium (MVE) drop-in for conv2d_s8.  Its arguments --
 * with input_offset folded into the bias -- and, bit for bit, its results (TFLite
 * reference_integer_ops::ConvPerChannel); targets/kernels_mve.py prepares the bias.
 *
 * Layout: input, filter (OHWI), out_mult, out_shift, output: as conv2d_s8;
 *         bias: bias + input_offset * (sum of the channel's filter), never NULL;
 *         p->scratch: four im2col columns, depth = k_h * k_w * in_c bytes each.
 * Arithmetic: four output pixels at a time, each a column of its receptive field as int8 --
 *   the input zero point at padded taps, so that w * (x + input_offset) = w * x + (folded bias)
 *   sums to the reference's value -- read in place when the field is one contiguous run of the
 *   input (1x1 filters).  Per output channel, VMLADAVA sums 16 products a step, tail-predicated,
 *   for the four columns (the last, partial vector predicated); adaptc_mve_requant (mve.h) requantizes the four results at once and a
 *   predicated scatter store writes the pixels' bytes.
 */
static void conv2d_s8_mve(const conv2d_s8_mve_params *p, const int8_t *input,
                          const int8_t *filter, const int32_t *bias,
                          const int32_t *out_mult, const int32_t *out_shift,
                          int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_c = p->out_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t depth = k_h * k_w * in_c;
    const int8_t zero_point = (int8_t)-p->input_offset;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    const uint32x4_t strides = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)out_c);   /* 0, out_c, 2 out_c, 3 out_c */
    int32_t batch = 0, out_y = 0, out_x = 0, pix;
    for (pix = 0; pix < pixels; pix += 4) {
        const int32_t n = pixels - pix < 4 ? pixels - pix : 4;
        const int8_t *col[4];
        int32_t c, r;
        for (c = 0; c < 4; ++c) {
            const int32_t in_y_origin = out_y * p->stride_h - p->pad_top;
            const int32_t in_x_origin = out_x * p->stride_w - p->pad_left;
            const int8_t *const image = input + batch * in_h * in_w * in_c;
            int8_t *dst = p->scratch + c * depth;
            int32_t filter_y, filter_x;
            if (k_h == 1 && k_w == 1 && in_y_origin >= 0 && in_y_origin < in_h && in_x_origin >= 0
                && in_x_origin < in_w) {
                col[c] = image + (in_y_origin * in_w + in_x_origin) * in_c;
            } else {
                col[c] = dst;
                for (filter_y = 0; filter_y < k_h; ++filter_y) {
                    const int32_t in_y = in_y_origin + dil_h * filter_y;
                    for (filter_x = 0; filter_x < k_w; ++filter_x) {
                        const int32_t in_x = in_x_origin + dil_w * filter_x;
                        if (in_y >= 0 && in_y < in_h && in_x >= 0 && in_x < in_w) {
                            memcpy(dst, image + (in_y * in_w + in_x) * in_c, (size_t)in_c);
                        } else {
                            memset(dst, zero_point, (size_t)in_c);
                        }
                        dst += in_c;
                    }
                }
            }
            if (c + 1 < n && ++out_x == p->out_w) {   /* spare columns repeat the last pixel */
                out_x = 0;
                if (++out_y == p->out_h) {
                    out_y = 0;
                    ++batch;
                }
            }
        }
        for (r = 0; r < out_c; ++r) {
            const int8_t *const w = filter + r * depth;
            int32_t a0 = bias[r], a1 = bias[r], a2 = bias[r], a3 = bias[r];
            int32_t k;
            int32x4_t acc = vdupq_n_s32(0);
            for (k = 0; k + 16 <= depth; k += 16) {        /* whole vectors; then a predicated tail */
                const int8x16_t wv = vldrbq_s8(w + k);
                a0 = vmladavaq_s8(a0, vldrbq_s8(col[0] + k), wv);
                a1 = vmladavaq_s8(a1, vldrbq_s8(col[1] + k), wv);
                a2 = vmladavaq_s8(a2, vldrbq_s8(col[2] + k), wv);
                a3 = vmladavaq_s8(a3, vldrbq_s8(col[3] + k), wv);
            }
            if (k < depth) {
                const mve_pred16_t pred = vctp8q((uint32_t)(depth - k));
                const int8x16_t wv = vldrbq_z_s8(w + k, pred);
                a0 = vmladavaq_p_s8(a0, vldrbq_z_s8(col[0] + k, pred), wv, pred);
                a1 = vmladavaq_p_s8(a1, vldrbq_z_s8(col[1] + k, pred), wv, pred);
                a2 = vmladavaq_p_s8(a2, vldrbq_z_s8(col[2] + k, pred), wv, pred);
                a3 = vmladavaq_p_s8(a3, vldrbq_z_s8(col[3] + k, pred), wv, pred);
            }
            acc = vsetq_lane_s32(a0, acc, 0);
            acc = vsetq_lane_s32(a1, acc, 1);
            acc = vsetq_lane_s32(a2, acc, 2);
            acc = vsetq_lane_s32(a3, acc, 3);
            acc = adaptc_mve_requant(acc, vdupq_n_s32(out_mult[r]), vdupq_n_s32(out_shift[r]),
                                     p->output_offset, p->act_min, p->act_max);
            vstrbq_scatter_offset_p_s32(output + pix * out_c + r, strides, acc, vctp32q((uint32_t)n));
        }
        if (++out_x == p->out_w) {
            out_x = 0;
            if (++out_y == p->out_h) {
                out_y = 0;
                ++batch;
            }
        }
    }
}
