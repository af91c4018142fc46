/*
 * LOG_SOFTMAX, int8, over the last axis (output scale 16/256, zero point 127).
 * Mirrors TFLite reference_ops::LogSoftmaxQuantized
 * (tensorflow/lite/kernels/internal/reference/log_softmax.h) with
 * log_x_for_x_greater_than_or_equal_to_1 (kernels/internal/common.h) and TFLite Micro's prepare
 * (PreprocessLogSoftmaxScalingExp, beta 1): adaptc.fixedpoint.log_softmax_params.
 *
 * Layout: input, output [rows][depth] int8;
 *         exp_table [256] int32: Rescale<12>(exp(diff_q5[d])) of the difference -d (0 below diff_min);
 *         diff_q5 [256] int32: MultiplyByQuantizedMultiplier(-d, input multiplier, left shift), Q5.26.
 * Arithmetic: per row d = max - x; sum = sum exp_table[d] (Q12.19); log = ln(sum) in Q5.26;
 *   adjusted = max(diff_min - 1, MBQM(log + INT32_MIN, reverse_multiplier, reverse_shift));
 *   output = -d > adjusted ? clamp8(RoundingDivideByPOT(diff_q5[d] - log, 22) + 127) : -128.
 */
typedef struct {
    int32_t rows;
    int32_t depth;
    int32_t reverse_multiplier;
    int32_t reverse_shift;
    int32_t diff_min;
    const int32_t *exp_table;
    const int32_t *diff_q5;
} log_softmax_s8_params;

/* SaturatingRoundingMultiplyByPOTParam for a run-time exponent, 0 <= exponent <= 31
 * (adaptc_sat_shift_left takes 0 < exponent < 31) */
static int32_t log_softmax_s8_lshift(int32_t x, int32_t exponent)
{
    const int64_t threshold = ((int64_t)1 << (31 - exponent)) - 1;
    if ((int64_t)x > threshold) {
        return INT32_MAX;
    }
    if ((int64_t)x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t log_softmax_s8_sat_add(int64_t sum)
{
    return sum > INT32_MAX ? INT32_MAX : (sum < INT32_MIN ? INT32_MIN : (int32_t)sum);
}

/* log_x_for_x_greater_than_or_equal_to_1<5> of a Q12.19 value >= 1: ln(x) in Q5.26 */
static int32_t log_softmax_s8_log(int32_t x)
{
    const int32_t accum = 6, quarter = 536870912 >> 6;    /* Rescale<6>(1/4), exact */
    const int32_t za_h1 = adaptc_clz_u32((uint32_t)x);
    const int32_t r_a = log_softmax_s8_lshift(adaptc_srdhm(log_softmax_s8_lshift(x, za_h1 - 1), 1518500250), 1);
    const int32_t za_adj = log_softmax_s8_sat_add((int64_t)adaptc_sat_shift_left(12 - za_h1, 31 - accum) + quarter);
    const int32_t z_b = adaptc_srdhm(x, 1518500250);
    const int32_t zb_h = adaptc_clz_u32((uint32_t)z_b) - 1;
    const int32_t r_b = log_softmax_s8_lshift(x, zb_h);
    const int32_t zb_adj = log_softmax_s8_sat_add((int64_t)adaptc_sat_shift_left(12 - zb_h, 31 - accum) - quarter);
    const int32_t r = r_a < r_b ? r_a : r_b;
    const int32_t z_adj = za_adj > zb_adj ? za_adj : zb_adj;
    const int32_t p = adaptc_rounding_half_sum(r, 1805811301);
    int32_t q, common_sq, num, denom, total;
    q = (int32_t)((uint32_t)r - 1805811301u);
    q = (int32_t)((uint32_t)q + (uint32_t)q);
    common_sq = adaptc_srdhm(q, q);
    num = (int32_t)((uint32_t)adaptc_srdhm(q, r) + (uint32_t)adaptc_srdhm(adaptc_srdhm(q, common_sq), 117049297));
    denom = (int32_t)((uint32_t)adaptc_srdhm(p, (int32_t)(1057819769u + (uint32_t)q +
                                                          (uint32_t)adaptc_srdhm(127690142, common_sq))) +
                      (uint32_t)adaptc_srdhm(638450708, q));
    total = (int32_t)((uint32_t)adaptc_srdhm(z_adj, 1488522236) +
                      (uint32_t)adaptc_srdhm(adaptc_rdbpot(num, accum),
                                             adaptc_one_over_one_plus_x_for_x_in_0_1(denom)));
    return adaptc_sat_shift_left(total, 1);
}

static void log_softmax_s8(const log_softmax_s8_params *p, const int8_t *input, int8_t *output)
{
    int32_t r, c;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = input + r * p->depth;
        int8_t *y = output + r * p->depth;
        int32_t max = -128, sum = 0, log_sum, adjusted;
        for (c = 0; c < p->depth; ++c) {
            max = x[c] > max ? x[c] : max;
        }
        for (c = 0; c < p->depth; ++c) {
            sum += p->exp_table[max - x[c]];
        }
        log_sum = log_softmax_s8_log(sum);
        adjusted = adaptc_mbqm((int32_t)((int64_t)log_sum + INT32_MIN), p->reverse_multiplier, p->reverse_shift);
        adjusted = adjusted > p->diff_min - 1 ? adjusted : p->diff_min - 1;
        for (c = 0; c < p->depth; ++c) {
            const int32_t d = max - x[c];
            y[c] = -d > adjusted ? (int8_t)adaptc_clamp_i32(
                       adaptc_rdbpot((int32_t)((uint32_t)p->diff_q5[d] - (uint32_t)log_sum), 22) + 127, -128, 127)
                                 : (int8_t)-128;
        }
    }
}
