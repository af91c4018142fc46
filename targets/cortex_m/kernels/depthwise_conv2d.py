"""DEPTHWISE_CONV_2D (groups = channels): ``adaptc.qconv2d`` / ``adaptc.conv2d_f32`` with a
depthwise filter.

Reference: depthwise_conv2d_s8 (TFLite's reference_integer_ops::DepthwiseConvPerChannel, any
depth multiplier), depthwise_conv2d_s8_packed (the same on low-bit weights -- pot2 .. pot5,
int4 -- decoded a channel at a time; shift-and-add MACs for power-of-two weights),
depthwise_conv2d_f32. DSP: depthwise_conv2d_s8_dsp -- four channels a group with SMLABB /
SMLATT, 3-wide filters over a copied window in assembly -- and depthwise_conv2d_s8_packed_dsp,
the same on low-bit weights of int8 range (pot2 .. pot4, int4) decoded into the arena once per
call. MVE: depthwise_conv2d_s8_mve -- eight channels a chunk in int16 lanes, int8 weights. The
optimized kernels need a depth multiplier of 1.
"""
from __future__ import annotations

import numpy as np

from adaptc import formats
from adaptc.program import Program, Step

from .common import (
    act_f32,
    bias_array,
    conv_filter,
    conv_geometry,
    int8_output,
    is_depthwise,
    packed_call,
    requant_arrays,
    weight_format,
)
from .loops import clamps, conv_loops, inside, shifts, straddles
from .registry import SCRATCH, KernelCall, kernel
from .simd import channel_records, depthwise_quads, exact_requant

# ------------------------------------------------------------------------------ reference


def depthwise_ref_loops(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8.c / _f32.c: per pixel, in_c x depth_multiplier outputs, each over
    k_h filter rows and the in-bounds taps (one MAC each)."""
    g = conv_loops(step)
    outputs = g.pixels * g.out_c
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "channels": g.pixels * g.in_c,
            "outputs": outputs, "filter_rows": outputs * g.k_h,
            "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()), "taps": g.out_c * g.valid_taps}


@kernel("depthwise_conv2d_s8", "adaptc.qconv2d", features=depthwise_ref_loops)
def depthwise_conv2d_s8(step: Step, prog: Program) -> KernelCall | None:
    if not is_depthwise(step) or weight_format(step).packed:
        return None
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    return KernelCall({**geo, **int8_output(step), "depth_multiplier": geo["out_c"] // geo["in_c"]},
                      [("weights", w.astype(np.int8)), bias_array(step, geo["out_c"], np.int32),
                       *requant_arrays(step, geo["out_c"])])


def depthwise_packed_loops(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8_packed.c: per output channel its k_h x k_w codes decoded, then
    depthwise_conv2d_s8's loops with shift-and-add MACs for pot weights (adaptc_pot_mac: a zero
    weight costs its test only); requantized without a multiply when every multiplier is 2^30."""
    g = conv_loops(step)
    fmt = weight_format(step)
    taps = g.k_h * g.k_w
    outputs = g.pixels * g.out_c
    pot = fmt.kind == "pot"
    zero = nonzero = 0.0
    if pot:                              # each tap (ky, kx) of a channel once per pixel where it is in bounds
        in_y = inside(np.arange(g.out_h) * g.s_h - g.p_t, g.k_h, g.d_h, g.in_h).sum(axis=0)
        in_x = inside(np.arange(g.out_w) * g.s_w - g.p_l, g.k_w, g.d_w, g.in_w).sum(axis=0)
        uses = g.b * in_y[:, None] * in_x[None, :]                                    # [k_h, k_w]
        zeros = (np.asarray(step.consts["weights"]) == 0).reshape(g.k_h, g.k_w, -1).sum(axis=2)
        zero = float((zeros * uses).sum())
        nonzero = float(uses.sum() * g.out_c - zero)
    pot_requant = bool(np.all(np.asarray(step.attrs["multiplier"]) == 1 << 30))
    return {"call": 1, "out_rows": g.out_c, "decode": g.out_c * taps, "decode_pot": g.out_c * taps * pot,
            "straddles": straddles(g.out_c * taps, fmt.bits), "rows": g.out_c * g.b * g.out_h,
            "outputs": outputs, "filter_rows": outputs * g.k_h,
            "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()),
            "macs_int": 0 if pot else g.out_c * g.valid_taps, "macs_pot_zero": zero, "macs_pot": nonzero,
            "requant_pot": outputs * pot_requant, "requant": outputs * (not pot_requant)}


@kernel("depthwise_conv2d_s8_packed", "adaptc.qconv2d", features=depthwise_packed_loops)
def depthwise_conv2d_s8_packed(step: Step, prog: Program) -> KernelCall | None:
    if not is_depthwise(step) or not weight_format(step).packed:
        return None
    g = conv_geometry(step, prog)
    _, w = conv_filter(step, g)
    rows = np.ascontiguousarray(w.reshape(-1, g["out_c"]).T)           # [k_h][k_w][C*mult] -> [C*mult][taps]
    row = g["in_w"] * g["in_c"]
    strides = {"depth_multiplier": g["out_c"] // g["in_c"], "taps": rows.shape[1],
               "image_bytes": g["in_h"] * row, "step_y": g["stride_h"] * row, "step_x": g["stride_w"] * g["in_c"],
               "tap_y": g["dil_h"] * row, "tap_x": g["dil_w"] * g["in_c"],
               "origin": -(g["pad_top"] * row + g["pad_left"] * g["in_c"])}
    return packed_call(step, {**g, **int8_output(step), **strides}, rows, g["out_c"], rows.shape[1])


@kernel("depthwise_conv2d_f32", "adaptc.conv2d_f32", features=depthwise_ref_loops)
def depthwise_conv2d_f32(step: Step, prog: Program) -> KernelCall | None:
    if not is_depthwise(step):
        return None
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    return KernelCall({**geo, **act_f32(step.attrs), "depth_multiplier": geo["out_c"] // geo["in_c"]},
                      [("weights", w.astype(np.float32)), bias_array(step, geo["out_c"], np.float32)])


# ------------------------------------------------------------------------------------ DSP


def depthwise_dsp_loops(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8_dsp.c: per group of four channels its filter to int16 pairs, each input
    row its window rows read converted once into the ring (span padded columns: the in-bounds
    words, zeros at padded columns and rows); per output row, two channel pairs, each over the
    blocks of two pixels (3x3 windows, dil_w 1, stride_w 1 or 2: 36 MACs a block) and the
    pixels one at a time (a last odd one, or every pixel of another window: filter rows, taps);
    the last odd pixel a block of its own in assembly (fast requantization), else one at a time;
    per output its requantization (fast form or adaptc_rq_exact); the last channels % 4
    channels per pixel over the in-bounds taps; the clamp pass of a narrow activation."""
    g = conv_loops(step)
    quads, rest = g.in_c // 4, g.in_c % 4
    span = (g.out_w - 1) * g.s_w + (g.k_w - 1) * g.d_w + 1
    ring = (g.k_h - 1) * g.d_h + 1
    starts = np.arange(g.out_h) * g.s_h - g.p_t                         # each output row's first input row
    filled = np.unique((starts[:, None] + np.arange(ring)[None, :]).reshape(-1))
    in_rows = int(((filled >= 0) & (filled < g.in_h)).sum())
    inside_cols = max(0, min(span, g.p_l + g.in_w) - g.p_l)
    fast = _fast_requant(step)
    pairs = g.out_w // 2 if (g.k_h, g.k_w, g.d_w) == (3, 3, 1) and g.s_w in (1, 2) else 0
    odd = int(fast and pairs > 0 and g.out_w % 2 == 1)            # in assembly: a block for the last pixel
    singles = g.out_w - 2 * pairs - odd
    cols = span + 2
    rows = g.b * g.out_h * quads
    outputs = g.pixels * g.in_c
    return {"call": 1, "quads": g.b * quads, "filter_taps": g.b * quads * g.k_h * g.k_w,
            "fill_rows": g.b * quads * len(filled), "fill_words": g.b * quads * in_rows * inside_cols,
            "fill_zeros": g.b * quads * (len(filled) * cols - in_rows * inside_cols),
            "out_rows": rows, "lanes": 2 * rows, "pair_calls": 2 * rows * ((pairs > 0) + odd),
            "pairs_s1": 2 * rows * (pairs + odd) * (g.s_w == 1), "pairs_s2": 2 * rows * (pairs + odd) * (g.s_w == 2),
            "singles": 2 * rows * singles,
            "single_rows": 2 * rows * singles * g.k_h, "single_taps": 2 * rows * singles * g.k_h * g.k_w,
            "rest_pixels": g.pixels * (rest > 0), "rest": g.pixels * rest, "rest_rows": g.pixels * rest * g.k_h,
            "rest_cols": rest * g.b * g.out_w * int(g.ty.sum()) * g.k_w,
            "rest_taps": rest * g.b * int(g.ty.sum()) * int(g.tx.sum()), "outputs_fast": outputs * fast,
            "outputs_exact": outputs * (not fast), "clamp": outputs * clamps(step)}


def _records(step: Step, n: int, fast: bool) -> np.ndarray:
    """depthwise_conv2d_s8_dsp.c's channel records: fast, {2 bias, mult, -shift, 2^(-shift - 1)
    + output_offset * 2^-shift}; else {bias, mult, shift, 0}."""
    rec = channel_records(step, n, rounding=True).astype(np.int64).reshape(n, 4)
    if not fast:
        rec[:, 3] = 0
        return rec.astype(np.int32).reshape(-1)
    right = -rec[:, 2]
    rec[:, 0] *= 2
    rec[:, 2] = right
    rec[:, 3] = (1 << (right - 1)) + int(step.attrs["output_zp"]) * (1 << right)
    return rec.astype(np.int32).reshape(-1)


def _fast_requant(step: Step) -> bool:
    """depthwise_conv2d_s8_dsp's fast requantization (p->right_shifts): requant_is_exact proves
    |acc| < 2^30 for every channel, every shift is < 0, and the rounding constant with the output
    offset keeps |SMMLAR| < 2^31."""
    g = conv_loops(step)
    if g.out_c != g.in_c:
        return False
    taps = np.asarray(step.consts["weights"]).reshape(-1, g.out_c).T.astype(np.int64)
    if not exact_requant(step, taps, -int(step.attrs["input_zp"])):
        return False
    shift = shifts(step, g.out_c)
    if np.any(shift >= 0) or np.any(shift < -31):
        return False
    right = -shift
    rnd = (1 << (right - 1)) + abs(int(step.attrs["output_zp"])) * (1 << right)
    return bool(np.all(rnd + (1 << 30) + 1 < 1 << 31))


def _dsp_call(step: Step, prog: Program, packed: bool) -> KernelCall | None:
    """depthwise_conv2d_s8_dsp (int8 weights) or depthwise_conv2d_s8_packed_dsp (codes of int8
    range, decoded into the arena in the same layout), depth multiplier 1; the fast
    requantization (right_shifts 1) where _fast_requant proves it exact, else the exact general
    one (0)."""
    fmt = weight_format(step)
    if not is_depthwise(step) or fmt.packed != packed or fmt.max_value > 127:
        return None                                              # pot5: the reference packed kernel
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    if geo["out_c"] != geo["in_c"]:
        return None                                              # depth_multiplier > 1: reference
    out = int8_output(step)
    fast = _fast_requant(step)
    params = {k: v for k, v in geo.items() if k != "out_c"}
    params["right_shifts"] = int(fast)
    filt = depthwise_quads(w.reshape(-1, geo["out_c"]))
    taps = geo["k_h"] * geo["k_w"]
    span = (geo["out_w"] - 1) * geo["stride_w"] + (geo["k_w"] - 1) * geo["dil_w"] + 1
    ring = (geo["k_h"] - 1) * geo["dil_h"] + 1
    scratch = 4 * (2 * taps + 2 * ring * (span + 2))             # int16 filter pairs, the ring of input rows
    channels = ("channels", _records(step, geo["out_c"], fast))
    if not packed:
        return KernelCall({**params, **out, "scratch": SCRATCH}, [("weights", filt), channels], scratch_bytes=scratch)
    data = filt.astype("<i4").view(np.int8)                      # the layout's bytes, its zero padding too
    code = {"bits": fmt.bits, "kind": int(fmt.kind == "pot"), "codes": data.size, "filter_bytes": data.size}
    return KernelCall({**params, **out, **code, "scratch": SCRATCH}, [("weights", formats.pack(data, fmt)), channels],
                      scratch_bytes=filt.nbytes + scratch)


@kernel("depthwise_conv2d_s8_dsp", "adaptc.qconv2d", "dsp", features=depthwise_dsp_loops, headers=("dsp.h",))
def depthwise_conv2d_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    return _dsp_call(step, prog, packed=False)


def depthwise_packed_dsp_loops(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8_packed_dsp.c: the filter's codes decoded (pot ones shifted into
    values), then depthwise_conv2d_s8_dsp's loops."""
    g = conv_loops(step)
    fmt = weight_format(step)
    n = g.k_h * g.k_w * g.in_c
    return {**depthwise_dsp_loops(step), "decode": n, "decode_pot": n * (fmt.kind == "pot"),
            "straddles": straddles(n, fmt.bits)}


@kernel("depthwise_conv2d_s8_packed_dsp", "adaptc.qconv2d", "dsp", features=depthwise_packed_dsp_loops,
        headers=("dsp.h", "depthwise_conv2d_s8_dsp"))
def depthwise_conv2d_s8_packed_dsp(step: Step, prog: Program) -> KernelCall | None:
    return _dsp_call(step, prog, packed=True)


# ------------------------------------------------------------------------------------ MVE


def depthwise_mve_loops(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8_mve.c: per pixel, eight channels a chunk (the last one predicated),
    each over the in-bounds rows and taps (VMULLB / VMULLT), then requantized and scattered."""
    g = conv_loops(step)
    ty, tx = g.pixel_taps()
    chunks = -(-g.in_c // 8)
    partial = g.in_c % 8 > 0
    taps = int((ty * tx).sum())
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "chunks": g.pixels * chunks,
            "chunk_rows": chunks * int(ty.sum()), "chunk_taps": chunks * taps, "partial_taps": partial * taps}


@kernel("depthwise_conv2d_s8_mve", "adaptc.qconv2d", "mve", features=depthwise_mve_loops,
        params_type="depthwise_conv2d_s8_params", headers=("dsp.h", "mve.h"))
def depthwise_conv2d_s8_mve(step: Step, prog: Program) -> KernelCall | None:
    if not is_depthwise(step) or weight_format(step).packed:
        return None                                                  # packed low-bit weights: the packed kernels
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    if geo["out_c"] != geo["in_c"]:
        return None                                                  # depth_multiplier > 1
    return KernelCall({**geo, **int8_output(step), "depth_multiplier": 1},
                      [("weights", w.astype(np.int8)), bias_array(step, geo["out_c"], np.int32),
                       *requant_arrays(step, geo["out_c"])])
