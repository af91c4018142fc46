"""ONNX Resize (modes linear and cubic), Pad (modes and axes) and 1-D / dilated pooling end to end.

Resize: the per-axis tap tables (adaptc.resize.onnx_taps) applied in numpy equal
onnx.reference's Resize; float models compiled to C within rtol 1e-4 / atol 1e-5 of onnxruntime
(host, and one on the emulated Cortex-M4); post-training int8 C bit-exact with the Relax
module, a linear resize keeping its input's quantization (TFLite's bilinear rule), a cubic one
calibrating its own. Pad: constant (with axes), reflect, edge and wrap within 1e-5 of
onnxruntime. Pooling: 1-D AveragePool / MaxPool and dilated 2-D MaxPool / AveragePool within 1e-5.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import adaptc
from adaptc import resize

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def _model(path: Path, nodes, x_shape, y_shape, inits=(), opset=19) -> Path:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _resize(path, x_shape, y_shape, scales=None, sizes=None, roi=None, **attrs) -> Path:
    inits = [("roi", np.asarray(roi if roi is not None else [], np.float32))]
    inits.append(("scales", np.asarray(scales if scales is not None else [], np.float32)))
    names = ["x", "roi", "scales"]
    if sizes is not None:
        inits.append(("sizes", np.asarray(sizes, np.int64)))
        names.append("sizes")
    node = helper.make_node("Resize", names, ["y"], **attrs)
    return _model(path, [node], x_shape, y_shape, inits)


def _apply_taps(x, axis, idx, w, extra, value):
    g = np.take(x.astype(np.float64), idx.reshape(-1), axis=axis)
    g = g.reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1:])
    y = (g * w.astype(np.float64).reshape(idx.shape + (1,) * (x.ndim - axis - 1))).sum(axis=axis + 1)
    shape = [1] * x.ndim
    shape[axis] = len(extra)
    return np.where(extra.reshape(shape), value, y)


# (mode, coord, in, out, scale | None (sizes), attrs)
TAPS = [
    ("linear", "half_pixel", 4, 8, 2.0, {}),
    ("linear", "half_pixel", 8, 3, 0.375, {}),
    ("linear", "align_corners", 5, 9, None, {}),
    ("linear", "asymmetric", 4, 7, 1.75, {}),
    ("linear", "pytorch_half_pixel", 4, 1, 0.25, {}),
    ("linear", "half_pixel_symmetric", 5, 7, 1.5, {}),
    ("linear", "half_pixel", 9, 4, 0.45, {"antialias": 1}),
    ("cubic", "half_pixel", 4, 8, 2.0, {}),
    ("cubic", "align_corners", 6, 4, None, {"cubic_coeff_a": -0.5}),
    ("cubic", "asymmetric", 4, 10, 2.5, {"exclude_outside": 1}),
    ("cubic", "half_pixel", 10, 4, 0.4, {"antialias": 1}),
    ("cubic", "half_pixel", 7, 3, 0.5, {"antialias": 1, "exclude_outside": 1, "cubic_coeff_a": -0.5}),
    ("linear", "tf_crop_and_resize", 6, 5, None, {"roi": (0.2, 1.3), "extrapolation_value": 10.0}),
    ("cubic", "tf_crop_and_resize", 6, 4, None, {"roi": (-0.1, 0.7)}),
]


@pytest.mark.parametrize("case", TAPS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}to{c[3]}-{'-'.join(c[5])}")
def test_taps_equal_onnx_reference(case):
    """Along one axis of a [2, n, 3] tensor: the taps applied in numpy equal onnx.reference."""
    mode, coord, n_in, n_out, scale, attrs = case
    attrs = dict(attrs)
    roi = attrs.pop("roi", (0.0, 1.0))
    value = attrs.pop("extrapolation_value", 0.0)
    x = np.random.default_rng(n_in * 31 + n_out).standard_normal((2, n_in, 3)).astype(np.float32)
    s = scale if scale is not None else n_out / n_in
    idx, w, extra = resize.onnx_taps(n_in, n_out, s, mode, coord, attrs.get("cubic_coeff_a", -0.75),
                                          bool(attrs.get("exclude_outside")), bool(attrs.get("antialias")), roi)
    inputs = {"x": x, "roi": np.asarray([0, roi[0], 0, 1, roi[1], 1], np.float32)}
    if scale is not None:
        inputs["scales"] = np.asarray([1, scale, 1], np.float32)
    else:
        inputs["sizes"] = np.asarray([2, n_out, 3], np.int64)
    names = ["x", "roi", "scales"] if scale is not None else ["x", "roi", "", "sizes"]
    node = helper.make_node("Resize", names, ["y"], mode=mode, coordinate_transformation_mode=coord,
                            extrapolation_value=value, **attrs)
    want = ReferenceEvaluator(node).run(None, inputs)[0]
    np.testing.assert_allclose(_apply_taps(x, 1, idx, w, extra, value), want, rtol=1e-6, atol=1e-6)


# (id, x shape, y shape, scales, sizes, roi, attributes, kernels)
RESIZES = [
    ("linear_half_pixel_up", (1, 2, 4, 5), (1, 2, 8, 10), [1, 1, 2, 2], None, None,
     {"mode": "linear"}, ["resize_axis_f32", "resize_axis_f32"]),
    ("cubic_align_corners_down", (1, 3, 9, 7), (1, 3, 4, 5), None, [1, 3, 4, 5], None,
     {"mode": "cubic", "coordinate_transformation_mode": "align_corners"}, ["resize_axis_f32"] * 2),
    ("linear_antialias_one_axis", (1, 2, 6, 12), (1, 2, 6, 5), None, [5], None,
     {"mode": "linear", "antialias": 1, "axes": [3]}, ["resize_axis_f32"]),
    ("cubic_exclude_outside_one_axis", (1, 2, 7, 3), (1, 2, 10, 3), [1, 1, 1.5, 1], None, None,
     {"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5}, ["resize_axis_f32"]),
    ("tf_crop_and_resize", (1, 1, 6, 6), (1, 1, 4, 5), None, [1, 1, 4, 5], [0, 0, 0.1, -0.2, 1, 1, 0.9, 1.1],
     {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 3.0},
     ["resize_axis_f32", "resize_axis_f32", "binary_f32"]),
]


def _float_check(m, path, shape, n=3, seed=0):
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = rng.standard_normal(shape).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(m.run(x), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", RESIZES, ids=lambda c: c[0])
def test_resize_float_c_within_tolerance_of_onnxruntime(case, tmp_path):
    cid, xs, ys, scales, sizes, roi, attrs, kernels = case
    path = _resize(tmp_path / f"{cid}.onnx", xs, ys, scales, sizes, roi, **attrs)
    m = adaptc.compile(path, target="cortex-m4")
    used = [s.kernel for s in m.scheduled.steps]
    if kernels is not None:
        assert used == kernels
    assert "resize_axis_f32" in used
    _float_check(m, path, xs)


def _conv_resize(path: Path, mode: str) -> Path:
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((4, 2, 3, 3)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["c", "roi", "scales"], ["y"], mode=mode)]
    return _model(path, nodes, (1, 2, 5, 6), (1, 4, 10, 9),
                  [("w", w), ("roi", np.zeros(0, np.float32)), ("scales", np.asarray([1, 1, 2, 1.5], np.float32))])


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_conv_then_resize_float_and_post_training_int8(mode, tmp_path):
    """Conv -> Resize: float within tolerance of onnxruntime; post-training int8 one qresize_axis
    step per axis, bit-exact with the Relax module; linear keeps its input's quantization, cubic
    calibrates its own (it overshoots); the int8 output close to onnxruntime."""
    path = _conv_resize(tmp_path / f"conv_{mode}.onnx", mode)
    m = adaptc.compile(path, target="cortex-m4")
    _float_check(m, path, (1, 2, 5, 6))
    rng = np.random.default_rng(4)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((16, 1, 2, 5, 6)).astype(np.float32))
    steps = [s for s in q.program.steps if s.op == "adaptc.qresize_axis"]
    assert [s.kernel for s in q.scheduled.steps if s.op == "adaptc.qresize_axis"] == ["resize_axis_s8"] * 2
    assert len(steps) == 2
    conv = next(s for s in q.program.steps if s.op == "adaptc.qconv2d")
    same = [(s.attrs["input_zp"], s.attrs["output_zp"]) == (conv.attrs["output_zp"],) * 2 for s in steps]
    assert all(same) if mode == "linear" else not all(same)
    sess = ort.InferenceSession(str(path))
    s_out, zp = q.output_quantization
    got, want = [], []
    for _ in range(4):
        x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
        xq = q.quantize_input(x)
        y = q.run(xq)
        np.testing.assert_array_equal(y, q.reference(xq))
        got.append((y.astype(np.float64) - zp) * s_out)
        want.append(sess.run(None, {"x": x})[0])
    got, want = np.stack(got), np.stack(want)
    snr = 10 * np.log10(np.sum(want ** 2) / np.sum((got - want) ** 2))
    assert snr >= 20.0, snr


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_resize_cubic_on_emulated_m4(tmp_path):
    """A cubic resize on an emulated Cortex-M4: the output equals the host build's within float
    rounding, and onnxruntime's within tolerance."""
    cid, xs, ys, scales, sizes, roi, attrs, _ = RESIZES[1]
    path = _resize(tmp_path / "emu.onnx", xs, ys, scales, sizes, roi, **attrs)
    m = adaptc.compile(path, target="cortex-m4")
    x = np.random.default_rng(9).standard_normal(xs).astype(np.float32)
    r = m.run_on_target(x)
    got = np.asarray(r.outputs, np.float32).reshape(ys)
    np.testing.assert_allclose(got, m.run(x), rtol=1e-6, atol=1e-6)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# (id, x shape, y shape, pads, axes, mode, value)
PADS = [
    ("constant_axes", (1, 2, 4, 5), (1, 2, 5, 8), [1, 2, 0, 1], [2, -1], "constant", 1.5),
    ("reflect", (1, 2, 4, 5), (1, 2, 7, 7), [0, 0, 2, 1, 0, 0, 1, 1], None, "reflect", 0.0),
    ("edge", (1, 3, 4, 4), (1, 3, 6, 9), [0, 0, 1, 3, 0, 0, 1, 2], None, "edge", 0.0),
    ("wrap", (1, 2, 3, 4), (1, 2, 8, 5), [0, 0, 2, 1, 0, 0, 3, 0], None, "wrap", 0.0),
]


@pytest.mark.parametrize("case", PADS, ids=lambda c: c[0])
def test_pad_modes_within_1e5_of_onnxruntime(case, tmp_path):
    """Pad with constant pads: mode constant (with axes) one pad step, reflect / edge / wrap
    gathers; within 1e-5 of onnxruntime."""
    cid, xs, ys, pads, axes, mode, value = case
    inits = [("pads", np.asarray(pads, np.int64)), ("value", np.asarray(value, np.float32))]
    names = ["x", "pads", "value"]
    if axes is not None:
        inits.append(("axes", np.asarray(axes, np.int64)))
        names.append("axes")
    path = _model(tmp_path / f"{cid}.onnx", [helper.make_node("Pad", names, ["y"], mode=mode)], xs, ys, inits)
    m = adaptc.compile(path, target="cortex-m4")
    kernels = {s.kernel for s in m.scheduled.steps}
    assert kernels == ({"pad_f32"} if mode == "constant" else {"gather"}), kernels
    _float_check(m, path, xs)


# (id, op, x shape, y shape, attributes)
POOLS = [
    ("avg_1d", "AveragePool", (1, 3, 10), (1, 3, 5), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    ("max_1d", "MaxPool", (2, 4, 9), (2, 4, 4), {"kernel_shape": [3], "strides": [2]}),
    ("max_dilated", "MaxPool", (1, 2, 7, 8), (1, 2, 5, 3), {"kernel_shape": [2, 3], "strides": [1, 2],
                                                           "dilations": [2, 1]}),
    ("avg_dilated", "AveragePool", (1, 2, 6, 6), (1, 2, 2, 4), {"kernel_shape": [3, 2], "strides": [2, 1],
                                                               "dilations": [2, 2]}),
]


@pytest.mark.parametrize("case", POOLS, ids=lambda c: c[0])
def test_1d_and_dilated_pooling_within_1e5_of_onnxruntime(case, tmp_path):
    """1-D pooling as 2-D of height 1; a dilated pooling as gathers of its windows and a pooling
    of stride = kernel; within 1e-5 of onnxruntime."""
    cid, op, xs, ys, attrs = case
    path = _model(tmp_path / f"{cid}.onnx", [helper.make_node(op, ["x"], ["y"], **attrs)], xs, ys)
    m = adaptc.compile(path, target="cortex-m4")
    kernels = [s.kernel for s in m.scheduled.steps]
    assert ("gather" in kernels) == ("dilations" in attrs), kernels
    _float_check(m, path, xs)


def test_dilated_pooling_with_padding_is_refused(tmp_path):
    path = _model(tmp_path / "dp.onnx", [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2],
                                                          dilations=[2, 2], pads=[1, 1, 1, 1])],
                  (1, 2, 6, 6), (1, 2, 6, 6))
    with pytest.raises(adaptc.errors.UnsupportedOperatorError, match=r"max_pool2d.*dilation \[2, 2\] and padding"):
        adaptc.compile(path, target="cortex-m4")
