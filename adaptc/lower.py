"""Relax -> Program: ``lower(mod, name)`` reads an integer (or float) composite module.

``main`` is a sequence of calls to ``adaptc.*`` composite functions and reshapes; each call
becomes a ``Step`` (adaptc.program), each reshape an alias of its input's storage, a
``permute_dims`` an ``adaptc.transpose`` step, a ``strided_slice`` an ``adaptc.slice`` step, a
``take`` of constant indices an ``adaptc.gather`` step and a ``concat`` ``adaptc.concat`` steps. A
gated
module (passes/insert_gates.py: ``main(x, level)`` with nested If) lowers to its exit segments in
order, each ended by its gate step.
"""
from __future__ import annotations

from tvm import relax

from . import tvm_compat
from .errors import UnsupportedOperatorError
from .exits import Controller
from .program import CONCAT_INPUTS, DTYPE_BYTES, GATE_OPS, Exit, Program, Step, Tensor, step_macs
from .qops import composite_name


def lower(mod, name: str, path: str = "<module>", io_names=None) -> Program:
    """Lower a composite module's ``main`` to a Program. A gated module (InsertGates: ``main(x,
    level)`` with nested If) lowers to its segments in order, each ended by its gate step;
    ``Program.exits`` says where each exit's segment ends. ``io_names``: (input names, output
    names) of the source model -- the program's inputs and outputs (a gated module: its exit
    heads) take them, so that generated code and reports speak of the model's tensors."""
    func = mod["main"]
    tensors: list[Tensor] = []
    storage: dict = {}           # relax var -> tensor id

    def new_tensor(var, kind="arena") -> int:
        ty = var.ty
        t = Tensor(len(tensors), tvm_compat.var_name(var), tvm_compat.shape_of(ty), tvm_compat.dtype_of(ty), kind)
        tensors.append(t)
        storage[var] = t.id
        return t.id

    gated = len(func.params) == 2 and func.attrs is not None and "adaptc.exits" in func.attrs
    level = func.params[1] if gated else None
    inputs = [new_tensor(p, "input") for p in func.params if not p.same_as(level)]
    steps: list[Step] = []
    exits: list[Exit] = []

    def lower_binding(b):
        value = b.value
        if isinstance(value, relax.Var):
            storage[b.var] = storage[value]
            return
        if gated and isinstance(value, relax.If):
            cond = storage.get(value.cond)
            if cond is None or steps[-1].output != cond:
                raise UnsupportedOperatorError(path, "If", b.var.name, ["If on the gate just computed"])
            then = value.true_branch.body
            exits.append(Exit(len(exits), storage[then.fields[0]], len(steps) - 1))
            walk(value.false_branch)
            storage[b.var] = None
            return
        op = composite_name(mod, value)
        if op is None:
            opn = tvm_compat.op_name(value)
            if opn in ("relax.reshape", "relax.squeeze", "relax.expand_dims") and value.args[0] in storage:
                storage[b.var] = storage[value.args[0]]   # same bytes, new shape
                return
            if opn == "relax.permute_dims" and value.args[0] in storage:
                src = value.args[0]
                shape = tvm_compat.shape_of(src.ty)
                axes = ([int(a) for a in value.attrs.axes] if value.attrs.axes is not None
                        else list(range(len(shape)))[::-1])
                out_id = new_tensor(b.var)
                steps.append(Step(len(steps), "adaptc.transpose", f"permute_dims ({b.var.name})",
                                  [storage[src]], out_id, {"axes": axes}, {},
                                  in_shapes=[shape], out_shape=tensors[out_id].shape))
                return
            if opn == "relax.strided_slice" and value.args[0] in storage:
                src = value.args[0]
                begin, strides = tvm_compat.strided_slice_view(value)
                out_id = new_tensor(b.var)
                steps.append(Step(len(steps), "adaptc.slice", f"strided_slice ({b.var.name})", [storage[src]], out_id,
                                  {"begin": begin, "strides": strides,
                                   "item_bytes": DTYPE_BYTES[tvm_compat.dtype_of(src.ty)]}, {},
                                  in_shapes=[tvm_compat.shape_of(src.ty)], out_shape=tensors[out_id].shape))
                return
            if opn == "relax.take" and value.args[0] in storage and tvm_compat.is_constant(value.args[1]):
                src = value.args[0]
                shape = tvm_compat.shape_of(src.ty)
                out_id = new_tensor(b.var)
                steps.append(Step(len(steps), "adaptc.gather", f"take ({b.var.name})", [storage[src]], out_id,
                                  {"axis": int(value.attrs.axis) % len(shape),
                                   "item_bytes": DTYPE_BYTES[tvm_compat.dtype_of(src.ty)]},
                                  {"indices": tvm_compat.constant_value(value.args[1])},
                                  in_shapes=[shape], out_shape=tensors[out_id].shape))
                return
            if opn == "relax.concat" and all(f in storage for f in value.args[0].fields):
                lower_concat(b.var, list(value.args[0].fields), int(value.attrs.axis))
                return
            raise UnsupportedOperatorError(path, str(opn or type(value).__name__), b.var.name,
                                           ["adaptc composites", "reshape"],
                                           "run the integer passes (adaptc.compile) before lowering")
        callee = mod[value.op]
        attrs = tvm_compat.plain_attrs(callee)
        acts = [a for a in value.args if not tvm_compat.is_constant(a) and not a.same_as(level)]
        consts = {p.name: tvm_compat.constant_value(a)
                  for p, a in zip(callee.params, value.args) if tvm_compat.is_constant(a)}
        in_ids = [storage[a] for a in acts]
        in_shapes = [tvm_compat.shape_of(a.ty) for a in acts]
        out_id = new_tensor(b.var, "gate" if op in GATE_OPS else "arena")
        out_shape = tensors[out_id].shape
        steps.append(Step(len(steps), op, f"{attrs.pop('source', op)} ({b.var.name})", in_ids, out_id,
                          attrs, consts, step_macs(op, attrs, in_shapes, out_shape, consts),
                          in_shapes=in_shapes, out_shape=out_shape))

    def lower_concat(var, parts, axis):
        """``adaptc.concat`` steps of at most CONCAT_INPUTS inputs each, chained for more."""
        rank = len(tvm_compat.shape_of(var.ty))
        axis %= rank
        item = DTYPE_BYTES[tvm_compat.dtype_of(var.ty)]
        ids, shapes = [storage[p] for p in parts], [tvm_compat.shape_of(p.ty) for p in parts]
        while ids:
            batch_ids, batch_shapes = ids[:CONCAT_INPUTS], shapes[:CONCAT_INPUTS]
            ids, shapes = ids[CONCAT_INPUTS:], shapes[CONCAT_INPUTS:]
            out_shape = list(batch_shapes[0])
            out_shape[axis] = sum(s[axis] for s in batch_shapes)
            if ids:                                       # a partial result, the next step's first input
                tid = len(tensors)
                tensors.append(Tensor(tid, f"{var.name}_part{len(steps)}", tuple(out_shape),
                                      tvm_compat.dtype_of(var.ty)))
                ids, shapes = [tid] + ids, [tuple(out_shape)] + shapes
            else:
                tid = new_tensor(var)
            steps.append(Step(len(steps), "adaptc.concat", f"concat ({var.name})", batch_ids, tid,
                              {"axis": axis, "item_bytes": item}, {}, in_shapes=batch_shapes,
                              out_shape=tuple(out_shape)))

    def walk(seq):
        for blk in seq.blocks:
            for b in blk.bindings:
                if not isinstance(b.value, relax.Tuple):     # the result tuple
                    lower_binding(b)

    walk(func.body)
    if not gated:
        results = tvm_compat.results(func)
    else:
        last = steps[-1]
        if last.op not in GATE_OPS:
            raise UnsupportedOperatorError(path, last.op, last.source, ["a gate at the end of the last segment"])
        exits.append(Exit(len(exits), last.inputs[0], len(steps) - 1))
        results = []
    outputs = []
    for f in results:
        tid = storage[f]
        shape = tvm_compat.shape_of(f.ty)
        if tensors[tid].kind == "input" or tid in outputs:
            # The output is (a reshape of) the input or another output: it needs its own bytes.
            src = tid
            tid = new_tensor(f)
            steps.append(Step(len(steps), "adaptc.transpose", f"copy ({f.name})", [src], tid,
                              {"axes": list(range(len(shape)))}, {}, in_shapes=[shape], out_shape=shape))
        tensors[tid].kind = "output"
        tensors[tid].shape = shape   # an aliased output takes the output's shape
        outputs.append(tid)
    for e in exits:              # every head writes the caller's logits buffer
        tensors[e.head].kind = "output"
    if exits:
        outputs = [exits[-1].head]
    if io_names is not None:
        for ids, names in ((inputs, io_names[0]), ([e.head for e in exits] if exits else outputs, io_names[1])):
            if len(ids) == len(names):
                for tid, n in zip(ids, names):
                    tensors[tid].name = n
    prog = Program(name, tensors, steps, inputs, outputs, exits=exits)
    if exits:
        thresholds = [steps[e.gate].attrs["threshold"] for e in exits[:-1]]
        prog.controller = Controller.default(thresholds, steps[exits[0].gate].attrs["criterion"],
                                             tensors[exits[0].head].dtype == "int8")
    return prog
