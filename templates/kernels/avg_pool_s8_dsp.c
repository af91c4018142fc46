/*
 * AVERAGE_POOL_2D, int8: DSP-extension drop-in for avg_pool_s8 -- the same arguments and, bit for
 * bit, the same results (TFLite reference_integer_ops::AveragePool (int8),
 * tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h).
 *
 * Layout: input  NHWC [batches][in_h][in_w][channels]    int8
 *         output NHWC [batches][out_h][out_w][channels]  int8: as avg_pool_s8.
 * Arithmetic: as avg_pool_s8 -- the sum over the in-bounds window, filter_count its elements,
 *   the rounding division (sum +- filter_count / 2) / filter_count (C division), the clamp --
 *   with the sums four channels a word.  Per output pixel the in-bounds window is `runs` runs of
 *   `len` elements `pixel` bytes apart, the runs `row` bytes apart (dsp.h adaptc_pool_window_at:
 *   its rows, or one run where it spans the input's whole width).  The channels go eight at a
 *   time (an octet: two words an element), then four (a quad: one word), then the last
 *   channels % 4 one at a time over the same runs.  A word's
 *   bytes (adaptc_read_s8x4: any alignment) are added into the int16 lanes (c0, c2), (c1, c3) by
 *   SXTAB16 / SXTAB16 ROR #8 (dsp.h): exact for 256 elements (|lane| <= 128 * 256 = 2^15), so the
 *   lanes go into the int32 sums every 256 elements at most (a block: `per` = 256 / len whole
 *   runs, or 256 elements of a run longer than 256).  Optimized builds on a DSP core run a block's
 *   runs in assembly (ADAPTC_DSP_ASM): 9 instructions an octet element, 6 a quad element, 4 a run.
 *   An empty window (impossible with TFLite's padding) yields 0, clamped, as avg_pool_s8.
 */

/* The lanes l[0] = (c0, c2), l[1] = (c1, c3) (and for eight channels l[2] = (c4, c6),
 * l[3] = (c5, c7)) plus `runs` >= 1 runs of n >= 1 elements from x, pixel bytes apart, each run
 * followed by a jump of skip bytes to the next; the address after them. */
static ADAPTC_INLINE const int8_t *adaptc_avgpool_runs(const int8_t *x, int32_t runs, int32_t n, int32_t skip,
                                                       int32_t pixel, int32_t eight, int32_t *l)
{
    int32_t l0 = l[0], l1 = l[1], l2 = l[2], l3 = l[3];
#if ADAPTC_DSP_ASM
    int32_t w, k;
    if (eight) {
        __asm__("2:\n\t"
                "mov     %[k], %[n]\n"
                "1:\n\t"
                "ldr     %[w], [%[x], #4]\n\t"
                "sxtab16 %[l2], %[l2], %[w]\n\t"
                "sxtab16 %[l3], %[l3], %[w], ror #8\n\t"
                "ldr     %[w], [%[x]]\n\t"
                "add     %[x], %[x], %[pixel]\n\t"
                "sxtab16 %[l0], %[l0], %[w]\n\t"
                "sxtab16 %[l1], %[l1], %[w], ror #8\n\t"
                "subs    %[k], %[k], #1\n\t"
                "bne     1b\n\t"
                "add     %[x], %[x], %[skip]\n\t"
                "subs    %[runs], %[runs], #1\n\t"
                "bne     2b"
                : [x] "+&r"(x), [runs] "+&r"(runs), [l0] "+&r"(l0), [l1] "+&r"(l1), [l2] "+&r"(l2), [l3] "+&r"(l3),
                  [w] "=&r"(w), [k] "=&r"(k)
                : [n] "r"(n), [skip] "r"(skip), [pixel] "r"(pixel)
                : "cc", "memory");
    } else {
        __asm__("2:\n\t"
                "mov     %[k], %[n]\n"
                "1:\n\t"
                "ldr     %[w], [%[x]]\n\t"
                "add     %[x], %[x], %[pixel]\n\t"
                "sxtab16 %[l0], %[l0], %[w]\n\t"
                "sxtab16 %[l1], %[l1], %[w], ror #8\n\t"
                "subs    %[k], %[k], #1\n\t"
                "bne     1b\n\t"
                "add     %[x], %[x], %[skip]\n\t"
                "subs    %[runs], %[runs], #1\n\t"
                "bne     2b"
                : [x] "+&r"(x), [runs] "+&r"(runs), [l0] "+&r"(l0), [l1] "+&r"(l1), [w] "=&r"(w), [k] "=&r"(k)
                : [n] "r"(n), [skip] "r"(skip), [pixel] "r"(pixel)
                : "cc", "memory");
    }
#else
    int32_t k;
    for (; runs > 0; --runs, x += skip) {
        for (k = n; k > 0; --k, x += pixel) {
            const int32_t w0 = adaptc_read_s8x4(x);
            l0 = adaptc_sxtab16(l0, w0);
            l1 = adaptc_sxtab16_ror8(l1, w0);
            if (eight) {
                const int32_t w1 = adaptc_read_s8x4(x + 4);
                l2 = adaptc_sxtab16(l2, w1);
                l3 = adaptc_sxtab16_ror8(l3, w1);
            }
        }
    }
#endif
    l[0] = l0;
    l[1] = l1;
    l[2] = l2;
    l[3] = l3;
    return x;
}

/* The lanes of a block into the int32 sums (of four channels: lanes 2 and 3 are 0), and back to 0. */
static ADAPTC_INLINE void adaptc_avgpool_flush(int32_t *l, int32_t *sums)
{
    sums[0] += (int32_t)((uint32_t)l[0] << 16) >> 16;
    sums[1] += (int32_t)((uint32_t)l[1] << 16) >> 16;
    sums[2] += l[0] >> 16;
    sums[3] += l[1] >> 16;
    sums[4] += (int32_t)((uint32_t)l[2] << 16) >> 16;
    sums[5] += (int32_t)((uint32_t)l[3] << 16) >> 16;
    sums[6] += l[2] >> 16;
    sums[7] += l[3] >> 16;
    l[0] = l[1] = l[2] = l[3] = 0;
}

/* sums[k] = the sum of channel k of the eight (or four: sums[4..7] 0) channels at `in` over the
 * window: runs runs of len >= 1 elements (pixel bytes apart; the runs row bytes apart), in blocks
 * of per runs (len <= 256) or of 256 elements (len > 256).  A function of its own, so that the
 * assembly loop's eleven registers are free -- the frame pointer too, where a build keeps one
 * (r7; as fully_connected_s8_dsp.c's FC_DSP_FUNCTION). */
#if ADAPTC_DSP_ASM && defined(__GNUC__) && !defined(__clang__)
#define ADAPTC_AVGPOOL_FUNCTION static __attribute__((noinline, unused, optimize("omit-frame-pointer")))
#else
#define ADAPTC_AVGPOOL_FUNCTION static ADAPTC_NOINLINE
#endif
ADAPTC_AVGPOOL_FUNCTION void adaptc_avgpool_group(const int8_t *in, int32_t eight, int32_t runs, int32_t len,
                                                  int32_t per, int32_t pixel, int32_t row, int32_t *sums)
{
    int32_t l[4] = {0, 0, 0, 0};
    int32_t r;
    sums[0] = sums[1] = sums[2] = sums[3] = sums[4] = sums[5] = sums[6] = sums[7] = 0;
    if (len <= 256) {
        const int32_t skip = row - len * pixel;
        for (r = runs; r > 0; r -= per) {
            in = adaptc_avgpool_runs(in, r < per ? r : per, len, skip, pixel, eight, l);
            adaptc_avgpool_flush(l, sums);
        }
    } else {
        for (r = runs; r > 0; --r, in += row) {
            const int8_t *x = in;
            int32_t left;
            for (left = len; left > 0; left -= 256) {
                x = adaptc_avgpool_runs(x, 1, left < 256 ? left : 256, 0, pixel, eight, l);
                adaptc_avgpool_flush(l, sums);
            }
        }
    }
}

/* avg_pool_s8's rounding division of a sum by count (> 0) and the clamp */
static ADAPTC_INLINE int8_t adaptc_avgpool_out(int32_t acc, int32_t count, int32_t act_min, int32_t act_max)
{
    if (count > 0) {
        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
    }
    return (int8_t)adaptc_clamp_i32(acc, act_min, act_max);
}

static void avg_pool_s8_dsp(const pool_s8_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels, act_min = p->act_min, act_max = p->act_max;
    const int32_t pixel = channels, row = p->in_w * pixel;
    int32_t batch, out_y, out_x, c, k, r, n, width = 8;
    for (batch = 0; batch < p->batches; ++batch) {
        const int8_t *const image = input + batch * p->in_h * row;
        for (out_y = 0; out_y < p->out_h; ++out_y) {
            for (out_x = 0; out_x < p->out_w; ++out_x) {
                const adaptc_pool_window w = adaptc_pool_window_at(p, image, out_y, out_x);
                const int32_t per = w.len > 0 && w.len <= 256 ? 256 / w.len : 1;
                /* octets, then a quad where channels % 8 >= 4 */
                for (c = 0; c + 4 <= channels; c += width, output += width) {
                    int32_t sums[8];
                    width = c + 8 <= channels ? 8 : 4;
                    adaptc_avgpool_group(w.first + c, width == 8, w.runs, w.len, per, pixel, row, sums);
                    for (k = 0; k < width; ++k) {
                        output[k] = adaptc_avgpool_out(sums[k], w.count, act_min, act_max);
                    }
                }
                for (; c < channels; ++c, ++output) {
                    const int8_t *in_run = w.first + c;
                    int32_t acc = 0;
                    for (r = 0; r < w.runs; ++r, in_run += row) {
                        const int8_t *x = in_run;
                        for (n = 0; n < w.len; ++n, x += pixel) {
                            acc += *x;
                        }
                    }
                    *output = adaptc_avgpool_out(acc, w.count, act_min, act_max);
                }
            }
        }
    }
}
