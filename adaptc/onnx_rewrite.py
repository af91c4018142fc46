"""Rewrites of an ONNX graph before TVM imports it: what an exporter leaves that has a simpler
exact form.

``fold_batch_norms(model)``: a BatchNormalization at inference (``training_mode`` 0) with
constant parameters is the per-channel affine map ``x * s + t``, ``s = scale / sqrt(var + eps)``,
``t = B - mean * s`` (computed in float64, stored as float32). After a Conv or ConvTranspose whose
output nothing else reads and whose weights are constant, it folds into that layer: its filters
scaled by ``s`` along their output channels, its bias ``b * s + t`` (the usual Conv+BN fusion of
exporters; PyTorch leaves it undone with ``do_constant_folding=False`` or in training-mode
exports); elsewhere it becomes ``Mul(x, s)`` and ``Add(_, t)`` with ``s``, ``t`` shaped to
broadcast along axis 1. The model is not changed; a new one is returned.
"""
from __future__ import annotations

import numpy as np


def fold_batch_norms(model):
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    if not any(n.op_type == "BatchNormalization" for n in graph.node):
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in graph.node]
    producer = {out: n for n in copies for out in n.output}
    rank = _ranks(model)
    used = {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
    nodes = []

    def fresh(base: str) -> str:
        k, name = 0, base
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    def const(base: str, value: np.ndarray) -> str:
        name = fresh(base)
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    for node in copies:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        params = list(node.input[1:5])
        if node.op_type != "BatchNormalization" or attrs.get("training_mode", 0) or len(params) != 4 \
                or not all(p in inits for p in params) or len([o for o in node.output if o]) != 1:
            nodes.append(node)
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[p]).astype(np.float64) for p in params)
        s = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        t = beta - mean * s
        x, y = node.input[0], node.output[0]
        prev = producer.get(x)
        if prev is not None and prev.op_type in ("Conv", "ConvTranspose") and readers.get(x) == 1 \
                and x not in outputs and prev.input[1] in inits and (len(prev.input) < 3 or prev.input[2] in inits):
            w = numpy_helper.to_array(inits[prev.input[1]]).astype(np.float64)
            if prev.op_type == "Conv":
                w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
            else:                                  # ConvTranspose: [C_in, C_out / group, k...]
                group = next((helper.get_attribute_value(a) for a in prev.attribute if a.name == "group"), 1)
                per = w.shape[1]
                w = (w.reshape(group, -1, per, *w.shape[2:]) *
                     s.reshape(group, 1, per, *([1] * (w.ndim - 2)))).reshape(w.shape)
            b = numpy_helper.to_array(inits[prev.input[2]]).astype(np.float64) if len(prev.input) > 2 and \
                prev.input[2] else np.zeros_like(s)
            data = prev.input[0]
            del prev.input[:]
            prev.input.extend([data, const(f"{node.name or y}_w", w), const(f"{node.name or y}_b", b * s + t)])
            prev.output[0] = y
            continue
        shape = (-1,) + (1,) * max(rank.get(x, 4) - 2, 0)
        scaled = fresh(f"{y}_scaled")
        nodes.append(helper.make_node("Mul", [x, const(f"{node.name or y}_s", s.reshape(shape))], [scaled]))
        nodes.append(helper.make_node("Add", [scaled, const(f"{node.name or y}_t", t.reshape(shape))], [y]))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _ranks(model) -> dict[str, int]:
    """The rank of every value shape inference knows."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:                                          # noqa: BLE001 -- ranks are a hint
        return {}
    return {vi.name: len(vi.type.tensor_type.shape.dim)
            for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
            if vi.type.tensor_type.HasField("shape")}
