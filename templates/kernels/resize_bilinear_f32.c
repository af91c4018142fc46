/*
 * Bilinear resize, float32 (TFLite RESIZE_BILINEAR, ONNX Resize / Upsample mode linear). Mirrors
 * TFLite's reference_ops::ResizeBilinear
 * (tensorflow/lite/kernels/internal/reference/resize_bilinear.h); the per-row and per-column
 * source indices and fractions are tables the compiler computes with the operator's coordinate
 * rules (adaptc/resize.py).
 *
 * Layout: input NHWC [batches][in_h][in_w][channels], output [batches][out_h][out_w][channels];
 *         y_lo, y_hi [out_h], x_lo, x_hi [out_w] (int32); y_frac [out_h], x_frac [out_w] (float).
 * Arithmetic: x[y_lo][x_lo] (1 - fy)(1 - fx) + x[y_hi][x_lo] fy (1 - fx)
 *           + x[y_lo][x_hi] (1 - fy) fx + x[y_hi][x_hi] fy fx, left to right.
 */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t out_h;
    int32_t out_w;
    int32_t channels;
    const int32_t *y_lo;
    const int32_t *y_hi;
    const float *y_frac;
    const int32_t *x_lo;
    const int32_t *x_hi;
    const float *x_frac;
} resize_bilinear_f32_params;

static void resize_bilinear_f32(const resize_bilinear_f32_params *p, const float *input, float *output)
{
    const int32_t row = p->in_w * p->channels;
    int32_t b, oy, ox, c;
    for (b = 0; b < p->batches; ++b) {
        const float *image = input + (size_t)b * (size_t)p->in_h * (size_t)row;
        for (oy = 0; oy < p->out_h; ++oy) {
            const float fy = p->y_frac[oy], gy = 1.0f - fy;
            const float *r0 = image + (size_t)p->y_lo[oy] * (size_t)row;
            const float *r1 = image + (size_t)p->y_hi[oy] * (size_t)row;
            for (ox = 0; ox < p->out_w; ++ox) {
                const float fx = p->x_frac[ox], gx = 1.0f - fx;
                const float *v00 = r0 + p->x_lo[ox] * p->channels, *v01 = r0 + p->x_hi[ox] * p->channels;
                const float *v10 = r1 + p->x_lo[ox] * p->channels, *v11 = r1 + p->x_hi[ox] * p->channels;
                for (c = 0; c < p->channels; ++c) {
                    *output++ = v00[c] * gy * gx + v10[c] * fy * gx + v01[c] * gy * fx + v11[c] * fy * fx;
                }
            }
        }
    }
}
