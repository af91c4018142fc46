"""Fit targets/cortex_m/data/cost_tables.json: per (core, kernel function), instructions of each
class per execution of each loop of the kernel (the features of its kernel record,
targets/cortex_m/kernels/; the model in targets/cortex_m/costs.py).

Synthetic programs of randomized but typical TinyML layers -- convolutions (1x1 to 10x4,
strides, dilation, same / valid / asymmetric padding, 1 to 64 channels), depthwise, fully
connected, packed low-bit weights (pot2 .. pot5, int4; TFLite and power-of-two requantization),
add, pools, softmax, pad, transpose, table lookups, float32 layers, and exit gates of every
criterion -- are rendered for every core with every kernel variant set it can run (so the
reference kernels are fitted on the DSP / MVE cores too: they are what a declined layer falls
back to), run once on the emulated core (QEMU, exact per-step instruction classes), and each
(core, kernel) gets a non-negative least-squares fit, relative to each step's size, of its
class counts on its features. The evaluation models (ResNet-8, KWS, the digits CNN with
exits) are never used here: tests/targets/cortex_m/test_costs.py checks the tables generalize to them.

Every step of a program reads the program input (as its own shape) and writes its own
buffer. In most programs each kernel is called from several steps -- as in a real model, where
gcc keeps it out of line; "once" programs hold one layer of each family, so that gcc inlines
every kernel into <prefix>_run and specialises it: those steps fit each entry's ``inlined``
coefficients (the same features, pulled towards the out-of-line coefficients by ridge rows where
the samples leave them undetermined). Each fit is repeated without the samples it misses by far
(layers gcc folded to almost nothing). About 400 programs, ~3 minutes on 2 cores (the cross
builds are cached by content under $ADAPTC_CACHE, so a rerun is faster).

    .venv/bin/python benchmarks/fit_cost_tables.py [--jobs N] [--out targets/cortex_m/data/cost_tables.json]
    .venv/bin/python benchmarks/fit_cost_tables.py --kernels mean_s8 mean_f32

``--kernels``: fit only those kernels, on programs of their operator's synthetic layers
(benchmarks/synthetic_ops.py: several layers a program for the out-of-line coefficients, one for
the inlined ones), on every core that runs them, and merge their entries into the existing
tables; every other entry is kept as it is (benchmarks/kernel_tables.py runs this and the code
size measurement for a new kernel).

Prints the residuals of every fit (relative error of each sample's instructions and cycles).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from synthetic_ops import OPS as SYNTHETIC  # noqa: E402

CORES = ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55"]
FLASH_BUDGET = 280 << 10          # constants per program (the M3 and M55 boards have 512 KB)
RAM_BUDGET = 24 << 10             # per buffer (the M3 board has 96 KB for input + arena)
GATE_PROGRAMS = 6                 # per core and dtype: three exits of each criterion each


# ------------------------------------------------------------------------ quantization


def requant(rng, acc_std: np.ndarray, positive: bool = False) -> tuple[list[int], list[int]]:
    """TFLite per-channel (multiplier, shift) for accumulators of standard deviation acc_std:
    outputs of a few dozen steps; ``positive``: some channels with scale >= 1 (shift > 0)."""
    scale = 40.0 / np.maximum(acc_std, 1.0) * rng.uniform(0.5, 2.0, size=acc_std.shape)
    if positive:
        pick = rng.random(acc_std.shape) < 0.5
        scale = np.where(pick, rng.uniform(1.0, 3.0, size=acc_std.shape), scale)
    mult, shift = [], []
    for s in scale:
        m, e = math.frexp(float(s))
        q = int(round(m * (1 << 31)))
        if q == 1 << 31:
            q, e = q // 2, e + 1
        mult.append(q)
        shift.append(max(e, -31))
    return mult, shift


def activation(rng, out_zp: int) -> tuple[int, int]:
    """Mostly the whole int8 range (ReLU folded into the zero point); sometimes narrower."""
    if rng.random() < 0.8:
        return -128, 127
    lo = int(rng.integers(-128, 0))
    return lo, int(rng.integers(max(lo + 1, 0), 128))


def zero_point(rng) -> int:
    return -128 if rng.random() < 0.5 else int(rng.integers(-128, 128))


# ------------------------------------------------------------------------------ layers


def _out_size(size, k, stride, dil, pad_total):
    return (size + pad_total - dil * (k - 1) - 1) // stride + 1


def conv_geometry(rng, depthwise: bool, elements: int = RAM_BUDGET):
    """(in_shape, out_shape, k, strides, dilation, padding [t, l, b, r], out_c) of a layer whose
    input and output have at most ``elements`` values."""
    while True:
        if depthwise:
            in_c = int(rng.choice([3, 4, 8, 10, 16, 24, 32, 48, 64]))
            k = [(3, 3), (3, 3), (3, 3), (5, 5), (3, 1), (1, 3), (7, 7)][rng.integers(7)]
        else:
            in_c = int(rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 16, 24, 32, 32, 48, 64, 64]))
            k = [(1, 1), (1, 1), (3, 3), (3, 3), (3, 3), (5, 5), (3, 1), (1, 3), (10, 4), (7, 7)][rng.integers(10)]
        if rng.random() < 0.15:                      # a KWS-like spectrogram
            h, w = int(rng.integers(20, 50)), int(rng.integers(5, 12))
        else:
            h = w = int(rng.choice([4, 5, 6, 8, 8, 10, 12, 16, 16, 20, 24, 32]))
            if rng.random() < 0.2:
                w = int(rng.integers(3, 33))
        stride = (1, 1) if rng.random() < 0.6 else (2, 2)
        dil = (2, 2) if rng.random() < 0.08 else (1, 1)
        batch = 1 if rng.random() < 0.9 else 2
        mode = rng.choice(["same", "same", "valid", "explicit"])
        pads = []
        for size, kk, s, d in ((h, k[0], stride[0], dil[0]), (w, k[1], stride[1], dil[1])):
            span = d * (kk - 1) + 1
            if mode == "valid":
                total = 0
            elif mode == "same":                     # TFLite SAME: the extra pad at the end
                out = -(-size // s)
                total = max((out - 1) * s + span - size, 0)
            else:
                total = int(rng.integers(0, span))
            before = total // 2 if mode != "explicit" else int(rng.integers(0, total + 1))
            pads.append((before, total - before))
        oh = _out_size(h, k[0], stride[0], dil[0], sum(pads[0]))
        ow = _out_size(w, k[1], stride[1], dil[1], sum(pads[1]))
        if oh < 1 or ow < 1:
            continue
        if depthwise:
            out_c = in_c * (1 if rng.random() < 0.85 else 2)
        else:
            out_c = int(rng.choice([2, 4, 8, 8, 12, 16, 16, 24, 32, 32, 48, 64]))
        macs = batch * oh * ow * out_c * k[0] * k[1] * (1 if depthwise else in_c)
        weights = k[0] * k[1] * out_c * (1 if depthwise else in_c)
        if (macs > 1_500_000 or weights > 24 << 10 or batch * h * w * in_c > elements
                or batch * oh * ow * out_c > elements):
            continue
        return ((batch, h, w, in_c), (batch, oh, ow, out_c), k, stride, dil,
                [pads[0][0], pads[1][0], pads[0][1], pads[1][1]], out_c)


def conv_step(rng, depthwise: bool = False, fmt: str | None = None, float32: bool = False):
    """(op, attrs, consts, in_shapes, out_shape) of a conv / depthwise layer."""
    in_shape, out_shape, k, stride, dil, pad, out_c = conv_geometry(rng, depthwise,
                                                                    RAM_BUDGET // (4 if float32 else 1))
    in_c = in_shape[-1]
    attrs = {"strides": list(stride), "padding": pad, "dilation": list(dil)}
    if depthwise:
        wshape, attrs["groups"], attrs["kernel_layout"] = (k[0], k[1], out_c, 1), in_c, "HWOI"
    else:
        wshape, attrs["groups"], attrs["kernel_layout"] = (k[0], k[1], in_c, out_c), 1, "HWIO"
    depth = k[0] * k[1] * (1 if depthwise else in_c)
    if float32:
        w = rng.normal(0, 1 / math.sqrt(depth), size=wshape).astype(np.float32)
        bias = rng.normal(0, 0.1, size=out_c).astype(np.float32)
        if rng.random() < 0.5:
            attrs.update(act_min=0.0, act_max=float("inf") if rng.random() < 0.7 else 6.0)
        return "adaptc.conv2d_f32", attrs, {"weights": w, "bias": bias}, [in_shape], out_shape
    return _quantized(rng, "adaptc.qconv2d", attrs, wshape, depth, out_c, fmt, [in_shape], out_shape)


def _quantized(rng, op, attrs, wshape, depth, out_c, fmt, in_shapes, out_shape):
    from adaptc import formats

    pot_requant = False
    if fmt is None:
        w_std = float(rng.uniform(8, 60))
        w = np.clip(np.round(rng.normal(0, w_std, size=wshape)), -127, 127).astype(np.int8)
    else:
        f = formats.get(fmt)
        w = rng.choice(f.grid, size=wshape).astype(np.int16 if f.max_value > 127 else np.int8)
        w_std = float(np.abs(w).std() + 1)
        pot_requant = rng.random() < 0.5
        attrs["weight_format"] = fmt
    in_zp, out_zp = zero_point(rng), zero_point(rng)
    acc_std = np.full(out_c, w_std * 74.0 * math.sqrt(depth))
    mult, shift = requant(rng, acc_std, positive=rng.random() < 0.15)
    if pot_requant:
        flat = np.abs(w.astype(np.float64)).reshape(-1, out_c) if op == "adaptc.qconv2d" else \
            np.abs(w.astype(np.float64))
        spread = np.log2(flat.sum(axis=0) * 128 + 1)
        mult = [1 << 30] * out_c
        shift = [int(s) for s in (7 - np.ceil(spread)).astype(np.int64) + rng.integers(-1, 2, size=out_c)]
    bias = None if rng.random() < 0.1 else rng.normal(0, acc_std[0] / 4, size=out_c).astype(np.int32)
    if bias is not None and rng.random() < 0.2:      # channels whose accumulator bound is not provable:
        big = rng.random(out_c) < rng.uniform(0.2, 1.0)     # the kernels' exact requantization
        bias[big] = np.where(rng.random(int(big.sum())) < 0.5, -1, 1) * (2**30 + rng.integers(0, 2**26, int(big.sum())))
        shift = [-24 if b else s for b, s in zip(big, shift)]
    act_min, act_max = activation(rng, out_zp)
    attrs.update(input_zp=in_zp, output_zp=out_zp, act_min=act_min, act_max=act_max, multiplier=mult, shift=shift)
    consts = {"weights": np.ascontiguousarray(w)}
    if bias is not None:
        consts["bias"] = bias
    return op, attrs, consts, in_shapes, out_shape


def dense_step(rng, fmt: str | None = None, float32: bool = False):
    while True:
        i = int(rng.choice([8, 10, 16, 27, 32, 49, 64, 64, 100, 128, 128, 200, 256, 300, 512, 1024]))
        o = int(rng.choice([2, 3, 4, 5, 10, 10, 12, 16, 32, 35, 64, 100, 128, 256]))
        b = 1 if rng.random() < 0.85 else int(rng.integers(2, 5))
        if i * o <= 48 << 10 and b * i * o <= 400_000:
            break
    if float32:
        attrs = {"act_min": 0.0, "act_max": float("inf")} if rng.random() < 0.5 else {}
        return ("adaptc.dense_f32", attrs, {"weights": rng.normal(0, 0.1, size=(i, o)).astype(np.float32),
                                            "bias": rng.normal(0, 0.1, size=o).astype(np.float32)}, [(b, i)], (b, o))
    attrs = {"filter_offset": 0 if fmt is not None or rng.random() < 0.85 else int(rng.integers(-10, 11))}
    return _quantized(rng, "adaptc.qdense", attrs, (i, o), i, o, fmt, [(b, i)], (b, o))


def _multiplier(real: float) -> tuple[int, int]:
    m, e = math.frexp(real)
    q = int(round(m * (1 << 31)))
    if q == 1 << 31:
        q, e = q // 2, e + 1
    return q, e


def add_step(rng, float32: bool = False):
    n = int(rng.choice([16, 64, 100, 256, 640, 1024, 2048, 4096, 8000, 16384]))
    n = min(n, RAM_BUDGET // (4 if float32 else 1))
    shape = (1, n)
    if float32:
        attrs = {"act_min": 0.0, "act_max": float("inf")} if rng.random() < 0.5 else {}
        return "adaptc.add_f32", attrs, {}, [shape, shape], shape
    s1, s2, so = rng.uniform(0.01, 0.2, size=3)
    if rng.random() < 0.7:                           # TFLite's PrepareGeneralSubOp parameters
        left, twice = 20, 2 * max(s1, s2)
        (m1, sh1), (m2, sh2) = _multiplier(s1 / twice), _multiplier(s2 / twice)
        mo, sho = _multiplier(twice / ((1 << left) * so))
    else:                                            # a little headroom: every shift negative (the fast loop)
        left, twice = 20, 2.125 * max(s1, s2)
        (m1, sh1), (m2, sh2) = _multiplier(s1 / twice), _multiplier(s2 / twice)
        mo, sho = _multiplier(twice / ((1 << left) * so))
    out_zp = zero_point(rng)
    act_min, act_max = activation(rng, out_zp)
    attrs = {"left_shift": left, "input1_zp": zero_point(rng), "input2_zp": zero_point(rng),
             "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2, "input2_shift": sh2,
             "multiplier": [mo], "shift": [sho], "output_zp": out_zp, "act_min": act_min, "act_max": act_max}
    return "adaptc.qadd", attrs, {}, [shape, shape], shape


def pool_step(rng, kind: str, float32: bool = False):
    while True:
        h = int(rng.choice([2, 4, 5, 8, 8, 10, 16, 16, 25, 32]))
        w = int(rng.choice([2, 4, 5, 8, 8, 10, 16, 16, 32]))
        c = int(rng.choice([1, 3, 8, 16, 24, 32, 64]))
        if h * w * c <= RAM_BUDGET // (4 if float32 else 1):
            break
    r = rng.random()
    if r < 0.25:                                     # global pooling
        k, s, pad = (h, w), (h, w), [0, 0, 0, 0]
    else:
        kk = int(rng.choice([2, 2, 3]))
        ss = int(rng.choice([1, 2, 2]))
        k, s = (min(kk, h), min(kk, w)), (ss, ss)
        pad = [0, 0, 0, 0]
        if rng.random() < 0.4:                       # SAME
            pads = []
            for size, kk_, st in ((h, k[0], s[0]), (w, k[1], s[1])):
                out = -(-size // st)
                total = max((out - 1) * st + kk_ - size, 0)
                pads.append((total // 2, total - total // 2))
            pad = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
    oh = _out_size(h, k[0], s[0], 1, pad[0] + pad[2])
    ow = _out_size(w, k[1], s[1], 1, pad[1] + pad[3])
    attrs = {"pool_size": list(k), "strides": list(s), "padding": pad}
    if float32:
        attrs.update(act_min=0.0 if rng.random() < 0.3 else float("-inf"), act_max=float("inf"))
        op = "adaptc.avg_pool2d_f32" if kind == "avg" else "adaptc.max_pool2d_f32"
    else:
        attrs["act_min"], attrs["act_max"] = activation(rng, -128)
        op = "adaptc.qavg_pool2d" if kind == "avg" else "adaptc.qmax_pool2d"
    return op, attrs, {}, [(1, h, w, c)], (1, oh, ow, c)


def softmax_step(rng, float32: bool = False):
    rows = 1 if rng.random() < 0.7 else int(rng.integers(2, 9))
    depth = int(rng.choice([2, 3, 4, 10, 10, 12, 20, 35, 64, 100, 256]))
    shape = (rows, depth)
    if float32:
        return "adaptc.softmax_f32", {"beta": 1.0}, {}, [shape], shape
    scale = float(rng.uniform(0.02, 0.3))
    table = np.minimum(np.round(np.exp(-scale * np.arange(256)) * 2.0**31), 2**31 - 1).astype(np.int32)
    return "adaptc.qsoftmax", {}, {"exp_table": table}, [shape], shape


def pad_step(rng, float32: bool = False):
    while True:
        shape = (1, int(rng.integers(2, 33)), int(rng.integers(2, 33)), int(rng.choice([1, 3, 8, 16, 32])))
        widths = [0, 0] + [int(v) for v in rng.integers(0, 3, size=4)] + ([0, 0] if rng.random() < 0.8 else
                                                                         [int(v) for v in rng.integers(0, 3, size=2)])
        out = tuple(d + widths[2 * i] + widths[2 * i + 1] for i, d in enumerate(shape))
        if np.prod(out) * (4 if float32 else 1) <= RAM_BUDGET:
            break
    if float32:
        return "adaptc.pad_f32", {"pad_width": widths, "pad_value": 0.0}, {}, [shape], out
    return "adaptc.qpad", {"pad_width": widths, "pad_value": zero_point(rng)}, {}, [shape], out


def transpose_step(rng, float32: bool = False):
    while True:
        rank = int(rng.choice([2, 3, 4, 4]))
        shape = tuple(int(v) for v in rng.choice([1, 2, 4, 5, 8, 10, 16, 32], size=rank))
        if np.prod(shape) * (4 if float32 else 1) <= RAM_BUDGET and np.prod(shape) >= 4:
            break
    axes = [int(a) for a in rng.permutation(rank)]
    return "adaptc.transpose", {"axes": axes}, {}, [shape], tuple(shape[a] for a in axes)


def lut_step(rng):
    n = int(rng.choice([16, 100, 256, 1024, 4096, 16384]))
    return "adaptc.qlut", {}, {"table": rng.integers(-128, 128, size=256).astype(np.int8)}, [(1, n)], (1, n)


def clamp_step(rng):
    n = int(rng.choice([16, 100, 256, 1024, 4096]))
    return "adaptc.clamp_f32", {"act_min": 0.0, "act_max": 6.0}, {}, [(1, n)], (1, n)


# ------------------------------------------------------------------------------ programs


def program(name: str, layers: list, dtype):
    """A Program whose steps each read the input (seen with the step's shape) and write a
    buffer of their own; the last one writes the output. ``dtype``: every tensor's, or (the
    input's, the outputs') for a kernel that converts (quantize_f32_s8, argmax_s8, ...)."""
    from adaptc.program import DTYPE_BYTES, Program, Step, Tensor, step_macs

    dtype, out_dtype = (dtype, dtype) if isinstance(dtype, str) else dtype
    size = max(int(np.prod(s)) for *_, in_shapes, _ in layers for s in in_shapes)
    tensors = [Tensor(0, "x", (size,), dtype, "input")]
    steps = []
    for i, (op, attrs, consts, in_shapes, out_shape) in enumerate(layers):
        last = i == len(layers) - 1
        tensors.append(Tensor(len(tensors), f"t{i}", tuple(out_shape), out_dtype, "output" if last else "arena"))
        in_shapes = [tuple(s) for s in in_shapes]
        attrs = dict(attrs)
        prefix = tuple(attrs.pop("prefix_weights", ()))     # a width level's step (synthetic_ops.py)
        steps.append(Step(i, op, f"synthetic {op}", [0] * len(in_shapes), len(tensors) - 1, attrs, consts,
                          step_macs(op, attrs, in_shapes, tuple(out_shape), consts), in_shapes=in_shapes,
                          out_shape=tuple(out_shape), prefix_weights=prefix))
    prog = Program(name, tensors, steps, [0], [len(tensors) - 1])
    assert size * DTYPE_BYTES[dtype] <= 4 * RAM_BUDGET
    return prog


def gated_program(name: str, criteria: list[str], classes: int, float32: bool):
    """A program with one exit per entry of ``criteria``: each a copy of the input into the
    logits, then its gate; no gate fires (thresholds "never"), so a run at the top level passes
    every gate and leaves at the last."""
    from adaptc import gates
    from adaptc.exits import Controller
    from adaptc.program import Exit, Program, Step, Tensor

    dtype = "float32" if float32 else "int8"
    never = np.inf if float32 else 2**31 - 1
    shape = (1, classes)
    tensors = [Tensor(0, "x", shape, dtype, "input")]
    steps, exits = [], []
    for i, criterion in enumerate(criteria):
        tensors.append(Tensor(len(tensors), f"head{i}", shape, dtype, "output"))
        head = len(tensors) - 1
        steps.append(Step(len(steps), "adaptc.transpose", "copy", [0], head, {"axes": [0, 1]}, {},
                          in_shapes=[shape], out_shape=shape))
        tensors.append(Tensor(len(tensors), f"gate{i}", (), "bool", "gate"))
        scale = 0.1
        attrs = {"criterion": criterion, "exit": i, "threshold": never}
        consts = {}
        if not float32:
            tables = gates.tables(criterion, scale)
            consts = dict(zip(["exp_table", "ln_table"], tables))
            if criterion == "entropy":
                attrs["scale_q16"] = gates.scale_q16(scale)
        steps.append(Step(len(steps), "adaptc.gate_f32" if float32 else "adaptc.qgate", f"gate {i}", [head],
                          len(tensors) - 1, attrs, consts, in_shapes=[shape], out_shape=()))
        exits.append(Exit(i, head, len(steps) - 1))
    prog = Program(name, tensors, steps, [0], [exits[-1].head], exits=exits)
    prog.controller = Controller.default([never] * (len(criteria) - 1), criteria[0], not float32)
    return prog


LAYERS = {
    "int8": lambda rng: [conv_step(rng) for _ in range(22)] + [conv_step(rng, depthwise=True) for _ in range(10)]
    + [dense_step(rng) for _ in range(10)] + [add_step(rng) for _ in range(6)],
    "packed": lambda rng: [conv_step(rng, fmt=f) for f in rng.choice(["pot2", "pot3", "pot4", "int4", "pot5"], 16)]
    + [dense_step(rng, fmt=f) for f in rng.choice(["pot2", "pot3", "pot4", "int4", "pot5"], 12)],
    "misc": lambda rng: [pool_step(rng, "avg") for _ in range(8)] + [pool_step(rng, "max") for _ in range(8)]
    + [softmax_step(rng) for _ in range(8)] + [pad_step(rng) for _ in range(6)]
    + [transpose_step(rng) for _ in range(8)]
    + [lut_step(rng) for _ in range(4)],
    "float": lambda rng: [conv_step(rng, float32=True) for _ in range(8)]
    + [conv_step(rng, depthwise=True, float32=True) for _ in range(6)]
    + [dense_step(rng, float32=True) for _ in range(6)]
    + [add_step(rng, float32=True) for _ in range(4)] + [clamp_step(rng) for _ in range(4)]
    + [pool_step(rng, k, float32=True) for k in ("avg", "max") for _ in range(5)]
    + [softmax_step(rng, float32=True) for _ in range(5)] + [pad_step(rng, float32=True) for _ in range(4)]
    + [transpose_step(rng, float32=True) for _ in range(5)],
}


# one layer of each family: a program where each kernel is called once (gcc inlines it)
ONCE = {
    "once-int8": lambda rng: [conv_step(rng), conv_step(rng, depthwise=True), dense_step(rng), add_step(rng),
                              pool_step(rng, "avg"), pool_step(rng, "max"), softmax_step(rng), pad_step(rng),
                              transpose_step(rng), lut_step(rng),
                              conv_step(rng, fmt=str(rng.choice(["pot2", "pot3", "pot4", "int4", "pot5"]))),
                              dense_step(rng, fmt=str(rng.choice(["pot2", "pot3", "pot4", "int4", "pot5"])))],
    "once-float": lambda rng: [conv_step(rng, float32=True), conv_step(rng, depthwise=True, float32=True),
                               dense_step(rng, float32=True), add_step(rng, float32=True), clamp_step(rng),
                               pool_step(rng, "avg", float32=True), pool_step(rng, "max", float32=True),
                               softmax_step(rng, float32=True), pad_step(rng, float32=True),
                               transpose_step(rng, float32=True)],
}
ONCE_PROGRAMS = 20                # per core and variant set (int8), per core (float)


def _within_budget(layers):
    """The layers, less those past the program's flash budget."""
    out, used = [], 0
    for layer in layers:
        nbytes = sum(v.nbytes for v in layer[2].values())
        if used + nbytes > FLASH_BUDGET:
            continue
        used += nbytes
        out.append(layer)
    return out


def variant_sets(core: str) -> list[str]:
    """Every kernel variant set the core can be restricted to: the best first (so that the
    reference kernels are measured on every core, as the fallbacks they are)."""
    from adaptc.targets import get

    v = get(core).kernel_variants
    return [",".join(v[i:]) for i in range(len(v))]


def jobs() -> list[tuple]:
    out = []
    for core in CORES:
        for variants in variant_sets(core):
            for seed in range(3):
                out.append((core, variants, "int8", seed))
            if not variants.startswith("mve"):       # the MVE kernels decline packed weights
                for seed in range(2):
                    out.append((core, variants, "packed", seed))
            for seed in range(ONCE_PROGRAMS):
                out.append((core, variants, "once-int8", seed))
        for seed in range(ONCE_PROGRAMS):
            out.append((core, "ref", "once-float", seed))
        for seed in range(3):
            out.append((core, "ref", "misc", seed))
            out.append((core, "ref", "float", seed))
        for dtype in ("int8", "float32"):
            for seed in range(GATE_PROGRAMS):
                out.append((core, "ref", f"gates-{dtype}", seed))
    return out


def kernel_jobs(kernels: list[str]) -> list[tuple]:
    """The programs that fit ``kernels`` alone: per core that runs the kernel's variant, with the
    variants restricted to it and those after it, programs of its synthetic layers
    (synthetic_ops.OPS[kernel], else OPS[op]) -- several layers each (the kernel out of line) and one (inlined)."""
    from adaptc.targets.cortex_m.kernels import KERNELS

    out = []
    for name in kernels:
        if name not in KERNELS:
            raise SystemExit(f"unknown kernel {name!r}; kernels: {', '.join(sorted(KERNELS))}")
        k = KERNELS[name]
        key = name if name in SYNTHETIC else k.op      # the kernel's own layers, else its operator's
        if key not in SYNTHETIC:
            raise SystemExit(f"{name}: no synthetic layers for {k.op} in benchmarks/synthetic_ops.py")
        for core in CORES:
            variants = next((v for v in variant_sets(core) if v.startswith(k.variant)), None)
            if variants is None:
                continue                               # the core does not run this variant
            out += [(core, variants, f"op:{key}", seed) for seed in range(4)]
            out += [(core, variants, f"once:{key}", seed) for seed in range(ONCE_PROGRAMS)]
    return list(dict.fromkeys(out))


def run_job(job) -> list[dict]:
    """Build, render, run one synthetic program; per step: kernel, features, measured classes."""
    import adaptc.api as api
    from adaptc.targets.cortex_m import costs

    core, variants, group, seed = job
    rng = np.random.default_rng([CORES.index(core), len(variants), seed, sum(map(ord, group))])
    if group.startswith(("op:", "once:")):             # one operator's synthetic layers
        kind, op = group.split(":")
        dtype, layer = SYNTHETIC[op]
        layers = _within_budget([layer(rng) for _ in range(8 if kind == "op" else 1)])
        prog = program(f"{op.split('.')[-1]}_{kind}_{seed}", layers, dtype)
        size = prog.tensors[0].shape
        x = (rng.normal(0, 1, size=size).astype(np.float32) if prog.tensors[0].dtype == "float32"
             else rng.integers(-128, 128, size=size).astype(np.int8))
    elif group.startswith("gates"):
        float32 = group.endswith("float32")
        order = ["max_prob", "margin", "entropy"]
        last = order[seed % 3]
        criteria = [c for c in order if c != last] * 3 + [last] * 3
        classes = int(rng.choice([2, 3, 5, 10, 12, 20, 35, 50, 100]))
        prog = gated_program(f"gates_{seed}", criteria, classes, float32)
        x = (rng.normal(0, 2, size=(1, classes)).astype(np.float32) if float32
             else rng.integers(-128, 128, size=(1, classes)).astype(np.int8))
    else:
        layers = _within_budget({**LAYERS, **ONCE}[group](rng))
        order = rng.permutation(len(layers))
        layers = [layers[i] for i in order]
        dtype = "float32" if group.endswith("float") else "int8"
        prog = program(f"{group}_{seed}", layers, dtype)
        size = prog.tensors[0].shape
        x = (rng.normal(0, 1, size=size).astype(np.float32) if dtype == "float32"
             else rng.integers(-128, 128, size=size).astype(np.int8))
    m = api.compile_program(prog, core, kernels=variants)
    r = m.run_on_target(x)
    taken = prog.exits[-1].gate if prog.exits else None
    calls = Counter(s.kernel for s in m.scheduled.steps)
    out = []
    for s, measured in zip(m.scheduled.steps, r.steps):
        out.append({"core": core, "kernel": s.kernel, "variants": variants, "group": group,
                    "features": costs.step_features(s, exit_taken=s.index == taken),
                    "classes": measured["classes"], "instructions": measured["instructions"],
                    "calls": calls[s.kernel],
                    "inlined": s.kernel not in {f.split(".")[0] for f in measured["functions"]}})
    return out


# -------------------------------------------------------------------------------- fitting


def nnls(a: np.ndarray, b: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """min ||a x - b|| subject to x >= 0 (Lawson and Hanson's active-set method)."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, bool)
    w = a.T @ (b - a @ x)
    for _ in range(3 * n + 10):
        if passive.all() or w[~passive].max() <= tol * max(1.0, np.abs(w).max()):
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > tol):
                x = z
                break
            neg = passive & (z <= tol)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        w = a.T @ (b - a @ x)
    return x


def _sig(v: float) -> float:
    return float(f"{v:.6g}")


def _solve(samples: list[dict], names: list[str], prior: dict | None = None, strength: float = 0.0) -> dict:
    """Per class, NNLS of the counts on the features, each sample weighted by 1 / its size
    (relative errors) and the features scaled to unit norm; with ``prior`` (class ->
    coefficients), ``strength`` pulls each coefficient towards it (ridge rows), so that what the
    samples leave undetermined stays at the prior."""
    from adaptc.targets.cortex_m.timing import CLASSES

    x = np.array([[s["features"].get(k, 0.0) for k in names] for s in samples])
    weight = 1.0 / np.maximum([s["instructions"] for s in samples], 1.0)
    xw = x * weight[:, None]
    norm = np.linalg.norm(xw, axis=0)
    norm[norm == 0] = 1.0
    a = xw / norm
    if prior is not None:
        a = np.vstack([a, math.sqrt(strength) * np.eye(len(names))])
    coef = {}
    for cls in CLASSES:
        y = np.array([s["classes"][cls] for s in samples], float) * weight
        if prior is not None:
            y = np.concatenate([y, math.sqrt(strength) * np.asarray(prior[cls]) * norm])
        coef[cls] = [_sig(c) for c in nnls(a, y) / norm]
    return coef


def _trimmed(samples: list[dict], names: list[str], solve) -> tuple[dict, list[dict]]:
    """Fit, drop the samples the fit misses by more than five times the median relative error
    (and 25%) -- layers gcc reduced to almost nothing by constant propagation --, fit again."""
    from adaptc.targets.cortex_m import costs

    coef = solve(samples)
    err = np.array([abs(sum(costs.predict({"features": names, "coef": coef}, s["features"]).values())
                        / max(s["instructions"], 1) - 1) for s in samples])
    keep = [s for s, e in zip(samples, err) if e <= max(5 * np.median(err), 0.25)]
    if len(keep) < len(samples):
        coef = solve(keep)
    return coef, keep


def fit(samples: list[dict]) -> dict:
    """Out-of-line kernels: NNLS on the kernel's features; ``unexercised`` lists those no
    sample had non-zero (coefficient 0)."""
    names = sorted({k for s in samples for k in s["features"]})
    x = np.array([[s["features"].get(k, 0.0) for k in names] for s in samples])
    unexercised = [n for n, used in zip(names, np.abs(x).sum(axis=0) > 0) if not used]
    coef, kept = _trimmed(samples, names, lambda ss: _solve(ss, names))
    return {"features": names, "coef": coef, "samples": len(samples), "trimmed": len(samples) - len(kept),
            "unexercised": unexercised}


INLINED_PRIOR = 1e-3              # ridge strength towards the out-of-line coefficients


def fit_inlined(entry: dict, samples: list[dict]) -> dict:
    """A kernel called from one step only, inlined and specialised by gcc: the same features,
    fitted on such steps, pulled towards the out-of-line coefficients where they say little.
    Steps gcc reduced to a tenth of the out-of-line estimate or less (constant propagation
    through degenerate random parameters) are left out first."""
    from adaptc.targets.cortex_m import costs

    names = entry["features"]
    sane = [s for s in samples if s["instructions"] > 0.1 * sum(costs.predict(entry, s["features"]).values())]
    coef, kept = _trimmed(sane, names, lambda ss: _solve(ss, names, entry["coef"], INLINED_PRIOR))
    return {"coef": coef, "samples": len(samples), "trimmed": len(samples) - len(kept)}


def residuals(entry: dict, samples: list[dict], core: str, inlined: bool = False) -> dict:
    """|estimate / measured - 1| over the samples, of the instructions and of the cycles."""
    from adaptc.targets.cortex_m import costs
    from adaptc.targets.cortex_m.timing import cycles

    ins, cyc = [], []
    for s in samples:
        pred = costs.predict(entry, s["features"], inlined)
        ins.append(sum(pred.values()) / max(s["instructions"], 1) - 1)
        cyc.append(cycles(pred, core) / max(cycles(s["classes"], core), 1e-9) - 1)

    def summary(err):
        err = np.abs(err)
        return {"median": _sig(np.median(err)), "p90": _sig(np.quantile(err, 0.9)), "max": _sig(err.max())}

    return {"instructions": summary(ins), "cycles": summary(cyc)}


def _row(core, kernel, n, features, r) -> str:
    ri, rc = r["instructions"], r["cycles"]
    return (f"{core:<14} {kernel:<38} {n:>4} {features:>4}  {ri['median']:>7.1%} {ri['p90']:>6.1%} {ri['max']:>6.1%}"
            f"   {rc['median']:>7.1%} {rc['p90']:>6.1%} {rc['max']:>6.1%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes")
    ap.add_argument("--out", type=Path, default=ROOT / "targets" / "cortex_m" / "data" / "cost_tables.json")
    ap.add_argument("--samples", type=Path, help="also write the raw samples (JSON)")
    ap.add_argument("--kernels", nargs="+", metavar="KERNEL",
                    help="fit only these kernels and merge their entries into --out (the others are kept)")
    args = ap.parse_args()
    start = time.perf_counter()
    todo = kernel_jobs(args.kernels) if args.kernels else jobs()
    results, failed = {}, []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_job, j): i for i, j in enumerate(todo)}
        for f in tqdm(as_completed(futures), total=len(futures), desc="synthetic programs", unit="prog"):
            try:
                results[futures[f]] = f.result()
            except Exception as e:                   # one program failing leaves the others' samples
                failed.append(f"{todo[futures[f]]}: {type(e).__name__}: {e}")
    samples = [s for i in sorted(results) for s in results[i]]      # in job order: the same fit every time
    for line in failed:
        print("FAILED", line)
    shared, once = defaultdict(list), defaultdict(list)
    for s in samples:
        (once if s["calls"] == 1 else shared)[(s["core"], s["kernel"])].append(s)
    cores: dict = {c: {} for c in CORES}
    if args.kernels:                                   # merge: every other entry as it was
        previous = json.loads(args.out.read_text())
        cores = {c: {k: v for k, v in previous["cores"].get(c, {}).items() if k not in args.kernels} for c in CORES}
    print(f"\n{'core':<14} {'kernel':<38} {'n':>4} {'feat':>4}  instructions |err| med / p90 / max"
          f"   cycles |err| med / p90 / max")
    for (core, kernel), group in sorted(shared.items()):
        entry = fit(group)
        entry["residuals"] = residuals(entry, group, core)
        print(_row(core, kernel, len(group), len(entry["features"]), entry["residuals"]))
        if once.get((core, kernel)):
            entry["inlined"] = fit_inlined(entry, once[(core, kernel)])
            entry["inlined"]["residuals"] = residuals(entry, once[(core, kernel)], core, inlined=True)
            print(_row(core, kernel + " (inlined)", len(once[(core, kernel)]), len(entry["features"]),
                       entry["inlined"]["residuals"]))
        cores[core][kernel] = entry
        if entry["unexercised"]:
            print(f"{'':<14} {'':<38} never exercised (coefficient 0): {', '.join(entry['unexercised'])}")
    unfitted = sorted(set(once) - set(shared))
    if unfitted:
        print("only ever called once (no out-of-line fit):", ", ".join(f"{c}/{k}" for c, k in unfitted))
    wall = time.perf_counter() - start
    doc = {"about": "Per (core, kernel function): instructions of each class per unit of each feature "
                    "(targets/cortex_m/costs.py) -- for the out-of-line kernel and, under 'inlined', for a kernel "
                    "called from one step only; fitted by benchmarks/fit_cost_tables.py on synthetic programs run on "
                    "the emulated cores (QEMU), with the fit's residuals (relative errors).",
           "programs": len(todo), "samples": len(samples), "fit_seconds": round(wall, 1), "cores": cores}
    if args.kernels:
        doc.update({k: previous[k] for k in ("programs", "samples", "fit_seconds")},
                   cores={c: dict(sorted(v.items())) for c, v in cores.items()})
        doc["added"] = sorted(set(previous.get("added", [])) | set(args.kernels))
    elif args.out.exists():                            # the kernels only --kernels fits stay as they were
        previous = json.loads(args.out.read_text())
        added = previous.get("added", [])
        for c in CORES:
            kept = {k: v for k, v in previous["cores"].get(c, {}).items() if k in added and k not in cores[c]}
            cores[c] = dict(sorted({**cores[c], **kept}.items()))
        doc["added"] = added
        print(f"kept as they were (fitted by --kernels on their own synthetic layers): {', '.join(added)}")
    text = json.dumps(doc, indent=1, sort_keys=True)
    # each list on one line
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    args.out.write_text(text + "\n")
    if args.samples:
        args.samples.write_text(json.dumps(samples))
    print(f"\n{len(todo)} programs, {len(samples)} steps in {wall:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
