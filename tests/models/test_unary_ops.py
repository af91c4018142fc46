"""Element-wise unary operators end to end (adaptc.unary: sigmoid, tanh, hard swish, hard sigmoid,
leaky ReLU, ELU).

int8 TFLite (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, ELU): one table step (``adaptc.qlut``,
kernel lut_s8) whose generated C equals TFLite Micro bit for bit on every int8 input, for several
input and output quantizations; the parameters TFLM refuses or silently assumes are refused.
float32 TFLite: ``unary_f32`` within 1e-5 of TFLM. ONNX ``Conv -> <op>``: float within 1e-5 of
onnxruntime; post-training int8 bit-exact with the Relax module and within a bound of onnxruntime
derived below. And a chain of them on the emulated Cortex-M4, as on the host.
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
from adaptc.errors import UnsupportedOperatorError
from adaptc.loader import TFLITE_OPS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
SHAPE = (1, 8, 8, 4)                     # 256 elements: every int8 value once per permutation
ALL_VALUES = np.arange(-128, 128, dtype=np.int8)


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _int8_inputs(seed: int, shape=SHAPE) -> list[np.ndarray]:
    """Two permutations of all 256 int8 values, two uniform random inputs, both extremes."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    xs = [ALL_VALUES[rng.permutation(n) % 256].reshape(shape) for _ in range(2)]
    xs += [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(2)]
    return xs + [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


# ------------------------------------------------------------------------------- int8 TFLite

# (id, model); the quantizations sweep the zero point across the range, fine and coarse input
# scales (coarse: LOGISTIC / TANH saturate inside the input range), alphas of every kind
INT8_CASES = [
    ("logistic_fine", T.logistic_model(SHAPE, (0.02, -128))),
    ("logistic_mid", T.logistic_model(SHAPE, (0.1, 3))),
    ("logistic_coarse", T.logistic_model(SHAPE, (0.5, 100))),
    ("tanh_fine", T.tanh_model(SHAPE, (0.01, 0))),
    ("tanh_mid", T.tanh_model(SHAPE, (0.05, -10))),
    ("tanh_coarse", T.tanh_model(SHAPE, (0.3, 60))),
    ("hard_swish_a", T.hard_swish_model(SHAPE, (0.05, -3), (0.03, -60))),
    ("hard_swish_b", T.hard_swish_model(SHAPE, (0.1, 20), (0.05, -100))),
    ("hard_swish_same_q", T.hard_swish_model(SHAPE, (0.02, 0), (0.02, 0))),
    ("hard_swish_ratio_5", T.hard_swish_model(SHAPE, (0.04, 50), (0.008, -20))),
    ("leaky_relu_0.01", T.leaky_relu_model(SHAPE, (0.05, 2), (0.04, -5), alpha=0.01)),
    ("leaky_relu_0.3", T.leaky_relu_model(SHAPE, (0.05, 2), (0.04, -5), alpha=0.3)),
    ("leaky_relu_1.5", T.leaky_relu_model(SHAPE, (0.02, -30), (0.06, 10), alpha=1.5)),
    ("leaky_relu_-0.3", T.leaky_relu_model(SHAPE, (0.05, 60), (0.03, -1), alpha=-0.3)),
    ("elu_a", T.elu_model(SHAPE, (0.05, 20), (0.03, 40))),
    ("elu_b", T.elu_model(SHAPE, (0.1, -100), (0.02, -128))),
    ("elu_c", T.elu_model(SHAPE, (0.03, 0), (0.01, 127))),
]


@pytest.mark.parametrize("case", INT8_CASES, ids=lambda c: c[0])
def test_int8_tflite_bit_exact_with_tflm(case, tmp_path):
    cid, buf = case
    m = adaptc.compile(_save(tmp_path, f"{cid}.tflite", buf), target="cortex-m4")
    assert [(s.op, s.kernel) for s in m.scheduled.steps] == [("adaptc.qlut", "lut_s8_dsp")]   # (M4: DSP)
    # the step's table is TFLM's output for every input, in input order
    table = m.program.steps[0].consts["table"]
    np.testing.assert_array_equal(table, T.run_tflm(buf, ALL_VALUES.reshape(SHAPE)).reshape(-1))
    assert len(np.unique(table)) >= 20                  # (a coarse LOGISTIC saturates: 24 values)
    for x in _int8_inputs(zlib.crc32(cid.encode())):
        got = m.run(x)
        assert got.shape == SHAPE and got.dtype == np.int8
        np.testing.assert_array_equal(got, T.run_tflm(buf, x))


def test_int8_quantize_requantization(tmp_path):
    """TFLite QUANTIZE int8 -> int8 (a requantization): bit-exact with TFLM where the loader takes
    it, else refused before any work, naming the operator."""
    buf = T.quantize_model(SHAPE, (0.05, 2), (0.03, -1))
    path = _save(tmp_path, "quantize.tflite", buf)
    if "QUANTIZE" not in TFLITE_OPS:
        with pytest.raises(UnsupportedOperatorError, match=r"unsupported operator QUANTIZE ") as e:
            adaptc.load(path)
        assert e.value.op == "QUANTIZE"
        return
    m = adaptc.compile(path, target="cortex-m4")
    for x in _int8_inputs(7):
        np.testing.assert_array_equal(m.run(x), T.run_tflm(buf, x))


@pytest.mark.parametrize("buf,op,why", [
    (T.logistic_model(SHAPE, (0.1, 3), (1 / 128, 0)), "sigmoid", r"LOGISTIC int8: TFLM requires output scale 1/256"),
    (T.logistic_model(SHAPE, (0.1, 3), (1 / 128, -128)), "sigmoid", r"LOGISTIC int8: TFLM requires output scale"),
    (T.tanh_model(SHAPE, (0.1, 3), (1 / 256, -128)), "tanh", r"TANH int8: TFLM assumes output scale 1/128"),
    (T.hard_swish_model(SHAPE, (0.5, 0), (0.0039, 0)), "hard_swish", r"HARD_SWISH int8: TFLM requires in_scale "),
], ids=["logistic_zp", "logistic_scale", "tanh_params", "hard_swish_ratio"])
def test_int8_parameters_tflm_refuses_or_assumes_are_refused(buf, op, why, tmp_path):
    """TFLM refuses these (LOGISTIC's zero point, HARD_SWISH's scale ratio >= 128) or computes as if
    the output parameters were others (LOGISTIC's scale, TANH's): refused, naming op and limit."""
    with pytest.raises(UnsupportedOperatorError, match=rf"unsupported operator {op} at node .*{why}"):
        adaptc.compile(_save(tmp_path, "bad.tflite", buf), target="cortex-m4")


# ------------------------------------------------------------------------------- float TFLite

F32_CASES = [
    ("logistic", T.logistic_model_f32(SHAPE)),
    ("tanh", T.tanh_model_f32(SHAPE)),
    ("hard_swish", T.hard_swish_model_f32(SHAPE)),
    ("leaky_relu_0.2", T.leaky_relu_model_f32(SHAPE, 0.2)),
    ("leaky_relu_-0.5", T.leaky_relu_model_f32(SHAPE, -0.5)),
    ("leaky_relu_1.5", T.leaky_relu_model_f32(SHAPE, 1.5)),
    ("elu", T.elu_model_f32(SHAPE)),
]


@pytest.mark.parametrize("case", F32_CASES, ids=lambda c: c[0])
def test_float_tflite_within_1e5_of_tflm(case, tmp_path):
    cid, buf = case
    m = adaptc.compile(_save(tmp_path, "f.tflite", buf), target="cortex-m4")
    assert [(s.op, s.kernel) for s in m.scheduled.steps] == [("adaptc.unary_f32", "unary_f32")]
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    for _ in range(3):
        x = rng.normal(0.0, 4.0, size=SHAPE).astype(np.float32)
        x.flat[:8] = [0.0, -3.0, 3.0, -40.0, 40.0, -1e-7, 1e-7, -0.5]      # the functions' corners
        np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- ONNX Conv -> op

# op -> (attributes, adaptc.unary function, its attributes as float32, Lipschitz constant L of
# the function over the reals: |f(a) - f(b)| <= L |a - b|)
ONNX_OPS = {
    "Sigmoid": ({}, "sigmoid", {}, 0.25),
    "Tanh": ({}, "tanh", {}, 1.0),
    "HardSwish": ({}, "hard_swish", {}, 1.5),                    # d/dx x(x+3)/6 = (2x+3)/6 <= 1.5 on [-3, 3]
    "HardSigmoid": ({"alpha": 0.25, "beta": 0.4}, "hard_sigmoid", {"alpha": 0.25, "beta": 0.4}, 0.25),
    "LeakyRelu": ({"alpha": 0.15}, "leaky_relu", {"alpha": 0.15}, 1.0),
    "Elu": ({"alpha": 0.6}, "elu", {"alpha": 0.6}, 1.0),
}
X_SHAPE = (1, 3, 6, 6)


def _onnx_model(path: Path, op: str | None) -> Path:
    """Conv 3x3 (3 -> 4 channels, pad 1) [-> op], NCHW, opset 14; op None: the conv alone."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.5).astype(np.float32), "W"),
             numpy_helper.from_array((rng.standard_normal(4) * 0.3).astype(np.float32), "B")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1])]
    if op is not None:
        nodes.append(helper.make_node(op, ["c"], ["y"], **ONNX_OPS[op][0]))
    g = helper.make_graph(nodes, "unary", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE))],
                          [helper.make_tensor_value_info("y" if op else "c", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _onnx_op_alone(path: Path, op: str) -> Path:
    g = helper.make_graph([helper.make_node(op, ["c"], ["y"], **ONNX_OPS[op][0])], "op",
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("unary_onnx")
    _onnx_model(d / "conv.onnx", None)
    for op in ONNX_OPS:
        _onnx_model(d / f"{op}.onnx", op)
        _onnx_op_alone(d / f"{op}_alone.onnx", op)
    return d


def _inputs_f32(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(X_SHAPE) * 2).astype(np.float32) for _ in range(n)]


CALIBRATION = np.stack(_inputs_f32(2, 32))                 # [N, 1, 3, 6, 6]


@pytest.mark.parametrize("op", list(ONNX_OPS))
def test_onnx_float_within_1e5_of_onnxruntime(op, onnx_dir):
    path = onnx_dir / f"{op}.onnx"
    m = adaptc.compile(path, target="cortex-m4")
    assert [s.op for s in m.program.steps] == ["adaptc.transpose", "adaptc.conv2d_f32", "adaptc.unary_f32",
                                               "adaptc.transpose"]
    _, function, params, _ = ONNX_OPS[op]
    a = m.program.steps[2].attrs
    assert a["function"] == function and m.scheduled.steps[2].kernel == "unary_f32"
    assert {k: a[k] for k in params} == {k: float(np.float32(v)) for k, v in params.items()}
    sess = ort.InferenceSession(str(path))
    for x in _inputs_f32(zlib.crc32(op.encode()), 5):
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def conv_int8(onnx_dir):
    """The conv alone, quantized with the same calibration: its int8 output is the int8 input of
    the op in every Conv -> op model (same weights, same calibrated range)."""
    return adaptc.compile(onnx_dir / "conv.onnx", target="cortex-m4", calibration=CALIBRATION)


@pytest.mark.parametrize("op", list(ONNX_OPS))
def test_onnx_post_training_int8(op, onnx_dir, conv_int8):
    """Bit-exact with the Relax module; against onnxruntime within a bound derived, not tuned.

    Let c be onnxruntime's conv output, c_q the int8 conv's (dequantized), y the int8 output
    (dequantized), s its scale and f the function. The op's table is TFLM's integer arithmetic
    (round to nearest, but MultiplyByQuantizedMultiplier rounds twice and gemmlowp's fixed point
    approximates exp) or a rounded float table, and TANH's int8 range stops at 127/128 < 1:
    |y - f(c_q)| <= 1 LSB (s). Through the conv's own error, |f(c_q) - f(c)| <= L |c_q - c|, so
    |y - f(c)| <= L |c_q - c| + s, element by element. (Measured: at most 1.0 and 0.92 LSB.)"""
    path = onnx_dir / f"{op}.onnx"
    q = adaptc.compile(path, target="cortex-m4", calibration=CALIBRATION)
    assert [s.op for s in q.program.steps] == ["adaptc.transpose", "adaptc.qconv2d", "adaptc.qlut",
                                               "adaptc.transpose"]
    conv_step = q.program.steps[1].attrs
    conv_scale, conv_zp = conv_int8.output_quantization
    assert (conv_step["output_scale"], conv_step["output_zp"]) == (conv_scale, conv_zp)
    s, zp = q.output_quantization
    if op == "Sigmoid":
        assert (s, zp) == (1 / 256, -128)               # TFLite's LOGISTIC output
    elif op == "Tanh":
        assert (s, zp) == (1 / 128, 0)                  # TFLite's TANH output
    lipschitz = ONNX_OPS[op][3]
    full, conv = ort.InferenceSession(str(path)), ort.InferenceSession(str(onnx_dir / "conv.onnx"))
    alone = ort.InferenceSession(str(onnx_dir / f"{op}_alone.onnx"))
    outs = []
    for x in _inputs_f32(zlib.crc32(op.encode()) + 1, 8):
        xq = q.quantize_input(x)
        y = q.run(xq)
        np.testing.assert_array_equal(y, q.reference(xq))          # C == Relax, bit for bit
        outs.append(y)
        y_real = (y.astype(np.float64) - zp) * s
        c_q = ((conv_int8.run(conv_int8.quantize_input(x)).astype(np.float64) - conv_zp) * conv_scale)
        f_cq = alone.run(None, {"c": c_q.astype(np.float32)})[0]
        assert np.all(np.abs(y_real - f_cq) <= s * (1 + 1e-4)), np.abs(y_real - f_cq).max() / s
        c = conv.run(None, {"x": x})[0]
        bound = lipschitz * np.abs(c_q - c) + s * (1 + 1e-4)
        assert np.all(np.abs(y_real - full.run(None, {"x": x})[0]) <= bound)
    assert len(np.unique(np.concatenate(outs))) >= 20


# ------------------------------------------------------------------------------- emulated core

CHAIN = [("HARD_SWISH", None), ("LEAKY_RELU", 0.3), ("ELU", None), ("TANH", None), ("LOGISTIC", None)]
CHAIN_Q = [(0.05, -3), (0.04, -60), (0.03, -40), (0.03, -50), (1 / 128, 0), (1 / 256, -128)]


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_int8_chain_on_the_emulated_m4_equals_host_and_tflm(tmp_path):
    """HARD_SWISH -> LEAKY_RELU -> ELU -> TANH -> LOGISTIC, int8: five table steps; the emulated
    Cortex-M4 gives the host build's outputs, which are TFLM's."""
    ops = [name if alpha is None else (name, alpha) for name, alpha in CHAIN]
    buf = T.unary_chain_model(SHAPE, ops, CHAIN_Q)
    m = adaptc.compile(_save(tmp_path, "chain.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["lut_s8_dsp"] * 5
    assert [s.source.split()[0] for s in m.program.steps] == ["hard_swish", "leaky_relu", "elu", "tanh", "sigmoid"]
    xs = np.stack(_int8_inputs(11))
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        host = m.run(x)
        np.testing.assert_array_equal(r.outputs[0, k].reshape(SHAPE), host)
        np.testing.assert_array_equal(host, T.run_tflm(buf, x))
    assert len(np.unique(r.outputs)) >= 10
