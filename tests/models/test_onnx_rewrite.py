"""ONNX graphs as exporters leave them: BatchNormalization not fused into its convolution, and
the shape arithmetic of ``x.view(x.size(0), -1)`` (Shape, Gather, Unsqueeze, Concat -> Reshape).

adaptc.onnx_rewrite.fold_batch_norms is checked on onnxruntime (the rewritten model against the
original); the compiled float C against onnxruntime within 1e-5 (relative to the logits'
scale)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
from adaptc.onnx_rewrite import fold_batch_norms

RNG = np.random.default_rng(5)


def _bn(name: str, x: str, y: str, channels: int) -> tuple[onnx.NodeProto, list]:
    params = [RNG.uniform(0.5, 2.0, channels), RNG.standard_normal(channels), RNG.standard_normal(channels),
              RNG.uniform(0.2, 3.0, channels)]
    names = [f"{name}_{k}" for k in ("scale", "bias", "mean", "var")]
    inits = [numpy_helper.from_array(p.astype(np.float32), n) for p, n in zip(params, names)]
    return helper.make_node("BatchNormalization", [x, *names], [y], name=name, epsilon=1e-3), inits


def _model(path: Path, nodes, inits, in_shape, out_shape) -> Path:
    g = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


def _conv_bn(path: Path, transposed: bool = False, bias: bool = True, group: int = 1) -> Path:
    """[Conv | ConvTranspose] -> BatchNormalization -> Relu -> BatchNormalization (the second
    after a Relu: the Mul / Add form)."""
    c_out = 4
    if transposed:
        w = RNG.standard_normal((2, c_out // group, 3, 3)).astype(np.float32)
        conv = helper.make_node("ConvTranspose", ["x", "W", *(["B"] if bias else [])], ["c"], strides=[2, 2],
                                pads=[1, 1, 1, 1], group=group)
        out_hw = 9
    else:
        w = RNG.standard_normal((c_out, 2 // group, 3, 3)).astype(np.float32)
        conv = helper.make_node("Conv", ["x", "W", *(["B"] if bias else [])], ["c"], pads=[1, 1, 1, 1], group=group)
        out_hw = 5
    bn1, i1 = _bn("bn1", "c", "n", c_out)
    bn2, i2 = _bn("bn2", "r", "y", c_out)
    inits = [numpy_helper.from_array(w, "W"), *i1, *i2]
    if bias:
        inits.append(numpy_helper.from_array(RNG.standard_normal(c_out).astype(np.float32), "B"))
    nodes = [conv, bn1, helper.make_node("Relu", ["n"], ["r"]), bn2]
    return _model(path, nodes, inits, (1, 2, 5, 5), (1, c_out, out_hw, out_hw))


CASES = [("conv", {}), ("conv_no_bias", {"bias": False}), ("grouped_conv", {"group": 2}),
         ("conv_transpose", {"transposed": True}), ("conv_transpose_grouped", {"transposed": True, "group": 2})]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fold_batch_norms_keeps_the_numbers(case, tmp_path):
    path = _conv_bn(tmp_path / f"{case[0]}.onnx", **case[1])
    model = onnx.load(path)
    folded = fold_batch_norms(model)
    assert [n.op_type for n in model.graph.node].count("BatchNormalization") == 2      # the input is not changed
    ops = [n.op_type for n in folded.graph.node]
    assert "BatchNormalization" not in ops and ops[1:] == ["Relu", "Mul", "Add"]     # folded; then Mul / Add
    x = RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    got = ort.InferenceSession(folded.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("case", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_conv_batch_norm_compiles_within_1e5_of_onnxruntime(case, tmp_path):
    path = _conv_bn(tmp_path / f"{case[0]}.onnx", **case[1])
    m = adaptc.compile(path, target="cortex-m4")
    sess = ort.InferenceSession(str(path))
    for _ in range(3):
        x = RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(m.run(x), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_torch_flatten_shape_arithmetic(tmp_path):
    """x.view(x.size(0), -1) after a conv, as torch.onnx.export writes it, then a Gather of
    some features (constant indices) and a Softmax."""
    w = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
             numpy_helper.from_array(np.array([5, 0, 7, 7, 60], np.int64), "pick")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["c"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["c", "shape"], ["f"]),
             helper.make_node("Gather", ["f", "pick"], ["g"], axis=1),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    path = _model(tmp_path / "flatten.onnx", nodes, inits, (1, 2, 5, 5), (1, 5))
    m = adaptc.compile(path, target="cortex-m4")
    sess = ort.InferenceSession(str(path))
    for _ in range(3):
        x = RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
