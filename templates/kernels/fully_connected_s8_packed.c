/*
 * FULLY_CONNECTED with packed low-bit weights (pot2 .. pot5, int4; adaptc.formats), int8
 * activations, symmetric weights.  The arithmetic of fully_connected_s8 -- TFLite
 * reference_integer_ops::FullyConnected[PerChannel] -- on weights decoded from `bits`-bit
 * codes; with power-of-two weights and requantization nothing is multiplied.
 *
 * Layout: input [batches][in_features], bias, output: as fully_connected_s8;
 *         weights: rows [out_features][in_features] as one bitstream of codes;
 *         out_mult (int32; unused, may be NULL, when pot_requant), out_shift (int8);
 *         p->scratch: one decoded row (in_features bytes).
 * Arithmetic: per output, its row is decoded once; for each batch row acc = sum of
 *   (input + input_offset) * w (pot weights by adaptc_pot_mac); acc += bias; adaptc_mbqm (or
 *   adaptc_mbqm_pot when pot_requant); + output_offset, clamp to [act_min, act_max].
 */
static void fully_connected_s8_packed(const fully_connected_s8_packed_params *p, const int8_t *input,
                                      const uint8_t *weights, const int32_t *bias,
                                      const int32_t *out_mult, const int8_t *out_shift,
                                      int8_t *output)
{
    int8_t *const row = p->scratch;
    const int32_t depth = p->in_features, bits = p->bits, kind = p->kind, input_offset = p->input_offset;
    adaptc_codes codes;
    int32_t out_c, d, b;
    codes.byte = weights;
    codes.bit = 0;
    for (out_c = 0; out_c < p->out_features; ++out_c) {
        const int8_t *input_row = input;
        int8_t *out = output + out_c;
        for (d = 0; d < depth; ++d) {
            row[d] = (int8_t)adaptc_decode(adaptc_next_code(&codes, bits), bits, kind);
        }
        for (b = 0; b < p->batches; ++b, input_row += depth, out += p->out_features) {
            int32_t acc = 0;
            if (kind == 1) {
                for (d = 0; d < depth; ++d) {
                    acc = adaptc_pot_mac(acc, input_row[d] + input_offset, row[d]);
                }
            } else {
                for (d = 0; d < depth; ++d) {
                    acc += row[d] * (input_row[d] + input_offset);
                }
            }
            if (bias != NULL) {
                acc += bias[out_c];
            }
            acc = p->pot_requant ? adaptc_mbqm_pot(acc, out_shift[out_c])
                                 : adaptc_mbqm(acc, out_mult[out_c], out_shift[out_c]);
            *out = (int8_t)adaptc_clamp_i32(acc + p->output_offset, p->act_min, p->act_max);
        }
    }
}
