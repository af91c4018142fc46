"""ONNX Where of a comparison (Less, LessOrEqual, Greater, GreaterOrEqual, Equal), float, as the
``where_f32`` kernel: any operand an activation or a constant (flash), broadcasting; the C within
1e-6 of onnxruntime (a select copies one of its operands: only the activations' own rounding
differs), on the host and the emulated Cortex-M4. The clamp written as two selects (ONNX's Clip
body) becomes maximum / minimum. Post-training int8 of a select is refused, naming it."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
from adaptc.errors import AdaptcError

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
SHAPE = (1, 3, 5, 6)
RNG = np.random.default_rng(3)
W = (RNG.standard_normal((3, 3, 1, 1)) * 0.7).astype(np.float32)
LIMIT = (RNG.standard_normal((3, 1, 1)) * 0.5).astype(np.float32)          # per channel
ROW = RNG.standard_normal((6,)).astype(np.float32)                          # along the width


def _model(path: Path, nodes: list, inits: dict) -> Path:
    """x -> Conv 1x1 (w) -> "c", then ``nodes`` writing "y"; float32, opset 13."""
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["c"]), *nodes], path.stem,
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(SHAPE))],
                          [numpy_helper.from_array(v, k) for k, v in {"W": W, **inits}.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


# (id, nodes, initializers): the comparison, which operands are activations or constants, and
# the broadcasts the kernel's four strides cover
CASES = [
    ("less_scalar_bound", [helper.make_node("Less", ["c", "zero"], ["m"]),
                           helper.make_node("Mul", ["c", "alpha"], ["s"]),
                           helper.make_node("Where", ["m", "s", "c"], ["y"])],
     {"zero": np.float32(0.1), "alpha": np.float32(0.2)}),                # at 0: a leaky ReLU (unary_f32)
    ("greater_per_channel", [helper.make_node("Greater", ["c", "limit"], ["m"]),
                             helper.make_node("Where", ["m", "row", "x"], ["y"])],
     {"limit": LIMIT, "row": ROW}),
    ("less_equal_two_activations", [helper.make_node("Sigmoid", ["c"], ["s"]),
                                    helper.make_node("LessOrEqual", ["x", "s"], ["m"]),
                                    helper.make_node("Where", ["m", "c", "limit"], ["y"])],
     {"limit": LIMIT}),
    ("greater_equal_constant_first", [helper.make_node("GreaterOrEqual", ["limit", "c"], ["m"]),
                                      helper.make_node("Where", ["m", "x", "c"], ["y"])],
     {"limit": LIMIT}),
    ("equal_after_clip", [helper.make_node("Clip", ["c", "lo", "hi"], ["k"]),
                          helper.make_node("Equal", ["k", "hi"], ["m"]),
                          helper.make_node("Where", ["m", "x", "k"], ["y"])],
     {"lo": np.float32(-0.4), "hi": np.float32(0.4)}),
]


def _inputs(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_where_float_within_1e6_of_onnxruntime(case, tmp_path):
    name, nodes, inits = case
    path = _model(tmp_path / f"{name}.onnx", nodes, inits)
    m = adaptc.compile(path, target="cortex-m4")
    assert "where_f32" in [s.kernel for s in m.scheduled.steps]
    sess = ort.InferenceSession(str(path))
    for x in _inputs(4):
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-6, atol=1e-6)


def test_clip_body_is_a_maximum_and_a_minimum(tmp_path):
    nodes = [helper.make_node("Less", ["c", "lo"], ["m1"]), helper.make_node("Where", ["m1", "lo", "c"], ["k"]),
             helper.make_node("Less", ["hi", "k"], ["m2"]), helper.make_node("Where", ["m2", "hi", "k"], ["y"])]
    path = _model(tmp_path / "clip_body.onnx", nodes, {"lo": np.float32(-0.3), "hi": np.float32(0.6)})
    m = adaptc.compile(path, target="cortex-m4")
    assert "where_f32" not in [s.kernel for s in m.scheduled.steps]
    sess = ort.InferenceSession(str(path))
    for x in _inputs(2):
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-6, atol=1e-6)


def test_post_training_int8_of_a_select_is_refused(tmp_path):
    name, nodes, inits = CASES[1]
    path = _model(tmp_path / f"{name}.onnx", nodes, inits)
    with pytest.raises(AdaptcError, match="where"):
        adaptc.compile(path, target="cortex-m4", calibration=np.stack(_inputs(4)))


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_where_on_the_emulated_m4_equals_the_host(tmp_path):
    name, nodes, inits = CASES[2]
    path = _model(tmp_path / f"{name}.onnx", nodes, inits)
    m = adaptc.compile(path, target="cortex-m4")
    xs = np.stack(_inputs(3))
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(SHAPE), m.run(x))
