"""Analytic instruction counts of the lowered Program on Cortex-M cores, per step and class.

No model runs here. A step's executed instructions of each class (load, store, mac,
branch_taken, branch_not_taken, other -- targets/emulator.py) are predicted as a linear function
of a few **loop counts** of the C kernel the target chose for it (``step.kernel``): how often
each loop body of templates/kernels/<kernel>.c runs for the step's shapes and parameters --
calls, output pixels, filter rows, in-bounds taps, MACs, im2col columns by the path they take,
dot-product groups, decoded weight codes, copied bytes... The features of each kernel family
mirror its loop nest (``FEATURES``, registered by ``@features(kernel, ...)``), and are exact
counts, not estimates: padding, partial pixel blocks, channel remainders, per-channel
requantization paths and power-of-two weights equal to zero are counted from the step.

The coefficients -- instructions of each class per execution of each loop body, per (core,
kernel function) -- are fitted by non-negative least squares on synthetic single-layer
programs run on the emulated cores (benchmarks/fit_cost_tables.py; never on the evaluation
models) and stored in adaptc/data/cost_tables.json. Each fitted entry also holds its fit
residuals. The intercept ("call") absorbs the per-step glue of ``<prefix>_run``: argument set-up
and the call (and, in the profiled build the emulator counts, the two instructions of the step
marker call). Leaving at an exit costs the ``<prefix>_leave`` epilogue (arg-max over the head's
classes): the gate features ``taken`` and ``taken_classes``, set for the gate of the exit
taken (``exit_taken``).

A kernel that a program calls from one step only is inlined by gcc into ``<prefix>_run`` and
specialised to that step's constant parameters (strength-reduced index arithmetic, unrolled
fixed-size loops); those steps (``inlined_steps``) use coefficients of their own over the same
features, fitted on programs that call each kernel once and pulled towards the out-of-line ones
where those samples leave them undetermined. Data-dependent branches (clamps, max comparisons,
soft-float normalisation, softmax entries that underflow) are fitted on random data: the
estimate is that of a typical input.

A feature function returns every count its kernel has (zeros included), so that a table entry
covers every path of the kernel; a path the synthetic layers never took has coefficient 0
(benchmarks/fit_cost_tables.py lists them).
"""
from __future__ import annotations

import functools
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import TargetError
from .program import GATE_OPS, Program, Step
from .timing import CLASSES

FEATURES: dict[str, Callable[..., dict[str, float]]] = {}


def features(*kernels: str):
    """Register the feature function of one or more kernel functions (one place per kernel)."""
    def register(fn):
        for k in kernels:
            assert k not in FEATURES, f"features of {k} registered twice"
            FEATURES[k] = fn
        return fn
    return register


# ------------------------------------------------------------------------------- geometry


def _axis_taps(size: int, out: int, k: int, stride: int, dil: int, pad: int) -> np.ndarray:
    """Per output coordinate, how many of the k window taps (dil apart) fall inside [0, size)."""
    origin = np.arange(out) * stride - pad
    pos = origin[:, None] + dil * np.arange(k)[None, :]
    return ((pos >= 0) & (pos < size)).sum(axis=1)


@dataclass
class _Conv:
    b: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    s_h: int
    s_w: int
    d_h: int
    d_w: int
    p_t: int
    p_l: int

    @property
    def pixels(self) -> int:
        return self.b * self.out_h * self.out_w

    @functools.cached_property
    def ty(self) -> np.ndarray:          # in-bounds filter rows per output row
        return _axis_taps(self.in_h, self.out_h, self.k_h, self.s_h, self.d_h, self.p_t)

    @functools.cached_property
    def tx(self) -> np.ndarray:          # in-bounds filter columns per output column
        return _axis_taps(self.in_w, self.out_w, self.k_w, self.s_w, self.d_w, self.p_l)

    @property
    def valid_taps(self) -> int:         # in-bounds (pixel, tap) pairs
        return self.b * int(self.ty.sum()) * int(self.tx.sum())

    def pixel_taps(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output pixel (row-major over batch, y, x): in-bounds rows and columns, each 0
        when the other is (the kernels' taps_y / taps_x of adaptc_tap_first / _end)."""
        ty = np.repeat(np.tile(self.ty, self.b), self.out_w)
        tx = np.tile(self.tx, self.b * self.out_h)
        empty = (ty == 0) | (tx == 0)
        return np.where(empty, 0, ty), np.where(empty, 0, tx)


def _conv(step: Step) -> _Conv:
    n, in_h, in_w, in_c = step.in_shapes[0]
    _, out_h, out_w, out_c = step.out_shape
    a = step.attrs
    w = step.consts["weights"]
    return _Conv(int(n), int(in_h), int(in_w), int(in_c), int(out_h), int(out_w), int(out_c), int(w.shape[0]),
                 int(w.shape[1]), int(a["strides"][0]), int(a["strides"][1]), int(a["dilation"][0]),
                 int(a["dilation"][1]), int(a["padding"][0]), int(a["padding"][1]))


def _pool(step: Step) -> _Conv:
    n, in_h, in_w, c = step.in_shapes[0]
    _, out_h, out_w, _ = step.out_shape
    a = step.attrs
    return _Conv(int(n), int(in_h), int(in_w), int(c), int(out_h), int(out_w), int(c), int(a["pool_size"][0]),
                 int(a["pool_size"][1]), int(a["strides"][0]), int(a["strides"][1]), 1, 1, int(a["padding"][0]),
                 int(a["padding"][1]))


def _shifts(step: Step, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(step.attrs["shift"], np.int64).reshape(-1), (n,))


def _clamps(step: Step) -> bool:
    """An int8 activation range narrower than [-128, 127]: the optimized kernels clamp again."""
    return int(step.attrs["act_min"]) > -128 or int(step.attrs["act_max"]) < 127


def _format(step: Step):
    from . import formats

    return formats.get(step.attrs.get("weight_format", "int8"))


def _straddles(n_codes: int, bits: int, start: int = 0) -> int:
    """Codes of a bitstream (from bit ``start``) that straddle a byte boundary."""
    if 8 % bits == 0 or n_codes == 0:
        return 0
    pos = (start + np.arange(n_codes, dtype=np.int64) * bits) % 8
    return int((pos + bits > 8).sum())


def _unpack_rows(rows: int, depth: int, fmt) -> dict[str, float]:
    """Loop counts of adaptc_unpack_row (dsp.h) over ``rows`` rows of ``depth`` codes read in
    sequence from bit 0: byte-table items (2- and 4-bit codes from a byte boundary), codes
    decoded one at a time (and the buffer refills among them), zero-padding bytes."""
    lut = fmt.bits in (2, 4)
    per = 8 // fmt.bits if lut else 0
    starts = (np.arange(rows, dtype=np.int64) * depth * fmt.bits) % 8
    aligned = int((starts == 0).sum()) if lut else 0
    table = aligned * (depth // per) if lut else 0
    codes = rows * depth - table * per
    return {"unpack_rows": rows, "unpack_table": table, "unpack_codes": codes,
            "unpack_refills": codes * fmt.bits / 8, "unpack_pad": rows * (-depth % 4)}


# ------------------------------------------------------------------------- convolutions


@features("conv2d_s8", "conv2d_f32")
def _conv_ref(step: Step) -> dict[str, float]:
    """conv2d_s8.c / conv2d_f32.c: pixels x out_c outputs; k_h filter rows each, k_w columns in
    the in-bounds rows, in_c MACs per in-bounds tap; requantize (or bias + clamp) per output."""
    g = _conv(step)
    outputs = g.pixels * g.out_c
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "outputs": outputs,
            "filter_rows": outputs * g.k_h, "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()),
            "taps": g.out_c * g.valid_taps, "macs": g.out_c * g.valid_taps * g.in_c}


@features("depthwise_conv2d_s8", "depthwise_conv2d_f32")
def _depthwise_ref(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8.c / _f32.c: per pixel, in_c x depth_multiplier outputs, each over
    k_h filter rows and the in-bounds taps (one MAC each)."""
    g = _conv(step)
    outputs = g.pixels * g.out_c
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "channels": g.pixels * g.in_c,
            "outputs": outputs, "filter_rows": outputs * g.k_h,
            "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()), "taps": g.out_c * g.valid_taps}


def _columns(g: _Conv) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(blocks, iy0, ix0, pixel) of the im2col columns of the DSP / MVE kernels: four per
    block of four output pixels, the spare columns of a last, partial block repeating its last
    pixel; each column's input origin."""
    blocks = -(-g.pixels // 4)
    q = np.minimum(np.arange(4 * blocks), g.pixels - 1)
    oy = (q // g.out_w) % g.out_h
    ox = q % g.out_w
    return blocks, oy * g.s_h - g.p_t, ox * g.s_w - g.p_l, q


def _inside(origin: np.ndarray, k: int, dil: int, size: int) -> np.ndarray:
    """[columns, k]: tap t of each column's window lies inside [0, size)."""
    pos = origin[:, None] + dil * np.arange(k)[None, :]
    return (pos >= 0) & (pos < size)


def _im2col_dsp(g: _Conv) -> dict[str, float]:
    """Loop counts of adaptc_im2col_x4 (dsp.h) over all columns: path A (whole filter rows
    converted straight from the input), B (in_c a multiple of 4: tap by tap), C (gathered as
    bytes, then converted); groups of four values converted or cleared."""
    blocks, iy0, ix0, _ = _columns(g)
    vy = _inside(iy0, g.k_h, g.d_h, g.in_h).sum(axis=1)
    vxm = _inside(ix0, g.k_w, g.d_w, g.in_w)
    vx = vxm.sum(axis=1)
    whole_rows = g.d_w == 1 and (g.k_w * g.in_c) % 4 == 0
    a = whole_rows & vxm.all(axis=1)
    b = ~a & (g.in_c % 4 == 0)
    c = ~a & ~b
    row_groups = g.k_w * g.in_c // 4
    depth = g.k_h * g.k_w * g.in_c
    na, nb, nc = int(a.sum()), int(b.sum()), int(c.sum())
    conv_a = int(vy[a].sum()) * row_groups
    conv_b = int((vy[b] * vx[b]).sum()) * (g.in_c // 4)
    clear_a = (na * g.k_h - int(vy[a].sum())) * row_groups
    clear_b = (nb * g.k_h - int(vy[b].sum())) * row_groups + int((vy[b] * (g.k_w - vx[b])).sum()) * (g.in_c // 4)
    return {"blocks": blocks, "cols_a": na, "rows_a": na * g.k_h, "cols_b": nb, "rows_b": nb * g.k_h,
            "taps_b": int(vy[b].sum()) * g.k_w, "cols_c": nc, "taps_c": nc * g.k_h * g.k_w, "bytes_c": nc * depth,
            "convert_groups": conv_a + conv_b + nc * (depth // 4), "convert_tails": nc * (depth % 4 > 0),
            "clear_groups": clear_a + clear_b}


def _rows_x4(step: Step, g: _Conv, blocks: int, groups: int) -> dict[str, float]:
    """adaptc_rows_x4 (dsp.h): per block and output channel one row of dot products -- the
    assembly (two groups a loop iteration) for channels with shift < 0, the C otherwise --;
    the clamp pass when the activation range is narrower than int8; the partial last block's copy."""
    neg = int((_shifts(step, g.out_c) < 0).sum())
    pos = g.out_c - neg
    tail = g.pixels % 4
    return {"rows_asm": blocks * neg, "groups_asm": blocks * neg * groups, "pairs_asm": blocks * neg * (groups // 2),
            "rows_c": blocks * pos, "groups_c": blocks * pos * groups,
            "clamp": blocks * 4 * g.out_c * _clamps(step), "tail": int(tail > 0), "tail_bytes": tail * g.out_c}


@features("conv2d_s8_dsp")
def _conv_dsp(step: Step) -> dict[str, float]:
    """conv2d_s8_dsp.c: four pixels a block -- im2col into int16 columns, then every output
    channel's weight row against the four columns (SMLAD)."""
    g = _conv(step)
    groups = -(-(g.k_h * g.k_w * g.in_c) // 4)
    cols = _im2col_dsp(g)
    return {"call": 1, **cols, **_rows_x4(step, g, cols["blocks"], groups)}


@features("conv2d_s8_packed_dsp")
def _conv_packed_dsp(step: Step) -> dict[str, float]:
    """conv2d_s8_packed_dsp.c: conv2d_s8_dsp with each weight row decoded before its dot
    products (adaptc_unpack_row), once per block and channel."""
    g = _conv(step)
    depth = g.k_h * g.k_w * g.in_c
    groups = -(-depth // 4)
    cols = _im2col_dsp(g)
    unpack = _unpack_rows(g.out_c, depth, _format(step))
    return {"call": 1, **cols, **_rows_x4(step, g, cols["blocks"], groups),
            **{k: cols["blocks"] * v for k, v in unpack.items()}}


@features("conv2d_s8_mve")
def _conv_mve(step: Step) -> dict[str, float]:
    """conv2d_s8_mve.c: four pixels a block, each column in place (1x1 inside the input) or
    gathered tap by tap with memcpy / memset; per block and channel, VMLADAVA over whole
    16-byte vectors and one predicated tail."""
    g = _conv(step)
    depth = g.k_h * g.k_w * g.in_c
    blocks, iy0, ix0, _ = _columns(g)
    in_y = _inside(iy0, g.k_h, g.d_h, g.in_h)
    in_x = _inside(ix0, g.k_w, g.d_w, g.in_w)
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


@features("depthwise_conv2d_s8_dsp")
def _depthwise_dsp(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8_dsp.c: per pixel, groups of four channels (SMLABB / SMLATT) over
    the window -- for 3-wide filters all k_h x 3 taps (adaptc_dw_x3: in assembly when every
    shift is negative; the window copied with the zero point at the borders), otherwise the
    in-bounds taps (adaptc_dw_quads) --, then the channels past the last multiple of four."""
    g = _conv(step)
    ty, tx = g.pixel_taps()
    quads, rest = g.in_c // 4, g.in_c % 4
    x3 = g.k_w == 3
    out = dict.fromkeys(["copy_pixels", "memcpy_calls", "memcpy_bytes", "memset_calls", "memset_bytes", "quads_asm",
                         "quad_rows_asm", "quads_c", "quad_rows_c", "quad_taps_c"], 0)
    out.update(call=1, rows=g.b * g.out_h, pixels=g.pixels)
    if x3:
        copied = (ty < g.k_h) | (tx < 3)
        in_y = _inside(np.repeat(np.tile(np.arange(g.out_h) * g.s_h - g.p_t, g.b), g.out_w), g.k_h, g.d_h, g.in_h)
        in_x = _inside(np.tile(np.arange(g.out_w) * g.s_w - g.p_l, g.b * g.out_h), 3, g.d_w, g.in_w)
        valid = (in_y.sum(axis=1) * in_x.sum(axis=1))[copied]
        n = int(copied.sum())
        out.update(copy_pixels=n, memcpy_calls=int(valid.sum()), memcpy_bytes=int(valid.sum()) * g.in_c,
                   memset_calls=n * 3 * g.k_h - int(valid.sum()),
                   memset_bytes=(n * 3 * g.k_h - int(valid.sum())) * g.in_c)
        rows = np.full(g.pixels, g.k_h)
        cols = np.full(g.pixels, 3)
    else:
        rows, cols = ty, tx
    asm = x3 and bool(np.all(_shifts(step, g.in_c) < 0)) and quads > 0
    n_rows, n_taps = int(rows.sum()), int((rows * cols).sum())
    if asm:
        out.update(quads_asm=g.pixels * quads, quad_rows_asm=quads * n_rows)
    else:
        out.update(quads_c=g.pixels * quads, quad_rows_c=quads * n_rows, quad_taps_c=quads * n_taps)
    out.update(rest=g.pixels * rest, rest_rows=rest * n_rows, rest_taps=rest * n_taps,
               clamp=g.pixels * g.in_c * _clamps(step))
    return out


@features("depthwise_conv2d_s8_mve")
def _depthwise_mve(step: Step) -> dict[str, float]:
    """depthwise_conv2d_s8_mve.c: per pixel, eight channels a chunk (the last one predicated),
    each over the in-bounds rows and taps (VMULLB / VMULLT), then requantized and scattered."""
    g = _conv(step)
    ty, tx = g.pixel_taps()
    chunks = -(-g.in_c // 8)
    partial = g.in_c % 8 > 0
    taps = int((ty * tx).sum())
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "chunks": g.pixels * chunks,
            "chunk_rows": chunks * int(ty.sum()), "chunk_taps": chunks * taps, "partial_taps": partial * taps}


def _pot_macs(step: Step, g: _Conv | None, batches: int = 1) -> tuple[float, float]:
    """(zero, non-zero) power-of-two weight MACs the packed kernels execute: adaptc_pot_mac
    branches on the weight's sign and tests for 0. Conv: each weight tap (ky, kx) once per
    pixel where it is in bounds."""
    w = np.asarray(step.consts["weights"])
    zero = w == 0
    if g is None:                                    # dense [IN, OUT]
        return float(batches * zero.sum()), float(batches * (~zero).sum())
    in_y = _inside(np.arange(g.out_h) * g.s_h - g.p_t, g.k_h, g.d_h, g.in_h).sum(axis=0)   # per ky: rows in bounds
    in_x = _inside(np.arange(g.out_w) * g.s_w - g.p_l, g.k_w, g.d_w, g.in_w).sum(axis=0)
    uses = g.b * in_y[:, None] * in_x[None, :]                                              # [k_h, k_w]
    zero_uses = float((zero.sum(axis=(2, 3)) * uses).sum())                                 # HWIO
    return zero_uses, float(uses.sum() * g.in_c * g.out_c - zero_uses)


@features("conv2d_s8_packed")
def _conv_packed(step: Step) -> dict[str, float]:
    """conv2d_s8_packed.c: per output channel its row of codes decoded (adaptc_next_code,
    adaptc_decode), then conv2d_s8's loops with shift-and-add MACs for pot weights; requantized
    without a multiply when every multiplier is 2^30."""
    g = _conv(step)
    fmt = _format(step)
    depth = g.k_h * g.k_w * g.in_c
    outputs = g.pixels * g.out_c
    pot = fmt.kind == "pot"
    zero, nonzero = _pot_macs(step, g) if pot else (0.0, 0.0)
    pot_requant = bool(np.all(np.asarray(step.attrs["multiplier"]) == 1 << 30))
    return {"call": 1, "out_rows": g.out_c, "decode": g.out_c * depth, "decode_pot": g.out_c * depth * pot,
            "straddles": _straddles(g.out_c * depth, fmt.bits), "rows": g.out_c * g.b * g.out_h,
            "outputs": outputs, "filter_rows": outputs * g.k_h,
            "filter_cols": g.out_c * g.b * g.out_w * g.k_w * int(g.ty.sum()), "taps": g.out_c * g.valid_taps,
            "macs_int": 0 if pot else g.out_c * g.valid_taps * g.in_c, "macs_pot_zero": zero,
            "macs_pot": nonzero, "requant_pot": outputs * pot_requant, "requant": outputs * (not pot_requant)}


# ------------------------------------------------------------------------ fully connected


def _dense(step: Step) -> tuple[int, int, int]:
    """(batches, in_features, out_features)."""
    return int(np.prod(step.in_shapes[0][:-1])), int(step.in_shapes[0][-1]), int(step.out_shape[-1])


@features("fully_connected_s8", "fully_connected_f32")
def _fc_ref(step: Step) -> dict[str, float]:
    b, i, o = _dense(step)
    return {"call": 1, "batches": b, "outputs": b * o, "macs": b * o * i}


def _fc_columns(step: Step, b: int, i: int, o: int) -> dict[str, float]:
    """The DSP fully connected kernels' per-batch input conversion and per-output requantization
    (adaptc_rq: the cheaper form for shift < 0)."""
    neg = int((_shifts(step, o) < 0).sum())
    return {"call": 1, "batches": b, "convert_groups": b * (i // 4), "convert_tails": b * (i % 4 > 0),
            "outputs_neg": b * neg, "outputs_pos": b * (o - neg), "groups": b * o * (-(-i // 4))}


@features("fully_connected_s8_dsp")
def _fc_dsp(step: Step) -> dict[str, float]:
    """fully_connected_s8_dsp.c: per batch row the input converted to int16 once; per output
    two SMLAD per group of four weights, then requantized."""
    return _fc_columns(step, *_dense(step))


@features("fully_connected_s8_packed_dsp")
def _fc_packed_dsp(step: Step) -> dict[str, float]:
    """fully_connected_s8_packed_dsp.c: fully_connected_s8_dsp with each row decoded first
    (adaptc_unpack_row; the stream restarts for every batch row)."""
    b, i, o = _dense(step)
    unpack = _unpack_rows(o, i, _format(step))
    return {**_fc_columns(step, b, i, o), **{k: b * v for k, v in unpack.items()}}


@features("fully_connected_s8_mve")
def _fc_mve(step: Step) -> dict[str, float]:
    """fully_connected_s8_mve.c: four outputs at a time, VMLADAVA over whole 16-byte vectors and
    one predicated tail, requantized four lanes at once."""
    b, i, o = _dense(step)
    quads = b * -(-o // 4)
    return {"call": 1, "batches": b, "quads": quads, "vectors": quads * (i // 16), "vector_tails": quads * (i % 16 > 0)}


@features("fully_connected_s8_packed")
def _fc_packed(step: Step) -> dict[str, float]:
    """fully_connected_s8_packed.c: per output its row decoded once, then per batch row the MACs
    (shift-and-add for pot weights) and the requantization."""
    b, i, o = _dense(step)
    fmt = _format(step)
    pot = fmt.kind == "pot"
    zero, nonzero = _pot_macs(step, None, b) if pot else (0.0, 0.0)
    pot_requant = bool(np.all(np.asarray(step.attrs["multiplier"]) == 1 << 30))
    return {"call": 1, "out_rows": o, "decode": o * i, "decode_pot": o * i * pot,
            "straddles": _straddles(o * i, fmt.bits), "outputs": b * o, "macs_int": 0 if pot else b * o * i,
            "macs_pot_zero": zero, "macs_pot": nonzero, "requant_pot": b * o * pot_requant,
            "requant": b * o * (not pot_requant)}


# ------------------------------------------------------------------------ element-wise


def _elements(step: Step) -> int:
    return int(np.prod(step.out_shape)) if step.out_shape else 1


@features("add_s8", "add_f32", "clamp_f32", "lut_s8")
def _elementwise(step: Step) -> dict[str, float]:
    return {"call": 1, "elements": _elements(step)}


@features("add_s8_dsp")
def _add_dsp(step: Step) -> dict[str, float]:
    """add_s8_dsp.c: one loop with adaptc_rq_right when the three shifts are negative, else
    the general adaptc_rq."""
    a = step.attrs
    fast = a["input1_shift"] < 0 and a["input2_shift"] < 0 and a["shift"][0] < 0
    n = _elements(step)
    return {"call": 1, "elements_fast": n * fast, "elements": n * (not fast)}


@features("avg_pool_s8", "max_pool_s8", "avg_pool_f32", "max_pool_f32")
def _pool_features(step: Step) -> dict[str, float]:
    """Pooling: per output (pixel x channel) the in-bounds window rows and elements."""
    g = _pool(step)
    outputs = g.pixels * g.in_c
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "outputs": outputs,
            "window_rows": g.in_c * g.b * g.out_w * int(g.ty.sum()), "window": g.in_c * g.valid_taps}


@features("softmax_s8", "softmax_f32")
def _softmax(step: Step) -> dict[str, float]:
    n = _elements(step)
    depth = int(step.out_shape[-1])
    return {"call": 1, "rows": n // depth, "elements": n}


def _dims4(shape) -> list[int]:
    return [1] * (4 - len(shape)) + [int(d) for d in shape]


@features("pad_s8", "pad_f32")
def _pad(step: Step) -> dict[str, float]:
    """pad_*.c: four nested loops over the output, reading the inside elements."""
    o = _dims4(step.out_shape)
    return {"call": 1, "loop1": o[0] * o[1], "loop2": o[0] * o[1] * o[2], "elements": int(np.prod(o)),
            "inside": int(np.prod(step.in_shapes[0]))}


@features("transpose_s8", "transpose_f32")
def _transpose(step: Step) -> dict[str, float]:
    """transpose_*.c: loops over the output dimensions, the innermost a strided copy."""
    o = _dims4(step.out_shape)
    return {"call": 1, "loop1": o[0] * o[1], "loop2": o[0] * o[1] * o[2], "elements": int(np.prod(o))}


@features("gate_max_prob_s8", "gate_margin_s8", "gate_entropy_s8", "gate_max_prob_f32", "gate_margin_f32",
          "gate_entropy_f32")
def _gate(step: Step, exit_taken: bool = False) -> dict[str, float]:
    """Gates: two or three passes over the head's classes; at the exit taken, also the
    ``<prefix>_leave`` arg-max over them."""
    c = int(step.in_shapes[0][-1])
    return {"call": 1, "classes": c, "log_classes": math.log2(c), "taken": int(exit_taken),
            "taken_classes": c * exit_taken}


# --------------------------------------------------------------------------- the model


def step_features(step: Step, exit_taken: bool = False) -> dict[str, float]:
    """The loop counts of ``step``'s kernel (``step.kernel``, set when the target rendered the
    program)."""
    fn = FEATURES.get(step.kernel)
    if fn is None:
        raise TargetError(f"no cost features for kernel {step.kernel or '(none: render the program first)'} "
                          f"of step {step.index} ({step.op}); known: {', '.join(sorted(FEATURES))}")
    if step.op in GATE_OPS:
        return {k: float(v) for k, v in fn(step, exit_taken).items()}
    return {k: float(v) for k, v in fn(step).items()}


TABLES = "cost_tables.json"


@functools.lru_cache(maxsize=None)
def tables() -> dict:
    """adaptc/data/cost_tables.json: {"cores": {core: {kernel: entry}}, ...}; an entry holds
    ``features`` (names, in order), ``coef`` (class -> one coefficient per feature), the number
    of fitted ``samples`` and the fit's ``residuals`` -- and under ``inlined`` the same for the
    kernel called from one step only."""
    from .data import path

    return json.loads(path(TABLES).read_text())


def entry(core: str, kernel: str) -> dict:
    cores = tables()["cores"]
    if core not in cores:
        raise TargetError(f"no cost tables for core {core!r}; tables exist for {', '.join(sorted(cores))}")
    if kernel not in cores[core]:
        raise TargetError(f"no cost table entry for kernel {kernel!r} on {core}: refit with "
                          f"benchmarks/fit_cost_tables.py (entries for {core}: {', '.join(sorted(cores[core]))})")
    return cores[core][kernel]


def predict(e: dict, f: dict[str, float], inlined: bool = False) -> dict[str, float]:
    """Instructions by class of table entry ``e`` for features ``f``; ``inlined``: for a kernel
    called from one step only, the entry's inlined coefficients (when it has them)."""
    x = np.array([f.get(name, 0.0) for name in e["features"]])
    coef = e["inlined"]["coef"] if inlined and "inlined" in e else e["coef"]
    return {cls: max(float(np.dot(coef[cls], x)), 0.0) for cls in CLASSES}


def step_classes(step: Step, core: str, exit_taken: bool = False, inlined: bool = False) -> dict[str, float]:
    """Predicted executed instructions of ``step`` on ``core`` by class (the classes of
    ``TargetRun.steps``). ``exit_taken``: the step is the gate of the exit the inference leaves
    at (adds the leave epilogue); ``inlined``: no other step of the program calls its kernel
    (``inlined_steps``; ``program_classes`` sets both)."""
    e = entry(core, step.kernel)
    f = step_features(step, exit_taken)
    missing = set(f) - set(e["features"])
    if missing:
        raise TargetError(f"cost table entry {core}/{step.kernel} lacks features {sorted(missing)}: refit with "
                          "benchmarks/fit_cost_tables.py")
    return predict(e, f, inlined)


def program_classes(prog: Program, core: str, level: int | None = None) -> list[dict[str, float]]:
    """Per step of ``prog`` (rendered for ``core``) the predicted instructions by class for one
    inference at ``level`` (a program with exits: running through exit ``level``, default the
    top; the steps after its gate count zero, as in ``TargetRun.steps``)."""
    last, taken = len(prog.steps) - 1, None
    if prog.exits:
        level = len(prog.exits) - 1 if level is None else int(level)
        if not 0 <= level < len(prog.exits):
            raise TargetError(f"level {level} out of range 0..{len(prog.exits) - 1}")
        last = taken = prog.exits[level].gate
    once = set(inlined_steps(prog))
    zero = dict.fromkeys(CLASSES, 0.0)
    return [step_classes(s, core, exit_taken=s.index == taken, inlined=s.index in once) if s.index <= last
            else dict(zero) for s in prog.steps]


def inlined_steps(prog: Program) -> list[int]:
    """Steps whose kernel no other step calls: gcc inlines such a kernel into ``<prefix>_run``
    and specialises it to the step's constants (the tables' ``inlined`` coefficients)."""
    calls = Counter(s.kernel for s in prog.steps)
    return [s.index for s in prog.steps if calls[s.kernel] == 1]
