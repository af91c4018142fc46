"""The broadcasting binary kernels beside MUL -- addsub_s8 and its DSP drop-in addsub_s8_dsp,
squared_difference_s8, maxmin_s8 (TFLite Micro's int8 ADD / SUB, SQUARED_DIFFERENCE, MAXIMUM /
MINIMUM arithmetic) and binary_f32 (every float operator, an op code) -- as one-step programs
through the Cortex-M target, on the host and on emulated cores, against NumPy references written
from TFLM's reference kernels (themselves checked against TFLM). Every ADD / SUB case runs through
each variant (the reference kernel alone, and the DSP kernel where its builder accepts the step,
which ``dsp_accepts`` states).

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
INT32_MAX = 2**31 - 1


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
    # ADD / SUB for both variants: the innermost strides 1 / 1, 1 / 0, 0 / 1, row lengths not a
    # multiple of four, the int8 extremes of zero points and activation range, shifts at the
    # edge of addsub_s8_dsp's exactness proof on either side of it
    ("add_same_shape_zp_extremes", "adaptc.qaddsub", (1, 4, 5, 7), None,
     _attrs("adaptc.qaddsub", (0.02, -128), (0.02, -128), (0.05, -128), sign2=1)),
    ("sub_first_broadcast_inner_odd", "adaptc.qaddsub", (1, 4, 5, 1), (1, 4, 5, 7),
     _attrs("adaptc.qaddsub", (0.04, 127), (0.03, -128), (0.02, 9), (-100, 100))),
    ("add_channel_odd_zp_extremes", "adaptc.qaddsub", (2, 3, 5, 7), (1, 1, 1, 7),
     _attrs("adaptc.qaddsub", (0.5, 127), (0.003, -128), (0.45, 127), sign2=1)),
    ("sub_pixel_saturating", "adaptc.qaddsub", (1, 3, 3, 9), (1, 3, 3, 1),
     _attrs("adaptc.qaddsub", (0.1, 0), (0.1, 0), (0.01, 0))),
    ("sub_four_loops", "adaptc.qaddsub", (2, 3, 4, 5), (2, 1, 4, 1),
     _attrs("adaptc.qaddsub", (0.05, 3), (0.02, -4), (0.06, -128))),
    ("add_dsp_widest_exact_input_shift_2", "adaptc.qaddsub", (1, 3, 5, 9), (1, 1, 1, 9),
     {**_attrs("adaptc.qaddsub", (0.05, 0), (0.05, 0), (0.5, 0), sign2=1), "input1_multiplier": 1 << 29,
      "input1_shift": 2, "input2_multiplier": 1 << 30, "input2_shift": 0, "multiplier": [1 << 30], "shift": [-20]}),
    ("add_dsp_declines_input_shift_3", "adaptc.qaddsub", (1, 3, 5, 9), (1, 1, 1, 9),
     {**_attrs("adaptc.qaddsub", (0.05, 0), (0.05, 0), (0.5, 0), sign2=1), "input1_multiplier": 1 << 28,
      "input1_shift": 3, "multiplier": [1 << 30], "shift": [-20]}),
    ("sub_dsp_widest_exact_output_shift_1", "adaptc.qaddsub", (1, 4, 4), (1, 4, 4),
     {**_attrs("adaptc.qaddsub", (0.05, -128), (0.05, 127), (0.5, 0)), "multiplier": [300], "shift": [1]}),
    ("sub_dsp_declines_output_shift_2", "adaptc.qaddsub", (1, 4, 4), (1, 4, 4),
     {**_attrs("adaptc.qaddsub", (0.05, -128), (0.05, 127), (0.5, 0)), "multiplier": [150], "shift": [2]}),
    ("sub_rounding_ties", "adaptc.qaddsub", (1, 4, 5, 6), (1, 1, 5, 6),
     {**_attrs("adaptc.qaddsub", (0.05, 3), (0.05, -4), (0.5, 1)), "input1_multiplier": 1 << 30,
      "input1_shift": -21, "input2_multiplier": 1 << 30, "input2_shift": -20, "multiplier": [1 << 30], "shift": [-1]}),
    ("add_dsp_declines_act_wider_than_int8", "adaptc.qaddsub", (1, 4, 5, 6), (1, 1, 1, 6),
     _attrs("adaptc.qaddsub", (0.05, 3), (0.02, -4), (0.01, 1), (-140, 140), sign2=1)),
    ("add_dsp_shift_minus_31", "adaptc.qaddsub", (1, 2, 3, 4), (1, 1, 1, 4),
     {**_attrs("adaptc.qaddsub", (0.05, 0), (0.05, 0), (0.5, 5), sign2=1), "multiplier": [INT32_MAX],
      "shift": [-31]}),
]

ADDSUB_CASES = [c for c in CASES if c[1] == "adaptc.qaddsub"]
VARIANTS = [pytest.param(("ref",), id="ref"), pytest.param(("dsp", "ref"), id="dsp")]


def dsp_accepts(attrs: dict) -> bool:
    """addsub_s8_dsp's requantizations (dsp.h adaptc_rq_apply) equal MultiplyByQuantizedMultiplier
    while |value << max(shift, 0)| < 2^30 and 0 <= multiplier < 2^31: its builder takes a step
    when that holds for each input's largest |(x - zp) << left_shift| and for the output's
    largest |s1| + |s2| (each |s_k| at most |(x - zp) << left_shift| << max(shift_k, 0)), and
    the activation range is within int8 (the kernel saturates to int8, then clamps)."""
    if attrs["act_min"] < -128 or attrs["act_max"] > 127:
        return False

    def exact(value, mult, shift):
        return 0 <= mult <= INT32_MAX and shift >= -31 and value << max(shift, 0) < 2**30
    total = 0
    for k in ("input1", "input2"):
        largest = max(128 + attrs[f"{k}_zp"], 127 - attrs[f"{k}_zp"]) << attrs["left_shift"]
        if not exact(largest, attrs[f"{k}_multiplier"], attrs[f"{k}_shift"]):
            return False
        total += largest << max(attrs[f"{k}_shift"], 0)
    return exact(total, attrs["multiplier"][0], attrs["shift"][0])


def expected_kernel(case, variants: tuple) -> str:
    if case[1] == "adaptc.qaddsub" and variants[0] == "dsp" and dsp_accepts(case[4]):
        return "addsub_s8_dsp"
    return KERNEL[case[1]]


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


@pytest.mark.parametrize("variants", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_int8_host(case, variants):
    prog, xs, want = _case(case)
    m = api.compile_program(prog, "cortex-m4", kernels=",".join(variants))
    [step] = m.scheduled.steps
    assert step.kernel == expected_kernel(case, variants)
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(m.run(x), w)


def test_the_addsub_cases_reach_the_dsp_corners():
    """Both variants meet the three innermost stride patterns, rows of a length not a multiple
    of four, a right shift of 0 and of 31, a positive input shift, both signs, rounding ties of
    either sign, and steps the DSP kernel declines: input and output bounds just past its proof,
    an activation range wider than int8 (the reference kernel's cast wraps)."""
    loops = {c[0]: (KERNELS["addsub_s8"].build(_case(c)[0].steps[0], None).params, c[4]) for c in ADDSUB_CASES}
    patterns = {(p["strides1"][3], p["strides2"][3]) for p, _ in loops.values()}
    assert {(1, 1), (1, 0), (0, 1)} <= patterns
    assert any(p["dims"][3] % 4 for p, _ in loops.values())
    shifts = {a[k] for _, a in loops.values() for k in ("input1_shift", "input2_shift")}
    assert {0, 2} <= shifts and any(a["shift"][0] == -31 for _, a in loops.values())
    assert {(a["input1_sign"], a["input2_sign"]) for _, a in loops.values()} == {(1, 1), (1, -1), (-1, 1)}
    ties = next(c for c in ADDSUB_CASES if c[0] == "sub_rounding_ties")
    prog, xs, _ = _case(ties)
    v1 = np.concatenate([x.ravel() for x in xs]).astype(np.int64) - 3
    v2 = prog.steps[0].consts["input2"].astype(np.int64).ravel() + 4
    assert np.any((v1 % 4 == 2) & (v1 > 0)) and np.any((v1 % 4 == 2) & (v1 < 0))   # s1 = v1 / 4: ties
    assert np.any((v2 % 2 == 1) & (v2 < 0)) and np.any((v2 % 2 == 1) & (v2 > 0))
    declined = {c[0] for c in ADDSUB_CASES if not dsp_accepts(c[4])}
    assert declined == {"add_dsp_declines_input_shift_3", "sub_dsp_declines_output_shift_2",
                        "add_dsp_declines_act_wider_than_int8"}
    builder = KERNELS["addsub_s8_dsp"].build
    for c in ADDSUB_CASES:
        assert (builder(_case(c)[0].steps[0], None) is not None) == dsp_accepts(c[4]), c[0]


def test_cost_features_by_hand():
    """[1, 4, 5, 6] x [1, 1, 1, 6]: 20 rows of 6; binary_f32 counts divisions apart."""
    prog, _, _ = _case(CASES[0])
    assert KERNELS["addsub_s8"].features(prog.steps[0]) == {"call": 1, "rows": 20, "elements": 120}
    c = np.ones((1, 1, 1, 6), np.float32)
    for function, div in (("divide", 120), ("maximum", 0)):
        step = program("adaptc.binary_f32", (1, 4, 5, 6), c, {"function": function}, "float32").steps[0]
        assert KERNELS["binary_f32"].features(step) == {"call": 1, "rows": 20, "elements": 120 - div,
                                                        "elements_div": div}


def test_addsub_dsp_features_by_hand():
    """addsub_s8_dsp: per row whole words of four outputs and the rest one at a time, apart where
    an input is fixed along the row (_one) and where both move (_two); a narrow clamp passes
    over all."""
    f = KERNELS["addsub_s8_dsp"].features
    steps = {c[0]: _case(c)[0].steps[0] for c in ADDSUB_CASES}
    zero = {"quads_one": 0, "singles_one": 0, "quads_two": 0, "singles_two": 0, "clamped": 0}
    # [1, 4, 5, 6] - [1, 1, 1, 6]: 20 rows of 6, both inputs move
    assert f(steps["sub_channel"]) == {"call": 1, "rows": 20, **zero, "quads_two": 20, "singles_two": 40}
    # [1, 4, 5, 6] + [1, 4, 5, 1]: 20 rows of 6, input2 fixed per row
    assert f(steps["add_spatial_relu"]) == {"call": 1, "rows": 20, **zero, "quads_one": 20, "singles_one": 40,
                                            "clamped": 120}
    # [2, 3, 4, 5] x [1, 1, 1, 1]: one row of 120, input2 fixed
    assert f(steps["reverse_sub_scalar"]) == {"call": 1, "rows": 1, **zero, "quads_one": 30}
    # [1, 4, 5, 1] - [1, 4, 5, 7]: 20 rows of 7, input1 fixed; clamped to [-100, 100]
    assert f(steps["sub_first_broadcast_inner_odd"]) == {"call": 1, "rows": 20, **zero, "quads_one": 20,
                                                         "singles_one": 60, "clamped": 140}
    # the same shape: one row of 140
    assert f(steps["add_same_shape_zp_extremes"]) == {"call": 1, "rows": 1, **zero, "quads_two": 35}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_int8_emulated(target):
    """Each core's own variants (Cortex-M4: addsub_s8_dsp where it accepts the step)."""
    variants = ("dsp", "ref") if target == "cortex-m4" else ("ref",)
    for case in CASES[::2] + [c for c in ADDSUB_CASES[1:] if c not in CASES[::2]]:
        prog, xs, want = _case(case)
        m = api.compile_program(prog, target)
        assert m.scheduled.steps[0].kernel == expected_kernel(case, variants), case[0]
        r = m.run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=case[0])


def _instructions_per_element(shape1, const2, attrs) -> dict[str, float]:
    x = np.random.default_rng(7).integers(-128, 128, size=shape1, dtype=np.int8)
    prog = program("adaptc.qaddsub", shape1, const2, attrs, "int8")
    runs = {k: api.compile_program(prog, "cortex-m4", kernels=k).run_on_target(x) for k in ("ref", "dsp,ref")}
    np.testing.assert_array_equal(runs["dsp,ref"].outputs, runs["ref"].outputs)
    n = int(np.prod(np.broadcast_shapes(shape1, shape1 if const2 is None else const2.shape)))
    return {k: r.steps[0]["instructions"] / n for k, r in runs.items()}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_addsub_s8_dsp_fewer_instructions():
    """On the Cortex-M4 the DSP kernel runs a [1, 16, 16, 32] ADD of the same shape and a
    [1, 16, 16, 32] - [1, 16, 16, 1] SUB (input2 fixed per row) in under half the reference
    kernel's instructions."""
    attrs = _attrs("adaptc.qaddsub", (0.05, 3), (0.02, -4), (0.06, 1))
    same = _instructions_per_element((1, 16, 16, 32), None, {**attrs, "input2_sign": 1})
    c = np.random.default_rng(8).integers(-128, 128, size=(1, 16, 16, 1), dtype=np.int8)
    pixel = _instructions_per_element((1, 16, 16, 32), c, attrs)
    for insns in (same, pixel):
        assert insns["dsp,ref"] < 0.5 * insns["ref"], (same, pixel)


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


def test_one_record_per_kernel_and_variant():
    ops = ("adaptc.qaddsub", "adaptc.qsquared_difference", "adaptc.qmaxmin", "adaptc.binary_f32")
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op in ops}
    assert records == {"addsub_s8": ("adaptc.qaddsub", "ref"), "addsub_s8_dsp": ("adaptc.qaddsub", "dsp"),
                       "squared_difference_s8": ("adaptc.qsquared_difference", "ref"),
                       "maxmin_s8": ("adaptc.qmaxmin", "ref"), "binary_f32": ("adaptc.binary_f32", "ref")}
