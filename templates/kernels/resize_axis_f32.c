/*
 * One axis of a resize, float32 (ONNX Resize modes linear and cubic, antialias, every
 * coordinate_transformation_mode): resizing is separable, and along the resized axis every
 * output element is a fixed weighted sum of `taps` input elements. The source indices and the
 * weights are tables the compiler computes from the ONNX specification (adaptc/resize.py).
 * Definition: ONNX Resize, one resized axis at a time (onnx.reference's Resize computes the same
 * per-axis interpolation).
 *
 * Layout: input [outer][in_size][inner], output [outer][out_size][inner];
 *         indices, weights [out_size][taps] (int32, float32).
 * Arithmetic: out[o][j][i] = sum over k = 0 .. taps - 1, in order, of
 *             weights[j][k] * in[o][indices[j][k]][i], accumulated from 0.
 */
typedef struct {
    int32_t outer;
    int32_t in_size;
    int32_t out_size;
    int32_t inner;
    int32_t taps;
    const int32_t *indices;
    const float *weights;
} resize_axis_f32_params;

static void resize_axis_f32(const resize_axis_f32_params *p, const float *input, float *output)
{
    int32_t o, j, k, i;
    for (o = 0; o < p->outer; ++o) {
        const float *image = input + (size_t)o * (size_t)p->in_size * (size_t)p->inner;
        for (j = 0; j < p->out_size; ++j) {
            float *row = output + ((size_t)o * (size_t)p->out_size + (size_t)j) * (size_t)p->inner;
            for (i = 0; i < p->inner; ++i) {
                row[i] = 0.0f;
            }
            for (k = 0; k < p->taps; ++k) {
                const float w = p->weights[j * p->taps + k];
                const float *src = image + (size_t)p->indices[j * p->taps + k] * (size_t)p->inner;
                for (i = 0; i < p->inner; ++i) {
                    row[i] += w * src[i];
                }
            }
        }
    }
}
