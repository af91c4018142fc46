/*
 * UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 cell state, batch 1.
 * Mirrors TFLite Micro's integer LSTM (tensorflow/lite/micro/kernels/lstm_eval.h LstmStep,
 * lstm_eval.cc) with its int16 reference_integer_ops::Logistic / Tanh
 * (tensorflow/lite/kernels/internal/reference/integer_ops/logistic.h, tanh.h).
 *
 * Layout: input             [time_steps][input_size]            int8
 *         input_weights     [4][units][input_size]              int8, gates input, forget, cell, output
 *         recurrent_weights [4][units][units]                   int8
 *         bias              [4][units]                          int32 (input part)
 *         output            [time_steps][units]                 int8 = the hidden state of each step
 *         scratch: cell state int16 [units], gate values int16 [4][units]
 * Arithmetic per step t and gate row r of gate g:
 *   pre = sat16(clamp16(MBQM(bias + sum w_in * (x + input_offset), input_mult[g], input_shift[g]))
 *             + clamp16(MBQM(sum w_rec * (h - hidden_zp), recurrent_mult[g], recurrent_shift[g])))
 *   gate = sigmoid16(pre) (tanh16 for the cell gate), both at 2^-15;
 *   cell = clip(sat16(clamp16(MBQM(f * cell, forget)) + clamp16(MBQM(i * g, input_mul))))
 *   h = output[t] = clamp8(hidden_zp + MBQM(tanh16(cell at 2^cell_power) * o, output_mul))
 *   with h of step -1 = hidden_zp and cell of step -1 = 0 (TFLM's reset variable tensors).
 */
typedef struct {
    int32_t time_steps;
    int32_t input_size;
    int32_t units;
    int32_t input_offset;
    int32_t hidden_zp;
    int32_t input_mult[4];
    int32_t input_shift[4];
    int32_t recurrent_mult[4];
    int32_t recurrent_shift[4];
    int32_t forget_mult;
    int32_t forget_shift;
    int32_t input_mul_mult;
    int32_t input_mul_shift;
    int32_t output_mult;
    int32_t output_shift;
    int32_t cell_clip;
    int32_t tanh_mult;
    int32_t tanh_shift;
    const uint16_t *sigmoid_table;
    void *scratch;
} lstm_s8_params;

/* reference_integer_ops::Logistic (int16, input_multiplier 0: x * 3), Q3.12 -> Q0.15 */
static int16_t lstm_s8_sigmoid(const uint16_t *table, int32_t x)
{
    const int32_t input = x * 3;
    const uint32_t mag = (uint32_t)(input < 0 ? -input : input);
    const uint32_t uh = mag >> 9;
    uint32_t result;
    if (uh >= 255u) {
        result = 0x7FFFu << 10;
    } else {
        const uint32_t ua = table[uh];
        const uint32_t ub = table[uh + 1u];
        result = (ua << 9) + (mag & 0x1FFu) * (ub - ua);
    }
    result = input >= 0 ? result + (1u << 9) : (1u << 25) - result + (1u << 9) - 1u;
    return (int16_t)(result >> 10);
}

/* reference_integer_ops::Tanh (int16): input = (x * mult + round) >> shift, output Q0.15 */
static int16_t lstm_s8_tanh(const uint16_t *table, int32_t x, int32_t mult, int32_t shift)
{
    const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
    const int32_t input = (x * mult + round) >> shift;
    const uint32_t mag = (uint32_t)(input < 0 ? -input : input);
    const uint32_t uh = mag >> 8;
    int32_t result;
    if (uh >= 255u) {
        result = (int32_t)(0xFFFFu << 8);
    } else {
        const uint32_t ua = table[uh];
        const uint32_t ub = table[uh + 1u];
        result = (int32_t)((ua << 8) + (mag & 0xFFu) * (ub - ua));
    }
    result = input >= 0 ? result - (1 << 23) + (1 << 7) : -result + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(result >> 8);
}

static void lstm_s8(const lstm_s8_params *p, const int8_t *input, const int8_t *input_weights,
                    const int8_t *recurrent_weights, const int32_t *bias, int8_t *output)
{
    const int32_t n = p->units;
    int16_t *cell = (int16_t *)p->scratch;
    int16_t *gates = cell + n;
    int32_t t, g, u, d;
    for (u = 0; u < n; ++u) {
        cell[u] = 0;
    }
    for (t = 0; t < p->time_steps; ++t) {
        const int8_t *x = input + t * p->input_size;
        const int8_t *h = t > 0 ? output + (t - 1) * n : NULL;
        int8_t *out = output + t * n;
        for (g = 0; g < 4; ++g) {
            for (u = 0; u < n; ++u) {
                const int32_t row = g * n + u;
                const int8_t *w = input_weights + row * p->input_size;
                int32_t acc = bias[row];
                int32_t pre_in, pre_rec = 0, pre;
                for (d = 0; d < p->input_size; ++d) {
                    acc += (int32_t)w[d] * ((int32_t)x[d] + p->input_offset);
                }
                pre_in = adaptc_clamp_i32(adaptc_mbqm(acc, p->input_mult[g], p->input_shift[g]), -32768, 32767);
                if (h != NULL) {
                    const int8_t *wr = recurrent_weights + row * n;
                    acc = 0;
                    for (d = 0; d < n; ++d) {
                        acc += (int32_t)wr[d] * ((int32_t)h[d] - p->hidden_zp);
                    }
                    pre_rec = adaptc_clamp_i32(adaptc_mbqm(acc, p->recurrent_mult[g], p->recurrent_shift[g]),
                                               -32768, 32767);
                }
                pre = adaptc_clamp_i32(pre_in + pre_rec, -32768, 32767);
                gates[row] = g == 2 ? lstm_s8_tanh(p->sigmoid_table, pre, 3, 0)
                                    : lstm_s8_sigmoid(p->sigmoid_table, pre);
            }
        }
        for (u = 0; u < n; ++u) {
            const int32_t i_gate = gates[u], f_gate = gates[n + u], c_gate = gates[2 * n + u];
            const int32_t o_gate = gates[3 * n + u];
            const int32_t kept = adaptc_clamp_i32(adaptc_mbqm(f_gate * (int32_t)cell[u], p->forget_mult,
                                                              p->forget_shift), -32768, 32767);
            const int32_t added = adaptc_clamp_i32(adaptc_mbqm(i_gate * c_gate, p->input_mul_mult,
                                                               p->input_mul_shift), -32768, 32767);
            int32_t c = adaptc_clamp_i32(kept + added, -32768, 32767);
            int32_t tanh_c;
            if (p->cell_clip > 0) {
                c = adaptc_clamp_i32(c, -p->cell_clip, p->cell_clip);
            }
            cell[u] = (int16_t)c;
            tanh_c = lstm_s8_tanh(p->sigmoid_table, c, p->tanh_mult, p->tanh_shift);
            out[u] = (int8_t)adaptc_clamp_i32(p->hidden_zp + adaptc_mbqm(tanh_c * o_gate, p->output_mult,
                                                                          p->output_shift), -128, 127);
        }
    }
}
