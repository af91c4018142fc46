"""ONNX operators exporters write at the ends of a network and in its shape arithmetic -- ArgMax,
LogSoftmax, Log, Upsample, Expand, ConstantOfShape, Range -- end to end: the float C within 1e-4
of onnxruntime, and by post-training quantization the int8 C bit-exact with the Relax module."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc.api as api


def _save(path, nodes, x_shape, y_shape, inits=(), opset=13, y_type=TensorProto.FLOAT):
    g = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info("y", y_type, list(y_shape))],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


def _conv(x_name, out, c_in, c_out, seed):
    w = np.random.default_rng(seed).normal(0, 0.5, (c_out, c_in, 3, 3)).astype(np.float32)
    return helper.make_node("Conv", [x_name, f"w{seed}"], [out], pads=[1, 1, 1, 1]), {f"w{seed}": w}


def _head(kind: str):
    """A conv -> pooling -> dense classifier ending in ``kind``."""
    conv, inits = _conv("x", "c", 3, 6, 1)
    inits["wf"] = np.random.default_rng(4).normal(0, 0.5, (6, 5)).astype(np.float32)
    nodes = [conv, helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "wf"], ["l"])]
    if kind == "argmax":
        return nodes + [helper.make_node("ArgMax", ["l"], ["y"], axis=1)], inits, [1, 1], TensorProto.INT64
    if kind == "log_softmax":
        return nodes + [helper.make_node("LogSoftmax", ["l"], ["y"], axis=-1)], inits, [1, 5], TensorProto.FLOAT
    # log of the probabilities, as a log-likelihood head writes it
    return nodes + [helper.make_node("Softmax", ["l"], ["p"], axis=-1), helper.make_node("Log", ["p"], ["y"])], \
        inits, [1, 5], TensorProto.FLOAT


def _check(path, x_shape, int8=True, tolerance=0.15):
    """Float C == onnxruntime; int8 C == its Relax module, and within ``tolerance`` of the float
    output's range from onnxruntime (the int8 module computes the same function; the inputs are
    in the calibration set, so that nothing saturates)."""
    rng = np.random.default_rng(31)
    sess = ort.InferenceSession(str(path))
    xs = rng.normal(0, 1, (6, *x_shape)).astype(np.float32)
    m = api.compile(path)
    for x in xs[:5]:
        want = sess.run(None, {"x": x})[0]
        got = m.run(x)
        if want.dtype.kind == "i":       # indices: int32 in the C (TFLite ARG_MAX's type)
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if int8:
        cal = np.concatenate([xs, rng.normal(0, 1, (26, *x_shape)).astype(np.float32)])
        q = api.compile(path, calibration=cal)
        for x, xq in zip(xs, q.quantize_input(xs)):
            y = q.run(xq)
            np.testing.assert_array_equal(y, q.reference(xq))
            want = sess.run(None, {"x": x})[0]
            if want.dtype.kind == "f":
                scale, zp = q.output_quantization
                got = (y.astype(np.float64) - zp) * scale
                err = np.abs(got - want).max()
                assert err <= tolerance * np.ptp(want) + 1e-6, (err, np.ptp(want))
        return m, q
    return m, None


@pytest.mark.parametrize("kind", ["argmax", "log_softmax", "softmax_log"])
def test_classifier_heads(kind, tmp_path):
    nodes, inits, y_shape, y_type = _head(kind)
    path = _save(tmp_path / f"{kind}.onnx", nodes, (1, 3, 8, 8), y_shape, inits, y_type=y_type)
    m, q = _check(path, (1, 3, 8, 8))
    last = {"argmax": "adaptc.argmax_f32", "log_softmax": "adaptc.softmax_f32"}.get(kind, "adaptc.unary_f32")
    assert m.program.steps[-1].op == last
    if kind != "softmax_log":
        assert q.program.steps[-1].op == {"argmax": "adaptc.qargmax", "log_softmax": "adaptc.qlog_softmax"}[kind]


@pytest.mark.parametrize("opset,mode", [(7, "nearest"), (9, "nearest"), (9, "linear")])
def test_upsample(opset, mode, tmp_path):
    """Upsample by 2 x 3 (opset 7: the scales attribute; 9: a constant input) after a conv."""
    conv, inits = _conv("x", "c", 2, 4, 2)
    scales = [1.0, 1.0, 2.0, 3.0]
    if opset == 7:
        up = helper.make_node("Upsample", ["c"], ["y"], mode=mode, scales=scales)
    else:
        inits["s"] = np.array(scales, np.float32)
        up = helper.make_node("Upsample", ["c", "s"], ["y"], mode=mode)
    path = _save(tmp_path / f"up{opset}{mode}.onnx", [conv, up], (1, 2, 5, 4), (1, 4, 10, 12), inits, opset=opset)
    _check(path, (1, 2, 5, 4))


def test_shape_arithmetic(tmp_path):
    """A positional ramp and a constant bias built from the input's shape at run time, as torch
    exports ``torch.arange(x.shape[1])`` and ``x.new_full(x.shape, 0.5)``: Shape, Gather,
    Range, Cast, Unsqueeze, ConstantOfShape and Expand fold at compile time into constants."""
    i64 = lambda v: np.array(v, np.int64)           # noqa: E731
    inits = {"zero": i64(0), "one": i64(1), "i1": i64(1), "ax0": i64([0]), "k": np.array(0.1, np.float32),
             "row": i64([1, 6, 4])}
    nodes = [helper.make_node("Shape", ["x"], ["shp"]),
             helper.make_node("Gather", ["shp", "i1"], ["n"], axis=0),
             helper.make_node("Range", ["zero", "n", "one"], ["ramp"]),
             helper.make_node("Cast", ["ramp"], ["rampf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["rampf", "ax0"], ["ramp1"]),            # [1, 6]
             helper.make_node("Mul", ["ramp1", "k"], ["pos"]),
             helper.make_node("Unsqueeze", ["pos", "ax0"], ["pos3"]),               # [1, 1, 6]
             helper.make_node("Transpose", ["pos3"], ["posc"], perm=[0, 2, 1]),      # [1, 6, 1]
             helper.make_node("Expand", ["posc", "row"], ["posx"]),                  # [1, 6, 4]
             helper.make_node("ConstantOfShape", ["shp"], ["half"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Add", ["x", "posx"], ["a"]),
             helper.make_node("Mul", ["a", "half"], ["b"]),
             helper.make_node("Tanh", ["b"], ["y"])]
    path = _save(tmp_path / "shapes.onnx", nodes, (1, 6, 4), (1, 6, 4), inits)
    m, _ = _check(path, (1, 6, 4))
    assert {s.op for s in m.program.steps} <= {"adaptc.add_f32", "adaptc.mul_f32", "adaptc.unary_f32",
                                               "adaptc.binary_f32"}


def test_expand_of_an_activation(tmp_path):
    """Expand of a computed tensor (a pooled [1, C, 1, 1] gate broadcast over the image, both ways):
    a gather along each grown axis."""
    conv, inits = _conv("x", "c", 3, 4, 3)
    inits["shape"] = np.array([1, 4, 6, 6], np.int64)
    nodes = [conv, helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Sigmoid", ["g"], ["s"]), helper.make_node("Expand", ["s", "shape"], ["e"]),
             helper.make_node("Mul", ["c", "e"], ["y"])]
    path = _save(tmp_path / "expand.onnx", nodes, (1, 3, 6, 6), (1, 4, 6, 6), inits)
    _check(path, (1, 3, 6, 6))


@pytest.mark.parametrize("index", [np.array(-1, np.int64), np.array([-1], np.int64), np.array(2, np.int64)],
                         ids=["scalar_last", "list_last", "scalar_2"])
def test_gather_of_one_time_step(index, tmp_path):
    """``y[:, -1]`` as torch exports it -- Gather on axis 1 by a scalar index, which drops the axis
    -- and by a one-element list, which keeps it."""
    w = np.random.default_rng(8).normal(0, 0.5, (6, 5)).astype(np.float32)
    keep = index.ndim == 1
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gather", ["r", "i"], ["y"], axis=1)]
    path = _save(tmp_path / "gather.onnx", nodes, (1, 7, 6), (1, 1, 5) if keep else (1, 5), {"w": w, "i": index})
    _check(path, (1, 7, 6))
