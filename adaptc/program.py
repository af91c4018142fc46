"""The lowered Program: what the C target renders and the simulator costs.

``lower(mod, name)`` reads an integer (or float) composite module -- ``main`` is a sequence of
calls to ``adaptc.*`` composite functions and reshapes -- and produces an ordered list of
``Step``s over ``Tensor``s, plus one memory plan for every intermediate tensor (the arena).
Reshapes produce no step: the result aliases its input's storage, so one tensor can be seen with
several shapes; each step records the shapes it reads and writes (``in_shapes``, ``out_shape``)
and kernels take their geometry from those. The model input and output are caller-owned buffers
and are not in the arena.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tvm import relax

from . import tvm_compat
from .errors import UnsupportedOperatorError
from .memory import MemoryPlanner
from .qops import composite_name

DTYPE_BYTES = {"int8": 1, "int32": 4, "float32": 4}


@dataclass
class Tensor:
    id: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str = "arena"              # "input" | "output" | "arena"
    offset: int = 0                  # arena offset (kind == "arena")

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * DTYPE_BYTES[self.dtype]


@dataclass
class Step:
    index: int
    op: str                          # composite name, e.g. "adaptc.qconv2d"
    source: str                      # what it came from (source ops, Relax binding)
    inputs: list[int]                # tensor ids
    output: int                      # tensor id
    attrs: dict                      # kernel parameters from the composite
    consts: dict[str, np.ndarray]    # flash tensors by parameter name
    macs: int = 0
    flash_bytes: int = 0             # constant bytes the target's kernel stores (set by the target)
    kernel: str = ""                 # C function the target chose (set by the target)
    variant: str = ""                # its kernel variant: "ref", "dsp", "mve" (set by the target)
    in_shapes: list = field(default_factory=list)   # activation shapes as this step reads them
    out_shape: tuple = ()                            # output shape as this step writes it


GATE_OPS = ("adaptc.qgate", "adaptc.gate_f32")


@dataclass
class Exit:
    """Exit ``index`` of a gated program: its head (logits tensor) and its gate step, which
    ends the exit's segment (steps after the previous exit's gate, up to this one)."""

    index: int
    head: int                        # tensor id
    gate: int                        # step index


@dataclass
class Program:
    name: str
    tensors: list[Tensor]
    steps: list[Step]
    inputs: list[int]
    outputs: list[int]
    planner: MemoryPlanner = field(repr=False, default=None)
    exits: list[Exit] = field(default_factory=list)   # gated programs: one per exit, shallow to deep
    controller: object = None        # gated programs: adaptc.exits.Controller (the C controller's defaults)

    @property
    def arena_bytes(self) -> int:
        return self.planner.peak if self.planner else 0

    @property
    def weight_bytes(self) -> int:
        """Constant data in flash (weights, biases, requantization arrays, tables), as the
        target's kernels store it; 0 until a target has rendered the program."""
        return sum(s.flash_bytes for s in self.steps)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)


def _macs(op: str, attrs: dict, in_shapes, out_shape, consts) -> int:
    out = int(np.prod(out_shape))
    if op in ("adaptc.qconv2d", "adaptc.conv2d_f32"):
        w = consts["weights"]
        kh, kw = w.shape[0], w.shape[1]
        in_c = in_shapes[0][-1] // int(attrs["groups"])
        return out * kh * kw * in_c
    if op in ("adaptc.qdense", "adaptc.dense_f32"):
        return out * in_shapes[0][-1]
    return 0


def lower(mod, name: str, path: str = "<module>") -> Program:
    """Lower a composite module's ``main`` to a Program with a planned arena. A gated module
    (InsertGates: ``main(x, level)`` with nested If) lowers to its segments in order, each ended
    by its gate step; ``Program.exits`` says where each exit's segment ends."""
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
                axes = [int(a) for a in value.attrs.axes] if value.attrs.axes is not None else list(range(len(shape)))[::-1]
                out_id = new_tensor(b.var)
                steps.append(Step(len(steps), "adaptc.transpose", f"permute_dims ({b.var.name})",
                                  [storage[src]], out_id, {"axes": axes}, {},
                                  in_shapes=[shape], out_shape=tensors[out_id].shape))
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
                          attrs, consts, _macs(op, attrs, in_shapes, out_shape, consts),
                          in_shapes=in_shapes, out_shape=out_shape))

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
    prog = Program(name, tensors, steps, inputs, outputs, exits=exits)
    if exits:
        from .exits import Controller

        thresholds = [steps[e.gate].attrs["threshold"] for e in exits[:-1]]
        prog.controller = Controller.default(thresholds, steps[exits[0].gate].attrs["criterion"],
                                             tensors[exits[0].head].dtype == "int8")
    plan(prog)
    return prog


def plan(prog: Program, scratch: dict[int, int] | None = None) -> dict[int, int]:
    """Plan the arena: lifetimes in step indices; every arena tensor gets a planned offset.

    ``scratch``: {step index: bytes} of kernel scratch buffers (live during that step only), as a
    target's optimized kernels ask for them; returns their offsets {step index: offset}."""
    first, last = {}, {}
    for s in prog.steps:
        first.setdefault(s.output, s.index)
        last[s.output] = max(last.get(s.output, s.index), s.index)
        for t in s.inputs:
            last[t] = s.index
    planner = MemoryPlanner(alignment=16)
    ids = {}
    for t in prog.tensors:
        if t.kind == "arena" and t.id in first:
            ids[t.id] = planner.add_buffer(t.nbytes, first[t.id], last[t.id], t.name)
    scratch_ids = {i: planner.add_buffer(n, i, i, f"scratch of step {i}")
                   for i, n in sorted((scratch or {}).items()) if n > 0}
    offsets = planner.plan()
    for tid, bid in ids.items():
        prog.tensors[tid].offset = offsets[bid]
    prog.planner = planner
    return {i: offsets[bid] for i, bid in scratch_ids.items()}
