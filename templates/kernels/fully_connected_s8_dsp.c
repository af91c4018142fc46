/*
 * FULLY_CONNECTED, int8, symmetric weights (filter_offset 0): DSP-extension drop-in for
 * fully_connected_s8, bit for bit its results (TFLite reference_integer_ops::FullyConnected
 * [PerChannel]) for any layer; the builder (targets/cortex_m/kernels/fully_connected.py) lays
 * out the arrays and picks the requantization.
 *
 * Layout: input [batches][in_features], output [batches][out_features]: as fully_connected_s8;
 *         weights: each row zero-padded to groups = ceil(in_features / 4) words of four int8
 *         (dsp.h's row layout); the rows of each quad of outputs 4q .. 4q + 3 interleaved word
 *         by word, [quad][group][4] words, then the last out_features % 4 rows one after the
 *         other, [row][group] -- the bytes of fully_connected_s8's weights, reordered;
 *         channels: per quad {bias x 4, then {mult, shift field} x 4} (12 words), then per
 *         last row {bias, mult, shift field} (bias 0 if none); the shift field is -shift - 1
 *         (>= 0) for rq_mode 2, TFLite's shift otherwise;
 *         p->scratch: one column of the input, 2 * groups words.
 * Arithmetic: per batch row, the input is converted once to int16 (input + input_offset) in the
 *   SXTB16 order of dsp.h; four outputs at a time share each column word -- per group of four
 *   inputs an LDRD of the column, an LDM of the quad's four weight words, 8 SXTB16, 8 SMLAD --
 *   and the last rows go one at a time (adaptc_dot_row); acc = bias + sum, then per rq_mode
 *   (fc_dsp_out) requantized, + output_offset, saturated to int8, clamped to [act_min, act_max].
 *   The sums wrap modulo 2^32 like the reference kernel's int32 accumulator.
 */
typedef struct {
    int32_t batches;
    int32_t in_features;
    int32_t out_features;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t rq_mode;        /* fc_dsp_out: 2, 1 (the builder proved the fast forms exact) or 0 */
    int32_t *scratch;       /* arena: one column of the input, 8 * ceil(in_features / 4) bytes */
} fully_connected_s8_dsp_params;

/* An output of accumulator acc, record fields mult and sh (the shift field), before the clamp:
 *   rq_mode 2 (every shift < 0 and |acc| < 2^30, proven): adaptc_rq_right with r = -shift =
 *     sh + 1 -- u = s + (s < 0 ? -1 : 0), s = SMMULR(2 acc, mult); floor((u + 2^(r-1)) / 2^r) =
 *     floor((floor(u / 2^(r-1)) + 1) / 2), so + output_offset folds into the + 1 and the last
 *     halving into SSAT's shift: ssat8(((u >> sh) + 2 output_offset + 1) >> 1);
 *   rq_mode 1 (|acc << max(shift, 0)| < 2^30, proven): adaptc_rq;
 *   rq_mode 0 (any accumulator): adaptc_rq_exact;
 * + output_offset (modulo 2^32, as the reference's int32), saturated to int8. */
static inline int32_t fc_dsp_out(int32_t acc, int32_t mult, int32_t sh, int32_t rq_mode, int32_t output_offset)
{
    int32_t v;
    if (rq_mode == 2) {
        const int32_t s = adaptc_smmulr((int32_t)((uint32_t)acc << 1), mult);
        return adaptc_ssat8((((s + (s >> 31)) >> sh) + 2 * output_offset + 1) >> 1);
    }
    v = rq_mode ? adaptc_rq(acc, mult, sh) : adaptc_rq_exact(acc, mult, sh);
    return adaptc_ssat8((int32_t)((uint32_t)v + (uint32_t)output_offset));
}

/* The assembly below: GCC inline assembly with every operand in a register of its own choosing
 * (r0 .. r12 and lr), so that the weight words come in one LDM (its register list ascending);
 * a build without optimisation, which may keep r7 for a frame pointer, takes the C. */
#if ADAPTC_HAVE_DSP && defined(__OPTIMIZE__)
#define FC_DSP_ASM 1
#else
#define FC_DSP_ASM 0
#endif
#if FC_DSP_ASM && defined(__GNUC__) && !defined(__clang__)
#define FC_DSP_FUNCTION static __attribute__((noinline, unused, optimize("omit-frame-pointer")))
#else
#define FC_DSP_FUNCTION static ADAPTC_NOINLINE
#endif

#if FC_DSP_ASM
/* One weight word W of the quad against the column's two words into ACC (operands of the loops
 * below: t the halves of W, x0 = (x0, x2), x1 = (x1, x3)). */
#define FC_DSP_WORD(W, ACC) \
    "sxtb16 %[t], %[" W "]\n\t" \
    "smlad  %[" ACC "], %[t], %[x0], %[" ACC "]\n\t" \
    "sxtb16 %[t], %[" W "], ror #8\n\t" \
    "smlad  %[" ACC "], %[t], %[x1], %[" ACC "]\n\t"

/* One group of four inputs: 18 instructions for 16 MACs. */
#define FC_DSP_GROUP \
    "ldrd   %[x0], %[x1], [%[px]], #8\n\t" \
    "ldm    %[pw]!, {%[w0], %[w1], %[w2], %[w3]}\n\t" \
    FC_DSP_WORD("w0", "a0") \
    FC_DSP_WORD("w1", "a1") \
    FC_DSP_WORD("w2", "a2") \
    FC_DSP_WORD("w3", "a3")

/* A quad's sums over the column from px: N groups an iteration (FC_DSP_GROUPS_N) while
 * px != end (the end of the column's whole N's), then one at a time up to the column's end
 * (memory operand end1). */
#define FC_DSP_GROUPS_4 FC_DSP_GROUP FC_DSP_GROUP FC_DSP_GROUP FC_DSP_GROUP
#define FC_DSP_GROUPS_8 FC_DSP_GROUPS_4 FC_DSP_GROUPS_4
#define FC_DSP_QUAD_LOOP(GROUPS_N) \
    "cmp    %[px], %[end]\n\t" \
    "beq    2f\n" \
    "1:\n\t" \
    GROUPS_N \
    "cmp    %[px], %[end]\n\t" \
    "bne    1b\n" \
    "2:\n\t" \
    "ldr    %[end], %[end1]\n\t" \
    "cmp    %[px], %[end]\n\t" \
    "beq    4f\n" \
    "3:\n\t" \
    FC_DSP_GROUP \
    "cmp    %[px], %[end]\n\t" \
    "bne    3b\n" \
    "4:\n\t"

/* Requantize ACC as fc_dsp_out's rq_mode 2 (MULT, SH: its record's fields, x1 = 2 output_offset
 * + 1) and store it at x0++. */
#define FC_DSP_RQ(ACC, MULT, SH) \
    "lsl    %[" ACC "], %[" ACC "], #1\n\t" \
    "smmulr %[" ACC "], %[" ACC "], %[" MULT "]\n\t" \
    "add    %[" ACC "], %[" ACC "], %[" ACC "], asr #31\n\t" \
    "asr    %[" ACC "], %[" ACC "], %[" SH "]\n\t" \
    "add    %[" ACC "], %[" ACC "], %[x1]\n\t" \
    "ssat   %[" ACC "], #8, %[" ACC "], asr #1\n\t" \
    "strb   %[" ACC "], [%[x0]], #1\n\t"

/* The operands of the loops, each in its register */
#define FC_DSP_REGISTERS \
    register int32_t a0 __asm__("r0"); \
    register int32_t a1 __asm__("r1"); \
    register int32_t a2 __asm__("r2"); \
    register int32_t a3 __asm__("r3"); \
    register int32_t x0 __asm__("r4"); \
    register int32_t x1 __asm__("r5"); \
    register const int32_t *pw __asm__("r6") = w; \
    register const int32_t *px __asm__("r7"); \
    register int32_t w0 __asm__("r8"); \
    register int32_t w1 __asm__("r9"); \
    register int32_t w2 __asm__("r10"); \
    register int32_t w3 __asm__("r11"); \
    register int32_t t __asm__("r12"); \
    register const int32_t *end __asm__("lr");
#define FC_DSP_OPERANDS \
    [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [x0] "=&r"(x0), [x1] "=&r"(x1), \
    [pw] "+&r"(pw), [px] "=&r"(px), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), \
    [t] "=&r"(t), [end] "=&r"(end)
#endif

/* acc[k] += <weights of quad row k, column>, k < 4, for one quad (w: groups x 4 words
 * interleaved, col: 2 * groups words); a DSP core runs four groups an iteration in assembly. */
FC_DSP_FUNCTION void fc_dsp_quad(const int32_t *w, const int32_t *col, int32_t groups, int32_t *acc)
{
#if FC_DSP_ASM
    const int32_t *const end4 = col + 8 * (groups / 4), *const end1 = col + 2 * groups;
    FC_DSP_REGISTERS
    __asm__ volatile(
            "ldr    %[px], %[col]\n\t"
            "ldr    %[end], %[end4]\n\t"
            "ldr    %[t], %[acc]\n\t"
            "ldm    %[t], {%[a0], %[a1], %[a2], %[a3]}\n\t"
            FC_DSP_QUAD_LOOP(FC_DSP_GROUPS_4)
            "ldr    %[t], %[acc]\n\t"
            "stm    %[t], {%[a0], %[a1], %[a2], %[a3]}"
            : FC_DSP_OPERANDS
            : [col] "m"(col), [end4] "m"(end4), [end1] "m"(end1), [acc] "m"(acc)
            : "cc", "memory");
#else
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], g;
    for (g = 0; g < groups; ++g) {
        const int32_t x0 = col[2 * g], x1 = col[2 * g + 1];
        a0 = adaptc_smlad(adaptc_sxtb16_ror8(w[0]), x1, adaptc_smlad(adaptc_sxtb16(w[0]), x0, a0));
        a1 = adaptc_smlad(adaptc_sxtb16_ror8(w[1]), x1, adaptc_smlad(adaptc_sxtb16(w[1]), x0, a1));
        a2 = adaptc_smlad(adaptc_sxtb16_ror8(w[2]), x1, adaptc_smlad(adaptc_sxtb16(w[2]), x0, a2));
        a3 = adaptc_smlad(adaptc_sxtb16_ror8(w[3]), x1, adaptc_smlad(adaptc_sxtb16(w[3]), x0, a3));
        w += 4;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#endif
}

/* The outputs of `quads` quads in rq_mode 2, 4 q .. 4 q + 3 at out + 4 q: fc_dsp_quad from the
 * biases of the quad's records (12 words each), then fc_dsp_out.  A DSP core runs it all in
 * assembly: per quad 146 instructions per eight groups (9 loads, 64 SXTB16 / SMLAD, a compare
 * and branch), 20 per group left over, 7 per output to requantize and store, 19 around them. */
FC_DSP_FUNCTION void fc_dsp_quads_rq(const int32_t *w, const int32_t *col, int32_t groups, int32_t quads,
                                            const int32_t *rec, int32_t output_offset, int8_t *out)
{
#if FC_DSP_ASM
    const int32_t *const end8 = col + 16 * (groups / 8), *const end1 = col + 2 * groups;
    const int32_t *const rec_end = rec + 12 * quads;
    const int32_t k = 2 * output_offset + 1;
    FC_DSP_REGISTERS
    if (quads <= 0) {
        return;
    }
    __asm__ volatile(
            "0:\n\t"
            "ldr    %[t], %[rec]\n\t"
            "ldm    %[t]!, {%[a0], %[a1], %[a2], %[a3]}\n\t"
            "str    %[t], %[rec]\n\t"
            "ldr    %[px], %[col]\n\t"
            "ldr    %[end], %[end8]\n\t"
            FC_DSP_QUAD_LOOP(FC_DSP_GROUPS_8)
            /* t = the quad's {mult, shift field} x 4, x0 = out, x1 = 2 output_offset + 1 */
            "ldr    %[t], %[rec]\n\t"
            "ldr    %[x0], %[out]\n\t"
            "ldr    %[x1], %[k]\n\t"
            "ldm    %[t]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"
            FC_DSP_RQ("a0", "w0", "w1")
            FC_DSP_RQ("a1", "w2", "w3")
            "ldm    %[t]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"
            FC_DSP_RQ("a2", "w0", "w1")
            FC_DSP_RQ("a3", "w2", "w3")
            "str    %[t], %[rec]\n\t"
            "str    %[x0], %[out]\n\t"
            "ldr    %[x1], %[rec_end]\n\t"
            "cmp    %[t], %[x1]\n\t"
            "bne    0b"
            : FC_DSP_OPERANDS, [rec] "+m"(rec), [out] "+m"(out)
            : [col] "m"(col), [end8] "m"(end8), [end1] "m"(end1), [k] "m"(k), [rec_end] "m"(rec_end)
            : "cc", "memory");
#else
    int32_t q, acc[4];
    for (q = 0; q < quads; ++q) {
        acc[0] = rec[0];
        acc[1] = rec[1];
        acc[2] = rec[2];
        acc[3] = rec[3];
        fc_dsp_quad(w, col, groups, acc);
        out[0] = (int8_t)fc_dsp_out(acc[0], rec[4], rec[5], 2, output_offset);
        out[1] = (int8_t)fc_dsp_out(acc[1], rec[6], rec[7], 2, output_offset);
        out[2] = (int8_t)fc_dsp_out(acc[2], rec[8], rec[9], 2, output_offset);
        out[3] = (int8_t)fc_dsp_out(acc[3], rec[10], rec[11], 2, output_offset);
        w += 4 * groups;
        rec += 12;
        out += 4;
    }
#endif
}

/* The column of n int8 values at src (any alignment), dsp.h's layout with stride 2: as
 * adaptc_col_from_s8, two groups an iteration. */
static inline void fc_dsp_column(int32_t *col, const int8_t *src, int32_t n, int32_t input_offset)
{
    const int32_t offset2 = adaptc_offset2(input_offset);
    const int8_t *const end = src + 8 * (n / 8);
    while (src != end) {
        const int32_t u = adaptc_read_s8x4(src), v = adaptc_read_s8x4(src + 4);
        col[0] = adaptc_sxtab16(offset2, u);
        col[1] = adaptc_sxtab16_ror8(offset2, u);
        col[2] = adaptc_sxtab16(offset2, v);
        col[3] = adaptc_sxtab16_ror8(offset2, v);
        col += 4;
        src += 8;
    }
    adaptc_col_from_s8(col, 2, src, n % 8, input_offset);
}

/* out[k] = fc_dsp_out(acc[k], fields[stride k], fields[stride k + 1]) for k < n: the outputs
 * of fc_dsp_quad and adaptc_dot_row, in one place. */
static ADAPTC_NOINLINE void fc_dsp_outputs(const int32_t *acc, int32_t n, const int32_t *fields, int32_t stride,
                                           int32_t rq_mode, int32_t output_offset, int8_t *out)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        out[k] = (int8_t)fc_dsp_out(acc[k], fields[0], fields[1], rq_mode, output_offset);
        fields += stride;
    }
}

static void fully_connected_s8_dsp(const fully_connected_s8_dsp_params *p, const int8_t *input, const int32_t *weights,
                                   const int32_t *channels, int8_t *output)
{
    const int32_t groups = (p->in_features + 3) / 4;
    const int32_t quads = p->out_features / 4;
    int32_t *const col = p->scratch;
    int32_t b, o;
    for (b = 0; b < p->batches; ++b) {
        int8_t *const out = output + b * p->out_features;
        const int32_t *w = weights, *rec = channels;
        fc_dsp_column(col, input + b * p->in_features, p->in_features, p->input_offset);
        if (p->rq_mode == 2) {
            fc_dsp_quads_rq(w, col, groups, quads, rec, p->output_offset, out);
            w += 4 * quads * groups;
            rec += 12 * quads;
            o = 4 * quads;
        } else {
            for (o = 0; o < 4 * quads; o += 4) {
                int32_t acc[4];
                memcpy(acc, rec, sizeof acc);
                fc_dsp_quad(w, col, groups, acc);
                fc_dsp_outputs(acc, 4, rec + 4, 2, p->rq_mode, p->output_offset, out + o);
                w += 4 * groups;
                rec += 12;
            }
        }
        for (; o < p->out_features; ++o) {
            const int32_t acc = adaptc_dot_row(w, col, groups, rec[0]);
            fc_dsp_outputs(&acc, 1, rec + 1, 3, p->rq_mode, p->output_offset, out + o);
            w += groups;
            rec += 3;
        }
        adaptc_clamp_s8(out, p->out_features, p->act_min, p->act_max);
    }
}
