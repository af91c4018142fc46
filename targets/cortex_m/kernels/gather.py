"""Gathers along one axis with constant indices (``adaptc.gather``: a Relax take of a constant
index list, as nearest-neighbour resizing imports), any element type: per outer index and output
position one contiguous block of the input."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .registry import KernelCall, kernel


def _geometry(step: Step) -> dict:
    shape, axis = step.in_shapes[0], int(step.attrs["axis"])
    return {"outer": int(np.prod(shape[:axis])), "axis_size": shape[axis],
            "count": int(np.size(step.consts["indices"])),     # (a scalar index drops the axis)
            "inner": int(np.prod(shape[axis + 1:])) * int(step.attrs["item_bytes"])}


def gather_loops(step: Step) -> dict[str, float]:
    """gather.c: one memcpy of ``inner`` bytes per outer index and output position."""
    g = _geometry(step)
    return {"call": 1, "blocks": g["outer"] * g["count"], "bytes": g["outer"] * g["count"] * g["inner"]}


@kernel("gather", "adaptc.gather", features=gather_loops)
def gather(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**_geometry(step), "indices": ("array", "indices")},
                      [("indices", step.consts["indices"].astype(np.int32).reshape(-1))])
