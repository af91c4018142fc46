"""CONCATENATION (``adaptc.concat``: a Relax concat, int8 or float32): per outer index, one
contiguous block of each input (attributes ``axis`` and ``item_bytes``, the element size). Up to
four inputs per step; the lowering chains steps for more."""
from __future__ import annotations

import numpy as np

from adaptc.program import CONCAT_INPUTS, Program, Step

from .registry import KernelCall, kernel


def _blocks(step: Step) -> dict:
    axis, item = int(step.attrs["axis"]), int(step.attrs["item_bytes"])
    outer = int(np.prod(step.out_shape[:axis]))
    blocks = [int(np.prod(s[axis:])) * item for s in step.in_shapes]
    return {"count": len(blocks), "outer": outer, "bytes": blocks + [0] * (CONCAT_INPUTS - len(blocks))}


def concat_loops(step: Step) -> dict[str, float]:
    """concat.c: per outer index and input one memcpy; the bytes copied."""
    b = _blocks(step)
    return {"call": 1, "blocks": b["outer"] * b["count"], "bytes": b["outer"] * sum(b["bytes"])}


@kernel("concat", "adaptc.concat", features=concat_loops)
def concat(step: Step, prog: Program) -> KernelCall | None:
    if len(step.in_shapes) > CONCAT_INPUTS:
        return None
    unused = [(f"input{k + 1}", None) for k in range(len(step.in_shapes), CONCAT_INPUTS)]
    return KernelCall(_blocks(step), unused)
