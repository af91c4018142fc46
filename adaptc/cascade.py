"""Network cascades (network selection, Bolukbasi et al. 2017): run a cheap network, and a costly
one only when the cheap one is unsure.

``combine`` joins two or more ONNX classifiers that take the same input into one multi-output
model: each member's names prefixed ``member<i>_``, one shared input, the members' logits as the
outputs, cheapest first. Their closures share nothing, so each exit's segment is one whole
member: ``adaptc.compile([small, big], cascade=True, calibration=(x, y))`` compiles it as
``exits=True`` does -- a gate after each member but the last, utilization levels, the controller,
the simulator's cost per level, one arena for the whole cascade (the planner shares it where
lifetimes allow), thresholds calibrated on the labelled data. ``result.exit`` is the member that
answered.
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
