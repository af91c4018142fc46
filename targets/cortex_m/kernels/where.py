"""``adaptc.where_f32``: an element-wise select, ``where(a <comparison> b, t, f)``, float, with
broadcasting (ONNX Where of a comparison; the expanded forms of Selu, ThresholdedRelu, PRelu).
Up to four operands, activations first then constants (flash); ``slots`` maps a, b, t, f to them."""
from __future__ import annotations

from adaptc.program import Program, Step
from adaptc.qops import COMPARISONS

from .common import elements, flash_operands, operand_loops
from .registry import KernelCall, kernel

OPERANDS = 4


def where_loops(step: Step) -> dict[str, float]:
    """where_f32.c: per output element one comparison and one select; the three outer loops set
    up four pointers."""
    dims = operand_loops(step, OPERANDS)["dims"]
    return {"call": 1, "rows": dims[0] * dims[1] * dims[2], "elements": elements(step)}


@kernel("where_f32", "adaptc.where_f32", features=where_loops)
def where_f32(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    used = len(step.in_shapes) + len(step.consts)
    arrays = flash_operands(step) + [(f"operand{k}", None) for k in range(used, OPERANDS)]
    return KernelCall({**operand_loops(step, OPERANDS), "slots": [int(k) for k in a["slots"]],
                       "comparison": COMPARISONS[str(a["comparison"])][0]}, arrays)
