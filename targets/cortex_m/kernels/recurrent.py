"""ONNX LSTM and GRU, float32: ``adaptc.recurrent_f32`` (adaptc.recurrent; the ONNX definitions,
templates/kernels/recurrent_f32.c). The composite's constants are already in the C's layout
(gate rows [G][units][in]); the gate values and the state are arena scratch."""
from __future__ import annotations

from adaptc.program import Program, Step

from .registry import SCRATCH, KernelCall, kernel


def recurrent_loops(step: Step) -> dict[str, float]:
    """recurrent_f32.c: per sequence, step and gate row an input and a recurrent dot product (GRU with
    linear_before_reset 0: its h rows twice), per step and unit the gate and state updates."""
    a = step.attrs
    t, u = int(a["batch"]) * int(a["time_steps"]), int(a["units"])
    rows = step.consts["weights"].shape[0]
    n_in = int(step.consts["weights"].shape[1])
    again = u * (int(a["cell"]) == 1 and not int(a["linear_before_reset"]))
    return {"call": 1, "sequences": int(a["batch"]), "steps": t, "rows": t * (rows + again), "macs_in": t * rows * n_in,
            "macs_rec": t * (rows + again) * u, "elements": t * u}


@kernel("recurrent_f32", "adaptc.recurrent_f32", features=recurrent_loops)
def recurrent_f32(step: Step, prog: Program) -> KernelCall | None:
    a, c = step.attrs, step.consts
    rows = c["weights"].shape[0]
    params = {"batch": int(a["batch"]), "time_steps": int(a["time_steps"]), "input_size": int(c["weights"].shape[1]),
              "units": int(a["units"]), "cell": int(a["cell"]), "linear_before_reset": int(a["linear_before_reset"]),
              "scratch": SCRATCH}
    arrays = [(name, c[name]) for name in ("weights", "recurrent_weights", "bias", "initial_state")]
    return KernelCall(params, arrays, scratch_bytes=4 * (2 * rows + 2 * int(a["units"])))
