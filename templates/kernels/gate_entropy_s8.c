/*
 * Exit gate, int8, integer only: the negative entropy of the head's softmax.
 * Definition: adaptc/gates.py (confidence_int), Relax composite adaptc.qgate.
 *
 * Layout: logits [classes] int8.
 * Arithmetic: d = max - logits[c]; e = exp_table[d] (0 for d >= exp_len: the table stops at
 *   its last nonzero entry); Z = sum e; W = sum e * d (64-bit);
 *   -H = -scale W / Z - ln(Z / 2^15), in Q12:
 *   term = ((W << 12) / Z * scale_q16) >> 16;
 *   Z = m * 2^k with m in [2^15, 2^16): ln = k * 2839 + ln_table[(m >> 7) - 256];
 *   confidence = -term - ln.
 */
static void gate_entropy_s8(const gate_entropy_s8_params *p, const int8_t *logits,
                            int32_t *confidence)
{
    int32_t c, top = logits[0], z = 0, k = 0, term;
    int64_t w = 0;
    uint32_t m;
    for (c = 1; c < p->classes; ++c) {
        if (logits[c] > top) {
            top = logits[c];
        }
    }
    for (c = 0; c < p->classes; ++c) {
        const int32_t d = top - logits[c];
        const int32_t e = d < p->exp_len ? p->exp_table[d] : 0;
        z += e;
        w += (int64_t)e * d;
    }
    term = (int32_t)((((w << 12) / z) * p->scale_q16) >> 16);
    for (m = (uint32_t)z; m >= 65536u; m >>= 1) {
        ++k;
    }
    *confidence = -term - (k * 2839 + p->ln_table[(m >> 7) - 256u]);
}
