"""PRELU, RSQRT, L2_NORMALIZATION (and ONNX PRelu, Sqrt, Reciprocal) end to end.

int8 TFLite PRELU: one ``adaptc.qprelu`` step (prelu_s8) equal to TFLite Micro bit for bit, alpha
per channel, per element or one value; int8 RSQRT: one table step (``adaptc.qlut``) equal to
TFLM on every input it accepts (q >= zero point). float32 TFLite: within 1e-5 of TFLM. ONNX
PRelu (constant slope), Sqrt, Reciprocal: float within 1e-5 of onnxruntime, post-training int8
C == the Relax module. And int8 PRELU on the emulated Cortex-M4, as on the host. int8
L2_NORMALIZATION: one ``adaptc.ql2norm`` step (l2norm_s8, TFLite's integer inverse square root)
equal to TFLM bit for bit on the host and the emulated Cortex-M4; float within 1e-5 of TFLM
(TFLM's epsilon: an all-zero row gives zeros); the forms TFLM rejects refused by name.
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
from adaptc import luts
from adaptc.errors import UnsupportedOperatorError

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
SHAPE = (1, 6, 6, 4)


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _int8(seed, low=-128, shape=SHAPE) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(low, 128, size=shape).astype(np.int8) for _ in range(3)] + \
        [np.full(shape, low, np.int8), np.full(shape, 127, np.int8)]


# ------------------------------------------------------------------------------- PRELU

_rng = np.random.default_rng(5)
PRELU_INT8 = [   # (id, alpha int8, alpha shape as stored, (in, alpha, out) quantization)
    ("per_channel", _rng.integers(-128, 128, (1, 1, 4)).astype(np.int8), ((0.05, -3), (0.01, 3), (0.04, 10))),
    ("per_element", _rng.integers(-128, 128, (6, 6, 4)).astype(np.int8), ((0.02, 20), (0.004, -7), (0.03, -5))),
    ("one_value", np.array([77], np.int8), ((0.01, 100), (0.02, 0), (0.03, 60))),
    ("negative_alpha", np.array([-90, 40, -128, 127], np.int8), ((0.03, -128), (0.05, 10), (0.2, 0))),
]


@pytest.mark.parametrize("case", PRELU_INT8, ids=lambda c: c[0])
def test_prelu_int8_bit_exact_with_tflm(case, tmp_path):
    cid, alpha, (qi, qa, qo) = case
    buf = T.prelu_model(SHAPE, alpha, qi, qa, qo)
    m = adaptc.compile(_save(tmp_path, "p.tflite", buf), target="cortex-m4")
    assert [(s.op, s.kernel) for s in m.scheduled.steps] == [("adaptc.qprelu", "prelu_s8")]
    outs = []
    for x in _int8(zlib.crc32(cid.encode())):
        want = T.run_tflm(buf, x)
        np.testing.assert_array_equal(m.run(x), want)
        np.testing.assert_array_equal(m.reference(x), want)
        outs.append(want)
    assert len(np.unique(np.concatenate(outs))) >= 20


@pytest.mark.parametrize("shape", [(1, 1, 4), (6, 6, 4), (1,)], ids=["per_channel", "per_element", "one_value"])
def test_prelu_float_within_1e5_of_tflm(shape, tmp_path):
    rng = np.random.default_rng(len(shape))
    buf = T.prelu_model(SHAPE, rng.normal(0, 0.5, shape).astype(np.float32))
    m = adaptc.compile(_save(tmp_path, "pf.tflite", buf), target="cortex-m4")
    # one value: the same float function as LEAKY_RELU (unary_f32); else prelu_f32
    assert m.scheduled.steps[0].kernel == ("unary_f32" if shape == (1,) else "prelu_f32")
    for _ in range(3):
        x = rng.normal(0, 3, SHAPE).astype(np.float32)
        np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- RSQRT

RSQRT_INT8 = [((0.05, -128), (0.02, -128)), ((0.01, 0), (0.1, -100)), ((0.5, -20), (0.01, 0)),
              ((1.0, -128), (1 / 128, -128)), ((0.3, 10), (0.05, 5))]


@pytest.mark.parametrize("q", RSQRT_INT8, ids=lambda q: f"{q[0][0]}_{q[0][1]}")
def test_rsqrt_int8_bit_exact_with_tflm(q, tmp_path):
    (s_in, zp_in), qo = q
    buf = T.rsqrt_model(SHAPE, (s_in, zp_in), qo)
    m = adaptc.compile(_save(tmp_path, "r.tflite", buf), target="cortex-m4")
    assert [(s.op, s.kernel) for s in m.scheduled.steps] == [("adaptc.qlut", "lut_s8_dsp")]   # (M4: DSP)
    valid = np.arange(zp_in, 128, dtype=np.int8)     # TFLM fails the inference below the zero point
    table = m.program.steps[0].consts["table"]
    for x in (np.resize(valid, SHAPE), np.resize(valid[::-1], SHAPE)):      # every valid input
        np.testing.assert_array_equal(table[x.reshape(-1).astype(int) + 128], T.run_tflm(buf, x).reshape(-1))
    for x in _int8(zlib.crc32(str(q).encode()), low=zp_in):
        np.testing.assert_array_equal(m.run(x), T.run_tflm(buf, x))


def test_rsqrt_float_within_1e5_of_tflm(tmp_path):
    buf = T.rsqrt_model(SHAPE)
    m = adaptc.compile(_save(tmp_path, "rf.tflite", buf), target="cortex-m4")
    assert [(s.op, s.kernel) for s in m.scheduled.steps] == [("adaptc.unary_f32", "unary_f32")]
    rng = np.random.default_rng(3)
    x = np.abs(rng.normal(0, 4, SHAPE)).astype(np.float32) + np.float32(1e-3)
    np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


L2_CASES = [   # (id, shape, input scale, input zero point)
    ("embedding", (1, 128), 0.05, 3), ("rows_nhwc", (1, 5, 5, 16), 0.02, -128), ("depth1", (2, 1), 0.1, 0),
    ("zero_point_127", (3, 40), 0.01, 127), ("wide_4096", (1, 4096), 0.2, -7)]


def _l2_inputs(cid, shape, zp):
    xs = _int8(zlib.crc32(cid.encode()), shape=shape)
    return xs + [np.full(shape, zp, np.int8)]         # an all-zero row: inverse square root of 0


@pytest.mark.parametrize("case", L2_CASES, ids=lambda c: c[0])
def test_l2_normalization_int8_bit_exact_with_tflm(case, tmp_path):
    cid, shape, scale, zp = case
    buf = T.l2_normalization_model(shape, (scale, zp))
    m = adaptc.compile(_save(tmp_path, "l2.tflite", buf), target="cortex-m4")
    assert [(s.op, s.kernel) for s in m.scheduled.steps] == [("adaptc.ql2norm", "l2norm_s8")]
    outs = []
    for x in _l2_inputs(cid, shape, zp):
        want = T.run_tflm(buf, x)
        np.testing.assert_array_equal(m.run(x), want)
        np.testing.assert_array_equal(m.reference(x), want)
        outs.append(want)
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= min(8, shape[-1] + 1)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_l2_normalization_int8_emulated(tmp_path):
    cid, shape, scale, zp = L2_CASES[1]
    buf = T.l2_normalization_model(shape, (scale, zp))
    m = adaptc.compile(_save(tmp_path, "l2.tflite", buf), target="cortex-m4")
    xs = np.stack(_l2_inputs(cid, shape, zp))
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(shape), T.run_tflm(buf, x))


def test_l2_normalization_float_within_1e5_of_tflm(tmp_path):
    shape = (1, 5, 5, 16)
    buf = T.l2_normalization_model(shape)
    m = adaptc.compile(_save(tmp_path, "l2f.tflite", buf), target="cortex-m4")
    rng = np.random.default_rng(6)
    x = rng.normal(0, 3, shape).astype(np.float32)
    x[0, 0, 0] = 0.0                                  # a zero row: 0 / max(0, 1e-6) = 0
    x[0, 0, 1] = 1e-8                                 # below TFLM's epsilon: x / 1e-6
    want = T.run_tflm(buf, x)
    np.testing.assert_allclose(m.run(x), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.reference(x), want, rtol=1e-5, atol=1e-6)


def test_l2_normalization_output_parameters_refused(tmp_path):
    """An int8 output other than scale 1/128, zero point 0 (TFLM's Prepare rejects it): refused
    before any work, naming the operator and the values."""
    path = _save(tmp_path, "l2.tflite", T.l2_normalization_model((1, 8), (0.05, 0), (1 / 64, 0)))
    with pytest.raises(UnsupportedOperatorError, match=r"L2_NORMALIZATION .*scale 0.015625, zero point 0"):
        adaptc.load(path)


# ------------------------------------------------------------------------------- ONNX

X_SHAPE = (1, 4, 6, 6)
ONNX_CASES = {   # id -> (op, constant slope or None); Sqrt of a negative value: NaN in both
    "PRelu_channel": ("PRelu", np.array([0.2, -0.5, 1.5, 0.01], np.float32).reshape(4, 1, 1)),
    "PRelu_scalar": ("PRelu", np.array([0.25], np.float32)),
    "Sqrt": ("Sqrt", None),
    "Reciprocal": ("Reciprocal", None),
}


def _onnx(path: Path, cid: str) -> Path:
    """Conv 1x1 (4 -> 4) -> op, NCHW, opset 14."""
    op, slope = ONNX_CASES[cid]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 4, 1, 1)) * 0.5).astype(np.float32), "W")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"])]
    if slope is not None:
        inits.append(numpy_helper.from_array(slope, "slope"))
        nodes.append(helper.make_node(op, ["c", "slope"], ["y"]))
    else:
        nodes.append(helper.make_node(op, ["c"], ["y"]))
    g = helper.make_graph(nodes, cid, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(X_SHAPE))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _inputs(cid: str, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    return [(rng.standard_normal(X_SHAPE) * 2).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("cid", list(ONNX_CASES))
def test_onnx_float_within_1e5_of_onnxruntime(cid, tmp_path):
    path = _onnx(tmp_path / f"{cid}.onnx", cid)
    m = adaptc.compile(path, target="cortex-m4")
    sess = ort.InferenceSession(str(path))
    for x in _inputs(cid, 4):
        got, want = m.run(x), sess.run(None, {"x": x})[0]
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.parametrize("cid", list(ONNX_CASES))
def test_onnx_post_training_int8_c_equals_relax(cid, tmp_path):
    path = _onnx(tmp_path / f"{cid}.onnx", cid)
    q = adaptc.compile(path, target="cortex-m4", calibration=np.stack(_inputs(cid + "cal", 16)))
    kernels = [s.kernel for s in q.scheduled.steps]
    assert ("prelu_s8" in kernels or "lut_s8_dsp" in kernels), kernels
    for x in _inputs(cid, 4):
        xq = q.quantize_input(x)
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))


def test_rsqrt_table_matches_luts():
    """The table of the int8 RSQRT step is luts.rsqrt (TFLM's arithmetic, computed once)."""
    t = luts.rsqrt(0.05, -20, 0.02, -128)
    assert t.dtype == np.int8 and t.shape == (256,) and np.all(t[:108] == 127)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_prelu_int8_on_the_emulated_m4_equals_host_and_tflm(tmp_path):
    cid, alpha, (qi, qa, qo) = PRELU_INT8[0]
    buf = T.prelu_model(SHAPE, alpha, qi, qa, qo)
    m = adaptc.compile(_save(tmp_path, "p.tflite", buf), target="cortex-m4")
    xs = np.stack(_int8(17))
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        host = m.run(x)
        np.testing.assert_array_equal(r.outputs[0, k].reshape(SHAPE), host)
        np.testing.assert_array_equal(host, T.run_tflm(buf, x))
