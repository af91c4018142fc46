"""The convolution family end to end: dilation, depth multipliers, grouped convolutions,
``auto_pad``, asymmetric pads, 1-D convolutions and FULLY_CONNECTED on N-d inputs.

int8 TFLite: the generated C bit-exact with TFLite Micro (host, and one model on the emulated
Cortex-M4). float TFLite within 1e-5 of TFLite Micro. float ONNX within 1e-5 of onnxruntime;
their post-training int8, int4, pot4 and mixed-precision builds bit-exact with the Relax module.
A grouped convolution (1 < groups < channels) compiles as one convolution per group (FuseFloatOps):
channel slices of the input, a convolution each, a concat.
"""
from __future__ import annotations

import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
import tflite_ops as T
from adaptc.errors import InputError

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _int8(rng, shape, n=3) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


# ------------------------------------------------------------------------------- TFLite int8


def _conv(rng, shape, o, k, **kw):
    ws = rng.uniform(0.004, 0.03, size=o).astype(np.float32)
    out_s = float(0.05 * ws.mean() * np.sqrt(k[0] * k[1] * shape[3]) * 126.0)
    w = rng.integers(-127, 128, size=(o, *k, shape[3]), dtype=np.int8)
    b = rng.integers(-2000, 2001, size=o).astype(np.int32)
    return T.conv2d_model(shape, w, b, (0.05, -3), T.QParams(ws, 0), (out_s, 2), **kw)


def _dwconv(rng, shape, mult, k, **kw):
    oc = shape[3] * mult
    ws = rng.uniform(0.004, 0.03, size=oc).astype(np.float32)
    out_s = float(0.05 * ws.mean() * np.sqrt(k[0] * k[1]) * 126.0)
    w = rng.integers(-127, 128, size=(1, *k, oc), dtype=np.int8)
    b = rng.integers(-2000, 2001, size=oc).astype(np.int32)
    return T.depthwise_conv2d_model(shape, w, b, (0.05, 4), T.QParams(ws, 0), (out_s, -7), depth_multiplier=mult, **kw)


# (id, builder(rng) -> model, input shape, kernel)
TFLITE_INT8 = [
    ("conv_dilation_2x3_same", lambda r: _conv(r, (1, 9, 11, 3), 4, (3, 3), dilation=(2, 3)), (1, 9, 11, 3),
     "conv2d_s8_dsp"),
    ("conv_dilation2_valid_relu", lambda r: _conv(r, (1, 10, 10, 2), 5, (3, 2), dilation=2, padding="VALID",
                                                  activation="RELU"), (1, 10, 10, 2), "conv2d_s8_dsp"),
    ("dw_mult2_dilation2_same", lambda r: _dwconv(r, (1, 9, 9, 3), 2, (3, 3), dilation=2), (1, 9, 9, 3),
     "depthwise_conv2d_s8"),
    ("dw_mult4_stride2", lambda r: _dwconv(r, (1, 8, 8, 2), 4, (3, 3), stride=2), (1, 8, 8, 2),
     "depthwise_conv2d_s8"),
    ("dw_mult1_dilation3_relu6", lambda r: _dwconv(r, (1, 10, 10, 8), 1, (3, 3), dilation=3, activation="RELU6"),
     (1, 10, 10, 8), "depthwise_conv2d_s8_dsp"),
]


@pytest.mark.parametrize("case", TFLITE_INT8, ids=lambda c: c[0])
def test_tflite_int8_c_bit_exact_with_tflm(case, tmp_path):
    cid, build, shape, kernel = case
    rng = _rng(cid)
    buf = build(rng)
    m = adaptc.compile(_save(tmp_path, f"{cid}.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == [kernel]
    outs = []
    for x in _int8(rng, shape):
        got = m.run(x)
        np.testing.assert_array_equal(got, T.run_tflm(buf, x))
        outs.append(got)
    assert len(np.unique(outs)) >= 20


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("case", [TFLITE_INT8[0], TFLITE_INT8[2]], ids=lambda c: c[0])
def test_tflite_int8_on_emulated_m4_equals_host_and_tflm(case, tmp_path):
    cid, build, shape, _ = case
    rng = _rng(cid)
    buf = build(rng)
    m = adaptc.compile(_save(tmp_path, f"{cid}.tflite", buf), target="cortex-m4")
    xs = np.stack(_int8(rng, shape, n=2))
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        host = m.run(x)
        np.testing.assert_array_equal(r.outputs[0, k].reshape(host.shape), host)
        np.testing.assert_array_equal(host, T.run_tflm(buf, x))


@pytest.mark.parametrize("dw", [False, True], ids=["conv", "depthwise_mult2"])
def test_tflite_float_dilated_within_1e5_of_tflm(dw, tmp_path):
    rng = _rng(f"float{dw}")
    shape = (1, 9, 9, 3)
    if dw:
        buf = T.depthwise_conv2d_model_f32(shape, rng.standard_normal((1, 3, 3, 6)), rng.standard_normal(6),
                                           depth_multiplier=2, dilation=(2, 3))
    else:
        buf = T.conv2d_model_f32(shape, rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4), dilation=(3, 2))
    m = adaptc.compile(_save(tmp_path, "f.tflite", buf), target="cortex-m4")
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- FULLY_CONNECTED, N-d input


def _fc_nd_model(rng, in_shape, units, keep_num_dims, dtype=np.int8) -> bytes:
    """FULLY_CONNECTED on an N-d input; its rows are the last axis (TFLM: input size / depth)."""
    depth = in_shape[-1]
    out_shape = (*in_shape[:-1], units) if keep_num_dims else (int(np.prod(in_shape[:-1])), units)

    def opts(b):
        T.tflite.FullyConnectedOptionsStart(b)
        T.tflite.FullyConnectedOptionsAddFusedActivationFunction(b, T._act("NONE"))
        T.tflite.FullyConnectedOptionsAddKeepNumDims(b, keep_num_dims)
        return T.tflite.FullyConnectedOptionsEnd(b)

    mb = T._ModelBuilder("adaptc test: FULLY_CONNECTED on an N-d input")
    if dtype == np.int8:
        in_q, w_q = T.QParams(0.04, 1), T.QParams(0.01, 0)
        x = mb.input(in_shape, np.int8, "input", in_q)
        wt = mb.const(rng.integers(-127, 128, size=(units, depth), dtype=np.int8), "weights", w_q)
        bt = mb.const(rng.integers(-2000, 2001, size=units).astype(np.int32), "bias", T._bias_q(in_q, w_q))
        y = mb.output(out_shape, np.int8, "output", T.QParams(float(0.04 * 0.01 * np.sqrt(depth) * 126), -3))
        version = 4
    else:
        x = mb.input(in_shape, np.float32, "input")
        wt = mb.const(rng.standard_normal((units, depth)).astype(np.float32), "weights")
        bt = mb.const(rng.standard_normal(units).astype(np.float32), "bias")
        y = mb.output(out_shape, np.float32, "output")
        version = 1
    mb.op(T._OP.FULLY_CONNECTED, version, [x, wt, bt], [y], T._OPT.FullyConnectedOptions, opts)
    return mb.finish()


@pytest.mark.parametrize("in_shape,keep", [((1, 3, 8), False), ((1, 3, 8), True), ((2, 2, 3, 5), False),
                                           ((1, 2, 2, 6), True)], ids=["3d", "3d_keep", "4d", "4d_keep"])
def test_tflite_fully_connected_nd_input(in_shape, keep, tmp_path):
    """int8 bit-exact with TFLM, float within 1e-5: rows of the last axis, output as declared."""
    rng = _rng(f"fc{in_shape}{keep}")
    buf = _fc_nd_model(rng, in_shape, 7, keep)
    m = adaptc.compile(_save(tmp_path, "fc.tflite", buf), target="cortex-m4")
    assert "fully_connected_s8" in [s.kernel for s in m.scheduled.steps][-1] or any(
        "fully_connected" in s.kernel for s in m.scheduled.steps)
    for x in _int8(rng, in_shape):
        want = T.run_tflm(buf, x)
        got = m.run(x)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    buf = _fc_nd_model(rng, in_shape, 7, keep, np.float32)
    m = adaptc.compile(_save(tmp_path, "fcf.tflite", buf), target="cortex-m4")
    x = rng.standard_normal(in_shape).astype(np.float32)
    np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- ONNX


def _onnx_conv(path: Path, in_shape, w_shape, **attrs) -> Path:
    rng = np.random.default_rng(zlib.crc32(path.stem.encode()))
    inits = [numpy_helper.from_array((rng.standard_normal(w_shape) * 0.5).astype(np.float32), "W"),
             numpy_helper.from_array((rng.standard_normal(w_shape[0]) * 0.3).astype(np.float32), "B")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], **attrs), helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), path)
    return path


# (id, input shape, weight shape, Conv attributes, convolutions compiled)
ONNX_CASES = [
    ("dilation_2x3", (1, 3, 11, 11), (4, 3, 3, 3), dict(dilations=[2, 3], pads=[2, 3, 2, 3]), 1),
    ("groups2", (1, 4, 6, 6), (6, 2, 3, 3), dict(group=2, pads=[1, 1, 1, 1]), 2),
    ("groups4_shufflenet_1x1", (1, 8, 5, 5), (8, 2, 1, 1), dict(group=4), 4),
    ("groups3_dilated_stride2", (1, 6, 9, 9), (9, 2, 3, 3), dict(group=3, dilations=[2, 2], strides=[2, 2],
                                                                  pads=[2, 2, 2, 2]), 3),
    ("depthwise_mult2_dilated", (1, 4, 9, 9), (8, 1, 3, 3), dict(group=4, dilations=[2, 2], pads=[2, 2, 2, 2]), 1),
    ("same_upper_stride2", (1, 3, 8, 7), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2]), 1),
    ("same_lower_4x4_stride2", (1, 3, 8, 8), (4, 3, 4, 4), dict(auto_pad="SAME_LOWER", strides=[2, 2]), 1),
    ("valid", (1, 3, 8, 8), (4, 3, 3, 3), dict(auto_pad="VALID"), 1),
    ("asymmetric_pads", (1, 3, 8, 8), (4, 3, 3, 3), dict(pads=[0, 1, 2, 1]), 1),
    ("conv1d", (1, 3, 16), (4, 3, 3), dict(pads=[1, 1]), 1),
    ("conv1d_same_upper_stride2", (1, 3, 15), (4, 3, 4), dict(auto_pad="SAME_UPPER", strides=[2]), 1),
    ("conv1d_dilated_groups2", (1, 4, 16), (4, 2, 3), dict(pads=[2, 1], dilations=[2], group=2), 2),
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("conv_family")


def _onnx_path(onnx_dir, case) -> Path:
    cid, shape, w_shape, attrs, _ = case
    path = onnx_dir / f"{cid}.onnx"
    return path if path.exists() else _onnx_conv(path, shape, w_shape, **attrs)


@pytest.mark.parametrize("case", ONNX_CASES, ids=lambda c: c[0])
def test_onnx_float_within_1e5_of_onnxruntime_and_int8(case, onnx_dir):
    cid, shape, _, _, n_convs = case
    path = _onnx_path(onnx_dir, case)
    m = adaptc.compile(path, target="cortex-m4")
    ops = [s.op for s in m.program.steps]
    assert ops.count("adaptc.conv2d_f32") == n_convs
    assert ops.count("adaptc.concat") == (n_convs > 1)
    sess = ort.InferenceSession(str(path))
    rng = _rng(cid)
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        got = m.run(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((16, *shape)).astype(np.float32))
    assert [s.op for s in q.program.steps].count("adaptc.qconv2d") == n_convs
    for _ in range(3):
        xq = q.quantize_input(rng.standard_normal(shape).astype(np.float32))
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))


WEIGHT_CASES = [c for c in ONNX_CASES if c[0] in ("dilation_2x3", "groups2", "groups3_dilated_stride2",
                                                   "conv1d_dilated_groups2")]


@pytest.mark.parametrize("options", [dict(quantize="int4"), dict(quantize="pot4"), dict(weight_budget=None)],
                         ids=["int4", "pot4", "mixed"])
@pytest.mark.parametrize("case", WEIGHT_CASES, ids=lambda c: c[0])
def test_onnx_low_bit_weights_c_equals_relax(case, options, onnx_dir):
    """int4 / pot4 / mixed precision (a budget between ternary and int8 everywhere): packed kernels on
    every convolution of a dilated or grouped layer, the C equal to the Relax module."""
    cid, shape, w_shape, _, n_convs = case
    path = _onnx_path(onnx_dir, case)
    rng = _rng(cid + "lowbit")
    cal = rng.standard_normal((16, *shape)).astype(np.float32)
    if "weight_budget" in options:   # the smallest build (ternary everywhere) plus half a byte a weight
        with pytest.raises(InputError, match=r"cannot be met: .* about ([\d,]+) bytes") as refused:
            adaptc.compile(path, target="cortex-m4", calibration=cal, weight_budget=1)
        smallest = int(re.search(r"about ([\d,]+) bytes", str(refused.value)).group(1).replace(",", ""))
        options = dict(weight_budget=smallest + int(np.prod(w_shape)) // 2)
    q = adaptc.compile(path, target="cortex-m4", calibration=cal, **options)
    kernels = [s.kernel for s in q.scheduled.steps if s.kernel.startswith("conv2d")]
    assert len(kernels) == n_convs
    if "quantize" in options:
        assert all("packed" in k for k in kernels)
    for _ in range(3):
        xq = q.quantize_input(rng.standard_normal(shape).astype(np.float32))
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))
