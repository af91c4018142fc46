"""MEAN over the spatial axes: reduce_s8 (TFLite Micro's int8 MEAN arithmetic) and reduce_f32, as
one-step programs through the Cortex-M target -- on the host and on emulated cores -- against
numpy references written from TFLM's reduce.h (QuantizedMeanOrSum) and ONNX's ReduceMean."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
import kernel_ref as ref
from adaptc.fixedpoint import mean_multiplier
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def program(op: str, attrs: dict, shape: tuple, keep_dims: bool, dtype: str, reduce: str = "mean") -> Program:
    n, c = shape[0], shape[-1]
    out_shape = (n, 1, 1, c) if keep_dims else (n, c)
    x = Tensor(0, "x", tuple(shape), dtype, "input")
    y = Tensor(1, "y", out_shape, dtype, "output")
    step = Step(0, op, "test case", [0], 1, {**attrs, "reduce": reduce, "axes": [1, 2], "keep_dims": keep_dims, "count":
                                               shape[1] * shape[2]}, {}, in_shapes=[tuple(shape)],
                out_shape=out_shape)
    return Program("mean_case", [x, y], [step], [0], [1])


def mean_s8_ref(x: np.ndarray, input_zp: int, multiplier: int, shift: int, output_zp: int, act_min: int,
                act_max: int) -> np.ndarray:
    """TFLM reference_ops::QuantizedMeanOrSum (int8, axes 1 and 2): the int32 sum less
    input_zp * count, MultiplyByQuantizedMultiplier, the output zero point, the clamp."""
    count = x.shape[1] * x.shape[2]
    acc = x.astype(np.int64).sum(axis=(1, 2)) - input_zp * count
    out = ref.mbqm(ref.wrap32(acc), multiplier, shift) + output_zp
    return np.clip(out, act_min, act_max).astype(np.int8)


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
]


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


@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mean_s8_host(case, keep_dims):
    prog, xs, want = _case(case, keep_dims)
    m = api.compile_program(prog, "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["reduce_s8"]
    for x, w in zip(xs, want):
        got = m.run(x)
        assert got.shape == prog.tensors[1].shape
        np.testing.assert_array_equal(got.reshape(w.shape), w)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[5], CASES[7]], ids=lambda c: c[0])
def test_mean_s8_emulated(case, target):
    prog, xs, want = _case(case, False)
    m = api.compile_program(prog, target)
    r = m.run_batch_on_target(np.stack(xs))
    np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want))


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


def test_mean_has_one_record_per_kernel_and_no_variant():
    """MEAN runs once per network (global pooling): the reference kernels everywhere."""
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op in ("adaptc.qreduce", "adaptc.reduce_f32")}
    assert records == {"reduce_s8": ("adaptc.qreduce", "ref"), "reduce_f32": ("adaptc.reduce_f32", "ref")}
