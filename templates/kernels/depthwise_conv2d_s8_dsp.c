/*
 * DEPTHWISE_CONV_2D, int8 (per-channel quantized), depth_multiplier 1: DSP-extension drop-in
 * for depthwise_conv2d_s8.  Its arguments -- bias, out_mult and out_shift interleaved into one
 * array of per-channel records -- and, bit for bit, its results (TFLite
 * reference_integer_ops::DepthwiseConvPerChannel); targets/cortex_m/kernels/depthwise_conv2d.py
 * lays out the arrays.
 *
 * Layout: input, output: as depthwise_conv2d_s8 (out_c == in_c = channels);
 *         filter: for each group of four channels, its [k_h][k_w] taps, one word of four
 *         int8 per tap; then the last channels % 4 channels as [k_h][k_w][channels % 4] bytes;
 *         channels: per group of four channels (c0..c3) one record of 16 int32, in the
 *         order of its lanes c0, c2, c1, c3: their four biases, then per lane {mult, round,
 *         shift}; then per last channel {bias, mult, shift, round}.  p->right_shifts 1 (the
 *         fast requantization, proven exact by the builder): bias doubled, shift = the right
 *         shift -shift, round = 2^(shift - 1) + output_offset * 2^shift; 0: {bias, mult,
 *         shift, 0};
 *         p->scratch: for a block of up to `qb` groups (adaptc_dw_block: the ring below in
 *         ADAPTC_DW_RING_BYTES), their filters as int16 pairs ([group][tap] {(c0, c2), (c1,
 *         c3)}, 2 * k_h * k_w words a group), then a ring of (k_h - 1) * dil_h + 1 input rows
 *         (slots), each [group][span columns] {(x0, x2), (x1, x3)} (span = the padded columns
 *         the output row reads), so 2 * qb * span words a slot; then, for adaptc_dw_rowk, its
 *         two row tables (2 (k_h ceil(k_w / ADAPTC_DW_KMAX) + 1) words each) and, with the exact
 *         requantization, a row's accumulators (4 qb out_w words).
 * Arithmetic: the groups in blocks; for each block its filter expanded once, then per output
 *   row each input row it reads, not yet in the ring, converted once for the whole block --
 *   x + input_offset as the int16 pairs SXTAB16 / SXTAB16 ROR #8 make of a word of four
 *   input bytes; the padded columns and rows 0 (the reference's skipped taps) -- and the
 *   output row computed group by group with no bounds check, SMLABB / SMLATT accumulating the
 *   four channels.  In assembly, one call per output row and block: two adjacent pixels a block
 *   (each input and weight word loaded once for both), a last odd pixel a block of its own, the
 *   requantization of the block's outputs in it -- 3x3 windows (dil_w 1, stride_w 1 or 2, the
 *   fast requantization) unrolled (adaptc_dw_row3, 72 MACs a block); any other window with dil_w
 *   1 and stride_w 1 or 2 by a row table (adaptc_dw_rowk: runs of up to ADAPTC_DW_KMAX taps of
 *   10 / 11 / 6 instructions, 8 / 8 / 4 MACs; with the exact requantization its accumulators
 *   stored and requantized in C).  The rest (dil_w > 1, stride_w > 2; a build without the
 *   assembly: any window) in C one pixel at a time.  Requantization per output: the fast form
 *   (SMMLAR of 2 acc into round - (acc < 0), the shift, SSAT: 4 instructions), else dsp.h
 *   adaptc_rq_exact + output_offset (exact for any accumulator).  The last channels % 4
 *   channels one at a time over the in-bounds taps.  A narrower [act_min, act_max] clamps the
 *   output afterwards.
 */

/* The ring's bytes at most (unless one group needs more): depthwise_conv2d.py's DW_RING_BYTES */
#define ADAPTC_DW_RING_BYTES 1024

/* s + round(a * b / 2^32) = floor((s 2^32 + a b + 2^31) / 2^32): SMMLAR */
static inline int32_t adaptc_dw_smmlar(int32_t a, int32_t b, int32_t s)
{
#if ADAPTC_HAVE_DSP
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(s));
    return r;
#else
    return (int32_t)((int64_t)s + (((int64_t)a * b + ((int64_t)1 << 31)) >> 32));
#endif
}

/* The int8 output of an accumulator and its lane's {mult, round, shift}: fast -- acc = 2 sum,
 * SMMLAR(acc, mult, round + (acc >> 31)) >> shift (the output offset inside round), which
 * equals adaptc_rq_right(sum) + output_offset for |sum| < 2^30 --, else adaptc_rq_exact; saturated. */
static ADAPTC_INLINE int8_t adaptc_dw_out(int32_t acc, const int32_t *rq, int32_t fast, int32_t output_offset)
{
    if (fast) {
        return (int8_t)adaptc_ssat8(adaptc_dw_smmlar(acc, rq[0], rq[1] + (acc >> 31)) >> rq[2]);
    }
    return (int8_t)adaptc_ssat8(adaptc_rq_exact(acc, rq[0], rq[2]) + output_offset);
}

/* Groups per block: as many as keep the ring (ring + 1 slots of span columns) in
 * ADAPTC_DW_RING_BYTES, at least 1, the groups spread evenly over the blocks. */
static inline int32_t adaptc_dw_block(int32_t quads, int32_t ring, int32_t span)
{
    int32_t most = ADAPTC_DW_RING_BYTES / (8 * (ring + 1) * span), blocks;
    if (most < 1) {
        most = 1;
    }
    if (quads < 1) {
        return 1;
    }
    blocks = (quads + most - 1) / most;
    return (quads + blocks - 1) / blocks;
}

/* n words of four input bytes (src, `sstep` bytes apart) into pairs x + input_offset at dst
 * (`dstep` bytes apart): a row's columns of one group (sstep = depth, dstep 8) or a column's
 * groups (sstep 4, dstep = a group's ring row). */
static ADAPTC_NOINLINE void adaptc_dw_convert(int32_t *dst, const int8_t *src, int32_t n, int32_t sstep,
                                             int32_t dstep, int32_t offset2)
{
    int32_t c;
#if ADAPTC_DSP_ASM
    if (n >= 2) {                        /* two words an iteration: 12 instructions */
        int32_t v0, v1, e1, e3, k = n >> 1;
        __asm__ volatile(
                "1:\n\t"
                "ldr     %[v0], [%[s]]\n\t"
                "ldr     %[v1], [%[s], %[ss]]\n\t"
                "add     %[s], %[s], %[ss], lsl #1\n\t"
                "sxtab16 %[e1], %[off], %[v0], ror #8\n\t"
                "sxtab16 %[v0], %[off], %[v0]\n\t"
                "sxtab16 %[e3], %[off], %[v1], ror #8\n\t"
                "sxtab16 %[v1], %[off], %[v1]\n\t"
                "strd    %[v0], %[e1], [%[d]]\n\t"
                "add     %[d], %[d], %[ds]\n\t"
                "strd    %[v1], %[e3], [%[d]]\n\t"
                "add     %[d], %[d], %[ds]\n\t"
                "subs    %[k], %[k], #1\n\t"
                "bne     1b"
                : [v0] "=&r"(v0), [v1] "=&r"(v1), [e1] "=&r"(e1), [e3] "=&r"(e3), [s] "+r"(src), [d] "+r"(dst),
                  [k] "+r"(k)
                : [ss] "r"(sstep), [ds] "r"(dstep), [off] "r"(offset2)
                : "cc", "memory");
        n &= 1;
    }
#endif
    for (c = 0; c < n; ++c) {
        const int32_t v = adaptc_read_s8x4(src);
        dst[0] = adaptc_sxtab16(offset2, v);
        dst[1] = adaptc_sxtab16_ror8(offset2, v);
        dst = (int32_t *)(void *)((int8_t *)(void *)dst + dstep);
        src += sstep;
    }
}

/* n columns of one input row into the ring, groups nq: src the first column's group 0 (input
 * pixels `depth` bytes apart), dst its pairs (groups `qwords` words apart); the longer of the
 * two loops inside. */
static inline void adaptc_dw_fill(int32_t *dst, const int8_t *src, int32_t nq, int32_t qwords, int32_t n,
                                  int32_t depth, int32_t offset2)
{
    int32_t k;
    if (n >= nq) {
        for (k = 0; k < nq; ++k) {
            adaptc_dw_convert(dst + k * qwords, src + 4 * k, n, depth, 8, offset2);
        }
    } else {
        for (k = 0; k < n; ++k) {
            adaptc_dw_convert(dst + 2 * k, src + k * depth, nq, 4, 4 * qwords, offset2);
        }
    }
}

/* n words (even) of 0, two a store (a loop gcc leaves alone: no call of memset) */
static inline void adaptc_dw_zero(int32_t *dst, int32_t n)
{
    int32_t k;
    for (k = 0; k < n; k += 2) {
        dst[k] = 0;
        dst[k + 1] = 0;
        __asm__ volatile("" ::: "memory");
    }
}

/* The filter words of n taps (four channels each) as int16 pairs {(w0, w2), (w1, w3)}, each
 * weight x 2 when `twice` (the fast requantization's doubled sum). */
static ADAPTC_NOINLINE void adaptc_dw_expand(int32_t *dst, const int32_t *src, int32_t n, int32_t twice)
{
    int32_t t;
#if ADAPTC_DSP_ASM
    if (n > 0) {                         /* a tap: 8 instructions (SADD16: both halves doubled), else 6 */
        int32_t v, lo, hi;
        if (twice) {
            __asm__ volatile(
                    "1:\n\t"
                    "ldr     %[v], [%[s]], #4\n\t"
                    "sxtb16  %[lo], %[v]\n\t"
                    "sxtb16  %[hi], %[v], ror #8\n\t"
                    "sadd16  %[lo], %[lo], %[lo]\n\t"
                    "sadd16  %[hi], %[hi], %[hi]\n\t"
                    "strd    %[lo], %[hi], [%[d]], #8\n\t"
                    "subs    %[n], %[n], #1\n\t"
                    "bne     1b"
                    : [v] "=&r"(v), [lo] "=&r"(lo), [hi] "=&r"(hi), [s] "+&r"(src), [d] "+&r"(dst), [n] "+&r"(n)
                    :
                    : "cc", "memory");
        } else {
            __asm__ volatile(
                    "1:\n\t"
                    "ldr     %[v], [%[s]], #4\n\t"
                    "sxtb16  %[lo], %[v]\n\t"
                    "sxtb16  %[hi], %[v], ror #8\n\t"
                    "strd    %[lo], %[hi], [%[d]], #8\n\t"
                    "subs    %[n], %[n], #1\n\t"
                    "bne     1b"
                    : [v] "=&r"(v), [lo] "=&r"(lo), [hi] "=&r"(hi), [s] "+&r"(src), [d] "+&r"(dst), [n] "+&r"(n)
                    :
                    : "cc", "memory");
        }
        return;
    }
#endif
    for (t = 0; t < n; ++t) {
        uint32_t lo = (uint32_t)adaptc_sxtb16(src[t]), hi = (uint32_t)adaptc_sxtb16_ror8(src[t]);
        if (twice) {                     /* both halves doubled (|2 w| < 2^15): no carry between them */
            lo = (lo << 1) & 0xFFFEFFFEu;
            hi = (hi << 1) & 0xFFFEFFFEu;
        }
        dst[2 * t] = (int32_t)lo;
        dst[2 * t + 1] = (int32_t)hi;
    }
}

/* One output row of nq groups, any window, one pixel at a time: window row r is input row
 * y0 + r dil_h, in ring slot y mod ring, or the zero slot `ring` outside the input (slots
 * slot_words apart), each group's columns qwords words apart;
 * weights w (per group 2 taps words), records rec (16 words a group); out the row's first
 * pixel, group 0. */
static ADAPTC_NOINLINE void adaptc_dw_row(const int32_t *rows, int32_t y0, int32_t in_h, int32_t ring,
                                          int32_t slot_words,
                                          int32_t qwords, const int32_t *w, const int32_t *rec, int8_t *out,
                                          int32_t nq, int32_t out_w, int32_t k_h, int32_t k_w, int32_t dil_h,
                                          int32_t dil_w, int32_t stride, int32_t depth, int32_t fast,
                                          int32_t output_offset)
{
    int32_t q, px, r, t;
    for (q = 0; q < nq; ++q) {
        const int32_t *const wq = w + q * 2 * k_h * k_w;
        const int32_t *const rq = rec + 16 * q;
        for (px = 0; px < out_w; ++px) {
            int32_t a0 = rq[0], a1 = rq[1], a2 = rq[2], a3 = rq[3];
            const int32_t *wt = wq;
            int8_t *const o = out + px * depth + 4 * q;
            for (r = 0; r < k_h; ++r) {
                const int32_t y = y0 + r * dil_h, s = y < 0 || y >= in_h ? ring : y % ring;
                const int32_t *x = rows + s * slot_words + q * qwords + 2 * px * stride;
                for (t = 0; t < k_w; ++t) {
                    a0 = adaptc_smlabb(x[0], wt[0], a0);
                    a1 = adaptc_smlatt(x[0], wt[0], a1);
                    a2 = adaptc_smlabb(x[1], wt[1], a2);
                    a3 = adaptc_smlatt(x[1], wt[1], a3);
                    x += 2 * dil_w;
                    wt += 2;
                }
            }
            o[0] = adaptc_dw_out(a0, rq + 4, fast, output_offset);
            o[2] = adaptc_dw_out(a1, rq + 7, fast, output_offset);
            o[1] = adaptc_dw_out(a2, rq + 10, fast, output_offset);
            o[3] = adaptc_dw_out(a3, rq + 13, fast, output_offset);
        }
    }
}

#if ADAPTC_DSP_ASM
/* Assembly of adaptc_dw_row3, its registers: r0-r3 pixel a's four lanes (c0, c2, c1, c3), r4-r7
 * pixel b's; r8, r9 an input column's pairs, r10, r11 a tap's weight pairs (temporaries of
 * the requantization: mult, round, shift, round - (acc < 0)); r12 the window row (x), lr the
 * weights or the record (w).  P0..P3 += the four lanes of a pixel. */
#define ADAPTC_DW_MAC4(...) ADAPTC_DW_MAC4_(__VA_ARGS__)
#define ADAPTC_DW_MAC4_(P0, P1, P2, P3) \
    "smlabb " P0 ", r8, r10, " P0 "\n\t" \
    "smlatt " P1 ", r8, r10, " P1 "\n\t" \
    "smlabb " P2 ", r9, r11, " P2 "\n\t" \
    "smlatt " P3 ", r9, r11, " P3 "\n\t"
#define ADAPTC_DW_A "r0", "r1", "r2", "r3"
#define ADAPTC_DW_B "r4", "r5", "r6", "r7"
/* One window row of two pixels, stride 1: columns 0..3 at x (8 bytes apart), taps at w + WO */
#define ADAPTC_DW_ROW_S1(WO0, WO1, WO2) \
    "ldrd   r10, r11, [lr, #" WO0 "]\n\t" \
    "ldrd   r8, r9, [r12]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #8]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B) \
    "ldrd   r10, r11, [lr, #" WO1 "]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #16]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B) \
    "ldrd   r10, r11, [lr, #" WO2 "]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #24]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B)
/* stride 2: columns 0..4; a: 0 1 2, b: 2 3 4 (column 2 loaded once) */
#define ADAPTC_DW_ROW_S2(WO0, WO1, WO2) \
    "ldrd   r10, r11, [lr, #" WO0 "]\n\t" \
    "ldrd   r8, r9, [r12]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #16]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B) \
    "ldrd   r10, r11, [lr, #" WO2 "]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #32]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B) \
    "ldrd   r10, r11, [lr, #" WO1 "]\n\t" \
    "ldrd   r8, r9, [r12, #8]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #24]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B)
/* one pixel: columns 0..2 */
#define ADAPTC_DW_ROW_1(WO0, WO1, WO2) \
    "ldrd   r10, r11, [lr, #" WO0 "]\n\t" \
    "ldrd   r8, r9, [r12]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r10, r11, [lr, #" WO1 "]\n\t" \
    "ldrd   r8, r9, [r12, #8]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r10, r11, [lr, #" WO2 "]\n\t" \
    "ldrd   r8, r9, [r12, #16]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A)
/* x to the next window row: + the slot distance D (bytes) */
#define ADAPTC_DW_NEXT(D) \
    "ldr    r8, %[" D "]\n\t" \
    "add    r12, r12, r8\n\t"
/* The fast requantization of lane K's accumulators of pixel P (w = the group's record) */
#define ADAPTC_DW_RQ_LOAD(MO, SO) \
    "ldrd   r8, r9, [lr, #" MO "]\n\t" \
    "ldr    r10, [lr, #" SO "]\n\t"
#define ADAPTC_DW_RQF(ACC) \
    "add    r11, r9, " ACC ", asr #31\n\t" \
    "smmlar " ACC ", " ACC ", r8, r11\n\t" \
    "asr    " ACC ", " ACC ", r10\n\t" \
    "ssat   " ACC ", #8, " ACC "\n\t"
#define ADAPTC_DW_RQ2(A, B, MO, SO) ADAPTC_DW_RQ_LOAD(MO, SO) ADAPTC_DW_RQF(A) ADAPTC_DW_RQF(B)
#define ADAPTC_DW_RQ1(A, MO, SO) ADAPTC_DW_RQ_LOAD(MO, SO) ADAPTC_DW_RQF(A)
/* pixel P's four outputs at T (lanes c0, c2, c1, c3) */
#define ADAPTC_DW_STORE(...) ADAPTC_DW_STORE_(__VA_ARGS__)
#define ADAPTC_DW_STORE_(P0, P1, P2, P3) \
    "strb   " P0 ", [r8]\n\t" \
    "strb   " P1 ", [r8, #2]\n\t" \
    "strb   " P2 ", [r8, #1]\n\t" \
    "strb   " P3 ", [r8, #3]\n\t"
/* The group's biases into a (w = its record) */
#define ADAPTC_DW_BIAS \
    "ldrd   r0, r1, [lr]\n\t" \
    "ldrd   r2, r3, [lr, #8]\n\t"
/* The loop over a row's groups around BLOCK (its two-pixel block, stride 1 or 2) */
#define ADAPTC_DW_ROW3_ASM(BLOCK) \
    "0:\n\t" \
    "ldr    lr, %[rec]\n\t" \
    ADAPTC_DW_BIAS \
    "ldr    r12, %[xq]\n\t" \
    "ldr    r9, %[pairbytes]\n\t" \
    "add    r9, r12, r9\n\t" \
    "str    r9, %[xend]\n\t" \
    "ldr    lr, %[wq]\n\t" \
    "cmp    r12, r9\n\t" \
    "beq    2f\n\t" \
    "1:\n\t" \
    "mov    r4, r0\n\t" \
    "mov    r5, r1\n\t" \
    "mov    r6, r2\n\t" \
    "mov    r7, r3\n\t" \
    BLOCK("0", "8", "16") \
    ADAPTC_DW_NEXT("d1") \
    BLOCK("24", "32", "40") \
    ADAPTC_DW_NEXT("d2") \
    BLOCK("48", "56", "64") \
    ADAPTC_DW_NEXT("back") \
    "ldr    lr, %[rec]\n\t" \
    ADAPTC_DW_RQ2("r0", "r4", "16", "24") \
    ADAPTC_DW_RQ2("r1", "r5", "28", "36") \
    ADAPTC_DW_RQ2("r2", "r6", "40", "48") \
    ADAPTC_DW_RQ2("r3", "r7", "52", "60") \
    "ldr    r8, %[out]\n\t" \
    "ldr    r9, %[depth]\n\t" \
    ADAPTC_DW_STORE(ADAPTC_DW_A) \
    "add    r8, r8, r9\n\t" \
    ADAPTC_DW_STORE(ADAPTC_DW_B) \
    "add    r8, r8, r9\n\t" \
    "str    r8, %[out]\n\t" \
    ADAPTC_DW_BIAS \
    "ldr    lr, %[wq]\n\t" \
    "ldr    r8, %[xend]\n\t" \
    "cmp    r12, r8\n\t" \
    "bne    1b\n\t" \
    "2:\n\t" \
    "ldr    r8, %[odd]\n\t" \
    "cmp    r8, #0\n\t" \
    "beq    3f\n\t" \
    ADAPTC_DW_ROW_1("0", "8", "16") \
    ADAPTC_DW_NEXT("d1") \
    ADAPTC_DW_ROW_1("24", "32", "40") \
    ADAPTC_DW_NEXT("d2") \
    ADAPTC_DW_ROW_1("48", "56", "64") \
    "ldr    lr, %[rec]\n\t" \
    ADAPTC_DW_RQ1("r0", "16", "24") \
    ADAPTC_DW_RQ1("r1", "28", "36") \
    ADAPTC_DW_RQ1("r2", "40", "48") \
    ADAPTC_DW_RQ1("r3", "52", "60") \
    "ldr    r8, %[out]\n\t" \
    ADAPTC_DW_STORE(ADAPTC_DW_A) \
    "3:\n\t" \
    "ldr    r8, %[xq]\n\t" \
    "ldr    r9, %[qbytes]\n\t" \
    "add    r8, r8, r9\n\t" \
    "str    r8, %[xq]\n\t" \
    "ldr    r8, %[wq]\n\t" \
    "add    r8, r8, #72\n\t" \
    "str    r8, %[wq]\n\t" \
    "ldr    r8, %[rec]\n\t" \
    "add    r8, r8, #64\n\t" \
    "str    r8, %[rec]\n\t" \
    "ldr    r8, %[outq]\n\t" \
    "add    r8, r8, #4\n\t" \
    "str    r8, %[outq]\n\t" \
    "str    r8, %[out]\n\t" \
    "ldr    r8, %[nq]\n\t" \
    "subs   r8, r8, #1\n\t" \
    "str    r8, %[nq]\n\t" \
    "bne    0b"
#define ADAPTC_DW_ROW3_OPERANDS \
    : [rec] "+m"(rec), [out] "+m"(out), [outq] "+m"(outq), [wq] "+m"(w), [xq] "+m"(x), [xend] "+m"(xend), \
      [nq] "+m"(nq) \
    : [d1] "m"(d1), [d2] "m"(d2), [back] "m"(back), [depth] "m"(depth), [qbytes] "m"(qbytes), \
      [pairbytes] "m"(pairbytes), [odd] "m"(odd) \
    : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory"

/* One output row of nq (>= 1) groups, 3x3 window (dil_w 1), the fast requantization: window
 * rows at x (the first group's column 0 of the first row; the next rows d1, d1 + d2 bytes on),
 * groups qbytes apart; weights w (72 bytes a group), records rec (64 bytes a group), outputs
 * out (the row's first pixel, group 0; pixels `depth` bytes apart); `pairs` blocks of two
 * pixels, then `odd` (0 or 1) pixel. */
static ADAPTC_NOINLINE void adaptc_dw_row3(const int32_t *x, const int32_t *w, const int32_t *rec, int8_t *out,
                                           int32_t nq, int32_t pairs, int32_t odd, int32_t d1, int32_t d2,
                                           int32_t stride, int32_t qbytes, int32_t depth)
{
    int8_t *outq = out;
    const int32_t back = 16 * stride - d1 - d2, pairbytes = 16 * stride * pairs;
    const int32_t *xend = x;
    if (stride == 1) {
        __asm__ volatile(ADAPTC_DW_ROW3_ASM(ADAPTC_DW_ROW_S1) ADAPTC_DW_ROW3_OPERANDS);
    } else {
        __asm__ volatile(ADAPTC_DW_ROW3_ASM(ADAPTC_DW_ROW_S2) ADAPTC_DW_ROW3_OPERANDS);
    }
}
#endif

/* The general window (any k_h x k_w, dil_w 1, stride_w 1 or 2) in assembly, adaptc_dw_rowk: the
 * two-pixel block of adaptc_dw_row3 (and the last odd pixel) over a row table (adaptc_dw_entries,
 * adaptc_dw_moves): per window row, and per chunk of at most ADAPTC_DW_KMAX of its taps, {the
 * bytes x moves on before it, where it enters the runs}; a last entry takes x on to the next block
 * and enters the epilogue.  The row top reads the entry, moves x, loads the column there and jumps
 * (ADD PC) into a run of ADAPTC_DW_KMAX taps -- stride 1, stride 2, one pixel, one after the
 * other --, so that the chunk's n taps are the last n of the run, which ends by a branch back to
 * the row top.  After the runs the branches to the epilogues: the accumulators stored (exact
 * requantization) of a block, of a pixel, the fast requantization of a pixel, then that of a
 * block.  Every tap the same bytes (32-bit instructions only; the assembler checks).  A column
 * loaded and not used (the last entry's, a pixel's last tap's) lies at most two columns past a
 * group's span: in the ring or in the tables after it. */
#define ADAPTC_DW_KMAX 7
#define ADAPTC_DW_TAP_S1 40             /* a tap's bytes: two pixels, stride 1 */
#define ADAPTC_DW_TAP_S2 44             /*                two pixels, stride 2 */
#define ADAPTC_DW_TAP_1 24              /*                one pixel */
#define ADAPTC_DW_RUN_S2 (ADAPTC_DW_KMAX * ADAPTC_DW_TAP_S1 + 4)         /* the runs' offsets */
#define ADAPTC_DW_RUN_1 (ADAPTC_DW_RUN_S2 + ADAPTC_DW_KMAX * ADAPTC_DW_TAP_S2 + 4)
#define ADAPTC_DW_EPILOGUES (ADAPTC_DW_RUN_1 + ADAPTC_DW_KMAX * ADAPTC_DW_TAP_1 + 4)
#define ADAPTC_DW_STR(X) ADAPTC_DW_STR_(X)
#define ADAPTC_DW_STR_(X) #X

#if ADAPTC_DSP_ASM
/* The row tables of adaptc_dw_rowk, tab for the blocks of two pixels (taps of `tap` bytes from
 * `run`), tab1 for a single pixel: per window row, per chunk of its taps (its k_w taps spread
 * evenly over the fewest chunks of at most ADAPTC_DW_KMAX), {x's move in bytes, the entry of its
 * n taps: the run + (ADAPTC_DW_KMAX - n) taps}; then {x's move after the window, the epilogue:
 * ADAPTC_DW_EPILOGUES + 12 a block, 8 a pixel with the fast requantization, else + 0, 4}.  Here
 * the entries and the moves within a window row (0), once a call; adaptc_dw_moves the rest. */
static inline void adaptc_dw_entries(int32_t *tab, int32_t *tab1, int32_t k_h, int32_t k_w, int32_t run, int32_t tap,
                                     int32_t fast)
{
    const int32_t chunks = (k_w + ADAPTC_DW_KMAX - 1) / ADAPTC_DW_KMAX;
    int32_t r, j;
    for (r = 0; r < k_h; ++r) {
        for (j = 0; j < chunks; ++j) {
            const int32_t left = ADAPTC_DW_KMAX - k_w / chunks - (j < k_w % chunks);
            tab[0] = tab1[0] = 0;
            tab[1] = run + left * tap;
            tab1[1] = ADAPTC_DW_RUN_1 + left * ADAPTC_DW_TAP_1;
            tab += 2;
            tab1 += 2;
        }
    }
    tab[1] = ADAPTC_DW_EPILOGUES + (fast ? 12 : 0);
    tab1[1] = ADAPTC_DW_EPILOGUES + (fast ? 8 : 4);
}

/* The moves of adaptc_dw_entries' tables for one output row: window row r is input row
 * y0 + r dil_h, in ring slot y mod ring or the zero slot `ring` (slots slot_bytes apart); a
 * window row's taps move x on by 8 k_w bytes; the last move takes x `back` bytes on from where it
 * started (the next block). */
static inline void adaptc_dw_moves(int32_t *tab, int32_t *tab1, int32_t y0, int32_t in_h, int32_t ring,
                                   int32_t slot_bytes, int32_t k_h, int32_t k_w, int32_t dil_h, int32_t back)
{
    const int32_t words = 2 * ((k_w + ADAPTC_DW_KMAX - 1) / ADAPTC_DW_KMAX);
    int32_t r, x = 0, y = y0, slot = y0 % ring;                      /* slot: y mod ring */
    if (slot < 0) {
        slot += ring;
    }
    for (r = 0; r < k_h; ++r) {
        const int32_t at = (y < 0 || y >= in_h ? ring : slot) * slot_bytes;
        tab[0] = tab1[0] = at - x;
        tab += words;
        tab1 += words;
        x = at + 8 * k_w;
        y += dil_h;
        slot += dil_h;                   /* < 2 ring: dil_h < ring where k_h > 1 */
        if (slot >= ring) {
            slot -= ring;
        }
    }
    tab[0] = back - x;
    tab1[0] = -x;
}

/* adaptc_dw_rowk's taps (registers as adaptc_dw_row3's): r8, r9 hold the column at x; x and w
 * move on by 8 bytes.  Stride 1: pixel a's column t, pixel b's t + 1 */
#define ADAPTC_DW_TAP_S1_ASM \
    "ldrd   r10, r11, [lr], #8\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #8]!\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B)
/* stride 2: pixel a's column t, pixel b's t + 2 */
#define ADAPTC_DW_TAP_S2_ASM \
    "ldrd   r10, r11, [lr], #8\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #16]\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_B) \
    "ldrd   r8, r9, [r12, #8]!\n\t"
/* one pixel */
#define ADAPTC_DW_TAP_1_ASM \
    "ldrd   r10, r11, [lr], #8\n\t" \
    ADAPTC_DW_MAC4(ADAPTC_DW_A) \
    "ldrd   r8, r9, [r12, #8]!\n\t"
/* A run of ADAPTC_DW_KMAX taps TAP of BYTES (the assembler checks), then back to the row top */
#define ADAPTC_DW_RUN(TAP, BYTES) \
    "6:\n\t" \
    ".rept  " ADAPTC_DW_STR(ADAPTC_DW_KMAX) "\n\t" \
    TAP \
    ".endr\n\t" \
    ".if    . - 6b - " ADAPTC_DW_STR(ADAPTC_DW_KMAX) " * " ADAPTC_DW_STR(BYTES) "\n\t" \
    ".error \"adaptc_dw_rowk: a tap is not " ADAPTC_DW_STR(BYTES) " bytes\"\n\t" \
    ".endif\n\t" \
    "b.w    4b\n\t"
#define ADAPTC_DW_ROWK_ASM \
    "b      0f\n\t" \
    "4:\n\t"                                /* the row top */ \
    "ldr    r8, %[rp]\n\t" \
    "ldrd   r9, r10, [r8], #8\n\t" \
    "str    r8, %[rp]\n\t" \
    "add    r12, r12, r9\n\t" \
    "ldrd   r8, r9, [r12]\n\t" \
    "5:\n\t" \
    "add    pc, r10\n\t"                    /* PC: this ADD + 4, the runs */ \
    "nop\n\t" \
    ".if    . - 5b - 4\n\t" \
    ".error \"adaptc_dw_rowk: ADD PC, NOP are not 4 bytes\"\n\t" \
    ".endif\n\t" \
    ADAPTC_DW_RUN(ADAPTC_DW_TAP_S1_ASM, ADAPTC_DW_TAP_S1) \
    ADAPTC_DW_RUN(ADAPTC_DW_TAP_S2_ASM, ADAPTC_DW_TAP_S2) \
    ADAPTC_DW_RUN(ADAPTC_DW_TAP_1_ASM, ADAPTC_DW_TAP_1) \
    ".if    . - 5b - 4 - " ADAPTC_DW_STR(ADAPTC_DW_EPILOGUES) "\n\t" \
    ".error \"adaptc_dw_rowk: the runs are not ADAPTC_DW_EPILOGUES bytes\"\n\t" \
    ".endif\n\t" \
    "b.w    8f\n\t"                         /* + 0: a block's accumulators stored */ \
    "b.w    9f\n\t"                         /* + 4: a pixel's */ \
    "b.w    7f\n\t"                         /* + 8: a pixel requantized */ \
    "ldr    lr, %[rec]\n\t"                 /* + 12: a block requantized */ \
    ADAPTC_DW_RQ2("r0", "r4", "16", "24") \
    ADAPTC_DW_RQ2("r1", "r5", "28", "36") \
    ADAPTC_DW_RQ2("r2", "r6", "40", "48") \
    ADAPTC_DW_RQ2("r3", "r7", "52", "60") \
    "ldr    r8, %[out]\n\t" \
    "ldr    r9, %[depth]\n\t" \
    ADAPTC_DW_STORE(ADAPTC_DW_A) \
    "add    r8, r8, r9\n\t" \
    ADAPTC_DW_STORE(ADAPTC_DW_B) \
    "add    r8, r8, r9\n\t" \
    "str    r8, %[out]\n\t" \
    "b      1f\n\t" \
    "8:\n\t" \
    "ldr    r8, %[acc]\n\t" \
    "stmia  r8!, {r0-r7}\n\t" \
    "str    r8, %[acc]\n\t" \
    "ldr    lr, %[rec]\n\t" \
    "1:\n\t"                                /* the next block: lr the group's record */ \
    ADAPTC_DW_BIAS \
    "ldr    r8, %[xend]\n\t" \
    "cmp    r12, r8\n\t" \
    "beq    2f\n\t" \
    "mov    r4, r0\n\t" \
    "mov    r5, r1\n\t" \
    "mov    r6, r2\n\t" \
    "mov    r7, r3\n\t" \
    "ldr    lr, %[wq]\n\t" \
    "ldr    r8, %[tab]\n\t" \
    "str    r8, %[rp]\n\t" \
    "b      4b\n\t" \
    "2:\n\t"                                /* the last odd pixel */ \
    "ldr    r8, %[odd]\n\t" \
    "cmp    r8, #0\n\t" \
    "beq    3f\n\t" \
    "ldr    lr, %[wq]\n\t" \
    "ldr    r8, %[tab1]\n\t" \
    "str    r8, %[rp]\n\t" \
    "b      4b\n\t" \
    "7:\n\t" \
    "ldr    lr, %[rec]\n\t" \
    ADAPTC_DW_RQ1("r0", "16", "24") \
    ADAPTC_DW_RQ1("r1", "28", "36") \
    ADAPTC_DW_RQ1("r2", "40", "48") \
    ADAPTC_DW_RQ1("r3", "52", "60") \
    "ldr    r8, %[out]\n\t" \
    ADAPTC_DW_STORE(ADAPTC_DW_A) \
    "b      3f\n\t" \
    "9:\n\t" \
    "ldr    r8, %[acc]\n\t" \
    "stmia  r8!, {r0-r3}\n\t" \
    "str    r8, %[acc]\n\t" \
    "3:\n\t"                                /* the next group */ \
    "ldr    r8, %[xq]\n\t" \
    "ldr    r9, %[qbytes]\n\t" \
    "add    r8, r8, r9\n\t" \
    "str    r8, %[xq]\n\t" \
    "ldr    r8, %[wq]\n\t" \
    "ldr    r9, %[wbytes]\n\t" \
    "add    r8, r8, r9\n\t" \
    "str    r8, %[wq]\n\t" \
    "ldr    r8, %[rec]\n\t" \
    "add    r8, r8, #64\n\t" \
    "str    r8, %[rec]\n\t" \
    "ldr    r8, %[outq]\n\t" \
    "add    r8, r8, #4\n\t" \
    "str    r8, %[outq]\n\t" \
    "str    r8, %[out]\n\t" \
    "ldr    r8, %[nq]\n\t" \
    "subs   r8, r8, #1\n\t" \
    "str    r8, %[nq]\n\t" \
    "beq    10f\n\t" \
    "0:\n\t"                                /* a group: its row's first block */ \
    "ldr    lr, %[rec]\n\t" \
    "ldr    r12, %[xq]\n\t" \
    "ldr    r9, %[pairbytes]\n\t" \
    "add    r9, r12, r9\n\t" \
    "str    r9, %[xend]\n\t" \
    "b      1b\n\t" \
    "10:"

/* One output row of nq (>= 1) groups, any window with dil_w 1, stride_w 1 or 2: x the first
 * group's column 0 in ring slot 0 (groups qbytes apart), weights w (wbytes a group), records rec
 * (64 bytes a group), outputs out (the row's first pixel, group 0; pixels `depth` bytes apart);
 * the blocks of two pixels (pairbytes: their columns' bytes) by row table tab, then `odd` (0 or 1)
 * pixel by tab1; the tables' last entries pick the epilogues: outputs, or the accumulators at acc
 * ([group][pixel][lane c0, c2, c1, c3]). */
static ADAPTC_NOINLINE void adaptc_dw_rowk(const int32_t *x, const int32_t *w, const int32_t *rec, int8_t *out,
                                           int32_t *acc, const int32_t *tab, const int32_t *tab1, int32_t nq,
                                           int32_t pairbytes, int32_t odd, int32_t qbytes, int32_t wbytes,
                                           int32_t depth)
{
    int8_t *outq = out;
    const int32_t *xend = x, *rp = tab;
    __asm__ volatile(ADAPTC_DW_ROWK_ASM
                     : [rec] "+m"(rec), [out] "+m"(out), [outq] "+m"(outq), [wq] "+m"(w), [xq] "+m"(x),
                       [xend] "+m"(xend), [nq] "+m"(nq), [rp] "+m"(rp), [acc] "+m"(acc)
                     : [tab] "m"(tab), [tab1] "m"(tab1), [depth] "m"(depth), [qbytes] "m"(qbytes),
                       [wbytes] "m"(wbytes), [pairbytes] "m"(pairbytes), [odd] "m"(odd)
                     : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc",
                       "memory");
}

/* The outputs of adaptc_dw_rowk's accumulators acc of nq groups, out_w pixels: the exact
 * requantization, lane by lane (lane k of a group: channel (k & 1) * 2 + k / 2, its record
 * {mult, 0, shift} at 4 + 3 k). */
static ADAPTC_NOINLINE void adaptc_dw_requant(const int32_t *acc, const int32_t *rec, int8_t *out, int32_t nq,
                                              int32_t out_w, int32_t depth, int32_t output_offset)
{
    int32_t q, k, px;
    for (q = 0; q < nq; ++q) {
        for (k = 0; k < 4; ++k) {
            const int32_t mult = rec[16 * q + 4 + 3 * k], shift = rec[16 * q + 6 + 3 * k];
            const int32_t *a = acc + 4 * q * out_w + k;
            int8_t *o = out + 4 * q + (k & 1) * 2 + k / 2;
            for (px = 0; px < out_w; ++px) {
                *o = (int8_t)adaptc_ssat8(adaptc_rq_exact(*a, mult, shift) + output_offset);
                a += 4;
                o += depth;
            }
        }
    }
}
#endif

#if ADAPTC_DSP_ASM
/* adaptc_dw_rowk on one output row (input rows from y0) of a block of nq groups: its row tables
 * after the ring (ring + 1 slots of slot_words at rows; groups qwords apart), the call, and with
 * the exact requantization the accumulators (after the tables) requantized. */
static ADAPTC_NOINLINE void adaptc_dw_general(const depthwise_conv2d_s8_dsp_params *p, int32_t *rows,
                                              const int32_t *wx, const int32_t *rec, int8_t *out, int32_t nq,
                                              int32_t y0, int32_t ring, int32_t slot_words, int32_t qwords)
{
    const int32_t k_h = p->k_h, k_w = p->k_w, stride = p->stride_w, fast = p->right_shifts, out_w = p->out_w;
    const int32_t entries = 2 * (k_h * ((k_w + ADAPTC_DW_KMAX - 1) / ADAPTC_DW_KMAX) + 1);
    int32_t *const tab = rows + (ring + 1) * slot_words, *const tab1 = tab + entries, *const acc = tab1 + entries;
    adaptc_dw_moves(tab, tab1, y0, p->in_h, ring, 4 * slot_words, k_h, k_w, p->dil_h, 16 * stride);
    adaptc_dw_rowk(rows, wx, rec, out, acc, tab, tab1, nq, 16 * stride * (out_w / 2), out_w & 1, 4 * qwords,
                   8 * k_h * k_w, p->in_c);
    if (!fast) {
        adaptc_dw_requant(acc, rec, out, nq, out_w, p->in_c, p->output_offset);
    }
}
#endif

static void depthwise_conv2d_s8_dsp(const depthwise_conv2d_s8_dsp_params *p, const int8_t *input,
                                    const int32_t *filter, const int32_t *channels, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, depth = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_top = p->pad_top, pad_left = p->pad_left;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t fast = p->right_shifts, scale = fast ? 2 : 1;
    const int32_t offset2 = adaptc_offset2(input_offset);
    const int32_t quads = depth / 4, taps = k_h * k_w, rest = depth - 4 * quads;
    const int32_t span = (out_w - 1) * stride_w + (k_w - 1) * dil_w + 1;
    const int32_t ring = (k_h - 1) * dil_h + 1;
    const int32_t qb = adaptc_dw_block(quads, ring, span);
    const int32_t qwords = 2 * span, slot_words = qb * qwords;
    /* the input columns inside the padded span: [first, end) */
    const int32_t first = pad_left < span ? pad_left : span;
    const int32_t end = pad_left + in_w < span ? pad_left + in_w : span;
    const int8_t *const tail_filter = (const int8_t *)(const void *)(filter + quads * taps);
    int32_t *const wx = (int32_t *)(void *)p->scratch;
    int32_t *const rows = wx + 2 * taps * qb;
#if ADAPTC_DSP_ASM
    /* the assembly: 3 adaptc_dw_row3, 1 adaptc_dw_rowk (adaptc_dw_general: its tables after the
     * ring), 0 none */
    const int32_t path = dil_w != 1 || stride_w > 2 ? 0 : fast && k_h == 3 && k_w == 3 ? 3 : 1;
    if (path == 1) {
        int32_t *const tab = rows + (ring + 1) * slot_words;
        adaptc_dw_entries(tab, tab + 2 * (k_h * ((k_w + ADAPTC_DW_KMAX - 1) / ADAPTC_DW_KMAX) + 1), k_h, k_w,
                          stride_w == 1 ? 0 : ADAPTC_DW_RUN_S2, stride_w == 1 ? ADAPTC_DW_TAP_S1 : ADAPTC_DW_TAP_S2,
                          fast);
    }
#endif
    int32_t batch, q0, out_y;
    if (quads > 0) {
        adaptc_dw_zero(rows, (ring + 1) * slot_words);      /* padded columns, the zero slot */
    }
    for (batch = 0; batch < p->batches; ++batch) {
        const int8_t *const image = input + batch * in_h * in_w * depth;
        int8_t *const out_image = output + batch * out_h * out_w * depth;
        for (q0 = 0; q0 < quads; q0 += qb) {
            const int32_t nq = quads - q0 < qb ? quads - q0 : qb;
            int32_t next = 0;                 /* the first input row not yet in the ring */
            adaptc_dw_expand(wx, filter + q0 * taps, nq * taps, fast);
            for (out_y = 0; out_y < out_h; ++out_y) {
                const int32_t y0 = out_y * stride_h - pad_top;
                int8_t *const out = out_image + out_y * out_w * depth + 4 * q0;
                const int32_t *const rec = channels + 16 * q0;
                const int32_t last = y0 + ring < in_h ? y0 + ring : in_h;
                if (next < y0) {
                    next = y0;
                }
                for (; next < last; ++next) {
                    adaptc_dw_fill(rows + next % ring * slot_words + 2 * first,
                                   image + (next * in_w + first - pad_left) * depth + 4 * q0, nq, qwords, end - first,
                                   depth, offset2);
                }
#if ADAPTC_DSP_ASM
                if (path == 3) {
                    int32_t r, s[3];
                    for (r = 0; r < 3; ++r) {
                        const int32_t y = y0 + r * dil_h;
                        s[r] = (y < 0 || y >= in_h ? ring : y % ring) * 4 * slot_words;
                    }
                    adaptc_dw_row3(rows + s[0] / 4, wx, rec, out, nq, out_w / 2, out_w & 1, s[1] - s[0], s[2] - s[1],
                                   stride_w, 4 * qwords, depth);
                    continue;
                }
                if (path == 1) {
                    adaptc_dw_general(p, rows, wx, rec, out, nq, y0, ring, slot_words, qwords);
                    continue;
                }
#endif
                adaptc_dw_row(rows, y0, in_h, ring, slot_words, qwords, wx, rec, out, nq, out_w, k_h, k_w, dil_h,
                              dil_w, stride_w, depth, fast, output_offset);
            }
        }
        for (out_y = 0; out_y < out_h && rest > 0; ++out_y) {
            int32_t out_x, c, ky, kx;
            for (out_x = 0; out_x < out_w; ++out_x) {
                const int32_t y0 = out_y * stride_h - pad_top, x0 = out_x * stride_w - pad_left;
                int8_t *const out = out_image + (out_y * out_w + out_x) * depth;
                for (c = 4 * quads; c < depth; ++c) {
                    const int32_t *const rec = channels + 4 * c;
                    int32_t acc = rec[0];
                    for (ky = 0; ky < k_h; ++ky) {
                        const int32_t in_y = y0 + ky * dil_h;
                        if (in_y < 0 || in_y >= in_h) {
                            continue;
                        }
                        for (kx = 0; kx < k_w; ++kx) {
                            const int32_t in_x = x0 + kx * dil_w;
                            if (in_x >= 0 && in_x < in_w) {
                                const int32_t w = tail_filter[(ky * k_w + kx) * rest + c - 4 * quads];
                                acc += (image[(in_y * in_w + in_x) * depth + c] + input_offset) * w * scale;
                            }
                        }
                    }
                    {
                        const int32_t rq[3] = {rec[1], rec[3], rec[2]};
                        out[c] = adaptc_dw_out(acc, rq, fast, output_offset);
                    }
                }
            }
        }
    }
    adaptc_clamp_s8(output, p->batches * out_h * out_w * depth, p->act_min, p->act_max);
}
