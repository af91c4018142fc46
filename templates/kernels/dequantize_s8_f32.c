/*
 * DEQUANTIZE int8 -> float32 (a model's float output, TFLite DEQUANTIZE as a converter's last
 * operator). Mirrors TFLite's reference_ops::Dequantize
 * (tensorflow/lite/kernels/internal/reference/dequantize.h): there the product is taken in double
 * and cast to float; the product of a float scale and a small integer is exact in either, so one
 * float multiplication rounds the same.
 *
 * Layout: input flat [size] int8, output flat [size] float.
 * Arithmetic: y = scale * (x - zero_point).
 */
typedef struct {
    int32_t size;
    int32_t input_offset;
    float scale;
} dequantize_s8_f32_params;

static void dequantize_s8_f32(const dequantize_s8_f32_params *p, const int8_t *input, float *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        output[i] = (float)((int32_t)input[i] - p->input_offset) * p->scale;
    }
}
