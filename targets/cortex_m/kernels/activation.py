"""Element-wise activations: ``adaptc.qlut`` (any int8 -> int8 function as a 256-entry table:
TFLite's LOGISTIC, TANH, ... and requantizing RELUs) and ``adaptc.clamp_f32`` (float RELU, RELU6).
DSP: lut_s8_dsp -- the table rotated, four lookups a loaded and stored word."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .add import elementwise_loops
from .common import act_f32, elements
from .registry import KernelCall, kernel


@kernel("lut_s8", "adaptc.qlut", features=elementwise_loops)
def lut_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({"size": elements(step), "table": ("array", "table")},
                      [("table", step.consts["table"].astype(np.int8))])


def lut_dsp_loops(step: Step) -> dict[str, float]:
    """lut_s8_dsp.c: two words of four lookups an iteration (octets), then the last size % 8
    one at a time (elements)."""
    n = elements(step)
    return {"call": 1, "octets": n // 8, "elements": n % 8}


@kernel("lut_s8_dsp", "adaptc.qlut", "dsp", features=lut_dsp_loops, params_type="lut_s8_params",
        headers=("dsp.h",))
def lut_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    """lut_s8's table rotated by 128 (indexed by the int8 input read as unsigned): exact for every input."""
    table = step.consts["table"].astype(np.int8)
    return KernelCall({"size": elements(step), "table": ("array", "table")}, [("table", np.roll(table, 128))])


@kernel("clamp_f32", "adaptc.clamp_f32", features=elementwise_loops)
def clamp_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({"size": elements(step), **act_f32(step.attrs)}, [])
