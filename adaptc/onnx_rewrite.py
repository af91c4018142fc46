"""Rewrites of an ONNX graph before TVM imports it: what an exporter leaves that has a simpler
exact form. ``rewrite(model)`` applies ``REWRITES`` in order.

``bypass_constant_identities(model)``: every reader of an ``Identity`` (or a chain of them) of an
initializer or a Constant node's output reads that constant itself, and the Identity goes unless
it names a graph output. PyTorch's exporter writes such chains where two parameters are equal (an
untrained network's batch norms: every scale 1, every mean 0): one initializer, read through
Identity nodes. A reader that asks whether an input is an initializer (``fold_batch_norms``,
TVM's frontend for parameters) then sees the constant it is.

``fold_batch_norms(model)``: a BatchNormalization at inference (``training_mode`` 0) with
constant parameters (initializers or Constant nodes) is the per-channel affine map ``x * s + t``,
``s = scale / sqrt(var + eps)``, ``t = B - mean * s`` (computed in float64, stored as float32).
After a Conv or ConvTranspose whose output nothing else reads and whose weights are constant, it
folds into that layer: its filters scaled by ``s`` along their output channels, its bias
``b * s + t`` (the usual Conv+BN fusion of exporters; PyTorch leaves it undone with
``do_constant_folding=False`` or in training-mode exports); elsewhere it becomes ``Mul(x, s)`` and
``Add(_, t)`` with ``s``, ``t`` shaped to broadcast along axis 1. A BatchNormalization it leaves
(training mode, parameters computed at run time) the loader refuses (``_onnx_batch_norm_problems``).

No step changes its argument: each returns a new model, or the same one when it has nothing to do.
"""
from __future__ import annotations

import numpy as np


def rewrite(model):
    """``model`` after every step of ``REWRITES``, in order; it is not changed."""
    for step in REWRITES:
        model = step(model)
    return model


def bypass_constant_identities(model):
    import onnx

    graph = model.graph
    consts = {t.name for t in graph.initializer} | \
        {n.output[0] for n in graph.node if n.op_type == "Constant" and n.output}
    source: dict[str, str] = {}                # Identity output -> the constant it copies
    for node in graph.node:                    # in topological order (the ONNX checker's rule)
        if node.op_type == "Identity" and node.input and node.output:
            root = source.get(node.input[0], node.input[0])
            if root in consts:
                source[node.output[0]] = root
    if not source:
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    outputs = {o.name for o in graph.output}
    nodes = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output and node.output[0] in source \
                and node.output[0] not in outputs:
            continue
        for i, name in enumerate(node.input):
            node.input[i] = source.get(name, name)
        nodes.append(node)
    kept = [vi for vi in graph.value_info if vi.name not in source or vi.name in outputs]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return model


def fold_batch_norms(model):
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    if not any(n.op_type == "BatchNormalization" for n in graph.node):
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    inits.update({n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant"
                  and n.output and n.attribute and n.attribute[0].name == "value"})
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


REWRITES = (bypass_constant_identities, fold_batch_norms)
