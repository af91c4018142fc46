/*
 * PAD / PADV2, float32, 4-D constant padding.
 * Mirrors TFLite reference_ops::Pad (tensorflow/lite/kernels/internal/
 * reference/pad.h) with a constant pad value (0.0f for PAD).
 *
 * Layout: input [in_dims[0]][in_dims[1]][in_dims[2]][in_dims[3]] float (NHWC),
 *         output [out_dims[0]]..[out_dims[3]] float;
 *         out_dims[i] = before[i] + in_dims[i] + after[i].
 * Arithmetic: output = input at [o - before] where inside, else pad_value.
 */
static void pad_f32(const pad_f32_params *p, const float *input, float *output)
{
    int32_t o0, o1, o2, o3;
    for (o0 = 0; o0 < p->out_dims[0]; ++o0) {
        const int32_t i0 = o0 - p->before[0];
        const int32_t in0 = i0 >= 0 && i0 < p->in_dims[0];
        for (o1 = 0; o1 < p->out_dims[1]; ++o1) {
            const int32_t i1 = o1 - p->before[1];
            const int32_t in1 = in0 && i1 >= 0 && i1 < p->in_dims[1];
            for (o2 = 0; o2 < p->out_dims[2]; ++o2) {
                const int32_t i2 = o2 - p->before[2];
                const int32_t in2 = in1 && i2 >= 0 && i2 < p->in_dims[2];
                for (o3 = 0; o3 < p->out_dims[3]; ++o3) {
                    const int32_t i3 = o3 - p->before[3];
                    const int32_t inside = in2 && i3 >= 0 && i3 < p->in_dims[3];
                    *output++ = inside
                        ? input[((i0 * p->in_dims[1] + i1) * p->in_dims[2] + i2) * p->in_dims[3] + i3]
                        : p->pad_value;
                }
            }
        }
    }
}
