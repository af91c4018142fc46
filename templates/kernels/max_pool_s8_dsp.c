/*
 * MAX_POOL_2D, int8: DSP-extension drop-in for max_pool_s8 -- the same arguments and, bit for
 * bit, the same results (TFLite reference_integer_ops::MaxPool (int8),
 * tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h).
 *
 * Layout: input  NHWC [batches][in_h][in_w][channels]    int8
 *         output NHWC [batches][out_h][out_w][channels]  int8: as max_pool_s8.
 * Arithmetic: as max_pool_s8 -- the max over the in-bounds window elements starting from -128,
 *   clamped to [act_min, act_max] -- four channels a word.  Per output pixel the in-bounds window
 *   is `runs` runs of `len` elements `pixel` bytes apart, the runs `row` bytes apart (dsp.h
 *   adaptc_pool_window_at: its rows, or one run where it spans the input's whole width).  The
 *   channels go eight at a time (an octet: two words an element), then four (a quad: one word), then the
 *   last channels % 4 one at a time over the same runs.  A word of four channels (any alignment)
 *   keeps a running byte-wise max from 0x80808080 (four -128; dsp.h adaptc_max_s8x4: SSUB8 +
 *   SEL), then is clamped byte-wise (adaptc_max_s8x4 with act_min, adaptc_min_s8x4 with act_max
 *   in each byte) and stored as one word (adaptc_write_u8x4).  Optimized builds on a DSP core
 *   run the window's runs in assembly (ADAPTC_DSP_ASM): 9 instructions an octet element, 6 a
 *   quad element, 4 a run.
 */

/* The byte-wise running maxima m[0] (channels 0..3) and m[1] (4..7, for eight channels) over
 * `runs` >= 1 runs of n >= 1 elements from x, pixel bytes apart, each run followed by a jump of
 * skip bytes to the next. */
static ADAPTC_INLINE void adaptc_maxpool_runs(const int8_t *x, int32_t runs, int32_t n, int32_t skip, int32_t pixel,
                                              int32_t eight, int32_t *m)
{
    int32_t m0 = m[0], m1 = m[1];
#if ADAPTC_DSP_ASM
    int32_t w, t, k;
    if (eight) {
        __asm__("2:\n\t"
                "mov     %[k], %[n]\n"
                "1:\n\t"
                "ldr     %[w], [%[x], #4]\n\t"
                "ssub8   %[t], %[w], %[m1]\n\t"
                "sel     %[m1], %[w], %[m1]\n\t"
                "ldr     %[w], [%[x]]\n\t"
                "add     %[x], %[x], %[pixel]\n\t"
                "ssub8   %[t], %[w], %[m0]\n\t"
                "sel     %[m0], %[w], %[m0]\n\t"
                "subs    %[k], %[k], #1\n\t"
                "bne     1b\n\t"
                "add     %[x], %[x], %[skip]\n\t"
                "subs    %[runs], %[runs], #1\n\t"
                "bne     2b"
                : [x] "+&r"(x), [runs] "+&r"(runs), [m0] "+&r"(m0), [m1] "+&r"(m1), [w] "=&r"(w), [t] "=&r"(t),
                  [k] "=&r"(k)
                : [n] "r"(n), [skip] "r"(skip), [pixel] "r"(pixel)
                : "cc", "memory");
    } else {
        __asm__("2:\n\t"
                "mov     %[k], %[n]\n"
                "1:\n\t"
                "ldr     %[w], [%[x]]\n\t"
                "add     %[x], %[x], %[pixel]\n\t"
                "ssub8   %[t], %[w], %[m0]\n\t"
                "sel     %[m0], %[w], %[m0]\n\t"
                "subs    %[k], %[k], #1\n\t"
                "bne     1b\n\t"
                "add     %[x], %[x], %[skip]\n\t"
                "subs    %[runs], %[runs], #1\n\t"
                "bne     2b"
                : [x] "+&r"(x), [runs] "+&r"(runs), [m0] "+&r"(m0), [w] "=&r"(w), [t] "=&r"(t), [k] "=&r"(k)
                : [n] "r"(n), [skip] "r"(skip), [pixel] "r"(pixel)
                : "cc", "memory");
    }
#else
    int32_t k;
    for (; runs > 0; --runs, x += skip) {
        for (k = n; k > 0; --k, x += pixel) {
            m0 = adaptc_max_s8x4(adaptc_read_s8x4(x), m0);
            if (eight) {
                m1 = adaptc_max_s8x4(adaptc_read_s8x4(x + 4), m1);
            }
        }
    }
#endif
    m[0] = m0;
    m[1] = m1;
}

static void max_pool_s8_dsp(const pool_s8_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels, act_min = p->act_min, act_max = p->act_max;
    /* act_min, act_max (within int8: the same clamp of an int8 max) in each byte */
    const int32_t lo = (int32_t)(((uint32_t)adaptc_clamp_i32(act_min, -128, 127) & 0xFFu) * 0x01010101u);
    const int32_t hi = (int32_t)(((uint32_t)adaptc_clamp_i32(act_max, -128, 127) & 0xFFu) * 0x01010101u);
    const int32_t pixel = channels, row = p->in_w * pixel;
    int32_t batch, out_y, out_x, c, r, n, width = 8;
    for (batch = 0; batch < p->batches; ++batch) {
        const int8_t *const image = input + batch * p->in_h * row;
        for (out_y = 0; out_y < p->out_h; ++out_y) {
            for (out_x = 0; out_x < p->out_w; ++out_x) {
                const adaptc_pool_window w = adaptc_pool_window_at(p, image, out_y, out_x);
                const int32_t skip = row - w.len * pixel;   /* from a run's end to the next run */
                /* octets, then a quad where channels % 8 >= 4 */
                for (c = 0; c + 4 <= channels; c += width, output += width) {
                    int32_t m[2] = {(int32_t)0x80808080u, (int32_t)0x80808080u};   /* four -128 each */
                    width = c + 8 <= channels ? 8 : 4;
                    if (w.runs > 0) {
                        adaptc_maxpool_runs(w.first + c, w.runs, w.len, skip, pixel, width == 8, m);
                    }
                    adaptc_write_u8x4(output, (uint32_t)adaptc_min_s8x4(adaptc_max_s8x4(m[0], lo), hi));
                    if (width == 8) {
                        adaptc_write_u8x4(output + 4, (uint32_t)adaptc_min_s8x4(adaptc_max_s8x4(m[1], lo), hi));
                    }
                }
                for (; c < channels; ++c, ++output) {
                    const int8_t *in_run = w.first + c;
                    int32_t max = INT8_MIN;
                    for (r = 0; r < w.runs; ++r, in_run += row) {
                        const int8_t *x = in_run;
                        for (n = 0; n < w.len; ++n, x += pixel) {
                            if (*x > max) {
                                max = *x;
                            }
                        }
                    }
                    *output = (int8_t)adaptc_clamp_i32(max, act_min, act_max);
                }
            }
        }
    }
}
