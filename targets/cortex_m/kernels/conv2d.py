"""CONV_2D (groups = 1): ``adaptc.qconv2d`` and ``adaptc.conv2d_f32``.

Reference: conv2d_s8 (TFLite's reference_integer_ops::ConvPerChannel), conv2d_s8_packed (low-bit
weights decoded a row at a time; shift-and-add MACs for power-of-two weights), conv2d_f32.
DSP: conv2d_s8_dsp / conv2d_s8_packed_dsp -- im2col into int16 columns four pixels at a time,
each weight row against them with SMLAD (1x4 micro-kernel in assembly). MVE: conv2d_s8_mve --
VMLADAV over 16-byte vectors, 1x1 columns read in place.
"""
from __future__ import annotations

import numpy as np

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
from .loops import columns, conv_loops, im2col_dsp, in_place_delta, inside, pot_macs, rows_x4, straddles, unpack_rows
from .registry import SCRATCH, KernelCall, kernel
from .simd import (
    MVE_NOTE,
    RQ_NOTES,
    acc_bound,
    channel_records,
    coded_weights,
    constant_channels,
    conv_blocks,
    exact_requant,
    fast_rq_modes,
    folded_bias,
    pack_rows,
    requant_exact_channels,
)

# ------------------------------------------------------------------------------ reference


def conv_ref_loops(step: Step) -> dict[str, float]:
    """conv2d_s8.c / conv2d_f32.c: pixels x out_c outputs; k_h filter rows each, k_w columns in
    the in-bounds rows, in_c MACs per in-bounds tap; requantize (or bias + clamp) per output."""
    g = conv_loops(step)
    outputs = g.pixels * g.out_c
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "outputs": outputs,
            "filter_rows": outputs * g.k_h, "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()),
            "taps": g.out_c * g.valid_taps, "macs": g.out_c * g.valid_taps * g.in_c}


@kernel("conv2d_s8", "adaptc.qconv2d", features=conv_ref_loops, widths=True)
def conv2d_s8(step: Step, prog: Program) -> KernelCall | None:
    if is_depthwise(step) or weight_format(step).packed:
        return None
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)                        # OHWI; a width level's: the widest's filter
    return KernelCall({**geo, "filter_in_c": int(w.shape[3]), **int8_output(step)},
                      [("weights", w.astype(np.int8)), bias_array(step, geo["out_c"], np.int32),
                       *requant_arrays(step, geo["out_c"])], note=prefix_note(step))


def conv_packed_loops(step: Step) -> dict[str, float]:
    """conv2d_s8_packed.c: per output channel its row of codes decoded (adaptc_next_code,
    adaptc_decode), then conv2d_s8's loops with shift-and-add MACs for pot weights; requantized
    without a multiply when every multiplier is 2^30."""
    g = conv_loops(step)
    fmt = weight_format(step)
    depth = g.k_h * g.k_w * g.in_c
    outputs = g.pixels * g.out_c
    pot = fmt.kind == "pot"
    zero, nonzero = pot_macs(step, g) if pot else (0.0, 0.0)
    pot_requant = bool(np.all(np.asarray(step.attrs["multiplier"]) == 1 << 30))
    return {"call": 1, "out_rows": g.out_c, "decode": g.out_c * depth, "decode_pot": g.out_c * depth * pot,
            "straddles": straddles(g.out_c * depth, fmt.bits), "rows": g.out_c * g.b * g.out_h,
            "outputs": outputs, "filter_rows": outputs * g.k_h,
            "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()), "taps": g.out_c * g.valid_taps,
            "macs_int": 0 if pot else g.out_c * g.valid_taps * g.in_c, "macs_pot_zero": zero,
            "macs_pot": nonzero, "requant_pot": outputs * pot_requant, "requant": outputs * (not pot_requant)}


@kernel("conv2d_s8_packed", "adaptc.qconv2d", features=conv_packed_loops)
def conv2d_s8_packed(step: Step, prog: Program) -> KernelCall | None:
    if is_depthwise(step) or not weight_format(step).packed:
        return None
    g = conv_geometry(step, prog)
    _, w = conv_filter(step, g)
    rows = w.reshape(g["out_c"], -1)
    strides = {"depth": rows.shape[1], "image_bytes": g["in_h"] * g["in_w"] * g["in_c"],
               "row_bytes": g["in_w"] * g["in_c"], "step_y": g["stride_h"] * g["in_w"] * g["in_c"],
               "step_x": g["stride_w"] * g["in_c"], "tap_y": g["dil_h"] * g["in_w"] * g["in_c"],
               "tap_x": g["dil_w"] * g["in_c"],
               "origin": -(g["pad_top"] * g["in_w"] * g["in_c"] + g["pad_left"] * g["in_c"]),
               "filter_row": g["k_w"] * g["in_c"]}
    return packed_call(step, {**g, **int8_output(step), **strides}, rows, g["out_c"], rows.shape[1])


@kernel("conv2d_f32", "adaptc.conv2d_f32", features=conv_ref_loops)
def conv2d_f32(step: Step, prog: Program) -> KernelCall | None:
    if is_depthwise(step):
        return None
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    return KernelCall({**geo, **act_f32(step.attrs)},
                      [("weights", w.astype(np.float32)), bias_array(step, geo["out_c"], np.float32)])


# ------------------------------------------------------------------------------------ DSP


def _rq_exact(step: Step) -> bool:
    """conv2d_s8_dsp's rq_exact: True where simd.requant_is_exact cannot prove the fast
    requantization for the layer's weights, bias and input offset (adaptc_rq_exact then)."""
    w = step.consts["weights"]                                        # HWIO
    rows = np.asarray(w).transpose(3, 0, 1, 2).reshape(w.shape[3], -1)
    return not exact_requant(step, rows, int8_output(step)["input_offset"])


# conv2d_s8_dsp pads a filter row to whole groups (row_bytes) where the extra MACs of every
# output channel cost less than gathering the receptive field byte by byte, which the emulated
# Cortex-M4 runs at about GATHER_INSNS instructions per field byte more than the straight
# conversion (adaptc_gather_field + adaptc_col_from_s8 against adaptc_col_rows); a padded byte
# costs each output channel about one instruction (SMLAD: two MACs, a share of the loads).
GATHER_INSNS = 8


def row_bytes(step: Step) -> int:
    """conv2d_s8_dsp's filter row as laid out: k_w * in_c, or rounded up to a multiple of 4
    (zero weights after the taps) for dil_w 1 where that is cheaper than gathering: out_c * k_h *
    (padding bytes) <= GATHER_INSNS * (field bytes)."""
    g = conv_loops(step)
    taps = g.k_w * g.in_c
    padded = -(-taps // 4) * 4
    if g.d_w != 1 or padded == taps or g.out_c * g.k_h * (padded - taps) > GATHER_INSNS * g.k_h * taps:
        return taps
    return padded


def conv_dsp_loops(step: Step) -> dict[str, float]:
    """conv2d_s8_dsp.c: four pixels a block -- im2col into int16 columns, then every output
    channel's weight row against the four columns (SMLAD)."""
    g = conv_loops(step)
    rb = row_bytes(step)
    groups = -(-(g.k_h * rb) // 4)
    cols = im2col_dsp(g, rb, one_by_one=True)
    return {"call": 1, **cols, **rows_x4(step, g, cols["blocks"], groups, _rq_mode(step), paired=True,
                                         modes=channel_modes(step))}


def conv_packed_dsp_loops(step: Step) -> dict[str, float]:
    """conv2d_s8_packed_dsp.c: conv2d_s8_dsp with each weight row decoded before its dot
    products (adaptc_unpack_row), once per block and channel."""
    g = conv_loops(step)
    depth = g.k_h * g.k_w * g.in_c
    groups = -(-depth // 4)
    cols = im2col_dsp(g, g.k_w * g.in_c)
    unpack = unpack_rows(g.out_c, depth, weight_format(step))
    return {"call": 1, **cols, **rows_x4(step, g, cols["blocks"], groups, int(not _rq_exact(step)), paired=False),
            **{k: cols["blocks"] * v for k, v in unpack.items()}}


def prefix_blocks(step: Step) -> tuple[list[tuple[int, int]], int]:
    """conv2d_s8_prefix_dsp's input-channel blocks of the stored filter -- the channels each width
    adds, ``step.prefix_weights`` listing every width's in_c (one block: every width reads them
    all) -- as (first channel, channels), and how many of them this step's width reads."""
    bounds = tuple(step.prefix_weights)
    blocks = list(zip((0,) + bounds[:-1], [b - a for a, b in zip((0,) + bounds[:-1], bounds)]))
    return blocks, bounds.index(int(step.in_shapes[0][-1])) + 1


def prefix_row_bytes(step: Step) -> int:
    """conv2d_s8_prefix_dsp's filter row (k_w taps) with one input-channel block: row_bytes's
    choice made for the stored filter's output channels, so that every width lays it out alike."""
    w = step.consts["weights"]                                        # HWIO, the widest's
    taps = int(w.shape[1] * w.shape[2])
    padded = -(-taps // 4) * 4
    if int(step.attrs["dilation"][1]) != 1 or padded == taps or int(w.shape[3]) * (padded - taps) > GATHER_INSNS * taps:
        return taps
    return padded


def prefix_rows(step: Step) -> tuple[np.ndarray, int, int]:
    """(rows of words [out][row_words], row_words, the words of a row this width reads) of
    conv2d_s8_prefix_dsp (templates/kernels/conv2d_s8_prefix_dsp.c): the stored OHWI filter
    in input-channel blocks, each block's taps zero-padded to whole words; one block: each
    filter row (k_w taps) zero-padded to prefix_row_bytes."""
    w = np.asarray(step.consts["weights"]).transpose(3, 0, 1, 2)      # OHWI, the widest's
    blocks, used = prefix_blocks(step)
    if len(blocks) == 1:
        rb = prefix_row_bytes(step)
        rows = np.zeros((w.shape[0], w.shape[1], rb), np.int8)
        rows[..., :w.shape[2] * w.shape[3]] = w.reshape(w.shape[0], w.shape[1], -1)
        words, row_words = pack_rows(rows.reshape(w.shape[0], -1))
        return words.reshape(w.shape[0], row_words), row_words, row_words
    parts = []
    for first, count in blocks:
        part = np.zeros(w.shape[:3] + (-(-count // 4) * 4,), np.int8)
        part[..., :count] = w[..., first:first + count]
        parts.append(part.reshape(w.shape[0], -1))
    sizes = [p.shape[1] // 4 for p in parts]
    words, row_words = pack_rows(np.concatenate(parts, axis=1))
    return words.reshape(w.shape[0], row_words), row_words, sum(sizes[:used])


def _prefix_rq_exact(step: Step) -> bool:
    """conv2d_s8_prefix_dsp's rq_exact: True where simd.requant_is_exact cannot prove the fast
    requantization for this width's filter (the stored one's prefix), bias and input offset."""
    in_c, out_c = int(step.in_shapes[0][-1]), int(step.out_shape[-1])
    own = np.asarray(step.consts["weights"])[:, :, :in_c, :out_c]    # HWIO
    return not exact_requant(step, own.transpose(3, 0, 1, 2).reshape(out_c, -1), -int(step.attrs["input_zp"]))


def conv_prefix_dsp_loops(step: Step) -> dict[str, float]:
    """conv2d_s8_prefix_dsp.c: four pixels a block -- im2col into int16 columns (block by block,
    tap by tap: adaptc_im2col_blocks_x4; one block: adaptc_im2col_x4), then every output
    channel's row against the four columns (adaptc_dot_x4), each output requantized exactly."""
    g = conv_loops(step)
    blocks, used = prefix_blocks(step)
    _, _, groups = prefix_rows(step)
    blocks_, _, _, _ = columns(g)
    if len(blocks) == 1:
        cols = im2col_dsp(g, prefix_row_bytes(step))
    else:
        taps = 4 * blocks_ * g.k_h * g.k_w
        cols = {"blocks": blocks_, "block_taps": taps * used, "block_groups": 4 * blocks_ * groups,
                "block_partial": taps * sum(count % 4 != 0 for _, count in blocks[:used])}
    rows = cols["blocks"] * g.out_c
    exact = _prefix_rq_exact(step)
    return {"call": 1, **cols, "channel_rows": rows, "dot_groups": rows * groups,
            "outputs_fast": g.pixels * g.out_c * (not exact), "outputs_exact": g.pixels * g.out_c * exact}


def dsp_requant(step: Step) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(weight rows [out][taps], bias, mult, shift) as conv2d_s8_dsp requantizes them: a pruned
    channel's as simd.constant_channels makes them."""
    w = step.consts["weights"]                                        # HWIO
    rows = np.asarray(w).transpose(3, 0, 1, 2).reshape(w.shape[3], -1)
    n = rows.shape[0]
    (_, mult), (_, shift) = requant_arrays(step, n)
    return (rows, *constant_channels(rows, bias_array(step, n, np.int32)[1], mult, shift,
                                     int8_output(step)["output_offset"]))


def channel_modes(step: Step) -> np.ndarray:
    """Per output channel, conv2d_s8_dsp's requantization mode (simd.fast_rq_modes) of its
    dsp_requant: each channel's accumulator bound proven or not on its own."""
    rows, bias, mult, shift = dsp_requant(step)
    out = int8_output(step)
    proven = requant_exact_channels(acc_bound(rows, bias, out["input_offset"]), mult, shift)
    return fast_rq_modes(proven, shift, out["output_offset"])


def pair_modes(modes: np.ndarray) -> np.ndarray:
    """Each pair of channels' mode: the lower of the two (conv2d_s8_dsp's blocks)."""
    pairs = len(modes) // 2
    return np.minimum(modes[0:2 * pairs:2], modes[1:2 * pairs:2])


def _rq_mode(step: Step) -> int:
    """conv2d_s8_dsp's rq_mode: 2 where every pair of channels takes the fast requantization (and
    an odd last channel is proven), 3 where some pairs do (the others requantize in C), 0 where
    none does."""
    modes = channel_modes(step)
    pairs = pair_modes(modes)
    if pairs.size and np.all(pairs == 2) and (len(modes) % 2 == 0 or modes[-1] > 0):
        return 2
    return 3 if np.any(pairs == 2) else 0


def _rq_note(modes: np.ndarray) -> str:
    """The report's word on conv2d_s8_dsp's requantization: one form, or how many channel pairs
    (an odd last channel counting as one) take each."""
    units = np.concatenate([pair_modes(modes), modes[len(modes) // 2 * 2:]])
    counts = {m: int((units == m).sum()) for m in (2, 1, 0) if (units == m).any()}
    if len(counts) == 1:
        return RQ_NOTES[next(iter(counts))]
    return "channel pairs: " + ", ".join(f"{c} {RQ_NOTES[m]}" for m, c in counts.items())


def _dsp_call(step: Step, prog: Program, packed: bool) -> KernelCall | None:
    """conv2d_s8_dsp (int8 weights: channel blocks, rq_mode) or conv2d_s8_packed_dsp (codes of at
    most 8 bits; rq_exact where the fast requantization is not provably exact,
    simd.requant_is_exact)."""
    if is_depthwise(step) or weight_format(step).packed != packed:
        return None
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    rb = geo["k_w"] * geo["in_c"] if packed else row_bytes(step)
    w = w.reshape(geo["out_c"], geo["k_h"], -1)                        # OHWI -> [out][k_h][k_w*in_c]
    rows = np.pad(w, ((0, 0), (0, 0), (0, rb - w.shape[2]))).reshape(geo["out_c"], -1)
    out = int8_output(step)
    coded = coded_weights(step, rows)
    if coded is None:
        return None
    code, filt, shared, groups = coded
    gather = 4 * groups if geo["in_c"] % 4 else 0
    pointers = 0 if packed else 24                                    # adaptc_conv_rows' output pointers
    common = dict(shared=shared, in_place={0: in_place_delta(conv_loops(step))},
                  scratch_bytes=(36 if code else 32) * groups + pointers + 4 * geo["out_c"] + gather)
    if packed:
        exact = _rq_exact(step)
        return KernelCall({**geo, **out, **code, "rq_exact": int(exact), "scratch": SCRATCH},
                          [("weights", filt), ("channels", channel_records(step, geo["out_c"]))],
                          note=RQ_NOTES[0] if exact else "", **common)
    modes = channel_modes(step)
    _, bias, mult, shift = dsp_requant(step)
    blocks = conv_blocks(filt, groups, bias, mult, shift, modes, out["output_offset"])
    mode = _rq_mode(step)
    taps = geo["k_w"] * geo["in_c"]
    note = _rq_note(modes) + (f"; filter rows padded {taps} -> {rb} bytes" if rb != taps else "")
    return KernelCall({**geo, **out, "row_bytes": rb, "rq_mode": mode, "scratch": SCRATCH}, [("blocks", blocks)],
                      note=note, **common)


@kernel("conv2d_s8_dsp", "adaptc.qconv2d", "dsp", features=conv_dsp_loops, headers=("dsp.h",))
def conv2d_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    return _dsp_call(step, prog, packed=False)


@kernel("conv2d_s8_prefix_dsp", "adaptc.qconv2d", "dsp", features=conv_prefix_dsp_loops, headers=("dsp.h",),
        widths=True)
def conv2d_s8_prefix_dsp(step: Step, prog: Program) -> KernelCall | None:
    """A width level's convolution (a channel prefix of the widest level's filter, stored once):
    the stored rows in input-channel blocks (prefix_rows), the columns laid out alike."""
    if not step.prefix_weights or is_depthwise(step) or weight_format(step).packed:
        return None
    geo = conv_geometry(step, prog)
    words, row_words, groups = prefix_rows(step)
    blocks, used = prefix_blocks(step)
    fast = not _prefix_rq_exact(step)
    channels = np.array([v for block in blocks[:used] for v in block], np.int32)
    params = {**geo, **int8_output(step), "row_bytes": prefix_row_bytes(step) if len(blocks) == 1 else 0,
              "row_words": row_words, "groups": groups, "blocks": 0 if len(blocks) == 1 else used,
              "block_channels": ("array", "block_channels"), "rq_exact": int(not fast), "scratch": SCRATCH}
    return KernelCall(params, [("weights", words.reshape(-1)), bias_array(step, geo["out_c"], np.int32),
                               *requant_arrays(step, geo["out_c"]), ("block_channels", channels)],
                      scratch_bytes=4 * 8 * groups + 4 * groups,
                      note=f"{prefix_note(step)}: {used} of {len(blocks)} input-channel blocks; "
                           + RQ_NOTES[2 if fast else 0])


@kernel("conv2d_s8_packed_dsp", "adaptc.qconv2d", "dsp", features=conv_packed_dsp_loops, headers=("dsp.h",))
def conv2d_s8_packed_dsp(step: Step, prog: Program) -> KernelCall | None:
    return _dsp_call(step, prog, packed=True)


# ------------------------------------------------------------------------------------ MVE


def conv_mve_loops(step: Step) -> dict[str, float]:
    """conv2d_s8_mve.c: four pixels a block, each column in place (1x1 inside the input) or
    gathered tap by tap with memcpy / memset; per block and channel, VMLADAVA over whole
    16-byte vectors and one predicated tail."""
    g = conv_loops(step)
    depth = g.k_h * g.k_w * g.in_c
    blocks, iy0, ix0, _ = columns(g)
    in_y = inside(iy0, g.k_h, g.d_h, g.in_h)
    in_x = inside(ix0, g.k_w, g.d_w, g.in_w)
    inplace = (g.k_h == 1 and g.k_w == 1) & in_y[:, 0] & in_x[:, 0]
    copy = ~inplace
    valid = (in_y.sum(axis=1) * in_x.sum(axis=1))[copy]
    n_copy, n_valid = int(copy.sum()), int(valid.sum())
    pads = n_copy * g.k_h * g.k_w - n_valid
    rows = blocks * g.out_c
    return {"call": 1, "blocks": blocks, "cols_inplace": int(inplace.sum()), "cols_copy": n_copy,
            "rows_copy": n_copy * g.k_h, "memcpy_calls": n_valid, "memcpy_bytes": n_valid * g.in_c,
            "memset_calls": pads, "memset_bytes": pads * g.in_c,
            "out_rows": rows, "vectors": rows * (depth // 16), "vector_tails": rows * (depth % 16 > 0)}


@kernel("conv2d_s8_mve", "adaptc.qconv2d", "mve", features=conv_mve_loops, headers=("dsp.h", "mve.h"))
def conv2d_s8_mve(step: Step, prog: Program) -> KernelCall | None:
    if is_depthwise(step) or weight_format(step).packed:
        return None                                                  # packed low-bit weights: the packed kernels
    geo = conv_geometry(step, prog)
    _, w = conv_filter(step, geo)
    out = int8_output(step)
    rows = w.reshape(geo["out_c"], -1).astype(np.int8)               # OHWI -> [out][k_h * k_w * in_c]
    return KernelCall({**geo, **out, "scratch": SCRATCH},
                      [("weights", rows), ("bias", folded_bias(step, rows, out["input_offset"])),
                       *requant_arrays(step, geo["out_c"])], scratch_bytes=4 * rows.shape[1], note=MVE_NOTE)
