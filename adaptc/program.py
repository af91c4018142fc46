"""The lowered Program: the one description of a model that every target schedules and costs.

A ``Program`` is an ordered list of ``Step``s over ``Tensor``s -- what ``adaptc.lower`` reads off
an integer (or float) composite module. A step is one composite (``adaptc.qconv2d``, ...): its
input and output tensors, the composite's attributes (kernel parameters computed at compile
time) and its constant arrays. Reshapes produce no step: the result aliases its input's storage,
so one tensor can be seen with several shapes; each step records the shapes it reads and writes
(``in_shapes``, ``out_shape``). The model input and output are caller-owned buffers.

A Program holds no target's choices: which kernel runs each step, the arena plan and the flash
the constants take are the target's schedule (``adaptc.schedule.ScheduledProgram``). Nothing
here imports TVM.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPE_BYTES = {"int8": 1, "int32": 4, "float32": 4}

GATE_OPS = ("adaptc.qgate", "adaptc.gate_f32")
CONCAT_INPUTS = 4                    # inputs of one adaptc.concat step (the lowering chains steps for more)


@dataclass
class Tensor:
    id: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str = "arena"              # "input" | "output" | "gate" | "arena"

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
    in_shapes: list = field(default_factory=list)   # activation shapes as this step reads them
    out_shape: tuple = ()                            # output shape as this step writes it
    prefix_weights: tuple = ()       # width levels (adaptc.widths): consts["weights"] is the widest
                                     # level's, this step reads a channel prefix of it; the input
                                     # channels of every width, ascending


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
    exits: list[Exit] = field(default_factory=list)   # gated programs: one per exit, shallow to deep
    controller: object = None        # gated programs: adaptc.exits.Controller (the C controller's defaults)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    def last_step(self, level: int | None = None) -> int:
        """The last step one inference at utilization ``level`` runs: the gate of exit ``level``
        (default: the top level), or the last step of a program without exits."""
        if not self.exits:
            return len(self.steps) - 1
        return self.exits[len(self.exits) - 1 if level is None else level].gate


def step_macs(op: str, attrs: dict, in_shapes, out_shape, consts) -> int:
    """Multiply-accumulates of one step (convolutions and dense layers; 0 for the rest)."""
    out = int(np.prod(out_shape))
    if op in ("adaptc.qconv2d", "adaptc.conv2d_f32"):
        w = consts["weights"]
        kh, kw = w.shape[0], w.shape[1]
        in_c = in_shapes[0][-1] // int(attrs["groups"])
        return out * kh * kw * in_c
    if op in ("adaptc.qdense", "adaptc.dense_f32"):
        return out * in_shapes[0][-1]
    if op == "adaptc.qlstm":            # per time step the four gates' input and recurrent products
        gates = consts["input_weights"].shape[1]
        return int(out_shape[-2]) * gates * (consts["input_weights"].shape[0] + consts["recurrent_weights"].shape[0])
    if op == "adaptc.recurrent_f32":    # per sequence and step the gates' input and recurrent products
        rows, n_in = consts["weights"].shape
        return int(np.prod(out_shape[:-1])) * rows * (n_in + consts["recurrent_weights"].shape[1])
    return 0
