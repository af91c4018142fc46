"""BATCH_MATMUL with broadcasting over the batch dims: batch_matmul_s8 (TFLite Micro's int8
reference BatchMatMul) and batch_matmul_f32, as one-step programs through the Cortex-M target --
on the host and on an emulated core -- against NumPy references written from TFLM's
reference_ops::BatchMatMul and numpy's (ONNX MatMul's) matmul.

A program has one input, so each case multiplies the input by itself (a square matrix) or by a
constant operand (``step.consts["rhs"]``, or ``["lhs"]`` with ``swap``: the constant on the left).
Each case also states the batch loops and per-operand batch strides ``_geometry`` must give
(elements; 0: broadcast)."""
from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

import adaptc.api as api
import kernel_programs as programs
import kernel_ref as ref
import tflite_ops as T
from adaptc import formats
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS, select
from kernel_programs import needs_arm

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
INT32_MAX = 2**31 - 1


def batch_matmul_s8_ref(lhs, rhs, lhs_zp, rhs_zp, multiplier, shift, output_zp, act_min, act_max) -> np.ndarray:
    """TFLM reference_ops::BatchMatMul (int8): per output the int32 sum over k of
    (lhs - lhs_zp) * (rhs - rhs_zp), MultiplyByQuantizedMultiplier, + the output zero point,
    clamped; the batch dims broadcast as numpy's matmul (a 1-D rhs is a column)."""
    acc = np.matmul(np.asarray(lhs, np.int64) - lhs_zp, np.asarray(rhs, np.int64) - rhs_zp)
    out = ref.mbqm(ref.wrap32(acc), multiplier, shift) + output_zp
    return np.clip(out, act_min, act_max).astype(np.int8)


def batch_matmul_f32_ref(lhs, rhs, act_min=-np.inf, act_max=np.inf) -> np.ndarray:
    """numpy matmul in float64 (the kernel's float32 sum agrees to rounding), then the clamp."""
    return np.clip(np.matmul(np.asarray(lhs, np.float64), np.asarray(rhs, np.float64)), act_min, act_max)


def tflite_multiplier(s1: float, s2: float, so: float) -> tuple[int, int]:
    """TFLM's BATCH_MATMUL Prepare: QuantizeMultiplier of lhs_scale * rhs_scale / out_scale,
    in doubles of the float32 scales."""
    return ref.quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(so)))


@dataclass
class Case:
    id: str
    shape: tuple                      # the input's shape
    const: tuple | None               # the constant operand's shape; None: input @ input
    swap: bool                        # the constant is the lhs
    zp: tuple[int, int, int]          # lhs, rhs, output zero points
    requant: tuple                    # (s_lhs, s_rhs, s_out) scales, or ("raw", multiplier, shift)
    dims: list                        # the batch loops, outermost first
    lhs_strides: list
    rhs_strides: list
    act: tuple[int, int] = (-128, 127)

    def multiplier(self) -> tuple[int, int]:
        if self.requant[0] == "raw":
            return self.requant[1], self.requant[2]
        return tflite_multiplier(*self.requant)

    def operands(self, x, c):
        if c is None:
            return x, x
        return (c, x) if self.swap else (x, c)


CASES = [
    Case("same_batch_const_rhs", (2, 3, 4), (2, 4, 5), False, (3, -2, 5), (0.05, 0.04, 0.2),
         [1, 1, 2], [0, 0, 12], [0, 0, 20]),
    Case("rhs_broadcast_over_two_batch_dims", (2, 3, 3, 4), (4, 5), False, (-10, 0, -3), (0.02, 0.03, 0.05),
         [1, 2, 3], [0, 36, 12], [0, 0, 0]),
    Case("both_broadcast", (2, 1, 3, 4), (1, 3, 4, 5), False, (0, 7, 0), (0.04, 0.05, 0.3),
         [1, 2, 3], [0, 12, 0], [0, 0, 20]),
    Case("const_lhs_swap", (2, 4, 5), (3, 4), True, (-5, 4, 10), (0.03, 0.06, 0.1),
         [1, 1, 2], [0, 0, 0], [0, 0, 20]),
    Case("square_self_product", (2, 4, 4), None, False, (1, 1, -1), (0.05, 0.05, 0.5),
         [1, 1, 2], [0, 0, 16], [0, 0, 16]),
    Case("column_vector_rhs_relu", (3, 6), (6,), False, (2, -1, -30), (0.1, 0.1, 0.4),
         [1, 1, 1], [0, 0, 0], [0, 0, 0], act=(-30, 127)),
    Case("three_batch_dims_left_shift", (2, 2, 2, 2, 3), (2, 1, 1, 3, 2), False, (0, 0, 0), ("raw", 1 << 30, 2),
         [2, 2, 2], [24, 12, 6], [6, 0, 0]),
    Case("narrow_clamp_max_multiplier", (1, 4, 8), (8, 3), False, (-3, 2, 0), ("raw", INT32_MAX, -8),
         [1, 1, 1], [0, 0, 0], [0, 0, 0], act=(-40, 50)),
]


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _int8_inputs(shape, zp: int, rng) -> list[np.ndarray]:
    """Full-range random inputs, one near the zero point (small sums: unsaturated outputs under
    a left shift), and both extremes."""
    near = np.clip(zp + rng.integers(-3, 4, size=shape), -128, 127).astype(np.int8)
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + \
        [near, np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


def _const(case: Case, dtype) -> np.ndarray | None:
    if case.const is None:
        return None
    rng = np.random.default_rng(_seed(case.id + "c"))
    if dtype == "float32":
        return rng.normal(0.0, 1.0, size=case.const).astype(np.float32)
    c = rng.integers(-128, 128, size=case.const, dtype=np.int8)
    c.flat[0], c.flat[-1] = -128, 127
    return c


def program(op: str, case: Case, const: np.ndarray | None, attrs: dict, dtype: str) -> Program:
    """One step: the input times itself (no constant) or with the constant operand."""
    probe = np.zeros(case.shape)
    lhs, rhs = case.operands(probe, None if const is None else np.zeros(const.shape))
    out_shape = np.matmul(lhs, rhs).shape
    x = Tensor(0, "x", tuple(case.shape), dtype, "input")
    y = Tensor(1, "y", out_shape, dtype, "output")
    attrs = {**attrs, "swap": case.swap}
    if const is None:
        step = Step(0, op, "test case", [0, 0], 1, attrs, {}, in_shapes=[tuple(case.shape)] * 2, out_shape=out_shape)
    else:
        step = Step(0, op, "test case", [0], 1, attrs, {"lhs" if case.swap else "rhs": const},
                    in_shapes=[tuple(case.shape)], out_shape=out_shape)
    return Program("batch_matmul_case", [x, y], [step], [0], [1])


def _case(case: Case):
    """(program, inputs, expected outputs) of an int8 case."""
    mult, shift = case.multiplier()
    zl, zr, zo = case.zp
    attrs = {"lhs_zp": zl, "rhs_zp": zr, "multiplier": [mult], "shift": [shift], "output_zp": zo,
             "act_min": case.act[0], "act_max": case.act[1]}
    c = _const(case, "int8")
    xs = _int8_inputs(case.shape, zr if case.swap else zl, np.random.default_rng(_seed(case.id)))
    want = [batch_matmul_s8_ref(*case.operands(x, c), zl, zr, mult, shift, zo, *case.act) for x in xs]
    return program("adaptc.qbatch_matmul", case, c, attrs, "int8"), xs, want


def test_the_cases_reach_the_corners():
    """Both saturations, both clamps of the narrowed range, a positive shift, and unsaturated
    outputs under it."""
    outs = {c.id: np.concatenate([w.ravel() for w in _case(c)[2]]) for c in CASES}
    everything = np.concatenate(list(outs.values()))
    assert everything.min() == -128 and everything.max() == 127
    assert outs["column_vector_rhs_relu"].min() == -30
    assert outs["narrow_clamp_max_multiplier"].min() == -40 and outs["narrow_clamp_max_multiplier"].max() == 50
    assert max(c.multiplier()[1] for c in CASES) == 2
    assert len(np.unique(outs["three_batch_dims_left_shift"])) > 5           # unsaturated despite shift +2


def test_reference_is_tflite_micro():
    """batch_matmul_s8_ref with TFLM's multiplier equals TFLite Micro's BATCH_MATMUL (a constant
    rhs, broadcast over the batch) bit for bit."""
    case = CASES[1]
    c = _const(case, "int8")
    s, zp = case.requant, case.zp
    buf = T.batch_matmul_model(case.shape, case.const, (s[0], zp[0]), (s[1], zp[1]), (s[2], zp[2]), const_b=c)
    for x in _int8_inputs(case.shape, zp[0], np.random.default_rng(_seed(case.id))):
        want = batch_matmul_s8_ref(x, c, zp[0], zp[1], *tflite_multiplier(*s), zp[2], -128, 127)
        np.testing.assert_array_equal(T.run_tflm(buf, x), want)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_batch_matmul_s8_host(case):
    prog, xs, want = _case(case)
    m = api.compile_program(prog, "cortex-m4")
    [step] = m.scheduled.steps
    assert step.kernel == "batch_matmul_s8"
    p = step.call.params
    assert (p["dims"], p["lhs_strides"], p["rhs_strides"], p["swap"]) == \
        (case.dims, case.lhs_strides, case.rhs_strides, int(case.swap))
    for x, w in zip(xs, want):
        got = m.run(x)
        assert got.shape == w.shape
        np.testing.assert_array_equal(got, w)


def test_cost_features_by_hand():
    """batch_matmul_*'s features: one call, the matrices, every output, a MAC per product."""
    feats = KERNELS["batch_matmul_s8"].features
    by_id = {c.id: _case(c)[0].steps[0] for c in CASES}
    # [2, 3, 4] @ [2, 4, 5]: 2 matrices of 3 x 5 outputs, depth 4
    assert feats(by_id["same_batch_const_rhs"]) == {"call": 1, "matrices": 2, "outputs": 30, "macs": 120}
    # [2, 1, 3, 4] @ [1, 3, 4, 5]: batch [2, 3]: 6 matrices of 3 x 5, depth 4
    assert feats(by_id["both_broadcast"]) == {"call": 1, "matrices": 6, "outputs": 90, "macs": 360}
    # [3, 4] @ [2, 4, 5] (constant lhs): 2 matrices of 3 x 5, depth 4
    assert feats(by_id["const_lhs_swap"]) == {"call": 1, "matrices": 2, "outputs": 30, "macs": 120}
    # [3, 6] @ [6]: one matrix of 3 x 1, depth 6
    assert feats(by_id["column_vector_rhs_relu"]) == {"call": 1, "matrices": 1, "outputs": 3, "macs": 18}
    f = _f_case(CASES[6])[0].steps[0]                  # [2, 2, 2, 2, 3] @ [2, 1, 1, 3, 2]: 8 of 2 x 2, depth 3
    assert KERNELS["batch_matmul_f32"].features(f) == {"call": 1, "matrices": 8, "outputs": 32, "macs": 96}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_batch_matmul_s8_emulated(target):
    for case in (CASES[2], CASES[3], CASES[6]):
        prog, xs, want = _case(case)
        r = api.compile_program(prog, target).run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=case.id)


# ------------------------------------------------------------------------------- float32

F_ACTS = {"column_vector_rhs_relu": (0.0, np.inf), "narrow_clamp_max_multiplier": (-1.0, 1.0)}


def _f_case(case: Case):
    lo, hi = F_ACTS.get(case.id, (-np.inf, np.inf))
    attrs = {} if np.isinf(lo) and np.isinf(hi) else {"act_min": lo, "act_max": hi}
    c = _const(case, "float32")
    rng = np.random.default_rng(_seed(case.id + "f"))
    xs = [rng.normal(0.0, 2.0, size=case.shape).astype(np.float32) for _ in range(3)]
    want = [batch_matmul_f32_ref(*case.operands(x, c), lo, hi) for x in xs]
    return program("adaptc.batch_matmul_f32", case, c, attrs, "float32"), xs, want


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_batch_matmul_f32_host(case):
    prog, xs, want = _f_case(case)
    m = api.compile_program(prog, "cortex-m4", format="float32")
    [step] = m.scheduled.steps
    assert step.kernel == "batch_matmul_f32"
    assert (step.call.params["dims"], step.call.params["lhs_strides"], step.call.params["rhs_strides"]) == \
        (case.dims, case.lhs_strides, case.rhs_strides)
    for x, w in zip(xs, want):
        np.testing.assert_allclose(m.run(x), w, rtol=1e-5, atol=1e-5)
    if case.id in F_ACTS:
        lo, hi = F_ACTS[case.id]
        allw = np.concatenate([w.ravel() for w in want])
        assert allw.min() == lo and (np.isinf(hi) or allw.max() == hi)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_batch_matmul_f32_emulated():
    """The single-precision FPU (Cortex-M4): within rounding of numpy's matmul."""
    for case in (CASES[2], CASES[3]):
        prog, xs, want = _f_case(case)
        r = api.compile_program(prog, "cortex-m4", format="float32").run_batch_on_target(np.stack(xs))
        np.testing.assert_allclose(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), rtol=1e-5, atol=1e-5)


def test_batch_matmul_has_one_record_per_kernel_and_no_variant():
    records = {k.name: (k.op, k.variant) for k in KERNELS.values()
               if k.op in ("adaptc.qbatch_matmul", "adaptc.batch_matmul_f32")}
    assert records == {"batch_matmul_s8": ("adaptc.qbatch_matmul", "ref"),
                       "batch_matmul_s8_packed": ("adaptc.qbatch_matmul", "ref"),
                       "batch_matmul_f32": ("adaptc.batch_matmul_f32", "ref")}


# ------------------------------------------------------------------------------- packed weights

PACKED = [pytest.param((c, fmt, pot), id=f"{c.id}-{fmt}-{'pot' if pot else 'mbqm'}")
          for c in CASES if c.const is not None for fmt in programs.PACKED_FORMATS for pot in (False, True)]


def _packed_case(case: Case, fmt_name: str, pot_requant: bool):
    """A case of _case whose constant is drawn from format ``fmt_name``'s grid (zero point 0)
    with that format marked (LegalizeQDQ's weight_format), requantized by a TFLite multiplier or
    by a power of two (the multiplier 2^30, a shift that fits the sums)."""
    fmt = formats.get(fmt_name)
    rng = np.random.default_rng(_seed(f"{case.id}{fmt_name}{pot_requant}"))
    c = rng.choice(fmt.grid, size=case.const).astype(np.int16 if fmt.max_value > 127 else np.int8)
    zl, zr, zo = case.zp
    zl, zr = (0, zr) if case.swap else (zl, 0)
    depth = case.const[-1] if case.swap else case.const[0 if len(case.const) == 1 else -2]
    spread = np.log2(float(np.sqrt(np.mean(c.astype(np.float64) ** 2) * depth)) * 74 + 1)   # of a typical sum
    if pot_requant:
        mult, shift = 1 << 30, int(7 - np.ceil(spread)) + int(rng.integers(-1, 2))
    else:
        mult, shift = ref.quantize_multiplier(2.0 ** (8 - np.ceil(spread)) * float(rng.uniform(0.5, 1.5)))
    attrs = {"lhs_zp": zl, "rhs_zp": zr, "multiplier": [int(mult)], "shift": [int(shift)], "output_zp": zo,
             "act_min": case.act[0], "act_max": case.act[1], "weight_format": fmt_name}
    xs = _int8_inputs(case.shape, zr if case.swap else zl, rng)[:4]
    want = [batch_matmul_s8_ref(*case.operands(x, c), zl, zr, mult, shift, zo, *case.act) for x in xs]
    return program("adaptc.qbatch_matmul", case, c, attrs, "int8"), xs, want


@pytest.mark.parametrize("packed", PACKED)
def test_batch_matmul_s8_packed_host(packed):
    prog, xs, want = _packed_case(*packed)
    m = api.compile_program(prog, "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["batch_matmul_s8_packed"]
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(m.run(x).reshape(w.shape), w)
    outs = np.concatenate([w.ravel() for w in want])
    assert len(np.unique(outs)) > min(5, outs.size // 5)                      # not saturated to a constant


@needs_arm
@pytest.mark.parametrize("target,variants", programs.packed_emulated_params())
@pytest.mark.parametrize("packed", [p for p in PACKED if p.id.split("-")[0] in
                                    ("both_broadcast", "const_lhs_swap", "three_batch_dims_left_shift")])
def test_batch_matmul_s8_packed_emulated(packed, target, variants):
    """On every emulated core as on the host; on the Cortex-M0+ a power-of-two layer with
    power-of-two requantization executes no multiply instruction at all."""
    case, fmt, pot = packed
    prog, xs, want = _packed_case(*packed)
    m = api.compile_program(prog, target, kernels=",".join(variants))
    assert m.scheduled.steps[0].kernel == "batch_matmul_s8_packed"
    r = m.run_on_target(xs[0])
    np.testing.assert_array_equal(r.outputs.reshape(want[0].shape), want[0])
    if target == "cortex-m0plus" and fmt.startswith("pot") and pot:
        assert r.steps[0]["classes"]["mac"] == 0, r.steps[0]["classes"]


def test_packed_weights_take_their_bits():
    """The flash array of a packed constant is the format's bitstream: ceil(n * bits / 8) bytes
    plus at most one of padding, against n bytes of int8; an int8 constant, or one with a zero
    point, stays with batch_matmul_s8."""
    case = CASES[0]
    for fmt in programs.PACKED_FORMATS:
        prog = _packed_case(case, fmt, True)[0]
        call = select(prog.steps[0], prog, ("ref",))
        n, bits = prog.steps[0].consts["rhs"].size, formats.get(fmt).bits
        codes = dict(call.arrays)["weights"]
        assert call.function == "batch_matmul_s8_packed"
        assert codes.dtype == np.uint8 and -(-n * bits // 8) <= codes.size <= -(-n * bits // 8) + 1, (fmt, codes.size)
    prog = _packed_case(case, "pot4", True)[0]
    prog.steps[0].attrs["rhs_zp"] = 3
    assert select(prog.steps[0], prog, ("ref",)).function == "batch_matmul_s8"


def test_packed_cost_features_by_hand():
    """batch_matmul_s8_packed's features: [2, 1, 3, 4] @ [1, 3, 4, 5] pot: 6 matrices, each
    decoding its 5 columns of 4 codes, 90 outputs of 4 MACs; the zeros of the constant (3
    matrices, each used twice) counted per activation row (3)."""
    prog = _packed_case(CASES[2], "pot3", True)[0]
    c = prog.steps[0].consts["rhs"]
    f = KERNELS["batch_matmul_s8_packed"].features(prog.steps[0])
    zero = float((c == 0).sum() * 2 * 3)
    assert f == {"call": 1, "matrices": 6, "vectors": 30, "decode": 120, "decode_pot": 120,
                 "straddles": f["straddles"], "outputs": 90, "macs_int": 0, "macs_pot_zero": zero,
                 "macs_pot": 360 - zero, "requant_pot": 90, "requant": 0}
    assert f["straddles"] > 0 and zero > 0
