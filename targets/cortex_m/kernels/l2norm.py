"""L2_NORMALIZATION, int8: ``adaptc.ql2norm`` (TFLite's reference_integer_ops::L2Normalization,
templates/kernels/l2norm_s8.c). The float operator is plain element-wise and reduction steps
(tvm_compat's importer writes it so)."""
from __future__ import annotations

from adaptc.program import Program, Step

from .common import elements, rows_depth
from .registry import KernelCall, kernel


def l2norm_loops(step: Step) -> dict[str, float]:
    """l2norm_s8.c: per row a sum of squares and an inverse square root, per element a square and
    a requantization."""
    n = elements(step)
    return {"call": 1, "rows": n // int(step.out_shape[-1]), "elements": n}


@kernel("l2norm_s8", "adaptc.ql2norm", features=l2norm_loops)
def l2norm_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**rows_depth(step), "input_zp": int(step.attrs["input_zp"])}, [])
