"""ONNX models (NCHW) end to end: float C vs onnxruntime, post-training int8 C vs the Relax reference."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc.api as api


def _tiny_cnn(path):
    """Conv(stride 2, pad 1) + Relu + MaxPool + depthwise Conv + Relu + GlobalAveragePool + Flatten + Gemm + Softmax."""
    rng = np.random.default_rng(0)
    inits = {"W": rng.standard_normal((8, 3, 3, 3)) * 0.3, "B": rng.standard_normal(8) * 0.1,
             "Wd": rng.standard_normal((8, 1, 3, 3)) * 0.3, "Bd": rng.standard_normal(8) * 0.1,
             "W2": rng.standard_normal((5, 8)) * 0.3, "B2": rng.standard_normal(5) * 0.1}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["mp", "Wd", "Bd"], ["d"], pads=[1, 1, 1, 1], group=8),
             helper.make_node("Relu", ["d"], ["dc"]),
             helper.make_node("GlobalAveragePool", ["dc"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "W2", "B2"], ["y0"], transB=1),
             helper.make_node("Softmax", ["y0"], ["y"], axis=-1)]
    tensors = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], tensors)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _tiny_cnn(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_float_matches_onnxruntime(model):
    m = api.compile(model)
    assert m.format == "float32" and m.input.shape == (1, 3, 16, 16)
    sess = ort.InferenceSession(str(model))
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(m.run(x), ref, atol=1e-5)
        np.testing.assert_allclose(m.reference(x), ref, atol=1e-5)


def test_post_training_int8(model):
    rng = np.random.default_rng(2)
    cal = rng.standard_normal((64, 3, 16, 16)).astype(np.float32)
    q = api.compile(model, calibration=cal)
    assert q.format == "int8" and q.input.dtype == "int8"
    assert [s.op for s in q.program.steps][1:] == ["adaptc.qconv2d", "adaptc.qmax_pool2d", "adaptc.qconv2d",
                                                   "adaptc.qavg_pool2d", "adaptc.qdense", "adaptc.qsoftmax"]
    sess = ort.InferenceSession(str(model))
    worst = 0.0
    for _ in range(10):
        x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
        xq = q.quantize_input(x)
        y = q.run(xq)
        np.testing.assert_array_equal(y, q.reference(xq))          # C == Relax, bit for bit
        prob = (y.astype(np.float64) + 128) / 256                    # scale 1/256, zero point -128
        worst = max(worst, np.abs(prob - sess.run(None, {"x": x})[0]).max())
    assert worst < 0.03, worst                                      # int8 vs float, 5-class softmax
