"""NumPy references for the C kernels in templates/kernels/.

Written from the TFLite / gemmlowp semantics (reference kernels of TFLite
Micro), independently of the C code:

* fixed-point primitives: two formulations each -- a "mathematical"
  Python-int scalar version (``*_scalar``) and a vectorised int64 NumPy
  version that follows the gemmlowp source literally;
* TFLite's QuantizeMultiplier and the int8 softmax preprocessing
  (PreprocessSoftmaxScaling, CalculateInputRadius, exp_on_negative_values);
* one reference per kernel (int8: bit-exact, int64 arithmetic with int32
  wrap-around where TFLite's int32 arithmetic would wrap; float: float64).

The compiler has its own implementations of quantize_multiplier and the
softmax table; these are the test references.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# ----------------------------------------------------------------------------
# Python-int scalar references (mathematical formulations)
# ----------------------------------------------------------------------------


def wrap32_scalar(x: int) -> int:
    """Two's-complement wrap of a Python int to int32."""
    return ((x + 2**31) % 2**32) - 2**31


def srdhm_scalar(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul: round(a*b / 2^31), ties toward
    +infinity (the nudge-then-truncate of gemmlowp is exactly that), with
    INT32_MIN * INT32_MIN saturating to INT32_MAX."""
    if a == b == INT32_MIN:
        return INT32_MAX
    return (a * b + 2**30) >> 31  # Python >> floors


def rdbpot_scalar(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from 0."""
    assert 0 <= exponent <= 31
    q, r = divmod(abs(x), 1 << exponent)
    if exponent > 0 and 2 * r >= (1 << exponent):
        q += 1
    return q if x >= 0 else -q


def mbqm_scalar(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier (double rounding)."""
    left = max(shift, 0)
    right = max(-shift, 0)
    return rdbpot_scalar(srdhm_scalar(wrap32_scalar(x << left), multiplier), right)


def _round_half_away(x: float) -> int:
    """std::round / TfLiteRound: nearest integer, ties away from zero."""
    a = abs(x)
    fl = math.floor(a)
    r = fl + 1 if a - fl >= 0.5 else fl
    return int(r) if x >= 0 else -int(r)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = multiplier * 2^(shift - 31), with
    multiplier a Q0.31 int32 in [2^30, 2^31) (or 0)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * float(1 << 31))
    assert abs(q_fixed) <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierGreaterThanOne."""
    if not real > 1.0:
        raise ValueError(f"multiplier must be > 1, got {real!r}")
    mult, left_shift = quantize_multiplier(real)
    assert left_shift >= 0
    return mult, left_shift


# ----------------------------------------------------------------------------
# Vectorised int64 NumPy primitives (literal gemmlowp formulations)
# ----------------------------------------------------------------------------


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x) -> np.ndarray:
    """Two's-complement wrap of int64 values to the int32 range (kept in int64)."""
    x = _i64(x)
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def _trunc_div(n, d) -> np.ndarray:
    """C99 integer division (truncation toward zero) for d > 0."""
    q = np.abs(n) // d
    return np.where(n < 0, -q, q)


def srdhm(a, b) -> np.ndarray:
    a, b = np.broadcast_arrays(_i64(a), _i64(b))
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    r = _trunc_div(ab + nudge, 1 << 31)
    return np.where(overflow, INT32_MAX, r)


def rdbpot(x, exponent) -> np.ndarray:
    x, exponent = np.broadcast_arrays(_i64(x), _i64(exponent))
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def mbqm(x, multiplier, shift) -> np.ndarray:
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap32(_i64(x) << left), multiplier), right)


def sat_shift_left(x, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0."""
    return np.clip(_i64(x) << exponent, INT32_MIN, INT32_MAX)


def rounding_half_sum(a, b) -> np.ndarray:
    s = _i64(a) + _i64(b)
    return _trunc_div(s + np.where(s >= 0, 1, -1), 2)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 on raw Q0.31 int32 values."""
    half_denominator = rounding_half_sum(a, INT32_MAX)  # F0::One() == INT32_MAX
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # Q2.29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap32((1 << 29) - half_denominator_times_x)
        x = wrap32(x + sat_shift_left(srdhm(x, one_minus), 2))  # Rescale<2> of Q4.27
    # Rescale<0>(ExactMulByPot<-1>(x)): raw reinterpreted as Q1.30, then x2 saturating.
    return sat_shift_left(x, 1)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    constant_term = 1895147668  # exp(-1/8), Q0.31
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    x4_over_24_plus_x3_over_6_plus_x2_over_2 = rdbpot(
        wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1
    )
    return wrap32(
        constant_term
        + srdhm(constant_term, wrap32(x + x4_over_24_plus_x3_over_6_plus_x2_over_2))
    )


_EXP_BARREL = [
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
]


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a is Q(integer_bits).(31-integer_bits),
    a <= 0; returns exp(a) in Q0.31."""
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1  # kOneQuarter - FromScalarRaw(1)
    a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter
    # Rescale<0> from integer_bits: saturating multiply by 2^integer_bits.
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        sat_shift_left(a_mod_quarter_minus_one_quarter, integer_bits)
        if integer_bits > 0
        else a_mod_quarter_minus_one_quarter
    )
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            shift_amount = fractional_bits + exponent
            result = np.where(
                (remainder & (1 << shift_amount)) != 0, srdhm(result, multiplier), result
            )
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


# ----------------------------------------------------------------------------
# Softmax preprocessing (TFLite quantization_util.cc, TFLM softmax_common.cc)
# ----------------------------------------------------------------------------

K_SCALED_DIFF_INTEGER_BITS = 5
K_ACCUMULATION_INTEGER_BITS = 12


def calculate_input_radius(
    input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31
) -> int:
    max_input_rescaled = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * float(1 << (total_signed_bits - input_integer_bits))
        / float(1 << input_left_shift)
    )
    return int(math.floor(max_input_rescaled))


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) as TFLite Micro computes
    them for an int8 softmax.  TFLite stores beta and the scale as float32 and
    widens them to double."""
    beta = float(np.float32(beta))
    input_scale = float(np.float32(input_scale))
    max_real_multiplier = float((1 << 31) - 1)  # double-rounding build
    input_beta_real_multiplier = min(
        beta * input_scale * float(1 << (31 - K_SCALED_DIFF_INTEGER_BITS)),
        max_real_multiplier,
    )
    multiplier, left_shift = quantize_multiplier_greater_than_one(input_beta_real_multiplier)
    diff_min = -calculate_input_radius(K_SCALED_DIFF_INTEGER_BITS, left_shift)
    return multiplier, left_shift, diff_min


def _softmax_exp_of_diff(diff: np.ndarray, multiplier: int, left_shift: int, diff_min: int):
    """exp_on_negative_values(MultiplyByQuantizedMultiplierGreaterThanOne(diff))
    where diff >= diff_min, else 0 (Q0.31)."""
    diff = _i64(diff)
    valid = diff >= diff_min
    safe = np.where(valid, diff, 0)
    # MultiplyByQuantizedMultiplierGreaterThanOne: srdhm(x * 2^left_shift, mult);
    # no int32 overflow for diff >= diff_min by construction of diff_min.
    shifted = safe << left_shift
    assert np.all((shifted >= INT32_MIN) & (shifted <= INT32_MAX))
    rescaled = srdhm(shifted, multiplier)
    return np.where(valid, exp_on_negative_values(rescaled, K_SCALED_DIFF_INTEGER_BITS), 0), valid


def softmax_exp_table(input_scale: float, beta: float = 1.0) -> np.ndarray:
    """exp_table[k] for k = max_in_row - input in 0..255 (int32[256], Q0.31)."""
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    table, _ = _softmax_exp_of_diff(-np.arange(256, dtype=np.int64), multiplier, left_shift, diff_min)
    return table.astype(np.int32)


def _clz32(v: int) -> int:
    assert 0 < v < 2**32
    return 32 - int(v).bit_length()


def softmax_s8_ref(x: np.ndarray, input_scale: float, beta: float = 1.0) -> np.ndarray:
    """TFLite reference_ops::Softmax<int8_t, int8_t> over the last axis, computed
    from the TFLite parameters directly (not via the 256-entry table)."""
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    x2 = _i64(x).reshape(-1, x.shape[-1])
    diff = x2 - x2.max(axis=1, keepdims=True)
    exp_in_0, valid = _softmax_exp_of_diff(diff, multiplier, left_shift, diff_min)
    # Rescale<12>: Q0.31 -> Q12.19, summed over the row.
    sum_of_exps = np.sum(np.where(valid, rdbpot(exp_in_0, K_ACCUMULATION_INTEGER_BITS), 0),
                         axis=1, keepdims=True)
    assert np.all((sum_of_exps > 0) & (sum_of_exps <= INT32_MAX))
    # GetReciprocal
    headroom_plus_one = np.array([[_clz32(int(v))] for v in sum_of_exps[:, 0]], dtype=np.int64)
    num_bits_over_unit = K_ACCUMULATION_INTEGER_BITS - headroom_plus_one
    shifted_sum_minus_one = wrap32(((sum_of_exps << headroom_plus_one) - (1 << 31)) & 0xFFFFFFFF)
    shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    exponent = num_bits_over_unit + 31 - 8
    prod = srdhm(shifted_scale, exp_in_0)
    assert np.all(prod >= 0)
    # exponent > 31 (>= 512 near-maximal entries): TFLite asserts; a non-negative
    # int32 divided by 2^32 or more rounds to 0.
    unsat = np.where(exponent <= 31, rdbpot(prod, np.minimum(exponent, 31)), 0)
    out = np.where(valid, np.clip(unsat - 128, -128, 127), -128)
    return out.astype(np.int8).reshape(x.shape)


# ----------------------------------------------------------------------------
# int8 kernel references
# ----------------------------------------------------------------------------


def same_padding(in_size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """TFLite ComputePaddingHeightWidth for SAME: (out, pad_before, pad_after)."""
    eff = (k - 1) * dilation + 1
    out = (in_size + stride - 1) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2, total - total // 2


def valid_out(in_size: int, k: int, stride: int, dilation: int = 1) -> int:
    eff = (k - 1) * dilation + 1
    return (in_size - eff + stride) // stride


def _padded_windows(x, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                    out_h, out_w, fill):
    """Yield (kh, kw, patch[N, out_h, out_w, C]) over the filter taps of a
    spatially padded NHWC array (padding value `fill`)."""
    n, h, w, c = x.shape
    need_h = (out_h - 1) * stride_h + (k_h - 1) * dil_h + 1
    need_w = (out_w - 1) * stride_w + (k_w - 1) * dil_w + 1
    pad_bottom = max(0, need_h - pad_top - h)
    pad_right = max(0, need_w - pad_left - w)
    xp = np.pad(x, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)),
                constant_values=fill)
    for kh in range(k_h):
        for kw in range(k_w):
            y0 = kh * dil_h
            x0 = kw * dil_w
            patch = xp[:, y0:y0 + (out_h - 1) * stride_h + 1:stride_h,
                       x0:x0 + (out_w - 1) * stride_w + 1:stride_w, :]
            yield kh, kw, patch


def _requantize(acc, bias, out_mult, out_shift, output_offset, act_min, act_max):
    assert np.all((acc >= INT32_MIN) & (acc <= INT32_MAX)), "int32 accumulator overflow"
    if bias is not None:
        acc = acc + _i64(bias)
        assert np.all((acc >= INT32_MIN) & (acc <= INT32_MAX))
    acc = mbqm(acc, _i64(out_mult), _i64(out_shift))
    acc = acc + output_offset
    return np.clip(acc, act_min, act_max).astype(np.int8)


def conv2d_s8_ref(x, filt, bias, out_mult, out_shift, *, stride_h, stride_w, dil_h, dil_w,
                  pad_top, pad_left, out_h, out_w, input_offset, output_offset, act_min, act_max):
    """ConvPerChannel. x NHWC int8, filt OHWI int8."""
    xo = _i64(x) + input_offset  # zero padding of (x + input_offset) == padding with the zp
    f = _i64(filt)
    acc = np.zeros((x.shape[0], out_h, out_w, f.shape[0]), dtype=np.int64)
    for kh, kw, patch in _padded_windows(xo, f.shape[1], f.shape[2], stride_h, stride_w,
                                         dil_h, dil_w, pad_top, pad_left, out_h, out_w, 0):
        acc += np.tensordot(patch, f[:, kh, kw, :].T, axes=([3], [0]))
    return _requantize(acc, bias, out_mult, out_shift, output_offset, act_min, act_max)


def depthwise_conv2d_s8_ref(x, filt, bias, out_mult, out_shift, *, depth_multiplier, stride_h,
                            stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w,
                            input_offset, output_offset, act_min, act_max):
    """DepthwiseConvPerChannel. filt [k_h][k_w][in_c*depth_multiplier]."""
    xo = _i64(x) + input_offset
    f = _i64(filt)
    acc = np.zeros((x.shape[0], out_h, out_w, f.shape[2]), dtype=np.int64)
    for kh, kw, patch in _padded_windows(xo, f.shape[0], f.shape[1], stride_h, stride_w,
                                         dil_h, dil_w, pad_top, pad_left, out_h, out_w, 0):
        acc += np.repeat(patch, depth_multiplier, axis=3) * f[kh, kw, :]
    return _requantize(acc, bias, out_mult, out_shift, output_offset, act_min, act_max)


def fully_connected_s8_ref(x, w, bias, out_mult, out_shift, *, input_offset, filter_offset,
                           output_offset, act_min, act_max):
    acc = (_i64(x) + input_offset) @ (_i64(w) + filter_offset).T
    return _requantize(acc, bias, out_mult, out_shift, output_offset, act_min, act_max)


def add_s8_ref(x1, x2, *, left_shift, input1_offset, input1_multiplier, input1_shift,
               input2_offset, input2_multiplier, input2_shift, output_offset,
               output_multiplier, output_shift, act_min, act_max):
    s1 = mbqm(wrap32((_i64(x1) + input1_offset) << left_shift), input1_multiplier, input1_shift)
    s2 = mbqm(wrap32((_i64(x2) + input2_offset) << left_shift), input2_multiplier, input2_shift)
    raw = mbqm(wrap32(s1 + s2), output_multiplier, output_shift) + output_offset
    return np.clip(raw, act_min, act_max).astype(np.int8)


def _pool_sum_count(x, k_h, k_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    n, _, _, c = x.shape
    total = np.zeros((n, out_h, out_w, c), dtype=x.dtype)
    count = np.zeros((n, out_h, out_w, c), dtype=np.int64)
    ones = np.ones_like(x, dtype=np.int64)
    for (_, _, p), (_, _, q) in zip(
        _padded_windows(x, k_h, k_w, stride_h, stride_w, 1, 1, pad_top, pad_left, out_h, out_w, 0),
        _padded_windows(ones, k_h, k_w, stride_h, stride_w, 1, 1, pad_top, pad_left, out_h, out_w, 0),
    ):
        total = total + p
        count = count + q
    return total, count


def avg_pool_s8_ref(x, *, k_h, k_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                    act_min, act_max):
    total, count = _pool_sum_count(_i64(x), k_h, k_w, stride_h, stride_w, pad_top, pad_left,
                                   out_h, out_w)
    assert np.all(count > 0)
    half = count // 2
    avg = np.where(total > 0, _trunc_div(total + half, count), _trunc_div(total - half, count))
    return np.clip(avg, act_min, act_max).astype(np.int8)


def max_pool_s8_ref(x, *, k_h, k_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                    act_min, act_max):
    best = None
    for _, _, p in _padded_windows(_i64(x), k_h, k_w, stride_h, stride_w, 1, 1, pad_top,
                                   pad_left, out_h, out_w, -(10**6)):
        best = p if best is None else np.maximum(best, p)
    assert np.all(best > -(10**6))
    return np.clip(best, act_min, act_max).astype(np.int8)


def pad_ref(x, before, after, pad_value):
    return np.pad(x, list(zip(before, after)), constant_values=pad_value)


def lut_s8_ref(x, table):
    return np.asarray(table, dtype=np.int8)[_i64(x) + 128]


# ----------------------------------------------------------------------------
# float32 kernel references (float64 arithmetic)
# ----------------------------------------------------------------------------


def conv2d_f32_ref(x, filt, bias, *, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                   out_h, out_w, act_min, act_max):
    f = np.asarray(filt, dtype=np.float64)
    acc = np.zeros((x.shape[0], out_h, out_w, f.shape[0]))
    for kh, kw, patch in _padded_windows(np.asarray(x, np.float64), f.shape[1], f.shape[2],
                                         stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                                         out_h, out_w, 0.0):
        acc += np.tensordot(patch, f[:, kh, kw, :].T, axes=([3], [0]))
    if bias is not None:
        acc += bias
    return np.clip(acc, act_min, act_max)


def depthwise_conv2d_f32_ref(x, filt, bias, *, depth_multiplier, stride_h, stride_w, dil_h,
                             dil_w, pad_top, pad_left, out_h, out_w, act_min, act_max):
    f = np.asarray(filt, dtype=np.float64)
    acc = np.zeros((x.shape[0], out_h, out_w, f.shape[2]))
    for kh, kw, patch in _padded_windows(np.asarray(x, np.float64), f.shape[0], f.shape[1],
                                         stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                                         out_h, out_w, 0.0):
        acc += np.repeat(patch, depth_multiplier, axis=3) * f[kh, kw, :]
    if bias is not None:
        acc += bias
    return np.clip(acc, act_min, act_max)


def fully_connected_f32_ref(x, w, bias, *, act_min, act_max):
    acc = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    if bias is not None:
        acc += bias
    return np.clip(acc, act_min, act_max)


def add_f32_ref(x1, x2, *, act_min, act_max):
    return np.clip(np.asarray(x1, np.float64) + x2, act_min, act_max)


def avg_pool_f32_ref(x, *, k_h, k_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                     act_min, act_max):
    total, count = _pool_sum_count(np.asarray(x, np.float64), k_h, k_w, stride_h, stride_w,
                                   pad_top, pad_left, out_h, out_w)
    return np.clip(total / count, act_min, act_max)


def max_pool_f32_ref(x, *, k_h, k_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                     act_min, act_max):
    best = None
    for _, _, p in _padded_windows(np.asarray(x, np.float64), k_h, k_w, stride_h, stride_w, 1, 1,
                                   pad_top, pad_left, out_h, out_w, -np.inf):
        best = p if best is None else np.maximum(best, p)
    return np.clip(best, act_min, act_max)


def softmax_f32_ref(x, beta=1.0):
    x = np.asarray(x, np.float64)
    e = np.exp((x - x.max(axis=-1, keepdims=True)) * beta)
    return e / e.sum(axis=-1, keepdims=True)
