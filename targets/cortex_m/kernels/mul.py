"""MUL with broadcasting (a squeeze-and-excitation gate, a hard-sigmoid attention): ``adaptc.qmul``
(TFLite Micro's int8 MUL: the product of the offset inputs requantized by one multiplier) and
``adaptc.mul_f32``; the second operand may be a constant (flash), e.g. a hard sigmoid's 1/6.
DSP: mul_s8_dsp -- four outputs a word where the innermost loop allows, with the cheaper
requantization where its exactness is proved for the whole int8 range."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import act_f32, elements, flash_operands, operand_loops
from .registry import KernelCall, kernel
from .simd import requant_is_exact


def mul_loops(step: Step) -> dict[str, float]:
    """mul_*.c: per output element one product; the three outer loops set up two pointers."""
    dims = operand_loops(step)["dims"]
    return {"call": 1, "rows": dims[0] * dims[1] * dims[2], "elements": elements(step)}


def _mul_params(step: Step) -> dict:
    a = step.attrs
    return {**operand_loops(step), "input1_offset": -a["input1_zp"], "input2_offset": -a["input2_zp"],
            "output_offset": a["output_zp"], "output_multiplier": a["multiplier"][0],
            "output_shift": a["shift"][0], "act_min": a["act_min"], "act_max": a["act_max"]}


@kernel("mul_s8", "adaptc.qmul", features=mul_loops)
def mul_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(_mul_params(step), flash_operands(step))


@kernel("mul_f32", "adaptc.mul_f32", features=mul_loops)
def mul_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**operand_loops(step), **act_f32(step.attrs)}, flash_operands(step))


def mul_dsp_loops(step: Step) -> dict[str, float]:
    """mul_s8_dsp.c: per row (the outer three loops) a word of four outputs at a time where the
    innermost strides are 1 / 1, 1 / 0 or 0 / 1 (quads), the rest one at a time (singles); the
    output clamped afterwards unless the activation range is the whole int8 range (clamped)."""
    loops = operand_loops(step)
    dims, s1, s2 = loops["dims"], loops["strides1"][3], loops["strides2"][3]
    rows = dims[0] * dims[1] * dims[2]
    quads = dims[3] // 4 if (s1, s2) in ((1, 1), (1, 0), (0, 1)) else 0
    a = step.attrs
    narrow = a["act_min"] > -128 or a["act_max"] < 127
    return {"call": 1, "rows": rows, "quads": rows * quads, "singles": rows * (dims[3] - 4 * quads),
            "clamped": elements(step) * narrow}


@kernel("mul_s8_dsp", "adaptc.qmul", "dsp", features=mul_dsp_loops, headers=("dsp.h",))
def mul_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    """mul_s8's call where adaptc_rq_apply is exact for every product of two int8 inputs with
    their offsets (|product| <= max|x1 + offset1| * max|x2 + offset2|); None otherwise."""
    p = _mul_params(step)
    bound = 1
    for off in (p["input1_offset"], p["input2_offset"]):
        bound *= max(abs(-128 + off), abs(127 + off))
    if not requant_is_exact(np.array([bound]), p["output_multiplier"], p["output_shift"]):
        return None
    return KernelCall(p, flash_operands(step))
