/*
 * UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 cell state, batch 1:
 * DSP-extension drop-in for lstm_s8 -- its arguments, the weight rows packed four to a word, and
 * bit for bit its results (TFLite Micro's integer LSTM, tensorflow/lite/micro/kernels/
 * lstm_eval.h LstmStep, with its int16 reference_integer_ops::Logistic / Tanh).
 *
 * Layout: input             [time_steps][input_size]            int8, as lstm_s8
 *         input_weights     [4][units] rows of input_size int8, four to a word, zero-padded to
 *                           in_groups = ceil(input_size / 4) words (dsp.h's row layout)
 *         recurrent_weights [4][units] rows of units int8, likewise (rec_groups words)
 *         bias              [4][units]                          int32 (input part), as lstm_s8
 *         output            [time_steps][units]                 int8 = the hidden state of each step
 *         scratch: the input column (2 * in_groups words), the hidden column (2 * rec_groups
 *                  words), cell state int16 [units], gate values int16 [4][units]
 * Arithmetic: as lstm_s8.  Per step the input (x + input_offset) and the previous hidden state
 *   (h - hidden_zp) become int16 columns once (adaptc_col_from_s8); each gate row's two dot
 *   products are two SMLAD per four weights (adaptc_dot_row) -- the same int32 sums, exact for
 *   any weights (|w * x| <= 128 * 255, far from overflow).  Where exact_rq is 1 the gate rows'
 *   sums are requantized by adaptc_rq (dsp.h; one SMMULR) -- the builder sets it where
 *   requant_is_exact proves that for every row's largest sum (targets/cortex_m/kernels/lstm.py)
 *   --, else by adaptc_mbqm.  The cell and hidden updates and the activations
 *   (adaptc_lstm_sigmoid / adaptc_lstm_tanh, dsp.h) are lstm_s8's.
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
    int32_t exact_rq;       /* 1: adaptc_rq equals adaptc_mbqm for every gate row's sums */
    const uint16_t *sigmoid_table;
    void *scratch;
} lstm_s8_dsp_params;

static void lstm_s8_dsp(const lstm_s8_dsp_params *p, const int8_t *input, const int32_t *input_weights,
                        const int32_t *recurrent_weights, const int32_t *bias, int8_t *output)
{
    const int32_t n = p->units;
    const int32_t in_groups = (p->input_size + 3) / 4, rec_groups = (n + 3) / 4, exact = p->exact_rq;
    int32_t *const x_col = (int32_t *)p->scratch;
    int32_t *const h_col = x_col + 2 * in_groups;
    int16_t *const cell = (int16_t *)(h_col + 2 * rec_groups);
    int16_t *const gates = cell + n;
    int32_t t, g, u;
    for (u = 0; u < n; ++u) {
        cell[u] = 0;
    }
    for (t = 0; t < p->time_steps; ++t) {
        int8_t *out = output + t * n;
        adaptc_col_from_s8(x_col, 2, input + t * p->input_size, p->input_size, p->input_offset);
        if (t > 0) {
            adaptc_col_from_s8(h_col, 2, output + (t - 1) * n, n, -p->hidden_zp);
        }
        for (g = 0; g < 4; ++g) {
            for (u = 0; u < n; ++u) {
                const int32_t row = g * n + u;
                const int32_t acc = adaptc_dot_row(input_weights + row * in_groups, x_col, in_groups, bias[row]);
                int32_t pre = adaptc_clamp_i32(exact ? adaptc_rq(acc, p->input_mult[g], p->input_shift[g])
                                                     : adaptc_mbqm(acc, p->input_mult[g], p->input_shift[g]),
                                               -32768, 32767);
                if (t > 0) {
                    const int32_t rec = adaptc_dot_row(recurrent_weights + row * rec_groups, h_col, rec_groups, 0);
                    pre += adaptc_clamp_i32(exact ? adaptc_rq(rec, p->recurrent_mult[g], p->recurrent_shift[g])
                                                  : adaptc_mbqm(rec, p->recurrent_mult[g], p->recurrent_shift[g]),
                                            -32768, 32767);
                }
                pre = adaptc_clamp_i32(pre, -32768, 32767);
                gates[row] = g == 2 ? adaptc_lstm_tanh(p->sigmoid_table, pre, 3, 0)
                                    : adaptc_lstm_sigmoid(p->sigmoid_table, pre);
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
            tanh_c = adaptc_lstm_tanh(p->sigmoid_table, c, p->tanh_mult, p->tanh_shift);
            out[u] = (int8_t)adaptc_clamp_i32(p->hidden_zp + adaptc_mbqm(tanh_c * o_gate, p->output_mult,
                                                                          p->output_shift), -128, 127);
        }
    }
}
