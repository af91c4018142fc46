"""InsertGates: a model's exit heads become gates and ``relax.If`` control flow.

Requires: a composite module (after FuseFloatOps, or LegalizeQDQ for int8) whose ``main(x)``
returns a tuple of exit heads ordered shallow to deep, the last the final classifier -- each a
classifier with shape [1, classes], all with the same classes and dtype.

Ensures: ``main(x, level)`` -- ``level`` an int32 scalar, the deepest exit allowed -- returns
``(logits, exit)``: the logits of the exit taken and its index (int32 scalar). What runs before
gate i is the dependency closure of head i less what earlier segments computed (never a
positional cut of the binding list: an importer may order deep layers before a shallow head).
Gate i is a call to the composite ``adaptc.qgate`` (int8 heads; integer-only, see
adaptc.gates) or ``adaptc.gate_f32``, and the deeper segments sit in the else branch of an
``If`` on its result, so they are not evaluated when the sample exits. The final exit has a
gate too, threshold -inf (INT32_MIN): its result is unused in Relax, and the C target takes
the confidence of the final head from it. Plain binding blocks
throughout (Relax forbids If inside dataflow blocks).

Validation (InputError): heads that are not classifiers; exits that are not nested -- the part
of head i that deeper heads reuse must be computed by head i + 1 (each trunk a prefix of the
next); a head that needs nothing beyond the previous one's layers, or -- sharing layers with it --
fewer layers and fewer weights in all (not ordered shallow to deep; fewer layers alone is a
heavier head before a light final classifier, and heads that share nothing are a cascade);
a head that deeper layers read (all heads share the caller's logits buffer).

Parameters: ``criterion`` (adaptc.gates.CRITERIA); ``thresholds`` -- one per gate (exits but the
last), in real units of the criterion (float heads) or already as integer confidences (int8
heads, ``adaptc.gates.int_threshold``); ``scales`` -- each int8 head's output scale (None for
float heads); ``path`` for messages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax

from adaptc import gates, tvm_compat
from adaptc.errors import InputError
from adaptc.qops import CompositeCall, build_function, composite_name


@dataclass
class ExitPlan:
    """Which of main's bindings each segment runs (indices into tvm_compat.bindings(main), in
    order), and the head each exit returns."""

    segments: list[list[int]]
    heads: list                  # Relax vars, one per exit
    classes: int
    dtype: str


def _describe(mod, b) -> str:
    return f"{composite_name(mod, b.value) or tvm_compat.op_name(b.value) or 'value'} ({b.var.name})"


def plan_exits(mod, path: str = "<module>") -> ExitPlan:
    """Analyze main's result tuple as exits; InputError when it cannot be (module docstring)."""
    func = mod["main"]
    bindings = tvm_compat.bindings(func)
    heads = tvm_compat.results(func)
    if len(heads) < 2:
        raise InputError(f"{path}: exits need a model with at least two outputs (exit heads, shallow to deep); "
                         f"this one has {len(heads)}")
    shapes = []
    for i, h in enumerate(heads):
        ty = h.ty
        shape = tvm_compat.shape_of(ty) if isinstance(ty, relax.TensorType) else None
        if shape is None or len(shape) != 2 or shape[0] != 1 or shape[1] < 2:
            raise InputError(f"{path}: output {i} ({tvm_compat.var_name(h)}) has shape "
                             f"{list(shape) if shape else ty}: an exit head must be a classifier "
                             "with shape [1, classes]")
        shapes.append((shape, tvm_compat.dtype_of(ty)))
    if len(set(shapes)) != 1:
        kinds = ", ".join(f"{list(s)} {d}" for s, d in shapes)
        raise InputError(f"{path}: exit heads differ in shape or type ({kinds}); "
                         "every exit must classify into the same classes")
    index = {b.var: i for i, b in enumerate(bindings)}
    deps = [[index[v] for v in relax.analysis.free_vars(b.value) if v in index] for b in bindings]

    def closure(var) -> set[int]:
        todo, seen = [index[var]] if var in index else [], set()
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo.extend(deps[i])
        return seen

    closures = [closure(h) for h in heads]
    sizes = [sum(_elements(a) for a in getattr(b.value, "args", [])) for b in bindings]

    def weights(steps: set[int]) -> int:
        return sum(sizes[i] for i in steps)

    for i in range(len(heads) - 1):
        later = set().union(*closures[i + 1:])
        missing = sorted((closures[i] & later) - closures[i + 1])
        if missing:
            j = next(j for j in range(i + 2, len(heads)) if missing[0] in closures[j])
            raise InputError(f"{path}: exits are not nested: exit {i} and exit {j} both need "
                             f"{_describe(mod, bindings[missing[0]])}, which exit {i + 1} does not compute; "
                             "each head's trunk must be a prefix of the next head's")
        if closures[i + 1] <= closures[i]:
            raise InputError(f"{path}: exit {i + 1} needs no layer beyond exit {i}'s; exits must be ordered "
                             "shallow to deep, the final classifier last")
        if (closures[i] & closures[i + 1] and len(closures[i + 1]) < len(closures[i])
                and weights(closures[i + 1]) < weights(closures[i])):  # fewer layers alone: a heavy head
            raise InputError(f"{path}: exit {i + 1} ({tvm_compat.var_name(heads[i + 1])}) runs {len(closures[i + 1])} "
                             f"layers, exit {i} ({tvm_compat.var_name(heads[i])}) {len(closures[i])}; exits must be "
                             "ordered shallow to deep, the final classifier last")
    for i, h in enumerate(heads[:-1]):      # every head writes the caller's one logits buffer
        if h in index and any(index[h] in deps[k] for k in set().union(*closures[i + 1:])):
            raise InputError(f"{path}: exit {i}'s head {tvm_compat.var_name(h)} feeds deeper layers; an exit head "
                             "must be a classifier output that nothing else reads")
    segments, done = [], set()
    for c in closures:
        segments.append(sorted(c - done))
        done |= c
    return ExitPlan(segments, heads, shapes[0][0][1], shapes[0][1])


def _elements(arg) -> int:
    """Elements of a constant argument (a layer's weights); 0 for anything else."""
    if not tvm_compat.is_constant(arg):
        return 0
    value = getattr(arg, "value", None)
    return int(np.prod(value.shape)) if hasattr(value, "shape") else 0


def InsertGates(criterion: str, thresholds, scales=None, path: str = "<module>"):
    """Lower exits to gates and If (see module docstring)."""
    gates.check(criterion)

    @tvm_compat.module_pass("adaptc.InsertGates")
    def _pass(mod):
        return _insert(mod, criterion, list(thresholds), scales, path)

    return _pass


def _insert(mod, criterion, thresholds, scales, path):
    plan = plan_exits(mod, path)
    n = len(plan.heads)
    if len(thresholds) != n - 1:
        raise InputError(f"{path}: {n} exits need {n - 1} thresholds (the last exit has no gate), "
                         f"got {len(thresholds)}")
    func = mod["main"]
    bindings = tvm_compat.bindings(func)
    int8 = plan.dtype == "int8"
    if int8 and (scales is None or len(scales) != n):
        raise InputError(f"{path}: int8 exit heads need their output scales (one per exit)")
    (param,) = func.params
    x = relax.Var(param.name, param.ty)
    level = relax.Var("level", tvm_compat.tensor_type((), "int32"))
    new_of = {param: x}
    bb = relax.BlockBuilder(mod)
    gate_fns = []
    never = -2**31 if int8 else -np.inf        # the final exit's gate: its confidence, always leaving
    for i in range(n):
        tables = gates.tables(criterion, scales[i]) if int8 else []
        t = thresholds[i] if i < n - 1 else never
        call = CompositeCall("adaptc.qgate" if int8 else "adaptc.gate_f32", [], tables,
                             {"criterion": criterion, "exit": i, "threshold": int(t) if int8 else float(t),
                              **({"scale_q16": gates.scale_q16(scales[i])} if int8 and criterion == "entropy" else {})},
                             (), "bool", f"gate of exit {i} ({criterion})", ["exp_table", "ln_table"][:len(tables)])
        fn = build_function(call, [plan.heads[i].ty, level.ty])
        gate_fns.append((bb.add_func(fn, f"gate_{i}"), tables))
    out_ty = relax.TupleType([plan.heads[-1].ty, level.ty])

    def sub(expr):
        return new_of.get(expr, expr) if isinstance(expr, relax.Var) else expr

    def segment(i):
        binds = []
        for k in plan.segments[i]:
            b = bindings[k]
            v = b.value
            if isinstance(v, relax.Var):
                value = sub(v)
            elif isinstance(v, relax.Call):
                value = relax.Call(v.op, [sub(a) for a in v.args], v.attrs, v.ty_args)
            else:
                raise InputError(f"{path}: cannot place {_describe(mod, b)} in an exit segment")
            var = relax.Var(b.var.name, b.var.ty)
            new_of[b.var] = var
            binds.append(relax.VarBinding(var, value))
        head = sub(plan.heads[i])
        leave = relax.Tuple([head, relax.const(np.int32(i))])
        gv, tables = gate_fns[i]
        cond = relax.Var(f"gate{i}", tvm_compat.tensor_type((), "bool"))
        binds.append(relax.VarBinding(cond, relax.Call(gv, [head, level] + [relax.const(t) for t in tables])))
        if i == n - 1:
            return relax.SeqExpr([relax.BindingBlock(binds)], leave)
        result = relax.Var(f"exit{i}", out_ty)
        binds.append(relax.VarBinding(result, relax.If(cond, relax.SeqExpr([], leave), segment(i + 1))))
        return relax.SeqExpr([relax.BindingBlock(binds)], result)

    body = segment(0)
    attrs = {k: v for k, v in tvm_compat.attrs_dict(func).items() if k != "params"}
    attrs.update({"num_input": 2, "adaptc.exits": n, "adaptc.gate_criterion": criterion})
    main = relax.Function([x, level], body, ret_ty=out_ty).with_attrs(attrs)
    return relax.transform.Normalize()(tvm_compat.replace_function(bb.get(), "main", main))
