"""PAD with a constant: ``adaptc.qpad`` (the int8 zero point, or TFLite's pad value) and
``adaptc.pad_f32``, up to 4-D."""
from __future__ import annotations

import numpy as np

from adaptc.errors import TargetError
from adaptc.program import Program, Step

from .loops import dims4
from .registry import KernelCall, kernel


def pad_loops(step: Step) -> dict[str, float]:
    """pad_*.c: four nested loops over the output, reading the inside elements."""
    o = dims4(step.out_shape)
    return {"call": 1, "loop1": o[0] * o[1], "loop2": o[0] * o[1] * o[2], "elements": int(np.prod(o)),
            "inside": int(np.prod(step.in_shapes[0]))}


def _pad_params(step: Step) -> dict:
    in_shape, out_shape = step.in_shapes[0], step.out_shape
    if len(in_shape) > 4:
        raise TargetError(f"pad of a {len(in_shape)}-D tensor at step {step.index}; at most 4-D")
    lead = 4 - len(in_shape)
    widths = step.attrs["pad_width"]
    before = [0] * lead + [int(widths[2 * i]) for i in range(len(in_shape))]
    return {"in_dims": [1] * lead + list(in_shape), "out_dims": [1] * lead + list(out_shape),
            "before": before, "pad_value": step.attrs["pad_value"]}


@kernel("pad_s8", "adaptc.qpad", features=pad_loops)
def pad_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(_pad_params(step), [])


@kernel("pad_f32", "adaptc.pad_f32", features=pad_loops)
def pad_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**_pad_params(step), "pad_value": float(step.attrs["pad_value"])}, [])
