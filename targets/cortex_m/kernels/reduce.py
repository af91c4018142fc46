"""Reductions over neighbouring axes (MEAN -- global average pooling as PyTorch and Keras export
it, of 2-D and 1-D maps --, SUM, REDUCE_MAX): ``adaptc.qreduce`` (TFLite Micro's int8 MEAN and
SUM: the sum less input_zp * count, requantized by a multiplier that for a mean folds in
1 / count; REDUCE_MAX: the largest input) and ``adaptc.reduce_f32``; one kernel each, the
reduction an op code. One pass over the input per output; no optimized variant: a network's one
global pooling costs a few thousand additions next to millions of MACs."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import act_f32
from .registry import KernelCall, kernel

OPS_S8 = {"mean": 0, "sum": 0, "max": 1}          # reduce_s8.c's op (mean and sum: the same arithmetic)
OPS_F32 = {"mean": 0, "sum": 1, "max": 2}         # reduce_f32.c's op


def _geometry(step: Step) -> dict:
    """[batches][count][channels]: the axes before, over and after the (neighbouring) reduced axes."""
    shape, axes = step.in_shapes[0], [int(a) for a in step.attrs["axes"]]
    return {"batches": int(np.prod(shape[:axes[0]])), "count": int(np.prod(shape[axes[0]:axes[-1] + 1])),
            "channels": int(np.prod(shape[axes[-1] + 1:]))}


def reduce_loops(step: Step) -> dict[str, float]:
    """reduce_*.c: per batch and channel one output, over count inputs."""
    g = _geometry(step)
    outputs = g["batches"] * g["channels"]
    return {"call": 1, "batches": g["batches"], "outputs": outputs, "elements": outputs * g["count"]}


@kernel("reduce_s8", "adaptc.qreduce", features=reduce_loops)
def reduce_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    reduce = str(a["reduce"])
    requantized = reduce != "max"
    return KernelCall({**_geometry(step), "op": OPS_S8[reduce],
                       "sum_offset": -int(a["input_zp"]) * int(a["count"]) if requantized else 0,
                       "multiplier": a["multiplier"][0] if requantized else 0,
                       "shift": a["shift"][0] if requantized else 0,
                       "output_offset": a["output_zp"] if requantized else 0, "act_min": a["act_min"],
                       "act_max": a["act_max"]}, [])


@kernel("reduce_f32", "adaptc.reduce_f32", features=reduce_loops)
def reduce_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**_geometry(step), "op": OPS_F32[str(step.attrs["reduce"])], **act_f32(step.attrs)}, [])
