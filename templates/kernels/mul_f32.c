/*
 * MUL, float32, with broadcasting. Mirrors TFLite's reference_ops::Mul / BroadcastMul6DSlow
 * (float) and ONNX Mul.
 *
 * Layout: as mul_s8.c (four loops over the output, per input a stride per loop, 0: broadcast).
 * Arithmetic: out = clamp(input1 * input2, act_min, act_max).
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    float act_min;
    float act_max;
} mul_f32_params;

static void mul_f32(const mul_f32_params *p, const float *input1, const float *input2, float *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const float *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const float *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    float value = a[i3 * p->strides1[3]] * b[i3 * p->strides2[3]];
                    value = value < p->act_min ? p->act_min : value;
                    value = value > p->act_max ? p->act_max : value;
                    *output++ = value;
                }
            }
        }
    }
}
