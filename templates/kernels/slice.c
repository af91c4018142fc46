/*
 * A strided view of a tensor, copied out, any element type: TFLite STRIDED_SLICE, SLICE,
 * SPLIT / SPLIT_V (one output each), ONNX Slice, Split. Mirrors TFLite's
 * reference_ops::StridedSlice (tensorflow/lite/kernels/internal/reference/strided_slice.h).
 *
 * Layout: output [dims[0]][dims[1]][dims[2]][dims[3]] elements of item bytes, contiguous;
 *         the element at (i0, i1, i2, i3) is read at input + offset + sum(i_d * strides[d])
 *         (offset and strides in bytes; the compiler merges axes and drops those of extent 1).
 * Arithmetic: none.
 */
#include <string.h>

typedef struct {
    int32_t dims[4];
    int32_t strides[4];
    int32_t offset;
    int32_t item;
} slice_params;

static void slice(const slice_params *p, const void *input, void *output)
{
    uint8_t *out = (uint8_t *)output;
    const size_t row = (size_t)p->dims[3] * (size_t)p->item;
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const uint8_t *src = (const uint8_t *)input + p->offset + i0 * p->strides[0]
                                     + i1 * p->strides[1] + i2 * p->strides[2];
                if (p->strides[3] == p->item) {
                    memcpy(out, src, row);
                    out += row;
                } else {
                    for (i3 = 0; i3 < p->dims[3]; ++i3) {
                        memcpy(out, src + i3 * p->strides[3], (size_t)p->item);
                        out += p->item;
                    }
                }
            }
        }
    }
}
