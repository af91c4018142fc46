/*
 * Exit gate, float32: top-1 minus top-2 logit.
 * Definition: adaptc/gates.py (confidence_float); Relax composite adaptc.gate_f32 (topk).
 *
 * Layout: logits [classes] float.
 * Arithmetic: confidence = logits[first] - max over the other classes (0 on a tie).
 */
static void gate_margin_f32(const gate_f32_params *p, const float *logits, float *confidence)
{
    int32_t c, first = 0;
    float second = -FLT_MAX;
    for (c = 1; c < p->classes; ++c) {
        if (logits[c] > logits[first]) {
            first = c;
        }
    }
    for (c = 0; c < p->classes; ++c) {
        if (c != first && logits[c] > second) {
            second = logits[c];
        }
    }
    *confidence = logits[first] - second;
}
