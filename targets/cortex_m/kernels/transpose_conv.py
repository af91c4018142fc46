"""TRANSPOSE_CONV / ConvTranspose: ``adaptc.qtranspose_conv2d`` and ``adaptc.transpose_conv2d_f32``.

Reference: transpose_conv_s8 (TFLite's reference_integer_ops::TransposeConv: the scatter of every
input element into an int32 arena scratch of the output's size, then bias and per-channel
requantization) and transpose_conv_f32 (reference_ops::TransposeConv: the scatter into the output
itself). Both take ONNX's dilation and depthwise grouping too. No optimized variant yet.
"""
from __future__ import annotations

import numpy as np

from adaptc.errors import TargetError
from adaptc.program import Program, Step

from .common import act_f32, bias_array, int8_output, nhwc, requant_arrays
from .loops import axis_taps
from .registry import SCRATCH, KernelCall, kernel


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
    g = geometry(step)
    outputs = g["batches"] * g["out_h"] * g["out_w"] * g["out_c"]
    return KernelCall({**g, **int8_output(step), "scratch": SCRATCH},
                      [("weights", c_filter(step).astype(np.int8)), bias_array(step, g["out_c"], np.int32),
                       *requant_arrays(step, g["out_c"])], scratch_bytes=4 * outputs)


@kernel("transpose_conv_f32", "adaptc.transpose_conv2d_f32", features=transpose_conv_loops)
def transpose_conv_f32(step: Step, prog: Program) -> KernelCall | None:
    g = geometry(step)
    return KernelCall({**g, **act_f32(step.attrs)},
                      [("weights", c_filter(step).astype(np.float32)), bias_array(step, g["out_c"], np.float32)])
