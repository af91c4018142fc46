/*
 * GATHER along one axis with constant indices, any element type: nearest-neighbour resizing
 * (TFLite RESIZE_NEAREST_NEIGHBOR, ONNX Resize mode nearest: one gather per spatial axis, the
 * indices computed by the compiler with the operator's coordinate rules) and ONNX Gather on a
 * constant index list. Mirrors TFLite's reference_ops::Gather
 * (tensorflow/lite/kernels/internal/reference/gather.h).
 *
 * Layout: input [outer][axis_size][inner bytes], output [outer][count][inner bytes];
 *         indices[count] (int32, in 0 .. axis_size - 1).
 * Arithmetic: none; output[o][j] = input[o][indices[j]].
 */
#include <string.h>

typedef struct {
    int32_t outer;
    int32_t axis_size;
    int32_t count;
    int32_t inner;
    const int32_t *indices;
} gather_params;

static void gather(const gather_params *p, const void *input, void *output)
{
    uint8_t *out = (uint8_t *)output;
    int32_t o, j;
    for (o = 0; o < p->outer; ++o) {
        const uint8_t *in = (const uint8_t *)input + (size_t)o * (size_t)p->axis_size * (size_t)p->inner;
        for (j = 0; j < p->count; ++j) {
            memcpy(out, in + (size_t)p->indices[j] * (size_t)p->inner, (size_t)p->inner);
            out += p->inner;
        }
    }
}
