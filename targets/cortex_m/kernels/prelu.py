"""PReLU with a constant alpha broadcast to the input (adaptc.prelu): ``adaptc.qprelu`` (TFLite
Micro's int8 BroadcastPrelu4DSlow) and ``adaptc.prelu_f32``; alpha in flash, its broadcast as
strides over the four loops of the element-wise kernels (common.broadcast_loops)."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import broadcast_loops, elements
from .registry import KernelCall, kernel


def _loops(step: Step) -> dict:
    return broadcast_loops([step.in_shapes[0], step.consts["alpha"].shape], step.out_shape)


def prelu_loops(step: Step) -> dict[str, float]:
    """prelu_*.c: per output element one compare and one multiply; the three outer loops set up
    two pointers."""
    dims = _loops(step)["dims"]
    return {"call": 1, "rows": dims[0] * dims[1] * dims[2], "elements": elements(step)}


@kernel("prelu_s8", "adaptc.qprelu", features=prelu_loops)
def prelu_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({**_loops(step), "input_offset": -a["input_zp"], "alpha_offset": -a["alpha_zp"],
                       "output_offset": a["output_zp"], "identity_multiplier": a["identity_multiplier"],
                       "identity_shift": a["identity_shift"], "alpha_multiplier": a["alpha_multiplier"],
                       "alpha_shift": a["alpha_shift"], "act_min": a["act_min"], "act_max": a["act_max"]},
                      [("alpha", np.ascontiguousarray(step.consts["alpha"].astype(np.int8)))])


@kernel("prelu_f32", "adaptc.prelu_f32", features=prelu_loops)
def prelu_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(_loops(step), [("alpha", np.ascontiguousarray(step.consts["alpha"].astype(np.float32)))])
