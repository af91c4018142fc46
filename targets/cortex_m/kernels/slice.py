"""Strided slices (``adaptc.slice``: a Relax strided_slice, or one output of a split), any
element type: the output's elements read from the input at an offset and per-axis strides."""
from __future__ import annotations

from adaptc.errors import TargetError
from adaptc.program import Program, Step

from .registry import KernelCall, kernel


def view(step: Step) -> dict:
    """The kernel's loops: output extents (axes of extent 1 dropped, neighbours that stay
    contiguous merged), byte strides into the input, the byte offset of the first element."""
    shape, out = step.in_shapes[0], step.out_shape
    item, begin, steps = int(step.attrs["item_bytes"]), step.attrs["begin"], step.attrs["strides"]
    elem = [1] * len(shape)
    for d in reversed(range(len(shape) - 1)):
        elem[d] = elem[d + 1] * shape[d + 1]
    offset = sum(b * e for b, e in zip(begin, elem)) * item
    loops: list[list[int]] = []                       # [extent, byte stride], innermost first
    for d in reversed(range(len(out))):
        if out[d] == 1:
            continue
        stride = elem[d] * steps[d] * item
        if loops and stride == loops[-1][1] * loops[-1][0]:
            loops[-1][0] *= out[d]                    # contiguous with the axis inside it: one loop
        else:
            loops.append([out[d], stride])
    if len(loops) > 4:
        raise TargetError(f"slice of {list(shape)} at step {step.index} [{step.source}] needs {len(loops)} loops; "
                          "the kernel has 4")
    loops = [[1, 0]] * (4 - len(loops)) + loops[::-1]
    return {"dims": [d for d, _ in loops], "strides": [s if d > 1 else item for d, s in loops],
            "offset": offset, "item": item}


def slice_loops(step: Step) -> dict[str, float]:
    """slice.c: per row (the three outer loops) one memcpy when the row is contiguous, else one
    per element."""
    v = view(step)
    rows = v["dims"][0] * v["dims"][1] * v["dims"][2]
    contiguous = v["strides"][3] == v["item"]
    return {"call": 1, "rows": rows, "bytes": rows * v["dims"][3] * v["item"],
            "elements": 0 if contiguous else rows * v["dims"][3]}


@kernel("slice", "adaptc.slice", features=slice_loops)
def slice_(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(view(step), [])
