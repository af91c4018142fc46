/*
 * MAXIMUM / MINIMUM, int8, with broadcasting. Mirrors TFLite Micro's maximum_minimum.cc
 * (reference_ops::MaximumMinimumBroadcastSlow on the raw int8 values; the compiler requires the
 * inputs and the output to share scale and zero point, where that is the true maximum).
 *
 * Layout: as addsub_s8.c (four loops over the output, per input a stride per loop, 0: broadcast).
 * Arithmetic: out = clamp(minimum ? min(input1, input2) : max(input1, input2), act_min, act_max).
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    int32_t minimum;
    int32_t act_min;
    int32_t act_max;
} maxmin_s8_params;

static void maxmin_s8(const maxmin_s8_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const int8_t *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t x = a[i3 * p->strides1[3]];
                    const int32_t y = b[i3 * p->strides2[3]];
                    const int32_t value = (p->minimum ? x < y : x > y) ? x : y;
                    *output++ = (int8_t)adaptc_clamp_i32(value, p->act_min, p->act_max);
                }
            }
        }
    }
}
