"""Reductions over neighbouring axes -- MEAN, SUM, REDUCE_MAX: reduce_s8 (TFLite Micro's int8
arithmetic), its DSP drop-in reduce_s8_dsp (MEAN and SUM) and reduce_f32, as one-step programs
through the Cortex-M target -- on the host and on emulated cores -- against NumPy references
written from TFLM's reduce.h (QuantizedMeanOrSum for MEAN and SUM, ReduceGeneric for REDUCE_MAX)
and ONNX's ReduceMean / ReduceSum / ReduceMax. Every int8 case runs through each variant (the
reference kernel alone, and the DSP kernel where its builder accepts the step: ``dsp_accepts``)."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
import kernel_ref as ref
import tflite_ops as T
from adaptc.fixedpoint import mean_multiplier
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def _out_shape(shape: tuple, axes: list, keep_dims: bool) -> tuple:
    if keep_dims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def program(op: str, attrs: dict, shape: tuple, keep_dims: bool, dtype: str, reduce: str = "mean",
            axes: tuple = (1, 2)) -> Program:
    axes = list(axes)
    out_shape = _out_shape(shape, axes, keep_dims)
    x = Tensor(0, "x", tuple(shape), dtype, "input")
    y = Tensor(1, "y", out_shape, dtype, "output")
    count = int(np.prod([shape[a] for a in axes]))
    step = Step(0, op, "test case", [0], 1, {**attrs, "reduce": reduce, "axes": axes, "keep_dims": keep_dims,
                                             "count": count}, {}, in_shapes=[tuple(shape)], out_shape=out_shape)
    return Program(f"{reduce}_case", [x, y], [step], [0], [1])


def mean_s8_ref(x: np.ndarray, input_zp: int, multiplier: int, shift: int, output_zp: int, act_min: int,
                act_max: int) -> np.ndarray:
    """TFLM reference_ops::QuantizedMeanOrSum (int8, axes 1 and 2): the int32 sum less
    input_zp * count, MultiplyByQuantizedMultiplier, the output zero point, the clamp."""
    count = x.shape[1] * x.shape[2]
    acc = x.astype(np.int64).sum(axis=(1, 2)) - input_zp * count
    out = ref.mbqm(ref.wrap32(acc), multiplier, shift) + output_zp
    return np.clip(out, act_min, act_max).astype(np.int8)


def sum_s8_ref(x: np.ndarray, axes, input_zp: int, multiplier: int, shift: int, output_zp: int, act_min: int,
               act_max: int) -> np.ndarray:
    """TFLM reference_ops::QuantizedMeanOrSum with compute_sum (int8): per output the int32 sum
    of its inputs less input_zp * count, MultiplyByQuantizedMultiplier by QuantizeMultiplier of
    in_scale / out_scale, + the output zero point, clamped."""
    axes = tuple(axes)
    count = int(np.prod([x.shape[a] for a in axes]))
    acc = x.astype(np.int64).sum(axis=axes) - input_zp * count
    out = ref.mbqm(ref.wrap32(acc), multiplier, shift) + output_zp
    return np.clip(out, act_min, act_max).astype(np.int8)


def max_s8_ref(x: np.ndarray, axes, act_min: int, act_max: int) -> np.ndarray:
    """TFLM reference_ops::ReduceGeneric with max (int8; input and output parameters equal):
    the largest input, then the activation clamp."""
    return np.clip(x.max(axis=tuple(axes)), act_min, act_max).astype(np.int8)


def sum_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    """TFLM's PrepareMeanOrSum for SUM: QuantizeMultiplier of in_scale / out_scale (doubles of
    the float32 scales)."""
    return ref.quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)))


# (id, shape, in scale, out scale, input zp, output zp, act range)
CASES = [
    ("8x8x16", (1, 8, 8, 16), 0.1, 0.02, 5, -10, (-128, 127)),
    ("5x7x3_same_scale", (1, 5, 7, 3), 0.05, 0.05, -3, -3, (-128, 127)),
    ("1x1x10", (1, 1, 1, 10), 0.05, 0.05, 0, 0, (-128, 127)),
    ("kws_like_25x5x64", (1, 25, 5, 64), 0.02, 0.02, -128, -128, (-128, 127)),
    ("batch2_4x4x5", (2, 4, 4, 5), 0.03, 0.06, -128, -60, (-128, 127)),
    ("positive_shift_2x2", (1, 2, 2, 8), 0.5, 0.05, 3, -2, (-128, 127)),
    ("saturating", (1, 6, 6, 8), 0.05, 0.01, 0, 20, (-128, 127)),
    ("relu_range", (1, 3, 3, 7), 0.05, 0.04, 12, -128, (-128, 90)),
    ("fold_clamped", (1, 8, 8, 2), 1e-4, 1e4, 3, -5, (-128, 127)),
    ("wide_128ch", (1, 3, 3, 128), 0.07, 0.03, -1, 4, (-128, 127)),
    ("one_channel_40x27", (1, 40, 27, 1), 0.05, 0.05, -128, -128, (-128, 127)),
    ("quads_and_two_20x20x6", (1, 20, 20, 6), 0.05, 0.03, 127, -128, (-128, 127)),
]


def dsp_accepts(reduce: str, count: int, input_zp: int, multiplier: int, shift: int) -> bool:
    """reduce_s8_dsp takes MEAN and SUM (not REDUCE_MAX) where its requantization (dsp.h
    adaptc_rq_apply) equals MultiplyByQuantizedMultiplier for every sum of count int8 inputs less
    the zero point: |acc << max(shift, 0)| < 2^30."""
    largest = max(128 + input_zp, 127 - input_zp) * count
    return reduce != "max" and 0 <= multiplier < 2**31 and largest << max(shift, 0) < 2**30


VARIANTS = [pytest.param(("ref",), id="ref"), pytest.param(("dsp", "ref"), id="dsp")]


def expected_kernel(step, variants: tuple) -> str:
    a = step.attrs
    dsp = variants[0] == "dsp" and dsp_accepts(a["reduce"], a["count"], a["input_zp"], a["multiplier"][0],
                                               a["shift"][0])
    return "reduce_s8_dsp" if dsp else "reduce_s8"


def _inputs(case_id: str, shape) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + \
        [np.full(shape, 127, np.int8), np.full(shape, -128, np.int8)]


def _case(case, keep_dims: bool):
    cid, shape, s_in, s_out, zp_in, zp_out, (lo, hi) = case
    mult, shift = mean_multiplier(s_in, s_out, shape[1] * shape[2])
    attrs = {"input_zp": zp_in, "multiplier": [mult], "shift": [shift], "output_zp": zp_out, "act_min": lo,
             "act_max": hi}
    prog = program("adaptc.qreduce", attrs, shape, keep_dims, "int8")
    want = [mean_s8_ref(x, zp_in, mult, shift, zp_out, lo, hi) for x in _inputs(cid, shape)]
    return prog, _inputs(cid, shape), want


def test_the_cases_reach_the_corners():
    """The cases hold a positive shift, a multiplier folded less than log2(count), clamps."""
    shifts = [mean_multiplier(c[2], c[3], c[1][1] * c[1][2])[1] for c in CASES]
    assert max(shifts) > 0 and min(shifts) == -31
    outs = np.concatenate([w.ravel() for c in CASES for w in _case(c, False)[2]])
    assert outs.min() == -128 and outs.max() == 127 and 90 in outs


@pytest.mark.parametrize("variants", VARIANTS)
@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mean_s8_host(case, keep_dims, variants):
    prog, xs, want = _case(case, keep_dims)
    m = api.compile_program(prog, "cortex-m4", kernels=",".join(variants))
    assert [s.kernel for s in m.scheduled.steps] == [expected_kernel(prog.steps[0], variants)]
    for x, w in zip(xs, want):
        got = m.run(x)
        assert got.shape == prog.tensors[1].shape
        np.testing.assert_array_equal(got.reshape(w.shape), w)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[5], CASES[7], CASES[10], CASES[11]], ids=lambda c: c[0])
def test_mean_s8_emulated(case, target):
    """Each core's own variants (Cortex-M4 and M55: the DSP kernel where it accepts the step)."""
    prog, xs, want = _case(case, False)
    m = api.compile_program(prog, target)
    assert m.scheduled.steps[0].kernel == expected_kernel(prog.steps[0], ("ref",) if target == "cortex-m0plus"
                                                          else ("dsp", "ref"))
    r = m.run_batch_on_target(np.stack(xs))
    np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want))


# ------------------------------------------------------------------------------- SUM and REDUCE_MAX, int8

# (id, shape, axes, in scale, out scale, input zp, output zp, act range); REDUCE_MAX reads the
# shape, the axes and the act range (its input and output parameters are equal).
OP_CASES = [
    ("spatial_4x4x5", (1, 4, 4, 5), (1, 2), 0.05, 0.5, 3, -4, (-128, 127)),
    ("last_axis_batch2", (2, 3, 12), (2,), 0.02, 0.1, -128, 10, (-128, 127)),
    ("middle_axis", (2, 6, 3, 4), (1,), 0.1, 0.1, 0, 0, (-128, 127)),
    ("trailing_axes_clamped", (3, 4, 5), (1, 2), 0.01, 0.3, -7, -20, (-50, 60)),
    ("positive_shift", (1, 2, 2, 6), (1, 2), 0.5, 0.05, 1, 2, (-128, 127)),
    ("long_last_axis_tail", (2, 1, 1103), (2,), 0.01, 0.5, -128, 3, (-128, 127)),
    ("dsp_declines_huge_ratio", (1, 4, 4, 5), (1, 2), 2.0, 2e-6, 5, 0, (-128, 127)),
]


def _op_case(case, reduce: str, keep_dims: bool = False):
    """(program, inputs, expected outputs) of an int8 SUM or REDUCE_MAX case."""
    cid, shape, axes, s_in, s_out, zp_in, zp_out, (lo, hi) = case
    mult, shift = sum_multiplier(s_in, s_out)
    attrs = {"input_zp": zp_in, "multiplier": [mult], "shift": [shift], "output_zp": zp_out, "act_min": lo,
             "act_max": hi}
    xs = _inputs(cid + reduce, shape)
    if reduce == "sum":
        want = [sum_s8_ref(x, axes, zp_in, mult, shift, zp_out, lo, hi) for x in xs]
    else:
        want = [max_s8_ref(x, axes, lo, hi) for x in xs]
    return program("adaptc.qreduce", attrs, shape, keep_dims, "int8", reduce, axes), xs, want


def test_the_sum_and_max_cases_reach_the_corners():
    """SUM: a positive shift, both saturations, the narrow clamp, unsaturated outputs; MAX: the
    clamp met from both sides."""
    assert max(sum_multiplier(c[3], c[4])[1] for c in OP_CASES) > 0
    sums = np.concatenate([w.ravel() for c in OP_CASES for w in _op_case(c, "sum")[2]])
    assert sums.min() == -128 and sums.max() == 127 and len(np.unique(sums)) > 50
    clamped = next(c for c in OP_CASES if c[0] == "trailing_axes_clamped")
    for reduce in ("sum", "max"):
        outs = np.concatenate([w.ravel() for w in _op_case(clamped, reduce)[2]])
        assert outs.min() == -50 and outs.max() == 60


@pytest.mark.parametrize("reduce,tflite_op", [("sum", "SUM"), ("max", "REDUCE_MAX")])
def test_reference_is_tflite_micro(reduce, tflite_op):
    """sum_s8_ref / max_s8_ref equal TFLite Micro's SUM / REDUCE_MAX bit for bit (no activation:
    the full int8 range)."""
    for case in OP_CASES:
        if case[-1] != (-128, 127):
            continue
        cid, shape, axes, s_in, s_out, zp_in, zp_out, _ = case
        if reduce == "max":
            s_out, zp_out = s_in, zp_in
        buf = T.reduce_model(tflite_op, shape, axes, False, (s_in, zp_in), (s_out, zp_out))
        for x in _inputs(cid + reduce, shape):
            want = (sum_s8_ref(x, axes, zp_in, *sum_multiplier(s_in, s_out), zp_out, -128, 127) if reduce == "sum"
                    else max_s8_ref(x, axes, -128, 127))
            np.testing.assert_array_equal(T.run_tflm(buf, x).reshape(want.shape), want, err_msg=cid)


def test_dsp_declines():
    """REDUCE_MAX, and the SUM whose shift makes the cheaper requantization inexact."""
    assert not dsp_accepts("max", 16, 0, 1 << 30, -5)
    declined = [c[0] for c in OP_CASES if not dsp_accepts("sum", int(np.prod([c[1][a] for a in c[2]])), c[5],
                                                          *sum_multiplier(c[3], c[4]))]
    assert declined == ["dsp_declines_huge_ratio"]


@pytest.mark.parametrize("variants", VARIANTS)
@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
@pytest.mark.parametrize("reduce", ["sum", "max"])
@pytest.mark.parametrize("case", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_sum_max_s8_host(case, reduce, keep_dims, variants):
    prog, xs, want = _op_case(case, reduce, keep_dims)
    m = api.compile_program(prog, "cortex-m4", kernels=",".join(variants))
    [step] = m.scheduled.steps
    assert step.kernel == expected_kernel(prog.steps[0], variants)
    assert step.kernel == "reduce_s8_dsp" or step.call.params["op"] == {"sum": 0, "max": 1}[reduce]
    for x, w in zip(xs, want):
        got = m.run(x)
        assert got.shape == prog.tensors[1].shape
        np.testing.assert_array_equal(got.reshape(w.shape), w)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("reduce", ["sum", "max"])
def test_sum_max_s8_emulated(reduce):
    for case in (OP_CASES[1], OP_CASES[3], OP_CASES[5], OP_CASES[6]):
        prog, xs, want = _op_case(case, reduce)
        m = api.compile_program(prog, "cortex-m4")
        assert m.scheduled.steps[0].kernel == expected_kernel(prog.steps[0], ("dsp", "ref")), case[0]
        r = m.run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=case[0])


def test_cost_features_by_hand():
    """reduce_*'s features: one call, the batches, an output per batch and channel, every input
    element read once."""
    feats = KERNELS["reduce_s8"].features
    # [1, 8, 8, 16] over H, W: 1 batch, 16 outputs of 64 inputs
    assert feats(_case(CASES[0], False)[0].steps[0]) == {"call": 1, "batches": 1, "outputs": 16, "elements": 1024}
    # [2, 4, 4, 5] over H, W: 2 batches of 5 outputs, 16 inputs each
    assert feats(_case(CASES[4], True)[0].steps[0]) == {"call": 1, "batches": 2, "outputs": 10, "elements": 160}
    # [2, 6, 3, 4] over axis 1: batches 2, channels 3 * 4 = 12, count 6
    assert feats(_op_case(OP_CASES[2], "max")[0].steps[0]) == {"call": 1, "batches": 2, "outputs": 24,
                                                               "elements": 144}
    # [2, 3, 12] over the last axis: 6 batches of one channel, 12 inputs each
    prog = program("adaptc.reduce_f32", {}, (2, 3, 12), False, "float32", "sum", (2,))
    assert KERNELS["reduce_f32"].features(prog.steps[0]) == {"call": 1, "batches": 6, "outputs": 6, "elements": 72}


def test_dsp_cost_features_by_hand():
    """reduce_s8_dsp: one channel -- words of four, a fold per 127 words, the rest one at a time;
    several -- a word per row of four channels, a fold per 255 rows, the other channels one at a time."""
    feats = KERNELS["reduce_s8_dsp"].features
    # [2, 1, 1103] over the last axis: 2 batches of one output; 275 words (3 folds), 3 single inputs
    assert feats(_op_case(OP_CASES[5], "sum")[0].steps[0]) == {
        "call": 1, "batches": 2, "outputs": 2, "words": 550, "rows4": 0, "blocks": 6, "elements": 6, "clamped": 0}
    # [1, 20, 20, 6]: one group of four channels, 400 rows (2 folds); 2 channels of 400 inputs
    assert feats(_case(CASES[11], False)[0].steps[0]) == {
        "call": 1, "batches": 1, "outputs": 6, "words": 0, "rows4": 400, "blocks": 2, "elements": 800, "clamped": 0}
    # [1, 3, 3, 7] with a RELU range: 1 group, 9 rows; 3 channels of 9; 7 outputs clamped
    assert feats(_case(CASES[7], False)[0].steps[0]) == {
        "call": 1, "batches": 1, "outputs": 7, "words": 0, "rows4": 9, "blocks": 1, "elements": 27, "clamped": 7}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_reduce_s8_dsp_fewer_instructions():
    """On the Cortex-M4 the DSP kernel runs a [1, 7, 7, 64] global average pooling in under half
    the reference kernel's instructions (measured: about 5.7 per input element against 1.6)."""
    prog, xs, _ = _case(("gap_7x7x64", (1, 7, 7, 64), 0.05, 0.04, -3, 5, (-128, 127)), False)
    runs = {k: api.compile_program(prog, "cortex-m4", kernels=k).run_on_target(xs[0]) for k in ("ref", "dsp,ref")}
    np.testing.assert_array_equal(runs["dsp,ref"].outputs, runs["ref"].outputs)
    insns = {k: r.steps[0]["instructions"] / xs[0].size for k, r in runs.items()}
    assert insns["dsp,ref"] < 0.5 * insns["ref"], insns


# ------------------------------------------------------------------------------- float32

F_CASES = [("8x8x16", (1, 8, 8, 16), None), ("4x4x64_relu6", (1, 4, 4, 64), (0.0, 6.0)),
           ("batch2_25x5x3", (2, 25, 5, 3), None), ("1x1x4", (1, 1, 1, 4), None)]


@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
@pytest.mark.parametrize("case", F_CASES, ids=[c[0] for c in F_CASES])
def test_mean_f32_host(case, keep_dims):
    cid, shape, act = case
    attrs = {} if act is None else {"act_min": act[0], "act_max": act[1]}
    prog = program("adaptc.reduce_f32", attrs, shape, keep_dims, "float32")
    m = api.compile_program(prog, "cortex-m4", format="float32")
    assert [s.kernel for s in m.scheduled.steps] == ["reduce_f32"]
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    for _ in range(3):
        x = rng.normal(1.0, 3.0, size=shape).astype(np.float32)
        want = x.astype(np.float64).mean(axis=(1, 2))
        if act is not None:
            want = np.clip(want, *act)
        got = m.run(x).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        if act is not None:
            assert got.min() == 0.0 or got.max() == 6.0 or np.all((got > 0) & (got < 6))


# (id, shape, axes, act range or None)
F_OP_CASES = [("spatial_8x8x16", (1, 8, 8, 16), (1, 2), None), ("last_axis", (2, 3, 12), (2,), None),
              ("middle_axis_relu6", (2, 6, 3, 4), (1,), (0.0, 6.0))]


def _f_want(x: np.ndarray, reduce: str, axes, act) -> np.ndarray:
    """ONNX ReduceSum (exact in float64; the kernel's float32 sum agrees to rounding) and
    ReduceMax (exact), then the fused activation's clamp."""
    want = x.astype(np.float64).sum(axis=tuple(axes)) if reduce == "sum" else x.max(axis=tuple(axes))
    return want if act is None else np.clip(want, *act)


@pytest.mark.parametrize("reduce", ["sum", "max"])
@pytest.mark.parametrize("case", F_OP_CASES, ids=[c[0] for c in F_OP_CASES])
def test_sum_max_f32_host(case, reduce):
    cid, shape, axes, act = case
    attrs = {} if act is None else {"act_min": act[0], "act_max": act[1]}
    prog = program("adaptc.reduce_f32", attrs, shape, False, "float32", reduce, axes)
    m = api.compile_program(prog, "cortex-m4", format="float32")
    [step] = m.scheduled.steps
    assert step.kernel == "reduce_f32" and step.call.params["op"] == {"sum": 1, "max": 2}[reduce]
    rng = np.random.default_rng(zlib.crc32((cid + reduce).encode()))
    outs = []
    for _ in range(3):
        x = rng.normal(1.0, 3.0, size=shape).astype(np.float32)
        want = _f_want(x, reduce, axes, act)
        got = m.run(x)
        if reduce == "max":
            np.testing.assert_array_equal(got, want.astype(np.float32))
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        outs.append(got)
    if act is not None:
        allo = np.concatenate([o.ravel() for o in outs])
        assert allo.max() == 6.0 and np.any((allo > 0) & (allo < 6))


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_reduce_f32_emulated(target):
    """Soft float (M0+) and the single-precision FPU (M4): every op of one case."""
    cid, shape, axes, act = F_OP_CASES[2]
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    xs = np.stack([rng.normal(1.0, 3.0, size=shape).astype(np.float32) for _ in range(3)])
    for reduce in ("mean", "sum", "max"):
        attrs = {"act_min": act[0], "act_max": act[1]}
        m = api.compile_program(program("adaptc.reduce_f32", attrs, shape, False, "float32", reduce, axes),
                                target, format="float32")
        r = m.run_batch_on_target(xs)
        host = np.stack([m.run(x) for x in xs])
        np.testing.assert_array_equal(r.outputs[0].reshape(host.shape), host, err_msg=reduce)
        want = np.stack([x.astype(np.float64).mean(axis=axes) if reduce == "mean" else _f_want(x, reduce, axes, None)
                         for x in xs])
        np.testing.assert_allclose(host, np.clip(want, *act), rtol=1e-5, atol=1e-5)


def test_reduce_records():
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op in ("adaptc.qreduce", "adaptc.reduce_f32")}
    assert records == {"reduce_s8": ("adaptc.qreduce", "ref"), "reduce_s8_dsp": ("adaptc.qreduce", "dsp"),
                       "reduce_f32": ("adaptc.reduce_f32", "ref")}
