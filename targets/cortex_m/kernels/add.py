"""ADD: ``adaptc.qadd`` (both inputs rescaled to a common scale, TFLite's reference_integer_ops::Add)
and ``adaptc.add_f32``. DSP: add_s8_dsp -- the same arithmetic with the cheaper requantization,
where its exactness is proved for the whole int8 range."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import act_f32, elements
from .registry import KernelCall, kernel
from .simd import requant_is_exact


def elementwise_loops(step: Step) -> dict[str, float]:
    return {"call": 1, "elements": elements(step)}


def _add_params(step: Step) -> dict:
    a = step.attrs
    return {"size": elements(step), "left_shift": a["left_shift"],
            "input1_offset": -a["input1_zp"], "input1_multiplier": a["input1_multiplier"],
            "input1_shift": a["input1_shift"], "input2_offset": -a["input2_zp"],
            "input2_multiplier": a["input2_multiplier"], "input2_shift": a["input2_shift"],
            "output_offset": a["output_zp"], "output_multiplier": a["multiplier"][0],
            "output_shift": a["shift"][0], "act_min": a["act_min"], "act_max": a["act_max"]}


@kernel("add_s8", "adaptc.qadd", features=elementwise_loops)
def add_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(_add_params(step), [])


@kernel("add_f32", "adaptc.add_f32", features=elementwise_loops)
def add_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({"size": elements(step), **act_f32(step.attrs)}, [])


def add_dsp_loops(step: Step) -> dict[str, float]:
    """add_s8_dsp.c: one loop with adaptc_rq_right when the three shifts are negative, else
    the general adaptc_rq."""
    a = step.attrs
    fast = a["input1_shift"] < 0 and a["input2_shift"] < 0 and a["shift"][0] < 0
    n = elements(step)
    return {"call": 1, "elements_fast": n * fast, "elements": n * (not fast)}


@kernel("add_s8_dsp", "adaptc.qadd", "dsp", features=add_dsp_loops, params_type="add_s8_params", headers=("dsp.h",))
def add_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    p = _add_params(step)
    sums = 0
    for k in ("input1", "input2"):
        off = p[f"{k}_offset"]
        x = max(abs(-128 + off), abs(127 + off)) << p["left_shift"]   # |(x + offset) << left_shift|
        if not requant_is_exact(np.array([x]), p[f"{k}_multiplier"], p[f"{k}_shift"]):
            return None
        sums += x << max(p[f"{k}_shift"], 0)                          # |MBQM(v, m, s)| <= |v| << max(s, 0)
    if not requant_is_exact(np.array([sums]), p["output_multiplier"], p["output_shift"]):
        return None
    return KernelCall(p, [])
