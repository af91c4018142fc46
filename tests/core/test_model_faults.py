"""Faults of a model file, each refused as a typed error that names the file and what is wrong:
corrupt flatbuffer tables, declared tensor types their operators contradict, NaN and infinite
weights, dtypes adaptc does not compile, external data out of bounds, graphs TVM's frontend
trips over. Each test is the minimal reproducer of one class; benchmarks/fuzz_loaders.py (and
tests/core/test_fuzz_loaders.py) look for the classes not written down here."""
from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import tflite
from onnx import TensorProto, helper, numpy_helper

import tflite_ops as T
from adaptc import loader
from adaptc.errors import AdaptcError, ModelLoadError

# ------------------------------------------------------------------------------------- helpers


def _refused(path, *fragments, stages=(loader.load,)):
    """The ModelLoadError each of ``stages`` raises on ``path``, its message naming the file and
    every fragment; returns the load's message."""
    messages = []
    for stage in stages:
        with pytest.raises(ModelLoadError) as exc:
            stage(path)
        assert exc.value.path == str(path)
        text = str(exc.value)
        assert str(path) in text
        for f in fragments:
            assert f in text, text
        messages.append(text)
    return messages[-1]


def _write(tmp_path, name, data) -> object:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
    return path


def _tensor(buf: bytes, name: str):
    sub = tflite.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    return next(sub.Tensors(i) for i in range(sub.TensorsLength()) if sub.Tensors(i).Name().decode() == name)


def _patch(buf: bytes, pos: int, fmt: str, *values) -> bytes:
    out = bytearray(buf)
    struct.pack_into(fmt, out, pos, *values)
    return bytes(out)


def _field(buf: bytes, name: str, slot: int) -> int:
    """Position of field ``slot`` (4, 6, ... as in the generated tflite readers) of tensor ``name``."""
    t = _tensor(buf, name)
    assert t._tab.Offset(slot), f"tensor {name!r} has no field {slot}"
    return t._tab.Pos + t._tab.Offset(slot)


def _shape_at(buf: bytes, name: str) -> int:
    t = _tensor(buf, name)
    return t._tab.Vector(t._tab.Offset(4))


def _chain(shape=(1, 25, 5, 64)) -> bytes:
    """int8 input -> RELU -> 'relu_0' -> TANH -> output: one intermediate tensor."""
    return T.unary_chain_model(shape, ["RELU", "TANH"], [(0.05, -3), (0.05, -128), (1 / 128, 0)])


INFO = (loader.operators, loader.unsupported, loader.load)   # what ``adaptc info`` calls


# ---------------------------------------------------------------------- corrupt TFLite tables


def _quantization_past_end(buf):
    return _patch(buf, _field(buf, "input", 12), "<I", 0x7FFFFF00)


def _quantization_into_tail(buf):
    return _patch(buf, _field(buf, "output", 12), "<I", len(buf) - 8 - _field(buf, "output", 12))


def _operator_input(buf):
    op = tflite.Model.GetRootAsModel(buf, 0).Subgraphs(0).Operators(0)
    return _patch(buf, op._tab.Vector(op._tab.Offset(6)), "<i", 999)


def _graph_output(buf):
    sub = tflite.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    return _patch(buf, sub._tab.Vector(sub._tab.Offset(8)), "<i", 77)


def _opcode_index(buf):
    op = tflite.Model.GetRootAsModel(buf, 0).Subgraphs(0).Operators(1)
    return _patch(buf, op._tab.Pos + op._tab.Offset(4), "<I", 5)


def _cut_in_tensor_table(buf):
    return buf[:_tensor(buf, "relu_0")._tab.Pos + 2]


@pytest.mark.parametrize("corrupt, fragment", [
    # struct.error from the quantization table's read, which sat outside the guarded reads
    (_quantization_past_end, "struct.error"),
    (_quantization_into_tail, "corrupt"),
    (_operator_input, "operator #0 names input tensor 999 of 3"),
    (_graph_output, "the graph's output names tensor 77 of 3"),
    (_opcode_index, "operator #1 names operator code 5 of 2"),
    (_cut_in_tensor_table, "corrupt"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else None)
def test_corrupt_tflite_table(tmp_path, corrupt, fragment):
    """Every stage of ``adaptc info`` refuses the file with ModelLoadError, never struct.error."""
    buf = _chain()
    loader.load(_write(tmp_path, "good.tflite", buf))
    _refused(_write(tmp_path, "bad.tflite", corrupt(buf)), fragment, stages=INFO)


def test_constant_buffer_of_the_wrong_size(tmp_path):
    w = np.ones((4, 3, 3, 3), np.float32)
    buf = T.conv2d_model_f32((1, 8, 8, 3), w)
    bad = _patch(buf, _shape_at(buf, "filter"), "<i", 5)           # [5, 3, 3, 3]: 540 bytes, holds 432
    _refused(_write(tmp_path, "m.tflite", bad), "constant tensor 'filter' of shape [5, 3, 3, 3]", "432 bytes",
             stages=(loader.load,))


# ---------------------------------------------------------------- declared types, contradicted


def test_intermediate_shape_contradicting_its_operator(tmp_path):
    """The hostile-user probe's model: an intermediate declared [1, 23833, 5, 64] where its
    operator gives [1, 25, 5, 64]. TFLite Micro refuses it; so does adaptc, naming both."""
    buf = _chain()
    loader.load(_write(tmp_path, "good.tflite", buf))
    bad = _patch(buf, _shape_at(buf, "relu_0") + 4, "<i", 23833)
    text = _refused(_write(tmp_path, "bad.tflite", bad), "'relu_0'", "RELU", "operator #0",
                    "[1, 23833, 5, 64]", "[1, 25, 5, 64]")
    assert text.index("[1, 23833, 5, 64]") < text.index("[1, 25, 5, 64]")   # declared, then computed


def test_output_shape_contradicting_its_operator(tmp_path):
    buf = _chain((1, 4, 4, 8))
    bad = _patch(buf, _shape_at(buf, "output") + 12, "<i", 9)
    _refused(_write(tmp_path, "bad.tflite", bad), "'output'", "TANH", "[1, 4, 4, 9]", "[1, 4, 4, 8]")


def test_dtype_contradicting_its_operator(tmp_path):
    """An output declared int16 (unquantized) where the RELU of a float32 tensor computes float32."""
    m = T._ModelBuilder("float32 RELU with an int16 output")
    m.op(tflite.BuiltinOperator.RELU, 1, [m.input((1, 4), np.float32)], [m.output((1, 4), np.int16)])
    bad = m.finish()
    _refused(_write(tmp_path, "bad.tflite", bad), "'output'", "declared int16 [1, 4]", "computes float32 [1, 4]")


# ------------------------------------------------------------------------ NaN and inf weights


@pytest.mark.parametrize("value, shown", [(np.nan, "NaN"), (np.inf, "+inf"), (-np.inf, "-inf")])
def test_tflite_non_finite_weight(tmp_path, value, shown):
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    w[1, 2, 0, 1] = value
    w[3, 0, 0, 0] = value                                   # a later one: the first is named
    path = _write(tmp_path, "conv.tflite", T.conv2d_model_f32((1, 8, 8, 3), w))
    _refused(path, "'filter'", shown, "index [1, 2, 0, 1]")


@pytest.mark.parametrize("scale, fragment", [(np.nan, "scale nan at index 0; scales must be finite"),
                                             (np.inf, "scale inf at index 0; scales must be finite"),
                                             (0.0, "scale 0.0 at index 0; scales must be positive"),
                                             (-0.5, "scale -0.5 at index 0; scales must be positive")])
def test_tflite_bad_quantization_scale(tmp_path, scale, fragment):
    """(A zero scale divided by zero in the requantization of the next layer.)"""
    buf = _chain((1, 4, 4, 8))
    q = _tensor(buf, "relu_0").Quantization()
    bad = _patch(buf, q._tab.Vector(q._tab.Offset(8)), "<f", scale)
    _refused(_write(tmp_path, "bad.tflite", bad), "'relu_0'", fragment)


def _onnx(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _gemm(w: np.ndarray, b: np.ndarray):
    return _onnx([helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc", transB=1)],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, w.shape[1]])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, w.shape[0]])],
                 [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])


@pytest.mark.parametrize("value, shown", [(np.nan, "NaN"), (np.inf, "+inf"), (-np.inf, "-inf")])
def test_onnx_non_finite_weight(tmp_path, value, shown):
    w = np.ones((3, 4), np.float32)
    w[2, 1] = value
    _refused(_write(tmp_path, "fc.onnx", _gemm(w, np.zeros(3, np.float32))), "'W'", shown, "index [2, 1]")


def test_onnx_non_finite_bias(tmp_path):
    b = np.array([0, 0, np.nan], np.float32)
    _refused(_write(tmp_path, "fc.onnx", _gemm(np.ones((3, 4), np.float32), b)), "'B'", "NaN", "index 2")


def _clip(lo: float, hi: float):
    return _onnx([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                 [numpy_helper.from_array(np.float32(lo), "lo"), numpy_helper.from_array(np.float32(hi), "hi")])


@pytest.mark.parametrize("lo, hi", [(0.0, np.inf), (np.nan, 6.0), (-np.inf, np.nan)])
def test_onnx_clip_bound_may_be_no_bound(tmp_path, lo, hi):
    """Clip's min / max of -inf, +inf or NaN mean "no bound" (ONNX): loaded."""
    loader.load(_write(tmp_path, "clip.onnx", _clip(lo, hi)))


def test_onnx_max_operand(tmp_path):
    """An operand of Max may be -inf (no bound); NaN is refused."""
    def model(value):
        return _onnx([helper.make_node("Max", ["x", "c"], ["y"], name="max")],
                     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                     [numpy_helper.from_array(np.full((1, 4), value, np.float32), "c")])

    loader.load(_write(tmp_path, "inf.onnx", model(-np.inf)))
    _refused(_write(tmp_path, "nan.onnx", model(np.nan)), "'c'", "NaN", "index [0, 0]")


# ----------------------------------------------------------------------------- dtypes refused


def test_float64_onnx_names_the_node_and_the_dtype(tmp_path):
    """Was: "unsupported operator matmul at node 'gv'" -- with matmul among the supported."""
    w = numpy_helper.from_array(np.ones((4, 3), np.float64), "W")
    model = _onnx([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
                  [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 3])], [w])
    text = _refused(_write(tmp_path, "f64.onnx", model), "float64", "'mm'", "MatMul")
    assert "'gv'" not in text


def test_float64_computed_inside_a_float32_model(tmp_path):
    model = _onnx([helper.make_node("Cast", ["x"], ["x64"], name="to_double", to=TensorProto.DOUBLE),
                   helper.make_node("Relu", ["x64"], ["r"], name="relu"),
                   helper.make_node("Cast", ["r"], ["y"], name="to_float", to=TensorProto.FLOAT)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    _refused(_write(tmp_path, "cast.onnx", model), "node 'to_double' (Cast) computes float64 tensor 'x64'")


def test_float16_weights_cast_to_float32_load(tmp_path):
    """fp16 weights with a Cast to float32 (what fp16-compressed exports write) fold at import."""
    w = numpy_helper.from_array(np.full((1, 4), 0.5, np.float16), "w16")
    model = _onnx([helper.make_node("Cast", ["w16"], ["w"], name="cast", to=TensorProto.FLOAT),
                   helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    loader.load(_write(tmp_path, "fp16w.onnx", model))


def test_tflite_float64_tensor(tmp_path):
    buf = _chain((1, 4))
    bad = _patch(buf, _field(buf, "relu_0", 6), "<b", tflite.TensorType.FLOAT64)
    _refused(_write(tmp_path, "f64.tflite", bad), "float64 tensor 'relu_0'", "operator #0 -> relu_0 (RELU)")


# ------------------------------------------------------------------------------ external data


def _external(tmp_path, location: str, length: int | None = None, write: bytes | None = None):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    model = _gemm(w, np.zeros(3, np.float32))
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length or w.nbytes))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    d = tmp_path / "model"
    d.mkdir()
    if write is not None:
        (d / "weights.bin").write_bytes(write)
    return _write(d, "fc.onnx", model), w


def test_external_data_beside_the_model_loads(tmp_path):
    path, w = _external(tmp_path, "weights.bin", write=np.arange(12, dtype=np.float32).tobytes())
    loader.load(path)
    assert loader.operators(path) == [("Gemm", "fc")]


@pytest.mark.parametrize("location, fragment", [
    ("../outside.bin", "outside the model's directory"),
    ("/etc/hostname", "outside the model's directory"),
    ("sub/../../outside.bin", "outside the model's directory"),
    ("missing.bin", "is missing"),
])
def test_external_data_refused(tmp_path, location, fragment):
    (tmp_path / "outside.bin").write_bytes(bytes(48))
    path, _ = _external(tmp_path, location)
    _refused(path, f"external data {location!r} of tensor 'W'", fragment, stages=INFO)


def test_external_data_shorter_than_it_says(tmp_path):
    path, _ = _external(tmp_path, "weights.bin", length=4096, write=bytes(48))
    _refused(path, "external data 'weights.bin' of tensor 'W'", "4096", stages=INFO)


# ------------------------------------------------- garbage that parses, refused by the frontend


def test_onnx_frontend_failure_is_typed(tmp_path):
    """A Conv whose weight has the wrong rank passes the ONNX checker; TVM's importer fails."""
    model = _onnx([helper.make_node("Conv", ["x", "W"], ["y"], name="conv")],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                  [numpy_helper.from_array(np.ones((4, 3), np.float32), "W")])
    path = _write(tmp_path, "conv.onnx", model)
    loader.unsupported(path)
    with pytest.raises(AdaptcError) as exc:
        loader.load(path)
    assert isinstance(exc.value, ModelLoadError) and str(path) in str(exc.value)


def test_onnx_protobuf_that_does_not_decode(tmp_path):
    data = _clip(0.0, 6.0).SerializeToString()
    _refused(_write(tmp_path, "cut.onnx", data[: len(data) - 7]), "ONNX", stages=INFO)


def _gru(steps: int, batch: int, hidden: int = 4):
    rng = np.random.default_rng(0)
    return _onnx([helper.make_node("GRU", ["x", "W", "R"], ["", "h"], name="gru", hidden_size=hidden)],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, batch, 2])],
                 [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, batch, hidden])],
                 [numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, 2)).astype(np.float32), "W"),
                  numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, hidden)).astype(np.float32), "R")])


@pytest.mark.parametrize("steps, batch", [(loader.MAX_RECURRENT_STEPS + 1, 1), (64, 32)])
def test_long_recurrence_refused_by_name(tmp_path, steps, batch):
    """A recurrent layer is unrolled, sequence by sequence and step by step: past
    loader.MAX_RECURRENT_STEPS in all, refused at once (the import ran for minutes)."""
    from adaptc.errors import UnsupportedOperatorError

    path = _write(tmp_path, "gru.onnx", _gru(steps, batch))
    with pytest.raises(UnsupportedOperatorError, match=re.escape(f"{steps * batch} steps (sequences x time steps)")):
        loader.load(path)
    assert loader.unsupported(path)[0][:2] == ("GRU", "gru")
    loader.load(_write(tmp_path, "short.onnx", _gru(loader.MAX_RECURRENT_STEPS // batch, batch)))


def test_onnx_declared_shape_contradicting_its_node(tmp_path):
    """value_info says relu's output is [1, 5]; the node computes [1, 4] (onnxruntime refuses it)."""
    model = _onnx([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                   helper.make_node("Relu", ["r"], ["y"], name="relu2")],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    loader.load(_write(tmp_path, "good.onnx", model))
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 5]))
    _refused(_write(tmp_path, "bad.onnx", model), "node 'relu' (Relu)", "(4) vs (5)")
