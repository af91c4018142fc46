"""SOFTMAX (targets/cortex_m/kernels/softmax.py): softmax_s8 and softmax_f32 called directly
against the NumPy references (int8 bit-exact, float32 to ~1e-5) and against TensorFlow Lite
Micro; the exp table and parameters softmax_s8 takes. LOG_SOFTMAX int8: log_softmax_s8 as
one-step programs (host and emulated Cortex-M4) against adaptc.fixedpoint.log_softmax_s8, and
that against TensorFlow Lite Micro."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

import adaptc.api as api
import kernel_harness as harness
import kernel_ref as ref
from adaptc import fixedpoint as fxp
from adaptc.program import Program, Step, Tensor
from kernel_cases import F_RTOL
from kernel_harness import INT32_MAX, seed
from tflm_harness import f32, needs_tflm, tfl, tflm_run

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

pytestmark = harness.needs_cc

FAMILY = "softmax"

SOFTMAX_CASES = [
    dict(id="scale_1_over_16_depth10", scale=1 / 16, depth=10, rows=4),
    dict(id="typical_scale", scale=0.09765625, depth=12, rows=3),
    dict(id="small_scale", scale=0.0039215686, depth=20, rows=3),
    dict(id="tiny_scale", scale=1e-5, depth=7, rows=2),
    dict(id="large_scale", scale=0.5, depth=16, rows=3),
    dict(id="huge_scale_capped_multiplier", scale=200.0, depth=9, rows=3),
    dict(id="beta_0_5", scale=0.1, beta=0.5, depth=10, rows=2),
    dict(id="beta_2", scale=0.07, beta=2.0, depth=10, rows=2),
    dict(id="depth1", scale=0.1, depth=1, rows=5),
    dict(id="constant_rows", scale=0.1, depth=8, rows=3, constant=True),
    dict(id="depth100", scale=0.05, depth=100, rows=2),
    dict(id="depth600_constant_exponent_over_31", scale=0.05, depth=600, rows=1, constant=True),
    dict(id="depth1000_narrow", scale=0.001, depth=1000, rows=1),
    dict(id="extremes", scale=0.2, depth=6, rows=2, extremes=True),
    # many rows: sensitive to single-LSB errors in the Q12.19 sum / reciprocal
    dict(id="many_rows_depth16", scale=0.05, depth=16, rows=3000),
    dict(id="many_rows_depth64", scale=0.01, depth=64, rows=1500),
]


@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=lambda c: c["id"])
def test_softmax_s8(lib, case):
    rng = np.random.default_rng(seed(case["id"]))
    rows, depth, scale, beta = case["rows"], case["depth"], case["scale"], case.get("beta", 1.0)
    if case.get("constant"):
        x = np.repeat(rng.integers(-128, 128, size=(rows, 1)), depth, axis=1).astype(np.int8)
    elif case.get("extremes"):
        x = np.array([[-128, 127, -128, 127, 0, -1], [-128, -128, -128, -127, -128, -128]],
                     dtype=np.int8)
    else:
        x = rng.integers(-128, 128, size=(rows, depth)).astype(np.int8)
    table = ref.softmax_exp_table(scale, beta)
    assert table.dtype == np.int32 and table.shape == (256,)
    params = dict(rows=rows, depth=depth, exp_table=table)
    got = lib.run("softmax_s8", params, (rows, depth), input=x)
    want = ref.softmax_s8_ref(x, scale, beta)
    np.testing.assert_array_equal(got, want)
    # and close to the real softmax (output scale 1/256, zero point -128)
    real = ref.softmax_f32_ref(x.astype(np.float64) * float(np.float32(scale)), beta)
    assert np.max(np.abs((got.astype(float) + 128) / 256 - real)) <= 1.5 / 256 + 1e-3


def test_softmax_exp_table_properties():
    for scale, beta in [(1 / 16, 1.0), (0.0039215686, 1.0), (0.5, 1.0), (0.1, 0.5), (200.0, 1.0)]:
        t = ref.softmax_exp_table(scale, beta).astype(np.int64)
        assert t[0] == INT32_MAX
        assert np.all(np.diff(t) <= 0) and np.all(t >= 0)
        _, _, diff_min = ref.softmax_params(scale, beta)
        assert np.all(t[np.arange(256) > -diff_min] == 0)
        real = np.exp(-np.arange(256) * float(np.float32(scale)) * beta)
        assert np.max(np.abs(t / 2.0**31 - real)) < 1e-4
    # scale 1/16 is exactly representable: exp(-k/16) up to gemmlowp's polynomial
    # error, and 0 below diff_min = -248
    t = ref.softmax_exp_table(1 / 16)
    np.testing.assert_allclose(t / 2.0**31, np.exp(-np.arange(256) / 16), rtol=0, atol=3e-7)
    assert ref.softmax_params(1 / 16)[2] == -248 and t[248] > 0 and t[249] == 0


def test_softmax_params_known_values():
    # scale 1/256: beta*scale*2^26 = 2^18 exactly -> multiplier 2^30, left shift 19
    assert ref.softmax_params(1 / 256) == (2**30, 19, -math.floor(31 * 2**26 / 2**19))
    # capped multiplier: min(1000 * 2^26, 2^31 - 1) = 2^31 - 1 -> (2^31 - 1, 31); diff_min 0
    assert ref.softmax_params(1000.0) == (2**31 - 1, 31, 0)


@pytest.mark.parametrize("log", [0, 1], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("rows,depth,beta,spread", [(3, 10, 1.0, 3.0), (2, 100, 1.0, 10.0),
                                                    (4, 1, 1.0, 1.0), (2, 12, 0.5, 20.0), (2, 8, 1.0, 100.0)])
def test_softmax_f32(lib, rows, depth, beta, spread, log):
    """softmax_f32, and with ``log`` the log-softmax: (x - max) * beta - log(sum), exact where the
    probabilities underflow (spread 100: log-probabilities of -700 and below)."""
    rng = np.random.default_rng(rows * depth)
    x = (rng.standard_normal((rows, depth)) * spread).astype(np.float32)
    got = lib.run("softmax_f32", dict(rows=rows, depth=depth, beta=beta, log=log), (rows, depth), input=x)
    if log:
        x64 = (x.astype(np.float64) - x.max(axis=-1, keepdims=True)) * beta
        want = x64 - np.log(np.exp(x64).sum(axis=-1, keepdims=True))
        np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=1e-5)
    else:
        np.testing.assert_allclose(got, ref.softmax_f32_ref(x, beta), rtol=F_RTOL, atol=1e-7)


@needs_tflm
@pytest.mark.parametrize("scale,beta,depth", [(1 / 16, 1.0, 10), (0.0039215686, 1.0, 30),
                                              (0.1, 0.5, 12), (0.07, 2.0, 100), (0.5, 1.0, 7),
                                              (200.0, 1.0, 9), (1e-5, 1.0, 5)])
def test_softmax_matches_tflite_micro(lib, scale, beta, depth):
    rng = np.random.default_rng(depth)
    rows = 6
    scale = f32(scale)
    x = rng.integers(-128, 128, size=(rows, depth)).astype(np.int8)
    x[0] = 17  # constant row
    want = tflm_run(tfl.BuiltinOperator.SOFTMAX,
                    [((rows, depth), tfl.TensorType.INT8, ([scale], [3]), False)], (rows, depth),
                    ([1 / 256], [-128]), tfl.BuiltinOptions.SoftmaxOptions,
                    tfl.SoftmaxOptionsT(beta=beta), [x])
    params = dict(rows=rows, depth=depth, exp_table=ref.softmax_exp_table(scale, beta))
    got = lib.run("softmax_s8", params, (rows, depth), input=x)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ LOG_SOFTMAX int8

LOG_CASES = [(0.1, 0, (3, 10)), (0.05, -20, (2, 40)), (0.5, 5, (4, 7)), (2.0, 0, (2, 12)), (0.01, 3, (1, 300)),
             (1e-3, 0, (2, 9)), (8.0, -128, (3, 5))]


def _log_softmax_program(scale, shape):
    p = fxp.log_softmax_params(scale)
    attrs = {k: int(p[k]) for k in ("reverse_multiplier", "reverse_shift", "diff_min")}
    step = Step(0, "adaptc.qlog_softmax", "test case", [0], 1, {"input_scale": scale, **attrs},
                {"exp_table": p["exp_table"], "diff_q5": p["diff_q5"]}, in_shapes=[shape], out_shape=shape)
    return Program("log_softmax_case", [Tensor(0, "x", shape, "int8", "input"),
                                        Tensor(1, "y", shape, "int8", "output")], [step], [0], [1]), p


def _log_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, size=shape).astype(np.int8) for _ in range(3)]
    return np.stack(xs + [np.full(shape, -7, np.int8), np.where(np.arange(shape[-1]) % 2, 127, -128)
                          .astype(np.int8) * np.ones(shape, np.int8)])


@needs_tflm
@pytest.mark.parametrize("scale,zp,shape", LOG_CASES)
def test_log_softmax_reference_is_tflite_micros(scale, zp, shape):
    """adaptc.fixedpoint.log_softmax_s8 (the tables, log_x_for_x_greater_than_or_equal_to_1)
    equals TFLite Micro's LOG_SOFTMAX bit for bit."""
    import tflite_ops as T

    buf = T.log_softmax_model(shape, (scale, zp))
    p = fxp.log_softmax_params(scale)
    for x in _log_inputs(shape, shape[-1]):
        np.testing.assert_array_equal(fxp.log_softmax_s8(x, p), T.run_tflm(buf, x))


@pytest.mark.parametrize("scale,zp,shape", LOG_CASES)
def test_log_softmax_s8_host(scale, zp, shape):
    prog, p = _log_softmax_program(scale, shape)
    m = api.compile_program(prog, "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["log_softmax_s8"]
    outs = [m.run(x) for x in _log_inputs(shape, shape[-1])]
    for x, got in zip(_log_inputs(shape, shape[-1]), outs):
        np.testing.assert_array_equal(got, fxp.log_softmax_s8(x, p))
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 2


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_log_softmax_s8_emulated():
    scale, zp, shape = LOG_CASES[1]
    prog, p = _log_softmax_program(scale, shape)
    xs = _log_inputs(shape, 1)
    r = api.compile_program(prog, "cortex-m4").run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(shape), fxp.log_softmax_s8(x, p))


def test_every_kernel_is_covered():
    """Every kernel of the family is exercised: called directly, or (log_softmax_s8) as one-step
    programs above."""
    harness.assert_covered(FAMILY, harness.wrapped_kernels(FAMILY) | {"log_softmax_s8"})
