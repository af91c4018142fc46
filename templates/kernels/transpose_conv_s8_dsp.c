/*
 * TRANSPOSE_CONV (ONNX ConvTranspose), int8, per-channel quantized: DSP-extension drop-in for
 * transpose_conv_s8.  Its arguments -- bias, out_mult and out_shift interleaved into one array
 * of per-channel records, the filter reordered -- and, bit for bit, its results (TFLite
 * reference_integer_ops::TransposeConv, with ONNX's dilation and depthwise grouping);
 * targets/cortex_m/kernels/transpose_conv.py lays out the arrays.
 *
 * Layout: input, output: as transpose_conv_s8;
 *         filter: per group of the convolution (in_c / in_group of them), its out_group output
 *         channels, the first 4 * (out_group / 4) as quads, then the rest one by one: a quad is
 *         [k_h][k_w][g][4 channels] words, a single channel [k_h][k_w][g] words -- word g holds
 *         input channels 4 g .. 4 g + 3 of the group (int8, the first in the low byte), zero
 *         beyond in_group; groups = ceil(in_group / 4) words per tap;
 *         channels: per output channel {bias, out_mult, out_shift, round} (int32 each; bias 0
 *         if none; dsp.h adaptc_rq_record);
 *         p->scratch: the input as int16 columns (dsp.h), per input pixel and group `groups`
 *         pairs of words (x + input_offset; 0 past in_group); the tap list of one output pixel
 *         (2 * k_h * k_w words); per output column its count of taps and their (column, filter)
 *         word offsets (out_w * (1 + 2 * k_w) words); those of one output row (2 * k_h words).
 * Arithmetic: the scatter read the other way round, as a gather: output (y, x) receives input
 *   (iy, ix) through tap (fy, fx) where y + pad_top - fy * dil_h = iy * stride_h (x likewise)
 *   -- each tap at most once, the same products as the reference's, summed in int32 modulo
 *   2^32 like its accumulators.  Per output pixel the list of its in-bounds taps (the in-bounds
 *   rows of its output row times those of its output column); per four output channels of a
 *   group adaptc_tconv_x4 (dsp.h) over them, two SMLAD per four input channels and channel;
 *   the other out_group % 4 channels one at a time; bias first.  Requantized by
 *   adaptc_tconv_out (dsp.h): adaptc_rq_record (one SMMULR) where rq_mode is 1 or 2 -- the
 *   builder sets it where requant_is_exact proves it for every channel's largest sum; 2 where
 *   also every shift is < 0 --, else adaptc_mbqm; + output_offset, SSAT; a narrower
 *   [act_min, act_max] clamps the outputs afterwards.
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
    int32_t rq_mode;        /* adaptc_tconv_out: 2 (exact, every shift < 0), 1 (exact), 0 (adaptc_mbqm) */
    int32_t *scratch;       /* arena: the int16 input columns, then the taps (dsp.h layout above) */
} transpose_conv_s8_dsp_params;

static void transpose_conv_s8_dsp(const transpose_conv_s8_dsp_params *p, const int8_t *input,
                                  const int32_t *filter, const int32_t *channels, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, in_group = p->in_group;
    const int32_t out_h = p->out_h, out_w = p->out_w, k_h = p->k_h, k_w = p->k_w, out_c = p->out_c;
    const int32_t groups = (in_group + 3) / 4;
    const int32_t convs = in_c / in_group;
    const int32_t pixel_words = 2 * groups * convs;
    const int32_t tap_words = k_h * k_w * groups;          /* one output channel's filter */
    const int32_t quads = p->out_group / 4, singles = p->out_group - 4 * quads;
    const int32_t in_pixels = p->batches * in_h * in_w;
    const int32_t output_offset = p->output_offset, mode = p->rq_mode;
    const int32_t x_words = 1 + 2 * k_w;                   /* a column's entry of the x taps */
    int32_t *const cols = p->scratch;
    int32_t *const taps = cols + in_pixels * pixel_words;
    int32_t *const x_taps = taps + 2 * k_h * k_w;
    int32_t *const y_taps = x_taps + out_w * x_words;
    int32_t i, c, batch, out_y, out_x, filter_y, filter_x, q, t, g, r;
    for (i = 0; i < in_pixels; ++i) {
        const int8_t *const src = input + i * in_c;
        int32_t *const col = cols + i * pixel_words;
        if ((in_group & 3) == 0) {
            adaptc_col_convert(col, 2, src, in_c / 4, adaptc_offset2(p->input_offset));
        } else {
            for (c = 0; c < convs; ++c) {
                adaptc_col_from_s8(col + 2 * groups * c, 2, src + in_group * c, in_group, p->input_offset);
            }
        }
    }
    /* per output column: its count of taps, then (column words, filter words) of each */
    for (out_x = 0; out_x < out_w; ++out_x) {
        int32_t *const e = x_taps + out_x * x_words;
        e[0] = 0;
        for (filter_x = 0; filter_x < k_w; ++filter_x) {
            const int32_t tx = out_x + p->pad_left - filter_x * p->dil_w;
            const int32_t in_x = tx / p->stride_w;
            if (tx >= 0 && tx == in_x * p->stride_w && in_x < in_w) {
                e[1 + 2 * e[0]] = in_x * pixel_words;
                e[2 + 2 * e[0]] = filter_x * groups;
                ++e[0];
            }
        }
    }
    for (batch = 0; batch < p->batches; ++batch) {
        for (out_y = 0; out_y < out_h; ++out_y) {
            int32_t rows = 0;
            for (filter_y = 0; filter_y < k_h; ++filter_y) {
                const int32_t ty = out_y + p->pad_top - filter_y * p->dil_h;
                const int32_t in_y = ty / p->stride_h;
                if (ty >= 0 && ty == in_y * p->stride_h && in_y < in_h) {
                    y_taps[2 * rows] = (batch * in_h + in_y) * in_w * pixel_words;
                    y_taps[2 * rows + 1] = filter_y * k_w * groups;
                    ++rows;
                }
            }
            for (out_x = 0; out_x < out_w; ++out_x) {
                int8_t *out = output + ((batch * out_h + out_y) * out_w + out_x) * out_c;
                const int32_t *const e = x_taps + out_x * x_words;
                const int32_t *w = filter, *rec = channels;
                int32_t n = 0;
                for (r = 0; r < rows; ++r) {
                    for (t = 0; t < e[0]; ++t) {
                        taps[2 * n] = y_taps[2 * r] + e[1 + 2 * t];
                        taps[2 * n + 1] = y_taps[2 * r + 1] + e[2 + 2 * t];
                        ++n;
                    }
                }
                for (c = 0; c < convs; ++c) {
                    const int32_t *const cg = cols + 2 * groups * c;
                    for (q = 0; q < quads; ++q) {
                        int32_t acc[4];
                        acc[0] = rec[0];
                        acc[1] = rec[4];
                        acc[2] = rec[8];
                        acc[3] = rec[12];
                        adaptc_tconv_x4(cg, taps, n, w, groups, acc);
                        out[0] = adaptc_tconv_out(acc[0], rec, mode, output_offset);
                        out[1] = adaptc_tconv_out(acc[1], rec + 4, mode, output_offset);
                        out[2] = adaptc_tconv_out(acc[2], rec + 8, mode, output_offset);
                        out[3] = adaptc_tconv_out(acc[3], rec + 12, mode, output_offset);
                        out += 4;
                        rec += 16;
                        w += 4 * tap_words;
                    }
                    for (q = 0; q < singles; ++q) {
                        int32_t a0 = rec[0];
                        for (t = 0; t < n; ++t) {
                            const int32_t *x = cg + taps[2 * t];
                            const int32_t *wt = w + taps[2 * t + 1];
                            for (g = 0; g < groups; ++g) {
                                a0 = adaptc_smlad(adaptc_sxtb16_ror8(wt[g]), x[1], adaptc_smlad(adaptc_sxtb16(wt[g]), x[0], a0));
                                x += 2;
                            }
                        }
                        *out++ = adaptc_tconv_out(a0, rec, mode, output_offset);
                        rec += 4;
                        w += tap_words;
                    }
                }
            }
        }
    }
    adaptc_clamp_s8(output, p->batches * out_h * out_w * out_c, p->act_min, p->act_max);
}
