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


def merged(shape, axes) -> tuple[list[int], list[int]]:
    """The same permutation over fewer dimensions: size-1 axes dropped, and axes that stay
    neighbours in the output order merged into one (e.g. a copy is one dimension)."""
    keep = [i for i, d in enumerate(shape) if d != 1]
    perm = [keep.index(a) for a in axes if a in keep]
    dims = [shape[i] for i in keep]
    groups: list[list[int]] = []
    for a in perm:                                  # runs of consecutive input axes, in output order
        if groups and a == groups[-1][-1] + 1:
            groups[-1].append(a)
        else:
            groups.append([a])
    order = sorted(range(len(groups)), key=lambda g: groups[g][0])      # the groups in input order
    in_dims = [int(np.prod([dims[a] for a in groups[g]])) for g in order]
    return in_dims or [1], [order.index(g) for g in range(len(groups))] or [0]


def _transpose_call(step: Step) -> KernelCall:
    shape = step.in_shapes[0]
    axes = list(step.attrs["axes"])
    if len(shape) > 4:              # (up to 4-D as they are: the kernel's parameters unchanged)
        shape, axes = merged(shape, axes)
    if len(shape) > 4:
        raise TargetError(f"transpose of a {len(step.in_shapes[0])}-D tensor at step {step.index} [{step.source}] "
                          f"that does not merge to at most 4 dimensions")
    lead = 4 - len(shape)
    return KernelCall({"in_dims": [1] * lead + list(shape), "perm": list(range(lead)) + [a + lead for a in axes]}, [])


@kernel("transpose_s8", "adaptc.transpose", features=transpose_loops, params_type="transpose_params")
def transpose_s8(step: Step, prog: Program) -> KernelCall | None:
    return _transpose_call(step) if output_dtype(step, prog) == "int8" else None


@kernel("transpose_f32", "adaptc.transpose", features=transpose_loops, params_type="transpose_params")
def transpose_f32(step: Step, prog: Program) -> KernelCall | None:
    return _transpose_call(step) if output_dtype(step, prog) == "float32" else None
