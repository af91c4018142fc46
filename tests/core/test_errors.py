"""Typed errors: bad model files, unsupported operators, dynamic shapes, bad inputs, failed exports."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import adaptc.api as api
import adaptc.targets.cortex_m.model as cortex_m_model
import paths
import tflite_ops as T
from adaptc.errors import AdaptcError, DynamicShapeError, InputError, ModelLoadError, UnsupportedOperatorError
from adaptc.loader import ONNX_OPS, TFLITE_OPS, load

KWS = paths.DATA / "kws_ref_model.tflite"


# ---------------------------------------------------------------------------- model files

def _assert_load_error(path, *fragments):
    with pytest.raises(ModelLoadError) as exc:
        load(path)
    err = exc.value
    assert isinstance(err, AdaptcError)
    assert err.path == str(path)
    assert str(path) in str(err)
    for f in fragments:
        assert f in str(err), str(err)
    return err


def test_truncated_tflite(tmp_path):
    data = KWS.read_bytes()
    path = tmp_path / "kws_truncated.tflite"
    path.write_bytes(data[: len(data) // 2])
    _assert_load_error(path, "truncated")
    with pytest.raises(ModelLoadError):   # and through the public entry point
        api.compile(path)


@pytest.mark.parametrize("keep", [8, 64, 1000, 20_000])
def test_truncated_tflite_other_lengths(tmp_path, keep):
    data = KWS.read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:keep])
    _assert_load_error(path)


@pytest.mark.parametrize("drop", [16, 100, 1000])
def test_tflite_with_tail_cut_off(tmp_path, drop):
    data = KWS.read_bytes()
    path = tmp_path / "tail.tflite"
    path.write_bytes(data[:-drop])
    _assert_load_error(path)


def test_garbage_tflite(tmp_path):
    path = tmp_path / "garbage.tflite"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _assert_load_error(path, "TFL3")


def test_garbage_with_tflite_identifier(tmp_path):
    """Passes the file-identifier check, then fails in the flatbuffer reader: still ModelLoadError."""
    rng = np.random.default_rng(1)
    data = bytearray(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    data[4:8] = b"TFL3"
    path = tmp_path / "garbage_id.tflite"
    path.write_bytes(bytes(data))
    _assert_load_error(path)


def test_empty_tflite(tmp_path):
    path = tmp_path / "empty.tflite"
    path.write_bytes(b"")
    _assert_load_error(path)


def test_missing_file(tmp_path):
    path = tmp_path / "does_not_exist.tflite"
    err = _assert_load_error(path)
    assert "No such file" in err.reason
    with pytest.raises(ModelLoadError):
        api.compile(path)


def test_directory_instead_of_file(tmp_path):
    path = tmp_path / "dir.tflite"
    path.mkdir()
    _assert_load_error(path)


@pytest.mark.parametrize("name", ["model.pb", "model.h5", "model", "model.tflite.bak"])
def test_unknown_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(KWS.read_bytes())   # a valid TFLite file under the wrong name
    _assert_load_error(path, "unknown model format")


# --------------------------------------------------------------------- unsupported operators

def _single_op_tflite(builtin, version=1, dtype=np.float32, q=None, n_inputs=1, output_name="sin_out"):
    mb = T._ModelBuilder("adaptc test: unsupported op")
    ins = [mb.input((1, 4, 4, 2), dtype, f"input{i}", q) for i in range(n_inputs)]
    y = mb.output((1, 4, 4, 2), dtype, output_name, q)
    mb.op(builtin, version, ins, [y])
    return mb.finish()


@pytest.mark.parametrize("op,builtin,kw", [
    ("SIN", T._OP.SIN, dict(output_name="sin_out")),
    ("COS", T._OP.COS, dict(output_name="cosine/out:0")),
    ("FLOOR_MOD", T._OP.FLOOR_MOD, dict(dtype=np.int8, q=T.QParams(0.1, 0), version=2, n_inputs=2,
                                        output_name="mod_out")),
])
def test_unsupported_tflite_operator(tmp_path, op, builtin, kw):
    path = tmp_path / "unsupported.tflite"
    path.write_bytes(_single_op_tflite(builtin, **kw))
    with pytest.raises(UnsupportedOperatorError) as exc:
        load(path)
    err, msg = exc.value, str(exc.value)
    assert err.op == op and err.path == str(path)
    assert kw["output_name"] in err.node and "#0" in err.node
    assert str(path) in msg and op in msg and kw["output_name"] in msg
    for supported in TFLITE_OPS:               # lists what is supported
        assert supported in msg
    assert err.supported == sorted(TFLITE_OPS)
    with pytest.raises(UnsupportedOperatorError):
        api.compile(path)


def test_unsupported_operator_after_supported_ones(tmp_path):
    """The second operator of a graph is unsupported: the node index and tensor name are reported."""
    mb = T._ModelBuilder("adaptc test: relu then sin")
    x = mb.input((1, 8), np.float32, "input")
    mid = mb.tensor((1, 8), np.float32, "relu_out")
    y = mb.output((1, 8), np.float32, "final/sin")
    mb.op(T._OP.RELU, 1, [x], [mid])
    mb.op(T._OP.SIN, 1, [mid], [y])
    path = tmp_path / "two.tflite"
    path.write_bytes(mb.finish())
    with pytest.raises(UnsupportedOperatorError, match="SIN") as exc:
        load(path)
    assert exc.value.node == "operator #1 -> final/sin"


# ------------------------------------------------------------------------------------ ONNX

def _onnx_model(op_type="Relu", input_dims=(1, 3, 4, 4), extra_nodes=()):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(input_dims))
    nodes = [*extra_nodes, helper.make_node(op_type, ["x" if not extra_nodes else "mid"], ["y"], name="the_node")]
    graph = helper.make_graph(nodes, "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_onnx_unsupported_operator(tmp_path):
    path = tmp_path / "sin.onnx"
    path.write_bytes(_onnx_model("Sin").SerializeToString())
    with pytest.raises(UnsupportedOperatorError) as exc:
        load(path)
    err, msg = exc.value, str(exc.value)
    assert err.op == "Sin" and err.node == "the_node"
    assert str(path) in msg and "Sin" in msg and "the_node" in msg
    assert err.supported == sorted(ONNX_OPS)
    for supported in ONNX_OPS:
        assert supported in msg


def test_onnx_supported_model_loads(tmp_path):
    """Control for the two tests around it: the same tiny graph with Relu compiles and runs."""
    path = tmp_path / "relu.onnx"
    path.write_bytes(_onnx_model("Relu").SerializeToString())
    m = api.compile(path)
    x = np.random.default_rng(0).normal(size=m.input.shape).astype(np.float32)
    np.testing.assert_allclose(m.run(x).reshape(-1), np.maximum(x, 0).reshape(-1), rtol=0, atol=0)


@pytest.mark.parametrize("dims", [("N", 3, 4, 4), (1, 3, "H", 4)])
def test_onnx_dynamic_dim(tmp_path, dims):
    path = tmp_path / "dynamic.onnx"
    path.write_bytes(_onnx_model("Relu", dims).SerializeToString())
    with pytest.raises(DynamicShapeError) as exc:
        load(path)
    err = exc.value
    assert err.path == str(path) and err.tensor == "x"
    assert str(path) in str(err) and "'x'" in str(err) and "input_shapes" in str(err)
    # the documented way out
    loaded = load(path, input_shapes={"x": (1, 3, 4, 4)})
    assert loaded.info.inputs[0].shape == (1, 3, 4, 4)


def test_truncated_onnx(tmp_path):
    data = _onnx_model("Relu").SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    _assert_load_error(path, "ONNX")


def test_garbage_onnx(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(2).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    _assert_load_error(path)


# ---------------------------------------------------------------------------------- inputs

@pytest.fixture(scope="module")
def small_int8(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("small") / "conv.tflite"
    path.write_bytes(T.conv2d_model((1, 6, 6, 2), rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8), None,
                                    (0.05, 0), (np.full(3, 0.01), 0), (0.1, 0)))
    return api.compile(path)


@pytest.fixture(scope="module")
def small_f32(tmp_path_factory):
    path = tmp_path_factory.mktemp("smallf") / "relu.tflite"
    path.write_bytes(T.relu_model_f32((1, 10)))
    return api.compile(path)


@pytest.mark.parametrize("bad", [
    np.zeros((1, 6, 6, 3), np.int8),          # wrong channels
    np.zeros((6, 6, 2), np.int8),             # missing batch axis
    np.zeros((2, 6, 6, 2), np.int8),          # wrong batch
    np.zeros(72, np.int8),                    # flat, right size
], ids=["channels", "rank", "batch", "flat"])
def test_run_wrong_shape(small_int8, bad):
    with pytest.raises(InputError, match="shape"):
        small_int8.run(bad)
    with pytest.raises(InputError, match="shape"):
        small_int8.reference(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16, np.int32, np.float64])
def test_run_wrong_dtype_int8_model(small_int8, dtype):
    bad = np.zeros((1, 6, 6, 2), dtype)
    with pytest.raises(InputError, match="int8") as exc:
        small_int8.run(bad)
    assert "quantize_input" in str(exc.value)
    with pytest.raises(InputError):
        small_int8.reference(bad)


@pytest.mark.parametrize("dtype", [np.float64, np.int8, np.float16])
def test_run_wrong_dtype_float_model(small_f32, dtype):
    with pytest.raises(InputError, match="float32"):
        small_f32.run(np.zeros((1, 10), dtype))


def test_run_python_list_is_checked(small_f32):
    with pytest.raises(InputError):
        small_f32.run([[0.0] * 10])       # np.asarray gives float64


def test_right_input_still_runs(small_int8):
    """After the refusals above the model still runs (non-contiguous input accepted)."""
    x = np.random.default_rng(4).integers(-128, 128, (1, 6, 6, 4), dtype=np.int8)[..., ::2]
    assert not x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(small_int8.run(x), small_int8.reference(x))


# ---------------------------------------------------------------------------------- export

def _leftovers(directory: Path):
    return [p.name for p in directory.iterdir() if ".tmp-" in p.name]


def test_export_parent_is_a_file(small_int8, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    with pytest.raises(OSError):
        small_int8.export(blocker / "out")
    assert blocker.read_text() == "I am a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    assert _leftovers(tmp_path) == []


def test_export_target_is_a_file(small_int8, tmp_path):
    target = tmp_path / "out"
    target.write_text("not a directory")
    with pytest.raises(OSError):
        small_int8.export(target)
    assert target.read_text() == "not a directory"
    assert _leftovers(tmp_path) == []


def test_export_failure_mid_write_leaves_nothing(small_int8, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cortex_m_model.json, "dumps", boom)
    target = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk on fire"):
        small_int8.export(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_export_failure_keeps_existing_directory(small_int8, tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "report.json").write_text("old report")
    (target / f"{small_int8.prefix}.c").write_text("old source")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt   # BaseException: also cleaned up

    monkeypatch.setattr(cortex_m_model.json, "dumps", boom)
    with pytest.raises(KeyboardInterrupt):
        small_int8.export(target)
    assert (target / "report.json").read_text() == "old report"
    assert (target / f"{small_int8.prefix}.c").read_text() == "old source"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_export_succeeds_after_failure(small_int8, tmp_path, monkeypatch):
    import json

    with monkeypatch.context() as mp:
        mp.setattr(cortex_m_model.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(ValueError("nope")))
        with pytest.raises(ValueError):
            small_int8.export(tmp_path / "out")
    out = small_int8.export(tmp_path / "out")
    assert json.loads((out / "report.json").read_text())["macs"] == small_int8.program.macs
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------- every unsupported operator at once

def _chain_tflite(ops):
    """A float TFLite chain x -> op -> ... of single-input element-wise builtins."""
    mb = T._ModelBuilder("adaptc test: several unsupported ops")
    t = mb.input((1, 8), np.float32, "input")
    for i, op in enumerate(ops):
        y = mb.output((1, 8), np.float32, f"out{i}") if i == len(ops) - 1 else mb.tensor((1, 8), np.float32,
                                                                                          f"t{i}")
        mb.op(op, 1, [t], [y])
        t = y
    return mb.finish()


def test_every_unsupported_tflite_operator_in_one_error(tmp_path):
    """Two unsupported kinds (one twice) among supported ones: one error lists each operator with
    its count and nodes, before any compile work; ``adaptc info`` shows the same list."""
    from click.testing import CliRunner

    from adaptc.cli import main
    from adaptc.loader import unsupported

    path = tmp_path / "many.tflite"
    path.write_bytes(_chain_tflite([T._OP.RELU, T._OP.REVERSE_V2, T._OP.RELU, T._OP.ZEROS_LIKE, T._OP.REVERSE_V2]))
    with pytest.raises(UnsupportedOperatorError) as exc:
        load(path)
    err, msg = exc.value, str(exc.value)
    assert [(op, node) for op, node, _ in err.findings] == [
        ("REVERSE_V2", "operator #1 -> t1"), ("ZEROS_LIKE", "operator #3 -> t3"), ("REVERSE_V2", "operator #4 -> out4")]
    assert "3 unsupported operators: REVERSE_V2 x2 at 'operator #1 -> t1', 'operator #4 -> out4'; " \
           "ZEROS_LIKE x1 at 'operator #3 -> t3'" in msg
    assert (err.op, err.node) == ("REVERSE_V2", "operator #1 -> t1")
    assert unsupported(path) == err.findings
    res = CliRunner().invoke(main, ["info", str(path)])
    assert res.exit_code == 0, res.output
    assert "5 operators" in res.output and "RELU x2, REVERSE_V2 x2, ZEROS_LIKE x1" in res.output
    assert "unsupported: 3 operator(s)" in res.output and "REVERSE_V2 x2" in res.output
    assert "operator #4 -> out4" in res.output


def test_every_unsupported_onnx_operator_in_one_error(tmp_path):
    """Unsupported ONNX op types and an operator variant (a mean over axes that are not
    neighbours) together."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 1])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Erf", ["a"], ["b"], name="erf_1"),
             helper.make_node("Erf", ["b"], ["c"], name="erf_2"),
             helper.make_node("ReduceMean", ["c"], ["y"], name="channel_mean", axes=[1, 3], keepdims=1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "many.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedOperatorError) as exc:
        load(path)
    msg = str(exc.value)
    assert "3 unsupported operators: Erf x2 at 'erf_1', 'erf_2'; ReduceMean x1 at 'channel_mean' (ReduceMean " \
           "over axes [1, 3] of a 4-D tensor" in msg
    assert [f[0] for f in exc.value.findings] == ["Erf", "Erf", "ReduceMean"]
