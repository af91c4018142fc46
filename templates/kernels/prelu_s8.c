/*
 * PReLU, int8 (TFLite PRELU). Mirrors TFLite Micro's reference_ops::BroadcastPrelu4DSlow
 * (tensorflow/lite/kernels/internal/reference/prelu.h) with the parameters of
 * CalculatePreluParams (micro/kernels/prelu_common.cc).
 *
 * Layout: input and output flat over four loops dims[0..3] (outermost first); alpha (int8,
 * flash) broadcast to them by its strides (0 along a broadcast axis), the input's strides in
 * strides1.
 * Arithmetic, per element: v = x - input_zp;
 *   v >= 0: MultiplyByQuantizedMultiplier(v, identity_multiplier, identity_shift)
 *   v <  0: MultiplyByQuantizedMultiplier(v * (alpha - alpha_zp), alpha_multiplier, alpha_shift)
 * plus output_zp, clamped to [act_min, act_max].
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    int32_t input_offset;
    int32_t alpha_offset;
    int32_t output_offset;
    int32_t identity_multiplier;
    int32_t identity_shift;
    int32_t alpha_multiplier;
    int32_t alpha_shift;
    int32_t act_min;
    int32_t act_max;
} prelu_s8_params;

static void prelu_s8(const prelu_s8_params *p, const int8_t *input, const int8_t *alpha, int8_t *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *x = input + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const int8_t *a = alpha + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t v = x[i3 * p->strides1[3]] + p->input_offset;
                    int32_t y;
                    if (v >= 0) {
                        y = adaptc_mbqm(v, p->identity_multiplier, p->identity_shift);
                    } else {
                        y = adaptc_mbqm(v * (a[i3 * p->strides2[3]] + p->alpha_offset), p->alpha_multiplier,
                                        p->alpha_shift);
                    }
                    *output++ = (int8_t)adaptc_clamp_i32(y + p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
