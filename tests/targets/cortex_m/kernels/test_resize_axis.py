"""One axis of a resize as tap tables: resize_axis_f32 (ONNX Resize, modes linear and cubic,
antialias) and resize_axis_s8 (its post-training int8 form), as one-step programs through the
Cortex-M target -- on the host and on an emulated core -- against NumPy references.

Along the resized axis every output element is a weighted sum of ``taps`` input elements; the
source indices and weights are tables in flash (``step.consts``). The references apply the
tables in float64 (float kernel) or in the integers templates/kernels/resize_axis_s8.c documents
(int8 kernel; adaptc.fixedpoint only for the multiplier). The tables come from
adaptc.resize.onnx_taps, checked here against onnx.reference's Resize, or are random (the
kernels apply any table: repeated, unordered indices, negative weights)."""
from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import adaptc.api as api
import kernel_ref as ref
from adaptc import fixedpoint, resize
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
WEIGHT_BITS = 16              # resize_axis_s8's weights: round(w * 2^16)


@dataclass
class Case:
    id: str
    in_shape: tuple
    axis: int
    out_size: int
    taps: dict | None                 # onnx_taps' arguments (besides the sizes), or None: random tables
    geometry: tuple                   # (outer, in_size, out_size, inner, taps), by hand

    @property
    def out_shape(self) -> tuple:
        s = list(self.in_shape)
        s[self.axis] = self.out_size
        return tuple(s)

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices int32 [out, K], weights float32 [out, K])."""
        n_in = self.in_shape[self.axis]
        if self.taps is None:
            rng = np.random.default_rng(zlib.crc32(self.id.encode()))
            k = self.geometry[4]
            idx = rng.integers(0, n_in, size=(self.out_size, k)).astype(np.int32)
            idx[0] = [n_in - 1, 0, n_in - 1][:k]                    # both ends, one twice, unordered
            return idx, rng.normal(0.0, 0.6, size=(self.out_size, k)).astype(np.float32)
        idx, w, extra = resize.onnx_taps(n_in, self.out_size, **self.taps)
        assert not extra.any()
        return idx, w


CASES = [
    Case("linear_half_pixel_up_h", (1, 4, 5, 3), 1, 8, {"scale": 2.0, "mode": "linear"}, (1, 4, 8, 15, 2)),
    Case("cubic_align_corners_down_w", (1, 3, 7, 2), 2, 5,
         {"scale": 5 / 7, "mode": "cubic", "coord": "align_corners"}, (3, 7, 5, 2, 4)),
    Case("linear_antialias_down_last_axis", (2, 3, 12), 2, 5,
         {"scale": 5 / 12, "mode": "linear", "antialias": True}, (6, 12, 5, 1, 6)),
    Case("random_tables_outer_axis", (5, 4), 0, 6, None, (1, 5, 6, 4, 3)),
]


def resize_axis_f32_ref(x, axis, idx, w) -> np.ndarray:
    """out[..., j, ...] = sum_k w[j, k] * x[..., idx[j, k], ...], in float64, rounded to float32."""
    g = np.take(x.astype(np.float64), idx, axis=axis)            # [..., out, K, ...]
    wk = w.astype(np.float64).reshape(idx.shape + (1,) * (x.ndim - axis - 1))
    return (g * wk).sum(axis=axis + 1).astype(np.float32)


def resize_axis_s8_ref(x, axis, idx, w_q, input_zp, output_zp, multiplier, shift) -> np.ndarray:
    """resize_axis_s8.c: acc = sum_k w_q[j, k] * (x - input_zp) (int32), then
    clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_zp, -128, 127)."""
    g = np.take(x.astype(np.int64) - input_zp, idx, axis=axis)
    acc = (g * w_q.astype(np.int64).reshape(idx.shape + (1,) * (x.ndim - axis - 1))).sum(axis=axis + 1)
    assert np.all(np.abs(acc) < 2**31)                            # the C's int32 accumulator
    return np.clip(ref.mbqm(acc, multiplier, shift) + output_zp, -128, 127).astype(np.int8)


def _attrs(case: Case) -> dict:
    return {**dict(zip(("outer", "in_size", "out_size", "inner", "taps"), case.geometry)),
            "out_shape": list(case.out_shape)}


def program(case: Case, op: str, attrs: dict, consts: dict, dtype: str) -> Program:
    x = Tensor(0, "x", case.in_shape, dtype, "input")
    y = Tensor(1, "y", case.out_shape, dtype, "output")
    step = Step(0, op, "test case", [0], 1, attrs, consts, in_shapes=[case.in_shape], out_shape=case.out_shape)
    return Program("resize_axis_case", [x, y], [step], [0], [1])


def _f_case(case: Case):
    """(program, inputs, expected outputs) of resize_axis_f32."""
    idx, w = case.tables()
    rng = np.random.default_rng(zlib.crc32(case.id.encode()) + 1)
    xs = [rng.normal(0.0, 2.0, case.in_shape).astype(np.float32) for _ in range(3)]
    want = [resize_axis_f32_ref(x, case.axis, idx, w) for x in xs]
    prog = program(case, "adaptc.resize_axis_f32", _attrs(case), {"indices": idx, "weights": w}, "float32")
    return prog, xs, want


# (case, input scale, input zp, output scale, output zp): a linear resize keeps its input's
# quantization (TFLite's rule); cubic and random tables requantize (negative weights: both saturations)
Q_CASES = [(CASES[0], 0.05, -3, 0.05, -3), (CASES[1], 0.02, 10, 0.015, -5), (CASES[3], 0.04, 0, 0.03, 7),
           (CASES[2], 0.1, -128, 0.08, 20)]


def _q_case(qcase):
    """(program, inputs, expected outputs) of resize_axis_s8."""
    case, s_in, zp_in, s_out, zp_out = qcase
    idx, w = case.tables()
    w_q = np.round(w.astype(np.float64) * (1 << WEIGHT_BITS)).astype(np.int32)
    multiplier, shift = fixedpoint.quantize_multiplier(s_in / s_out / (1 << WEIGHT_BITS))
    attrs = {**_attrs(case), "input_zp": zp_in, "output_zp": zp_out, "multiplier": multiplier, "shift": shift}
    rng = np.random.default_rng(zlib.crc32(case.id.encode()) + 2)
    xs = [rng.integers(-128, 128, case.in_shape, dtype=np.int8) for _ in range(3)]
    xs += [np.full(case.in_shape, -128, np.int8), np.full(case.in_shape, 127, np.int8)]
    want = [resize_axis_s8_ref(x, case.axis, idx, w_q, zp_in, zp_out, multiplier, shift) for x in xs]
    prog = program(case, "adaptc.qresize_axis", attrs, {"indices": idx, "weights": w_q}, "int8")
    return prog, xs, want


@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: c.id)
def test_taps_are_onnx_resize(case):
    """The tables (adaptc.resize.onnx_taps) applied by the float64 reference equal onnx.reference's
    Resize of the whole tensor (scale 1 on every other axis), so the kernels are tested against
    ONNX's definition, not only against adaptc's tables."""
    idx, w = case.tables()
    x = np.random.default_rng(7).normal(0.0, 1.0, case.in_shape).astype(np.float32)
    t = case.taps
    sizes = np.asarray(case.out_shape, np.int64)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode=t["mode"],
                            coordinate_transformation_mode=t.get("coord", "half_pixel"),
                            antialias=int(t.get("antialias", False)))
    want = ReferenceEvaluator(node).run(None, {"x": x, "sizes": sizes})[0]
    np.testing.assert_allclose(resize_axis_f32_ref(x, case.axis, idx, w), want, rtol=1e-5, atol=1e-6)


def test_geometry_by_hand_is_the_tables():
    """The hand-written geometry: the tables' shape [out_size, taps] and [outer][in][inner]."""
    for case in CASES:
        idx, w = case.tables()
        outer, n_in, n_out, inner, k = case.geometry
        assert idx.shape == w.shape == (n_out, k)
        assert (outer * n_in * inner, n_in) == (int(np.prod(case.in_shape)), case.in_shape[case.axis])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_resize_axis_f32_host(case):
    prog, xs, want = _f_case(case)
    m = api.compile_program(prog, "cortex-m4", format="float32")
    [step] = m.scheduled.steps
    assert step.kernel == "resize_axis_f32"
    p = step.call.params
    assert tuple(p[g] for g in ("outer", "in_size", "out_size", "inner", "taps")) == case.geometry
    assert [role for role, _ in step.call.arrays] == ["indices", "weights"]
    for x, w in zip(xs, want):
        got = m.run(x)
        assert got.shape == case.out_shape
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)   # float32 multiply-adds in tap order


def test_the_int8_cases_reach_the_corners():
    """Both saturations, unsaturated outputs, negative weights (cubic, random tables)."""
    outs = np.concatenate([w.ravel() for q in Q_CASES for w in _q_case(q)[2]])
    assert outs.min() == -128 and outs.max() == 127 and len(np.unique(outs)) > 100
    assert (CASES[1].tables()[1] < 0).any() and (CASES[3].tables()[1] < 0).any()


@pytest.mark.parametrize("qcase", Q_CASES, ids=lambda q: q[0].id)
def test_resize_axis_s8_host(qcase):
    prog, xs, want = _q_case(qcase)
    m = api.compile_program(prog, "cortex-m4")
    [step] = m.scheduled.steps
    assert step.kernel == "resize_axis_s8"
    p = step.call.params
    a = prog.steps[0].attrs
    assert (p["input_offset"], p["output_offset"], p["multiplier"], p["shift"]) == \
        (-a["input_zp"], a["output_zp"], a["multiplier"], a["shift"])
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(m.run(x), w)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cost_features_are_the_loop_counts(case):
    """Both kernels: one call; per output row (outer x out_size) its taps; per output element
    taps multiply-adds."""
    outer, _, n_out, inner, k = case.geometry
    rows = outer * n_out
    want = {"call": 1, "rows": rows, "row_taps": rows * k, "elements": rows * inner, "macs": rows * inner * k}
    assert KERNELS["resize_axis_f32"].features(_f_case(case)[0].steps[0]) == want
    q = next(q for q in Q_CASES if q[0] is case)
    assert KERNELS["resize_axis_s8"].features(_q_case(q)[0].steps[0]) == want


def test_cost_features_by_hand():
    """[1, 4, 5, 3] -> [1, 8, 5, 3] linear: 8 rows of 2 taps, 120 elements of 2 MACs;
    [2, 3, 12] -> [2, 3, 5] antialiased: 6 x 5 rows of 6 taps, 30 elements."""
    up, _, _ = _f_case(CASES[0])
    assert KERNELS["resize_axis_f32"].features(up.steps[0]) == {"call": 1, "rows": 8, "row_taps": 16,
                                                                "elements": 120, "macs": 240}
    aa, _, _ = _f_case(CASES[2])
    assert KERNELS["resize_axis_f32"].features(aa.steps[0]) == {"call": 1, "rows": 30, "row_taps": 180,
                                                                "elements": 30, "macs": 180}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_resize_axis_on_the_emulated_m4():
    """The single-precision FPU's multiply-adds (contracted or not) within the host's tolerance;
    the int8 kernel bit for bit."""
    for prog, xs, want, exact in (_f_case(CASES[1]) + (False,), _q_case(Q_CASES[1]) + (True,)):
        m = api.compile_program(prog, "cortex-m4", format="int8" if exact else "float32")
        r = m.run_batch_on_target(np.stack(xs))
        got = r.outputs[0].reshape(np.stack(want).shape)
        if exact:
            np.testing.assert_array_equal(got, np.stack(want))
        else:
            np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-6)


def test_resize_axis_has_one_record_per_kernel_and_no_variant():
    ops = ("adaptc.resize_axis_f32", "adaptc.qresize_axis")
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op in ops}
    assert records == {"resize_axis_f32": ("adaptc.resize_axis_f32", "ref"),
                       "resize_axis_s8": ("adaptc.qresize_axis", "ref")}
