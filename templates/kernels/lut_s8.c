/*
 * Table lookup for int8 unary ops (RELU, RELU6, RELU_N1_TO_1, LOGISTIC,
 * TANH, ... whose int8 result the compiler precomputes for all 256 inputs
 * from TFLite's reference arithmetic for that op).
 * Mirrors TFLite's LUT-based int8 kernels (reference_ops::LookupTable,
 * tensorflow/lite/kernels/internal/common.h).
 *
 * Layout: input, output: flat [size] int8.
 * Arithmetic: output[i] = table[input[i] + 128].
 */
static void lut_s8(const lut_s8_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        output[i] = p->table[(int32_t)input[i] + 128];
    }
}
