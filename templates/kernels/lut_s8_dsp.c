/*
 * Table lookup for int8 unary ops: DSP-core drop-in for lut_s8 -- the same arguments, its table
 * rotated, and bit for bit the same results (TFLite's LUT-based int8 kernels,
 * reference_ops::LookupTable, tensorflow/lite/kernels/internal/common.h).
 *
 * Layout: input, output: flat [size] int8; table: lut_s8's 256 entries rotated by 128, indexed
 *         by the input byte read as unsigned: table[(uint8_t)x] = lut_s8's table[x + 128]
 *         (targets/cortex_m/kernels/activation.py).
 * Arithmetic: output[i] = table[(uint8_t)input[i]], four at a time: one word of four inputs,
 *   its four bytes' entries (adaptc_lut_x4, dsp.h) stored as one word, two words an iteration;
 *   the last size % 8 inputs one at a time.
 */
static void lut_s8_dsp(const lut_s8_params *p, const int8_t *input, int8_t *output)
{
    const uint8_t *const table = (const uint8_t *)p->table;
    const int8_t *const end = input + p->size / 8 * 8;
    int32_t i;
    while (input != end) {
        const uint32_t u0 = (uint32_t)adaptc_read_s8x4(input), u1 = (uint32_t)adaptc_read_s8x4(input + 4);
        adaptc_write_u8x4(output, adaptc_lut_x4(table, u0));
        adaptc_write_u8x4(output + 4, adaptc_lut_x4(table, u1));
        input += 8;
        output += 8;
    }
    for (i = 0; i < p->size % 8; ++i) {
        output[i] = (int8_t)table[(uint8_t)input[i]];
    }
}
