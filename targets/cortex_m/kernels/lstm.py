"""UNIDIRECTIONAL_SEQUENCE_LSTM, int8 with an int16 cell state: ``adaptc.qlstm`` (adaptc.lstm;
TFLite Micro's integer LSTM, templates/kernels/lstm_s8.c). The composite's [in, 4 units] weights
become the C's rows [4][units][in]; the int16 cell state and gate values are arena scratch; the
sigmoid table is a shared flash table."""
from __future__ import annotations

import numpy as np

from adaptc import lstm
from adaptc.program import Program, Step

from .registry import SCRATCH, KernelCall, kernel


def lstm_loops(step: Step) -> dict[str, float]:
    """lstm_s8.c: per step and gate row one input dot product (and from the second step one
    recurrent one) and an activation; per step and unit the cell and hidden updates."""
    a = step.attrs
    t, u = int(a["time_steps"]), int(a["units"])
    n_in = int(step.consts["input_weights"].shape[0])
    return {"call": 1, "steps": t, "rows": t * 4 * u, "macs_in": t * 4 * u * n_in,
            "macs_rec": (t - 1) * 4 * u * u, "elements": t * u}


@kernel("lstm_s8", "adaptc.qlstm", features=lstm_loops)
def lstm_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    units = int(a["units"])
    w_in, w_rec = step.consts["input_weights"], step.consts["recurrent_weights"]
    params = {"time_steps": int(a["time_steps"]), "input_size": int(w_in.shape[0]), "units": units,
              "input_offset": -int(a["input_zp"]), "hidden_zp": int(a["hidden_zp"]),
              "input_mult": list(a["input_multiplier"]), "input_shift": list(a["input_shift"]),
              "recurrent_mult": list(a["recurrent_multiplier"]), "recurrent_shift": list(a["recurrent_shift"]),
              "forget_mult": a["forget_mul"][0], "forget_shift": a["forget_mul"][1],
              "input_mul_mult": a["input_mul"][0], "input_mul_shift": a["input_mul"][1],
              "output_mult": a["output_mul"][0], "output_shift": a["output_mul"][1],
              "cell_clip": int(a["cell_clip"]), "tanh_mult": int(a["tanh_multiplier"]),
              "tanh_shift": int(a["tanh_shift"]), "sigmoid_table": ("shared", "sigmoid_table_uint16"),
              "scratch": SCRATCH}
    arrays = [("input_weights", np.ascontiguousarray(w_in.T)), ("recurrent_weights", np.ascontiguousarray(w_rec.T)),
              ("bias", np.ascontiguousarray(step.consts["bias"], np.int32))]
    return KernelCall(params, arrays, scratch_bytes=2 * 5 * units,
                      shared={"sigmoid_table_uint16": lstm.SIGMOID_TABLE_UINT16})
