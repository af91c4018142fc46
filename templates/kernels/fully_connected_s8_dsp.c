/*
 * FULLY_CONNECTED, int8, symmetric weights (filter_offset 0): DSP-extension drop-in for
 * fully_connected_s8.  Its arguments -- bias, out_mult and out_shift interleaved into one array
 * of per-channel records -- and, bit for bit, its results (TFLite
 * reference_integer_ops::FullyConnected[PerChannel]); targets/kernels_dsp.py lays out the arrays.
 *
 * Layout: input [batches][in_features], output [batches][out_features]: as fully_connected_s8;
 *         weights: rows packed four int8 to a word, zero-padded to groups = ceil(in_features / 4)
 *         words (dsp.h); channels: per output {bias, out_mult, out_shift} (bias 0 if none);
 *         p->scratch: one column, 2 * groups words.
 * Arithmetic: per batch row, the input is converted once to int16 (input + input_offset) in
 *   the SXTB16 order of dsp.h; each output is 2 SMLAD per four weights, + bias, adaptc_mbqm,
 *   + output_offset, clamp to [act_min, act_max].
 */
static void fully_connected_s8_dsp(const fully_connected_s8_dsp_params *p, const int8_t *input,
                                   const int32_t *weights, const int32_t *channels, int8_t *output)
{
    const int32_t groups = (p->in_features + 3) / 4;
    int32_t *const col = p->scratch;
    int32_t b, o, g;
    for (b = 0; b < p->batches; ++b) {
        int8_t *const out = output + b * p->out_features;
        const int32_t *w = weights;
        adaptc_col_from_s8(col, 2, input + b * p->in_features, p->in_features, p->input_offset);
        for (o = 0; o < p->out_features; ++o) {
            const int32_t *const rec = channels + 3 * o;
            const int32_t *x = col;
            int32_t acc = rec[0];
            for (g = 0; g < groups; ++g) {
                acc = adaptc_smlad(adaptc_sxtb16(w[g]), x[0], acc);
                acc = adaptc_smlad(adaptc_sxtb16_ror8(w[g]), x[1], acc);
                x += 2;
            }
            w += groups;
            out[o] = (int8_t)adaptc_clamp_i32(adaptc_rq(acc, rec[1], rec[2]) + p->output_offset,
                                              p->act_min, p->act_max);
        }
    }
}
