"""Exit gates: ``adaptc.qgate`` (integer-only confidence of an int8 head, adaptc.gates) and
``adaptc.gate_f32``, one kernel per criterion (max_prob, margin, entropy); each writes the
confidence and returns whether the sample leaves."""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from adaptc.gates import CRITERIA
from adaptc.program import Program, Step

from .registry import KernelCall, kernel


def gate_loops(step: Step, exit_taken: bool = False) -> dict[str, float]:
    """Gates: two or three passes over the head's classes; at the exit taken, also the
    ``<prefix>_leave`` arg-max over them."""
    c = int(step.in_shapes[0][-1])
    return {"call": 1, "classes": c, "log_classes": math.log2(c), "taken": int(exit_taken),
            "taken_classes": c * exit_taken}


def gate_s8(criterion: str, step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    if a["criterion"] != criterion:
        return None
    params = {"classes": step.in_shapes[0][-1], "threshold": int(a["threshold"])}
    arrays = [(name, step.consts[name].astype(np.int32)) for name in ("exp_table", "ln_table") if name in step.consts]
    if criterion == "entropy":
        params["scale_q16"] = int(a["scale_q16"])
    params.update({name: ("array", name) for name, _ in arrays})
    return KernelCall(params, arrays)


def gate_f32(criterion: str, step: Step, prog: Program) -> KernelCall | None:
    if step.attrs["criterion"] != criterion:
        return None
    return KernelCall({"classes": step.in_shapes[0][-1], "threshold": float(step.attrs["threshold"])}, [])


for _criterion in CRITERIA:
    kernel(f"gate_{_criterion}_s8", "adaptc.qgate", features=gate_loops)(partial(gate_s8, _criterion))
    kernel(f"gate_{_criterion}_f32", "adaptc.gate_f32", features=gate_loops,
           params_type="gate_f32_params")(partial(gate_f32, _criterion))
