"""Generated code and reports speak of the model's tensors, not TVM's ``gv`` / ``lv301``.

The importers' tables name each binding (tvm_compat.name_bindings); the names survive the passes
into the lowered program: every step's output -- what the C comments, the arena plan and
report.json's layers show -- is a tensor of the model file (as an identifier: TVM's CUDA code
generator makes C parameters of the names; tvm_compat.tensor_identifier), except the layout
transposes adaptc inserts itself (NCHW <-> NHWC), which have no tensor in the model. Known gap:
after post-training quantization a max pool's step keeps TVM's name (QuantizeInt8 + LegalizeQDQ
rebuild it from its unnamed inner binding); the weighted layers keep theirs.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import tflite

import adaptc
from adaptc.data import path as data_path
from adaptc.tvm_compat import tensor_identifier

TVM_NAME = re.compile(r"^(gv|lv)\d*$")


def onnx_tensors(path) -> set[str]:
    g = onnx.load(str(path)).graph
    return {tensor_identifier(o) for n in g.node for o in n.output} | {i.name for i in g.input}


def tflite_tensors(path) -> set[str]:
    m = tflite.Model.GetRootAsModel(open(path, "rb").read(), 0)
    sub = m.Subgraphs(0)
    return {tensor_identifier(sub.Tensors(i).Name().decode().split(";")[0]) for i in range(sub.TensorsLength())}


def step_names(m) -> list[tuple[str, str]]:
    return [(s.op, m.program.tensors[s.output].name) for s in m.program.steps]


@pytest.mark.parametrize("model, calibrate", [("digits_exits.onnx", False), ("digits_exits.onnx", True),
                                              ("kws_ref_model.tflite", False)])
def test_every_step_is_named_after_a_model_tensor(model, calibrate):
    path = data_path(model)
    tensors = onnx_tensors(path) if model.endswith(".onnx") else tflite_tensors(path)
    cal = np.random.default_rng(0).standard_normal((8, 1, 1, 8, 8)).astype(np.float32) if calibrate else None
    m = adaptc.compile(path, target="cortex-m4", calibration=cal)
    names = step_names(m)
    inserted = [(op, n) for op, n in names if n not in tensors]
    known_gap = ("adaptc.qmax_pool2d",) if calibrate else ()
    assert all(op == "adaptc.transpose" or op in known_gap for op, _ in inserted), inserted
    assert all(n in tensors for op, n in names if op in ("adaptc.qconv2d", "adaptc.qdense", "adaptc.conv2d_f32",
                                                         "adaptc.dense_f32", "adaptc.max_pool2d_f32"))
    c = m.files[f"{m.prefix}.c"] + m.files[f"{m.prefix}.h"]
    for _, n in names:
        if not TVM_NAME.match(n):
            assert f"({n})" in c or f" {n} " in c
    assert {lay["source"].rsplit("(", 1)[1].rstrip(")") for lay in m.report(memory=False)["layers"]} \
        <= tensors | {n for _, n in inserted}
