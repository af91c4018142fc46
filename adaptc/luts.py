"""int8 lookup tables of unary operators, bit for bit as TensorFlow Lite Micro computes them.

Every function returns the operator's 256-entry table: a NumPy int8 array ``table`` with
``table[i]`` the output for the int8 input ``i - 128``. The arithmetic is that of TFLM's
reference kernel, Prepare included (scales are read as the float32 a flatbuffer stores, the
constants computed in the precision the C uses), emulated on int64 arrays with the helpers of
:mod:`adaptc.fixedpoint`.

Where TFLM's Prepare refuses the parameters, or its kernel assumes output parameters without
checking them (LOGISTIC's scale, TANH's scale and zero point), the function raises ValueError
naming the requirement rather than return a table that does not mean the operator.

The reference is the TFLM the tests run (the ``tflite_micro`` wheel, built from upstream commit
8f6596d). Its LEAKY_RELU and HARD_SWISH Prepare divide the scales in double, as written here;
the tflite-micro source of August 2026 (90b983c) divides them in float32, which changes the
LEAKY_RELU table for about one parameter set in seven of tests/core/test_luts.py's grid.
"""
from __future__ import annotations

import math

import numpy as np

from adaptc import fixedpoint as fxp

INPUTS = np.arange(-128, 128, dtype=np.int64)  # table index i holds the output for INPUTS[i]

# gemmlowp's logistic and tanh take a Q4.27 input (kInputIntegerBits = 4 in both kernels).
_INPUT_INTEGER_BITS = 4


def _f32(x) -> np.float32:
    """A quantization parameter as TFLM reads it from the flatbuffer."""
    return np.float32(x)


def _check_scales(op: str, *scales) -> None:
    for s in scales:
        if not (np.isfinite(_f32(s)) and _f32(s) > 0):
            raise ValueError(f"{op}: quantization scale must be positive and finite, got {s!r}")


def _saturate_int8(values) -> np.ndarray:
    return np.clip(values, -128, 127).astype(np.int8)


def _round_half_away(x: float) -> int:
    """``TfLiteRound`` (``std::round``) of a double."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _q4_input_params(in_scale) -> tuple[int, int, int]:
    """(multiplier, left shift, radius) that TFLM's int8 LOGISTIC / TANH Prepare computes: the
    input rescaled to Q4.27 by MultiplyByQuantizedMultiplier, and the input magnitude (in
    units of the zero-point-shifted input) at and beyond which the output saturates."""
    real = float(_f32(in_scale)) * float(1 << (31 - _INPUT_INTEGER_BITS))
    q, left_shift = math.frexp(real)
    multiplier = _round_half_away(q * (1 << 31))
    assert 0 < multiplier <= fxp.INT32_MAX, "int8 LOGISTIC/TANH input multiplier out of range"
    return multiplier, left_shift, fxp.calculate_input_radius(_INPUT_INTEGER_BITS, left_shift, 31)


def _fixed_q4_table(fn, in_scale, in_zp, out_fraction_bits: int, out_zp: int) -> np.ndarray:
    """The shared body of reference_integer_ops::Logistic / Tanh (int8)."""
    multiplier, left_shift, radius = _q4_input_params(in_scale)
    x = INPUTS - int(in_zp)
    input_in_q4 = fxp.mbqm(x, multiplier, left_shift)
    output_in_q0 = fn(input_in_q4, _INPUT_INTEGER_BITS)
    y = fxp.rdbpot(output_in_q0, 31 - out_fraction_bits) + out_zp
    y = np.where(x <= -radius, -128, np.where(x >= radius, 127, y))
    return _saturate_int8(y)


def logistic(in_scale, in_zp, out_scale=1 / 256, out_zp=-128) -> np.ndarray:
    """TFLM LOGISTIC int8 (micro/kernels/logistic_common.cc, reference/integer_ops/logistic.h).

    TFLM refuses an output zero point other than -128 and computes as if the output scale were
    1/256 whatever it is; both are required here."""
    _check_scales("LOGISTIC", in_scale, out_scale)
    if int(out_zp) != -128 or _f32(out_scale) != _f32(1 / 256):
        raise ValueError(f"LOGISTIC int8: TFLM requires output scale 1/256 and zero point -128, "
                         f"got scale {out_scale!r}, zero point {out_zp!r}")
    return _fixed_q4_table(fxp.logistic_fixed, in_scale, in_zp, 8, -128)


def tanh(in_scale, in_zp, out_scale=1 / 128, out_zp=0) -> np.ndarray:
    """TFLM TANH int8 (micro/kernels/tanh.cc, reference/integer_ops/tanh.h).

    TFLM checks neither output parameter but computes as if they were scale 1/128, zero point
    0 (and saturates to -128 for tanh = -1); both are required here."""
    _check_scales("TANH", in_scale, out_scale)
    if int(out_zp) != 0 or _f32(out_scale) != _f32(1 / 128):
        raise ValueError(f"TANH int8: TFLM assumes output scale 1/128 and zero point 0, "
                         f"got scale {out_scale!r}, zero point {out_zp!r}")
    return _fixed_q4_table(fxp.tanh_fixed, in_scale, in_zp, 7, 0)


def hard_swish(in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """TFLM HARD_SWISH int8 (micro/kernels/hard_swish_common.cc, reference/hard_swish.h).

    The int16 fixed-point arithmetic of the reference kernel; TFLM refuses
    in_scale / out_scale >= 128 (a positive output multiplier exponent)."""
    _check_scales("HARD_SWISH", in_scale, out_scale)
    hires_input_scale = float(np.float32(1.0 / 128.0) * _f32(in_scale))  # a float32 product
    output_multiplier, output_exponent = fxp.quantize_multiplier(hires_input_scale / float(_f32(out_scale)))
    if output_exponent > 0:
        raise ValueError(f"HARD_SWISH int8: TFLM requires in_scale / out_scale < 128, got "
                         f"{in_scale!r} / {out_scale!r}")
    output_multiplier16 = fxp.downscale_multiplier_to_int16(output_multiplier)
    reluish_multiplier, reluish_exponent = fxp.quantize_multiplier(hires_input_scale / (3.0 / 32768.0))
    reluish_multiplier16 = fxp.downscale_multiplier_to_int16(reluish_multiplier)

    input_value = fxp.wrap16(INPUTS - int(in_zp))
    input_on_hires_scale = fxp.wrap16(input_value * (1 << 7))
    input_on_preshift_output_scale = fxp.srdhm16(input_on_hires_scale, output_multiplier16)
    reluish = input_on_hires_scale
    if reluish_exponent > 0:
        reluish = fxp.saturating_lshift16(reluish, reluish_exponent - 1)
    reluish = fxp.srdhm16(reluish, reluish_multiplier16)
    if reluish_exponent > 0:
        reluish = fxp.saturating_lshift16(reluish, 1)
    if reluish_exponent < 0:
        reluish = fxp.rdbpot16(reluish, -reluish_exponent)
    reluish = (reluish + (1 << 15)) >> 1  # [-1, 1] -> [0, 1]
    preshift_output = fxp.sdhm16(reluish, input_on_preshift_output_scale)
    output = fxp.rdbpot16(preshift_output, -output_exponent)
    return _saturate_int8(fxp.wrap16(output + int(out_zp)))


def leaky_relu(in_scale, in_zp, out_scale, out_zp, alpha) -> np.ndarray:
    """TFLM LEAKY_RELU int8 (micro/kernels/leaky_relu_common.cc, reference/leaky_relu.h
    QuantizeLeakyRelu); any alpha, negative included (the multiplier of |alpha|, the result
    negated)."""
    _check_scales("LEAKY_RELU", in_scale, out_scale)
    s_in, s_out, a = float(_f32(in_scale)), float(_f32(out_scale)), float(_f32(alpha))
    alpha_multiplier, alpha_shift = fxp.quantize_multiplier(s_in * a / s_out)
    identity_multiplier, identity_shift = fxp.quantize_multiplier(s_in / s_out)
    x = INPUTS - int(in_zp)
    identity = fxp.mbqm(x, identity_multiplier, identity_shift)
    scaled_alpha = fxp.mbqm(x, abs(alpha_multiplier), alpha_shift)
    scaled_alpha = -scaled_alpha if alpha_multiplier < 0 else scaled_alpha
    return _saturate_int8(int(out_zp) + np.where(x >= 0, identity, scaled_alpha))


def float_table(fn, in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """The int8 table of a float function as TFLM builds one (micro/kernels/elu.cc
    ``PopulateLookupTable``): in float32, dequantize each input, apply ``fn`` (float32 array ->
    float32 array), multiply by ``1 / out_scale``, ``TfLiteRound``, add the zero point; then
    saturate to int8."""
    inverse_scale = np.float32(1) / _f32(out_scale)
    dequantized = _f32(in_scale) * (INPUTS - int(in_zp)).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        transformed = np.asarray(fn(dequantized), np.float32)
        product = (transformed * inverse_scale).astype(np.float64)  # float32 product, exact in float64
    product = np.nan_to_num(product, nan=0.0, posinf=2.0 ** 40, neginf=-(2.0 ** 40))
    rescaled = np.copysign(np.floor(np.abs(product) + 0.5), product).astype(np.float32)
    quantized = rescaled + np.float32(int(out_zp))  # float32 addition, as the C does
    return _saturate_int8(np.clip(quantized, -(1 << 31), (1 << 31) - 1).astype(np.int64))


def elu(in_scale, in_zp, out_scale, out_zp, alpha: float = 1.0) -> np.ndarray:
    """TFLM ELU int8 (micro/kernels/elu.cc): ``float_table`` of ``x < 0 ? std::exp(x) - 1.0f : x``
    (TFLite's ELU has no alpha; ``alpha`` != 1 -- ONNX Elu -- scales the negative side in float32).

    ``std::exp(float)`` is taken correctly rounded (float64 exp rounded once to float32), so the
    table does not depend on the host's libm. glibc's expf is one ulp off that in about one
    float32 input in 10^4; an entry can differ only if that ulp also carries
    ``y / out_scale`` across a rounding boundary."""
    _check_scales("ELU", in_scale, out_scale)

    def transform(x):
        exp_minus_one = np.exp(np.minimum(x, 0).astype(np.float64)).astype(np.float32) - np.float32(1)
        if alpha != 1.0:
            exp_minus_one = exp_minus_one * np.float32(alpha)
        return np.where(x < 0, exp_minus_one, x).astype(np.float32)

    return float_table(transform, in_scale, in_zp, out_scale, out_zp)


def requantize(in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """TFLM QUANTIZE int8 -> int8 (micro/kernels/quantize_common.cc, reference/requantize.h)."""
    _check_scales("QUANTIZE", in_scale, out_scale)
    effective_scale = float(_f32(in_scale)) / float(_f32(out_scale))
    multiplier, shift = fxp.quantize_multiplier(effective_scale)
    return _saturate_int8(fxp.mbqm(INPUTS - int(in_zp), multiplier, shift) + int(out_zp))


def inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """TFLite ``GetInvSqrtQuantizedMultiplierExp(value, kReverseShift = -1)``
    (kernels/internal/common.h) for one int32 ``value`` >= 0: (multiplier, shift) with
    1 / sqrt(value) ~ multiplier * 2^(shift - 31), by five Newton-Raphson steps in gemmlowp's
    Q3.28 fixed point (values <= 1 give INT32_MAX, 0)."""
    value = int(value)
    if value <= 1:
        return fxp.INT32_MAX, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    left_shift_bit_pairs = ((32 - value.bit_length()) - 1) // 2 - 1     # CountLeadingZeros(value) - 1, in pairs
    shift -= left_shift_bit_pairs
    value <<= 2 * left_shift_bit_pairs

    def mul(a, b):                    # a FixedPoint product: SaturatingRoundingDoublingHighMul of the raws
        return int(fxp.srdhm(a, b))

    def rescale_up(raw, bits):        # Rescale to fewer integer bits: SaturatingRoundingMultiplyByPOT<bits>
        return int(fxp.saturating_lshift(raw, bits))

    fixed_input = value >> 1                                   # F3
    half_input = int(fxp.rdbpot(fixed_input, 1))               # SaturatingRoundingMultiplyByPOT<-1>
    half_three = (1 << 28) + (1 << 27)                         # 1.5 in F3
    x = 1 << 28                                                # F3::One()
    for _ in range(5):
        x3 = rescale_up(mul(mul(x, x), x), 6)                  # F9 -> F3
        x = rescale_up(int(fxp.wrap32(mul(half_three, x) - mul(half_input, x3))), 3)   # F6 -> F3
    x = mul(x, 1518500250)                                     # * sqrt(2) / 2 (F0)
    if shift < 0:
        x = int(fxp.wrap32(x << -shift))
        shift = 0
    return x, -shift


def rsqrt(in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """TFLM RSQRT int8 (micro/kernels/elementwise.cc ``RsqrtEvalQuantized``): per input the
    integer inverse square root of q - zp (``inv_sqrt_multiplier_exp``) applied to 1 with 20
    extra bits, then the multiplier of 1 / (sqrt(in_scale) * out_scale) (a float32 sqrt and
    product, the quotient in double), 20 bits back, plus the output zero point. q == zp gives
    127 ("any value close to 0 represents the max output value"). TFLM fails the inference on
    an input below the zero point (rsqrt of a negative number); those entries hold 127 too."""
    _check_scales("RSQRT", in_scale, out_scale)
    product = np.sqrt(_f32(in_scale)) * _f32(out_scale)        # float32, as the C computes it
    multiplier, shift = fxp.quantize_multiplier(1.0 / float(product))
    k_shift = 20
    out = np.full(256, 127, np.int64)
    for i, value in enumerate(INPUTS - int(in_zp)):
        if value <= 0:
            continue
        inv_multiplier, inv_shift = inv_sqrt_multiplier_exp(int(value))
        data = fxp.mbqm(1, inv_multiplier, inv_shift + k_shift)
        out[i] = fxp.mbqm(data, multiplier, shift - k_shift) + int(out_zp)
    return _saturate_int8(out)
