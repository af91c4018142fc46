"""Reductions over neighbouring axes (MEAN -- global average pooling as PyTorch and Keras export
it, of 2-D and 1-D maps --, SUM, REDUCE_MAX): ``adaptc.qreduce`` (TFLite Micro's int8 MEAN and
SUM: the sum less input_zp * count, requantized by a multiplier that for a mean folds in
1 / count; REDUCE_MAX: the largest input) and ``adaptc.reduce_f32``; one kernel each, the
reduction an op code. One pass over the input per output. DSP: reduce_s8_dsp -- MEAN and SUM
summing four int8 a word, with the cheaper requantization where its exactness is proved."""
from __future__ import annotations

import numpy as np

from adaptc.program import Program, Step

from .common import act_f32
from .registry import KernelCall, kernel
from .simd import requant_is_exact

OPS_S8 = {"mean": 0, "sum": 0, "max": 1}          # reduce_s8.c's op (mean and sum: the same arithmetic)
OPS_F32 = {"mean": 0, "sum": 1, "max": 2}         # reduce_f32.c's op


def _geometry(step: Step) -> dict:
    """[batches][count][channels]: the axes before, over and after the (neighbouring) reduced axes."""
    shape, axes = step.in_shapes[0], [int(a) for a in step.attrs["axes"]]
    return {"batches": int(np.prod(shape[:axes[0]])), "count": int(np.prod(shape[axes[0]:axes[-1] + 1])),
            "channels": int(np.prod(shape[axes[-1] + 1:]))}


def reduce_loops(step: Step) -> dict[str, float]:
    """reduce_*.c: per batch and channel one output, over count inputs."""
    g = _geometry(step)
    outputs = g["batches"] * g["channels"]
    return {"call": 1, "batches": g["batches"], "outputs": outputs, "elements": outputs * g["count"]}


@kernel("reduce_s8", "adaptc.qreduce", features=reduce_loops)
def reduce_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    reduce = str(a["reduce"])
    requantized = reduce != "max"
    return KernelCall({**_geometry(step), "op": OPS_S8[reduce],
                       "sum_offset": -int(a["input_zp"]) * int(a["count"]) if requantized else 0,
                       "multiplier": a["multiplier"][0] if requantized else 0,
                       "shift": a["shift"][0] if requantized else 0,
                       "output_offset": a["output_zp"] if requantized else 0, "act_min": a["act_min"],
                       "act_max": a["act_max"]}, [])


def reduce_dsp_loops(step: Step) -> dict[str, float]:
    """reduce_s8_dsp.c, per batch: for one channel, the count inputs as words of four (words),
    folded every 127 words (blocks), the last count % 4 one at a time (elements); for more, per
    four neighbouring channels a word a row (rows4), folded every 255 rows (blocks), the last
    channels % 4 channels one input at a time (elements); one requantized output per channel
    (outputs); the output clamped afterwards unless the range is the whole int8 range (clamped)."""
    g = _geometry(step)
    b, count, channels = g["batches"], g["count"], g["channels"]
    a = step.attrs
    narrow = a["act_min"] > -128 or a["act_max"] < 127
    f = {"call": 1, "batches": b, "outputs": b * channels, "words": 0, "rows4": 0, "blocks": 0, "elements": 0,
         "clamped": b * channels * narrow}
    if channels == 1:
        words = count // 4
        f.update(words=b * words, blocks=b * -(-words // 127), elements=b * (count % 4))
    else:
        quads = channels // 4
        f.update(rows4=b * quads * count, blocks=b * quads * -(-count // 255),
                 elements=b * (channels % 4) * count)
    return f


@kernel("reduce_s8_dsp", "adaptc.qreduce", "dsp", features=reduce_dsp_loops, headers=("dsp.h",))
def reduce_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    """MEAN and SUM (not REDUCE_MAX) where adaptc_rq_apply is exact for every sum of count int8
    inputs less the zero point (|acc| <= 255 * count); None otherwise."""
    a = step.attrs
    if str(a["reduce"]) == "max":
        return None
    g = _geometry(step)
    bound = max(128 + int(a["input_zp"]), 127 - int(a["input_zp"])) * g["count"]
    if not requant_is_exact(np.array([bound]), a["multiplier"][0], a["shift"][0]):
        return None
    return KernelCall({**g, "sum_offset": -int(a["input_zp"]) * int(a["count"]), "multiplier": a["multiplier"][0],
                       "shift": a["shift"][0], "output_offset": a["output_zp"], "act_min": a["act_min"],
                       "act_max": a["act_max"]}, [])


@kernel("reduce_f32", "adaptc.reduce_f32", features=reduce_loops)
def reduce_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**_geometry(step), "op": OPS_F32[str(step.attrs["reduce"])], **act_f32(step.attrs)}, [])
