"""Network cascades (network selection, Bolukbasi et al. 2017): run a cheap network, and a costly
one only when the cheap one is unsure.

``combine`` joins two or more ONNX classifiers that take the same input into one multi-output
model: each member's names prefixed ``member<i>_``, one shared input, the members' logits as the
outputs, cheapest first. Their closures share nothing, so each exit's segment is one whole
member: ``adaptc.compile([small, big], cascade=True, calibration=(x, y))`` compiles it as
``exits=True`` does -- a gate after each member but the last, utilization levels, the controller,
the simulator's cost per level, one arena for the whole cascade (the planner shares it where
lifetimes allow), thresholds calibrated on the labelled data. ``result.exit`` is the member that
answered. ``member_quantization``: a weight format per member (e.g. pot4 small, int8 big).
"""
from __future__ import annotations

from pathlib import Path

from .errors import InputError


def combine(paths, directory) -> Path:
    """Write the cascade of the ONNX models ``paths`` (in running order) to ``directory``; its path."""
    import onnx
    from onnx import compose, helper

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise InputError(f"a cascade needs two or more models, got {len(paths)}")
    for p in paths:
        if p.suffix.lower() != ".onnx":
            raise InputError(f"{p}: cascade members are ONNX classifiers (.onnx)")
    models = [onnx.load(p) for p in paths]
    signatures = []
    for p, m in zip(paths, models):
        inits = {t.name for t in m.graph.initializer}
        inputs = [i for i in m.graph.input if i.name not in inits]
        if len(inputs) != 1 or len(m.graph.output) != 1:
            raise InputError(f"{p}: a cascade member has one input and one output (a classifier); it has "
                             f"{len(inputs)} input(s) and {len(m.graph.output)} output(s)")
        signatures.append((inputs[0].type.SerializeToString(), m.graph.output[0].type.SerializeToString()))
    for p, sig in zip(paths[1:], signatures[1:]):
        if sig[0] != signatures[0][0]:
            raise InputError(f"{p}: its input differs from {paths[0].name}'s; cascade members take the same input")
        if sig[1] != signatures[0][1]:
            raise InputError(f"{p}: its output differs from {paths[0].name}'s; cascade members classify the "
                             "same classes")
    shared = next(i for i in models[0].graph.input if i.name not in {t.name for t in models[0].graph.initializer})
    nodes, inits, outputs, value_info = [], [], [], []
    for i, m in enumerate(models):
        original = next(x.name for x in m.graph.input if x.name not in {t.name for t in m.graph.initializer})
        m = compose.add_prefix(m, f"member{i}_")
        g = m.graph
        for node in g.node:
            for k, name in enumerate(node.input):
                if name == f"member{i}_{original}":
                    node.input[k] = shared.name
        nodes.extend(g.node)
        inits.extend(g.initializer)
        outputs.extend(g.output)
        value_info.extend(g.value_info)
    opsets = {}
    for m in models:
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    graph = helper.make_graph(nodes, "_".join(p.stem for p in paths) + "_cascade", [shared], outputs, inits,
                              value_info=value_info)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                            ir_version=max(m.ir_version for m in models))
    onnx.checker.check_model(out)
    path = Path(directory) / f"{graph.name}.onnx"
    onnx.save(out, path)
    return path
LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def member_layers(paths) -> list[int]:
    """How many conv2d / dense layers each member has (ONNX Conv, ConvTranspose, Gemm, MatMul
    with a constant weight): the numbering of ``PoT(layers=...)`` runs through them member by
    member, in the cascade's order."""
    import onnx

    counts = []
    for p in paths:
        g = onnx.load(p).graph
        weights = {t.name for t in g.initializer}
        counts.append(sum(1 for n in g.node if n.op_type in LAYER_OPS and len(n.input) > 1 and n.input[1] in weights))
    return counts


def member_quantization(paths, formats):
    """``quantize=`` for a cascade whose members take one weight format each ("int8", "pot2" ..
    "pot5"): a PoT config (power-of-two activation scales) whose per-layer table gives every
    member's layers its format; all "int8": TFLite's int8 scheme."""
    from . import quantization as Q

    if len(formats) != len(paths):
        raise InputError(f"quantize= for a cascade: one format per member ({len(paths)}), got {len(formats)}")
    parsed = [Q.parse(f) for f in formats]
    for f, q in zip(formats, parsed):
        if not isinstance(q, (Q.Int8, Q.PoT)) or (isinstance(q, Q.PoT) and q.layers):
            raise InputError(f"quantize= for a cascade member: 'int8' or 'pot2' .. 'pot5', got {f!r}")
    if all(isinstance(q, Q.Int8) for q in parsed):
        return Q.Int8()
    base = next(q.bits for q in parsed if isinstance(q, Q.PoT))
    table, start = {}, 0
    for q, n in zip(parsed, member_layers(paths)):
        fmt = "int8" if isinstance(q, Q.Int8) else q.bits
        if fmt != base:
            table.update({i: fmt for i in range(start, start + n)})
        start += n
    return Q.PoT(bits=base, layers=table)
