/*
 * ARG_MAX, int8_t input (TFLite ARG_MAX, ONNX ArgMax with keepdims 0 and select_last_index 0).
 * Mirrors TFLite's reference_ops::ArgMinMax
 * (tensorflow/lite/kernels/internal/reference/arg_min_max.h) with std::greater: the first of
 * equal maxima wins.
 *
 * Layout: input [outer][axis_size][inner], output [outer][inner] int32 indices.
 * Arithmetic: comparisons only.
 */
typedef struct {
    int32_t outer;
    int32_t axis_size;
    int32_t inner;
} argmax_s8_params;

static void argmax_s8(const argmax_s8_params *p, const int8_t *input, int32_t *output)
{
    int32_t o, i, k;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *base = input + (size_t)o * (size_t)p->axis_size * (size_t)p->inner;
        for (i = 0; i < p->inner; ++i) {
            int8_t best = base[i];
            int32_t index = 0;
            for (k = 1; k < p->axis_size; ++k) {
                const int8_t v = base[(size_t)k * (size_t)p->inner + (size_t)i];
                if (v > best) {
                    best = v;
                    index = k;
                }
            }
            *output++ = index;
        }
    }
}
