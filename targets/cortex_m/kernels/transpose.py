"""Transposes and copies (``adaptc.transpose``: a Relax permute_dims, or the copy an output that
aliases the input needs), up to 4-D, int8 or float32."""
from __future__ import annotations

import numpy as np

from adaptc.errors import TargetError
from adaptc.program import Program, Step

from .common import output_dtype
from .loops import dims4
from .registry import KernelCall, kernel


def transpose_loops(step: Step) -> dict[str, float]:
    """transpose_*.c: loops over the output dimensions, the innermost a strided copy."""
    o = dims4(step.out_shape)
    return {"call": 1, "loop1": o[0] * o[1], "loop2": o[0] * o[1] * o[2], "elements": int(np.prod(o))}


def _transpose_call(step: Step) -> KernelCall:
    shape = step.in_shapes[0]
    axes = list(step.attrs["axes"])
    if len(shape) > 4:
        raise TargetError(f"transpose of a {len(shape)}-D tensor at step {step.index}; at most 4-D")
    lead = 4 - len(shape)
    return KernelCall({"in_dims": [1] * lead + list(shape), "perm": list(range(lead)) + [a + lead for a in axes]}, [])


@kernel("transpose_s8", "adaptc.transpose", features=transpose_loops, params_type="transpose_params")
def transpose_s8(step: Step, prog: Program) -> KernelCall | None:
    return _transpose_call(step) if output_dtype(step, prog) == "int8" else None


@kernel("transpose_f32", "adaptc.transpose", features=transpose_loops, params_type="transpose_params")
def transpose_f32(step: Step, prog: Program) -> KernelCall | None:
    return _transpose_call(step) if output_dtype(step, prog) == "float32" else None
