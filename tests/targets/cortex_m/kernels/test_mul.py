"""MUL with broadcasting: mul_s8 (TFLite Micro's int8 MUL arithmetic), its DSP drop-in mul_s8_dsp
and mul_f32, as one-step programs through the Cortex-M target -- on the host and on emulated
cores -- against NumPy references written from TFLM's reference_integer_ops::Mul /
BroadcastMul6DSlow and ONNX Mul. Every int8 case runs through each variant (the reference kernel
alone, and the DSP kernel where its builder accepts the step, which ``dsp_accepts`` states).

A program has one input, so each case multiplies the input by itself (same shape) or by a
constant second operand (``step.consts["input2"]``, flash) of any broadcastable shape; the
kernel reads both through the same pointer-and-stride loops. Each case also states the loops
``broadcast_loops`` must give (axes that broadcast alike merged; a same-shape op is one loop)."""
from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

import adaptc.api as api
import kernel_ref as ref
import tflite_ops as T
from adaptc.errors import TargetError
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
INT32_MAX = 2**31 - 1


def mul_s8_ref(x1, x2, input1_zp, input2_zp, multiplier, shift, output_zp, act_min, act_max) -> np.ndarray:
    """TFLM reference_integer_ops::MulElementwise / BroadcastMul6DSlow (int8): per output element
    (x1 - zp1) * (x2 - zp2) in int32, MultiplyByQuantizedMultiplier (double rounding), + the output
    zero point, clamped to the activation range. Broadcasting is NumPy's (TFLM's) rule."""
    product = (np.asarray(x1, np.int64) - input1_zp) * (np.asarray(x2, np.int64) - input2_zp)
    out = ref.mbqm(ref.wrap32(product), multiplier, shift) + output_zp
    return np.clip(out, act_min, act_max).astype(np.int8)


def mul_f32_ref(x1, x2, act_min=-np.inf, act_max=np.inf) -> np.ndarray:
    """ONNX Mul / TFLite MUL (float): the product, exact in float64, rounded once to float32
    (what one IEEE float32 multiply gives), then the fused activation's clamp."""
    product = (np.asarray(x1, np.float64) * np.asarray(x2, np.float64)).astype(np.float32)
    return np.clip(product, np.float32(act_min), np.float32(act_max))


def tflite_multiplier(s1: float, s2: float, so: float) -> tuple[int, int]:
    """TFLM's MUL Prepare: QuantizeMultiplier of s1 * s2 / so, in doubles of the float32 scales."""
    return ref.quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(so)))


@dataclass
class Case:
    id: str
    shape1: tuple
    shape2: tuple | None              # None: the input times itself; else a constant of this shape
    zp: tuple[int, int, int]          # input1, input2, output zero points
    requant: tuple                    # (s1, s2, s_out) scales, or ("raw", multiplier, shift)
    dims: list                        # the loops broadcast_loops must give, outermost first
    strides1: list
    strides2: list
    act: tuple[int, int] = (-128, 127)

    def multiplier(self) -> tuple[int, int]:
        if self.requant[0] == "raw":
            return self.requant[1], self.requant[2]
        return tflite_multiplier(*self.requant)

    @property
    def out_shape(self) -> tuple:
        return tuple(np.broadcast_shapes(self.shape1, self.shape2 or self.shape1))


CASES = [
    Case("same_shape_one_loop", (1, 4, 5, 6), None, (3, 3, -5), (0.05, 0.05, 0.02),
         [1, 1, 1, 120], [0, 0, 0, 1], [0, 0, 0, 1]),
    Case("channel_broadcast", (1, 4, 5, 6), (1, 1, 1, 6), (-20, 7, 10), (0.1, 0.02, 0.015),
         [1, 1, 20, 6], [0, 0, 6, 1], [0, 0, 0, 1]),
    Case("broadcast_first_zp_extremes", (1, 1, 1, 6), (1, 4, 5, 6), (127, -128, -100), (0.03, 0.07, 0.05),
         [1, 1, 20, 6], [0, 0, 0, 1], [0, 0, 6, 1]),
    Case("spatial_broadcast_relu", (1, 4, 5, 6), (1, 4, 5, 1), (0, -3, -40), (0.05, 0.04, 0.01),
         [1, 1, 20, 6], [0, 0, 6, 1], [0, 0, 1, 0], act=(-40, 127)),
    Case("scalar_narrow_clamp", (1, 4, 5, 6), (1, 1, 1, 1), (5, 0, 2), (0.02, 0.3, 0.01),
         [1, 1, 1, 120], [0, 0, 0, 1], [0, 0, 0, 0], act=(-20, 50)),
    Case("2d_rows_max_multiplier", (3, 6), (1, 6), (0, 0, 0), ("raw", INT32_MAX, 1),
         [1, 1, 3, 6], [0, 0, 6, 1], [0, 0, 0, 1]),
    Case("3d_column_double_rounding", (1, 5, 6), (5, 1), (1, -1, 3), ("raw", 1 << 30, -5),
         [1, 1, 5, 6], [0, 0, 6, 1], [0, 0, 1, 0]),
    Case("middle_axis_broadcast", (1, 4, 5, 6), (1, 4, 1, 6), (-7, 9, 0), ("raw", 1 << 30, 0),
         [1, 4, 5, 6], [0, 30, 6, 1], [0, 6, 0, 1]),
    Case("four_loops_left_shift", (2, 3, 4, 5), (2, 1, 4, 1), (4, -4, 1), ("raw", 3 << 29, 3),
         [2, 3, 4, 5], [60, 20, 5, 1], [4, 0, 1, 0]),
    Case("batch_merges_hw", (2, 4, 5, 6), (2, 1, 1, 6), (-1, 2, 30), (0.013, 0.047, 0.0021),
         [1, 2, 20, 6], [0, 120, 6, 1], [0, 6, 0, 1]),
    Case("unit_axes_skipped", (1, 4, 1, 6), (1, 1, 1, 6), (0, 0, 0), (0.05, 0.05, 0.05),
         [1, 1, 4, 6], [0, 0, 6, 1], [0, 0, 0, 1]),
    Case("shift_minus_31", (1, 2, 3, 4), (1, 1, 1, 4), (0, 0, 5), ("raw", INT32_MAX, -31),
         [1, 1, 6, 4], [0, 0, 4, 1], [0, 0, 0, 1]),
    Case("first_broadcast_inner_odd", (1, 4, 5, 1), (1, 4, 5, 7), (-128, 127, 9), (0.04, 0.03, 0.02),
         [1, 1, 20, 7], [0, 0, 1, 0], [0, 0, 7, 1]),
    Case("dsp_widest_exact_shift_14", (1, 3, 5, 9), (1, 1, 1, 9), (127, -128, -3), ("raw", 5000, 14),
         [1, 1, 15, 9], [0, 0, 9, 1], [0, 0, 0, 1]),
    Case("dsp_declines_shift_15", (1, 3, 5, 9), (1, 1, 1, 9), (127, -128, -3), ("raw", 2500, 15),
         [1, 1, 15, 9], [0, 0, 9, 1], [0, 0, 0, 1]),
    Case("dsp_declines_shift_16_zp_0", (1, 4, 4), None, (0, 0, 1), ("raw", 1200, 16),
         [1, 1, 1, 16], [0, 0, 0, 1], [0, 0, 0, 1]),
]


def dsp_accepts(case: Case) -> bool:
    """mul_s8_dsp's requantization (dsp.h adaptc_rq_apply) equals MultiplyByQuantizedMultiplier
    while |product << max(shift, 0)| < 2^30: its builder takes a step when that holds for the
    largest product of two int8 inputs with their zero points."""
    mult, shift = case.multiplier()
    z1, z2, _ = case.zp
    largest = max(128 + z1, 127 - z1) * max(128 + z2, 127 - z2)
    return 0 <= mult <= INT32_MAX and largest << max(shift, 0) < 2**30


VARIANTS = [pytest.param(("ref",), id="ref"), pytest.param(("dsp", "ref"), id="dsp")]


def expected_kernel(case: Case, variants: tuple) -> str:
    return "mul_s8_dsp" if variants[0] == "dsp" and dsp_accepts(case) else "mul_s8"


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _int8_inputs(shape, zp: int, rng) -> list[np.ndarray]:
    """Full-range random inputs, one near the zero point (small products: unsaturated outputs
    under a large multiplier), and both extremes."""
    near = np.clip(zp + rng.integers(-4, 5, size=shape), -128, 127).astype(np.int8)
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(2)] + \
        [near, np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


def _const2(case: Case) -> np.ndarray | None:
    if case.shape2 is None:
        return None
    c = np.random.default_rng(_seed(case.id + "c")).integers(-128, 128, size=case.shape2, dtype=np.int8)
    c.flat[0] = -128                                  # both extremes of the second operand
    c.flat[-1] = 127 if c.size > 1 else -128
    return c


def program(op: str, shape1: tuple, const2: np.ndarray | None, attrs: dict, dtype: str) -> Program:
    """One step: the input times itself (const2 None) or times the constant ``const2``."""
    out_shape = tuple(np.broadcast_shapes(shape1, shape1 if const2 is None else const2.shape))
    x = Tensor(0, "x", tuple(shape1), dtype, "input")
    y = Tensor(1, "y", out_shape, dtype, "output")
    if const2 is None:
        step = Step(0, op, "test case", [0, 0], 1, attrs, {}, in_shapes=[tuple(shape1)] * 2, out_shape=out_shape)
    else:
        step = Step(0, op, "test case", [0], 1, attrs, {"input2": const2}, in_shapes=[tuple(shape1)],
                    out_shape=out_shape)
    return Program("mul_case", [x, y], [step], [0], [1])


def _case(case: Case):
    """(program, inputs, expected outputs) of an int8 case."""
    mult, shift = case.multiplier()
    z1, z2, zo = case.zp
    attrs = {"input1_zp": z1, "input2_zp": z2, "multiplier": [mult], "shift": [shift], "output_zp": zo,
             "act_min": case.act[0], "act_max": case.act[1]}
    c = _const2(case)
    xs = _int8_inputs(case.shape1, z1, np.random.default_rng(_seed(case.id)))
    want = [mul_s8_ref(x, x if c is None else c, z1, z2, mult, shift, zo, *case.act) for x in xs]
    return program("adaptc.qmul", case.shape1, c, attrs, "int8"), xs, want


def test_the_cases_reach_the_corners():
    """Both saturations and both clamps are met, a positive and the most negative shift, outputs
    that are neither, and double-rounding ties (SRDHM by 2^30 then RDBPOT)."""
    shifts = [c.multiplier()[1] for c in CASES]
    assert max(shifts) == 16 and min(shifts) == -31
    assert {c.id for c in CASES if not dsp_accepts(c)} == {"dsp_declines_shift_15", "dsp_declines_shift_16_zp_0"}
    outs = {c.id: np.concatenate([w.ravel() for w in _case(c)[2]]) for c in CASES}
    everything = np.concatenate(list(outs.values()))
    assert everything.min() == -128 and everything.max() == 127
    assert outs["spatial_broadcast_relu"].min() == -40 and outs["scalar_narrow_clamp"].min() == -20
    assert outs["scalar_narrow_clamp"].max() == 50
    assert len(np.unique(outs["four_loops_left_shift"])) > 10          # unsaturated despite shift +3
    assert np.all(outs["shift_minus_31"] == 5)
    c = next(c for c in CASES if c.id == "3d_column_double_rounding")
    prog, xs, _ = _case(c)
    products = np.concatenate([((x.astype(np.int64) - 1) * (_const2(c).astype(np.int64) + 1)).ravel() for x in xs])
    h = (products + 1) // 2                           # SRDHM(p, 2^30): ties toward +inf
    unsaturated = np.abs(products) < 64 * 100
    assert np.any(unsaturated & (h % 16 == 8))        # RDBPOT(h, 4) ties (away from zero)
    assert np.any(unsaturated & (products < 0) & (products % 2 == 1))   # SRDHM ties below zero


def test_reference_is_tflite_micro():
    """mul_s8_ref with TFLM's multiplier equals TFLite Micro's MUL (a constant second input,
    broadcast) bit for bit, so the cases below test against TFLM's arithmetic."""
    for s, zp, act in [((0.1, 0.02, 0.015), (-20, 7, 10), "NONE"), ((0.5, 0.5, 0.01), (3, -3, -128), "RELU6"),
                       ((0.013, 0.047, 0.0021), (-1, 2, 30), "RELU")]:
        rng = np.random.default_rng(_seed(str(s)))
        c = rng.integers(-128, 128, size=(1, 1, 1, 6), dtype=np.int8)
        buf = T.mul_model((1, 4, 5, 6), (1, 1, 1, 6), (s[0], zp[0]), (s[1], zp[1]), (s[2], zp[2]), act, const2=c)
        lo = zp[2] if act != "NONE" else -128
        hi = min(127, zp[2] + int(round(6 / np.float32(s[2])))) if act == "RELU6" else 127
        for x in _int8_inputs((1, 4, 5, 6), zp[0], rng):
            want = mul_s8_ref(x, c, zp[0], zp[1], *tflite_multiplier(*s), zp[2], lo, hi)
            np.testing.assert_array_equal(T.run_tflm(buf, x), want)


@pytest.mark.parametrize("variants", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_mul_s8_host(case, variants):
    prog, xs, want = _case(case)
    m = api.compile_program(prog, "cortex-m4", kernels=",".join(variants))
    [step] = m.scheduled.steps
    assert step.kernel == expected_kernel(case, variants)
    p = step.call.params
    assert (p["dims"], p["strides1"], p["strides2"]) == (case.dims, case.strides1, case.strides2)
    if case.shape2 is not None:
        assert [role for role, _ in step.call.arrays] == ["input2"]
    for x, w in zip(xs, want):
        got = m.run(x)
        assert got.shape == case.out_shape
        np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cost_features_are_the_loop_counts(case):
    """mul_s8's features: one call, the outer three loops' iterations (rows), every output element."""
    prog, _, _ = _case(case)
    rows = case.dims[0] * case.dims[1] * case.dims[2]
    assert KERNELS["mul_s8"].features(prog.steps[0]) == {"call": 1, "rows": rows,
                                                         "elements": int(np.prod(case.out_shape))}


def test_cost_features_by_hand():
    """[1, 4, 5, 6] x [1, 1, 1, 6]: 20 rows of 6; the same shape: one row of 120. mul_s8_dsp: per
    row whole words of four outputs and the rest one at a time; a narrow clamp passes over all."""
    channel, same, pixel, clamp = (_case(next(c for c in CASES if c.id == k))[0].steps[0]
                                   for k in ("channel_broadcast", "same_shape_one_loop", "first_broadcast_inner_odd",
                                             "scalar_narrow_clamp"))
    assert KERNELS["mul_s8"].features(channel) == {"call": 1, "rows": 20, "elements": 120}
    assert KERNELS["mul_s8"].features(same) == {"call": 1, "rows": 1, "elements": 120}
    dsp = KERNELS["mul_s8_dsp"].features
    assert dsp(channel) == {"call": 1, "rows": 20, "quads": 20, "singles": 40, "clamped": 0}
    assert dsp(same) == {"call": 1, "rows": 1, "quads": 30, "singles": 0, "clamped": 0}
    assert dsp(pixel) == {"call": 1, "rows": 20, "quads": 20, "singles": 60, "clamped": 0}
    assert dsp(clamp) == {"call": 1, "rows": 1, "quads": 30, "singles": 0, "clamped": 120}


def test_five_loops_are_refused():
    """An alternating 5-D broadcast needs five loops; the kernels have four: TargetError naming it."""
    c = np.ones((2, 1, 4, 1, 6), np.int8)
    attrs = {"input1_zp": 0, "input2_zp": 0, "multiplier": [1 << 30], "shift": [0], "output_zp": 0,
             "act_min": -128, "act_max": 127}
    with pytest.raises(TargetError, match=r"broadcast of \[\[2, 3, 4, 5, 6\], \[2, 1, 4, 1, 6\]\] .*needs 5 loops"):
        api.compile_program(program("adaptc.qmul", (2, 3, 4, 5, 6), c, attrs, "int8"), "cortex-m4")


EMULATED_CASES = ["same_shape_one_loop", "broadcast_first_zp_extremes", "spatial_broadcast_relu",
                  "scalar_narrow_clamp", "four_loops_left_shift", "shift_minus_31", "first_broadcast_inner_odd",
                  "dsp_widest_exact_shift_14", "dsp_declines_shift_15"]


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4", "cortex-m55"])
def test_mul_s8_emulated(target):
    """Each core's own variants (Cortex-M4 and M55: the DSP kernel where it accepts the step)."""
    for case in (c for c in CASES if c.id in EMULATED_CASES):
        prog, xs, want = _case(case)
        m = api.compile_program(prog, target)
        variants = ("dsp", "ref") if target != "cortex-m0plus" else ("ref",)
        assert m.scheduled.steps[0].kernel == expected_kernel(case, variants), case.id
        r = m.run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=case.id)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_mul_s8_dsp_fewer_instructions():
    """On the Cortex-M4 the DSP kernel runs a [1, 16, 16, 32] x [1, 1, 1, 32] MUL in under half
    the reference kernel's instructions (measured: about 32 per element against 12)."""
    rng = np.random.default_rng(5)
    c = rng.integers(-128, 128, size=(1, 1, 1, 32), dtype=np.int8)
    attrs = {"input1_zp": 3, "input2_zp": -5, "multiplier": [1518500250], "shift": [-8], "output_zp": 2,
             "act_min": -128, "act_max": 127}
    prog = program("adaptc.qmul", (1, 16, 16, 32), c, attrs, "int8")
    x = rng.integers(-128, 128, size=(1, 16, 16, 32), dtype=np.int8)
    runs = {k: api.compile_program(prog, "cortex-m4", kernels=k).run_on_target(x) for k in ("ref", "dsp,ref")}
    np.testing.assert_array_equal(runs["dsp,ref"].outputs, runs["ref"].outputs)
    insns = {k: r.steps[0]["instructions"] / x.size for k, r in runs.items()}
    assert insns["dsp,ref"] < 0.5 * insns["ref"], insns


# ------------------------------------------------------------------------------- float32

# (id, input shape, constant shape or None (x * x), activation range)
F_CASES = [
    ("same_shape", (1, 4, 5, 6), None, (-np.inf, np.inf)),
    ("channel_broadcast", (1, 4, 5, 6), (1, 1, 1, 6), (-np.inf, np.inf)),
    ("broadcast_first_relu6", (1, 1, 1, 6), (1, 4, 5, 6), (0.0, 6.0)),
    ("scalar", (2, 3, 4, 5), (1, 1, 1, 1), (-np.inf, np.inf)),
    ("2d_rows_clamp", (3, 6), (1, 6), (-1.0, 1.0)),
    ("four_loops", (2, 3, 4, 5), (2, 1, 4, 1), (-np.inf, np.inf)),
]


def _f_case(case):
    cid, shape, cshape, (lo, hi) = case
    rng = np.random.default_rng(_seed(cid))
    c = None if cshape is None else rng.normal(0.0, 2.0, size=cshape).astype(np.float32)
    attrs = {} if np.isinf(lo) and np.isinf(hi) else {"act_min": lo, "act_max": hi}
    xs = [rng.normal(0.0, 3.0, size=shape).astype(np.float32) for _ in range(3)]
    want = [mul_f32_ref(x, x if c is None else c, lo, hi) for x in xs]
    return program("adaptc.mul_f32", shape, c, attrs, "float32"), xs, want


@pytest.mark.parametrize("case", F_CASES, ids=lambda c: c[0])
def test_mul_f32_host(case):
    prog, xs, want = _f_case(case)
    m = api.compile_program(prog, "cortex-m4", format="float32")
    assert [s.kernel for s in m.scheduled.steps] == ["mul_f32"]
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(m.run(x), w)          # one IEEE multiply: exact
    lo, hi = case[3]
    if not np.isinf(lo):
        allw = np.concatenate([w.ravel() for w in want])
        assert allw.min() == lo and allw.max() == hi          # both ends of the clamp met


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4", "cortex-m55"])
def test_mul_f32_emulated(target):
    """Soft float (M0+), single-precision FPU (M4), MVE core (M55): the same float32 products."""
    for case in (F_CASES[1], F_CASES[2]):
        prog, xs, want = _f_case(case)
        m = api.compile_program(prog, target, format="float32")
        r = m.run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=case[0])


def test_mul_records():
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op in ("adaptc.qmul", "adaptc.mul_f32")}
    assert records == {"mul_s8": ("adaptc.qmul", "ref"), "mul_s8_dsp": ("adaptc.qmul", "dsp"),
                       "mul_f32": ("adaptc.mul_f32", "ref")}
