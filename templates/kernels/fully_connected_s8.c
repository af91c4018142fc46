/*
 * FULLY_CONNECTED, int8.
 * Mirrors TFLite reference_integer_ops::FullyConnected and
 * FullyConnectedPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h).
 *
 * Layout: input   [batches][in_features]                 int8
 *         weights [out_features][filter_stride]          int8 (the first in_features
 *                                                        of each row are read)
 *         bias    [out_features]                         int32, may be NULL
 *         output  [batches][out_features]                int8
 *         out_mult/out_shift have out_features entries (a per-tensor model
 *         repeats its single value).
 * Arithmetic: acc = sum (input + input_offset) * (weight + filter_offset);
 *   acc += bias[o];
 *   acc = MultiplyByQuantizedMultiplier(acc, out_mult[o], out_shift[o]);
 *   acc += output_offset; clamp to [act_min, act_max].
 */
static void fully_connected_s8(const fully_connected_s8_params *p,
                               const int8_t *input, const int8_t *weights,
                               const int32_t *bias, const int32_t *out_mult,
                               const int32_t *out_shift, int8_t *output)
{
    int32_t b, out_c, d;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *input_row = input + b * p->in_features;
        for (out_c = 0; out_c < p->out_features; ++out_c) {
            const int8_t *filter_row = weights + out_c * p->filter_stride;
            int32_t acc = 0;
            for (d = 0; d < p->in_features; ++d) {
                const int32_t input_val = input_row[d];
                const int32_t filter_val = filter_row[d];
                acc += (filter_val + p->filter_offset) * (input_val + p->input_offset);
            }
            if (bias != NULL) {
                acc += bias[out_c];
            }
            acc = adaptc_mbqm(acc, out_mult[out_c], out_shift[out_c]);
            acc += p->output_offset;
            acc = adaptc_clamp_i32(acc, p->act_min, p->act_max);
            output[b * p->out_features + out_c] = (int8_t)acc;
        }
    }
}
