"""What a model file holds, read without compiling (adaptc.summary, ``adaptc info``); the early
budget check of ``adaptc.compile`` built on it; ``--input-shape`` / ``input_shapes=``.

* info names every layer of every zoo model (the file's own operator / node and output names,
  read here with the onnx and tflite packages), on models that compile and models that do not;
* the MACs read from the file equal the compiled program's on small models of every kind of
  multiplying layer (conv, depthwise, dense, LSTM, GRU), and differ where stated (a MatMul of two
  activations: the program counts no MACs for it);
* the weight and RAM estimates are lower bounds of the compiled figures;
* a model whose weights exceed the board's flash is refused with MemoryBudgetError before the
  passes run; reading a file imports no TVM.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import adaptc
import adaptc.api as api
import paths
from adaptc.cli import main
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.errors import DynamicShapeError, InputError, MemoryBudgetError
from adaptc.summary import inspect, weight_bits

MLPERF = Path("/work/shared/models/mlperf_tiny")
MODELS = sorted([*paths.DATA.glob("zoo/*.tflite"), *paths.DATA.glob("zoo/*.onnx"), *paths.DATA.glob("*.tflite"),
                 *paths.DATA.glob("*.onnx"), *paths.DATA.glob("torch_rnn/*.onnx"), *MLPERF.glob("*.tflite"),
                 data_path("digits_exits.onnx")])


def file_layers(path: Path) -> list[list[str]]:
    """Each layer's name and output names, as the file stores them (read without adaptc)."""
    if path.suffix == ".onnx":
        return [[n for n in (node.name, *node.output) if n] for node in onnx.load(path).graph.node]
    import tflite

    sub = tflite.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    return [[sub.Tensors(int(k)).Name().decode() for k in sub.Operators(i).OutputsAsNumpy()]
            for i in range(sub.OperatorsLength())]


def info(*args) -> str:
    res = CliRunner().invoke(main, ["info", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def test_every_model_file_is_here():
    assert len(MODELS) >= 20 and {p.suffix for p in MODELS} == {".onnx", ".tflite"}


@pytest.mark.parametrize("path", MODELS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_info_names_every_layer(path):
    out = info(path)
    s = inspect(path)
    layers = file_layers(path)
    assert len(s.layers) == len(layers)
    assert all(list(lay.outputs) == names[-len(lay.outputs):] for lay, names in zip(s.layers, layers))
    missing = [n for names in layers for n in names if n not in out]
    assert not missing, missing
    assert f"{len(s.layers)} operators, {s.macs:,} MACs, {s.weight_bytes:,} B of constants" in out
    assert "relax" not in out.lower()                     # TVM's operators are no longer listed
    for t in (*s.inputs, *s.outputs):
        assert t.name in out
    for core in ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55"):
        assert f"    {core} " in out
    assert s.macs > 0 and s.weight_bytes > 0 and "unsupported: none" in out


SMALL = {                      # model: what its multiplying layers are
    "kws_ref_model.tflite": "int8 conv, depthwise, dense",
    "zoo/conv1d_sensor.tflite": "int8 conv over one spatial axis, dense",
    "zoo/lstm_kws.tflite": "int8 LSTM, dense",
    "zoo/torch_gru_kws.onnx": "float GRU, Gemm",
    "torch_rnn/lstm.onnx": "float LSTM of a raw torch export",
    "gap_exits.onnx": "float conv, Gemm, three outputs",
}


@pytest.mark.parametrize("name", SMALL)
def test_macs_and_bounds_agree_with_the_compiled_program(name):
    path = paths.DATA / name
    s = inspect(path)
    m = adaptc.compile(path, target="cortex-m4")
    outputs = [t.name for t in m.info.outputs]
    assert s.macs == m.program.macs, SMALL[name]
    assert s.weight_estimate(32, outputs) <= m.scheduled.weight_bytes
    assert s.ram_estimate(32, outputs) <= m.scheduled.arena_bytes + m.io_bytes


def test_bounds_of_a_calibrated_int8_build():
    x = digits()[0][:40]
    s = inspect(data_path("digits_exits.onnx"))
    m = adaptc.compile(data_path("digits_exits.onnx"), calibration=x)
    outputs = [t.name for t in m.info.outputs]
    bits = weight_bits(calibrated=True)
    assert bits == 8 and s.macs == m.program.macs
    assert s.weight_estimate(bits, outputs) <= m.scheduled.weight_bytes < 1.1 * s.weight_estimate(bits, outputs)
    assert s.weight_estimate(32, outputs) == 4 * s.weight_estimate(8, outputs)
    assert s.ram_estimate(bits, outputs) <= m.scheduled.arena_bytes + m.io_bytes


def _onnx(path, nodes, inputs, outputs, inits=()):
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(inits)),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_a_matmul_of_two_activations_counts_only_here(tmp_path):
    """The program counts MACs of convolutions, dense and recurrent layers; a MatMul of two
    activations (a Gram matrix here) is a batch matmul step with none."""
    path = _onnx(tmp_path / "gram.onnx",
                 [helper.make_node("Transpose", ["x"], ["xt"], name="t", perm=[0, 2, 1]),
                  helper.make_node("MatMul", ["x", "xt"], ["y"], name="gram")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4])])
    s = inspect(path)
    assert [lay.macs for lay in s.layers] == [0, 4 * 4 * 8]
    assert adaptc.compile(path).program.macs == 0
    assert s.weight_estimate() == 0 and s.weight_bytes == 0


def test_every_unsupported_operator_is_listed(tmp_path):
    """A model that does not compile is read all the same: its layers, MACs, and every operator
    in the way, marked on its layer and grouped at the end."""
    path = _onnx(tmp_path / "many.onnx",
                 [helper.make_node("Conv", ["x", "w"], ["a"], name="conv"),
                  helper.make_node("Erf", ["a"], ["b"], name="erf_1"),
                  helper.make_node("Erf", ["b"], ["c"], name="erf_2"),
                  helper.make_node("ReduceMean", ["c"], ["y"], name="channel_mean", axes=[1, 3], keepdims=1)],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 1])],
                 [numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")])
    s = inspect(path)
    assert [(op, node) for op, node, _ in s.unsupported] == [("Erf", "erf_1"), ("Erf", "erf_2"),
                                                              ("ReduceMean", "channel_mean")]
    assert [lay.problem is not None for lay in s.layers] == [False, True, True, True]
    assert s.macs == 2 * 4 * 4 * 27 and s.weight_bytes == 54 * 4
    out = info(path)
    assert "unsupported: 3 operator(s)" in out and "Erf x2" in out
    assert "ReduceMean x1 (ReduceMean over axes [1, 3]" in out
    for node in ("erf_1", "erf_2", "channel_mean"):
        assert f"{node} -> " in out and node in out.split("unsupported: 3")[1]
    assert "864" in out and "cortex-m4" in out


def _dense_stack(path, layers: int, width: int = 256):
    """Gemm + Relu layers of float32 width x width weights (and biases)."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits += [numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32) * 0.05, f"w{i}"),
                  numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}")]
        out = "y" if i == layers - 1 else f"h{i}"
        nodes += [helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [f"g{i}"], name=f"dense_{i}"),
                  helper.make_node("Relu", [f"g{i}"], [out], name=f"relu_{i}")]
        prev = out
    return _onnx(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], inits)


def test_fits_per_target(tmp_path):
    """786,432 B of float weights: over the 512 KiB of the Cortex-M3's and M55's boards, within
    the 2 MiB of the others; int8 (a quarter) fits every one."""
    s = inspect(_dense_stack(tmp_path / "dense.onnx", 3))
    assert s.weight_estimate(32) == 3 * 256 * 256 * 4 and s.weight_estimate(8) == 3 * 256 * 256
    m3 = s.fits("cortex-m3")
    assert not m3.fits and m3.status == "does not fit"
    assert str(m3) == "does not fit: weights 786,432 B > flash 524,288 B"
    assert s.fits("cortex-m4").status == "fits" and s.fits("cortex-m3", bits=8).fits
    assert s.fits("cuda") is None                         # no board, no budget
    out = info(tmp_path / "dense.onnx")
    assert out.count("does not fit: weights 786,432 B > flash 524,288 B") == 2      # M3, M55 as float32


def test_weight_bits_of_each_format():
    assert weight_bits(False) == 32 and weight_bits(False, "pot4") == 32      # no calibration: float
    assert weight_bits(True) == weight_bits(True, "int8") == 8
    assert weight_bits(True, adaptc.Int4()) == 4 and weight_bits(True, "pot3") == 3
    assert weight_bits(True, adaptc.PoT(bits=4, layers={0: "pot2", 1: "int8"})) == 2
    assert weight_bits(True, None, weight_budget=10_000) == 2


def test_too_large_refused_before_the_passes(tmp_path, monkeypatch):
    path = _dense_stack(tmp_path / "dense.onnx", 3)

    def no_passes(*args, **kwargs):
        raise AssertionError("the passes ran")

    monkeypatch.setattr(api, "pipeline", no_passes)
    with pytest.raises(MemoryBudgetError) as e:
        adaptc.compile(path, target="cortex-m3")
    msg = str(e.value)
    assert msg.startswith("dense does not fit cortex-m3 (Arduino Due (SAM3X8E)): its 196,608 weights at 4 B each "
                          "(estimated from the file before compiling; a lower bound) need 786,432 bytes of flash, "
                          "the board has 524,288: over by 262,144 bytes"), msg
    res = CliRunner().invoke(main, ["compile", str(path), "-t", "cortex-m3", "-o", str(tmp_path / "out")])
    assert res.exit_code == 1 and "over by 262,144 bytes" in res.output and not (tmp_path / "out").exists()
    # int8 weights (a quarter) are no longer refused early: compile reaches the passes
    x = np.random.default_rng(0).standard_normal((4, 1, 256)).astype(np.float32)
    with pytest.raises(AssertionError, match="the passes ran"):
        adaptc.compile(path, target="cortex-m3", calibration=x)
    with pytest.raises(AssertionError, match="the passes ran"):      # no flash budget for llvm
        adaptc.compile(path, target="llvm")


def test_reading_a_file_imports_no_tvm():
    code = ("import sys; from adaptc.summary import inspect; "
            f"s = inspect({str(paths.DATA / 'zoo' / 'tv_mnasnet.onnx')!r}); s.weight_estimate(8); s.ram_estimate(8); "
            "assert s.macs > 0; print(sorted(m for m in sys.modules if m.split('.')[0] == 'tvm'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


# ------------------------------------------------------------------- dynamic input shapes


@pytest.fixture
def dynamic_conv(tmp_path):
    """A conv over an input of dynamic batch: x [N, 3, 8, 8] -> [N, 4, 6, 6], 3,888 MACs per sample."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    return _onnx(tmp_path / "dynamic.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])], [w])


def test_dynamic_shape_error_says_how_to_fix_it(dynamic_conv):
    with pytest.raises(DynamicShapeError) as e:
        adaptc.compile(dynamic_conv)
    msg = str(e.value)
    assert "--input-shape x=1,3,8,8" in msg and "input_shapes={'x': (1, 3, 8, 8)}" in msg, msg
    res = CliRunner().invoke(main, ["compile", str(dynamic_conv), "-o", str(dynamic_conv.parent / "out")])
    assert res.exit_code == 1 and "--input-shape x=1,3,8,8" in res.output


def test_input_shapes_from_python_and_the_command_line(dynamic_conv):
    m = adaptc.compile(dynamic_conv, input_shapes={"x": (1, 3, 8, 8)})
    assert m.input.shape == (1, 3, 8, 8) and m.program.macs == 3888
    with pytest.raises(InputError, match="input_shapes"):
        adaptc.compile(adaptc.load(dynamic_conv, input_shapes={"x": (1, 3, 8, 8)}), input_shapes={"x": (1, 3, 8, 8)})
    out = dynamic_conv.parent / "out"
    for command in (["compile", "-o", str(out)], ["simulate", "--json"]):
        res = CliRunner().invoke(main, [*command[:1], str(dynamic_conv), "--input-shape", "x=1,3,8,8", *command[1:]])
        assert res.exit_code == 0, res.output
    assert (out / "dynamic.c").exists()
    unknown = info(dynamic_conv)
    assert "? (dynamic shapes) MACs" in unknown
    assert "x: float [?, 3, 8, 8] (dynamic: give --input-shape x=...)" in unknown
    assert "7,776 MACs" in info(dynamic_conv, "--input-shape", "x=2,3,8,8")
    for bad, said in (("x=1,a", "NAME=D1,D2,..."), ("x=0,3,8,8", "positive sizes"), ("1,3,8,8", "NAME=D1,D2,...")):
        res = CliRunner().invoke(main, ["info", str(dynamic_conv), "--input-shape", bad])
        assert res.exit_code == 2 and said in res.output, res.output
    res = CliRunner().invoke(main, ["info", str(dynamic_conv), "--input-shape", "image=1,3,8,8"])
    assert res.exit_code == 1 and "no input named 'image'; the inputs are x" in res.output
