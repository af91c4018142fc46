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


# --------------------------------------------- Identity, Dropout, Clip, Squeeze, Unsqueeze (torch exports)

def _torch_style(path, opset: int, nan_bound: bool = False):
    """Identity -> Conv -> Clip(0, 6) (ReLU6: attributes before opset 11, constant inputs since)
    -> Dropout -> GlobalAveragePool -> Squeeze -> MatMul -> Unsqueeze -> Squeeze."""
    rng = np.random.default_rng(opset)
    inits = [numpy_helper.from_array((rng.normal(0, .6, (8, 3, 3, 3))).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, .3, (8, 10)).astype(np.float32), "wfc")]
    nodes = [helper.make_node("Identity", ["x"], ["x1"]), helper.make_node("Conv", ["x1", "w1"], ["a"], pads=[1] * 4)]
    if opset < 11:
        nodes.append(helper.make_node("Clip", ["a"], ["b"], min=0.0, max=6.0))
    else:
        lo = np.array(np.nan if nan_bound else 0.0, np.float32)          # NaN: unbounded (ONNX)
        inits += [numpy_helper.from_array(lo, "lo"), numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
        nodes.append(helper.make_node("Clip", ["a", "lo", "hi"], ["b"]))
    nodes += [helper.make_node("Dropout", ["b"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["d"])]
    axes = {"axes": [2, 3]}
    if opset >= 13:
        inits += [numpy_helper.from_array(np.array([2, 3], np.int64), "hw"),
                  numpy_helper.from_array(np.array([1], np.int64), "ax1")]
    nodes += [helper.make_node("Squeeze", ["d", "hw"] if opset >= 13 else ["d"], ["e"],
                               **({} if opset >= 13 else axes)),
              helper.make_node("MatMul", ["e", "wfc"], ["f"]),
              helper.make_node("Unsqueeze", ["f", "ax1"] if opset >= 13 else ["f"], ["g"],
                               **({} if opset >= 13 else {"axes": [1]})),
              helper.make_node("Squeeze", ["g", "ax1"] if opset >= 13 else ["g"], ["y"],
                               **({} if opset >= 13 else {"axes": [1]}))]
    g = helper.make_graph(nodes, "torch_style", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


@pytest.mark.parametrize("opset,nan_bound", [(7, False), (11, False), (13, False), (13, True)])
def test_identity_dropout_clip_squeeze_unsqueeze(opset, nan_bound, tmp_path):
    """Each form compiles to conv + ReLU6 fused (the clip is the conv's activation), pooling and
    dense; the float C within 1e-4 of onnxruntime; int8 by post-training quantization bit-exact
    with the Relax module."""
    path = _torch_style(tmp_path / f"m{opset}.onnx", opset, nan_bound)
    rng = np.random.default_rng(9)
    xs = rng.normal(0, 1, (8, 1, 3, 8, 8)).astype(np.float32)
    m = api.compile(path)
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_f32", "conv2d_f32", "avg_pool_f32",
                                                     "fully_connected_f32"]
    conv = m.program.steps[1]
    assert (conv.attrs["act_min"], conv.attrs["act_max"]) == ((-np.inf if nan_bound else 0.0), 6.0)
    sess = ort.InferenceSession(str(path))
    for x in xs:
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
    q = api.compile(path, calibration=xs)
    for x in q.quantize_input(xs):
        np.testing.assert_array_equal(q.run(x), q.reference(x))


@pytest.mark.parametrize("pool,attrs", [
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 1, 0], ceil_mode=1, count_include_pad=1)),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1)),
], ids=["avg_ceil", "avg_count_pad", "avg_ceil_count_pad", "max_ceil", "max_ceil_pads"])
@pytest.mark.parametrize("conv_first", [True, False], ids=["after_conv", "alone"])
def test_pooling_forms(pool, attrs, conv_first, tmp_path):
    """Ceil mode, padding counted in the average, pooling with no convolution before it (NCHW):
    float C within 1e-4 of onnxruntime; int8 by post-training quantization bit-exact with Relax."""
    rng = np.random.default_rng(5)
    inits, nodes, src = [], [], "x"
    if conv_first:
        inits.append(numpy_helper.from_array(rng.normal(0, .5, (4, 3, 3, 3)).astype(np.float32), "w"))
        nodes.append(helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]))
        src = "c"
    nodes.append(helper.make_node(pool, [src], ["y"], **attrs))
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 10])
    model = helper.make_model(helper.make_graph(nodes, "pool", [x_info],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    path = tmp_path / "pool.onnx"
    onnx.save(model, path)
    xs = rng.normal(0, 1, (6, 1, 3, 9, 10)).astype(np.float32)
    m = api.compile(path)
    sess = ort.InferenceSession(str(path))
    for x in xs:
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
    q = api.compile(path, calibration=xs)
    for x in q.quantize_input(xs):
        np.testing.assert_array_equal(q.run(x), q.reference(x))
