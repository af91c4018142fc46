/*
 * CONV_2D, int8 (per-channel quantized): DSP-extension drop-in for conv2d_s8.
 * The arguments of conv2d_s8 -- with bias, out_mult and out_shift interleaved into one array
 * of per-channel records -- and, bit for bit, its results (TFLite
 * reference_integer_ops::ConvPerChannel); targets/kernels_dsp.py lays out the arrays.
 *
 * Layout: input, output: as conv2d_s8;
 *         channels: per output channel {bias, out_mult, out_shift} (int32 each; bias 0 if none);
 *         filter: the OHWI rows (depth = k_h * k_w * in_c values each), packed four int8 to a
 *         word and zero-padded to groups = ceil(depth / 4) words per row (dsp.h); or, p->bits
 *         2 .. 4, the rows as one bitstream of codes (common.h), decoded a row at a time;
 *         p->scratch: four im2col columns (8 * groups words), a decoded row (groups words;
 *         packed weights only), four output rows for a last, partial block of pixels
 *         (4 * out_c bytes), then 4 * groups bytes to gather in.
 * Arithmetic: four output pixels at a time, im2col writes each pixel's receptive field as
 *   (input + input_offset) in int16 -- 0 at padded taps, which the reference skips, so the sums
 *   are the same -- and adaptc_rows_x4 accumulates each output channel over the four columns
 *   with SMLAD, adds the bias and requantizes like adaptc_mbqm; + output_offset, clamp to
 *   [act_min, act_max].  A filter row (k_w * in_c values) converts straight from the input when
 *   it lies inside; taps convert one by one when in_c is a multiple of 4; otherwise the field
 *   is gathered as bytes (the zero point at padded taps) and then converted.
 */
static void conv2d_s8_dsp(const conv2d_s8_dsp_params *p, const int8_t *input,
                          const void *filter, const int32_t *channels, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_c = p->out_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t input_offset = p->input_offset;
    const int32_t depth = k_h * k_w * in_c;
    const int32_t groups = (depth + 3) / 4;
    const int32_t row_groups = k_w * in_c / 4;      /* a filter row, when it is whole groups */
    const int32_t whole_rows = dil_w == 1 && (k_w * in_c) % 4 == 0;
    const int32_t offset2 = adaptc_offset2(input_offset);
    const int8_t zero_point = (int8_t)-input_offset;
    int32_t *const cols = p->scratch;
    int32_t *const row_buf = cols + 8 * groups;                 /* packed weights only */
    int8_t *const tail = (int8_t *)(row_buf + (p->bits != 8 ? groups : 0));
    adaptc_packed_rows packed;
    int8_t *const gather = tail + 4 * out_c;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    int32_t batch = 0, out_y = 0, out_x = 0, pix;
    packed.depth = depth;
    packed.bits = p->bits;
    packed.lut = p->lut;
    packed.values = p->values;
    packed.row_buf = row_buf;
    for (pix = 0; pix < pixels; pix += 4) {
        const int32_t n = pixels - pix < 4 ? pixels - pix : 4;
        int32_t c;
        for (c = 0; c < 4; ++c) {
            const int32_t in_y_origin = out_y * p->stride_h - p->pad_top;
            const int32_t in_x_origin = out_x * p->stride_w - p->pad_left;
            const int8_t *const image = input + batch * in_h * in_w * in_c;
            const int32_t x_inside = in_x_origin >= 0 && in_x_origin + (k_w - 1) * dil_w < in_w;
            int32_t *col = cols + 2 * c;
            int32_t filter_y, filter_x, k;
            if ((whole_rows && x_inside) || (in_c & 3) == 0) {
                for (filter_y = 0; filter_y < k_h; ++filter_y) {
                    const int32_t in_y = in_y_origin + dil_h * filter_y;
                    if (in_y < 0 || in_y >= in_h) {
                        col = adaptc_col_clear(col, 8, k_w * in_c / 4);
                    } else if (whole_rows && x_inside) {
                        col = adaptc_col_convert(col, 8, image + (in_y * in_w + in_x_origin) * in_c,
                                                 row_groups, offset2);
                    } else {
                        for (filter_x = 0; filter_x < k_w; ++filter_x) {
                            const int32_t in_x = in_x_origin + dil_w * filter_x;
                            col = in_x >= 0 && in_x < in_w
                                ? adaptc_col_convert(col, 8, image + (in_y * in_w + in_x) * in_c, in_c / 4, offset2)
                                : adaptc_col_clear(col, 8, in_c / 4);
                        }
                    }
                }
            } else {
                int8_t *dst = gather;
                for (filter_y = 0; filter_y < k_h; ++filter_y) {
                    const int32_t in_y = in_y_origin + dil_h * filter_y;
                    for (filter_x = 0; filter_x < k_w; ++filter_x) {
                        const int32_t in_x = in_x_origin + dil_w * filter_x;
                        if (in_y >= 0 && in_y < in_h && in_x >= 0 && in_x < in_w) {
                            const int8_t *const src = image + (in_y * in_w + in_x) * in_c;
                            for (k = 0; k < in_c; ++k) {
                                dst[k] = src[k];
                            }
                        } else {
                            for (k = 0; k < in_c; ++k) {
                                dst[k] = zero_point;
                            }
                        }
                        dst += in_c;
                    }
                }
                adaptc_col_from_s8(col, 8, gather, depth, input_offset);
            }
            if (c + 1 < n && ++out_x == p->out_w) {   /* spare columns repeat the last pixel */
                out_x = 0;
                if (++out_y == p->out_h) {
                    out_y = 0;
                    ++batch;
                }
            }
        }
        if (p->bits == 8) {
            adaptc_rows_x4((const int32_t *)filter, cols, out_c, groups, channels, p->output_offset, p->act_min,
                           p->act_max, n == 4 ? output + pix * out_c : tail, out_c);
        } else {
            adaptc_rows_x4_packed((const uint8_t *)filter, cols, out_c, groups, channels, p->output_offset,
                                  p->act_min, p->act_max, n == 4 ? output + pix * out_c : tail, out_c, &packed);
        }
        if (n < 4) {
            memcpy(output + pix * out_c, tail, (size_t)(n * out_c));
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
