/*
 * BATCH_MATMUL, int8, with broadcasting over the batch dims.
 * Mirrors TFLite Micro's batch_matmul.cc EvalInt8 -> reference_ops::BatchMatMul
 * (tensorflow/lite/kernels/internal/reference/batch_matmul.h); adj_x / adj_y arrive as
 * transposes before the step.
 *
 * Layout: lhs    [b0][b1][b2][rows][depth]  int8
 *         rhs    [b0][b1][b2][depth][cols]  int8
 *         output [b0][b1][b2][rows][cols]   int8   (b* = batch dims[*]; an operand of extent 1
 *                                                   in a batch dim has stride 0 there)
 * input1 is the activation; with swap it is the rhs and input2 (a constant in flash) the lhs.
 * Arithmetic, per output:
 *   acc = sum_k (lhs[i][k] + lhs_offset) * (rhs[k][j] + rhs_offset)
 *   out = MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_offset,
 *         clamped to [act_min, act_max].
 */
typedef struct {
    int32_t dims[3];
    int32_t lhs_strides[3];
    int32_t rhs_strides[3];
    int32_t rows;
    int32_t depth;
    int32_t cols;
    int32_t swap;
    int32_t lhs_offset;
    int32_t rhs_offset;
    int32_t multiplier;
    int32_t shift;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} batch_matmul_s8_params;

static void batch_matmul_s8(const batch_matmul_s8_params *p, const int8_t *input1, const int8_t *input2,
                            int8_t *output)
{
    const int8_t *lhs_data = p->swap ? input2 : input1;
    const int8_t *rhs_data = p->swap ? input1 : input2;
    int32_t b0, b1, b2, i, j, k;
    for (b0 = 0; b0 < p->dims[0]; ++b0) {
        for (b1 = 0; b1 < p->dims[1]; ++b1) {
            for (b2 = 0; b2 < p->dims[2]; ++b2) {
                const int8_t *lhs = lhs_data + b0 * p->lhs_strides[0] + b1 * p->lhs_strides[1] +
                                    b2 * p->lhs_strides[2];
                const int8_t *rhs = rhs_data + b0 * p->rhs_strides[0] + b1 * p->rhs_strides[1] +
                                    b2 * p->rhs_strides[2];
                for (i = 0; i < p->rows; ++i) {
                    for (j = 0; j < p->cols; ++j) {
                        int32_t acc = 0;
                        for (k = 0; k < p->depth; ++k) {
                            acc += (lhs[i * p->depth + k] + p->lhs_offset) * (rhs[k * p->cols + j] + p->rhs_offset);
                        }
                        acc = adaptc_mbqm(acc, p->multiplier, p->shift) + p->output_offset;
                        output[i * p->cols + j] = (int8_t)adaptc_clamp_i32(acc, p->act_min, p->act_max);
                    }
                }
                output += p->rows * p->cols;
            }
        }
    }
}
