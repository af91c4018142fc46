"""Element-wise functions of adaptc.unary in float32 (sigmoid, tanh, hard swish, hard sigmoid,
leaky ReLU, ELU): ``adaptc.unary_f32``, one kernel with the function as a parameter. Their int8
forms are tables (``adaptc.qlut``, activation.py)."""
from __future__ import annotations

from adaptc import unary
from adaptc.program import Program, Step

from .common import elements
from .registry import KernelCall, kernel


def unary_loops(step: Step) -> dict[str, float]:
    """unary_f32.c: one loop; the body's cost depends on the function (libm calls or not)."""
    n = elements(step)
    return {"call": 1, **{f"elements_{name}": n * (name == step.attrs["function"]) for name in unary.FUNCTIONS}}


@kernel("unary_f32", "adaptc.unary_f32", features=unary_loops)
def unary_f32(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({"size": elements(step), "function": unary.FUNCTIONS[a["function"]].code,
                       "alpha": float(a.get("alpha", 0.0)), "beta": float(a.get("beta", 0.0))}, [])
