"""TRANSPOSE_CONV / ConvTranspose: ``adaptc.qtranspose_conv2d`` and ``adaptc.transpose_conv2d_f32``.

Reference: transpose_conv_s8 (TFLite's reference_integer_ops::TransposeConv: the scatter of every
input element into an int32 arena scratch of the output's size, then bias and per-channel
requantization), transpose_conv_s8_packed (the same on low-bit weights -- pot2 .. pot5, int4 --
decoded an input channel at a time; shift-and-add MACs for power-of-two weights) and
transpose_conv_f32 (reference_ops::TransposeConv: the scatter into the output itself). All take
ONNX's dilation and depthwise grouping too.
DSP: transpose_conv_s8_dsp -- the scatter as a gather over the taps that reach each output
pixel, the input once as int16 columns, two SMLAD per four input channels and output channel,
four output channels a pass over the taps; adaptc_rq_record where requant_is_exact proves it.
"""
from __future__ import annotations

import numpy as np

from adaptc.errors import TargetError
from adaptc.program import Program, Step

from .common import act_f32, bias_array, int8_output, nhwc, packed_call, requant_arrays, weight_format
from .loops import axis_taps, straddles
from .registry import SCRATCH, KernelCall, kernel
from .simd import acc_bound, channel_records, pack_words, requant_is_exact


def geometry(step: Step) -> dict:
    """The kernels' parameters (but the output ones): shapes, strides, dilation, top / left pads
    (the bottom / right ones and any output padding are the output size), channels per group."""
    n, in_h, in_w, in_c = nhwc(step.in_shapes[0])
    _, out_h, out_w, out_c = nhwc(step.out_shape)
    a, w = step.attrs, step.consts["weights"]
    if str(a["kernel_layout"]) != "IOHW":
        raise TargetError(f"transposed convolution filter layout {a['kernel_layout']} at step {step.index}; "
                          "expected IOHW")
    groups = int(a["groups"])
    return {"batches": n, "in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w,
            "out_c": out_c, "k_h": int(w.shape[2]), "k_w": int(w.shape[3]), "stride_h": a["strides"][0],
            "stride_w": a["strides"][1], "dil_h": a["dilation"][0], "dil_w": a["dilation"][1],
            "pad_top": a["padding"][0], "pad_left": a["padding"][1], "in_group": in_c // groups,
            "out_group": out_c // groups}


def c_filter(step: Step) -> np.ndarray:
    """IOHW [in_c][out_group][k_h][k_w] -> the kernels' [in_c][k_h][k_w][out_group]."""
    return np.ascontiguousarray(step.consts["weights"].transpose(0, 2, 3, 1))


def transpose_conv_loops(step: Step) -> dict[str, float]:
    """transpose_conv_*.c: zero the accumulators; per input element (in_channel loop) k_h filter
    rows, k_w columns in the in-bounds rows, out_group MACs per in-bounds tap; per output the
    bias and requantization (or clamp)."""
    g = geometry(step)
    ty = axis_taps(g["out_h"], g["in_h"], g["k_h"], g["stride_h"], g["dil_h"], g["pad_top"])
    tx = axis_taps(g["out_w"], g["in_w"], g["k_w"], g["stride_w"], g["dil_w"], g["pad_left"])
    pixels = g["batches"] * g["in_h"] * g["in_w"]
    elements = pixels * g["in_c"]
    taps = g["batches"] * g["in_c"] * int(ty.sum()) * int(tx.sum())
    return {"call": 1, "outputs": g["batches"] * g["out_h"] * g["out_w"] * g["out_c"], "pixels": pixels,
            "elements": elements, "filter_rows": elements * g["k_h"],
            "filter_cols": g["batches"] * g["in_c"] * g["in_w"] * int(ty.sum()) * g["k_w"], "taps": taps,
            "macs": taps * g["out_group"]}


@kernel("transpose_conv_s8", "adaptc.qtranspose_conv2d", features=transpose_conv_loops)
def transpose_conv_s8(step: Step, prog: Program) -> KernelCall | None:
    if weight_format(step).packed:
        return None
    g = geometry(step)
    outputs = g["batches"] * g["out_h"] * g["out_w"] * g["out_c"]
    return KernelCall({**g, **int8_output(step), "scratch": SCRATCH},
                      [("weights", c_filter(step).astype(np.int8)), bias_array(step, g["out_c"], np.int32),
                       *requant_arrays(step, g["out_c"])], scratch_bytes=4 * outputs)


def transpose_conv_packed_loops(step: Step) -> dict[str, float]:
    """transpose_conv_s8_packed.c: transpose_conv_loops with, per input channel, its k_h x k_w x
    out_group codes decoded, and shift-and-add MACs for pot weights (adaptc_pot_mac: a zero
    weight costs its test only); requantized without a multiply when every multiplier is 2^30."""
    loops = transpose_conv_loops(step)
    g = geometry(step)
    fmt = weight_format(step)
    depth = g["k_h"] * g["k_w"] * g["out_group"]
    pot = fmt.kind == "pot"
    zero = nonzero = 0.0
    if pot:              # weight (i, ky, kx, o) once per input pixel whose output (ky, kx) is in bounds
        uses = _tap_uses(g["out_h"], g["in_h"], g["k_h"], g["stride_h"], g["dil_h"], g["pad_top"])[:, None] * \
            _tap_uses(g["out_w"], g["in_w"], g["k_w"], g["stride_w"], g["dil_w"], g["pad_left"])[None, :]
        zeros = (c_filter(step) == 0).sum(axis=(0, 3))                                   # [k_h, k_w]
        zero = float(g["batches"] * (zeros * uses).sum())
        nonzero = float(loops["macs"] - zero)
    pot_requant = bool(np.all(np.asarray(step.attrs["multiplier"]) == 1 << 30))
    macs = loops.pop("macs")
    return {**loops, "decode": g["in_c"] * depth, "decode_pot": g["in_c"] * depth * pot,
            "straddles": straddles(g["in_c"] * depth, fmt.bits), "macs_int": 0 if pot else macs,
            "macs_pot_zero": zero, "macs_pot": nonzero, "requant_pot": loops["outputs"] * pot_requant,
            "requant": loops["outputs"] * (not pot_requant)}


def _tap_uses(out: int, size: int, k: int, stride: int, dil: int, pad: int) -> np.ndarray:
    """Per filter tap along one axis: the input positions whose output at that tap is in bounds."""
    pos = np.arange(size)[:, None] * stride - pad + np.arange(k)[None, :] * dil
    return ((pos >= 0) & (pos < out)).sum(axis=0)


@kernel("transpose_conv_s8_packed", "adaptc.qtranspose_conv2d", features=transpose_conv_packed_loops)
def transpose_conv_s8_packed(step: Step, prog: Program) -> KernelCall | None:
    if not weight_format(step).packed:
        return None
    g = geometry(step)
    rows = c_filter(step).reshape(g["in_c"], -1)                     # [in_c][k_h][k_w][out_group]
    row = g["out_w"] * g["out_c"]
    outputs = g["batches"] * g["out_h"] * row
    strides = {"depth": rows.shape[1], "outputs": outputs, "out_image": g["out_h"] * row,
               "step_y": g["stride_h"] * row, "step_x": g["stride_w"] * g["out_c"], "tap_y": g["dil_h"] * row,
               "tap_x": g["dil_w"] * g["out_c"], "origin_y": -g["pad_top"] * row,
               "origin_x": -g["pad_left"] * g["out_c"], "filter_row": g["k_w"] * g["out_group"]}
    return packed_call(step, {**g, **int8_output(step), **strides}, rows, g["out_c"], 4 * outputs + rows.shape[1])


@kernel("transpose_conv_f32", "adaptc.transpose_conv2d_f32", features=transpose_conv_loops)
def transpose_conv_f32(step: Step, prog: Program) -> KernelCall | None:
    g = geometry(step)
    return KernelCall({**g, **act_f32(step.attrs)},
                      [("weights", c_filter(step).astype(np.float32)), bias_array(step, g["out_c"], np.float32)])


# ------------------------------------------------------------------------------------ DSP


def _gather_taps(out: int, size: int, k: int, stride: int, dil: int, pad: int) -> np.ndarray:
    """Per output coordinate, the filter taps whose input coordinate (out + pad - tap * dil) /
    stride is whole and inside [0, size)."""
    t = np.arange(out)[:, None] + pad - np.arange(k)[None, :] * dil
    return ((t >= 0) & (t % stride == 0) & (t // stride < size)).sum(axis=1)


def transpose_conv_dsp_loops(step: Step) -> dict[str, float]:
    """transpose_conv_s8_dsp.c: the input to int16 columns (a word of four channels at a time);
    the taps of every output column (k_w tested each), of every output row (k_h tested), per
    output pixel its tap list (its row's taps times its column's); per group of the convolution,
    quads of output channels and single ones over the pixel's taps, `groups` words of four
    input channels per tap; per output the requantization (rq_mode 2 / 1 / 0); the clamp pass of
    a narrow activation."""
    g = geometry(step)
    groups = -(-g["in_group"] // 4)
    convs = g["in_c"] // g["in_group"]
    ty = _gather_taps(g["out_h"], g["in_h"], g["k_h"], g["stride_h"], g["dil_h"], g["pad_top"])
    tx = _gather_taps(g["out_w"], g["in_w"], g["k_w"], g["stride_w"], g["dil_w"], g["pad_left"])
    b = g["batches"]
    pixels = b * g["out_h"] * g["out_w"]
    taps = b * int(ty.sum()) * int(tx.sum())
    quads, singles = g["out_group"] // 4, g["out_group"] % 4
    in_pixels = b * g["in_h"] * g["in_w"]
    outputs = pixels * g["out_c"]
    mode = _rq_mode(step)
    narrow = int(step.attrs["act_min"]) > -128 or int(step.attrs["act_max"]) < 127
    return {"call": 1, "in_pixels": in_pixels, "convert_words": in_pixels * convs * groups,
            "convert_convs": in_pixels * convs * (g["in_group"] % 4 != 0), "col_taps": g["out_w"] * g["k_w"],
            "rows": b * g["out_h"], "row_taps": b * g["out_h"] * g["k_h"], "pixels": pixels,
            "pixel_rows": b * int(ty.sum()) * g["out_w"], "taps": taps,
            "quads": pixels * convs * quads, "quad_taps": taps * convs * quads,
            "quad_groups": taps * convs * quads * groups, "singles": pixels * convs * singles,
            "single_taps": taps * convs * singles, "single_groups": taps * convs * singles * groups,
            "outputs_rq_right": outputs * (mode == 2), "outputs_rq": outputs * (mode == 1),
            "outputs_mbqm": outputs * (mode == 0), "clamp": outputs * narrow}


def _rq_mode(step: Step) -> int:
    """transpose_conv_s8_dsp's rq_mode: 2 where requant_is_exact proves adaptc_rq_record for the
    largest sum each channel can reach (every weight of the channel at most once an output)
    and every shift is < 0, 1 where it proves it otherwise, 0 (adaptc_mbqm) where it does not."""
    g = geometry(step)
    w = step.consts["weights"].astype(np.int64)                       # [in_c][out_group][k_h][k_w]
    convs = g["in_c"] // g["in_group"]
    rows = w.reshape(convs, g["in_group"], g["out_group"], -1).transpose(0, 2, 1, 3).reshape(g["out_c"], -1)
    bias = bias_array(step, g["out_c"], np.int32)[1]
    mult, shift = (a for _, a in requant_arrays(step, g["out_c"]))
    if not requant_is_exact(acc_bound(rows, bias, int8_output(step)["input_offset"]), mult, shift):
        return 0
    return 2 if bool(np.all(np.asarray(shift) < 0)) else 1


def dsp_filter(step: Step) -> np.ndarray:
    """IOHW -> transpose_conv_s8_dsp.c's words: per group of the convolution, its output channels
    in quads ([k_h][k_w][groups][4] words) then singly ([k_h][k_w][groups]), each word four input
    channels of the group, zero past in_group."""
    g = geometry(step)
    groups = -(-g["in_group"] // 4)
    w = step.consts["weights"].astype(np.int8)                       # [in_c][out_group][k_h][k_w]
    words = []
    for c in range(g["in_c"] // g["in_group"]):
        part = w[c * g["in_group"]:(c + 1) * g["in_group"]].transpose(1, 2, 3, 0)   # [og][k_h][k_w][in_group]
        padded = np.zeros((*part.shape[:3], 4 * groups), np.int8)
        padded[..., :g["in_group"]] = part
        rows = pack_words(padded.reshape(-1)).reshape(g["out_group"], g["k_h"], g["k_w"], groups)
        quads = g["out_group"] // 4
        words.append(rows[:4 * quads].reshape(quads, 4, g["k_h"], g["k_w"], groups).transpose(0, 2, 3, 4, 1)
                     .reshape(-1))
        words.append(rows[4 * quads:].reshape(-1))
    return np.ascontiguousarray(np.concatenate(words).astype(np.int32))


@kernel("transpose_conv_s8_dsp", "adaptc.qtranspose_conv2d", "dsp", features=transpose_conv_dsp_loops,
        headers=("dsp.h",))
def transpose_conv_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    """transpose_conv_s8's results by transpose_conv_s8_dsp.c (rq_mode: _rq_mode); declines
    packed low-bit weights (transpose_conv_s8_packed)."""
    if weight_format(step).packed:
        return None
    g = geometry(step)
    groups = -(-g["in_group"] // 4)
    convs = g["in_c"] // g["in_group"]
    in_pixels = g["batches"] * g["in_h"] * g["in_w"]
    words = in_pixels * 2 * groups * convs + 2 * g["k_h"] * g["k_w"] + g["out_w"] * (1 + 2 * g["k_w"]) + 2 * g["k_h"]
    return KernelCall({**g, **int8_output(step), "rq_mode": _rq_mode(step), "scratch": SCRATCH},
                      [("weights", dsp_filter(step)), ("channels", channel_records(step, g["out_c"], rounding=True))],
                      scratch_bytes=4 * words)
