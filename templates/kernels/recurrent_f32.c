/*
 * ONNX LSTM and GRU, float32: one layer, forward, the default activations (adaptc.recurrent).
 * Definition: the ONNX LSTM and GRU operators (onnxruntime's deep_cpu_lstm / deep_cpu_gru).
 *
 * Layout: input             [batch][time_steps][input_size]
 *         weights           [G][units][input_size]  W, ONNX's gate order: LSTM i, o, f, c; GRU z, r, h
 *         recurrent_weights [G][units][units]       R
 *         bias              [2][G][units]           Wb, then Rb
 *         initial_state     [batch][units] h0 (GRU), [2][batch][units] h0, c0 (LSTM)
 *         output            [batch][time_steps][units]  the hidden state of each step
 *         scratch: gates [2][G][units] float, state [2][units] float
 * Arithmetic per sequence and step t, with xg = W x_t + Wb and hg = R h + Rb (each gate row a dot product):
 *   LSTM: c = sigmoid(f) * c + sigmoid(i) * tanh(c~);  h = sigmoid(o) * tanh(c)
 *   GRU:  z = sigmoid(xg_z + hg_z), r = sigmoid(xg_r + hg_r);
 *         h~ = tanh(xg_h + r * hg_h)                      (linear_before_reset = 1)
 *         h~ = tanh(xg_h + Rh (r * h) + Rbh)              (linear_before_reset = 0)
 *         h = (1 - z) * h~ + z * h
 * Needs libm (link with -lm).
 */
#include <math.h>

typedef struct {
    int32_t batch;
    int32_t time_steps;
    int32_t input_size;
    int32_t units;
    int32_t cell;                   /* 0 LSTM, 1 GRU */
    int32_t linear_before_reset;    /* GRU */
    void *scratch;
} recurrent_f32_params;

static float recurrent_f32_sigmoid(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

static float recurrent_f32_dot(const float *w, const float *v, int32_t n)
{
    float acc = 0.0f;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += w[k] * v[k];
    }
    return acc;
}

static void recurrent_f32(const recurrent_f32_params *p, const float *input, const float *weights,
                          const float *recurrent_weights, const float *bias, const float *initial_state,
                          float *output)
{
    const int32_t n = p->units, gates = p->cell == 0 ? 4 : 3, rows = gates * n;
    float *xg = (float *)p->scratch;     /* W x_t + Wb, per gate row */
    float *hg = xg + rows;                /* R h + Rb */
    float *h = hg + rows;
    float *c = h + n;
    const float *wb = bias, *rb = bias + rows;
    int32_t b, t, j;
    for (b = 0; b < p->batch; ++b) {
        for (j = 0; j < n; ++j) {
            h[j] = initial_state[b * n + j];
            c[j] = p->cell == 0 ? initial_state[(p->batch + b) * n + j] : 0.0f;
        }
        for (t = 0; t < p->time_steps; ++t) {
            const float *x = input + (b * p->time_steps + t) * p->input_size;
            float *out = output + (b * p->time_steps + t) * n;
            for (j = 0; j < rows; ++j) {
                xg[j] = wb[j] + recurrent_f32_dot(weights + j * p->input_size, x, p->input_size);
                hg[j] = rb[j] + recurrent_f32_dot(recurrent_weights + j * n, h, n);
            }
            if (p->cell == 0) {
                for (j = 0; j < n; ++j) {
                    const float i_gate = recurrent_f32_sigmoid(xg[j] + hg[j]);
                    const float o_gate = recurrent_f32_sigmoid(xg[n + j] + hg[n + j]);
                    const float f_gate = recurrent_f32_sigmoid(xg[2 * n + j] + hg[2 * n + j]);
                    const float candidate = tanhf(xg[3 * n + j] + hg[3 * n + j]);
                    c[j] = f_gate * c[j] + i_gate * candidate;
                    out[j] = o_gate * tanhf(c[j]);
                }
            } else {
                for (j = 0; j < n; ++j) {      /* z, r: the r gate kept in hg[n + j] */
                    hg[j] = recurrent_f32_sigmoid(xg[j] + hg[j]);
                    hg[n + j] = recurrent_f32_sigmoid(xg[n + j] + hg[n + j]);
                }
                if (!p->linear_before_reset) {  /* Rh (r * h) + Rbh: r * h in c */
                    for (j = 0; j < n; ++j) {
                        c[j] = hg[n + j] * h[j];
                    }
                    for (j = 0; j < n; ++j) {
                        hg[2 * n + j] = rb[2 * n + j] +
                                        recurrent_f32_dot(recurrent_weights + (2 * n + j) * n, c, n);
                    }
                }
                for (j = 0; j < n; ++j) {
                    const float reset = p->linear_before_reset ? hg[n + j] * hg[2 * n + j] : hg[2 * n + j];
                    const float candidate = tanhf(xg[2 * n + j] + reset);
                    out[j] = (1.0f - hg[j]) * candidate + hg[j] * h[j];
                }
            }
            for (j = 0; j < n; ++j) {
                h[j] = out[j];
            }
        }
    }
}
