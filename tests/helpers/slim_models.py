"""Small slimmable ONNX models (adaptc.widths) written with onnx.helper: one network's widths.

``slimmable(widths, seed)`` returns the float ONNX model of each width (narrowest first) of

    conv 3x3 1->C1, ReLU  ->  conv 3x3 C1->C2, ReLU  ->  exit 0: global average pool, dense C2->10
    -> depthwise 3x3 C2, ReLU  ->  exit 1: global average pool, dense C2->10

with C1 = round(8 w), C2 = round(16 w): every weight tensor at width w is the prefix
``full[:out, :in]`` of the widest's, every bias its own (as switchable batch norm folded in would
make it). Each output channel's largest weight sits at input channel 0, which every width keeps, so
that int8 post-training quantization (per-channel max |w| / 127) gives every width the same codes
-- the nesting adaptc.widths checks. ``break_nesting``: the narrowest width's first conv differs in
one channel.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _weights(rng, shape, scale):
    w = rng.normal(0, scale, shape).astype(np.float32)
    o = shape[0]
    w[:, 0] = 0
    w[(slice(None), 0) + (0,) * (len(shape) - 2)] = np.sign(rng.normal(size=o)) * (np.abs(w).reshape(o, -1)
                                                                                  .max(axis=1) * 1.25 + 1e-3)
    return w


def full_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"conv0": _weights(rng, (8, 1, 3, 3), 0.5), "conv1": _weights(rng, (16, 8, 3, 3), 0.2),
            "fc0": _weights(rng, (10, 16), 0.5), "dw": _weights(rng, (16, 1, 3, 3), 0.5),
            "fc1": _weights(rng, (10, 16), 0.5)}


def width_model(w: dict[str, np.ndarray], c1: int, c2: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(1000 + seed)
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
        return name

    def conv(x, name, weight, groups=1):
        out = weight.shape[0]
        nodes.append(helper.make_node("Conv", [x, const(f"{name}_w", weight),
                                               const(f"{name}_b", rng.normal(0, 0.1, out))],
                                      [f"{name}_y"], pads=[1, 1, 1, 1], group=groups))
        nodes.append(helper.make_node("Relu", [f"{name}_y"], [f"{name}_r"]))
        return f"{name}_r"

    def head(x, name, weight):
        nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{name}_gap"]))
        nodes.append(helper.make_node("Flatten", [f"{name}_gap"], [f"{name}_flat"]))
        nodes.append(helper.make_node("Gemm", [f"{name}_flat", const(f"{name}_w", weight),
                                               const(f"{name}_b", rng.normal(0, 0.1, 10))], [name], transB=1))
        return name

    h = conv("image", "conv0", w["conv0"][:c1])
    h = conv(h, "conv1", w["conv1"][:c2, :c1])
    e0 = head(h, "exit0", w["fc0"][:, :c2])
    h = conv(h, "dw", w["dw"][:c2], groups=c2)
    e1 = head(h, "exit1", w["fc1"][:, :c2])
    graph = helper.make_graph(nodes, "slim", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info(e, TensorProto.FLOAT, [1, 10]) for e in (e0, e1)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def slimmable(directory, widths=(0.25, 0.5, 1.0), seed: int = 0, break_nesting: bool = False) -> list:
    """The ONNX file of each width in ``directory`` (module docstring), narrowest first."""
    w = full_weights(seed)
    paths = []
    for i, f in enumerate(widths):
        ws = {k: v.copy() for k, v in w.items()}
        if break_nesting and i == 0:
            ws["conv0"][1, 0, 1, 1] += 0.05
        path = directory / f"slim_w{round(f * 100):03d}.onnx"
        onnx.save(width_model(ws, max(1, round(8 * f)), max(1, round(16 * f)), i), str(path))
        paths.append(path)
    return paths
