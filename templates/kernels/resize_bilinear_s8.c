/*
 * RESIZE_BILINEAR int8 (TFLite RESIZE_BILINEAR, align_corners / half_pixel_centers). Mirrors
 * TFLite's reference_ops::ResizeBilinearInteger
 * (tensorflow/lite/kernels/internal/reference/resize_bilinear.h); the per-row and per-column
 * source indices and 10-bit fractions (its ComputeInterpolationValuesInteger) are tables the
 * compiler computes (adaptc/resize.py).
 *
 * Layout: input NHWC [batches][in_h][in_w][channels], output [batches][out_h][out_w][channels];
 *         y_lo, y_hi, y_frac [out_h], x_lo, x_hi, x_frac [out_w] (int32).
 * Arithmetic: with gy = 1024 - fy, gx = 1024 - fx (int32, |acc| < 2^30):
 *   acc = x[y_lo][x_lo] gy gx + x[y_hi][x_lo] fy gx + x[y_lo][x_hi] gy fx + x[y_hi][x_hi] fy fx
 *   out = (acc + 2^19) >> 20 when acc > 0, else -((2^19 - acc) >> 20)   (half away from zero)
 * Output parameters are the input's (no requantization).
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
    const int32_t *y_frac;
    const int32_t *x_lo;
    const int32_t *x_hi;
    const int32_t *x_frac;
} resize_bilinear_s8_params;

static void resize_bilinear_s8(const resize_bilinear_s8_params *p, const int8_t *input, int8_t *output)
{
    const int32_t row = p->in_w * p->channels;
    int32_t b, oy, ox, c;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)p->in_h * (size_t)row;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t fy = p->y_frac[oy], gy = 1024 - fy;
            const int8_t *r0 = image + (size_t)p->y_lo[oy] * (size_t)row;
            const int8_t *r1 = image + (size_t)p->y_hi[oy] * (size_t)row;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t fx = p->x_frac[ox], gx = 1024 - fx;
                const int8_t *v00 = r0 + p->x_lo[ox] * p->channels, *v01 = r0 + p->x_hi[ox] * p->channels;
                const int8_t *v10 = r1 + p->x_lo[ox] * p->channels, *v11 = r1 + p->x_hi[ox] * p->channels;
                for (c = 0; c < p->channels; ++c) {
                    const int32_t acc = (int32_t)v00[c] * gy * gx + (int32_t)v10[c] * fy * gx
                                      + (int32_t)v01[c] * gy * fx + (int32_t)v11[c] * fy * fx;
                    const int32_t y = acc > 0 ? (acc + (1 << 19)) >> 20 : -(((1 << 19) - acc) >> 20);
                    *output++ = (int8_t)adaptc_clamp_i32(y, -128, 127);
                }
            }
        }
    }
}
