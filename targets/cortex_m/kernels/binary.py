"""The element-wise binary operators with broadcasting, beside MUL (mul.py) and the same-shape
ADD (add.py): ``adaptc.qaddsub`` (TFLite Micro's int8 ADD / SUB: both inputs rescaled to a
common scale), ``adaptc.qsquared_difference``, ``adaptc.qmaxmin`` (raw int8 comparison) and
``adaptc.binary_f32`` (one float kernel, the operator an op code). The second operand may be a
constant (flash). DSP: addsub_s8_dsp -- addsub_s8 with the cheaper requantization where its
exactness is proved for the whole int8 range, an input the innermost loop does not move along
rescaled once per row."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step
from adaptc.qops import BINARY_F32

from .common import act_f32, elements, flash_operands, operand_loops
from .registry import KernelCall, kernel
from .simd import requant_is_exact


def binary_loops(step: Step) -> dict[str, float]:
    """binary kernels: per output element one operation; the three outer loops set up two
    pointers (as mul_*.c)."""
    dims = operand_loops(step)["dims"]
    return {"call": 1, "rows": dims[0] * dims[1] * dims[2], "elements": elements(step)}


def binary_f32_loops(step: Step) -> dict[str, float]:
    """binary_f32.c: as binary_loops, a division (14 cycles on a Cortex-M4F's VDIV, a library
    call without an FPU) counted apart."""
    n = elements(step)
    divide = str(step.attrs["function"]).endswith("divide")
    return {**binary_loops(step), "elements": n * (not divide), "elements_div": n * divide}


def _rescaled(step: Step) -> dict:
    a = step.attrs
    return {"left_shift": a["left_shift"], "input1_offset": -a["input1_zp"],
            "input1_multiplier": a["input1_multiplier"], "input1_shift": a["input1_shift"],
            "input2_offset": -a["input2_zp"],
            "input2_multiplier": a["input2_multiplier"], "input2_shift": a["input2_shift"],
            "output_offset": a["output_zp"], "output_multiplier": a["multiplier"][0], "output_shift": a["shift"][0],
            "act_min": a["act_min"], "act_max": a["act_max"]}


@kernel("addsub_s8", "adaptc.qaddsub", features=binary_loops)
def addsub_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({**operand_loops(step), **_rescaled(step), "input1_sign": a["input1_sign"],
                       "input2_sign": a["input2_sign"]}, flash_operands(step))


def addsub_dsp_loops(step: Step) -> dict[str, float]:
    """addsub_s8_dsp.c: per row (the outer three loops) four outputs an iteration (quads) where
    the inputs the innermost loop moves along are contiguous (strides 1 / 1, 1 / 0, 0 / 1), the
    rest one at a time (singles); ``_one`` where an input is fixed along the row (a stride 0:
    one input rescaled per output), ``_two`` where both move (two rescaled per output); the
    output clamped afterwards unless the activation range is the whole int8 range (clamped)."""
    loops = operand_loops(step)
    dims, s1, s2 = loops["dims"], loops["strides1"][3], loops["strides2"][3]
    rows, n = dims[0] * dims[1] * dims[2], dims[3]
    one = s1 == 0 or s2 == 0
    quads = n // 4 if (s1, s2) in ((1, 1), (1, 0), (0, 1)) else 0
    singles = n - 4 * quads
    narrow = step.attrs["act_min"] > -128 or step.attrs["act_max"] < 127
    return {"call": 1, "rows": rows, "quads_one": rows * quads * one, "singles_one": rows * singles * one,
            "quads_two": rows * quads * (not one), "singles_two": rows * singles * (not one),
            "clamped": elements(step) * narrow}


@kernel("addsub_s8_dsp", "adaptc.qaddsub", "dsp", features=addsub_dsp_loops, headers=("dsp.h",))
def addsub_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    """addsub_s8's call where adaptc_rq_apply (dsp.h) is exact for all three requantizations of
    every int8 input: |(x + offset) << left_shift| for each input, |s1| + |s2| for the output
    (requant_is_exact); signs +-1, shifts >= -31, an activation range within int8 (the kernel
    saturates to int8 before it clamps); None otherwise."""
    call = addsub_s8(step, prog)
    p = call.params
    if not 0 <= p["left_shift"] <= 30 or {p["input1_sign"], p["input2_sign"]} - {1, -1}:
        return None
    if p["act_min"] < -128 or p["act_max"] > 127:
        return None
    if min(p["input1_shift"], p["input2_shift"], p["output_shift"]) < -31:
        return None
    sums = 0
    for k in ("input1", "input2"):
        off = p[f"{k}_offset"]
        x = max(abs(-128 + off), abs(127 + off)) << p["left_shift"]   # |(x + offset) << left_shift|
        if not requant_is_exact(np.array([x]), p[f"{k}_multiplier"], p[f"{k}_shift"]):
            return None
        sums += x << max(p[f"{k}_shift"], 0)                          # |MBQM(v, m, s)| <= |v| << max(s, 0)
    if not requant_is_exact(np.array([sums]), p["output_multiplier"], p["output_shift"]):
        return None
    return call


@kernel("squared_difference_s8", "adaptc.qsquared_difference", features=binary_loops)
def squared_difference_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**operand_loops(step), **_rescaled(step)}, flash_operands(step))


@kernel("maxmin_s8", "adaptc.qmaxmin", features=binary_loops)
def maxmin_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({**operand_loops(step), "minimum": int(str(a["function"]) == "minimum"), "act_min": a["act_min"],
                       "act_max": a["act_max"]}, flash_operands(step))


@kernel("binary_f32", "adaptc.binary_f32", features=binary_f32_loops)
def binary_f32(step: Step, prog: Program) -> KernelCall | None:
    op = BINARY_F32[str(step.attrs["function"])][0]
    return KernelCall({**operand_loops(step), "op": op, **act_f32(step.attrs)}, flash_operands(step))
