"""Bilinear resizing as compile-time tables: per output row (and column) the lower and upper source
index and the fraction between them, so a kernel only gathers four values and weighs them.

``tflite_integer`` follows TFLite's ``reference_ops::ResizeBilinearInteger`` (int8: 10-bit
fractions), ``tflite_float`` its float ``ResizeBilinear``, ``onnx_linear`` onnxruntime's
``Resize`` mode linear. Nothing here imports TVM.
"""
from __future__ import annotations

import numpy as np


def _trunc_div(a: np.ndarray, b: int) -> np.ndarray:
    """C's integer division (towards zero)."""
    return np.sign(a) * (np.abs(a) // b)


def tflite_integer(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool):
    """(lower, upper, fraction) int32 per output position along one axis, fraction in 1/1024
    (ComputeInterpolationValuesInteger; the fraction is ``input_y - 1024 * y0``)."""
    scale = ((1 << 10) * in_size + out_size // 2) // out_size
    if align_corners and out_size > 1:
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    pos = np.arange(out_size, dtype=np.int64) * scale
    if half_pixel_centers:
        pos = pos + scale // 2 - (1 << 9)
    lo = np.maximum(_trunc_div(pos, 1 << 10), 0)
    hi = np.minimum(_trunc_div(pos + (1 << 10) - 1, 1 << 10), in_size - 1)
    return lo.astype(np.int32), hi.astype(np.int32), (pos - (lo << 10)).astype(np.int32)


def tflite_float(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool):
    """(lower, upper, fraction) per output position along one axis, fraction float32
    (ComputeInterpolationValues, float32 throughout)."""
    scale = np.float32(in_size) / np.float32(out_size)
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    v = np.arange(out_size, dtype=np.float32)
    pos = ((v + np.float32(0.5)) * scale - np.float32(0.5)) if half_pixel_centers else v * scale
    pos = pos.astype(np.float32)
    lo = np.maximum(np.floor(pos).astype(np.int64), 0)
    hi = np.minimum(np.ceil(pos).astype(np.int64), in_size - 1)
    return lo.astype(np.int32), hi.astype(np.int32), (pos - lo.astype(np.float32)).astype(np.float32)


def onnx_linear(in_size: int, out_size: int, scale: float, coordinate_mode: str):
    """(lower, upper, fraction float32) per output position of ONNX Resize mode linear along one
    axis, as onnxruntime computes it (the source coordinate clamped to [0, in_size - 1])."""
    x = np.arange(out_size, dtype=np.float32)
    s = np.float32(scale)
    if coordinate_mode == "half_pixel":
        pos = (x + np.float32(0.5)) / s - np.float32(0.5)
    elif coordinate_mode == "pytorch_half_pixel":
        pos = (x + np.float32(0.5)) / s - np.float32(0.5) if out_size > 1 else np.zeros_like(x)
    elif coordinate_mode == "align_corners":
        pos = x * np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.zeros_like(x)
    elif coordinate_mode == "asymmetric":
        pos = x / s
    else:
        raise ValueError(f"coordinate_transformation_mode {coordinate_mode!r}")
    pos = np.clip(pos.astype(np.float32), np.float32(0), np.float32(in_size - 1))
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo.astype(np.int32), hi.astype(np.int32), (pos - lo.astype(np.float32)).astype(np.float32)


def reflect_indices(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each position of an axis padded by mirroring: ``reflect`` leaves the edge
    out (TFLite MIRROR_PAD REFLECT, ONNX Pad reflect), ``symmetric`` repeats it (SYMMETRIC),
    ``edge`` repeats the edge value (ONNX Pad edge)."""
    i = np.arange(-before, size + after)
    if mode == "edge":
        return np.clip(i, 0, size - 1)
    if mode == "reflect":
        period = 2 * (size - 1) if size > 1 else 1
        j = np.mod(i, period)
        return np.where(j < size, j, period - j) if size > 1 else np.zeros_like(i)
    if mode == "symmetric":
        period = 2 * size
        j = np.mod(i, period)
        return np.where(j < size, j, period - 1 - j)
    raise ValueError(f"mirror mode {mode!r}")
