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
    """depthwise_conv2d_s8_dsp.c: per pixel, groups of four channels (SMLABB / SMLATT) over
    the window -- for 3-wide filters all k_h x 3 taps (adaptc_dw_x3: in assembly when every
    shift is negative; the window copied with the zero point at the borders), otherwise the
    in-bounds taps (adaptc_dw_quads) --, then the channels past the last multiple of four."""
    g = conv_loops(step)
    ty, tx = g.pixel_taps()
    quads, rest = g.in_c // 4, g.in_c % 4
    x3 = g.k_w == 3
    out = dict.fromkeys(["copy_pixels", "memcpy_calls", "memcpy_bytes", "memset_calls", "memset_bytes", "quads_asm",
                         "quad_rows_asm", "quads_c", "quad_rows_c", "quad_taps_c"], 0)
    out.update(call=1, rows=g.b * g.out_h, pixels=g.pixels)
    if x3:
        copied = (ty < g.k_h) | (tx < 3)
        in_y = inside(np.repeat(np.tile(np.arange(g.out_h) * g.s_h - g.p_t, g.b), g.out_w), g.k_h, g.d_h, g.in_h)
        in_x = inside(np.tile(np.arange(g.out_w) * g.s_w - g.p_l, g.b * g.out_h), 3, g.d_w, g.in_w)
        valid = (in_y.sum(axis=1) * in_x.sum(axis=1))[copied]
        n = int(copied.sum())
        out.update(copy_pixels=n, memcpy_calls=int(valid.sum()), memcpy_bytes=int(valid.sum()) * g.in_c,
                   memset_calls=n * 3 * g.k_h - int(valid.sum()),
                   memset_bytes=(n * 3 * g.k_h - int(valid.sum())) * g.in_c)
        rows = np.full(g.pixels, g.k_h)
        cols = np.full(g.pixels, 3)
    else:
        rows, cols = ty, tx
    asm = x3 and bool(np.all(shifts(step, g.in_c) < 0)) and quads > 0
    n_rows, n_taps = int(rows.sum()), int((rows * cols).sum())
    if asm:
        out.update(quads_asm=g.pixels * quads, quad_rows_asm=quads * n_rows)
    else:
        out.update(quads_c=g.pixels * quads, quad_rows_c=quads * n_rows, quad_taps_c=quads * n_taps)
    out.update(rest=g.pixels * rest, rest_rows=rest * n_rows, rest_taps=rest * n_taps,
               clamp=g.pixels * g.in_c * clamps(step))
    return out


def _dsp_call(step: Step, prog: Program, packed: bool) -> KernelCall | None:
    """depthwise_conv2d_s8_dsp (int8 weights) or depthwise_conv2d_s8_packed_dsp (codes of int8
    range, decoded into the arena in the same layout), depth multiplier 1, when the layer's
    requantization is provably exact (simd.requant_is_exact)."""
    fmt = weight_format(step)
    if not is_depthwise(step) or fmt.packed != packed or fmt.max_value > 127:
        return None                                              # pot5: the reference packed kernel
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    if geo["out_c"] != geo["in_c"]:
        return None                                              # depth_multiplier > 1: reference
    out = int8_output(step)
    taps = np.ascontiguousarray(w.reshape(-1, geo["out_c"]).T)   # [k_h * k_w][C] -> [C][taps]
    if not exact_requant(step, taps, out["input_offset"]):
        return None
    params = {k: v for k, v in geo.items() if k != "out_c"}
    params["right_shifts"] = int(all(s < 0 for s in requant_arrays(step, geo["out_c"])[1][1].tolist()))
    filt = depthwise_quads(w.reshape(-1, geo["out_c"]))
    window = 3 * geo["k_h"] * geo["in_c"] if geo["k_w"] == 3 else 0
    channels = ("channels", channel_records(step, geo["out_c"], rounding=True))
    if not packed:
        return KernelCall({**params, **out, "scratch": SCRATCH}, [("weights", filt), channels], scratch_bytes=window)
    data = filt.astype("<i4").view(np.int8)                      # the layout's bytes, its zero padding too
    code = {"bits": fmt.bits, "kind": int(fmt.kind == "pot"), "codes": data.size, "filter_bytes": data.size}
    return KernelCall({**params, **out, **code, "scratch": SCRATCH}, [("weights", formats.pack(data, fmt)), channels],
                      scratch_bytes=filt.nbytes + window)


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
