"""Synthetic layers of the operators added after the first cost fit, one function per composite:
what benchmarks/kernel_tables.py fits the cost tables and measures the code sizes of a new
kernel on (fit_cost_tables.py ``--kernels``, measure_code_sizes.py ``--kernels``).

``OPS[composite] = (dtype, layer)``: ``layer(rng)`` returns one layer ``(op, attrs, consts,
in_shapes, out_shape)`` of typical TinyML sizes drawn from ``rng`` (a numpy Generator); the
program's input and output are ``dtype``. Adding an operator adds its entries here (CONTRIBUTING.md,
"Add an operator"); the fit draws layers with random generators, the size measurement with
fixed seeds, so both are reproducible.
"""
from __future__ import annotations

import numpy as np

ELEMENTS = 6144                    # at most 24 KiB of float32 per layer (the Cortex-M3 board has 96 KiB)


def _spatial(rng) -> tuple[int, int, int, int]:
    """(batch, h, w, channels) of a feature map before global pooling."""
    while True:
        h = w = int(rng.choice([2, 3, 4, 5, 6, 7, 8, 8, 10, 12, 16]))
        if rng.random() < 0.25:                    # a spectrogram-like map
            h, w = int(rng.integers(2, 25)), int(rng.integers(1, 6))
        c = int(rng.choice([1, 3, 8, 10, 16, 24, 32, 64, 96, 128]))
        batch = 1 if rng.random() < 0.9 else 2
        if batch * h * w * c <= ELEMENTS:
            return batch, h, w, c


def mean_s8(rng):
    """TFLite int8 MEAN over H, W (adaptc.qmean's attributes, as LegalizeQDQ computes them)."""
    from adaptc import fixedpoint as fxp

    n, h, w, c = _spatial(rng)
    in_scale, out_scale = float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.005, 0.2))
    mult, shift = fxp.mean_multiplier(in_scale, out_scale, h * w)
    keep = bool(rng.random() < 0.5)
    narrow = rng.random() < 0.2
    attrs = {"axes": [1, 2], "keep_dims": keep, "count": h * w, "input_zp": int(rng.integers(-128, 128)),
             "input_scale": in_scale, "multiplier": [mult], "shift": [shift], "output_zp": int(rng.integers(-128, 128)),
             "output_scale": out_scale, "act_min": -128 if not narrow else -10, "act_max": 127 if not narrow else 90}
    return "adaptc.qmean", attrs, {}, [(n, h, w, c)], (n, 1, 1, c) if keep else (n, c)


def mean_f32(rng):
    """ONNX ReduceMean over H, W of an NHWC float map (adaptc.mean_f32)."""
    n, h, w, c = _spatial(rng)
    keep = bool(rng.random() < 0.5)
    attrs = {"axes": [1, 2], "keep_dims": keep, "count": h * w, "act_min": -np.inf, "act_max": np.inf}
    if rng.random() < 0.3:
        attrs.update(act_min=0.0, act_max=6.0)
    return "adaptc.mean_f32", attrs, {}, [(n, h, w, c)], (n, 1, 1, c) if keep else (n, c)


OPS = {
    "adaptc.qmean": ("int8", mean_s8),
    "adaptc.mean_f32": ("float32", mean_f32),
}
