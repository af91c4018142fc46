/*
 * FULLY_CONNECTED with packed low-bit weights (pot2 .. pot4, int4; adaptc.formats), symmetric:
 * DSP-extension drop-in for fully_connected_s8_packed -- fully_connected_s8_dsp on rows decoded
 * one at a time.  Its arguments -- bias, out_mult and out_shift interleaved into one array of
 * per-channel records -- and, bit for bit, its results (TFLite
 * reference_integer_ops::FullyConnected[PerChannel] on the decoded weights).
 *
 * Layout: input [batches][in_features], output [batches][out_features]: as fully_connected_s8;
 *         weights: rows [out_features][in_features] as one bitstream of codes (common.h);
 *         channels: per output {bias, out_mult, out_shift} (bias 0 if none);
 *         p->scratch: one column (2 * groups words) and one decoded row (groups words).
 * Arithmetic: per batch row, the input is converted once to int16 (input + input_offset) in
 *   the SXTB16 order of dsp.h; each row is decoded to int8 words (adaptc_unpack_row), then
 *   2 SMLAD per four weights, + bias, adaptc_mbqm, + output_offset, clamp to [act_min, act_max].
 */
static void fully_connected_s8_packed_dsp(const fully_connected_s8_packed_dsp_params *p, const int8_t *input,
                                          const uint8_t *weights, const int32_t *channels, int8_t *output)
{
    const int32_t groups = (p->in_features + 3) / 4;
    int32_t *const col = p->scratch;
    int32_t *const row_buf = col + 2 * groups;
    int32_t b, o, g;
    for (b = 0; b < p->batches; ++b) {
        int8_t *const out = output + b * p->out_features;
        const int32_t *w = row_buf;
        adaptc_codes codes;
        codes.byte = weights;
        codes.bit = 0;
        adaptc_col_from_s8(col, 2, input + b * p->in_features, p->in_features, p->input_offset);
        for (o = 0; o < p->out_features; ++o) {
            const int32_t *const rec = channels + 3 * o;
            const int32_t *x = col;
            int32_t acc = rec[0];
            adaptc_unpack_row(&codes, p->in_features, p->bits, p->lut, p->values, (int8_t *)row_buf);
            for (g = 0; g < groups; ++g) {
                acc = adaptc_smlad(adaptc_sxtb16(w[g]), x[0], acc);
                acc = adaptc_smlad(adaptc_sxtb16_ror8(w[g]), x[1], acc);
                x += 2;
            }
            out[o] = (int8_t)adaptc_clamp_i32(adaptc_rq(acc, rec[1], rec[2]) + p->output_offset,
                                              p->act_min, p->act_max);
        }
    }
}
