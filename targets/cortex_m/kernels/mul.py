"""MUL with broadcasting (a squeeze-and-excitation gate, a hard-sigmoid attention): ``adaptc.qmul``
(TFLite Micro's int8 MUL: the product of the offset inputs requantized by one multiplier) and
``adaptc.mul_f32``; the second operand may be a constant (flash), e.g. a hard sigmoid's 1/6."""
from __future__ import annotations

from adaptc.program import Program, Step

from .common import act_f32, elements, flash_operands, operand_loops
from .registry import KernelCall, kernel


def mul_loops(step: Step) -> dict[str, float]:
    """mul_*.c: per output element one product; the three outer loops set up two pointers."""
    dims = operand_loops(step)["dims"]
    return {"call": 1, "rows": dims[0] * dims[1] * dims[2], "elements": elements(step)}


@kernel("mul_s8", "adaptc.qmul", features=mul_loops)
def mul_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({**operand_loops(step), "input1_offset": -a["input1_zp"],
                       "input2_offset": -a["input2_zp"], "output_offset": a["output_zp"],
                       "output_multiplier": a["multiplier"][0], "output_shift": a["shift"][0],
                       "act_min": a["act_min"], "act_max": a["act_max"]}, flash_operands(step))


@kernel("mul_f32", "adaptc.mul_f32", features=mul_loops)
def mul_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**operand_loops(step), **act_f32(step.attrs)}, flash_operands(step))
