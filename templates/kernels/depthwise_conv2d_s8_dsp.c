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
 *         channels: per channel a record of four int32 -- p->right_shifts 1 (the fast
 *         requantization, proven exact by the builder): {2 bias, mult, right_shift = -shift,
 *         2^(right_shift - 1) + output_offset * 2^right_shift}; 0: {bias, mult, shift, 0};
 *         p->scratch: the group's filter as int16 pairs (2 * k_h * k_w words), then a ring of
 *         (k_h - 1) * dil_h + 1 input rows of the group (2 * span words each, span = the
 *         padded columns the output row reads).
 * Arithmetic: one group of four channels at a time, as two pairs of channels: (0, 2) and
 *   (1, 3), the int16 halves SXTAB16 / SXTAB16 ROR #8 make of a word of four input bytes.
 *   Each input row the group reads is converted once into the ring -- x + input_offset for
 *   both pairs, 0 at padded columns and rows (the reference's skipped taps) -- so every output
 *   pixel is summed over its whole window with no bounds check; SMLABB / SMLATT accumulate the
 *   pair's two channels.  3x3 windows (dil_w 1, stride_w 1 or 2) take two horizontally
 *   adjacent output pixels at a time, each input word loaded once for both; any other window
 *   and a last odd pixel one at a time.  Requantization per output: the fast form (weights and
 *   bias doubled so the sum is 2 acc: SMMLAR into the rounding constant with the output
 *   offset, the sign correction, the shift, SSAT: 4 instructions) where the builder proves it
 *   exact, else dsp.h adaptc_rq_exact + output_offset (exact for any accumulator).  The last
 *   channels % 4 channels one at a time over the in-bounds taps.  A narrower [act_min,
 *   act_max] clamps the output afterwards.
 */

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

/* The int8 output of a channel's accumulator and record (see Layout): fast -- acc = 2 sum,
 * (SMMLAR(acc, mult, round) - (acc < 0)) >> right_shift, the output offset inside round, which
 * equals adaptc_rq_right(sum) + output_offset for |sum| < 2^30 (s < 0 only where acc < 0, and
 * where acc < 0 but s = 0 both give 0) --, else adaptc_rq_exact; saturated to int8. */
static ADAPTC_INLINE int8_t adaptc_dw_out(int32_t acc, const int32_t *rec, int32_t fast, int32_t output_offset)
{
    if (fast) {
        return (int8_t)adaptc_ssat8((adaptc_dw_smmlar(acc, rec[1], rec[3]) + (acc >> 31)) >> rec[2]);
    }
    return (int8_t)adaptc_ssat8(adaptc_rq_exact(acc, rec[1], rec[2]) + output_offset);
}

/* Two channels' accumulators lo (channel of the low halves), hi += the taps t < 3 of one
 * window row: input pairs x[col + t], weight pairs w[t]. */
#define ADAPTC_DW_ROW3(X, COL, W, LO, HI) \
    do { \
        LO = adaptc_smlabb((X)[(COL)], (W)[0], LO); \
        HI = adaptc_smlatt((X)[(COL)], (W)[0], HI); \
        LO = adaptc_smlabb((X)[(COL) + 1], (W)[1], LO); \
        HI = adaptc_smlatt((X)[(COL) + 1], (W)[1], HI); \
        LO = adaptc_smlabb((X)[(COL) + 2], (W)[2], LO); \
        HI = adaptc_smlatt((X)[(COL) + 2], (W)[2], HI); \
    } while (0)

/* `pairs` blocks of two adjacent output pixels of one output row, 3x3 window (dil_w 1), for one
 * pair of channels: window rows at x0, x1, x2 (ring rows, this channel pair's part), weights w
 * (9 pairs), records lo / hi; outputs at out (lo) and out + 2 (hi), pixels `depth` bytes apart. */
static ADAPTC_INLINE void adaptc_dw_pairs3(const int32_t *x0, const int32_t *x1, const int32_t *x2,
                                           const int32_t *w, int32_t stride, int32_t pairs,
                                           const int32_t *rec_lo, const int32_t *rec_hi, int32_t fast,
                                           int32_t output_offset, int8_t *out, int32_t depth)
{
    const int32_t *const end = x0 + 2 * stride * pairs;
    while (x0 != end) {
        int32_t a_lo = rec_lo[0], a_hi = rec_hi[0], b_lo = a_lo, b_hi = a_hi;
        ADAPTC_DW_ROW3(x0, 0, w, a_lo, a_hi);
        ADAPTC_DW_ROW3(x0, stride, w, b_lo, b_hi);
        ADAPTC_DW_ROW3(x1, 0, w + 3, a_lo, a_hi);
        ADAPTC_DW_ROW3(x1, stride, w + 3, b_lo, b_hi);
        ADAPTC_DW_ROW3(x2, 0, w + 6, a_lo, a_hi);
        ADAPTC_DW_ROW3(x2, stride, w + 6, b_lo, b_hi);
        out[0] = adaptc_dw_out(a_lo, rec_lo, fast, output_offset);
        out[2] = adaptc_dw_out(a_hi, rec_hi, fast, output_offset);
        out[depth] = adaptc_dw_out(b_lo, rec_lo, fast, output_offset);
        out[depth + 2] = adaptc_dw_out(b_hi, rec_hi, fast, output_offset);
        out += 2 * depth;
        x0 += 2 * stride;
        x1 += 2 * stride;
        x2 += 2 * stride;
    }
}

#if ADAPTC_HAVE_DSP
/* Assembly operands of adaptc_dw_pairs3_asm.  One window row, stride_w 1: weight pairs w0, w1
 * (t2, t3) at byte WO of w, input columns c0..c3 (t0, t1 twice) from X, X advanced two columns;
 * A += c0 w0 + c1 w1 + c2 w2, B += c1 w0 + c2 w1 + c3 w2, each for the low (SMLABB) and high
 * (SMLATT) channel. */
#define ADAPTC_DW_MAC(ACC, X, W) \
    "smlabb %[" ACC "lo], %[" X "], %[" W "], %[" ACC "lo]\n\t" \
    "smlatt %[" ACC "hi], %[" X "], %[" W "], %[" ACC "hi]\n\t"
#define ADAPTC_DW_ROW_S1(X, WO, WO2) \
    "ldrd   %[t2], %[t3], [%[w], #" WO "]\n\t" \
    "ldrd   %[t0], %[t1], [%[" X "]], #8\n\t" \
    ADAPTC_DW_MAC("a", "t0", "t2") \
    ADAPTC_DW_MAC("a", "t1", "t3") \
    ADAPTC_DW_MAC("b", "t1", "t2") \
    "ldrd   %[t0], %[t1], [%[" X "]]\n\t" \
    ADAPTC_DW_MAC("b", "t0", "t3") \
    "ldr    %[t2], [%[w], #" WO2 "]\n\t" \
    ADAPTC_DW_MAC("a", "t0", "t2") \
    ADAPTC_DW_MAC("b", "t1", "t2")
/* stride_w 2: columns c0..c4, X advanced four columns; A: c0 c1 c2, B: c2 c3 c4 */
#define ADAPTC_DW_ROW_S2(X, WO, WO2) \
    "ldrd   %[t2], %[t3], [%[w], #" WO "]\n\t" \
    "ldrd   %[t0], %[t1], [%[" X "]], #8\n\t" \
    ADAPTC_DW_MAC("a", "t0", "t2") \
    ADAPTC_DW_MAC("a", "t1", "t3") \
    "ldrd   %[t0], %[t1], [%[" X "]], #8\n\t" \
    ADAPTC_DW_MAC("b", "t0", "t2") \
    ADAPTC_DW_MAC("b", "t1", "t3") \
    "ldr    %[t2], [%[w], #" WO2 "]\n\t" \
    ADAPTC_DW_MAC("a", "t0", "t2") \
    "ldr    %[t0], [%[" X "]]\n\t" \
    ADAPTC_DW_MAC("b", "t0", "t2")
/* The fast requantization of ACC (t0 = mult, t1 = right_shift, t2 = round; w a temporary) */
#define ADAPTC_DW_RQF(ACC) \
    "smmlar %[w], %[" ACC "], %[t0], %[t2]\n\t" \
    "add    %[" ACC "], %[w], %[" ACC "], asr #31\n\t" \
    "asr    %[" ACC "], %[" ACC "], %[t1]\n\t" \
    "ssat   %[" ACC "], #8, %[" ACC "]\n\t"
/* The block's outputs: both channels' records (lo at rec, hi 32 bytes on), B stored before A
 * (out_step 0: a single pixel, A's results last), out advanced two pixels. */
#define ADAPTC_DW_BLOCK_END \
    "ldr    %[t3], %[rec]\n\t" \
    "ldrd   %[t0], %[t1], [%[t3], #4]\n\t" \
    "ldr    %[t2], [%[t3], #12]\n\t" \
    ADAPTC_DW_RQF("alo") \
    ADAPTC_DW_RQF("blo") \
    "ldrd   %[t0], %[t1], [%[t3], #36]\n\t" \
    "ldr    %[t2], [%[t3], #44]\n\t" \
    ADAPTC_DW_RQF("ahi") \
    ADAPTC_DW_RQF("bhi") \
    "ldr    %[w], %[step]\n\t" \
    "add    %[w], %[out], %[w]\n\t" \
    "strb   %[blo], [%[w]]\n\t" \
    "strb   %[bhi], [%[w], #2]\n\t" \
    "strb   %[alo], [%[out]]\n\t" \
    "strb   %[ahi], [%[out], #2]\n\t" \
    "rsb    %[out], %[out], %[w], lsl #1\n\t" \
    "ldr    %[w], %[wsave]\n\t" \
    "ldr    %[t0], %[end]\n\t" \
    "cmp    %[x0], %[t0]\n\t"
#define ADAPTC_DW_BLOCK_START \
    "ldr    %[t3], %[rec]\n\t" \
    "ldr    %[alo], [%[t3]]\n\t" \
    "ldr    %[ahi], [%[t3], #32]\n\t" \
    "mov    %[blo], %[alo]\n\t" \
    "mov    %[bhi], %[ahi]\n\t"

/* adaptc_dw_pairs3 with the fast requantization, in assembly: per block of two pixels 36 MACs
 * in 48 instructions (12 loads: LDRD of two input or weight pairs), the 8 outputs in 28. */
static ADAPTC_NOINLINE void adaptc_dw_pairs3_asm(const int32_t *x0, const int32_t *x1, const int32_t *x2,
                                                 const int32_t *w, int32_t stride, int32_t pairs,
                                                 const int32_t *rec, int8_t *out, int32_t out_step)
{
    const int32_t *const end = x0 + 2 * stride * pairs;
    const int32_t *const wsave = w;
    int32_t alo, ahi, blo, bhi, t0, t1, t2, t3;
    if (stride == 1) {
        __asm__ volatile(
                "1:\n\t"
                ADAPTC_DW_BLOCK_START
                ADAPTC_DW_ROW_S1("x0", "0", "8")
                ADAPTC_DW_ROW_S1("x1", "12", "20")
                ADAPTC_DW_ROW_S1("x2", "24", "32")
                ADAPTC_DW_BLOCK_END
                "bne    1b"
                : [alo] "=&r"(alo), [ahi] "=&r"(ahi), [blo] "=&r"(blo), [bhi] "=&r"(bhi), [t0] "=&r"(t0),
                  [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2),
                  [w] "+r"(w), [out] "+r"(out)
                : [rec] "m"(rec), [step] "m"(out_step), [wsave] "m"(wsave), [end] "m"(end)
                : "cc", "memory");
    } else {
        __asm__ volatile(
                "1:\n\t"
                ADAPTC_DW_BLOCK_START
                ADAPTC_DW_ROW_S2("x0", "0", "8")
                ADAPTC_DW_ROW_S2("x1", "12", "20")
                ADAPTC_DW_ROW_S2("x2", "24", "32")
                ADAPTC_DW_BLOCK_END
                "bne    1b"
                : [alo] "=&r"(alo), [ahi] "=&r"(ahi), [blo] "=&r"(blo), [bhi] "=&r"(bhi), [t0] "=&r"(t0),
                  [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2),
                  [w] "+r"(w), [out] "+r"(out)
                : [rec] "m"(rec), [step] "m"(out_step), [wsave] "m"(wsave), [end] "m"(end)
                : "cc", "memory");
    }
}
#endif

/* Output pixels [first, last) of one output row, any window, for one pair of channels: ring
 * rows from slot `slot` on (dil_h slots apart, modulo `ring`), each `row_words` apart, this
 * pair's part at offset `part`; weights w ([k_h][k_w] pairs). */
static ADAPTC_NOINLINE void adaptc_dw_pixels(const int32_t *rows, int32_t slot, int32_t ring, int32_t row_words,
                                             int32_t part, const int32_t *w, int32_t k_h, int32_t k_w, int32_t dil_h,
                                             int32_t dil_w, int32_t stride, int32_t first, int32_t last,
                                             const int32_t *rec_lo, const int32_t *rec_hi, int32_t fast,
                                             int32_t output_offset, int8_t *out, int32_t depth)
{
    int32_t px, r, t;
    for (px = first; px < last; ++px) {
        int32_t lo = rec_lo[0], hi = rec_hi[0], s = slot;
        const int32_t *wt = w;
        for (r = 0; r < k_h; ++r) {
            const int32_t *x = rows + s * row_words + part + px * stride;
            for (t = 0; t < k_w; ++t) {
                lo = adaptc_smlabb(*x, *wt, lo);
                hi = adaptc_smlatt(*x, *wt, hi);
                x += dil_w;
                ++wt;
            }
            s += dil_h;
            if (s >= ring) {
                s -= ring;
            }
        }
        out[px * depth] = adaptc_dw_out(lo, rec_lo, fast, output_offset);
        out[px * depth + 2] = adaptc_dw_out(hi, rec_hi, fast, output_offset);
    }
}

/* Input row `in_y` of the four channels at src (the row's first pixel, channel 4 q) into a ring
 * row: for each padded column c < span (input column c - pad_left) the pairs (x0, x2) and
 * (x1, x3) + input_offset at dst[c] and dst[span + c], 0 outside the input. */
static ADAPTC_NOINLINE void adaptc_dw_fill(int32_t *dst, const int8_t *src, int32_t in_row, int32_t span,
                                           int32_t pad_left, int32_t in_w, int32_t depth, int32_t offset2)
{
    int32_t c = 0, inside_end = pad_left + in_w;
    if (!in_row) {
        inside_end = 0;
    }
    if (inside_end > span) {
        inside_end = span;
    }
    for (; c < pad_left && c < span; ++c) {
        dst[c] = 0;
        dst[span + c] = 0;
    }
    if (c < inside_end) {
        src += (c - pad_left) * depth;
    }
    for (; c < inside_end; ++c) {
        const int32_t v = adaptc_read_s8x4(src);
        dst[c] = adaptc_sxtab16(offset2, v);
        dst[span + c] = adaptc_sxtab16_ror8(offset2, v);
        src += depth;
    }
    for (; c < span; ++c) {
        dst[c] = 0;
        dst[span + c] = 0;
    }
}

/* Byte `byte` of a filter word x `scale` (1 or 2) as an int16 half */
static inline uint32_t adaptc_dw_half(int32_t word, int32_t byte, int32_t scale)
{
    return (uint32_t)((int32_t)(int8_t)(uint8_t)((uint32_t)word >> (8 * byte)) * scale) & 0xFFFFu;
}

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
    const int32_t cols = span + 2;       /* and two more zero columns: a last odd pixel's block */
    const int32_t ring = (k_h - 1) * dil_h + 1, row_words = 2 * cols;
    const int32_t pairs = k_h == 3 && k_w == 3 && dil_w == 1 && (stride_w == 1 || stride_w == 2) ? out_w / 2 : 0;
    const int8_t *const tail_filter = (const int8_t *)(const void *)(filter + quads * taps);
    int32_t *const wx = (int32_t *)(void *)p->scratch;
    int32_t *const rows = wx + 2 * taps;
    int32_t batch, q, t, out_y, lane;
    for (batch = 0; batch < p->batches; ++batch) {
        const int8_t *const image = input + batch * in_h * in_w * depth;
        int8_t *const out_image = output + batch * out_h * out_w * depth;
        for (q = 0; q < quads; ++q) {
            int32_t next = -pad_top;          /* the first input row not yet in the ring */
            for (t = 0; t < taps; ++t) {
                const int32_t word = filter[q * taps + t];
                wx[t] = (int32_t)((adaptc_dw_half(word, 2, scale) << 16) | adaptc_dw_half(word, 0, scale));
                wx[taps + t] = (int32_t)((adaptc_dw_half(word, 3, scale) << 16) | adaptc_dw_half(word, 1, scale));
            }
            for (out_y = 0; out_y < out_h; ++out_y) {
                const int32_t y0 = out_y * stride_h - pad_top;
                const int32_t slot = (y0 % ring + ring) % ring;
                if (next < y0) {
                    next = y0;
                }
                for (; next < y0 + ring; ++next) {
                    const int32_t in_row = next >= 0 && next < in_h;
                    adaptc_dw_fill(rows + (next % ring + ring) % ring * row_words,
                                   image + (in_row ? next : 0) * in_w * depth + 4 * q, in_row, cols, pad_left,
                                   in_w, depth, offset2);
                }
                for (lane = 0; lane < 2; ++lane) {
                    const int32_t *const rec = channels + 4 * (4 * q + lane);
                    const int32_t *const w = wx + lane * taps;
                    int8_t *const out = out_image + out_y * out_w * depth + 4 * q + lane;
                    int32_t first = 0;
                    if (pairs > 0) {
                        const int32_t s1 = slot + dil_h >= ring ? slot + dil_h - ring : slot + dil_h;
                        const int32_t s2 = s1 + dil_h >= ring ? s1 + dil_h - ring : s1 + dil_h;
                        const int32_t *const x0 = rows + slot * row_words + lane * cols;
                        const int32_t *const x1 = rows + s1 * row_words + lane * cols;
                        const int32_t *const x2 = rows + s2 * row_words + lane * cols;
#if ADAPTC_HAVE_DSP
                        if (fast) {              /* a last odd pixel as a block whose B is thrown away */
                            const int32_t skip = 2 * stride_w * pairs;
                            adaptc_dw_pairs3_asm(x0, x1, x2, w, stride_w, pairs, rec, out, depth);
                            if (out_w & 1) {
                                adaptc_dw_pairs3_asm(x0 + skip, x1 + skip, x2 + skip, w, stride_w, 1, rec,
                                                     out + 2 * pairs * depth, 0);
                            }
                            continue;
                        }
#endif
                        adaptc_dw_pairs3(x0, x1, x2, w, stride_w, pairs, rec, rec + 8, fast, output_offset, out,
                                         depth);
                        first = 2 * pairs;
                    }
                    adaptc_dw_pixels(rows, slot, ring, row_words, lane * cols, w, k_h, k_w, dil_h, dil_w, stride_w,
                                     first, out_w, rec, rec + 8, fast, output_offset, out, depth);
                }
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
                    out[c] = adaptc_dw_out(acc, rec, fast, output_offset);
                }
            }
        }
    }
    adaptc_clamp_s8(output, p->batches * out_h * out_w * depth, p->act_min, p->act_max);
}
