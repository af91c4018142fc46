"""Batched matmul with broadcasting over the batch dims (TFLite BATCH_MATMUL, ONNX MatMul of two
activations or with a constant operand that is no dense layer's weights): ``adaptc.qbatch_matmul``
(TFLite Micro's int8 reference BatchMatMul) and ``adaptc.batch_matmul_f32``. Up to three batch
dims (TFLite's rank 5); a 1-D operand is a row (lhs) or column (rhs) vector, as numpy's."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import act_f32
from .registry import KernelCall, kernel

BATCH_DIMS = 3


def _geometry(step: Step) -> dict | None:
    """The loops and the per-operand batch strides (elements; 0: broadcast), or None beyond
    three batch dims."""
    shapes = [tuple(s) for s in step.in_shapes] + [c.shape for c in step.consts.values()]
    lhs, rhs = shapes[::-1] if step.attrs.get("swap") else shapes
    lhs = (1, *lhs) if len(lhs) == 1 else tuple(lhs)
    rhs = (*rhs, 1) if len(rhs) == 1 else tuple(rhs)
    batch = np.broadcast_shapes(lhs[:-2], rhs[:-2])
    if len(batch) > BATCH_DIMS:
        return None
    dims = [1] * (BATCH_DIMS - len(batch)) + [int(d) for d in batch]

    def strides(shape):
        b = [1] * (BATCH_DIMS - len(shape[:-2])) + [int(d) for d in shape[:-2]]
        size, out = shape[-2] * shape[-1], [0] * BATCH_DIMS
        for i in reversed(range(BATCH_DIMS)):
            out[i] = size if b[i] != 1 else 0
            size *= b[i]
        return out

    return {"dims": dims, "lhs_strides": strides(lhs), "rhs_strides": strides(rhs), "rows": int(lhs[-2]),
            "depth": int(lhs[-1]), "cols": int(rhs[-1]), "swap": int(bool(step.attrs.get("swap")))}


def _operand(step: Step) -> list:
    return [(role, step.consts[role]) for role in ("lhs", "rhs") if role in step.consts]


def batch_matmul_loops(step: Step) -> dict[str, float]:
    """batch_matmul_*.c: per matrix a setup, per output a requantization, per product a MAC."""
    g = _geometry(step) or {"dims": [0, 0, 0], "rows": 0, "cols": 0, "depth": 0}
    matrices = int(np.prod(g["dims"]))
    outputs = matrices * g["rows"] * g["cols"]
    return {"call": 1, "matrices": matrices, "outputs": outputs, "macs": outputs * g["depth"]}


@kernel("batch_matmul_s8", "adaptc.qbatch_matmul", features=batch_matmul_loops)
def batch_matmul_s8(step: Step, prog: Program) -> KernelCall | None:
    g = _geometry(step)
    if g is None:
        return None
    a = step.attrs
    return KernelCall({**g, "lhs_offset": -a["lhs_zp"], "rhs_offset": -a["rhs_zp"], "multiplier": a["multiplier"][0],
                       "shift": a["shift"][0], "output_offset": a["output_zp"], "act_min": a["act_min"],
                       "act_max": a["act_max"]}, _operand(step))


@kernel("batch_matmul_f32", "adaptc.batch_matmul_f32", features=batch_matmul_loops)
def batch_matmul_f32(step: Step, prog: Program) -> KernelCall | None:
    g = _geometry(step)
    return None if g is None else KernelCall({**g, **act_f32(step.attrs)}, _operand(step))
