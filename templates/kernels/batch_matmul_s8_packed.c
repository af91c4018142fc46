/*
 * BATCH_MATMUL by a constant operand with packed low-bit weights (pot2 .. pot5, int4;
 * adaptc.formats), int8 activations, a symmetric constant (zero point 0).  The arithmetic of
 * batch_matmul_s8 -- TFLite Micro's reference_ops::BatchMatMul, one multiplier per tensor -- on
 * weights decoded from `bits`-bit codes, as fully_connected_s8_packed does for FULLY_CONNECTED:
 * with power-of-two weights and requantization (pot layers) nothing is multiplied -- weights by
 * shifting, indices by the strides in p (compile time).
 *
 * Layout: input, output: as batch_matmul_s8 (input the activation: the lhs, or with swap the rhs);
 *         weights: per constant matrix (its batch order), per output vector -- a column of a
 *         constant rhs [depth][cols], a row of a constant lhs [rows][depth] -- its depth codes,
 *         one bitstream (common.h adaptc_next_code);
 *         p->scratch: one decoded vector (depth bytes).
 * Arithmetic: per matrix and output vector o (outputs of them), the vector is decoded once, then
 *   for each of the `others` activation vectors t: acc = sum_k (act[t][k] + input_offset) * w[k]
 *   (act[t][k] at t * act_t + k * act_k; pot weights by adaptc_pot_mac), requantized by
 *   adaptc_mbqm (adaptc_mbqm_pot, no multiply, when pot_requant: the multiplier is 2^30),
 *   + output_offset, clamped to [act_min, act_max], stored at o * out_o + t * out_t.  The sums
 *   are batch_matmul_s8's (the constant's offset is 0).
 */
typedef struct {
    int32_t dims[3];
    int32_t act_strides[3];     /* the activation's batch strides (elements; 0: broadcast) */
    int32_t code_strides[3];    /* the constant's batch strides in bits (0: broadcast) */
    int32_t outputs;            /* output vectors per matrix: cols (constant rhs) or rows (lhs) */
    int32_t others;             /* activation vectors per matrix: rows (constant rhs) or cols */
    int32_t depth;
    int32_t act_t;              /* activation stride between vectors t */
    int32_t act_k;              /* activation stride along depth */
    int32_t out_o;              /* output stride between output vectors o */
    int32_t out_t;              /* output stride between activation vectors t */
    int32_t matrix;             /* rows * cols: one output matrix */
    int32_t input_offset;       /* the activation's -zero point */
    int32_t multiplier;
    int32_t shift;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t bits;
    int32_t kind;
    int32_t pot_requant;
    int8_t *scratch;            /* arena: depth bytes */
} batch_matmul_s8_packed_params;

static void batch_matmul_s8_packed(const batch_matmul_s8_packed_params *p, const int8_t *input,
                                   const uint8_t *weights, int8_t *output)
{
    int8_t *const row = p->scratch;
    const int32_t bits = p->bits, kind = p->kind, depth = p->depth, input_offset = p->input_offset;
    int32_t b0, b1, b2, o, t, k;
    int32_t in0 = 0, code0 = 0;
    for (b0 = 0; b0 < p->dims[0]; ++b0, in0 += p->act_strides[0], code0 += p->code_strides[0]) {
        int32_t in1 = in0, code1 = code0;
        for (b1 = 0; b1 < p->dims[1]; ++b1, in1 += p->act_strides[1], code1 += p->code_strides[1]) {
            int32_t in2 = in1, code2 = code1;
            for (b2 = 0; b2 < p->dims[2]; ++b2, in2 += p->act_strides[2], code2 += p->code_strides[2]) {
                adaptc_codes codes;
                int8_t *out_vector = output;
                codes.byte = weights + (code2 >> 3);
                codes.bit = code2 & 7;
                for (o = 0; o < p->outputs; ++o, out_vector += p->out_o) {
                    const int8_t *act = input + in2;
                    int8_t *out = out_vector;
                    for (k = 0; k < depth; ++k) {
                        row[k] = (int8_t)adaptc_decode(adaptc_next_code(&codes, bits), bits, kind);
                    }
                    for (t = 0; t < p->others; ++t, act += p->act_t, out += p->out_t) {
                        const int8_t *a = act;
                        int32_t acc = 0;
                        if (kind == 1) {
                            for (k = 0; k < depth; ++k, a += p->act_k) {
                                acc = adaptc_pot_mac(acc, *a + input_offset, row[k]);
                            }
                        } else {
                            for (k = 0; k < depth; ++k, a += p->act_k) {
                                acc += row[k] * (*a + input_offset);
                            }
                        }
                        acc = p->pot_requant ? adaptc_mbqm_pot(acc, p->shift)
                                             : adaptc_mbqm(acc, p->multiplier, p->shift);
                        *out = (int8_t)adaptc_clamp_i32(acc + p->output_offset, p->act_min, p->act_max);
                    }
                }
                output += p->matrix;
            }
        }
    }
}
