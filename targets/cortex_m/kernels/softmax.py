"""SOFTMAX over the last axis: ``adaptc.qsoftmax`` (TFLite's int8 softmax through an exp table of
the input differences) and ``adaptc.softmax_f32`` (also LOG_SOFTMAX, ``log``); int8 LOG_SOFTMAX
``adaptc.qlog_softmax`` (tables of the differences, a fixed-point log per row)."""
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


@kernel("log_softmax_s8", "adaptc.qlog_softmax", features=softmax_loops)
def log_softmax_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    tables = [(name, step.consts[name].astype(np.int32)) for name in ("exp_table", "diff_q5")]
    return KernelCall({**rows_depth(step), "reverse_multiplier": int(a["reverse_multiplier"]),
                       "reverse_shift": int(a["reverse_shift"]), "diff_min": int(a["diff_min"]),
                       "exp_table": ("array", "exp_table"), "diff_q5": ("array", "diff_q5")}, tables)


@kernel("softmax_f32", "adaptc.softmax_f32", features=softmax_loops)
def softmax_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**rows_depth(step), "beta": float(step.attrs.get("beta", 1.0)),
                       "log": int(step.attrs.get("log", 0))}, [])
