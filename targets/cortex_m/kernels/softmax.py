"""SOFTMAX over the last axis: ``adaptc.qsoftmax`` (TFLite's int8 softmax through an exp table of
the input differences) and ``adaptc.softmax_f32`` (also LOG_SOFTMAX, ``log``)."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import elements, rows_depth
from .registry import KernelCall, kernel


def softmax_loops(step: Step) -> dict[str, float]:
    n = elements(step)
    depth = int(step.out_shape[-1])
    return {"call": 1, "rows": n // depth, "elements": n}


@kernel("softmax_s8", "adaptc.qsoftmax", features=softmax_loops)
def softmax_s8(step: Step, prog: Program) -> KernelCall | None:
    table = step.consts["exp_table"].astype(np.int32)
    return KernelCall({**rows_depth(step), "exp_table": ("array", "exp_table")}, [("exp_table", table)])


@kernel("softmax_f32", "adaptc.softmax_f32", features=softmax_loops)
def softmax_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**rows_depth(step), "beta": float(step.attrs.get("beta", 1.0)),
                       "log": int(step.attrs.get("log", 0))}, [])
