/*
 * FULLY_CONNECTED, int8, symmetric weights (filter_offset 0): Helium (MVE) drop-in for
 * fully_connected_s8.  Its arguments -- with input_offset folded into the bias -- and, bit for
 * bit, its results (TFLite reference_integer_ops::FullyConnected[PerChannel]);
 * targets/kernels_mve.py prepares the bias.
 *
 * Layout: input [batches][in_features], weights [out_features][in_features], out_mult,
 *         out_shift, output: as fully_connected_s8;
 *         bias: bias + input_offset * (sum of the row's weights), never NULL.
 * Arithmetic: four outputs at a time, each VMLADAVA over 16 inputs a step (tail-predicated),
 *   then adaptc_mve_requant (mve.h) on the four and one predicated store.
 */
static void fully_connected_s8_mve(const fully_connected_s8_params *p, const int8_t *input,
                                   const int8_t *weights, const int32_t *bias,
                                   const int32_t *out_mult, const int32_t *out_shift,
                                   int8_t *output)
{
    const int32_t depth = p->in_features, outs = p->out_features;
    int32_t b, o, k;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *const x = input + b * depth;
        for (o = 0; o < outs; o += 4) {
            const mve_pred16_t lanes = vctp32q((uint32_t)(outs - o));
            const int8_t *const w0 = weights + o * depth;
            const int8_t *const w1 = o + 1 < outs ? w0 + depth : w0;  /* spare lanes repeat a row */
            const int8_t *const w2 = o + 2 < outs ? w0 + 2 * depth : w0;
            const int8_t *const w3 = o + 3 < outs ? w0 + 3 * depth : w0;
            int32x4_t acc = vldrwq_z_s32(bias + o, lanes);
            int32_t a0 = vgetq_lane_s32(acc, 0), a1 = vgetq_lane_s32(acc, 1);
            int32_t a2 = vgetq_lane_s32(acc, 2), a3 = vgetq_lane_s32(acc, 3);
            for (k = 0; k + 16 <= depth; k += 16) {        /* whole vectors; then a predicated tail */
                const int8x16_t xv = vldrbq_s8(x + k);
                a0 = vmladavaq_s8(a0, xv, vldrbq_s8(w0 + k));
                a1 = vmladavaq_s8(a1, xv, vldrbq_s8(w1 + k));
                a2 = vmladavaq_s8(a2, xv, vldrbq_s8(w2 + k));
                a3 = vmladavaq_s8(a3, xv, vldrbq_s8(w3 + k));
            }
            if (k < depth) {
                const mve_pred16_t pred = vctp8q((uint32_t)(depth - k));
                const int8x16_t xv = vldrbq_z_s8(x + k, pred);
                a0 = vmladavaq_p_s8(a0, xv, vldrbq_z_s8(w0 + k, pred), pred);
                a1 = vmladavaq_p_s8(a1, xv, vldrbq_z_s8(w1 + k, pred), pred);
                a2 = vmladavaq_p_s8(a2, xv, vldrbq_z_s8(w2 + k, pred), pred);
                a3 = vmladavaq_p_s8(a3, xv, vldrbq_z_s8(w3 + k, pred), pred);
            }
            acc = vsetq_lane_s32(a0, acc, 0);
            acc = vsetq_lane_s32(a1, acc, 1);
            acc = vsetq_lane_s32(a2, acc, 2);
            acc = vsetq_lane_s32(a3, acc, 3);
            acc = adaptc_mve_requant(acc, vldrwq_z_s32(out_mult + o, lanes), vldrwq_z_s32(out_shift + o, lanes),
                                     p->output_offset, p->act_min, p->act_max);
            vstrbq_p_s32(output + b * outs + o, acc, lanes);
        }
    }
}
