"""UNIDIRECTIONAL_SEQUENCE_LSTM, int8 with an int16 cell state: ``adaptc.qlstm`` (adaptc.lstm;
TFLite Micro's integer LSTM, templates/kernels/lstm_s8.c). The composite's [in, 4 units] weights
become the C's rows [4][units][in]; the int16 cell state and gate values are arena scratch; the
sigmoid table is a shared flash table. DSP: lstm_s8_dsp -- the same arithmetic, the gate dot
products two SMLAD per four weights (rows packed four to a word)."""
from __future__ import annotations

import numpy as np

from adaptc import lstm
from adaptc.program import Program, Step

from .registry import SCRATCH, KernelCall, kernel
from .simd import acc_bound, pack_rows, requant_is_exact


def lstm_loops(step: Step) -> dict[str, float]:
    """lstm_s8.c: per step and gate row one input dot product (and from the second step one
    recurrent one) and an activation; per step and unit the cell and hidden updates."""
    a = step.attrs
    t, u = int(a["time_steps"]), int(a["units"])
    n_in = int(step.consts["input_weights"].shape[0])
    return {"call": 1, "steps": t, "rows": t * 4 * u, "macs_in": t * 4 * u * n_in,
            "macs_rec": (t - 1) * 4 * u * u, "elements": t * u}


def _lstm_params(step: Step) -> dict:
    a = step.attrs
    w_in = step.consts["input_weights"]
    return {"time_steps": int(a["time_steps"]), "input_size": int(w_in.shape[0]), "units": int(a["units"]),
            "input_offset": -int(a["input_zp"]), "hidden_zp": int(a["hidden_zp"]),
            "input_mult": list(a["input_multiplier"]), "input_shift": list(a["input_shift"]),
            "recurrent_mult": list(a["recurrent_multiplier"]), "recurrent_shift": list(a["recurrent_shift"]),
            "forget_mult": a["forget_mul"][0], "forget_shift": a["forget_mul"][1],
            "input_mul_mult": a["input_mul"][0], "input_mul_shift": a["input_mul"][1],
            "output_mult": a["output_mul"][0], "output_shift": a["output_mul"][1],
            "cell_clip": int(a["cell_clip"]), "tanh_mult": int(a["tanh_multiplier"]),
            "tanh_shift": int(a["tanh_shift"]), "sigmoid_table": ("shared", "sigmoid_table_uint16"),
            "scratch": SCRATCH}


@kernel("lstm_s8", "adaptc.qlstm", features=lstm_loops)
def lstm_s8(step: Step, prog: Program) -> KernelCall | None:
    units = int(step.attrs["units"])
    w_in, w_rec = step.consts["input_weights"], step.consts["recurrent_weights"]
    params = _lstm_params(step)
    arrays = [("input_weights", np.ascontiguousarray(w_in.T)), ("recurrent_weights", np.ascontiguousarray(w_rec.T)),
              ("bias", np.ascontiguousarray(step.consts["bias"], np.int32))]
    return KernelCall(params, arrays, scratch_bytes=2 * 5 * units,
                      shared={"sigmoid_table_uint16": lstm.SIGMOID_TABLE_UINT16})


def _exact_rq(step: Step) -> bool:
    """adaptc_rq equals adaptc_mbqm for every gate row's input sum (bias + w * (x + offset)) and
    recurrent sum (w * (h - hidden_zp)) of int8 x and h, with its gate's multiplier and shift."""
    a = step.attrs
    u = int(a["units"])
    rows_in, rows_rec = step.consts["input_weights"].T, step.consts["recurrent_weights"].T
    bias = np.asarray(step.consts["bias"], np.int64)
    for g in range(4):
        r = slice(g * u, (g + 1) * u)
        if not (requant_is_exact(acc_bound(rows_in[r], bias[r], -int(a["input_zp"])), a["input_multiplier"][g],
                                 a["input_shift"][g])
                and requant_is_exact(acc_bound(rows_rec[r], None, -int(a["hidden_zp"])),
                                     a["recurrent_multiplier"][g], a["recurrent_shift"][g])):
            return False
    return True


def lstm_dsp_loops(step: Step) -> dict[str, float]:
    """lstm_s8_dsp.c: per step the input and (from the second step) hidden columns, groups of
    four values (col_groups); per step and gate row an input dot product (groups_in: words of
    four weights) and from the second step a recurrent one (groups_rec), each requantized by
    adaptc_rq (rows_rq, rows_rec_rq) or adaptc_mbqm (rows, rows_rec), an activation; per step
    and unit the cell and hidden updates."""
    a = step.attrs
    t, u = int(a["time_steps"]), int(a["units"])
    g_in, g_rec = -(-int(step.consts["input_weights"].shape[0]) // 4), -(-u // 4)
    rows, rows_rec = t * 4 * u, (t - 1) * 4 * u
    exact = _exact_rq(step)
    return {"call": 1, "steps": t, "rows": rows * (not exact), "rows_rec": rows_rec * (not exact),
            "rows_rq": rows * exact, "rows_rec_rq": rows_rec * exact, "col_groups": t * g_in + (t - 1) * g_rec,
            "groups_in": t * 4 * u * g_in, "groups_rec": (t - 1) * 4 * u * g_rec, "elements": t * u}


@kernel("lstm_s8_dsp", "adaptc.qlstm", "dsp", features=lstm_dsp_loops, headers=("dsp.h",))
def lstm_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    """lstm_s8's call with the weight rows [4 units][in] packed four int8 to a word (pack_rows;
    exact for any weights: the same int32 sums), the two columns in the scratch, and exact_rq
    where the cheaper requantization of the gate rows is proved exact (_exact_rq)."""
    units = int(step.attrs["units"])
    w_in, w_rec = step.consts["input_weights"], step.consts["recurrent_weights"]
    rows_in, g_in = pack_rows(np.ascontiguousarray(w_in.T).astype(np.int8))
    rows_rec, g_rec = pack_rows(np.ascontiguousarray(w_rec.T).astype(np.int8))
    arrays = [("input_weights", rows_in), ("recurrent_weights", rows_rec),
              ("bias", np.ascontiguousarray(step.consts["bias"], np.int32))]
    params = {**_lstm_params(step), "exact_rq": int(_exact_rq(step))}
    return KernelCall(params, arrays, scratch_bytes=8 * (g_in + g_rec) + 2 * 5 * units,
                      shared={"sigmoid_table_uint16": lstm.SIGMOID_TABLE_UINT16})
