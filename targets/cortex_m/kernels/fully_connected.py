"""FULLY_CONNECTED / Gemm / MatMul: ``adaptc.qdense`` and ``adaptc.dense_f32``.

Reference: fully_connected_s8 (TFLite's reference_integer_ops::FullyConnected, any weight zero
point), fully_connected_s8_packed (low-bit weights, shift-and-add MACs for power-of-two weights),
fully_connected_f32. DSP: fully_connected_s8_dsp / _packed_dsp -- the input converted to int16
once per row, two SMLAD per four weights. MVE: fully_connected_s8_mve -- four outputs at a time
with VMLADAV. The optimized kernels need symmetric weights (zero point 0).
"""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import (
    act_f32,
    bias_array,
    dense_geometry,
    dense_rows,
    int8_output,
    packed_call,
    requant_arrays,
    weight_format,
)
from .loops import dense_dims, fc_columns, pot_macs, straddles, unpack_rows
from .registry import SCRATCH, KernelCall, kernel
from .simd import channel_records, coded_weights, exact_requant, folded_bias

# ------------------------------------------------------------------------------ reference


def fc_ref_loops(step: Step) -> dict[str, float]:
    b, i, o = dense_dims(step)
    return {"call": 1, "batches": b, "outputs": b * o, "macs": b * o * i}


def _packed(step: Step) -> bool:
    """The packed kernels take low-bit weights without a zero point."""
    return weight_format(step).packed and step.attrs["filter_offset"] == 0


@kernel("fully_connected_s8", "adaptc.qdense", features=fc_ref_loops)
def fully_connected_s8(step: Step, prog: Program) -> KernelCall | None:
    if _packed(step):
        return None
    a, geo = step.attrs, dense_geometry(step, prog)
    out = int8_output(step)
    params = {**geo, "input_offset": out["input_offset"], "filter_offset": a["filter_offset"],
              "output_offset": out["output_offset"], "act_min": out["act_min"], "act_max": out["act_max"]}
    return KernelCall(params, [("weights", dense_rows(step).astype(np.int8)),
                               bias_array(step, geo["out_features"], np.int32),
                               *requant_arrays(step, geo["out_features"])])


def fc_packed_loops(step: Step) -> dict[str, float]:
    """fully_connected_s8_packed.c: per output its row decoded once, then per batch row the MACs
    (shift-and-add for pot weights) and the requantization."""
    b, i, o = dense_dims(step)
    fmt = weight_format(step)
    pot = fmt.kind == "pot"
    zero, nonzero = pot_macs(step, None, b) if pot else (0.0, 0.0)
    pot_requant = bool(np.all(np.asarray(step.attrs["multiplier"]) == 1 << 30))
    return {"call": 1, "out_rows": o, "decode": o * i, "decode_pot": o * i * pot,
            "straddles": straddles(o * i, fmt.bits), "outputs": b * o, "macs_int": 0 if pot else b * o * i,
            "macs_pot_zero": zero, "macs_pot": nonzero, "requant_pot": b * o * pot_requant,
            "requant": b * o * (not pot_requant)}


@kernel("fully_connected_s8_packed", "adaptc.qdense", features=fc_packed_loops)
def fully_connected_s8_packed(step: Step, prog: Program) -> KernelCall | None:
    if not _packed(step):
        return None
    geo = dense_geometry(step, prog)
    return packed_call(step, {**geo, **int8_output(step)}, dense_rows(step), geo["out_features"],
                       geo["in_features"])


@kernel("fully_connected_f32", "adaptc.dense_f32", features=fc_ref_loops)
def fully_connected_f32(step: Step, prog: Program) -> KernelCall | None:
    geo = dense_geometry(step, prog)
    return KernelCall({**geo, **act_f32(step.attrs)},
                      [("weights", dense_rows(step).astype(np.float32)),
                       bias_array(step, geo["out_features"], np.float32)])


# ------------------------------------------------------------------------------------ DSP


def fc_dsp_loops(step: Step) -> dict[str, float]:
    """fully_connected_s8_dsp.c: per batch row the input converted to int16 once; per output
    two SMLAD per group of four weights, then requantized."""
    return fc_columns(step, *dense_dims(step))


def fc_packed_dsp_loops(step: Step) -> dict[str, float]:
    """fully_connected_s8_packed_dsp.c: fully_connected_s8_dsp with each row decoded first
    (adaptc_unpack_row; the stream restarts for every batch row)."""
    b, i, o = dense_dims(step)
    unpack = unpack_rows(o, i, weight_format(step))
    return {**fc_columns(step, b, i, o), **{k: b * v for k, v in unpack.items()}}


def _dsp_call(step: Step, prog: Program, packed: bool) -> KernelCall | None:
    """fully_connected_s8_dsp (int8 weights) or _packed_dsp (codes of at most 8 bits), for
    symmetric weights whose requantization is provably exact (simd.requant_is_exact)."""
    if step.attrs["filter_offset"] != 0 or weight_format(step).packed != packed:
        return None                                                  # asymmetric weights: reference
    geo = dense_geometry(step, prog)
    rows = dense_rows(step)
    out = int8_output(step)
    coded = coded_weights(step, rows)
    if coded is None or not exact_requant(step, rows, out["input_offset"]):
        return None
    code, filt, shared, groups = coded
    return KernelCall({**geo, **out, **code, "scratch": SCRATCH},
                      [("weights", filt), ("channels", channel_records(step, geo["out_features"]))],
                      shared=shared, scratch_bytes=(12 if code else 8) * groups)


@kernel("fully_connected_s8_dsp", "adaptc.qdense", "dsp", features=fc_dsp_loops, headers=("dsp.h",))
def fully_connected_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    return _dsp_call(step, prog, packed=False)


@kernel("fully_connected_s8_packed_dsp", "adaptc.qdense", "dsp", features=fc_packed_dsp_loops,
        headers=("dsp.h",))
def fully_connected_s8_packed_dsp(step: Step, prog: Program) -> KernelCall | None:
    return _dsp_call(step, prog, packed=True)


# ------------------------------------------------------------------------------------ MVE


def fc_mve_loops(step: Step) -> dict[str, float]:
    """fully_connected_s8_mve.c: four outputs at a time, VMLADAVA over whole 16-byte vectors and
    one predicated tail, requantized four lanes at once."""
    b, i, o = dense_dims(step)
    quads = b * -(-o // 4)
    return {"call": 1, "batches": b, "quads": quads, "vectors": quads * (i // 16), "vector_tails": quads * (i % 16 > 0)}


@kernel("fully_connected_s8_mve", "adaptc.qdense", "mve", features=fc_mve_loops,
        params_type="fully_connected_s8_params", headers=("dsp.h", "mve.h"))
def fully_connected_s8_mve(step: Step, prog: Program) -> KernelCall | None:
    if weight_format(step).packed or step.attrs["filter_offset"] != 0:
        return None                                                  # packed low-bit or asymmetric weights
    geo = dense_geometry(step, prog)
    rows = dense_rows(step).astype(np.int8)
    out = int8_output(step)
    params = {**geo, "input_offset": out["input_offset"], "filter_offset": 0, "output_offset": out["output_offset"],
              "act_min": out["act_min"], "act_max": out["act_max"]}
    return KernelCall(params, [("weights", rows), ("bias", folded_bias(step, rows, out["input_offset"])),
                               *requant_arrays(step, geo["out_features"])])
