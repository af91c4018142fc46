/*
 * Element-wise functions, float32: sigmoid (TFLite LOGISTIC, ONNX Sigmoid), tanh, hard swish,
 * hard sigmoid, leaky ReLU, ELU, exp, rsqrt, sqrt, reciprocal, log. Mirrors TFLite's float reference kernels
 * (tensorflow/lite/kernels/internal/reference/{logistic,tanh,hard_swish,leaky_relu}.h, elu in
 * micro/kernels/elu.cc) and the ONNX operator definitions; the compiler's definitions are in
 * adaptc/unary.py, whose codes ``function`` takes.
 *
 * Layout: input, output: flat [size] float.
 * Arithmetic, per element x:
 *   0 sigmoid       1 / (1 + exp(-x))
 *   1 tanh          tanh(x)
 *   2 hard swish    x * min(max(x + 3, 0), 6) / 6
 *   3 hard sigmoid  min(max(alpha * x + beta, 0), 1)
 *   4 leaky ReLU    x >= 0 ? x : alpha * x
 *   5 ELU           x > 0 ? x : alpha * expm1(x)
 *   6 exp           exp(x)
 *   7 rsqrt         1 / sqrt(x)   (TFLite RSQRT: 1.f / std::sqrt(f))
 *   8 sqrt          sqrt(x)       (ONNX Sqrt)
 *   9 reciprocal    1 / x         (ONNX Reciprocal)
 *  10 log           log(x)        (ONNX Log)
 * Needs libm (link with -lm).
 */
#include <math.h>

typedef struct {
    int32_t size;
    int32_t function;
    float alpha;
    float beta;
} unary_f32_params;

static float unary_f32_one(const unary_f32_params *p, float x)
{
    float t;
    switch (p->function) {
    case 0:
        return 1.0f / (1.0f + expf(-x));
    case 1:
        return tanhf(x);
    case 2:
        t = x + 3.0f;
        t = t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t);
        return x * (t / 6.0f);
    case 3:
        t = p->alpha * x + p->beta;
        return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    case 4:
        return x >= 0.0f ? x : p->alpha * x;
    case 5:
        return x > 0.0f ? x : p->alpha * expm1f(x);
    case 7:
        return 1.0f / sqrtf(x);
    case 8:
        return sqrtf(x);
    case 9:
        return 1.0f / x;
    case 10:
        return logf(x);
    default:
        return expf(x);
    }
}

static void unary_f32(const unary_f32_params *p, const float *input, float *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        output[i] = unary_f32_one(p, input[i]);
    }
}
