/*
 * CONV_2D with packed low-bit weights (pot2 .. pot4, int4; adaptc.formats): DSP-extension
 * drop-in for conv2d_s8_packed -- conv2d_s8_dsp on weights decoded a row at a time.  Its
 * arguments -- with bias, out_mult and out_shift interleaved into one array of per-channel
 * records -- and, bit for bit, its results (TFLite reference_integer_ops::ConvPerChannel on the
 * decoded weights); targets/kernels_dsp.py lays out the arrays.
 *
 * Layout: input, output: as conv2d_s8;
 *         channels: per output channel {bias, out_mult, out_shift} (int32 each; bias 0 if none);
 *         filter: the OHWI weights as one bitstream of p->bits-bit codes (common.h);
 *         p->scratch: four im2col columns (8 * groups words), a decoded row (groups words),
 *         four output rows for a last, partial block of pixels (4 * out_c bytes), then
 *         4 * groups bytes to gather in.
 * Arithmetic: four output pixels at a time, adaptc_im2col_x4 writes each pixel's receptive
 *   field as (input + input_offset) in int16 -- 0 at padded taps, which the reference skips, so
 *   the sums are the same -- and adaptc_rows_x4 accumulates each output channel over the four
 *   columns with SMLAD -- each row first decoded to int8 words (adaptc_rows_x4_packed) --, adds
 *   the bias and requantizes like adaptc_mbqm; + output_offset, clamp to [act_min, act_max].
 */
static void conv2d_s8_packed_dsp(const conv2d_s8_packed_dsp_params *p, const int8_t *input,
                                 const uint8_t *filter, const int32_t *channels, int8_t *output)
{
    const int32_t out_c = p->out_c;
    const int32_t groups = (p->k_h * p->k_w * p->in_c + 3) / 4;
    int32_t *const cols = p->scratch;
    int32_t *const row_buf = cols + 8 * groups;
    int8_t *const tail = (int8_t *)(row_buf + groups);
    int8_t *const gather = tail + 4 * out_c;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    adaptc_conv_geometry g = {p->in_h, p->in_w, p->in_c, p->out_h, p->out_w, p->k_h, p->k_w, p->stride_h, p->stride_w,
                              p->dil_h, p->dil_w, p->pad_top, p->pad_left, p->input_offset, p->k_w * p->in_c, 0, 0, 0};
    adaptc_packed_rows packed;
    int32_t pix;
    packed.depth = p->k_h * p->k_w * p->in_c;
    packed.bits = p->bits;
    packed.lut = p->lut;
    packed.values = p->values;
    packed.row_buf = row_buf;
    for (pix = 0; pix < pixels; pix += 4) {
        const int32_t n = pixels - pix < 4 ? pixels - pix : 4;
        adaptc_im2col_x4(&g, input, n, cols, gather);
        adaptc_rows_x4_packed(filter, cols, out_c, groups, channels, p->output_offset, p->act_min, p->act_max,
                              n == 4 ? output + pix * out_c : tail, out_c, &packed, p->rq_exact);
        if (n < 4) {
            memcpy(output + pix * out_c, tail, (size_t)(n * out_c));
        }
    }
}
