/*
 * QUANTIZE float32 -> int8 (a model's float input, TFLite QUANTIZE as a converter's first operator).
 * Mirrors TFLite's reference_ops::AffineQuantize
 * (tensorflow/lite/kernels/internal/reference/quantize.h).
 *
 * Layout: input flat [size] float, output flat [size] int8.
 * Arithmetic: q = round(x / scale) (float32 quotient, half away from zero), + output_offset,
 *             clamped to [act_min, act_max]. The rounded quotient is first bounded to +-512, which
 *             changes no result and keeps the int32 conversion defined for any input.
 * Needs libm (link with -lm).
 */
#include <math.h>

typedef struct {
    int32_t size;
    float scale;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} quantize_f32_s8_params;

static void quantize_f32_s8(const quantize_f32_s8_params *p, const float *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        float r = roundf(input[i] / p->scale);
        int32_t q;
        r = r > 512.0f ? 512.0f : (r < -512.0f ? -512.0f : r);
        q = (int32_t)r + p->output_offset;
        output[i] = (int8_t)adaptc_clamp_i32(q, p->act_min, p->act_max);
    }
}
