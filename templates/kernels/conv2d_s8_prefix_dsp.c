/*
 * CONV_2D, int8 (per-channel quantized), DSP extension, for width levels (adaptc.widths): the
 * layer reads the first out_c rows of a filter stored once for every width -- the widest's --
 * and of those rows the blocks of its in_c input channels. The arguments of conv2d_s8 (the
 * filter packed to words) and, bit for bit, its results (TFLite
 * reference_integer_ops::ConvPerChannel).
 *
 * Layout: input, bias, out_mult, out_shift, output: as conv2d_s8;
 *         filter: per output channel a row of row_words words (four int8 a word, b0 first): the
 *           input channels in blocks -- the channels each wider width adds --, per block its
 *           k_h * k_w taps' channels, each tap's zero-padded to whole words; a width reads the
 *           first `groups` words: its blocks. blocks 0: one block (every width reads all input
 *           channels), the row as OHWI [k_h][k_w][in_c], each filter row (k_w taps) zero-padded to
 *           row_bytes as conv2d_s8_dsp pads it, the whole row to words;
 *         block_channels: per block its first input channel and channel count;
 *         p->scratch: four im2col columns (8 * groups words), then 4 * groups bytes to gather in.
 * Arithmetic: four output pixels at a time, the receptive fields as (input + input_offset) in
 *   int16 -- 0 at padded taps, which the reference skips, so the sums are the same -- laid out as
 *   the rows are (adaptc_im2col_blocks_x4, or adaptc_im2col_x4 for one block); each output
 *   channel's row against the four columns with SMLAD (adaptc_dot_x4: 16 MACs in 15
 *   instructions), + bias, requantized -- adaptc_rq where the builder proved the layer's
 *   accumulators small enough (simd.requant_is_exact), else adaptc_rq_exact (any accumulator) --,
 *   + output_offset, clamped to [act_min, act_max].
 */

/* The next n <= 4 pixels' columns (the last pixel repeated in the spare ones), the input channels
 * in the layer's blocks: per block, per tap, the block's channels, whole groups. */
static inline void adaptc_im2col_blocks_x4(adaptc_conv_geometry *g, const int8_t *input, int32_t n,
                                           int32_t *cols, const int32_t *block_channels, int32_t blocks)
{
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c;
    const int32_t offset2 = adaptc_offset2(g->input_offset);
    int32_t c, b, filter_y, filter_x;
    for (c = 0; c < 4; ++c) {
        const int32_t in_y_origin = g->out_y * g->stride_h - g->pad_top;
        const int32_t in_x_origin = g->out_x * g->stride_w - g->pad_left;
        const int8_t *const image = input + g->batch * in_h * in_w * in_c;
        int32_t *col = cols + 2 * c;
        for (b = 0; b < blocks; ++b) {
            const int32_t first = block_channels[2 * b], count = block_channels[2 * b + 1];
            const int32_t groups = (count + 3) / 4;
            for (filter_y = 0; filter_y < g->k_h; ++filter_y) {
                const int32_t in_y = in_y_origin + g->dil_h * filter_y;
                for (filter_x = 0; filter_x < g->k_w; ++filter_x) {
                    const int32_t in_x = in_x_origin + g->dil_w * filter_x;
                    if (in_y < 0 || in_y >= in_h || in_x < 0 || in_x >= in_w) {
                        col = adaptc_col_clear(col, 8, groups);
                    } else if ((count & 3) == 0) {
                        col = adaptc_col_convert(col, 8, image + (in_y * in_w + in_x) * in_c + first, groups, offset2);
                    } else {
                        adaptc_col_from_s8(col, 8, image + (in_y * in_w + in_x) * in_c + first, count, g->input_offset);
                        col += 8 * groups;
                    }
                }
            }
        }
        if (c + 1 < n) {
            adaptc_next_pixel(g);
        }
    }
    adaptc_next_pixel(g);
}

static void conv2d_s8_prefix_dsp(const conv2d_s8_prefix_dsp_params *p, const int8_t *input, const int32_t *filter,
                                 const int32_t *bias, const int32_t *out_mult, const int32_t *out_shift,
                                 int8_t *output)
{
    const int32_t out_c = p->out_c, groups = p->groups;
    int32_t *const cols = p->scratch;
    int8_t *const gather = (int8_t *)(cols + 8 * groups);
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    adaptc_conv_geometry g = {p->in_h, p->in_w, p->in_c, p->out_h, p->out_w, p->k_h, p->k_w, p->stride_h, p->stride_w,
                              p->dil_h, p->dil_w, p->pad_top, p->pad_left, p->input_offset,
                              p->blocks == 0 ? p->row_bytes : p->k_w * p->in_c, 0, 0, 0};
    int32_t pix, oc, c;
    for (pix = 0; pix < pixels; pix += 4) {
        const int32_t n = pixels - pix < 4 ? pixels - pix : 4;
        int8_t *const out = output + pix * out_c;
        if (p->blocks == 0) {
            adaptc_im2col_x4(&g, input, n, cols, gather);
        } else {
            adaptc_im2col_blocks_x4(&g, input, n, cols, p->block_channels, p->blocks);
        }
        for (oc = 0; oc < out_c; ++oc) {
            const int32_t b = bias != NULL ? bias[oc] : 0;
            int32_t acc[4];
            acc[0] = acc[1] = acc[2] = acc[3] = b;
            adaptc_dot_x4(filter + oc * p->row_words, cols, cols + 8 * groups, acc);
            for (c = 0; c < n; ++c) {
                const int32_t v = (p->rq_exact ? adaptc_rq_exact(acc[c], out_mult[oc], out_shift[oc])
                                               : adaptc_rq(acc[c], out_mult[oc], out_shift[oc])) + p->output_offset;
                out[c * out_c + oc] = (int8_t)adaptc_clamp_i32(v, p->act_min, p->act_max);
            }
        }
    }
}
