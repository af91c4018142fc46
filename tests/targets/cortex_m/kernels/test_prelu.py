"""PReLU: prelu_s8 (TFLite Micro's int8 BroadcastPrelu4DSlow) and prelu_f32, as one-step programs
through the Cortex-M target -- on the host and on an emulated core -- against NumPy references
written from TFLM's reference_ops::BroadcastPrelu4DSlow / BroadcastPrelu4DSlowFloat. alpha is a
constant (``step.consts["alpha"]``, flash) broadcast to the input: per channel, per element, one
value; each case states the loops ``broadcast_loops`` must give."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
import kernel_ref as ref
import tflite_ops as T
from adaptc import prelu
from adaptc.program import Program, Step, Tensor

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
SHAPE = (1, 4, 5, 6)


def prelu_s8_ref(x, alpha, a) -> np.ndarray:
    """BroadcastPrelu4DSlow (int8): v = x - zp; v >= 0: MBQM(v, identity); else
    MBQM(v * (alpha - zp_alpha), alpha multiplier); + output zp, clamped."""
    v = x.astype(np.int64) - a["input_zp"]
    al = np.broadcast_to(alpha.astype(np.int64) - a["alpha_zp"], v.shape)
    pos = ref.mbqm(v, a["identity_multiplier"], a["identity_shift"])
    neg = ref.mbqm(ref.wrap32(v * al), a["alpha_multiplier"], a["alpha_shift"])
    return np.clip(np.where(v >= 0, pos, neg) + a["output_zp"], a["act_min"], a["act_max"]).astype(np.int8)


# (id, alpha shape, (s_in, s_alpha, s_out), (zp_in, zp_alpha, zp_out), dims, strides of alpha)
CASES = [
    ("per_channel", (1, 1, 1, 6), (0.05, 0.01, 0.04), (-3, 3, 10), [1, 1, 20, 6], [0, 0, 0, 1]),
    ("per_element", SHAPE, (0.02, 0.004, 0.03), (20, -7, -5), [1, 1, 1, 120], [0, 0, 0, 1]),
    ("one_value", (1, 1, 1, 1), (0.1, 0.02, 0.01), (127, 0, -128), [1, 1, 1, 120], [0, 0, 0, 0]),
    ("spatial", (1, 4, 5, 1), (0.03, 0.05, 0.2), (-128, 10, 0), [1, 1, 20, 6], [0, 0, 1, 0]),
]


def _program(op, alpha, attrs, dtype) -> Program:
    x = Tensor(0, "x", SHAPE, dtype, "input")
    y = Tensor(1, "y", SHAPE, dtype, "output")
    step = Step(0, op, "test case", [0], 1, attrs, {"alpha": alpha}, in_shapes=[SHAPE], out_shape=SHAPE)
    return Program("prelu_case", [x, y], [step], [0], [1])


def _case(case):
    cid, shape, scales, zps, _, _ = case
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    alpha = rng.integers(-128, 128, size=shape, dtype=np.int8)
    alpha.flat[0] = -128
    attrs = {"input_zp": zps[0], "alpha_zp": zps[1], "output_zp": zps[2], **prelu.multipliers(*scales),
             "act_min": -128, "act_max": 127}
    xs = [rng.integers(-128, 128, size=SHAPE, dtype=np.int8) for _ in range(3)]
    xs += [np.full(SHAPE, -128, np.int8), np.full(SHAPE, 127, np.int8)]
    return alpha, attrs, xs


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_reference_is_tflite_micro(case):
    alpha, attrs, xs = _case(case)
    scales, zps = case[2], case[3]
    buf = T.prelu_model(SHAPE, alpha.reshape(case[1][1:]) if case[1] != (1, 1, 1, 1) else alpha.reshape(1),
                        (scales[0], zps[0]), (scales[1], zps[1]), (scales[2], zps[2]))
    for x in xs:
        np.testing.assert_array_equal(T.run_tflm(buf, x), prelu_s8_ref(x, alpha, attrs))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_prelu_s8_host(case):
    alpha, attrs, xs = _case(case)
    m = api.compile_program(_program("adaptc.qprelu", alpha, attrs, "int8"), "cortex-m4")
    [step] = m.scheduled.steps
    assert step.kernel == "prelu_s8"
    assert (step.call.params["dims"], step.call.params["strides2"]) == (case[4], case[5])
    outs = [m.run(x) for x in xs]
    for x, got in zip(xs, outs):
        np.testing.assert_array_equal(got, prelu_s8_ref(x, alpha, attrs))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_prelu_f32_host(case):
    rng = np.random.default_rng(zlib.crc32(case[0].encode()) + 1)
    alpha = rng.normal(0, 0.5, case[1]).astype(np.float32)
    m = api.compile_program(_program("adaptc.prelu_f32", alpha, {}, "float32"), "cortex-m4")
    assert m.scheduled.steps[0].kernel == "prelu_f32"
    for _ in range(3):
        x = rng.normal(0, 2, SHAPE).astype(np.float32)
        x.flat[:3] = [0.0, -0.0, -1e-30]
        want = np.where(x >= 0, x, (x.astype(np.float64) * alpha).astype(np.float32))
        np.testing.assert_array_equal(m.run(x), want)


def test_cost_features_are_the_loop_counts():
    alpha, attrs, _ = _case(CASES[0])
    m = api.compile_program(_program("adaptc.qprelu", alpha, attrs, "int8"), "cortex-m4")
    from adaptc.targets.cortex_m.kernels import KERNELS

    step = m.program.steps[0]
    assert KERNELS["prelu_s8"].features(step) == {"call": 1, "rows": 20, "elements": 120}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_prelu_s8_on_the_emulated_m4():
    alpha, attrs, xs = _case(CASES[0])
    m = api.compile_program(_program("adaptc.qprelu", alpha, attrs, "int8"), "cortex-m4")
    r = m.run_batch_on_target(np.stack(xs))
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(SHAPE), prelu_s8_ref(x, alpha, attrs))
