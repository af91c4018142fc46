"""Identical inputs give byte-identical outputs: every file ``adaptc compile`` and ``m.export``
write -- C, firmware project, report.json -- is the same across two CLI processes (different
hash seeds, different working directories) and an in-process export. Nothing in them records a
time, a temporary name or a path other than the model's as given.

Models: an int8 TFLite (kept quantization), a float ONNX quantized post-training, and the
bundled digits CNN with calibrated early exits; for the llvm and cuda targets (the TVM library
and its plan; no GPU needed to build) the int8 TFLite and the digits CNN with exits."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
import adaptc.data
import paths

KWS = paths.DATA / "kws_ref_model.tflite"
DIGITS = adaptc.data.path("digits_exits.onnx")


def small_cnn(path: Path) -> Path:
    """A float ONNX CNN: (1, 1, 8, 8) -> Conv 3x3 (4) -> Relu -> MaxPool 2 -> Flatten -> Gemm (10)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    fc = numpy_helper.from_array((rng.standard_normal((10, 64)) * 0.1).astype(np.float32), "fc")
    fb = numpy_helper.from_array(np.zeros(10, np.float32), "fb")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, b, fc, fb])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def cli_compile(model: Path, cwd: Path, seed: str, *args) -> Path:
    """``adaptc compile MODEL -o out ARGS`` in a fresh process (``PYTHONHASHSEED=seed``) in ``cwd``."""
    cwd.mkdir()
    env = {**os.environ, "PYTHONHASHSEED": seed}
    r = subprocess.run([sys.executable, "-m", "adaptc.cli", "compile", str(model), "-o", "out", *args],
                       cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return cwd / "out"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    x, y, _, _ = adaptc.data.digits()
    np.save(d / "cal.npy", x[:64])
    np.savez(d / "cal.npz", x=x[:64], y=y[:64])
    return {"cnn": small_cnn(d / "small_cnn.onnx"), "npy": d / "cal.npy", "npz": d / "cal.npz"}


@pytest.mark.parametrize("case", ["int8-tflite", "float-onnx-ptq", "exits", "llvm-int8-tflite", "cuda-exits"])
def test_exports_are_byte_identical(case, data, tmp_path):
    x, y, _, _ = adaptc.data.digits()
    model, args, kwargs = {
        "int8-tflite": (KWS, [], {}),
        "float-onnx-ptq": (data["cnn"], ["--calibration", str(data["npy"])], {"calibration": x[:64]}),
        "exits": (DIGITS, ["--exits", "--calibration", str(data["npz"])],
                  {"exits": True, "calibration": (x[:64], y[:64])}),
        "llvm-int8-tflite": (KWS, ["--target", "llvm"], {"target": "llvm"}),
        "cuda-exits": (DIGITS, ["--target", "cuda", "--exits", "--calibration", str(data["npz"])],
                       {"target": "cuda", "exits": True, "calibration": (x[:64], y[:64])}),
    }[case]
    a = files(cli_compile(model, tmp_path / "a", "1", *args))
    b = files(cli_compile(model, tmp_path / "b", "2", *args))
    adaptc.compile(str(model), **kwargs).export(tmp_path / "c")
    c = files(tmp_path / "c")
    assert list(a) == list(b) == list(c)
    for name in a:
        assert a[name] == b[name], f"{name} differs between two CLI runs"
        assert a[name] == c[name], f"{name} differs between the CLI and m.export()"
    if case.startswith(("llvm", "cuda")):
        assert any(name.endswith(".so") for name in a) and any(name.endswith("_batched.json") for name in a)
        return
    assert "report.json" in a and len(a) > 5
    report = a["report.json"].decode()
    for leak in ("compile_seconds", str(tmp_path), ".tmp-"):
        assert leak not in report
