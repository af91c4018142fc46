/*
 * Exit gate, int8, integer only: the largest softmax probability of the head's logits.
 * Definition: adaptc/gates.py (confidence_int), Relax composite adaptc.qgate.
 *
 * Layout: logits [classes] int8.
 * Arithmetic: d = max - logits[c] in 0..255; e = exp_table[d] (0 for d >= exp_len: the
 *   table stops at its last nonzero entry); Z = sum e (Q15, >= 2^15);
 *   confidence = floor(2^30 / Z): the probability in Q15.
 */
static void gate_max_prob_s8(const gate_max_prob_s8_params *p, const int8_t *logits,
                             int32_t *confidence)
{
    int32_t c, top = logits[0], z = 0;
    for (c = 1; c < p->classes; ++c) {
        if (logits[c] > top) {
            top = logits[c];
        }
    }
    for (c = 0; c < p->classes; ++c) {
        const int32_t d = top - logits[c];
        z += d < p->exp_len ? p->exp_table[d] : 0;
    }
    *confidence = (int32_t)((1 << 30) / z);
}
