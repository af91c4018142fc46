/*
 * CONCATENATION of up to four tensors, any element type (TFLite CONCATENATION, ONNX Concat).
 * Mirrors TFLite's reference_ops::Concatenation
 * (tensorflow/lite/kernels/internal/reference/concatenation.h); int8 inputs share the output's
 * quantization (TFLite Micro requires it; the compiler requantizes an input that does not).
 *
 * Layout: input k: [outer][bytes[k]]; output: [outer][bytes[0] + ... + bytes[count - 1]]
 *         (outer: the product of the dimensions before the axis; bytes[k]: input k's extent
 *         from the axis on, in bytes). Unused inputs are NULL.
 * Arithmetic: none; per outer index, input k's block of bytes[k] bytes after input k - 1's.
 */
#include <string.h>

typedef struct {
    int32_t count;
    int32_t outer;
    int32_t bytes[4];
} concat_params;

static void concat(const concat_params *p, const void *input1, const void *input2, const void *input3,
                   const void *input4, void *output)
{
    const uint8_t *inputs[4];
    uint8_t *out = (uint8_t *)output;
    int32_t o, k;
    inputs[0] = (const uint8_t *)input1;
    inputs[1] = (const uint8_t *)input2;
    inputs[2] = (const uint8_t *)input3;
    inputs[3] = (const uint8_t *)input4;
    for (o = 0; o < p->outer; ++o) {
        for (k = 0; k < p->count; ++k) {
            memcpy(out, inputs[k] + (size_t)o * (size_t)p->bytes[k], (size_t)p->bytes[k]);
            out += p->bytes[k];
        }
    }
}
