"""The element-wise binary operators with broadcasting, beside MUL (mul.py) and the same-shape
ADD (add.py): ``adaptc.qaddsub`` (TFLite Micro's int8 ADD / SUB: both inputs rescaled to a
common scale), ``adaptc.qsquared_difference``, ``adaptc.qmaxmin`` (raw int8 comparison) and
``adaptc.binary_f32`` (one float kernel, the operator an op code). The second operand may be a
constant (flash)."""
from __future__ import annotations

from adaptc.program import Program, Step
from adaptc.qops import BINARY_F32

from .common import act_f32, elements, flash_operands, operand_loops
from .registry import KernelCall, kernel


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
