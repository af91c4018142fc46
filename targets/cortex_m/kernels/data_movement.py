"""Quantization at a model's edges and the data-movement operators that compute:
``adaptc.quantize`` (float input -> int8, TFLite QUANTIZE), ``adaptc.dequantize`` (int8 -> float
output, DEQUANTIZE), bilinear resizing (``adaptc.qresize_bilinear``: TFLite's integer
ResizeBilinear; ``adaptc.resize_bilinear_f32``) from compile-time index and fraction tables, and
ARG_MAX (``adaptc.qargmax``, ``adaptc.argmax_f32``: int32 indices). The operators that only move
bytes are transpose, slice, gather, concat and pad steps (their own modules)."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import elements
from .registry import KernelCall, kernel


def elementwise_loops(step: Step) -> dict[str, float]:
    """quantize_f32_s8.c, dequantize_s8_f32.c: one loop over the elements."""
    return {"call": 1, "elements": elements(step)}


@kernel("quantize_f32_s8", "adaptc.quantize", features=elementwise_loops)
def quantize_f32_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({"size": elements(step), "scale": float(np.float32(a["output_scale"])),
                       "output_offset": int(a["output_zp"]), "act_min": int(a["act_min"]),
                       "act_max": int(a["act_max"])}, [])


@kernel("dequantize_s8_f32", "adaptc.dequantize", features=elementwise_loops)
def dequantize_s8_f32(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({"size": elements(step), "input_offset": int(a["input_zp"]),
                       "scale": float(np.float32(a["input_scale"]))}, [])


TABLES = ("y_lo", "y_hi", "y_frac", "x_lo", "x_hi", "x_frac")


def _resize_geometry(step: Step) -> dict:
    n, ih, iw, c = step.in_shapes[0]
    return {"batches": n, "in_h": ih, "in_w": iw, "out_h": step.out_shape[1], "out_w": step.out_shape[2],
            "channels": c}


def resize_loops(step: Step) -> dict[str, float]:
    """resize_bilinear_*.c: per output row two row pointers, per position four, per element four
    multiply-adds."""
    g = _resize_geometry(step)
    rows = g["batches"] * g["out_h"]
    return {"call": 1, "rows": rows, "positions": rows * g["out_w"], "elements": elements(step)}


def _resize(step: Step, frac_dtype) -> KernelCall:
    arrays = [(t, step.consts[t].astype(frac_dtype if t.endswith("frac") else np.int32).reshape(-1)) for t in TABLES]
    return KernelCall({**_resize_geometry(step), **{t: ("array", t) for t in TABLES}}, arrays)


@kernel("resize_bilinear_s8", "adaptc.qresize_bilinear", features=resize_loops)
def resize_bilinear_s8(step: Step, prog: Program) -> KernelCall | None:
    return _resize(step, np.int32)


@kernel("resize_bilinear_f32", "adaptc.resize_bilinear_f32", features=resize_loops)
def resize_bilinear_f32(step: Step, prog: Program) -> KernelCall | None:
    return _resize(step, np.float32)


def _argmax_geometry(step: Step) -> dict:
    shape, axis = step.in_shapes[0], int(step.attrs["axis"])
    return {"outer": int(np.prod(shape[:axis])), "axis_size": shape[axis], "inner": int(np.prod(shape[axis + 1:]))}


def argmax_loops(step: Step) -> dict[str, float]:
    """argmax_*.c: per output one pass over the reduced axis."""
    g = _argmax_geometry(step)
    outputs = g["outer"] * g["inner"]
    return {"call": 1, "outputs": outputs, "elements": outputs * g["axis_size"]}


@kernel("argmax_s8", "adaptc.qargmax", features=argmax_loops)
def argmax_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(_argmax_geometry(step), [])


@kernel("argmax_f32", "adaptc.argmax_f32", features=argmax_loops)
def argmax_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(_argmax_geometry(step), [])
