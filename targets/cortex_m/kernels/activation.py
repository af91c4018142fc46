"""Element-wise activations: ``adaptc.qlut`` (any int8 -> int8 function as a 256-entry table:
TFLite's LOGISTIC, TANH, ... and requantizing RELUs) and ``adaptc.clamp_f32`` (float RELU, RELU6)."""
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


@kernel("clamp_f32", "adaptc.clamp_f32", features=elementwise_loops)
def clamp_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({"size": elements(step), **act_f32(step.attrs)}, [])
