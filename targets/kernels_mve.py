"""Optimized int8 kernels for Helium / MVE (Cortex-M55): VMLADAV dot products, int16 and int32
lanes, vector requantization.

Drop-ins for the reference kernels in kernels.py (same arguments, bit-exact), registered as
``@kernel(op, "mve")``; a builder returns None for a geometry it does not handle, and the next
variant the core runs (DSP, then the reference) takes it. The C is in templates/kernels/*_mve.c
over templates/kernels/mve.h; it builds for a core with MVE only, so the host build of a model for
such a core renders the portable kernels instead (``adaptc.api.compile_program``). Requantization
(``adaptc_mve_requant``) is exact for any accumulator, so these builders need no bound proofs.
"""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .kernels import (SCRATCH, KernelCall, _bias, _conv_geometry, _dense_geometry, _filter,
                      _requant_arrays, kernel, weight_format)


def folded_bias(step: Step, rows: np.ndarray, input_offset: int) -> np.ndarray:
    """bias + input_offset * (sum of each row of weights [out][taps]), modulo 2^32: the kernels
    sum w * x (the zero point at padded taps) and get the reference's sum of w * (x + offset),
    equal modulo 2^32 and so equal as int32."""
    b = _bias(step, rows.shape[0], np.int32)[1]
    total = rows.astype(np.int64).sum(axis=1) * input_offset + (0 if b is None else b.astype(np.int64))
    return ((total + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


@kernel("adaptc.qconv2d", "mve")
def _qconv2d_mve(step: Step, prog: Program) -> KernelCall | None:
    if weight_format(step).packed:
        return None                                                  # packed low-bit weights: the packed kernels
    geo = _conv_geometry(step, prog)
    depthwise, w = _filter(step, geo)
    a = step.attrs
    out = {"input_offset": -a["input_zp"], "output_offset": a["output_zp"], "act_min": a["act_min"],
           "act_max": a["act_max"]}
    requant = _requant_arrays(step, geo["out_c"])
    if depthwise:
        if geo["out_c"] != geo["in_c"]:
            return None                                              # depth_multiplier > 1
        return KernelCall("depthwise_conv2d_s8_mve", {**geo, **out, "depth_multiplier": 1},
                          [("weights", w.astype(np.int8)), _bias(step, geo["out_c"], np.int32), *requant],
                          params_type="depthwise_conv2d_s8_params", files=["dsp.h", "mve.h", "depthwise_conv2d_s8_mve"])
    rows = w.reshape(geo["out_c"], -1).astype(np.int8)               # OHWI -> [out][k_h * k_w * in_c]
    depth = rows.shape[1]
    return KernelCall("conv2d_s8_mve", {**geo, **out, "scratch": SCRATCH},
                      [("weights", rows), ("bias", folded_bias(step, rows, out["input_offset"])), *requant],
                      files=["dsp.h", "mve.h", "conv2d_s8_mve"], scratch_bytes=4 * depth)


@kernel("adaptc.qdense", "mve")
def _qdense_mve(step: Step, prog: Program) -> KernelCall | None:
    if weight_format(step).packed:
        return None                                                  # packed low-bit weights: the packed kernels
    a, geo = step.attrs, _dense_geometry(step, prog)
    if a["filter_offset"] != 0:
        return None                                                  # asymmetric weights
    rows = np.ascontiguousarray(step.consts["weights"].T.astype(np.int8))   # [IN, OUT] -> [OUT][IN]
    params = {**geo, "input_offset": -a["input_zp"], "filter_offset": 0, "output_offset": a["output_zp"],
              "act_min": a["act_min"], "act_max": a["act_max"]}
    return KernelCall("fully_connected_s8_mve", params,
                      [("weights", rows), ("bias", folded_bias(step, rows, params["input_offset"])),
                       *_requant_arrays(step, geo["out_features"])],
                      params_type="fully_connected_s8_params", files=["dsp.h", "mve.h", "fully_connected_s8_mve"])
