"""Transposed convolutions end to end: TFLite TRANSPOSE_CONV and ONNX ConvTranspose.

int8 TFLite: the generated C bit-exact with TFLite Micro (host; one model on the emulated
Cortex-M4), SAME / VALID, strides, an output larger than the scatter (output padding), no bias.
float TFLite within 1e-5 of TFLite Micro. float ONNX within 1e-5 of onnxruntime (strides, pads,
output_padding, dilations, auto_pad, output_shape, depthwise); its post-training int8 build equal
to the Relax module. What is refused is named.
"""
from __future__ import annotations

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
from adaptc import formats
from adaptc.errors import UnsupportedOperatorError

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _int8(rng, shape, n=3) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


def _tconv(rng, shape, o, k, bias=True, **kw) -> bytes:
    ws = rng.uniform(0.004, 0.03, size=o).astype(np.float32)
    out_s = float(0.05 * ws.mean() * np.sqrt(k[0] * k[1] * shape[3]) * 60.0)
    w = rng.integers(-127, 128, size=(o, *k, shape[3]), dtype=np.int8)
    b = rng.integers(-2000, 2001, size=o).astype(np.int32) if bias else None
    return T.transpose_conv_model(shape, w, b, (0.05, -3), T.QParams(ws, 0), (out_s, 2), **kw)


# (id, input shape, output channels, kernel, options)
TFLITE_INT8 = [
    ("same_s2_3x3", (1, 4, 5, 3), 4, (3, 3), dict(stride=2, padding="SAME")),
    ("valid_s2_3x3", (1, 4, 5, 3), 4, (3, 3), dict(stride=2, padding="VALID")),
    ("same_s1_2x2_no_bias", (1, 3, 3, 2), 5, (2, 2), dict(padding="SAME", bias=False)),
    ("same_s2x1_4x3", (1, 3, 4, 6), 3, (4, 3), dict(stride=(2, 1), padding="SAME")),
    ("valid_s2_output_padding", (1, 4, 4, 3), 4, (3, 3), dict(stride=2, padding="VALID", output_hw=(10, 10))),
    ("valid_s3_2x2_batch2", (2, 3, 3, 4), 2, (2, 2), dict(stride=3, padding="VALID")),
]


@pytest.mark.parametrize("case", TFLITE_INT8, ids=lambda c: c[0])
def test_tflite_int8_c_bit_exact_with_tflm(case, tmp_path):
    cid, shape, o, k, kw = case
    rng = _rng(cid)
    buf = _tconv(rng, shape, o, k, **kw)
    path = _save(tmp_path, f"{cid}.tflite", buf)
    m = adaptc.compile(path, target="cortex-m4")                    # the DSP drop-in
    r = adaptc.compile(path, target="cortex-m4", kernels="ref")     # the reference kernel
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_conv_s8_dsp"]
    assert [s.kernel for s in r.scheduled.steps] == ["transpose_conv_s8"]
    outs = []
    for x in _int8(rng, shape):
        want = T.run_tflm(buf, x)
        got = m.run(x)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(r.run(x), want)
        np.testing.assert_array_equal(m.reference(x), want)
        outs.append(got)
    assert len(np.unique(outs)) >= 20


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_tflite_int8_on_emulated_m4_equals_host_and_tflm(tmp_path):
    cid, shape, o, k, kw = TFLITE_INT8[0]
    rng = _rng(cid)
    buf = _tconv(rng, shape, o, k, **kw)
    m = adaptc.compile(_save(tmp_path, f"{cid}.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_conv_s8_dsp"]
    xs = np.stack(_int8(rng, shape, n=2))
    r = m.run_batch_on_target(xs)
    for j, x in enumerate(xs):
        host = m.run(x)
        np.testing.assert_array_equal(r.outputs[0, j].reshape(host.shape), host)
        np.testing.assert_array_equal(host, T.run_tflm(buf, x))


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_tflite_float_within_1e5_of_tflm(padding, tmp_path):
    rng = _rng(f"float{padding}")
    shape = (1, 4, 5, 3)
    buf = T.transpose_conv_model(shape, rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4), stride=2,
                                 padding=padding)
    m = adaptc.compile(_save(tmp_path, "f.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_conv_f32"]
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


def test_tflite_fused_activation_refused(tmp_path):
    rng = _rng("act")
    buf = _tconv(rng, (1, 3, 3, 2), 2, (3, 3), stride=2, activation="RELU")
    with pytest.raises(UnsupportedOperatorError, match="TRANSPOSE_CONV.*fused_activation_function"):
        adaptc.compile(_save(tmp_path, "act.tflite", buf), target="cortex-m4")


# ------------------------------------------------------------------------------- ONNX


def _onnx_tconv(path: Path, in_shape, w_shape, **attrs) -> Path:
    rng = _rng(path.stem)
    out_c = w_shape[1] * attrs.get("group", 1)
    inits = [numpy_helper.from_array((rng.standard_normal(w_shape) * 0.5).astype(np.float32), "W"),
             numpy_helper.from_array((rng.standard_normal(out_c) * 0.3).astype(np.float32), "B")]
    nodes = [helper.make_node("ConvTranspose", ["x", "W", "B"], ["c"], **attrs), helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), path)
    return path


# (id, input shape, weight shape (C_in, C_out / group, kH, kW), ConvTranspose attributes)
ONNX_CASES = [
    ("stride2_pads_output_padding", (1, 3, 5, 5), (3, 4, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1],
                                                                      output_padding=[1, 1])),
    ("dilation2", (1, 3, 5, 5), (3, 4, 3, 3), dict(dilations=[2, 2])),
    ("same_upper_4x4", (1, 3, 5, 5), (3, 4, 4, 4), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ("same_upper_odd", (1, 3, 5, 5), (3, 4, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ("same_lower", (1, 3, 5, 5), (3, 4, 3, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ("output_shape", (1, 3, 5, 5), (3, 4, 3, 3), dict(strides=[2, 2], output_shape=[10, 10])),
    ("valid_2x2", (1, 3, 4, 4), (3, 2, 2, 2), dict(strides=[2, 2], auto_pad="VALID")),
    ("asymmetric_pads", (1, 2, 4, 6), (2, 3, 3, 2), dict(strides=[1, 2], pads=[0, 1, 2, 0])),
    ("depthwise", (1, 4, 5, 5), (4, 1, 3, 3), dict(strides=[2, 2], group=4, pads=[1, 1, 1, 1])),
]


@pytest.mark.parametrize("case", ONNX_CASES, ids=lambda c: c[0])
def test_onnx_float_within_1e5_of_onnxruntime_and_int8(case, tmp_path):
    cid, shape, w_shape, attrs = case
    path = _onnx_tconv(tmp_path / f"{cid}.onnx", shape, w_shape, **attrs)
    m = adaptc.compile(path, target="cortex-m4")
    assert [s.op for s in m.program.steps].count("adaptc.transpose_conv2d_f32") == 1
    sess = ort.InferenceSession(str(path))
    rng = _rng(cid)
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        got = m.run(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((16, *shape)).astype(np.float32))
    assert [s.kernel for s in q.scheduled.steps].count("transpose_conv_s8_dsp") == 1
    for _ in range(3):
        xq = q.quantize_input(rng.standard_normal(shape).astype(np.float32))
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))


@pytest.mark.parametrize("quantize", ["int4", "pot4", "pot2", "pot5"])
@pytest.mark.parametrize("case", [ONNX_CASES[0], ONNX_CASES[1], ONNX_CASES[7], ONNX_CASES[8]], ids=lambda c: c[0])
def test_onnx_low_bit_builds_pack_transposed_weights(quantize, case, tmp_path):
    """A low-bit build quantizes a transposed convolution (strided, dilated, asymmetric pads,
    depthwise) to the format like any weighted layer: transpose_conv_s8_packed on its bitstream,
    the C equal to the Relax module."""
    cid, shape, w_shape, attrs = case
    path = _onnx_tconv(tmp_path / f"{cid}.onnx", shape, w_shape, **attrs)
    rng = _rng(cid + quantize)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((16, *shape)).astype(np.float32),
                       quantize=quantize)
    assert [r["format"] for r in q.quantization["layers"]] == [quantize]
    step = next(s for s in q.scheduled.steps if s.op == "adaptc.qtranspose_conv2d")
    assert step.kernel == "transpose_conv_s8_packed"
    assert formats.fits(step.step.consts["weights"], formats.get(quantize))
    for _ in range(2):
        xq = q.quantize_input(rng.standard_normal(shape).astype(np.float32))
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))


@pytest.mark.parametrize("w_shape,attrs,match", [
    ((4, 2, 3, 3), dict(group=2), "group=2 with 2 output channel"),
    ((3, 4, 3), dict(), "1-D transposed convolution"),
    ((3, 4, 3, 3), dict(strides=[2, 2], output_shape=[14, 14]), "output_padding / output_shape / pads"),
], ids=["grouped", "conv1d", "output_shape_too_large"])
def test_onnx_refused(w_shape, attrs, match, tmp_path):
    shape = (1, w_shape[0], 5) if len(w_shape) == 3 else (1, w_shape[0], 5, 5)
    path = tmp_path / "refused.onnx"
    try:
        _onnx_tconv(path, shape, w_shape, **attrs)
    except onnx.shape_inference.InferenceError:
        pytest.skip("onnx refuses the model itself")
    with pytest.raises(UnsupportedOperatorError, match=match):
        adaptc.compile(path, target="cortex-m4")
