"""One axis of a resize (ONNX Resize modes linear and cubic, antialias): ``adaptc.resize_axis_f32``
and its post-training int8 form ``adaptc.qresize_axis``; per output position ``taps`` source
indices and weights, tables in flash (adaptc/interpolate.py). A 2-D resize is one step per axis."""
from __future__ import annotations

from adaptc.program import Program, Step

from .common import elements
from .registry import KernelCall, kernel

GEOMETRY = ("outer", "in_size", "out_size", "inner", "taps")


def resize_axis_loops(step: Step) -> dict[str, float]:
    """resize_axis_*.c: per output row (outer x out_size) its taps, per element taps
    multiply-adds."""
    a = step.attrs
    rows = int(a["outer"]) * int(a["out_size"])
    return {"call": 1, "rows": rows, "row_taps": rows * int(a["taps"]), "elements": elements(step),
            "macs": elements(step) * int(a["taps"])}


def _tables(step: Step) -> list:
    return [("indices", step.consts["indices"].reshape(-1)), ("weights", step.consts["weights"].reshape(-1))]


@kernel("resize_axis_f32", "adaptc.resize_axis_f32", features=resize_axis_loops)
def resize_axis_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**{g: int(step.attrs[g]) for g in GEOMETRY}, "indices": ("array", "indices"),
                       "weights": ("array", "weights")}, _tables(step))


@kernel("resize_axis_s8", "adaptc.qresize_axis", features=resize_axis_loops)
def resize_axis_s8(step: Step, prog: Program) -> KernelCall | None:
    a = step.attrs
    return KernelCall({**{g: int(a[g]) for g in GEOMETRY}, "input_offset": -int(a["input_zp"]),
                       "output_offset": int(a["output_zp"]), "multiplier": int(a["multiplier"]),
                       "shift": int(a["shift"]), "indices": ("array", "indices"), "weights": ("array", "weights")},
                      _tables(step))
