"""FULLY_CONNECTED / Gemm / MatMul: ``adaptc.qdense`` and ``adaptc.dense_f32``.

Reference: fully_connected_s8 (TFLite's reference_integer_ops::FullyConnected, any weight zero
point), fully_connected_s8_packed (low-bit weights, shift-and-add MACs for power-of-two weights),
fully_connected_f32. DSP: the input converted to int16 once per row, two SMLAD per four weights --
fully_connected_s8_dsp four outputs at a time sharing each column word (weight rows interleaved
by quad), for any accumulator bound (its rq_mode), _packed_dsp a row at a time. MVE:
fully_connected_s8_mve -- four outputs at a time with VMLADAV. The optimized kernels need
symmetric weights (zero point 0).
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
    prefix_note,
    requant_arrays,
    weight_format,
)
from .loops import clamps, dense_dims, fc_columns, pot_macs, shifts, straddles, unpack_rows
from .registry import SCRATCH, KernelCall, kernel
from .simd import MVE_NOTE, RQ_NOTES, channel_records, coded_weights, exact_requant, folded_bias, pack_rows

# ------------------------------------------------------------------------------ reference


def fc_ref_loops(step: Step) -> dict[str, float]:
    b, i, o = dense_dims(step)
    return {"call": 1, "batches": b, "outputs": b * o, "macs": b * o * i}


def _packed(step: Step) -> bool:
    """The packed kernels take low-bit weights without a zero point."""
    return weight_format(step).packed and step.attrs["filter_offset"] == 0


@kernel("fully_connected_s8", "adaptc.qdense", features=fc_ref_loops, widths=True)
def fully_connected_s8(step: Step, prog: Program) -> KernelCall | None:
    if _packed(step):
        return None
    a, geo = step.attrs, dense_geometry(step, prog)
    out = int8_output(step)
    rows = dense_rows(step).astype(np.int8)              # a width level's: the widest's rows
    params = {**geo, "filter_stride": int(rows.shape[1]), "input_offset": out["input_offset"],
              "filter_offset": a["filter_offset"], "output_offset": out["output_offset"], "act_min": out["act_min"],
              "act_max": out["act_max"]}
    return KernelCall(params, [("weights", rows), bias_array(step, geo["out_features"], np.int32),
                               *requant_arrays(step, geo["out_features"])], note=prefix_note(step))


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
    """fully_connected_s8_dsp.c, per batch row: the input to int16 (fc_dsp_column: eight values
    an iteration, then adaptc_col_from_s8's groups and partial tail); the quads of outputs --
    rq_mode 2: fc_dsp_quads_rq, eight groups an iteration and the rest one at a time, the four
    outputs requantized in its assembly; otherwise fc_dsp_quad, four groups an iteration and the
    rest singly, then fc_dsp_outputs --, and the quads whose loops are skipped (``_no_``: a
    branch taken); the last out % 4 rows through adaptc_dot_row (two groups an iteration, an odd
    one) and fc_dsp_outputs; the outputs fc_dsp_outputs requantizes by rq_mode (2, 1 with
    shift < 0 / >= 0, 0); the clamp pass of a narrow activation."""
    b, i, o = dense_dims(step)
    mode = _rq_mode(step, dense_rows(step), int8_output(step)["input_offset"])
    groups = -(-i // 4)
    quads, rows = b * (o // 4), b * (o % 4)
    asm, c_quads = (quads, 0) if mode == 2 else (0, quads)
    in_c = np.arange(o) >= (4 * (o // 4) if mode == 2 else 0)       # channels fc_dsp_outputs requantizes
    neg = shifts(step, o) < 0
    c_outputs, c_neg = b * int(in_c.sum()), b * int((in_c & neg).sum())
    return {"call": 1, "batches": b, "convert_pairs": b * (i // 8), "convert_groups": b * (i % 8 // 4),
            "convert_tails": b * (i % 4 > 0), "convert_tail_values": b * (i % 4), "batches_no_quads": b * (o < 4),
            "quads_asm": asm, "quad_eights_asm": asm * (groups // 8), "quad_singles_asm": asm * (groups % 8),
            "quads_asm_no_eights": asm * (groups < 8), "quads_asm_no_singles": asm * (groups % 8 == 0),
            "quads_c": c_quads, "quad_fours_c": c_quads * (groups // 4), "quad_singles_c": c_quads * (groups % 4),
            "quads_c_no_fours": c_quads * (groups < 4), "quads_c_no_singles": c_quads * (groups % 4 == 0),
            "rows": rows, "row_pairs": rows * (groups // 2), "row_odds": rows * (groups % 2),
            "rows_no_pairs": rows * (groups < 2),
            "output_calls": c_quads + rows, "outputs_rq_right": c_outputs * (mode == 2),
            "outputs_rq_neg": c_neg * (mode == 1), "outputs_rq_pos": (c_outputs - c_neg) * (mode == 1),
            "outputs_exact": c_outputs * (mode == 0), "clamp_batches": b * clamps(step),
            "clamp": b * o * clamps(step)}


def fc_packed_dsp_loops(step: Step) -> dict[str, float]:
    """fully_connected_s8_packed_dsp.c: fully_connected_s8_dsp with each row decoded first
    (adaptc_unpack_row; the stream restarts for every batch row)."""
    b, i, o = dense_dims(step)
    unpack = unpack_rows(o, i, weight_format(step))
    return {**fc_columns(step, b, i, o), **{k: b * v for k, v in unpack.items()}}


def _packed_dsp_call(step: Step, prog: Program) -> KernelCall | None:
    """fully_connected_s8_packed_dsp (codes of at most 8 bits), for symmetric weights whose
    requantization is provably exact (simd.requant_is_exact)."""
    if step.attrs["filter_offset"] != 0 or not weight_format(step).packed:
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


def _rq_mode(step: Step, rows: np.ndarray, input_offset: int) -> int | None:
    """fully_connected_s8_dsp's rq_mode (fc_dsp_out): 2 where requant_is_exact proves the fast
    form for every channel's largest accumulator and every shift is < 0, 1 where it proves it
    otherwise, 0 (adaptc_rq_exact) where it does not; None for a requantization outside
    adaptc_mbqm's domain (0 <= mult < 2^31, -31 <= shift <= 30)."""
    mult, shift = (a.astype(np.int64) for _, a in requant_arrays(step, rows.shape[0]))
    if np.any(mult < 0) or np.any(shift < -31) or np.any(shift > 30):
        return None
    if not exact_requant(step, rows, input_offset):
        return 0
    return 2 if bool(np.all(shift < 0)) else 1


def dsp_weights(rows: np.ndarray) -> np.ndarray:
    """[out][in] int8 -> fully_connected_s8_dsp.c's words: each row zero-padded to groups words
    (pack_rows); the rows of each quad of outputs interleaved word by word ([quad][group][4]),
    then the last out % 4 rows one after the other."""
    words, groups = pack_rows(rows.astype(np.int8))
    n = rows.shape[0]
    quads = n // 4
    words = words.reshape(n, groups)
    head = words[:4 * quads].reshape(quads, 4, groups).transpose(0, 2, 1).reshape(-1)
    return np.ascontiguousarray(np.concatenate([head, words[4 * quads:].reshape(-1)]).astype(np.int32))


def dsp_records(step: Step, n: int, mode: int) -> np.ndarray:
    """fully_connected_s8_dsp.c's channel records: per quad the four biases, then the four
    {mult, shift field}; then {bias, mult, shift field} per last row. The shift field is
    -shift - 1 in rq_mode 2, the shift otherwise."""
    rec = channel_records(step, n).reshape(n, 3).astype(np.int64)
    if mode == 2:
        rec[:, 2] = -rec[:, 2] - 1
    quads = n // 4
    q = rec[:4 * quads].reshape(quads, 4, 3)
    head = np.concatenate([q[:, :, 0], q[:, :, 1:].reshape(quads, 8)], axis=1).reshape(-1)
    return np.ascontiguousarray(np.concatenate([head, rec[4 * quads:].reshape(-1)]).astype(np.int32))


@kernel("fully_connected_s8_dsp", "adaptc.qdense", "dsp", features=fc_dsp_loops, headers=("dsp.h",))
def fully_connected_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    """fully_connected_s8's results by fully_connected_s8_dsp.c for int8 symmetric weights, any
    accumulator bound (rq_mode: _rq_mode)."""
    if step.attrs["filter_offset"] != 0 or weight_format(step).packed:
        return None                                                  # asymmetric or packed weights
    geo = dense_geometry(step, prog)
    rows = dense_rows(step)
    out = int8_output(step)
    mode = _rq_mode(step, rows, out["input_offset"])
    if mode is None:
        return None
    return KernelCall({**geo, **out, "rq_mode": mode, "scratch": SCRATCH},
                      [("weights", dsp_weights(rows)), ("channels", dsp_records(step, geo["out_features"], mode))],
                      scratch_bytes=8 * -(-geo["in_features"] // 4), note=RQ_NOTES[mode])


@kernel("fully_connected_s8_packed_dsp", "adaptc.qdense", "dsp", features=fc_packed_dsp_loops,
        headers=("dsp.h",))
def fully_connected_s8_packed_dsp(step: Step, prog: Program) -> KernelCall | None:
    return _packed_dsp_call(step, prog)


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
    params = {**geo, "filter_stride": geo["in_features"], "input_offset": out["input_offset"], "filter_offset": 0,
              "output_offset": out["output_offset"], "act_min": out["act_min"], "act_max": out["act_max"]}
    return KernelCall(params, [("weights", rows), ("bias", folded_bias(step, rows, out["input_offset"])),
                               *requant_arrays(step, geo["out_features"])], note=MVE_NOTE)
