/*
 * Exit gate, float32: the largest softmax probability of the head's logits
 * Definition: adaptc/gates.py (confidence_float);
 * Relax composite adaptc.gate_f32: exp(max(log_softmax(logits))).
 *
 * Layout: logits [classes] float.
 * Arithmetic: confidence = 1 / sum expf(logits[c] - max).
 * Needs libm (link with -lm).
 */
#include <math.h>

static void gate_max_prob_f32(const gate_f32_params *p, const float *logits, float *confidence)
{
    int32_t c;
    float top = logits[0], sum = 0.0f;
    for (c = 1; c < p->classes; ++c) {
        if (logits[c] > top) {
            top = logits[c];
        }
    }
    for (c = 0; c < p->classes; ++c) {
        sum += expf(logits[c] - top);
    }
    *confidence = 1.0f / sum;
}
