"""Optimized int8 kernels for the DSP extension (Cortex-M4/M7/M55): SMLAD/SXTB16 through ACLE intrinsics.

Drop-ins for the reference kernels in kernels.py (same arguments, bit-exact), registered as
``@kernel(op, "dsp")``; a builder returns None for a geometry it does not handle, and the
reference kernel runs instead. The C is in templates/kernels/*_dsp.c over the helpers of
templates/kernels/dsp.h, which also build on a host without the DSP extension (portable C
definitions of the instructions), so the host build runs the same kernels.

Exactness: the kernels requantize with ``adaptc_rq_apply`` (dsp.h), which equals TFLite's
MultiplyByQuantizedMultiplier while ``|s| + 2^(right_shift-1) < 2^31`` for the value ``s`` after
the doubling high multiply, in particular while ``|acc << max(shift, 0)| < 2^30``;
``requant_is_exact`` proves that for every channel from the weights and the bias.
"""
from __future__ import annotations

import numpy as np

from adaptc import formats
from adaptc.program import Program, Step

from .kernels import (SCRATCH, KernelCall, _bias, _conv_geometry, _dense_geometry, _filter, _qadd,
                      _requant_arrays, kernel, weight_format)

INT32_MAX = (1 << 31) - 1


def acc_bound(weights: np.ndarray, bias, input_offset: int, filter_offset: int = 0) -> np.ndarray:
    """Per output channel, the largest |accumulator| any int8 input can give: sum over the taps of
    |w + filter_offset| * max|x + input_offset| + |bias|. ``weights``: [out][taps]."""
    x_max = max(abs(-128 + input_offset), abs(127 + input_offset))
    w = np.abs(weights.astype(np.int64) + filter_offset)
    bound = w.sum(axis=1) * x_max
    if bias is not None:
        bound = bound + np.abs(np.asarray(bias, np.int64).reshape(-1))
    return bound


def requant_is_exact(bound: np.ndarray, mult, shift) -> bool:
    """True when adaptc_rq_apply (dsp.h) equals adaptc_mbqm for every accumulator with
    |acc| <= bound (per channel): 0 <= mult < 2^31 and |acc << max(shift, 0)| < 2^30."""
    mult = np.broadcast_to(np.asarray(mult, np.int64), bound.shape)
    left = np.maximum(np.broadcast_to(np.asarray(shift, np.int64), bound.shape), 0)
    if np.any(mult < 0) or np.any(mult > INT32_MAX) or np.any(left > 30):
        return False
    return bool(np.all(bound < (1 << 30) >> left))


def pack_words(data: np.ndarray) -> np.ndarray:
    """int8 bytes (a multiple of 4) -> int32 words of four, the first byte in the low byte
    (little-endian, as the cores and the host read them)."""
    return np.ascontiguousarray(data, np.int8).view("<i4").astype(np.int32)


def pack_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """[out][depth] int8 -> (weight words as adaptc_rows_x4 reads them, groups): each row
    zero-padded to groups = ceil(depth / 4) words of four bytes, the first in the low byte
    (little-endian, as the cores and the host read them)."""
    out, depth = rows.shape
    groups = -(-depth // 4)
    padded = np.zeros((out, groups * 4), np.int8)
    padded[:, :depth] = rows
    return pack_words(padded.reshape(-1)), groups


def channel_records(step: Step, n: int, rounding: bool = False) -> np.ndarray:
    """Per output channel {bias, mult, shift} (int32 each; bias 0 when the layer has none) as one
    flat int32 array -- the same bytes the reference kernels' three arrays hold; ``rounding``
    adds a fourth, round = 2^(-shift - 1) for shift < 0 else 0 (dsp.h adaptc_rq_record)."""
    bias = _bias(step, n, np.int32)[1]
    mult, shift = (a.astype(np.int64) for _, a in _requant_arrays(step, n))
    fields = [np.zeros_like(mult) if bias is None else bias.astype(np.int64), mult, shift]
    if rounding:
        fields.append(np.where(shift < 0, np.left_shift(1, np.maximum(-shift - 1, 0)), 0))
    return np.ascontiguousarray(np.stack(fields, axis=1).astype(np.int32).reshape(-1))


def depthwise_quads(taps: np.ndarray) -> np.ndarray:
    """Depthwise filter [taps][C] int8 -> the words depthwise_conv2d_s8_dsp reads: for each group
    of four channels its taps, four channel bytes a word; then the last C % 4 channels as
    [taps][C % 4] bytes, zero-padded to a whole word."""
    n_taps, c = taps.shape
    quads = c // 4
    head = taps[:, :4 * quads].reshape(n_taps, quads, 4).transpose(1, 0, 2).reshape(-1)
    data = np.concatenate([head, taps[:, 4 * quads:].reshape(-1)]).astype(np.int8)
    return pack_words(np.concatenate([data, np.zeros(-len(data) % 4, np.int8)]))


def _exact(step: Step, rows: np.ndarray, input_offset: int) -> bool:
    """requant_is_exact for a layer with weight rows [out][taps] and its bias / requantization."""
    n = rows.shape[0]
    bias = _bias(step, n, np.int32)[1]
    mult, shift = (a for _, a in _requant_arrays(step, n))
    return requant_is_exact(acc_bound(rows, bias, input_offset), mult, shift)


def coded_weights(step: Step, rows: np.ndarray) -> tuple[dict, np.ndarray, dict, int] | None:
    """(packed-format params, filter array, shared tables, groups) of a layer's weight rows
    [out][depth]: int8 as words (pack_rows; no params), a packed format of int8-sized values as
    its bitstream (decoded a row at a time through a byte table for 2- and 4-bit codes); None for
    wider values (pot5)."""
    fmt = weight_format(step)
    groups = -(-rows.shape[1] // 4)
    if not fmt.packed:
        return {}, pack_rows(rows.astype(np.int8))[0], {}, groups
    if fmt.max_value > 127:
        return None
    shared = {f"values_{fmt.name}": formats.decode_table(fmt).astype(np.int8)}
    params = {"bits": fmt.bits, "lut": 0, "values": ("shared", f"values_{fmt.name}")}
    if fmt.bits in (2, 4):
        shared[f"lut_{fmt.name}"] = byte_table(fmt)
        params["lut"] = ("shared", f"lut_{fmt.name}")
    return params, formats.pack(rows, fmt), shared, groups


def byte_table(fmt) -> np.ndarray:
    """For every byte of a 2- or 4-bit stream, its codes' int8 values packed little-endian:
    uint16 (two values) or uint32 (four)."""
    per = 8 // fmt.bits
    codes = (np.arange(256)[:, None] >> (np.arange(per) * fmt.bits)) & ((1 << fmt.bits) - 1)
    values = formats.decode_table(fmt)[codes].astype(np.int64) & 0xFF
    word = (values << (8 * np.arange(per))).sum(axis=1)
    return word.astype(np.uint16 if per == 2 else np.uint32)


@kernel("adaptc.qconv2d", "dsp")
def _qconv2d_dsp(step: Step, prog: Program) -> KernelCall | None:
    geo = _conv_geometry(step, prog)
    depthwise, w = _filter(step, geo)
    a = step.attrs
    input_offset = -a["input_zp"]
    out = {"input_offset": input_offset, "output_offset": a["output_zp"], "act_min": a["act_min"],
           "act_max": a["act_max"]}
    if depthwise:
        if geo["out_c"] != geo["in_c"] or weight_format(step).packed:
            return None                                              # depth_multiplier > 1, packed: reference
        taps = np.ascontiguousarray(w.reshape(-1, geo["out_c"]).T)   # [k_h * k_w][C] -> [C][taps]
        if not _exact(step, taps, input_offset):
            return None
        params = {k: v for k, v in geo.items() if k != "out_c"}
        params["right_shifts"] = int(all(s < 0 for s in _requant_arrays(step, geo["out_c"])[1][1].tolist()))
        return KernelCall("depthwise_conv2d_s8_dsp", {**params, **out, "scratch": SCRATCH},
                          [("weights", depthwise_quads(w.reshape(-1, geo["out_c"]))),
                           ("channels", channel_records(step, geo["out_c"], rounding=True))],
                          files=["dsp.h", "depthwise_conv2d_s8_dsp"],
                          scratch_bytes=3 * geo["k_h"] * geo["in_c"] if geo["k_w"] == 3 else 0)
    rows = w.reshape(geo["out_c"], -1)                                # OHWI -> [out][k_h*k_w*in_c]
    coded = coded_weights(step, rows)
    if coded is None or not _exact(step, rows, input_offset):
        return None
    code, filt, shared, groups = coded
    gather = 4 * groups if geo["in_c"] % 4 else 0
    name = "conv2d_s8_packed_dsp" if code else "conv2d_s8_dsp"
    return KernelCall(name, {**geo, **out, **code, "scratch": SCRATCH},
                      [("weights", filt), ("channels", channel_records(step, geo["out_c"]))],
                      files=["dsp.h", name], shared=shared,
                      scratch_bytes=(36 if code else 32) * groups + 4 * geo["out_c"] + gather)


@kernel("adaptc.qdense", "dsp")
def _qdense_dsp(step: Step, prog: Program) -> KernelCall | None:
    a, geo = step.attrs, _dense_geometry(step, prog)
    if a["filter_offset"] != 0:
        return None                                                  # asymmetric weights: reference
    rows = np.ascontiguousarray(step.consts["weights"].T)            # [IN, OUT] -> [OUT][IN]
    input_offset = -a["input_zp"]
    coded = coded_weights(step, rows)
    if coded is None or not _exact(step, rows, input_offset):
        return None
    code, filt, shared, groups = coded
    params = {**geo, "input_offset": input_offset, "output_offset": a["output_zp"],
              "act_min": a["act_min"], "act_max": a["act_max"], **code, "scratch": SCRATCH}
    name = "fully_connected_s8_packed_dsp" if code else "fully_connected_s8_dsp"
    return KernelCall(name, params, [("weights", filt), ("channels", channel_records(step, geo["out_features"]))],
                      files=["dsp.h", name], shared=shared, scratch_bytes=(12 if code else 8) * groups)


@kernel("adaptc.qadd", "dsp")
def _qadd_dsp(step: Step, prog: Program) -> KernelCall | None:
    call = _qadd(step, prog)
    p = call.params
    sums = 0
    for k in ("input1", "input2"):
        off = p[f"{k}_offset"]
        x = max(abs(-128 + off), abs(127 + off)) << p["left_shift"]   # |(x + offset) << left_shift|
        if not requant_is_exact(np.array([x]), p[f"{k}_multiplier"], p[f"{k}_shift"]):
            return None
        sums += x << max(p[f"{k}_shift"], 0)                          # |MBQM(v, m, s)| <= |v| << max(s, 0)
    if not requant_is_exact(np.array([sums]), p["output_multiplier"], p["output_shift"]):
        return None
    return KernelCall("add_s8_dsp", p, [], "add_s8_params", files=["dsp.h", "add_s8_dsp"])
