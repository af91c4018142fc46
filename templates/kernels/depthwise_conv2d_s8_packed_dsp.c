/*
 * DEPTHWISE_CONV_2D with packed low-bit weights of int8 range (pot2 .. pot4, int4;
 * adaptc.formats), depth_multiplier 1: DSP-extension drop-in for depthwise_conv2d_s8_packed --
 * the filter decoded once per call into the arena, in depthwise_conv2d_s8_dsp's layout, then
 * depthwise_conv2d_s8_dsp on it.  Bit for bit the results of depthwise_conv2d_s8_packed (TFLite
 * reference_integer_ops::DepthwiseConvPerChannel on the decoded weights).
 *
 * Layout: input, output, channels: as depthwise_conv2d_s8_dsp;
 *         filter: depthwise_conv2d_s8_dsp's filter bytes (per four channels their taps, four
 *         channel bytes a word; then the last channels % 4), `codes` of them, as one bitstream
 *         of p->bits-bit codes (common.h adaptc_next_code);
 *         p->scratch: the decoded filter (filter_bytes, a whole number of words), then
 *         depthwise_conv2d_s8_dsp's scratch.
 * Arithmetic: each code decoded to its int8 value (pot codes: +-2^(m-1) by a shift), then
 *   depthwise_conv2d_s8_dsp.
 */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t right_shifts;   /* as depthwise_conv2d_s8_dsp's: 1 the fast requantization, 0 adaptc_rq_exact */
    int32_t bits;
    int32_t kind;
    int32_t codes;          /* filter bytes coded */
    int32_t filter_bytes;   /* codes rounded up to a whole word */
    int8_t *scratch;        /* arena: filter_bytes of decoded filter, then depthwise_conv2d_s8_dsp's */
} depthwise_conv2d_s8_packed_dsp_params;

static void depthwise_conv2d_s8_packed_dsp(const depthwise_conv2d_s8_packed_dsp_params *p, const int8_t *input,
                                           const uint8_t *filter, const int32_t *channels, int8_t *output)
{
    int8_t *const decoded = p->scratch;
    const int32_t bits = p->bits, kind = p->kind;
    depthwise_conv2d_s8_dsp_params d;
    adaptc_codes codes;
    int32_t k;
    codes.byte = filter;
    codes.bit = 0;
    for (k = 0; k < p->codes; ++k) {
        const int32_t m = adaptc_decode(adaptc_next_code(&codes, bits), bits, kind);
        decoded[k] = (int8_t)(kind == 0 ? m : m > 0 ? 1 << (m - 1) : m < 0 ? -(1 << (-m - 1)) : 0);
    }
    for (; k < p->filter_bytes; ++k) {
        decoded[k] = 0;
    }
    d.batches = p->batches;
    d.in_h = p->in_h;
    d.in_w = p->in_w;
    d.in_c = p->in_c;
    d.out_h = p->out_h;
    d.out_w = p->out_w;
    d.k_h = p->k_h;
    d.k_w = p->k_w;
    d.stride_h = p->stride_h;
    d.stride_w = p->stride_w;
    d.dil_h = p->dil_h;
    d.dil_w = p->dil_w;
    d.pad_top = p->pad_top;
    d.pad_left = p->pad_left;
    d.input_offset = p->input_offset;
    d.output_offset = p->output_offset;
    d.act_min = p->act_min;
    d.act_max = p->act_max;
    d.right_shifts = p->right_shifts;
    d.scratch = decoded + p->filter_bytes;
    depthwise_conv2d_s8_dsp(&d, input, (const int32_t *)(const void *)decoded, channels, output);
}
