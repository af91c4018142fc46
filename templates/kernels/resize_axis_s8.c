/*
 * One axis of a resize, int8 (post-training quantization of adaptc.resize_axis_f32): the
 * weighted sum of `taps` input elements per output element, in integers. The source indices
 * and the weights (round(w * 2^16)) are tables the compiler computes (adaptc/resize.py, adaptc/interpolate.py).
 *
 * Layout: input [outer][in_size][inner], output [outer][out_size][inner];
 *         indices, weights [out_size][taps] (int32).
 * Arithmetic: acc = sum_k weights[j][k] * (in[o][indices[j][k]][i] + input_offset)   (int32)
 *             out = clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_offset,
 *                         -128, 127)
 * (multiplier, shift: input_scale / output_scale / 2^16 as TFLite's QuantizeMultiplier).
 */
typedef struct {
    int32_t outer;
    int32_t in_size;
    int32_t out_size;
    int32_t inner;
    int32_t taps;
    int32_t input_offset;
    int32_t output_offset;
    int32_t multiplier;
    int32_t shift;
    const int32_t *indices;
    const int32_t *weights;
} resize_axis_s8_params;

static void resize_axis_s8(const resize_axis_s8_params *p, const int8_t *input, int8_t *output)
{
    int32_t o, j, k, i;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *image = input + (size_t)o * (size_t)p->in_size * (size_t)p->inner;
        for (j = 0; j < p->out_size; ++j) {
            const int32_t *index = p->indices + j * p->taps;
            const int32_t *weight = p->weights + j * p->taps;
            for (i = 0; i < p->inner; ++i) {
                int32_t acc = 0;
                for (k = 0; k < p->taps; ++k) {
                    acc += weight[k] * ((int32_t)image[(size_t)index[k] * (size_t)p->inner + (size_t)i]
                                        + p->input_offset);
                }
                acc = adaptc_mbqm(acc, p->multiplier, p->shift) + p->output_offset;
                *output++ = (int8_t)adaptc_clamp_i32(acc, -128, 127);
            }
        }
    }
}
