"""Batched matmul with broadcasting over the batch dims (TFLite BATCH_MATMUL, ONNX MatMul of two
activations or with a constant operand that is no dense layer's weights): ``adaptc.qbatch_matmul``
(TFLite Micro's int8 reference BatchMatMul; batch_matmul_s8_packed: the same by a constant operand
with low-bit weights -- pot2 .. pot5, int4 -- decoded an output vector at a time, shift-and-add
MACs for power-of-two weights) and ``adaptc.batch_matmul_f32``. Up to three batch dims (TFLite's
rank 5); a 1-D operand is a row (lhs) or column (rhs) vector, as numpy's."""
from __future__ import annotations

import numpy as np

from adaptc import formats
from adaptc.program import Program, Step

from .common import POT_MULTIPLIER, act_f32, weight_format
from .loops import straddles
from .registry import SCRATCH, KernelCall, kernel

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
    if g is None or _packed(step):
        return None
    a = step.attrs
    return KernelCall({**g, "lhs_offset": -a["lhs_zp"], "rhs_offset": -a["rhs_zp"], "multiplier": a["multiplier"][0],
                       "shift": a["shift"][0], "output_offset": a["output_zp"], "act_min": a["act_min"],
                       "act_max": a["act_max"]}, _operand(step))


def _packed(step: Step) -> bool:
    """The packed kernel takes a constant operand with low-bit weights and zero point 0."""
    if not step.consts or not weight_format(step).packed:
        return False
    return step.attrs["lhs_zp" if step.attrs.get("swap") else "rhs_zp"] == 0


def _vectors(step: Step, g: dict) -> np.ndarray:
    """The constant as [matrices][outputs][depth]: a constant rhs's columns, a constant lhs's rows."""
    c = np.asarray(next(iter(step.consts.values())))
    if g["swap"]:
        return c.reshape(-1, g["rows"], g["depth"])
    return np.swapaxes(c.reshape(-1, g["depth"], g["cols"]), 1, 2)


def batch_matmul_packed_loops(step: Step) -> dict[str, float]:
    """batch_matmul_s8_packed.c: per matrix and output vector its depth codes decoded, then per
    activation vector the MACs (shift-and-add for pot weights: a zero weight costs its test only)
    and the requantization (without a multiply when the multiplier is 2^30)."""
    loops = batch_matmul_loops(step)
    g = _geometry(step)
    fmt = weight_format(step)
    pot = fmt.kind == "pot"
    vectors = loops["matrices"] * (g["rows"] if g["swap"] else g["cols"])
    decoded = vectors * g["depth"]
    zero = 0.0
    if pot:                            # each constant matrix serves matrices / its count of them
        v = _vectors(step, g)
        zero = float((v == 0).sum() * loops["matrices"] // len(v) * (g["cols"] if g["swap"] else g["rows"]))
    macs = loops["macs"]
    pot_requant = int(step.attrs["multiplier"][0]) == POT_MULTIPLIER
    return {"call": 1, "matrices": loops["matrices"], "vectors": vectors, "decode": decoded,
            "decode_pot": decoded * pot, "straddles": straddles(decoded, fmt.bits), "outputs": loops["outputs"],
            "macs_int": 0 if pot else macs, "macs_pot_zero": zero, "macs_pot": macs - zero if pot else 0,
            "requant_pot": loops["outputs"] * pot_requant, "requant": loops["outputs"] * (not pot_requant)}


@kernel("batch_matmul_s8_packed", "adaptc.qbatch_matmul", features=batch_matmul_packed_loops)
def batch_matmul_s8_packed(step: Step, prog: Program) -> KernelCall | None:
    g = _geometry(step)
    if g is None or not _packed(step):
        return None
    fmt, a = weight_format(step), step.attrs
    rows, depth, cols, swap = g["rows"], g["depth"], g["cols"], g["swap"]
    const, act = ("lhs_strides", "rhs_strides") if swap else ("rhs_strides", "lhs_strides")
    if swap:       # out[i][j] = sum_k c[i][k] * x[k][j]: o = i, t = j
        loops = {"outputs": rows, "others": cols, "act_t": 1, "act_k": cols, "out_o": cols, "out_t": 1}
    else:          # out[i][j] = sum_k x[i][k] * c[k][j]: o = j, t = i
        loops = {"outputs": cols, "others": rows, "act_t": depth, "act_k": 1, "out_o": 1, "out_t": cols}
    pot_requant = int(a["multiplier"][0]) == POT_MULTIPLIER
    in_zp = a["rhs_zp"] if swap else a["lhs_zp"]
    params = {"dims": g["dims"], "act_strides": g[act], "code_strides": [s * fmt.bits for s in g[const]],
              **loops, "depth": depth, "matrix": rows * cols, "input_offset": -in_zp,
              "multiplier": a["multiplier"][0], "shift": a["shift"][0], "output_offset": a["output_zp"],
              "act_min": a["act_min"], "act_max": a["act_max"], "bits": fmt.bits, "kind": int(fmt.kind == "pot"),
              "pot_requant": int(pot_requant), "scratch": SCRATCH}
    return KernelCall(params, [("weights", formats.pack(_vectors(step, g), fmt))], scratch_bytes=depth)


@kernel("batch_matmul_f32", "adaptc.batch_matmul_f32", features=batch_matmul_loops)
def batch_matmul_f32(step: Step, prog: Program) -> KernelCall | None:
    g = _geometry(step)
    return None if g is None else KernelCall({**g, **act_f32(step.attrs)}, _operand(step))
