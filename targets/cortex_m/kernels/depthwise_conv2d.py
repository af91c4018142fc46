"""DEPTHWISE_CONV_2D (groups = channels): ``adaptc.qconv2d`` / ``adaptc.conv2d_f32`` with a
depthwise filter.

Reference: depthwise_conv2d_s8 (TFLite's reference_integer_ops::DepthwiseConvPerChannel, any
depth multiplier), depthwise_conv2d_s8_packed (the same on low-bit weights -- pot2 .. pot5,
int4 -- decoded a channel at a time; shift-and-add MACs for power-of-two weights),
depthwise_conv2d_f32. DSP: depthwise_conv2d_s8_dsp -- four channels a group with SMLABB /
SMLATT over a copied window, two pixels a block in assembly (3x3 unrolled, any other window with
dil_w 1 by a row table) -- and depthwise_conv2d_s8_packed_dsp,
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
    prefix_note,
    requant_arrays,
    weight_format,
)
from .loops import clamps, conv_loops, inside, straddles
from .registry import SCRATCH, KernelCall, kernel
from .simd import MVE_NOTE, RQ_NOTES, acc_bound, constant_channels, depthwise_quads, requant_is_exact

# ------------------------------------------------------------------------------ reference


def depthwise_ref_loops(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8.c / _f32.c: per pixel, in_c x depth_multiplier outputs, each over
    k_h filter rows and the in-bounds taps (one MAC each)."""
    g = conv_loops(step)
    outputs = g.pixels * g.out_c
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "channels": g.pixels * g.in_c,
            "outputs": outputs, "filter_rows": outputs * g.k_h,
            "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()), "taps": g.out_c * g.valid_taps}


@kernel("depthwise_conv2d_s8", "adaptc.qconv2d", features=depthwise_ref_loops, widths=True)
def depthwise_conv2d_s8(step: Step, prog: Program) -> KernelCall | None:
    if not is_depthwise(step) or weight_format(step).packed:
        return None
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)                        # HWC; a width level's: the widest's filter
    return KernelCall({**geo, "filter_c": int(w.shape[2]), **int8_output(step),
                       "depth_multiplier": geo["out_c"] // geo["in_c"]},
                      [("weights", w.astype(np.int8)), bias_array(step, geo["out_c"], np.int32),
                       *requant_arrays(step, geo["out_c"])], note=prefix_note(step))


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
    """depthwise_conv2d_s8_dsp.c: the ring and its zero slot zeroed once; the groups of four
    channels in blocks (_block), per block its filter to int16 pairs and, per output row, each
    input row it reads converted once into the ring for the whole block (per row the shorter of
    columns and groups outside, each a convert call over the other; the in-bounds words); per
    output row and block one row call, then per group of that row:
    3x3 windows (dil_w 1, stride_w 1 or 2, the fast requantization) in assembly (adaptc_dw_row3) --
    the blocks of two pixels (72 MACs and 8 outputs each) and a last odd pixel --; any other window
    with dil_w 1 and stride_w 1 or 2 in assembly too (adaptc_dw_rowk: its row tables' entries once
    a call, k_h x chunks; per output row and block their moves, k_h; per group the blocks of two
    pixels and a last odd pixel, each over k_h x chunks row tops and k_h x k_w taps, then the fast
    requantization and the stores or, exact, the accumulators stored and requantized in C lane by
    lane); any other in C one pixel at a time (filter rows, taps, 4 outputs); the last channels % 4
    channels per pixel over the in-bounds taps; the clamp pass of a narrow activation."""
    g = conv_loops(step)
    quads, rest = g.in_c // 4, g.in_c % 4
    span = (g.out_w - 1) * g.s_w + (g.k_w - 1) * g.d_w + 1
    ring = (g.k_h - 1) * g.d_h + 1
    qb = _block(quads, ring, span)
    blocks = -(-quads // qb)
    starts = np.arange(g.out_h) * g.s_h - g.p_t                         # each output row's first input row
    filled = np.unique((starts[:, None] + np.arange(ring)[None, :]).reshape(-1))
    in_rows = int(((filled >= 0) & (filled < g.in_h)).sum())
    inside_cols = max(0, min(span, g.p_l + g.in_w) - min(span, g.p_l))
    sizes = [min(qb, quads - q0) for q0 in range(0, quads, qb)]         # the blocks' groups
    converts = sum(min(inside_cols, nq) for nq in sizes)       # per row: the shorter loop outside
    fast = _fast_requant(step)
    asm = _asm3(g.k_h, g.k_w, g.d_w, g.s_w, fast)
    gen = _general(g.k_h, g.k_w, g.d_w, g.s_w, fast)
    group_rows = g.b * g.out_h * quads
    pairs, odd = g.out_w // 2, g.out_w % 2
    row_calls = g.b * g.out_h * blocks
    chunks = _chunks(g.k_w)
    k_pairs, k_singles = group_rows * pairs * gen, group_rows * odd * gen
    c_pixels = 0 if asm or gen else group_rows * g.out_w
    rest_outputs = g.pixels * rest
    c_outputs = 4 * c_pixels + rest_outputs                        # requantized in C
    k_exact = 4 * group_rows * g.out_w * gen * (not fast)          # adaptc_dw_rowk's, requantized in C
    return {"call": 1, "ring_words": 2 * (ring + 1) * qb * span * (quads > 0), "blocks": g.b * blocks,
            "filter_taps": g.b * quads * g.k_h * g.k_w, "fill_rows": g.b * blocks * in_rows,
            "fill_converts": g.b * in_rows * converts, "fill_words": g.b * quads * in_rows * inside_cols,
            "row_calls": row_calls, "asm_groups": group_rows * asm,
            "pairs_s1": group_rows * pairs * asm * (g.s_w == 1), "pairs_s2": group_rows * pairs * asm * (g.s_w == 2),
            "singles": group_rows * odd * asm,
            "k_entries": g.k_h * chunks * gen, "k_row_calls": row_calls * gen, "k_table_rows": row_calls * g.k_h * gen,
            "k_groups": group_rows * gen,
            "k_pairs_fast": k_pairs * fast, "k_pairs_exact": k_pairs * (not fast),
            "k_singles_fast": k_singles * fast, "k_singles_exact": k_singles * (not fast),
            "k_chunks": (k_pairs + k_singles) * g.k_h * chunks,
            "k_taps_s1": k_pairs * g.k_h * g.k_w * (g.s_w == 1), "k_taps_s2": k_pairs * g.k_h * g.k_w * (g.s_w == 2),
            "k_taps_1": k_singles * g.k_h * g.k_w, "k_exact_rows": row_calls * gen * (not fast),
            "k_exact_groups": group_rows * gen * (not fast),
            "c_groups": group_rows * (not asm and not gen), "c_pixels": c_pixels,
            "c_rows": c_pixels * g.k_h, "c_taps": c_pixels * g.k_h * g.k_w,
            "rest_pixels": g.pixels * (rest > 0), "rest": rest_outputs, "rest_rows": rest_outputs * g.k_h,
            "rest_cols": rest * g.b * g.out_w * int(g.ty.sum()) * g.k_w,
            "rest_taps": rest * g.b * int(g.ty.sum()) * int(g.tx.sum()),
            "outputs_fast": c_outputs * fast, "outputs_exact": (c_outputs + k_exact) * (not fast),
            "clamp": g.pixels * g.in_c * clamps(step)}


def _requant(step: Step) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(taps [C][k_h * k_w], bias, mult, shift) as depthwise_conv2d_s8_dsp requantizes them: a
    pruned channel's as simd.constant_channels makes them."""
    c = int(step.out_shape[-1])
    taps = np.asarray(step.consts["weights"]).reshape(-1, c).T.astype(np.int64)
    (_, mult), (_, shift) = requant_arrays(step, c)
    return (taps, *constant_channels(taps, bias_array(step, c, np.int32)[1], mult, shift,
                                     int(step.attrs["output_zp"])))


def _records(step: Step, n: int, fast: bool) -> np.ndarray:
    """depthwise_conv2d_s8_dsp.c's channel records (of _requant): per group of four channels, in
    the order of its lanes c0, c2, c1, c3, their biases, then per lane {mult, round, shift}; then
    per last channel {bias, mult, shift, round}.  Fast: bias doubled, shift = -shift, round =
    2^(-shift - 1) + output_offset * 2^-shift; else round 0."""
    _, bias, mult, shift = _requant(step)
    rec = np.stack([bias, mult, shift, np.zeros(n, np.int64)], axis=1)
    if fast:
        right = -rec[:, 2]
        rec[:, 0] *= 2
        rec[:, 2] = right
        rec[:, 3] = (1 << (right - 1)) + int(step.attrs["output_zp"]) * (1 << right)
    else:
        rec[:, 3] = 0
    quads = n // 4
    lanes = rec[:4 * quads].reshape(quads, 4, 4)[:, [0, 2, 1, 3]]         # [group][lane][bias, mult, shift, round]
    head = np.concatenate([lanes[:, :, 0], lanes[:, :, [1, 3, 2]].reshape(quads, 12)], axis=1)
    return np.concatenate([head.reshape(-1), rec[4 * quads:].reshape(-1)]).astype(np.int32)


DW_RING_BYTES = 1024     # depthwise_conv2d_s8_dsp.c's ADAPTC_DW_RING_BYTES


def _block(quads: int, ring: int, span: int) -> int:
    """depthwise_conv2d_s8_dsp.c adaptc_dw_block: the groups of four channels a block."""
    most = max(1, DW_RING_BYTES // (8 * (ring + 1) * span))
    if quads < 1:
        return 1
    blocks = -(-quads // most)
    return -(-quads // blocks)


DW_KMAX = 7              # depthwise_conv2d_s8_dsp.c's ADAPTC_DW_KMAX: the taps of a window row's chunk at most


def _asm3(k_h: int, k_w: int, d_w: int, s_w: int, fast: bool) -> bool:
    """depthwise_conv2d_s8_dsp.c adaptc_dw_row3: 3x3 windows, dil_w 1, stride_w 1 or 2, the fast
    requantization."""
    return fast and (k_h, k_w, d_w) == (3, 3, 1) and s_w in (1, 2)


def _general(k_h: int, k_w: int, d_w: int, s_w: int, fast: bool) -> bool:
    """depthwise_conv2d_s8_dsp.c adaptc_dw_rowk: any other window with dil_w 1, stride_w 1 or 2,
    either requantization."""
    return d_w == 1 and s_w in (1, 2) and not _asm3(k_h, k_w, d_w, s_w, fast)


def _chunks(k_w: int) -> int:
    """adaptc_dw_table: the chunks a window row's k_w taps are spread over."""
    return -(-k_w // DW_KMAX)


def _entries(k_h: int, k_w: int) -> int:
    """The words of one row table of adaptc_dw_rowk: {move, entry} per window row and chunk, and
    a last one."""
    return 2 * (k_h * _chunks(k_w) + 1)


def _fast_requant(step: Step) -> bool:
    """depthwise_conv2d_s8_dsp's fast requantization (p->right_shifts): requant_is_exact proves
    |acc| < 2^30 for every channel, every shift is < 0, and the rounding constant with the output
    offset keeps |SMMLAR| < 2^31."""
    g = conv_loops(step)
    if g.out_c != g.in_c:
        return False
    taps, bias, mult, shift = _requant(step)
    if not requant_is_exact(acc_bound(taps, bias, -int(step.attrs["input_zp"])), mult, shift):
        return False
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
    qb = _block(geo["in_c"] // 4, ring, span)
    scratch = 8 * qb * (taps + (ring + 1) * span)                # a block's int16 filter pairs, its ring
    if _general(geo["k_h"], geo["k_w"], geo["dil_w"], geo["stride_w"], fast):   # adaptc_dw_rowk's row tables
        scratch += 16 * _entries(geo["k_h"], geo["k_w"]) + (0 if fast else 16 * qb * geo["out_w"])
    channels = ("channels", _records(step, geo["out_c"], fast))
    window = (geo["k_h"], geo["k_w"], geo["dil_w"], geo["stride_w"], fast)
    note = RQ_NOTES[2 if fast else 0] + ("; 3x3 assembly" if _asm3(*window) else "; window assembly"
                                         if _general(*window) else "; C loop (dil_w > 1 or stride_w > 2)")
    if not packed:
        return KernelCall({**params, **out, "scratch": SCRATCH}, [("weights", filt), channels], scratch_bytes=scratch,
                          note=note)
    data = filt.astype("<i4").view(np.int8)                      # the layout's bytes, its zero padding too
    code = {"bits": fmt.bits, "kind": int(fmt.kind == "pot"), "codes": data.size, "filter_bytes": data.size}
    return KernelCall({**params, **out, **code, "scratch": SCRATCH}, [("weights", formats.pack(data, fmt)), channels],
                      scratch_bytes=filt.nbytes + scratch, note=note)


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
    return KernelCall({**geo, "filter_c": geo["out_c"], **int8_output(step), "depth_multiplier": 1},
                      [("weights", w.astype(np.int8)), bias_array(step, geo["out_c"], np.int32),
                       *requant_arrays(step, geo["out_c"])], note=MVE_NOTE)
