"""adaptc.luts: every int8 table is what TFLite Micro computes, bit for bit.

Each case builds one-operator int8 TFLite models whose input holds all 256 int8 values, runs
them in the TFLM Python interpreter and compares the output with our table, over a grid of
input scales (1/256 .. 0.5, and beyond for LOGISTIC / TANH, whose saturation radius shrinks to
a few steps), every kind of input zero point (-128 .. 127) and output parameters from the
ones converters write to the extremes TFLM still accepts. Where TFLM refuses parameters, we
refuse them too; where TFLM silently assumes output parameters, we refuse others and the test
shows what TFLM does with them. The float32 builders are checked against their formula.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from adaptc import luts
from tflite_ops import (
    elu_model,
    elu_model_f32,
    hard_swish_model,
    hard_swish_model_f32,
    leaky_relu_model,
    leaky_relu_model_f32,
    logistic_model,
    logistic_model_f32,
    quantize_model,
    run_tflm,
    tanh_model,
    tanh_model_f32,
)

SHAPE = (1, 16, 16, 1)
ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(SHAPE)  # table order: input i - 128

IN_SCALES = (1 / 256, 0.0029, 0.0117, 0.02, 0.0625, 0.1, 0.237, 0.5) + tuple(
    float(s) for s in np.exp(np.random.default_rng(7).uniform(np.log(1 / 256), np.log(0.5), 8)))
IN_ZPS = (-128, -100, -1, 0, 17, 127)
ALPHAS = (0.01, 0.1, 0.2, 0.3, 0.5, 1.5, -0.25)


def _tflm_table(model: bytes) -> np.ndarray:
    return run_tflm(model, ALL_INT8).reshape(-1)


def _assert_same(ours: np.ndarray, model: bytes, what: str) -> None:
    assert ours.dtype == np.int8 and ours.shape == (256,), what
    ref = _tflm_table(model)
    bad = np.flatnonzero(ours != ref)
    assert bad.size == 0, (f"{what}: {bad.size} entries differ; inputs {bad[:4] - 128}: "
                           f"ours {ours[bad[:4]]}, TFLM {ref[bad[:4]]}")


def _grid(in_scale, out_params):
    """(in_zp, out_scale, out_zp) over every input zero point; ``out_params(s, z)`` lists the
    output parameters to try for that input."""
    for z in IN_ZPS:
        for out_scale, out_zp in out_params(in_scale, z):
            yield z, out_scale, out_zp


# ----------------------------------------------------------------------------------------------
# bit-exact with TFLM
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_scale", IN_SCALES + (1.0, 2.0, 16.0))
def test_logistic_matches_tflm(in_scale):
    for z in IN_ZPS:
        _assert_same(luts.logistic(in_scale, z, 1 / 256, -128),
                     logistic_model(SHAPE, (in_scale, z)), f"LOGISTIC in ({in_scale}, {z})")


@pytest.mark.parametrize("in_scale", IN_SCALES + (1.0, 2.0, 16.0))
def test_tanh_matches_tflm(in_scale):
    for z in IN_ZPS:
        _assert_same(luts.tanh(in_scale, z, 1 / 128, 0),
                     tanh_model(SHAPE, (in_scale, z)), f"TANH in ({in_scale}, {z})")


def _hard_swish_outputs(s, z):
    # Converters: output range [-0.375, max(x)]; and the extremes, down to in/out just under 128.
    hi = max(s * (127 - z), 3.0)
    yield (hi + 0.375) / 255, -128 + round(0.375 * 255 / (hi + 0.375))
    yield s, z
    yield s * 1.7, -128
    yield 0.02, 60
    yield s / 127.5, -90


@pytest.mark.parametrize("in_scale", IN_SCALES)
def test_hard_swish_matches_tflm(in_scale):
    for z, out_scale, out_zp in _grid(in_scale, _hard_swish_outputs):
        _assert_same(luts.hard_swish(in_scale, z, out_scale, out_zp),
                     hard_swish_model(SHAPE, (in_scale, z), (out_scale, out_zp)),
                     f"HARD_SWISH in ({in_scale}, {z}) out ({out_scale}, {out_zp})")


def _leaky_relu_outputs(s, z):
    yield s, z                # what converters usually write
    yield s * 0.8, -5
    yield 0.02, -5
    yield s / 3, 100          # saturates
    yield s * 4, -128


@pytest.mark.parametrize("in_scale", IN_SCALES)
def test_leaky_relu_matches_tflm(in_scale):
    for (z, out_scale, out_zp), alpha in itertools.product(_grid(in_scale, _leaky_relu_outputs), ALPHAS):
        _assert_same(luts.leaky_relu(in_scale, z, out_scale, out_zp, alpha),
                     leaky_relu_model(SHAPE, (in_scale, z), (out_scale, out_zp), alpha),
                     f"LEAKY_RELU in ({in_scale}, {z}) out ({out_scale}, {out_zp}) alpha {alpha}")


def _elu_outputs(s, z):
    hi = max(s * (127 - z), 0.01)
    yield (hi + 1) / 255, -128 + round(255 / (hi + 1))  # output range [-1, max(x)]
    yield s, z
    yield 0.0117, -128
    yield s / 3, 20
    yield 0.3, 127


@pytest.mark.parametrize("in_scale", IN_SCALES)
def test_elu_matches_tflm(in_scale):
    for z, out_scale, out_zp in _grid(in_scale, _elu_outputs):
        _assert_same(luts.elu(in_scale, z, out_scale, out_zp),
                     elu_model(SHAPE, (in_scale, z), (out_scale, out_zp)),
                     f"ELU in ({in_scale}, {z}) out ({out_scale}, {out_zp})")


def _requantize_outputs(s, z):
    yield s, z                # identity
    yield s, -z // 2          # a zero-point shift only
    yield s * 2, 0
    yield s / 2, -128
    yield 0.0173, 9
    yield s * 100, 127        # collapses to a few values
    yield s / 100, -3         # saturates almost everywhere


@pytest.mark.parametrize("in_scale", IN_SCALES)
def test_requantize_matches_tflm(in_scale):
    for z, out_scale, out_zp in _grid(in_scale, _requantize_outputs):
        _assert_same(luts.requantize(in_scale, z, out_scale, out_zp),
                     quantize_model(SHAPE, (in_scale, z), (out_scale, out_zp)),
                     f"QUANTIZE in ({in_scale}, {z}) out ({out_scale}, {out_zp})")


@pytest.mark.parametrize("in_scale, k", [(0.001, 1), (0.001, 3), (0.0029, 2), (1 / 256, 1), (1 / 256, 5)])
def test_elu_is_exp_minus_one_in_float32(in_scale, k):
    """TFLM's ELU table takes ``std::exp(x) - 1.0f`` in float32, not expm1: with the output
    scale put between the two at the input -k, they round to different outputs."""
    x = np.float32(in_scale) * np.float32(-k)
    exp_minus_one = np.float32(np.exp(np.float64(x))) - np.float32(1)
    expm1 = np.float32(np.expm1(np.float64(x)))
    out_scale = -(float(exp_minus_one) + float(expm1))  # y / out_scale = -0.5 half way between
    inverse_scale = np.float32(1) / np.float32(out_scale)
    as_exp, as_expm1 = (int(np.copysign(np.floor(abs(float(v * inverse_scale)) + 0.5), -1))
                        for v in (exp_minus_one, expm1))
    assert as_exp != as_expm1, "the case does not tell exp(x) - 1 from expm1(x)"
    ref = _tflm_table(elu_model(SHAPE, (in_scale, 0), (out_scale, 0)))
    assert ref[128 - k] == as_exp
    _assert_same(luts.elu(in_scale, 0, out_scale, 0), elu_model(SHAPE, (in_scale, 0), (out_scale, 0)),
                 f"ELU in ({in_scale}, 0) out ({out_scale}, 0)")


# ----------------------------------------------------------------------------------------------
# parameters TFLM refuses or assumes
# ----------------------------------------------------------------------------------------------
def test_logistic_output_params():
    """TFLM refuses an output zero point other than -128; it does not check the output scale
    but computes as if it were 1/256. We refuse both."""
    with pytest.raises(RuntimeError):
        _tflm_table(logistic_model(SHAPE, (0.05, 3), (1 / 256, 0)))
    with pytest.raises(ValueError, match="zero point -128"):
        luts.logistic(0.05, 3, 1 / 256, 0)
    assert np.array_equal(_tflm_table(logistic_model(SHAPE, (0.05, 3), (1 / 200, -128))),
                          luts.logistic(0.05, 3))
    with pytest.raises(ValueError, match="scale 1/256"):
        luts.logistic(0.05, 3, 1 / 200, -128)


def test_tanh_output_params():
    """TFLM checks neither output parameter of int8 TANH; it computes as if they were
    (1/128, 0). We refuse others."""
    assert np.array_equal(_tflm_table(tanh_model(SHAPE, (0.05, 3), (0.01, 17))), luts.tanh(0.05, 3))
    for out_scale, out_zp in ((0.01, 0), (1 / 128, 17)):
        with pytest.raises(ValueError, match="scale 1/128 and zero point 0"):
            luts.tanh(0.05, 3, out_scale, out_zp)


@pytest.mark.parametrize("in_scale, out_scale", [(1.0, 1 / 128), (1.0, 1 / 256), (0.5, 0.001)])
def test_hard_swish_refuses_what_tflm_refuses(in_scale, out_scale):
    """in_scale / out_scale >= 128: a positive output exponent, refused by TFLM's Prepare."""
    with pytest.raises(RuntimeError):
        _tflm_table(hard_swish_model(SHAPE, (in_scale, 0), (out_scale, 0)))
    with pytest.raises(ValueError, match="in_scale / out_scale < 128"):
        luts.hard_swish(in_scale, 0, out_scale, 0)


@pytest.mark.parametrize("fn, args", [
    (luts.logistic, (0.0, 0)), (luts.tanh, (-0.1, 0)), (luts.hard_swish, (0.1, 0, 0.0, 0)),
    (luts.leaky_relu, (0.1, 0, float("inf"), 0, 0.2)), (luts.elu, (0.1, 0, 0.0, 0)),
    (luts.requantize, (float("nan"), 0, 0.1, 0)),
])
def test_bad_scales_are_refused(fn, args):
    with pytest.raises(ValueError, match="positive and finite"):
        fn(*args)


# ----------------------------------------------------------------------------------------------
# the float32 builders
# ----------------------------------------------------------------------------------------------
def _float_cases():
    def hard_swish(x):
        return x * np.clip(x + 3, 0, 6) / 6

    return [
        ("logistic", logistic_model_f32(SHAPE), lambda x: 1 / (1 + np.exp(-x))),
        ("tanh", tanh_model_f32(SHAPE), np.tanh),
        ("hard_swish", hard_swish_model_f32(SHAPE), hard_swish),
        ("leaky_relu 0.2", leaky_relu_model_f32(SHAPE), lambda x: np.where(x > 0, x, 0.2 * x)),
        ("leaky_relu -0.3", leaky_relu_model_f32(SHAPE, alpha=-0.3), lambda x: np.where(x > 0, x, -0.3 * x)),
        ("elu", elu_model_f32(SHAPE), lambda x: np.where(x < 0, np.expm1(x), x)),
    ]


@pytest.mark.parametrize("name, model, reference", _float_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_float_builders_match_their_formula(name, model, reference):
    x = np.linspace(-9.0, 9.0, 256, dtype=np.float32).reshape(SHAPE)
    y = run_tflm(model, x)
    assert y.dtype == np.float32 and y.shape == SHAPE, name
    np.testing.assert_allclose(y, reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------------------------------------- RSQRT (issue 16)

@pytest.mark.parametrize("q", [((0.05, -128), (0.02, -128)), ((0.01, 0), (0.1, -100)), ((0.5, -20), (0.01, 0)),
                               ((0.002, -128), (0.5, -128)), ((0.3, 10), (0.05, 5))])
def test_rsqrt_table_is_tflm(q):
    """luts.rsqrt equals TFLM's int8 RSQRT on every input TFLM accepts (q >= zero point); q == zp
    and the inputs below (TFLM fails there) hold 127."""
    import tflite_ops as T

    (s_in, zp_in), (s_out, zp_out) = q
    valid = np.arange(zp_in, 128, dtype=np.int8)
    x = np.resize(valid, 256).reshape(1, 256)
    got = T.run_tflm(T.rsqrt_model((1, 256), (s_in, zp_in), (s_out, zp_out)), x).reshape(-1)
    table = luts.rsqrt(s_in, zp_in, s_out, zp_out)
    np.testing.assert_array_equal(table[x.reshape(-1).astype(int) + 128], got)
    assert np.all(table[:zp_in + 129] == 127)


def test_inv_sqrt_multiplier_exp():
    """GetInvSqrtQuantizedMultiplierExp: multiplier * 2^(shift - 31) ~ 1 / sqrt(value)."""
    assert luts.inv_sqrt_multiplier_exp(0) == luts.inv_sqrt_multiplier_exp(1) == ((1 << 31) - 1, 0)
    for v in (2, 3, 4, 255, 65025, 1 << 20, (1 << 31) - 1):
        m, s = luts.inv_sqrt_multiplier_exp(v)
        assert abs(m * 2.0 ** (s - 31) * np.sqrt(v) - 1) < 1e-4
