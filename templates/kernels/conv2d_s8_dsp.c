/*
 * CONV_2D, int8 (per-channel quantized): DSP-extension drop-in for conv2d_s8.
 * The arguments of conv2d_s8 -- with the filter, bias, out_mult and out_shift laid out as one
 * array of channel blocks -- and, bit for bit, its results (TFLite
 * reference_integer_ops::ConvPerChannel); targets/cortex_m/kernels/conv2d.py lays out the array.
 *
 * Layout: input, output: as conv2d_s8;
 *         blocks: the output channels in pairs (2k, 2k + 1), a pair's block of 2 * groups + 7
 *         int32 words (groups = ceil(depth / 4), depth = k_h * p->row_bytes; row_bytes = k_w *
 *         in_c, or rounded up to a multiple of 4, the rows' taps then followed by zero weights):
 *           {bias 2k, bias 2k + 1} (0 if none),
 *           the two OHWI rows packed four int8 to a word, zero-padded to `groups` words and
 *           interleaved word by word ([2k g0][2k+1 g0][2k g1]...: ADAPTC_CONV_GROUP),
 *           {m0, k0, m1, k1, rr}: in a pair of mode 2 (both channels' shift < 0 and the fast
 *           requantization proven exact for them, simd.fast_rq_modes) m = out_mult, k = 2^(r -
 *           1) + output_offset * 2^r, rr = r0 | r1 << 8 | 2 << 16 with r = -out_shift;
 *           otherwise k = out_shift, rr = mode << 16 (1: the bound proven, 0: not);
 *         then an odd last channel as {bias, out_mult, out_shift, 1 if not proven} and its row;
 *         p->scratch: four im2col columns (8 * groups words), 6 words of output pointers
 *         (adaptc_conv_rows), four output rows for a last, partial block of pixels (4 * out_c
 *         bytes), then 4 * groups bytes to gather in.
 * Arithmetic: four output pixels at a time, adaptc_im2col_x4 (adaptc_im2col_1x1 for a pointwise
 *   convolution) writes each pixel's receptive field as (input + input_offset) in int16 -- 0 at
 *   padded taps, which the reference skips, so the sums are the same -- and adaptc_conv_rows
 *   accumulates each pair of output channels over two columns at a time with SMLAD (16 MACs in
 *   15 instructions), adds the bias and requantizes by the pair's mode -- 2: SMMULR of 2 acc,
 *   the rounding and the output offset in one add, the shift, SSAT (7 instructions an output,
 *   the store included, in the loop's assembly); 1: dsp.h adaptc_rq (the accumulators proven
 *   small); 0: adaptc_rq_exact (any accumulator) -- + output_offset, then clamps to [act_min,
 *   act_max]; p->rq_mode 2: every pair fast, 3: some, 0: none.
 */

/* One group of four weights of the two channels (w0, w1: one LDRD of the interleaved rows)
 * against two neighbouring columns of the four (x + 8 bytes: the second, then x: the first, which
 * moves x on by a group): assembly operands of ADAPTC_CONV_DOT. a0 = (ch0, col0), a1 = (ch1,
 * col0), a2 = (ch0, col1), a3 = (ch1, col1). */
#define ADAPTC_CONV_GROUP \
    "ldrd   %[w0], %[w1], [%[w]], #8\n\t" \
    "ldrd   %[x0], %[x1], [%[x], #8]\n\t" \
    "sxtb16 %[u0], %[w0], ror #8\n\t" \
    "sxtb16 %[w0], %[w0]\n\t" \
    "sxtb16 %[u1], %[w1], ror #8\n\t" \
    "sxtb16 %[w1], %[w1]\n\t" \
    "smlad  %[a2], %[w0], %[x0], %[a2]\n\t" \
    "smlad  %[a2], %[u0], %[x1], %[a2]\n\t" \
    "smlad  %[a3], %[w1], %[x0], %[a3]\n\t" \
    "smlad  %[a3], %[u1], %[x1], %[a3]\n\t" \
    "ldrd   %[x0], %[x1], [%[x]], #32\n\t" \
    "smlad  %[a0], %[w0], %[x0], %[a0]\n\t" \
    "smlad  %[a0], %[u0], %[x1], %[a0]\n\t" \
    "smlad  %[a1], %[w1], %[x0], %[a1]\n\t" \
    "smlad  %[a1], %[u1], %[x1], %[a1]\n\t"

/* rq_mode 2: accumulator A to its int8 output in place, with the channel's M and K and the
 * shift in the low byte of `end` (rr) -- SMMULR(2 A, M), + (s < 0) correction, + K, >> r, SSAT --
 * stored at O, which moves on by a byte. */
#define ADAPTC_CONV_OUT(A, M, K, O) \
    "lsl    %[" A "], %[" A "], #1\n\t" \
    "smmulr %[" A "], %[" A "], %[" M "]\n\t" \
    "add    %[" A "], %[" A "], %[" A "], asr #31\n\t" \
    "add    %[" A "], %[" A "], %[" K "]\n\t" \
    "asr    %[" A "], %[" A "], %[end]\n\t" \
    "ssat   %[" A "], #8, %[" A "]\n\t" \
    "strb   %[" A "], [%[" O "]], #1\n\t"

/* rq_mode 2: (s + (s < 0 ? -1 : 0) + k) >> r saturated, s = SMMULR(2 acc, m): dsp.h
 * adaptc_rq_right(acc, m, r) + output_offset, with both constants in k (|acc|, |k| < 2^30) */
static inline int32_t adaptc_conv_fast(int32_t acc, int32_t m, int32_t k, int32_t r)
{
    const int32_t s = adaptc_smmulr((int32_t)((uint32_t)acc << 1), m);
    return adaptc_ssat8((s + (s >> 31) + k) >> r);
}

#if ADAPTC_DSP_ASM
/* The biases and the groups of a pair block (w) against two columns (x to end), in assembly:
 * ADAPTC_CONV_REST takes groups % 4 (bits 5, 6 of the bytes to go into N and C: one group, then
 * two), ADAPTC_CONV_BY4 four groups an iteration (15 instructions per 16 MACs), to end; w ends at
 * the block's {m0, k0, m1, k1, rr}. */
#define ADAPTC_CONV_BIAS \
    "ldrd   %[a0], %[a1], [%[w]]\n\t" \
    "ldrd   %[a2], %[a3], [%[w]], #8\n\t"

#define ADAPTC_CONV_REST \
    "sub    %[w0], %[end], %[x]\n\t" \
    "lsls   %[w0], %[w0], #26\n\t" \
    "bpl    1f\n\t" \
    ADAPTC_CONV_GROUP \
    "1:\n\t" \
    "bcc    2f\n\t" \
    ADAPTC_CONV_GROUP \
    ADAPTC_CONV_GROUP \
    "2:\n\t" \
    "cmp    %[x], %[end]\n\t" \
    "beq    3f\n"

#define ADAPTC_CONV_BY4 \
    "4:\n\t" \
    ADAPTC_CONV_GROUP \
    ADAPTC_CONV_GROUP \
    ADAPTC_CONV_GROUP \
    ADAPTC_CONV_GROUP \
    "cmp    %[x], %[end]\n\t" \
    "bne    4b\n" \
    "3:\n\t"

#define ADAPTC_CONV_DOT ADAPTC_CONV_BIAS ADAPTC_CONV_REST ADAPTC_CONV_BY4

#define ADAPTC_CONV_OPERANDS \
    [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w] "+&r"(b), [x] "+&r"(x), \
    [end] "+&r"(x_end), [w0] "=&r"(w0), [w1] "=&r"(w1), [u0] "=&r"(u0), [u1] "=&r"(u1), [x0] "=&r"(x0), \
    [x1] "=&r"(x1)

/* rq_mode 2 on a DSP core: one pair block (b) against two neighbouring columns (x, 8 words a
 * group, to x_end) in assembly, the four outputs included (7 instructions each, the store
 * included); `by4`: groups a multiple of 4 (no remainder to take first).  x_end points at the
 * two columns' output pointers {o0, o1}; channel 0's output goes to o0[0], o1[0], channel 1's
 * to o0[1], o1[1], and both pointers move on by 2. */
#define ADAPTC_CONV_RQ \
    "ldrd   %[x0], %[x1], [%[x]]\n\t" \
    "ldrd   %[w0], %[w1], [%[w]], #8\n\t" \
    "ldrd   %[u0], %[u1], [%[w]], #8\n\t" \
    "ldr    %[end], [%[w]]\n\t" \
    ADAPTC_CONV_OUT("a0", "w0", "w1", "x0") \
    ADAPTC_CONV_OUT("a2", "w0", "w1", "x1") \
    "lsr    %[end], %[end], #8\n\t" \
    ADAPTC_CONV_OUT("a1", "u0", "u1", "x0") \
    ADAPTC_CONV_OUT("a3", "u0", "u1", "x1") \
    "strd   %[x0], %[x1], [%[x]]"

static ADAPTC_INLINE void adaptc_conv_pair_asm(const int32_t *b, const int32_t *x, const int32_t *x_end,
                                               int32_t by4)
{
    int32_t a0, a1, a2, a3, w0, w1, u0, u1, x0, x1;
    if (by4) {
        __asm__ volatile(ADAPTC_CONV_BIAS ADAPTC_CONV_BY4 ADAPTC_CONV_RQ : ADAPTC_CONV_OPERANDS : : "cc", "memory");
    } else {
        __asm__ volatile(ADAPTC_CONV_DOT ADAPTC_CONV_RQ : ADAPTC_CONV_OPERANDS : : "cc", "memory");
    }
}
#endif

/* The accumulators of a pair block (b) against two neighbouring columns (x, 8 words a group, to
 * x_end): acc = {(ch0, col0), (ch1, col0), (ch0, col1), (ch1, col1)}; returns the block's
 * {m0, k0, m1, k1, rr}. */
static ADAPTC_INLINE const int32_t *adaptc_conv_dot(const int32_t *b, const int32_t *x, const int32_t *x_end,
                                                    int32_t *acc)
{
#if ADAPTC_DSP_ASM
    int32_t a0, a1, a2, a3, w0, w1, u0, u1, x0, x1;
    __asm__ volatile(ADAPTC_CONV_DOT : ADAPTC_CONV_OPERANDS : : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    acc[0] = acc[2] = b[0];
    acc[1] = acc[3] = b[1];
    b += 2;
    do {
        const int32_t w0 = adaptc_sxtb16(b[0]), u0 = adaptc_sxtb16_ror8(b[0]);
        const int32_t w1 = adaptc_sxtb16(b[1]), u1 = adaptc_sxtb16_ror8(b[1]);
        acc[0] = adaptc_smlad(u0, x[1], adaptc_smlad(w0, x[0], acc[0]));
        acc[1] = adaptc_smlad(u1, x[1], adaptc_smlad(w1, x[0], acc[1]));
        acc[2] = adaptc_smlad(u0, x[3], adaptc_smlad(w0, x[2], acc[2]));
        acc[3] = adaptc_smlad(u1, x[3], adaptc_smlad(w1, x[2], acc[3]));
        b += 2;
        x += 8;
    } while (x != x_end);
#endif
    return b;
}

/* One pair block (b) against two neighbouring columns (x, 8 words a group, to x_end), the
 * requantization in C by the pair's mode (rr >> 16): channel 0's outputs at out[0] (first
 * column) and out[stride] (second), channel 1's at out[1], out[stride + 1]. */
static ADAPTC_NOINLINE void adaptc_conv_pair(const int32_t *b, const int32_t *x, const int32_t *x_end, int8_t *out,
                                              int32_t stride, int32_t output_offset)
{
    int32_t acc[4];
    int32_t c, k;
    const int32_t *const rq = adaptc_conv_dot(b, x, x_end, acc);
    const int32_t mode = rq[4] >> 16;
    for (k = 0; k < 2; ++k) {
        const int32_t m = rq[2 * k], kk = rq[2 * k + 1];
        for (c = 0; c < 2; ++c) {
            const int32_t a = acc[2 * c + k];
            int32_t v;
            if (mode == 2) {
                v = adaptc_conv_fast(a, m, kk, (rq[4] >> (8 * k)) & 0xFF);
            } else {
                v = adaptc_ssat8((mode == 1 ? adaptc_rq(a, m, kk) : adaptc_rq_exact(a, m, kk)) + output_offset);
            }
            out[c * stride + k] = (int8_t)v;
        }
    }
}

/* out[c * out_stride + r] for every output channel r and the four columns c (from `cols`,
 * groups >= 1; `outs`: 6 words of scratch after them) of which the first n are pixels: each
 * pair block against columns 0, 1 and then, for n > 2, 2, 3; an odd last channel through dsp.h
 * adaptc_row_x4; clamped to [act_min, act_max]. */
static ADAPTC_NOINLINE void adaptc_conv_rows(const int32_t *blocks, const int32_t *cols, int32_t rows,
                                             int32_t groups, int32_t mode, int32_t output_offset,
                                             int32_t act_min, int32_t act_max, int8_t *out, int32_t out_stride,
                                             int32_t n)
{
    const int32_t *const cols_end = cols + 8 * groups;
    const int32_t size = 2 * groups + 7;
    int32_t r = 0;
    (void)mode;                                       /* the C form reads each pair's own */
#if ADAPTC_DSP_ASM
    if (mode == 2) {
        int8_t **const outs = (int8_t **)(void *)(cols + 8 * groups);   /* {o0, o1, -, -, o2, o3} */
        outs[0] = out;
        outs[1] = out + out_stride;
        outs[4] = out + 2 * out_stride;
        outs[5] = out + 3 * out_stride;
        if (n <= 2) {                                /* a last block of one or two pixels */
            for (; r + 1 < rows; r += 2, blocks += size) {
                adaptc_conv_pair_asm(blocks, cols, cols_end, 0);
            }
        } else if ((groups & 3) == 0) {
            for (; r + 1 < rows; r += 2, blocks += size) {
                adaptc_conv_pair_asm(blocks, cols, cols_end, 1);
                adaptc_conv_pair_asm(blocks, cols + 4, cols_end + 4, 1);
            }
        }
        for (; r + 1 < rows; r += 2, blocks += size) {
            adaptc_conv_pair_asm(blocks, cols, cols_end, 0);
            adaptc_conv_pair_asm(blocks, cols + 4, cols_end + 4, 0);
        }
    } else if (mode == 3) {                          /* fast pairs here, the others in C */
        int8_t **const outs = (int8_t **)(void *)(cols + 8 * groups);
        outs[0] = out;
        outs[1] = out + out_stride;
        outs[4] = out + 2 * out_stride;
        outs[5] = out + 3 * out_stride;
        for (; r + 1 < rows; r += 2, blocks += size) {
            if (blocks[size - 1] >> 16 == 2) {
                adaptc_conv_pair_asm(blocks, cols, cols_end, 0);
                if (n > 2) {
                    adaptc_conv_pair_asm(blocks, cols + 4, cols_end + 4, 0);
                }
                continue;
            }
            adaptc_conv_pair(blocks, cols, cols_end, out + r, out_stride, output_offset);
            if (n > 2) {
                adaptc_conv_pair(blocks, cols + 4, cols_end + 4, out + 2 * out_stride + r, out_stride, output_offset);
            }
            outs[0] += 2;
            outs[1] += 2;
            outs[4] += 2;
            outs[5] += 2;
        }
    }
#endif
    for (; r + 1 < rows; r += 2, blocks += size) {
        adaptc_conv_pair(blocks, cols, cols_end, out + r, out_stride, output_offset);
        if (n > 2) {
            adaptc_conv_pair(blocks, cols + 4, cols_end + 4, out + 2 * out_stride + r, out_stride, output_offset);
        }
    }
    if (r < rows) {                                  /* {bias, mult, shift, exact}, the row */
        adaptc_row_x4(blocks + 4, cols, cols_end, blocks, output_offset, out + r, out_stride, blocks[3]);
    }
    adaptc_clamp_x4(out, rows, out_stride, act_min, act_max);
}

/* A pointwise convolution's (1x1, stride 1, no padding, in_c a multiple of 4: the pixels lie one
 * after the other) next n <= 4 columns from src, the last pixel repeated in the spare ones:
 * converted straight from the input, no geometry to follow. */
static inline void adaptc_im2col_1x1(const int8_t *src, int32_t in_c, int32_t n, int32_t *cols, int32_t offset2)
{
    int32_t c;
    for (c = 0; c < 4; ++c) {
        adaptc_col_rows(cols + 2 * c, src + (c < n ? c : n - 1) * in_c, 1, in_c / 4, 0, offset2);
    }
}

static void conv2d_s8_dsp(const conv2d_s8_dsp_params *p, const int8_t *input, const int32_t *blocks,
                          int8_t *output)
{
    const int32_t out_c = p->out_c;
    const int32_t groups = (p->k_h * p->row_bytes + 3) / 4;
    int32_t *const cols = p->scratch;
    int8_t *const tail = (int8_t *)(cols + 8 * groups + 6);
    int8_t *const gather = tail + 4 * out_c;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    adaptc_conv_geometry g = {p->in_h, p->in_w, p->in_c, p->out_h, p->out_w, p->k_h, p->k_w, p->stride_h, p->stride_w,
                              p->dil_h, p->dil_w, p->pad_top, p->pad_left, p->input_offset, p->row_bytes, 0, 0, 0};
    int32_t pix;
    const int32_t pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                              p->pad_left == 0 && p->in_h == p->out_h && p->in_w == p->out_w && (p->in_c & 3) == 0;
    for (pix = 0; pix < pixels; pix += 4) {
        const int32_t n = pixels - pix < 4 ? pixels - pix : 4;
        if (pointwise) {
            adaptc_im2col_1x1(input + pix * p->in_c, p->in_c, n, cols, adaptc_offset2(p->input_offset));
        } else {
            adaptc_im2col_x4(&g, input, n, cols, gather);
        }
        adaptc_conv_rows(blocks, cols, out_c, groups, p->rq_mode, p->output_offset, p->act_min, p->act_max,
                         n == 4 ? output + pix * out_c : tail, out_c, n);
        if (n < 4) {
            memcpy(output + pix * out_c, tail, (size_t)(n * out_c));
        }
    }
}
