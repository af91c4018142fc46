/*
 * Exit gate, float32: the negative entropy of the head's softmax.
 * Definition: adaptc/gates.py (confidence_float);
 * Relax composite adaptc.gate_f32: sum(exp(log_softmax) * log_softmax).
 *
 * Layout: logits [classes] float.
 * Arithmetic: lse = logf(sum expf(logits[c] - max)); lp = logits[c] - max - lse;
 *   confidence = sum expf(lp) * lp.
 * Needs libm (link with -lm).
 */
#include <math.h>

static void gate_entropy_f32(const gate_f32_params *p, const float *logits, float *confidence)
{
    int32_t c;
    float top = logits[0], sum = 0.0f, lse, neg = 0.0f;
    for (c = 1; c < p->classes; ++c) {
        if (logits[c] > top) {
            top = logits[c];
        }
    }
    for (c = 0; c < p->classes; ++c) {
        sum += expf(logits[c] - top);
    }
    lse = logf(sum);
    for (c = 0; c < p->classes; ++c) {
        const float lp = logits[c] - top - lse;
        neg += expf(lp) * lp;
    }
    *confidence = neg;
}
