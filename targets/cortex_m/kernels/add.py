"""ADD: ``adaptc.qadd`` (both inputs rescaled to a common scale, TFLite's reference_integer_ops::Add)
and ``adaptc.add_f32``. DSP: add_s8_dsp -- for a tensor of 2,048 elements or more (or parameters the
cheaper in-loop requantization cannot take exactly) each input's rescaling a table of its 256
values made at compile time, the output's requantization the cheaper one where its exactness is
proved; for a smaller one add_s8's arithmetic with the cheaper requantization."""
from __future__ import annotations

import numpy as np

from adaptc import fixedpoint
from adaptc.program import Program, Step

from .common import act_f32, elements
from .registry import KernelCall, kernel
from .simd import RQ_NOTES, fast_rq_mode, requant_is_exact


def elementwise_loops(step: Step) -> dict[str, float]:
    return {"call": 1, "elements": elements(step)}


def _add_params(step: Step) -> dict:
    a = step.attrs
    return {"size": elements(step), "left_shift": a["left_shift"],
            "input1_offset": -a["input1_zp"], "input1_multiplier": a["input1_multiplier"],
            "input1_shift": a["input1_shift"], "input2_offset": -a["input2_zp"],
            "input2_multiplier": a["input2_multiplier"], "input2_shift": a["input2_shift"],
            "output_offset": a["output_zp"], "output_multiplier": a["multiplier"][0],
            "output_shift": a["shift"][0], "act_min": a["act_min"], "act_max": a["act_max"]}


# element i of the output is written after element i of both inputs is read: either input may hold it
ELEMENTWISE_IN_PLACE = {0: 0, 1: 0}


@kernel("add_s8", "adaptc.qadd", features=elementwise_loops)
def add_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(_add_params(step), [], in_place=ELEMENTWISE_IN_PLACE)


@kernel("add_f32", "adaptc.add_f32", features=elementwise_loops)
def add_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({"size": elements(step), **act_f32(step.attrs)}, [])


def _rescale_table(p: dict) -> np.ndarray:
    """add_s8_dsp's table: for each input k and every int8 value x (indexed by x read as
    unsigned), MultiplyByQuantizedMultiplier((x + offset_k) << left_shift, multiplier_k, shift_k)
    -- input 1's 256 entries, then input 2's."""
    x = np.roll(np.arange(-128, 128, dtype=np.int64), 128)            # index u -> int8 value of byte u
    return np.concatenate([fixedpoint.mbqm((x + p[f"{k}_offset"]) << p["left_shift"], p[f"{k}_multiplier"],
                                           p[f"{k}_shift"]) for k in ("input1", "input2")]).astype(np.int32)


def _rq_mode(p: dict, table: np.ndarray) -> tuple[int, int]:
    """add_s8_dsp's (rq_mode, rq_round) with tables: 2 -- the fast form, its tables doubled --
    where the output requantization is provably exact for the largest sum of two table entries,
    the shift is negative and the folded constant (rq_round) below 2^30 in magnitude
    (simd.fast_rq_mode); 1 where only the bound is proven; 0 otherwise."""
    bound = np.abs(table[:256].astype(np.int64)).max() + np.abs(table[256:].astype(np.int64)).max()
    exact = requant_is_exact(np.array([bound]), p["output_multiplier"], p["output_shift"])
    mode = fast_rq_mode(exact, [p["output_shift"]], p["output_offset"])
    right = -p["output_shift"]
    return mode, ((1 << (right - 1)) + p["output_offset"] * (1 << right)) if mode == 2 else 0


# add_s8_dsp's rescaling tables take 512 int32 (2 KiB of flash): used for a tensor of at least as
# many elements (the table no larger than what it serves), or where the in-loop rescaling is not
# provably exact
TABLE_BYTES = 2048


def _loop_exact(p: dict) -> bool:
    """add_s8_dsp's in-loop rescaling (adaptc_rq) is exact for every int8 input: each input's
    |(x + offset) << left_shift| and the largest sum of the two rescaled inputs pass
    requant_is_exact."""
    sums = 0
    for k in ("input1", "input2"):
        off = p[f"{k}_offset"]
        x = max(abs(-128 + off), abs(127 + off)) << p["left_shift"]   # |(x + offset) << left_shift|
        if not requant_is_exact(np.array([x]), p[f"{k}_multiplier"], p[f"{k}_shift"]):
            return False
        sums += x << max(p[f"{k}_shift"], 0)                          # |MBQM(v, m, s)| <= |v| << max(s, 0)
    return requant_is_exact(np.array([sums]), p["output_multiplier"], p["output_shift"])


def _uses_table(p: dict) -> bool:
    return p["size"] >= TABLE_BYTES or not _loop_exact(p)


def add_dsp_loops(step: Step) -> dict[str, float]:
    """add_s8_dsp.c: with tables, one loop with adaptc_rq_right_rounded (a proven bound and a
    negative shift) or the general requantization, and the clamp pass for a narrow activation
    range; without, the in-loop rescaling by adaptc_rq_right (three negative shifts) or adaptc_rq."""
    p = _add_params(step)
    n = elements(step)
    if _uses_table(p):
        fast = _rq_mode(p, _rescale_table(p))[0] == 2
        narrow = p["act_min"] > -128 or p["act_max"] < 127
        return {"call": 1, "table_fast": n * fast, "table": n * (not fast), "clamp": n * narrow}
    fast = p["input1_shift"] < 0 and p["input2_shift"] < 0 and p["output_shift"] < 0
    return {"call": 1, "elements_fast": n * fast, "elements": n * (not fast)}


@kernel("add_s8_dsp", "adaptc.qadd", "dsp", features=add_dsp_loops, headers=("dsp.h",))
def add_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    p = _add_params(step)
    if not _uses_table(p):
        return KernelCall({**p, "rq_mode": 0, "rq_round": 0, "table": 0}, [], in_place=ELEMENTWISE_IN_PLACE,
                          note="inputs rescaled in the loop")
    table = _rescale_table(p)
    mode, k = _rq_mode(p, table)
    if mode == 2:
        table = table * 2                            # max |t1| + max |t2| < 2^30: doubled sums fit
    return KernelCall({**p, "rq_mode": mode, "rq_round": k, "table": ("array", "table")},
                      [("table", table)], in_place=ELEMENTWISE_IN_PLACE,
                      note=f"rescaling tables; {RQ_NOTES[mode]}")
