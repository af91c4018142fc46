"""Exit gates: ``adaptc.qgate`` (integer-only confidence of an int8 head, adaptc.gates) and
``adaptc.gate_f32``, one kernel per criterion (max_prob, margin, entropy); each writes the
confidence and returns whether the sample leaves."""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from adaptc.errors import TargetError
from adaptc.gates import CRITERIA
from adaptc.program import Program, Step

from .registry import KernelCall, kernel


def gate_loops(step: Step, exit_taken: bool = False) -> dict[str, float]:
    """Gates: two or three passes over the head's classes; at the exit taken, also the
    ``<prefix>_leave`` arg-max over them."""
    c = int(step.in_shapes[0][-1])
    return {"call": 1, "classes": c, "log_classes": math.log2(c), "taken": int(exit_taken),
            "taken_classes": c * exit_taken}


def stored_tables(consts: dict) -> tuple[int, list[tuple[str, np.ndarray]]]:
    """The gate's tables as the kernels store them: ``exp_len`` and the arrays. EXP (adaptc.gates
    ``exp_table``, 0..2^15) as uint16 up to its last nonzero entry (at least one: the kernels read
    ``d >= exp_len`` as 0, which it is); LN (``ln_table``, 8..2835, every entry reachable) as uint16.
    The confidences are those of the full tables, bit for bit."""
    tables = {name: np.asarray(consts[name]) for name in ("exp_table", "ln_table") if name in consts}
    for name, t in tables.items():
        if t.min() < 0 or t.max() > 0xFFFF:
            raise TargetError(f"gate {name}: values {t.min()}..{t.max()} do not fit uint16")
    nonzero = np.flatnonzero(tables["exp_table"])
    exp_len = int(nonzero[-1]) + 1 if nonzero.size else 1
    tables["exp_table"] = tables["exp_table"][:exp_len]
    return exp_len, [(name, t.astype(np.uint16)) for name, t in tables.items()]


def gate_s8(criterion: str, step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    if a["criterion"] != criterion:
        return None
    params = {"classes": step.in_shapes[0][-1], "threshold": int(a["threshold"])}
    if criterion == "margin":
        return KernelCall(params, [])
    if criterion == "entropy":
        params["scale_q16"] = int(a["scale_q16"])
    params["exp_len"], arrays = stored_tables(step.consts)
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
