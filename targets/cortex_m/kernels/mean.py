"""MEAN over neighbouring axes (global average pooling as PyTorch and Keras export it, of 2-D
and 1-D maps): ``adaptc.qmean``
(TFLite Micro's int8 MEAN: the sum less input_zp * count, requantized by a multiplier that folds
in 1 / count) and ``adaptc.mean_f32``. One pass over the input per channel; no optimized variant:
a network's one global pooling costs a few thousand additions next to millions of MACs."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import act_f32
from .registry import KernelCall, kernel


def _geometry(step: Step) -> dict:
    """[batches][count][channels]: the axes before, over and after the (neighbouring) mean axes."""
    shape, axes = step.in_shapes[0], [int(a) for a in step.attrs["axes"]]
    return {"batches": int(np.prod(shape[:axes[0]])), "count": int(np.prod(shape[axes[0]:axes[-1] + 1])),
            "channels": int(np.prod(shape[axes[-1] + 1:]))}


def mean_loops(step: Step) -> dict[str, float]:
    """mean_*.c: per batch and channel one output, over count inputs."""
    g = _geometry(step)
    outputs = g["batches"] * g["channels"]
    return {"call": 1, "batches": g["batches"], "outputs": outputs, "elements": outputs * g["count"]}


@kernel("mean_s8", "adaptc.qmean", features=mean_loops)
def mean_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    g = _geometry(step)
    return KernelCall({**g, "sum_offset": -int(a["input_zp"]) * int(a["count"]), "multiplier": a["multiplier"][0],
                       "shift": a["shift"][0], "output_offset": a["output_zp"], "act_min": a["act_min"],
                       "act_max": a["act_max"]}, [])


@kernel("mean_f32", "adaptc.mean_f32", features=mean_loops)
def mean_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**_geometry(step), **act_f32(step.attrs)}, [])
