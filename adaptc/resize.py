"""Resizing as compile-time tables. Bilinear: per output row (and column) the lower and upper
source index and the fraction between them, so a kernel only gathers four values and weighs them
-- ``tflite_integer`` follows TFLite's ``reference_ops::ResizeBilinearInteger`` (int8: 10-bit
fractions), ``tflite_float`` its float ``ResizeBilinear``. Nearest: the source index of each output
position (``tflite_nearest_indices``, ``onnx_nearest_indices``: a gather). ONNX's linear and
cubic modes are per-axis tap tables (adaptc.interpolate). Nothing here imports TVM.
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


def tflite_nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """Source index of each output position of TFLite's RESIZE_NEAREST_NEIGHBOR along one axis
    (reference_ops::GetNearestNeighbor, in float32)."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5 if half_pixel_centers else 0.0)) * scale
    pos = pos.astype(np.float32).astype(np.float64)
    idx = np.sign(pos) * np.floor(np.abs(pos) + 0.5) if align_corners else np.floor(pos)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    return np.maximum(idx, 0) if half_pixel_centers else idx


def onnx_nearest_indices(in_size: int, out_size: int, scale: float, coordinate_mode: str,
                         nearest_mode: str) -> np.ndarray:
    """Source index of each output position of ONNX Resize (mode nearest) along one axis, as
    onnxruntime computes it (float32 coordinates, then the nearest mode's rounding, clamped)."""
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
    elif coordinate_mode == "tf_half_pixel_for_nn":
        pos = (x + np.float32(0.5)) / s
    else:
        raise ValueError(f"coordinate_transformation_mode {coordinate_mode!r}")
    pos = pos.astype(np.float32).astype(np.float64)
    if nearest_mode == "floor":
        idx = np.floor(pos)
    elif nearest_mode == "ceil":
        idx = np.ceil(pos)
    elif nearest_mode == "round_prefer_ceil":
        idx = np.floor(pos + 0.5)
    elif nearest_mode == "round_prefer_floor":
        idx = np.ceil(pos - 0.5)
    else:
        raise ValueError(f"nearest_mode {nearest_mode!r}")
    return np.clip(idx, 0, in_size - 1).astype(np.int64)


def _source_coordinates(out_size: int, in_size: int, scale: float, coord: str, roi) -> np.ndarray:
    """x_original of each output position (float64), as the ONNX specification defines it."""
    y = np.arange(out_size, dtype=np.float64)
    length = scale * in_size
    if coord == "align_corners":
        return np.zeros(out_size) if length == 1 else y * (in_size - 1) / (length - 1)
    if coord == "asymmetric":
        return y / scale
    if coord == "tf_crop_and_resize":
        start, end = roi
        if length == 1:
            return np.full(out_size, (end - start) * (in_size - 1) / 2 + start * (in_size - 1))
        return y * (end - start) * (in_size - 1) / (length - 1) + start * (in_size - 1)
    if coord == "pytorch_half_pixel":
        return np.full(out_size, -0.5) if length == 1 else (y + 0.5) / scale - 0.5
    if coord == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if coord == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / length)
        return offset + (y + 0.5) / scale - 0.5
    raise ValueError(f"coordinate_transformation_mode {coord!r}")


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient ``a``."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _coefficients(ratio: np.ndarray, scale: float, mode: str, cubic_a: float, antialias: bool) -> np.ndarray:
    """[out, K] weights of the K neighbours of each position (ratio in (0, 1]: the distance of the
    source coordinate from the neighbour just left of it)."""
    r = ratio[:, None]
    if mode == "linear" and not antialias:
        return np.concatenate([1 - r, r], axis=1)
    if mode == "cubic" and not antialias:
        return _cubic(np.concatenate([r + 1, r, 1 - r, 2 - r], axis=1), cubic_a)
    s = min(scale, 1.0)                  # antialias: the kernel stretched by 1 / scale when downsampling
    if mode == "linear":
        start = int(np.floor(-1 / s) + 1)
        offsets = np.arange(start, 2 - start)
        c = np.clip(1 - np.abs((offsets[None, :] - r) * s), 0, 1)
    else:
        start = int(np.floor(-2 / s) + 1)
        c = _cubic(s * (np.arange(start, 2 - start)[None, :] - r), cubic_a)
    return c / c.sum(axis=1, keepdims=True)


def onnx_taps(in_size: int, out_size: int, scale: float, mode: str, coord: str = "half_pixel",
              cubic_a: float = -0.75, exclude_outside: bool = False, antialias: bool = False,
              roi=(0.0, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX Resize (mode linear or cubic) along one axis: (source indices int32 [out, K],
    weights float32 [out, K], extrapolated bool [out] -- tf_crop_and_resize positions outside
    the input, whose value is the extrapolation value; their weights are 0). ``scale`` is the
    axis's scale factor (the ``scales`` input, or out / in for ``sizes``)."""
    x = _source_coordinates(out_size, in_size, float(scale), coord, roi)
    floor = np.floor(x)
    ratio = np.where(x == floor, 1.0, x - floor)
    w = _coefficients(ratio, float(scale), mode, float(cubic_a), antialias)
    k = w.shape[1]
    pad = -(-k // 2)                     # the K nearest neighbours, ties to the smaller index
    padded = x + pad
    p = np.floor(padded).astype(np.int64)
    frac = padded - p
    if k % 2 == 0:
        first = np.where(frac == 0, -(k // 2), -(k // 2) + 1)
    else:
        first = np.where(frac <= 0.5, -((k - 1) // 2), -((k - 1) // 2) + 1)
    idx = (p + first)[:, None] + np.arange(k)[None, :] - pad
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= in_size), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    extrapolated = np.zeros(out_size, bool)
    if coord == "tf_crop_and_resize":
        extrapolated = (x < 0) | (x > in_size - 1)
        w = np.where(extrapolated[:, None], 0.0, w)
    return np.clip(idx, 0, in_size - 1).astype(np.int32), w.astype(np.float32), extrapolated
