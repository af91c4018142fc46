/*
 * DEPTHWISE_CONV_2D, int8 (per-channel quantized), depth_multiplier 1: DSP-extension drop-in
 * for depthwise_conv2d_s8.  Its arguments -- bias, out_mult and out_shift interleaved into one
 * array of per-channel records -- and, bit for bit, its results (TFLite
 * reference_integer_ops::DepthwiseConvPerChannel); targets/kernels_dsp.py lays out the arrays.
 *
 * Layout: input, output: as depthwise_conv2d_s8 (out_c == in_c = channels);
 *         filter: for each group of four channels, its [k_h][k_w] taps, one word of four
 *         int8 per tap; then the last channels % 4 channels as [k_h][k_w][channels % 4] bytes;
 *         channels: per channel {bias, out_mult, out_shift, round} (int32 each; dsp.h
 *         adaptc_rq_record);
 *         p->scratch (k_w == 3): one window, [k_h][3][channels] bytes.
 * Arithmetic: four channels at a time from one word of input and one of filter: SXTAB16 adds
 *   input_offset to two int16 halves, SXTB16 extends the filter, SMLABB / SMLATT accumulate
 *   each channel; + bias, adaptc_mbqm (dsp.h), + output_offset, saturate; a narrower
 *   [act_min, act_max] clamps the output afterwards.  With k_w == 3 every tap of the window is
 *   summed (adaptc_dw_quad_x3): read in place when the window is inside the input, else from a
 *   copy with the zero point at padded taps (x + input_offset = 0 there, as the reference's
 *   skipped taps).  Other widths sum the in-bounds taps only.  Channels past the last multiple
 *   of 4 one at a time.
 */
static void depthwise_conv2d_s8_dsp(const depthwise_conv2d_s8_dsp_params *p, const int8_t *input,
                                    const int32_t *filter, const int32_t *channels, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, depth = p->in_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t offset2 = adaptc_offset2(input_offset);
    const int8_t zero_point = (int8_t)-input_offset;
    const int32_t quads = depth / 4, taps = k_h * k_w, rest = depth - 4 * quads;
    const int8_t *const tail_filter = (const int8_t *)(const void *)(filter + quads * taps);
    int32_t batch, out_y, out_x;
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
                int8_t *out = output + ((batch * p->out_h + out_y) * p->out_w + out_x) * depth;
                const int32_t *rec = channels;
                /* the taps summed: rows x cols from `window`, x_step / row_step bytes apart, and
                 * the filter from tap `first_tap`, filter rows k_w taps apart */
                const int8_t *window = input;
                int32_t x_step = dil_w * depth, row_step = dil_h * in_w * depth;
                int32_t rows = taps_y, cols = taps_x, first_tap = y_first * k_w + x_first;
                int32_t c, filter_y, filter_x;
                if (k_w == 3 && (taps_y < k_h || taps_x < 3)) {    /* copy the window, padded */
                    int8_t *dst = p->scratch;
                    for (filter_y = 0; filter_y < k_h; ++filter_y) {
                        for (filter_x = 0; filter_x < 3; ++filter_x) {
                            const int32_t in_y = in_y_origin + dil_h * filter_y;
                            const int32_t in_x = in_x_origin + dil_w * filter_x;
                            if (in_y >= 0 && in_y < in_h && in_x >= 0 && in_x < in_w) {
                                memcpy(dst, input + ((batch * in_h + in_y) * in_w + in_x) * depth, (size_t)depth);
                            } else {
                                memset(dst, zero_point, (size_t)depth);
                            }
                            dst += depth;
                        }
                    }
                    window = p->scratch;
                    x_step = depth;
                    row_step = 3 * depth;
                    rows = k_h;
                    cols = 3;
                    first_tap = 0;
                } else if (taps_y > 0) {
                    window += ((batch * in_h + in_y_origin + dil_h * y_first) * in_w
                               + in_x_origin + dil_w * x_first) * depth;
                }
                if (cols == 3 && k_w == 3) {
                    adaptc_dw_x3(window, x_step, row_step, filter, rows, quads, offset2, rec, p->right_shifts,
                                 output_offset, out);
                } else {
                    adaptc_dw_quads(window, x_step, row_step, filter + first_tap, taps, k_w, rows, cols, quads,
                                    offset2, rec, output_offset, out);
                }
                out += 4 * quads;
                rec += 16 * quads;
                for (c = 4 * quads; c < depth; ++c) {
                    int32_t acc = rec[0];
                    for (filter_y = 0; filter_y < rows; ++filter_y) {
                        const int8_t *x = window + filter_y * row_step + c;
                        const int8_t *w = tail_filter + (first_tap + filter_y * k_w) * rest + c - 4 * quads;
                        for (filter_x = 0; filter_x < cols; ++filter_x) {
                            acc += (*x + input_offset) * *w;
                            x += x_step;
                            w += rest;
                        }
                    }
                    *out++ = (int8_t)adaptc_ssat8(adaptc_rq_record(acc, rec) + output_offset);
                    rec += 4;
                }
            }
        }
    }
    adaptc_clamp_s8(output, p->batches * p->out_h * p->out_w * depth, p->act_min, p->act_max);
}
