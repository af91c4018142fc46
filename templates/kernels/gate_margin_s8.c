/*
 * Exit gate, int8, integer only: top-1 minus top-2 logit.
 * Definition: adaptc/gates.py (confidence_int), Relax composite adaptc.qgate.
 *
 * Layout: logits [classes] int8.
 * Arithmetic: first = the first index of the largest logit; confidence = logits[first] -
 *   max over the other classes (0 on a tie), in logit steps.
 */
static void gate_margin_s8(const gate_margin_s8_params *p, const int8_t *logits,
                           int32_t *confidence)
{
    int32_t c, first = 0, second = -256;
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
