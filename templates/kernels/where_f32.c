/*
 * Select, float32, with broadcasting: out = (a <comparison> b) ? t : f. Mirrors ONNX Where of a
 * Less / LessOrEqual / Greater / GreaterOrEqual / Equal (and TFLite's reference_ops::Select with
 * the comparison fused).
 *
 * Layout: four loops over the output (dims, outermost first); up to four operands x1..x4
 *         (activations, then constants; unused ones NULL), operand k's element of output
 *         position (i0, i1, i2, i3) at sum(i_d * strides_k[d]) (stride 0: broadcast).
 *         slots[0..3]: the operand (0-based) that is a, b, t, f.
 * Arithmetic: comparison 0 a < b, 1 a <= b, 2 a > b, 3 a >= b, 4 a == b.
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    int32_t strides3[4];
    int32_t strides4[4];
    int32_t slots[4];
    int32_t comparison;
} where_f32_params;

static int32_t where_f32_test(int32_t comparison, float a, float b)
{
    switch (comparison) {
    case 0: return a < b;
    case 1: return a <= b;
    case 2: return a > b;
    case 3: return a >= b;
    default: return a == b;
    }
}

static void where_f32(const where_f32_params *p, const float *x1, const float *x2, const float *x3,
                      const float *x4, float *output)
{
    const float *const operand[4] = {x1, x2, x3, x4};
    const int32_t *const strides[4] = {p->strides1, p->strides2, p->strides3, p->strides4};
    const float *row[4];
    int32_t i0, i1, i2, i3, k;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                for (k = 0; k < 4; ++k) {
                    row[k] = operand[k] == NULL ? NULL
                             : operand[k] + i0 * strides[k][0] + i1 * strides[k][1] + i2 * strides[k][2];
                }
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t a = p->slots[0], b = p->slots[1], t = p->slots[2], f = p->slots[3];
                    const int32_t pick = where_f32_test(p->comparison, row[a][i3 * strides[a][3]],
                                                        row[b][i3 * strides[b][3]]) ? t : f;
                    *output++ = row[pick][i3 * strides[pick][3]];
                }
            }
        }
    }
}
