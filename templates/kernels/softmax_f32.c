/*
 * SOFTMAX and LOG_SOFTMAX, float32.
 * Mirrors TFLite reference_ops::Softmax and reference_ops::LogSoftmax (float)
 * (tensorflow/lite/kernels/internal/reference/softmax.h, log_softmax.h).
 *
 * Layout: input, output [rows][depth] float (softmax over the last axis).
 * Arithmetic: per row, max = max(input);
 *   e[c] = expf((input[c] - max) * beta); sum = sum e[c];
 *   output[c] = e[c] / sum, or with p->log: (input[c] - max) * beta - logf(sum).
 * Needs libm (link with -lm).
 */
#include <math.h>

static void softmax_f32(const softmax_f32_params *p, const float *input,
                        float *output)
{
    int32_t i, c;
    for (i = 0; i < p->rows; ++i) {
        const float *in_row = input + i * p->depth;
        float *out_row = output + i * p->depth;
        float max = -FLT_MAX;
        float sum = 0.0f;
        for (c = 0; c < p->depth; ++c) {
            if (in_row[c] > max) {
                max = in_row[c];
            }
        }
        for (c = 0; c < p->depth; ++c) {
            const float exp_c = expf((in_row[c] - max) * p->beta);
            out_row[c] = exp_c;
            sum += exp_c;
        }
        if (p->log) {
            const float log_sum = logf(sum);
            for (c = 0; c < p->depth; ++c) {
                out_row[c] = (in_row[c] - max) * p->beta - log_sum;
            }
        } else {
            for (c = 0; c < p->depth; ++c) {
                out_row[c] = out_row[c] / sum;
            }
        }
    }
}
