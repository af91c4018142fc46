"""The broadcasting binary kernels beside MUL -- addsub_s8, squared_difference_s8, maxmin_s8
(TFLite Micro's int8 ADD / SUB, SQUARED_DIFFERENCE, MAXIMUM / MINIMUM arithmetic) and
binary_f32 (every float operator, an op code) -- as one-step programs through the Cortex-M
target, on the host and on emulated cores, against NumPy references written from TFLM's
reference kernels (themselves checked against TFLM).

A program has one input: each case combines the input with itself (same shape) or with a
constant second operand (flash) of a broadcastable shape."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
import kernel_ref as ref
import tflite_ops as T
from adaptc.program import Program, Step, Tensor
from adaptc.qops import BINARY_F32
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def _rescale(x, zp, left_shift, multiplier, shift):
    return ref.mbqm((np.asarray(x, np.int64) - zp) << left_shift, multiplier, shift)


def addsub_s8_ref(x1, x2, a) -> np.ndarray:
    """TFLM BroadcastAdd6DSlow / BroadcastQuantSubSlow (int8): the inputs rescaled by
    MBQM((x - zp) << 20), combined with their signs, requantized, offset, clamped."""
    s1 = _rescale(x1, a["input1_zp"], a["left_shift"], a["input1_multiplier"], a["input1_shift"])
    s2 = _rescale(x2, a["input2_zp"], a["left_shift"], a["input2_multiplier"], a["input2_shift"])
    raw = a["input1_sign"] * s1 + a["input2_sign"] * s2
    out = ref.mbqm(raw, a["multiplier"][0], a["shift"][0]) + a["output_zp"]
    return np.clip(out, a["act_min"], a["act_max"]).astype(np.int8)


def squared_difference_s8_ref(x1, x2, a) -> np.ndarray:
    """TFLM SquaredDifference<int8_t>: (s1 - s2)^2 of the inputs rescaled with left_shift 7."""
    s1 = _rescale(x1, a["input1_zp"], a["left_shift"], a["input1_multiplier"], a["input1_shift"])
    s2 = _rescale(x2, a["input2_zp"], a["left_shift"], a["input2_multiplier"], a["input2_shift"])
    out = ref.mbqm(ref.wrap32((s1 - s2) ** 2), a["multiplier"][0], a["shift"][0]) + a["output_zp"]
    return np.clip(out, a["act_min"], a["act_max"]).astype(np.int8)


def maxmin_s8_ref(x1, x2, a) -> np.ndarray:
    op = np.maximum if a["function"] == "maximum" else np.minimum
    return np.clip(op(np.asarray(x1, np.int32), x2), a["act_min"], a["act_max"]).astype(np.int8)


def binary_f32_ref(x1, x2, function, lo=-np.inf, hi=np.inf) -> np.ndarray:
    """Each operator exact in float64 then rounded once to float32 (one IEEE operation); the
    squared difference rounds the difference, then its square."""
    a, b = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    if function == "squared_difference":
        d = (a - b).astype(np.float32).astype(np.float64)
        y = d * d
    else:
        y = {"add": a + b, "subtract": a - b, "reverse_subtract": b - a, "divide": a / b, "reverse_divide": b / a,
             "maximum": np.maximum(a, b), "minimum": np.minimum(a, b)}[function]
    return np.clip(y.astype(np.float32), np.float32(lo), np.float32(hi))


def _attrs(kind: str, q1, q2, qo, act=(-128, 127), sign2=-1) -> dict:
    """What LegalizeQDQ computes (TFLM's Prepare, in doubles of the float32 scales)."""
    s1, s2, so = (float(np.float32(q[0])) for q in (q1, q2, qo))
    left_shift = 7 if kind == "adaptc.qsquared_difference" else 20
    twice = 2 * max(s1, s2)
    m1, sh1 = ref.quantize_multiplier(s1 / twice)
    m2, sh2 = ref.quantize_multiplier(s2 / twice)
    real = twice * twice / ((1 << 14) * so) if left_shift == 7 else twice / ((1 << 20) * so)
    mo, sho = ref.quantize_multiplier(real)
    a = {"left_shift": left_shift, "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2,
         "input2_shift": sh2, "input1_zp": q1[1], "input2_zp": q2[1], "multiplier": [mo], "shift": [sho],
         "output_zp": qo[1], "act_min": act[0], "act_max": act[1]}
    if kind == "adaptc.qaddsub":
        a.update(input1_sign=1, input2_sign=sign2)
    return a


def program(op: str, shape1: tuple, const2, attrs: dict, dtype: str) -> Program:
    out_shape = tuple(np.broadcast_shapes(shape1, shape1 if const2 is None else const2.shape))
    x = Tensor(0, "x", tuple(shape1), dtype, "input")
    y = Tensor(1, "y", out_shape, dtype, "output")
    if const2 is None:
        step = Step(0, op, "test case", [0, 0], 1, attrs, {}, in_shapes=[tuple(shape1)] * 2, out_shape=out_shape)
    else:
        step = Step(0, op, "test case", [0], 1, attrs, {"input2": const2}, in_shapes=[tuple(shape1)],
                    out_shape=out_shape)
    return Program("binary_case", [x, y], [step], [0], [1])


REFS = {"adaptc.qaddsub": addsub_s8_ref, "adaptc.qsquared_difference": squared_difference_s8_ref,
        "adaptc.qmaxmin": maxmin_s8_ref}
KERNEL = {"adaptc.qaddsub": "addsub_s8", "adaptc.qsquared_difference": "squared_difference_s8",
          "adaptc.qmaxmin": "maxmin_s8"}

# (id, composite, input shape, constant shape or None, attrs)
CASES = [
    ("sub_channel", "adaptc.qaddsub", (1, 4, 5, 6), (1, 1, 1, 6), _attrs("adaptc.qaddsub", (0.05, 3), (0.02, -4),
                                                                          (0.06, 1))),
    ("add_spatial_relu", "adaptc.qaddsub", (1, 4, 5, 6), (1, 4, 5, 1),
     _attrs("adaptc.qaddsub", (0.05, 3), (0.02, -4), (0.06, 1), (1, 100), sign2=1)),
    ("reverse_sub_scalar", "adaptc.qaddsub", (2, 3, 4, 5), (1, 1, 1, 1),
     {**_attrs("adaptc.qaddsub", (0.013, -1), (0.047, 2), (0.05, 30)), "input1_sign": -1, "input2_sign": 1}),
    ("sub_self", "adaptc.qaddsub", (3, 6), None, _attrs("adaptc.qaddsub", (0.05, 3), (0.05, 3), (0.01, 0))),
    ("sqdiff_four_loops", "adaptc.qsquared_difference", (2, 3, 4, 5), (2, 1, 4, 1),
     _attrs("adaptc.qsquared_difference", (0.05, 3), (0.02, -4), (0.06, -128))),
    ("sqdiff_big_multiplier", "adaptc.qsquared_difference", (1, 5, 6), (5, 1),
     _attrs("adaptc.qsquared_difference", (0.5, 3), (0.5, -4), (0.00002, -128))),
    ("max_channel", "adaptc.qmaxmin", (1, 4, 5, 6), (1, 1, 1, 6),
     {"function": "maximum", "act_min": -128, "act_max": 127}),
    ("min_clamped", "adaptc.qmaxmin", (2, 3, 4, 5), (2, 1, 4, 1),
     {"function": "minimum", "act_min": -20, "act_max": 90}),
]


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _case(case):
    cid, kind, shape, cshape, attrs = case
    rng = np.random.default_rng(_seed(cid))
    c = None if cshape is None else rng.integers(-128, 128, size=cshape, dtype=np.int8)
    xs = [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]
    want = [REFS[kind](x, x if c is None else c, attrs) for x in xs]
    return program(kind, shape, c, attrs, "int8"), xs, want


@pytest.mark.parametrize("op", ["SUB", "ADD", "SQUARED_DIFFERENCE", "MAXIMUM"])
def test_references_are_tflite_micro(op):
    """The NumPy references with TFLM's parameters equal TFLite Micro bit for bit (a broadcast
    constant second input), so the cases below test against TFLM's arithmetic."""
    kind = {"SUB": "adaptc.qaddsub", "ADD": "adaptc.qaddsub", "SQUARED_DIFFERENCE": "adaptc.qsquared_difference",
            "MAXIMUM": "adaptc.qmaxmin"}[op]
    q1, q2, qo = ((0.05, 3), (0.05, 3), (0.05, 3)) if op == "MAXIMUM" else ((0.1, -20), (0.02, 7), (0.09, 10))
    attrs = {"function": "maximum", "act_min": -128, "act_max": 127} if op == "MAXIMUM" else \
        _attrs(kind, q1, q2, qo, sign2=1 if op == "ADD" else -1)
    rng = np.random.default_rng(_seed(op))
    c = rng.integers(-128, 128, size=(1, 1, 1, 6), dtype=np.int8)
    buf = T.binary_model(op, (1, 4, 5, 6), (1, 1, 1, 6), q1, q2, qo, const2=c)
    for _ in range(3):
        x = rng.integers(-128, 128, size=(1, 4, 5, 6), dtype=np.int8)
        np.testing.assert_array_equal(T.run_tflm(buf, x), REFS[kind](x, c, attrs))


def test_the_cases_reach_the_corners():
    """Both saturations, the narrow clamp, and a positive output shift of SQUARED_DIFFERENCE."""
    outs = np.concatenate([w.ravel() for c in CASES for w in _case(c)[2]])
    assert outs.min() == -128 and outs.max() == 127
    assert next(c for c in CASES if c[0] == "sqdiff_big_multiplier")[4]["shift"][0] > 0
    clamped = np.concatenate([w.ravel() for w in _case(next(c for c in CASES if c[0] == "min_clamped"))[2]])
    assert (clamped.min(), clamped.max()) == (-20, 90)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_int8_host(case):
    prog, xs, want = _case(case)
    m = api.compile_program(prog, "cortex-m4")
    [step] = m.scheduled.steps
    assert step.kernel == KERNEL[case[1]]
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(m.run(x), w)


def test_cost_features_by_hand():
    """[1, 4, 5, 6] x [1, 1, 1, 6]: 20 rows of 6; binary_f32 counts divisions apart."""
    prog, _, _ = _case(CASES[0])
    assert KERNELS["addsub_s8"].features(prog.steps[0]) == {"call": 1, "rows": 20, "elements": 120}
    c = np.ones((1, 1, 1, 6), np.float32)
    for function, div in (("divide", 120), ("maximum", 0)):
        step = program("adaptc.binary_f32", (1, 4, 5, 6), c, {"function": function}, "float32").steps[0]
        assert KERNELS["binary_f32"].features(step) == {"call": 1, "rows": 20, "elements": 120 - div,
                                                        "elements_div": div}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_int8_emulated(target):
    for case in CASES[::2]:
        prog, xs, want = _case(case)
        m = api.compile_program(prog, target)
        r = m.run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=case[0])


def _f_case(function, shape=(1, 4, 5, 6), cshape=(1, 1, 1, 6), act=(-np.inf, np.inf)):
    rng = np.random.default_rng(_seed(function + str(cshape)))
    c = None if cshape is None else (rng.uniform(0.5, 2.0, size=cshape) * rng.choice([-1, 1], size=cshape)
                                     ).astype(np.float32)
    attrs = {"function": function, "act_min": act[0], "act_max": act[1]}
    xs = [rng.normal(0.0, 3.0, size=shape).astype(np.float32) for _ in range(3)]
    want = [binary_f32_ref(x, x if c is None else c, function, *act) for x in xs]
    return program("adaptc.binary_f32", shape, c, attrs, "float32"), xs, want


@pytest.mark.parametrize("function", sorted(BINARY_F32))
def test_binary_f32_host(function):
    for prog, xs, want in (_f_case(function), _f_case(function, (2, 3, 4, 5), (2, 1, 4, 1), (-1.0, 6.0))):
        m = api.compile_program(prog, "cortex-m4", format="float32")
        assert [s.kernel for s in m.scheduled.steps] == ["binary_f32"]
        assert m.scheduled.steps[0].call.params["op"] == BINARY_F32[function][0]
        for x, w in zip(xs, want):
            np.testing.assert_array_equal(m.run(x), w)           # one IEEE operation: exact


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_binary_f32_emulated(target):
    """Soft float (M0+) and the single-precision FPU (M4): the same results bit for bit."""
    for function in ("subtract", "reverse_divide", "squared_difference", "minimum"):
        prog, xs, want = _f_case(function)
        m = api.compile_program(prog, target, format="float32")
        r = m.run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=function)


def test_one_record_per_kernel_and_no_variant():
    ops = ("adaptc.qaddsub", "adaptc.qsquared_difference", "adaptc.qmaxmin", "adaptc.binary_f32")
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op in ops}
    assert records == {"addsub_s8": ("adaptc.qaddsub", "ref"), "squared_difference_s8": ("adaptc.qsquared_difference",
                       "ref"), "maxmin_s8": ("adaptc.qmaxmin", "ref"), "binary_f32": ("adaptc.binary_f32", "ref")}
