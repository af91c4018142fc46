/*
 * PReLU, float32 (TFLite PRELU, ONNX PRelu). Mirrors TFLite Micro's BroadcastPrelu4DSlowFloat
 * (micro/kernels/prelu_common.cc).
 *
 * Layout: input and output flat over four loops dims[0..3] (outermost first); alpha (flash)
 * broadcast to them by its strides (0 along a broadcast axis), the input's strides in strides1.
 * Arithmetic: out = x >= 0 ? x : x * alpha.
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
} prelu_f32_params;

static void prelu_f32(const prelu_f32_params *p, const float *input, const float *alpha, float *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const float *x = input + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const float *a = alpha + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const float v = x[i3 * p->strides1[3]];
                    *output++ = v >= 0.0f ? v : v * a[i3 * p->strides2[3]];
                }
            }
        }
    }
}
