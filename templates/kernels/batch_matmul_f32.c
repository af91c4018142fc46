/*
 * Batched matmul, float32, with broadcasting over the batch dims. Mirrors TFLite's
 * reference_ops::BatchMatMul (float) and ONNX MatMul (numpy matmul semantics).
 *
 * Layout: as batch_matmul_s8.c (lhs [..][rows][depth], rhs [..][depth][cols], per batch dim a
 *   stride per operand, 0: broadcast; input1 the activation, with swap the rhs).
 * Arithmetic: out[i][j] = clamp(sum_k lhs[i][k] * rhs[k][j], act_min, act_max), k ascending.
 */
typedef struct {
    int32_t dims[3];
    int32_t lhs_strides[3];
    int32_t rhs_strides[3];
    int32_t rows;
    int32_t depth;
    int32_t cols;
    int32_t swap;
    float act_min;
    float act_max;
} batch_matmul_f32_params;

static void batch_matmul_f32(const batch_matmul_f32_params *p, const float *input1, const float *input2,
                             float *output)
{
    const float *lhs_data = p->swap ? input2 : input1;
    const float *rhs_data = p->swap ? input1 : input2;
    int32_t b0, b1, b2, i, j, k;
    for (b0 = 0; b0 < p->dims[0]; ++b0) {
        for (b1 = 0; b1 < p->dims[1]; ++b1) {
            for (b2 = 0; b2 < p->dims[2]; ++b2) {
                const float *lhs = lhs_data + b0 * p->lhs_strides[0] + b1 * p->lhs_strides[1] +
                                   b2 * p->lhs_strides[2];
                const float *rhs = rhs_data + b0 * p->rhs_strides[0] + b1 * p->rhs_strides[1] +
                                   b2 * p->rhs_strides[2];
                for (i = 0; i < p->rows; ++i) {
                    for (j = 0; j < p->cols; ++j) {
                        float acc = 0.0f;
                        for (k = 0; k < p->depth; ++k) {
                            acc += lhs[i * p->depth + k] * rhs[k * p->cols + j];
                        }
                        acc = acc < p->act_min ? p->act_min : acc;
                        acc = acc > p->act_max ? p->act_max : acc;
                        output[i * p->cols + j] = acc;
                    }
                }
                output += p->rows * p->cols;
            }
        }
    }
}
