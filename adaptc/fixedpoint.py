"""TFLite / gemmlowp fixed-point arithmetic, exactly, in three forms.

1. Compile-time constants (plain Python / NumPy): ``quantize_multiplier`` and the tables that the
   C kernels and the Relax composites share (softmax exponentials, int8 lookup tables).
2. NumPy reference arithmetic on int64 arrays holding int32 values (``srdhm``, ``rdbpot``,
   ``mbqm``, ...), used to compute those tables.
3. Relax emitters (``RelaxFixedPoint``) that build the same arithmetic from plain Relax integer
   ops inside a composite function's body, so that the Relax VM on llvm computes exactly what
   the C kernels compute.

Semantics follow TFLite's reference kernels in their default ("double rounding") build:
``MultiplyByQuantizedMultiplier(x, M, s) = RDBPOT(SRDHM(x << max(s, 0), M), max(-s, 0))``.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# ---------------------------------------------------------------------------------------------
# Compile-time constants
# ---------------------------------------------------------------------------------------------


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: real = mult * 2^(shift - 31), mult in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(abs(q) * (1 << 31) + 0.5)) * (1 if q >= 0 else -1)  # round half away
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """Vector form of :func:`quantize_multiplier`: int32 multipliers and shifts."""
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    return (np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32))


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """TFLite int8 MEAN's requantization with 1/count folded in (TFLM ``QuantizeMultiplier`` of
    in_scale / out_scale in doubles, then ``reference_ops::QuantizedMeanOrSum``):
    shift' = min(floor(log2 count), 32, 31 + shift), multiplier' = (multiplier << shift') // count
    (int64, truncating), shift = shift - shift'. MEAN = MultiplyByQuantizedMultiplier(sum -
    input_zp * count, multiplier', shift)."""
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    count = int(count)
    assert count > 0, "MEAN over an empty axis"
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << fold) // count, shift - fold


def round_away_f32(x: float) -> int:
    """``std::round`` of a float32 value (half away from zero), as TFLite computes act ranges."""
    x = np.float32(x)
    if not np.isfinite(x):
        return int(np.sign(x)) << 40  # beyond any int8/int32 range; callers clamp
    return int(np.sign(x) * np.floor(np.abs(np.float64(x)) + 0.5))   # exact: float32 + 0.5 fits a double


# ---------------------------------------------------------------------------------------------
# NumPy reference arithmetic (int64 arrays holding int32 values)
# ---------------------------------------------------------------------------------------------


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x) -> np.ndarray:
    """Wrap to int32 as two's complement hardware does."""
    return ((_i64(x) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul``."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division truncates toward zero
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, q)


def rdbpot(x, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT`` (exponent in 0..31)."""
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + ((x & mask) > threshold)


def saturating_lshift(x, exponent) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` (and TFLite's
    ``SaturatingRoundingMultiplyByPOTParam``) for exponents >= 0, an int or an array."""
    x, e = _i64(x), _i64(exponent)
    threshold = (np.int64(1) << (31 - e)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << e))


def mbqm(x, multiplier, shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (double rounding)."""
    shift = _i64(shift)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap32(_i64(x) << left), multiplier), right)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    x = a + (1 << 28)  # a + 1/8 in Q0.31
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    inner = rdbpot(srdhm(x4_over_4 + x3, 715827883) + x2, 1)  # 715827883 = 1/3 in Q0.31
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    return constant_term + srdhm(constant_term, x + inner)


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values_q5(a) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values`` for a Q5.26 input, result in Q0.31."""
    a = _i64(a)
    frac_bits = 26
    one_quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_lshift(a_mod_quarter_minus_one_quarter, 5))
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, multiplier in _EXP_BARREL:
        bit = (remainder & (1 << (frac_bits + exponent))) != 0
        result = np.where(bit, srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
SOFTMAX_ACCUMULATION_INTEGER_BITS = 12


def softmax_exp_table(input_scale: float, beta: float = 1.0) -> np.ndarray:
    """exp(-d * beta * input_scale) in Q0.31 for d = max_in_row - x in 0..255, as TFLite's
    int8 reference softmax computes it (0 where -d is below TFLite's ``diff_min``)."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(float(beta) * float(np.float32(input_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    assert left_shift >= 0, "softmax input scale too small for TFLite's int8 softmax"
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    diff = -np.arange(256, dtype=np.int64)
    rescaled = srdhm(wrap32(diff << left_shift), multiplier)
    table = exp_on_negative_values_q5(rescaled)
    return np.where(diff >= -radius, table, 0).astype(np.int32)


def softmax_reciprocal(sum_of_exps) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``GetReciprocal`` for a Q12.19 sum: (shifted_scale Q0.31, num_bits_over_unit)."""
    s = _i64(sum_of_exps)
    headroom_plus_one = 32 - np.floor(np.log2(np.maximum(s, 1))).astype(np.int64) - 1
    headroom_plus_one = np.where(s <= 0, 32, headroom_plus_one)
    num_bits_over_unit = SOFTMAX_ACCUMULATION_INTEGER_BITS - headroom_plus_one
    a = ((s << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    half_denominator = (a + INT32_MAX + 1) >> 1  # RoundingHalfSum(a, One), a >= 0
    x = 1515870810 + srdhm(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = x + saturating_lshift(srdhm(x, one_minus), 2)
    # Rescale<0>(ExactMulByPot<-1>(x)): the raw value is kept as Q1.30, then Q1.30 -> Q0.31
    return saturating_lshift(x, 1), num_bits_over_unit


def softmax_s8(x: np.ndarray, exp_table: np.ndarray) -> np.ndarray:
    """Reference int8 softmax over the last axis with a table from :func:`softmax_exp_table`."""
    xi = _i64(x)
    d = xi.max(axis=-1, keepdims=True) - xi
    e = _i64(exp_table)[d]
    scale, nbits = softmax_reciprocal(rdbpot(e, SOFTMAX_ACCUMULATION_INTEGER_BITS).sum(axis=-1, keepdims=True))
    out = rdbpot(srdhm(scale, e), nbits + 31 - 8) - 128
    return np.clip(out, -128, 127).astype(np.int8)


# gemmlowp's logistic and tanh on FixedPoint<int32, k> (fixedpoint/fixedpoint.h), and the int16
# pieces of TFLite's reference HARD_SWISH (kernels/internal/reference/hard_swish.h).


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values`` for a Q``integer_bits`` input (raw int32 values,
    a <= 0), result in Q0.31. For ``integer_bits == 5`` this is :func:`exp_on_negative_values_q5`."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    rescaled = a_mod_quarter_minus_one_quarter  # Rescale<0>: saturating multiply by 2^integer_bits
    if integer_bits > 0:
        rescaled = saturating_lshift(rescaled, integer_bits)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(rescaled)
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder & (1 << (frac_bits + exponent))) != 0
            result = np.where(bit, srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_of_half_denominator(a: np.ndarray) -> np.ndarray:
    """The Newton-Raphson loop shared by gemmlowp's ``one_over_one_plus_x_for_x_in_0_1`` and
    ``one_minus_x_over_one_plus_x_for_x_in_0_1``: x ~ 1 / ((1 + a) / 2) in Q2.29 for a Q0.31."""
    half_denominator = (_i64(a) + INT32_MAX + 1) >> 1  # RoundingHalfSum(a, One), a >= 0
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d
    for _ in range(3):
        one_minus_half_denominator_times_x = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + saturating_lshift(srdhm(x, one_minus_half_denominator_times_x), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: 1 / (1 + a), Q0.31 in and out."""
    # Rescale<0>(ExactMulByPot<-1>(x)): the Q2.29 raw read as Q1.30, then Q1.30 -> Q0.31.
    return saturating_lshift(_newton_reciprocal_of_half_denominator(a), 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp ``one_minus_x_over_one_plus_x_for_x_in_0_1``: (1 - a) / (1 + a), Q0.31."""
    x = _newton_reciprocal_of_half_denominator(a)
    return saturating_lshift(wrap32(x - (1 << 29)), 2)  # Rescale<0>(x - F2::One())


def logistic_fixed(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``logistic`` of a FixedPoint<int32, integer_bits> (raw values), result in Q0.31."""
    a = _i64(a)
    positive = a > 0
    abs_input = np.where(positive, a, wrap32(-a))
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(wrap32(-abs_input), integer_bits))
    result_if_negative = wrap32(INT32_MAX - result_if_positive)  # ResultF::One() - r
    return np.where(a == 0, 1 << 30, np.where(positive, result_if_positive, result_if_negative))


def tanh_fixed(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``tanh`` of a FixedPoint<int32, integer_bits> (raw values), result in Q0.31."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, wrap32(-a))
    # neg_tanh_on_negative_values: ExactMulByPot<1> reads the raw value as Q(integer_bits + 1).
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap32(-t), t))


def clz32(x) -> np.ndarray:
    """TFLite ``CountLeadingZeros`` of int32 values read as uint32 (32 for 0)."""
    u = _i64(x) & 0xFFFFFFFF
    return np.where(u == 0, 32, 31 - np.floor(np.log2(np.maximum(u, 1))).astype(np.int64))


def saturating_add32(a, b) -> np.ndarray:
    return np.clip(_i64(a) + _i64(b), INT32_MIN, INT32_MAX)


# log_x_for_x_greater_than_or_equal_to_1's Q0.31 constants (TFLite kernels/internal/common.h)
LOG_2, SQRT_SQRT_HALF, SQRT_HALF, ONE_QUARTER = 1488522236, 1805811301, 1518500250, 536870912
LOG_ALPHA_N, LOG_ALPHA_D, LOG_ALPHA_I, LOG_ALPHA_F = 117049297, 127690142, 1057819769, 638450708


def log_x_for_x_greater_than_or_equal_to_1(x, input_bits: int, output_bits: int) -> np.ndarray:
    """TFLite ``log_x_for_x_greater_than_or_equal_to_1<output_bits>`` of FixedPoint<int32,
    input_bits> raw values >= 1.0: ln(x) as FixedPoint<int32, output_bits> raw values."""
    accum = output_bits + 1
    shifted_quarter = rdbpot(ONE_QUARTER, accum)                     # Rescale<accum>(one_quarter)
    z_a = _i64(x)
    z_a_headroom_plus_1 = clz32(z_a)
    r_a_tmp = saturating_lshift(z_a, z_a_headroom_plus_1 - 1)
    r_a = saturating_lshift(srdhm(r_a_tmp, SQRT_HALF), 1)
    z_a_pow_2_adj = saturating_add32(saturating_lshift(input_bits - z_a_headroom_plus_1, 31 - accum), shifted_quarter)
    z_b = srdhm(z_a, SQRT_HALF)
    z_b_headroom = clz32(z_b) - 1
    r_b = saturating_lshift(z_a, z_b_headroom)
    z_b_pow_2_adj = saturating_add32(saturating_lshift(input_bits - z_b_headroom, 31 - accum), -shifted_quarter)
    r = np.minimum(r_a, r_b)
    z_pow_2_adj = np.maximum(z_a_pow_2_adj, z_b_pow_2_adj)
    s = r + SQRT_SQRT_HALF                                             # RoundingHalfSum(r, sqrt_sqrt_half):
    p = np.where(s >= 0, (s + 1) >> 1, -((1 - s) >> 1))                # (s +- 1) / 2, truncating
    q = wrap32(2 * wrap32(r - SQRT_SQRT_HALF))
    common_sq = srdhm(q, q)
    num = wrap32(srdhm(q, r) + srdhm(srdhm(q, common_sq), LOG_ALPHA_N))
    denom_minus_one = wrap32(srdhm(p, wrap32(wrap32(LOG_ALPHA_I + q) + srdhm(LOG_ALPHA_D, common_sq)))
                             + srdhm(LOG_ALPHA_F, q))
    recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one)
    total = wrap32(srdhm(z_pow_2_adj, LOG_2) + srdhm(rdbpot(num, accum), recip_denom))
    return saturating_lshift(total, accum - output_bits)


LOG_SOFTMAX_OUTPUT = (16.0 / 256, 127)     # the int8 output parameters TFLite requires


def log_softmax_params(input_scale: float) -> dict:
    """TFLite Micro's int8 LOG_SOFTMAX prepare (``PreprocessLogSoftmaxScalingExp``, beta 1, Q5.26
    differences): the tables of the row difference d = x - max for d = 0, -1, .., -255 --
    ``diff_q5`` = MultiplyByQuantizedMultiplier(d, input multiplier, left shift) and ``exp_table``
    = Rescale<12>(exp_on_negative_values(diff_q5)) (0 where d < diff_min) -- and the scalars
    ``reverse_multiplier``, ``reverse_shift`` (<= 0) and ``diff_min``."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(float(np.float32(input_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    assert left_shift >= 1, "LOG_SOFTMAX input scale too small for TFLite's int8 LOG_SOFTMAX"
    reverse_multiplier, reverse_shift = quantize_multiplier((1 << (31 - left_shift)) / float(multiplier))
    assert reverse_shift <= 0
    diff_min = -calculate_input_radius(bits, left_shift)
    d = -np.arange(256, dtype=np.int64)
    inside = d >= diff_min
    diff_q5 = np.where(inside, mbqm(np.where(inside, d, 0), multiplier, left_shift), 0)
    exp = rdbpot(exp_on_negative_values_q5(diff_q5), SOFTMAX_ACCUMULATION_INTEGER_BITS)
    return {"diff_q5": diff_q5.astype(np.int32), "exp_table": np.where(inside, exp, 0).astype(np.int32),
            "reverse_multiplier": reverse_multiplier, "reverse_shift": reverse_shift, "diff_min": diff_min}


def log_softmax_s8(x: np.ndarray, params: dict) -> np.ndarray:
    """TFLite's int8 LOG_SOFTMAX (reference_ops::LogSoftmaxQuantized) over the last axis."""
    xi = _i64(x)
    d = xi.max(axis=-1, keepdims=True) - xi                             # 0..255: the tables' index
    total = _i64(params["exp_table"])[d].sum(axis=-1, keepdims=True)
    log_sum = log_x_for_x_greater_than_or_equal_to_1(total, SOFTMAX_ACCUMULATION_INTEGER_BITS,
                                                     SOFTMAX_SCALED_DIFF_INTEGER_BITS)
    adjusted = np.maximum(params["diff_min"] - 1,
                          mbqm(log_sum + INT32_MIN, params["reverse_multiplier"], params["reverse_shift"]))
    out = rdbpot(wrap32(_i64(params["diff_q5"])[d] - log_sum), 31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS - 4) + 127
    return np.where(-d > adjusted, np.clip(out, -128, 127), -128).astype(np.int8)


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite ``CalculateInputRadius`` (floating-point build): the largest input magnitude,
    in input units, that a Q``integer_bits`` fixed-point function distinguishes from saturation."""
    max_input_rescaled = (1.0 * ((1 << integer_bits) - 1) * (1 << (total_signed_bits - integer_bits))
                          / 2.0 ** left_shift)
    return int(math.floor(max_input_rescaled))


INT16_MIN = -(1 << 15)
INT16_MAX = (1 << 15) - 1


def wrap16(x) -> np.ndarray:
    """Convert to int16 as two's complement hardware does (C's implementation-defined narrowing)."""
    return ((_i64(x) + (1 << 15)) & 0xFFFF) - (1 << 15)


def srdhm16(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int16."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    v = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = wrap16(np.where(v >= 0, v >> 15, -((-v) >> 15)))
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, q)


def sdhm16(a, b) -> np.ndarray:
    """TFLite ``SaturatingDoublingHighMul`` on int16 (hard_swish.h): like SQDMULH, the doubled
    high half truncated toward zero instead of rounded."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    q = wrap16(np.where(ab >= 0, ab >> 15, -((-ab) >> 15)))
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, q)


def rdbpot16(x, exponent: int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT`` on int16 (exponent in 0..31; int16 mask and sums)."""
    x = _i64(x)
    mask = int(wrap16((1 << exponent) - 1))
    threshold = wrap16((mask >> 1) + (x < 0))
    return wrap16((x >> exponent) + ((x & mask) > threshold))


def saturating_lshift16(x, amount: int) -> np.ndarray:
    """TFLite ``SaturatingLeftShift`` on int16 (hard_swish.h): x * 2^amount clamped to int16."""
    return np.clip(_i64(x) * (1 << amount), INT16_MIN, INT16_MAX)


def downscale_multiplier_to_int16(multiplier: int) -> int:
    """TFLite ``DownScaleInt32ToInt16Multiplier``: a Q0.31 multiplier rounded to Q0.15."""
    if multiplier >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16


# ---------------------------------------------------------------------------------------------
# Relax emitters
# ---------------------------------------------------------------------------------------------


class RelaxFixedPoint:
    """Emits gemmlowp arithmetic as plain Relax integer ops into a BlockBuilder.

    Values are int32 tensors unless a name says otherwise; 64-bit intermediates are used where
    the C uses ``int64_t``. Constant arguments (multipliers, shifts) are NumPy arrays that
    broadcast against the tensor's last axis, or Python ints.
    """

    def __init__(self, bb):
        from tvm import relax

        self.bb, self.R = bb, relax

    def const(self, value, dtype="int32"):
        return self.R.const(np.asarray(value, dtype=dtype), dtype)

    def emit(self, expr):
        return self.bb.emit(expr)

    def cast(self, x, dtype):
        return self.emit(self.R.op.astype(x, dtype))

    def where(self, cond, a, b):
        return self.emit(self.R.op.where(cond, a, b))

    def srdhm(self, a, b):
        """a: int32 tensor; b: int32 tensor or constant (never both INT32_MIN when b is a
        constant multiplier, which is always positive; the saturating case is emitted only
        for tensor ``b``)."""
        op = self.R.op
        a64 = self.cast(a, "int64")
        b_const = not isinstance(b, self.R.Expr)
        b64 = self.const(b, "int64") if b_const else self.cast(b, "int64")
        ab = self.emit(op.multiply(a64, b64))
        nudge = self.where(self.emit(op.greater_equal(ab, self.const(0, "int64"))),
                           self.const(1 << 30, "int64"), self.const(1 - (1 << 30), "int64"))
        v = self.emit(op.add(ab, nudge))
        pos = self.emit(op.right_shift(v, self.const(31, "int64")))
        neg = self.emit(op.negative(op.right_shift(op.negative(v), self.const(31, "int64"))))
        q = self.cast(self.where(self.emit(op.greater_equal(v, self.const(0, "int64"))), pos, neg), "int32")
        if b_const:
            assert int(np.min(b)) > INT32_MIN
            return q
        sat = self.emit(op.logical_and(op.equal(a, b), op.equal(a, self.const(INT32_MIN))))
        return self.where(sat, self.const(INT32_MAX), q)

    def rdbpot(self, x, exponent):
        """exponent: non-negative int / array constant, or an int32 tensor."""
        op = self.R.op
        if isinstance(exponent, self.R.Expr):
            e = exponent
            mask = self.cast(self.emit(op.subtract(
                op.left_shift(self.const(1, "int64"), self.cast(e, "int64")), self.const(1, "int64"))), "int32")
        else:
            exponent = np.asarray(exponent, np.int64)
            if not exponent.any():
                return x
            e = self.const(exponent, "int32")
            mask = self.const((np.int64(1) << exponent) - 1, "int32")
        negative = self.cast(self.emit(op.less(x, self.const(0))), "int32")
        threshold = self.emit(op.add(op.right_shift(mask, self.const(1)), negative))
        bump = self.cast(self.emit(op.greater(op.bitwise_and(x, mask), threshold)), "int32")
        return self.emit(op.add(op.right_shift(x, e), bump))

    def mbqm(self, x, multiplier, shift):
        """TFLite MultiplyByQuantizedMultiplier with constant multiplier/shift arrays."""
        shift = np.asarray(shift, np.int32)
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        if left.any():
            x = self.emit(self.R.op.left_shift(x, self.const(left)))
        return self.rdbpot(self.srdhm(x, np.asarray(multiplier, np.int32)), right)

    def saturating_lshift(self, x, exponent: int):
        op = self.R.op
        threshold = (1 << (31 - exponent)) - 1
        shifted = self.emit(op.left_shift(x, self.const(exponent)))
        low = self.where(self.emit(op.less(x, self.const(-threshold))), self.const(INT32_MIN), shifted)
        return self.where(self.emit(op.greater(x, self.const(threshold))), self.const(INT32_MAX), low)

    def clz_positive(self, x):
        """Count leading zeros of a positive int32 tensor: #{k in 0..31 : x < 2^k}."""
        op = self.R.op
        powers = self.const([1 << k for k in range(32)], "int64")
        below = self.emit(op.less(op.expand_dims(self.cast(x, "int64"), -1), powers))
        return self.emit(op.sum(self.cast(below, "int32"), axis=-1))

    def wrap32(self, x64):
        """An int64 tensor wrapped to int32 (two's complement), as the C's int32 arithmetic."""
        op = self.R.op
        return self.cast(self.emit(op.subtract(op.bitwise_and(op.add(x64, self.const(1 << 31, "int64")),
                                                              self.const(0xFFFFFFFF, "int64")),
                                               self.const(1 << 31, "int64"))), "int32")

    def inv_sqrt_multiplier_exp(self, value):
        """TFLite GetInvSqrtQuantizedMultiplierExp(value, kReverseShift = -1) of an int32 tensor
        of values >= 0 (adaptc.luts.inv_sqrt_multiplier_exp, one value): (multiplier, shift)
        tensors, 1 / sqrt(value) ~ multiplier * 2^(shift - 31); values <= 1 give INT32_MAX, 0."""
        op = self.R.op
        big = self.cast(self.emit(op.greater_equal(value, self.const(1 << 29))), "int32")   # (once: < 2^31)
        v = self.emit(op.right_shift(value, op.multiply(big, self.const(2))))
        pairs = self.emit(op.subtract(op.floor_divide(op.subtract(self.clz_positive(v), self.const(1)),
                                                      self.const(2)), self.const(1)))
        shift = self.emit(op.subtract(op.add(self.const(11), big), pairs))
        v = self.emit(op.left_shift(v, op.multiply(pairs, self.const(2))))
        half_input = self.rdbpot(self.emit(op.right_shift(v, self.const(1))), 1)
        x = self.const(np.full(1, 1 << 28, np.int32))
        for _ in range(5):
            x3 = self.saturating_lshift(self.srdhm(self.srdhm(x, x), x), 6)
            d = self.emit(op.subtract(self.cast(self.srdhm(x, (1 << 28) + (1 << 27)), "int64"),
                                      self.cast(self.srdhm(half_input, x3), "int64")))
            x = self.saturating_lshift(self.wrap32(d), 3)
        x = self.srdhm(x, 1518500250)                          # * sqrt(2) / 2
        negative = self.emit(op.less(shift, self.const(0)))
        wide = self.wrap32(self.emit(op.left_shift(self.cast(x, "int64"),
                                                   self.cast(op.negative(op.minimum(shift, self.const(0))), "int64"))))
        x = self.where(negative, wide, x)
        shift = self.emit(op.maximum(shift, self.const(0)))
        small = self.emit(op.less_equal(value, self.const(1)))
        return self.where(small, self.const(INT32_MAX), x), self.where(small, self.const(0), op.negative(shift))

    def mbqm_tensor(self, x, multiplier, shift):
        """TFLite MultiplyByQuantizedMultiplier with int32 tensors (broadcasting) for the
        multiplier and shift."""
        op = self.R.op
        zero = self.const(0)
        x = self.emit(op.left_shift(x, op.maximum(shift, zero)))
        return self.rdbpot(self.srdhm(x, multiplier), self.emit(op.maximum(op.negative(shift), zero)))

    def lshift_sat(self, x, exponent):
        """SaturatingRoundingMultiplyByPOTParam: x * 2^exponent saturated, for an int32 tensor
        exponent >= 0 (a constant one: ``saturating_lshift``)."""
        op = self.R.op
        e64, x64 = self.cast(exponent, "int64"), self.cast(x, "int64")
        threshold = self.emit(op.subtract(op.left_shift(self.const(1, "int64"), op.subtract(self.const(31, "int64"),
                                                                                             e64)),
                                          self.const(1, "int64")))
        shifted = self.cast(self.emit(op.left_shift(x64, e64)), "int32")   # (in range where it is used)
        low = self.where(self.emit(op.less(x64, op.negative(threshold))), self.const(INT32_MIN), shifted)
        return self.where(self.emit(op.greater(x64, threshold)), self.const(INT32_MAX), low)

    def add_wrap(self, *terms):
        """The int32 sum of int32 tensors / ints with two's complement wraparound (gemmlowp's
        FixedPoint + and -: a negative int is subtracted)."""
        op = self.R.op
        acc = None
        for t in terms:
            t64 = self.cast(t, "int64") if isinstance(t, self.R.Expr) else self.const(t, "int64")
            acc = t64 if acc is None else self.emit(op.add(acc, t64))
        return self.wrap32(acc)

    def one_over_one_plus_x_for_x_in_0_1(self, a):
        """gemmlowp one_over_one_plus_x_for_x_in_0_1 (adaptc.fixedpoint's NumPy one)."""
        op = self.R.op
        half = self.cast(self.emit(op.right_shift(op.add(self.cast(a, "int64"), self.const(INT32_MAX + 1, "int64")),
                                                  self.const(1, "int64"))), "int32")
        x = self.add_wrap(1515870810, self.srdhm(half, -1010580540))
        for _ in range(3):
            one_minus = self.add_wrap(1 << 29, self.emit(op.negative(self.cast(self.srdhm(half, x), "int64"))))
            x = self.add_wrap(x, self.saturating_lshift(self.srdhm(x, one_minus), 2))
        return self.saturating_lshift(x, 1)

    def log_x_for_x_greater_than_or_equal_to_1(self, x, input_bits: int, output_bits: int):
        """TFLite's log_x_for_x_greater_than_or_equal_to_1 (adaptc.fixedpoint's NumPy one) of an
        int32 tensor of FixedPoint<input_bits> raw values >= 1.0."""
        op = self.R.op
        accum = output_bits + 1
        quarter = int(rdbpot(ONE_QUARTER, accum))
        za_h1 = self.clz_positive(x)
        r_a = self.saturating_lshift(self.srdhm(self.lshift_sat(x, self.emit(op.subtract(za_h1, self.const(1)))),
                                                SQRT_HALF), 1)
        za_adj = self.emit(op.clip(op.add(self.cast(self.saturating_lshift(self.emit(op.subtract(
                                                    self.const(input_bits), za_h1)), 31 - accum),
                                                    "int64"), self.const(quarter, "int64")), INT32_MIN, INT32_MAX))
        z_b = self.srdhm(x, SQRT_HALF)
        zb_h = self.emit(op.subtract(self.clz_positive(z_b), self.const(1)))
        r_b = self.lshift_sat(x, zb_h)
        zb_adj = self.emit(op.clip(op.subtract(self.cast(self.saturating_lshift(self.emit(op.subtract(
                                                         self.const(input_bits), zb_h)), 31 - accum),
                                                         "int64"), self.const(quarter, "int64")), INT32_MIN, INT32_MAX))
        r = self.emit(op.minimum(r_a, r_b))
        z_adj = self.cast(self.emit(op.maximum(za_adj, zb_adj)), "int32")
        s = self.emit(op.add(self.cast(r, "int64"), self.const(SQRT_SQRT_HALF, "int64")))
        p = self.cast(self.where(self.emit(op.greater_equal(s, self.const(0, "int64"))),
                                 self.emit(op.right_shift(op.add(s, self.const(1, "int64")), self.const(1, "int64"))),
                                 self.emit(op.negative(op.right_shift(op.subtract(self.const(1, "int64"), s),
                                                                      self.const(1, "int64"))))), "int32")
        q = self.add_wrap(r, -SQRT_SQRT_HALF)
        q = self.add_wrap(q, q)
        common_sq = self.srdhm(q, q)
        num = self.add_wrap(self.srdhm(q, r), self.srdhm(self.srdhm(q, common_sq), LOG_ALPHA_N))
        denom = self.add_wrap(self.srdhm(p, self.add_wrap(LOG_ALPHA_I, q, self.srdhm(common_sq, LOG_ALPHA_D))),
                              self.srdhm(q, LOG_ALPHA_F))
        recip = self.one_over_one_plus_x_for_x_in_0_1(denom)
        total = self.add_wrap(self.srdhm(z_adj, LOG_2), self.srdhm(self.rdbpot(num, accum), recip))
        return self.saturating_lshift(total, accum - output_bits)

    def softmax_reciprocal(self, sum_of_exps):
        """TFLite GetReciprocal: returns (shifted_scale, num_bits_over_unit) tensors."""
        op = self.R.op
        headroom = self.clz_positive(sum_of_exps)
        nbits = self.emit(op.subtract(self.const(SOFTMAX_ACCUMULATION_INTEGER_BITS), headroom))
        s64 = self.emit(op.left_shift(self.cast(sum_of_exps, "int64"), self.cast(headroom, "int64")))
        a = self.cast(self.emit(op.subtract(op.bitwise_and(s64, self.const(0xFFFFFFFF, "int64")),
                                            self.const(1 << 31, "int64"))), "int32")
        half = self.cast(self.emit(op.right_shift(
            op.add(self.cast(a, "int64"), self.const(INT32_MAX + 1, "int64")), self.const(1, "int64"))), "int32")
        x = self.emit(op.add(self.const(1515870810), self.srdhm(half, -1010580540)))
        for _ in range(3):
            one_minus = self.emit(op.subtract(self.const(1 << 29), self.srdhm(half, x)))
            x = self.emit(op.add(x, self.saturating_lshift(self.srdhm(x, one_minus), 2)))
        scale = self.saturating_lshift(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x)): raw kept, Q1.30 -> Q0.31
        return scale, nbits
