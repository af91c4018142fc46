"""A model with several outputs, compiled without exits, keeps every one of them.

``<prefix>_run(input, output0, output1, ...)`` takes one buffer per model output; ``m.run``
returns the list, in the model's order. Float: each output within 1e-5 of onnxruntime; int8
(post-training quantization): each bit-exact with the Relax module on llvm, on the host build
and on the emulated Cortex-M4 (one run, and a batch run). The header names each output with
the model's tensor name, and the program holds every output's path.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc

SHAPE = (1, 4, 6, 6)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """conv -> relu, then two branches: global pooling + dense (``logits``, 1x5) and a sigmoid
    map (``mask``, 1x8x6x6)."""
    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32)
    w2 = rng.standard_normal((8, 5)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "w2"], ["logits"], name="fc"),
             helper.make_node("Sigmoid", ["r1"], ["mask"], name="sig")]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5]),
               helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 8, 6, 6])]
    graph = helper.make_graph(nodes, "two_heads", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              outputs, [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    path = tmp_path_factory.mktemp("multi") / "two_heads.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def inputs(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


def test_float_model_returns_every_output(model_path):
    m = adaptc.compile(model_path, target="cortex-m4")
    sess = ort.InferenceSession(str(model_path))
    for x in inputs(4):
        got, want = m.run(x), sess.run(None, {"x": x})
        assert isinstance(got, list) and [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    header = m.files[f"{m.prefix}.h"]
    assert "int two_heads_run(const float *input, float *output0, float *output1);" in header
    assert "(logits)" in header and "(mask)" in header and "(gv)" not in header
    assert [o["name"] for o in m.report()["outputs"]] == ["logits", "mask"]
    one = adaptc.compile(model_path, target="cortex-m4", output=0)
    assert len(one.program.steps) < len(m.program.steps)    # the mask's path is compiled too
    assert m.io_bytes == m.input.nbytes + 5 * 4 + 8 * 36 * 4


def test_int8_model_every_output_bit_exact_on_host_and_emulated_core(model_path):
    m = adaptc.compile(model_path, target="cortex-m4", calibration=inputs(32, seed=1))
    q = m.io_quantization["outputs"]
    assert len(q) == 2 and m.format == "int8"
    xs = [m.quantize_input(x) for x in inputs(3, seed=2)]
    host = [m.run(x) for x in xs]
    for x, h in zip(xs, host):
        ref = m.reference(x)
        assert len(h) == len(ref) == 2
        for a, b in zip(h, ref):
            np.testing.assert_array_equal(a, b)
    emulated = m.run_on_target(xs[0])
    for a, b in zip(emulated.outputs, host[0]):
        np.testing.assert_array_equal(a, b)
    batch = m.run_batch_on_target(np.stack(xs))
    assert len(batch.logits) == 2
    for i, (logits, mask) in enumerate(host):
        np.testing.assert_array_equal(batch.logits[0][0, i], logits)
        np.testing.assert_array_equal(batch.logits[1][0, i], mask)


def test_output_selects_one(model_path):
    m = adaptc.compile(model_path, target="cortex-m4", output=1)
    out = m.run(inputs(1)[0])
    assert isinstance(out, np.ndarray) and out.shape == (1, 8, 6, 6)
    assert "float *output);" in m.files[f"{m.prefix}.h"]
