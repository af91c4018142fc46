"""C kernel table: one entry per (composite op, kernel variant), in one place.

An entry turns a lowered ``Step`` into a ``KernelCall``: the C function, its parameter struct
(field -> value), the flash arrays it reads, in argument order, and the kernel source files it
needs (``templates/kernels/<file>.c``), and tables any number of steps share (``shared``, emitted once
and counted in the first step's flash). Layout changes the C wants (OHWI filters, [out][in]
weights) happen here, in Python, once. Requantization constants come from the composite's
attributes -- computed at compile time, never in C.

Add a kernel: write ``templates/kernels/<name>.c`` against ``common.h``, register a builder here
with ``@kernel(op)``, and add its case to tests/targets/test_kernels.py.

Variants: every op has a portable ``"ref"`` builder. An optimized drop-in registers
``@kernel(op, "dsp")`` (Armv7E-M DSP extension) or ``@kernel(op, "mve")`` (Helium) in its own
module (kernels_dsp.py, kernels_mve.py); a target lists the variants it can run, best first
(``CortexM.kernel_variants``), and ``select`` takes the first builder that accepts the step -- a
builder returns None for a geometry it does not handle. An optimized kernel takes the reference
kernel's arguments; its parameter struct may differ (own typedef in its own header, listed in
``files``) and may ask for arena scratch: ``scratch_bytes`` > 0 and a struct field whose value
is ``SCRATCH``, rendered as a pointer to a planned arena buffer live during that step only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from adaptc import formats
from adaptc.errors import TargetError
from adaptc.program import Program, Step

KERNELS: dict[tuple[str, str], Callable[[Step, Program], "KernelCall | None"]] = {}

SCRATCH = ("scratch",)   # parameter value: pointer to this step's arena scratch buffer

# Variants whose C builds with any C99 compiler: "dsp" kernels fall back to portable definitions
# of the instructions (templates/kernels/dsp.h); "mve" kernels build only for a Helium core.
PORTABLE_VARIANTS = ("dsp", "ref")


@dataclass
class KernelCall:
    function: str                          # C function, also the kernel file's stem
    params: dict                           # struct field -> int | float | list | ("array", name) | SCRATCH
    arrays: list[tuple[str, np.ndarray]]   # (role, data) flash arrays, in argument order
    params_type: str = ""                  # struct type; default "<function>_params"
    files: list[str] = field(default_factory=list)   # kernel sources: "<stem>" (.c) or "<name>.h"
    scratch_bytes: int = 0                 # arena scratch the kernel needs during its step
    variant: str = "ref"
    shared: dict = field(default_factory=dict)   # name -> flash table several steps may share,
                                                 # referred to as ("shared", name); emitted once
    def __post_init__(self):
        self.params_type = self.params_type or f"{self.function}_params"
        self.files = self.files or [self.function]


def kernel(op: str, variant: str = "ref"):
    def register(fn):
        assert (op, variant) not in KERNELS, f"{variant} kernel for {op} registered twice"
        KERNELS[(op, variant)] = fn
        return fn
    return register


def select(step: Step, prog: Program, variants=("ref",)) -> KernelCall:
    """The KernelCall for a step: the first of ``variants`` (best first) whose builder accepts
    it; TargetError naming the op, dtype and variants if none does."""
    for variant in variants:
        builder = KERNELS.get((step.op, variant))
        call = builder(step, prog) if builder is not None else None
        if call is not None:
            call.variant = variant
            return call
    dtype = prog.tensors[step.output].dtype
    known = sorted({op for op, _ in KERNELS})
    raise TargetError(f"no C kernel for {step.op} ({dtype}, variants {', '.join(variants)}) at step "
                      f"{step.index} [{step.source}]; kernels exist for: {', '.join(known)}")


def _nhwc(shape):
    """(batches, h, w, c) of a 4-D NHWC shape."""
    if len(shape) != 4:
        raise TargetError(f"expected a 4-D NHWC tensor, got shape {list(shape)}")
    return shape


def _conv_geometry(step: Step, prog: Program) -> dict:
    n, in_h, in_w, in_c = _nhwc(step.in_shapes[0])
    _, out_h, out_w, out_c = _nhwc(step.out_shape)
    a = step.attrs
    w = step.consts["weights"]
    pad_top, pad_left = a["padding"][0], a["padding"][1]
    return {"batches": n, "in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w,
            "out_c": out_c, "k_h": int(w.shape[0]), "k_w": int(w.shape[1]),
            "stride_h": a["strides"][0], "stride_w": a["strides"][1],
            "dil_h": a["dilation"][0], "dil_w": a["dilation"][1], "pad_top": pad_top, "pad_left": pad_left}


def _filter(step: Step, geo: dict):
    """(depthwise?, filter in the C layout) from the composite's HWIO / HWOI filter."""
    a, w = step.attrs, step.consts["weights"]
    groups, layout = int(a["groups"]), str(a["kernel_layout"])
    if groups == 1:
        if layout != "HWIO":
            raise TargetError(f"conv2d filter layout {layout} at step {step.index}; expected HWIO")
        return False, np.ascontiguousarray(w.transpose(3, 0, 1, 2))          # -> OHWI
    if groups == geo["in_c"]:
        if layout == "HWOI":
            w = w.reshape(w.shape[0], w.shape[1], -1)                          # HW(C*mult)
        elif layout == "HWIO":                                                 # (KH, KW, 1, C*mult)
            w = w.reshape(w.shape[0], w.shape[1], -1)
        else:
            raise TargetError(f"depthwise filter layout {layout} at step {step.index}")
        return True, np.ascontiguousarray(w)
    raise TargetError(f"grouped convolution (groups={groups}, channels={geo['in_c']}) at step "
                      f"{step.index} [{step.source}]: only groups=1 and depthwise are supported")


def _requant_arrays(step: Step, n: int):
    mult = np.broadcast_to(np.asarray(step.attrs["multiplier"], np.int32), (n,))
    shift = np.broadcast_to(np.asarray(step.attrs["shift"], np.int32), (n,))
    return [("mult", np.ascontiguousarray(mult)), ("shift", np.ascontiguousarray(shift))]


def _bias(step: Step, n: int, dtype):
    b = step.consts.get("bias")
    return ("bias", None if b is None else np.ascontiguousarray(b.reshape(n).astype(dtype)))


# ------------------------------------------------------------------------------- int8


def weight_format(step: Step) -> formats.Format:
    """How a layer's weights are stored (adaptc.formats): its ``weight_format`` attribute (set
    by the low-bit quantization, LegalizeQDQ(weight_formats=True)), int8 otherwise."""
    return formats.get(step.attrs.get("weight_format", "int8"))


POT_MULTIPLIER = 1 << 30          # the multiplier of a power-of-two scale ratio


def _packed(step, function, params, rows: np.ndarray, n_out: int, depth: int):
    """KernelCall of a packed-weight kernel: the rows [n_out][depth] as one bitstream, bias,
    and per channel an int8 shift (and the multipliers, unless every one is 2^30)."""
    fmt = weight_format(step)
    mult, shift = (a for _, a in _requant_arrays(step, n_out))
    pot_requant = bool(np.all(mult == POT_MULTIPLIER))
    params = {**params, "bits": fmt.bits, "kind": int(fmt.kind == "pot"), "pot_requant": int(pot_requant),
              "scratch": SCRATCH}
    arrays = [("weights", formats.pack(rows, fmt)), _bias(step, n_out, np.int32),
              ("mult", None if pot_requant else np.ascontiguousarray(mult)),
              ("shift", np.ascontiguousarray(shift.astype(np.int8)))]
    return KernelCall(function, params, arrays, scratch_bytes=depth)


@kernel("adaptc.qconv2d")
def _qconv2d(step, prog):
    geo = _conv_geometry(step, prog)
    a = step.attrs
    depthwise, w = _filter(step, geo)
    params = {**geo, "input_offset": -a["input_zp"], "output_offset": a["output_zp"],
              "act_min": a["act_min"], "act_max": a["act_max"]}
    if weight_format(step).packed and not depthwise:
        rows = w.reshape(geo["out_c"], -1)
        g = geo
        strides = {"depth": rows.shape[1], "image_bytes": g["in_h"] * g["in_w"] * g["in_c"],
                   "row_bytes": g["in_w"] * g["in_c"], "step_y": g["stride_h"] * g["in_w"] * g["in_c"],
                   "step_x": g["stride_w"] * g["in_c"], "tap_y": g["dil_h"] * g["in_w"] * g["in_c"],
                   "tap_x": g["dil_w"] * g["in_c"],
                   "origin": -(g["pad_top"] * g["in_w"] * g["in_c"] + g["pad_left"] * g["in_c"]),
                   "filter_row": g["k_w"] * g["in_c"]}
        return _packed(step, "conv2d_s8_packed", {**params, **strides}, rows, geo["out_c"], rows.shape[1])
    arrays = [("weights", w.astype(np.int8)), _bias(step, geo["out_c"], np.int32),
              *_requant_arrays(step, geo["out_c"])]
    if depthwise:
        params["depth_multiplier"] = geo["out_c"] // geo["in_c"]
        return KernelCall("depthwise_conv2d_s8", params, arrays)
    return KernelCall("conv2d_s8", params, arrays)


def _dense_geometry(step, prog):
    in_shape, out_shape = step.in_shapes[0], step.out_shape
    return {"batches": int(np.prod(in_shape[:-1])), "in_features": in_shape[-1], "out_features": out_shape[-1]}


@kernel("adaptc.qdense")
def _qdense(step, prog):
    a, geo = step.attrs, _dense_geometry(step, prog)
    if weight_format(step).packed and a["filter_offset"] == 0:
        params = {**geo, "input_offset": -a["input_zp"], "output_offset": a["output_zp"],
                  "act_min": a["act_min"], "act_max": a["act_max"]}
        rows = np.ascontiguousarray(step.consts["weights"].T)                    # [IN, OUT] -> [OUT][IN]
        return _packed(step, "fully_connected_s8_packed", params, rows, geo["out_features"], geo["in_features"])
    w = np.ascontiguousarray(step.consts["weights"].T.astype(np.int8))        # [IN, OUT] -> [OUT][IN]
    params = {**geo, "input_offset": -a["input_zp"], "filter_offset": a["filter_offset"],
              "output_offset": a["output_zp"], "act_min": a["act_min"], "act_max": a["act_max"]}
    return KernelCall("fully_connected_s8", params,
                      [("weights", w), _bias(step, geo["out_features"], np.int32),
                       *_requant_arrays(step, geo["out_features"])])


@kernel("adaptc.qadd")
def _qadd(step, prog):
    a = step.attrs
    params = {"size": int(np.prod(step.out_shape)), "left_shift": a["left_shift"],
              "input1_offset": -a["input1_zp"], "input1_multiplier": a["input1_multiplier"],
              "input1_shift": a["input1_shift"], "input2_offset": -a["input2_zp"],
              "input2_multiplier": a["input2_multiplier"], "input2_shift": a["input2_shift"],
              "output_offset": a["output_zp"], "output_multiplier": a["multiplier"][0],
              "output_shift": a["shift"][0], "act_min": a["act_min"], "act_max": a["act_max"]}
    return KernelCall("add_s8", params, [])


def _pool_params(step, prog):
    n, in_h, in_w, c = _nhwc(step.in_shapes[0])
    _, out_h, out_w, _ = _nhwc(step.out_shape)
    a = step.attrs
    return {"batches": n, "in_h": in_h, "in_w": in_w, "channels": c, "out_h": out_h, "out_w": out_w,
            "k_h": a["pool_size"][0], "k_w": a["pool_size"][1], "stride_h": a["strides"][0],
            "stride_w": a["strides"][1], "pad_top": a["padding"][0], "pad_left": a["padding"][1],
            "act_min": a["act_min"], "act_max": a["act_max"]}


@kernel("adaptc.qavg_pool2d")
def _qavg_pool2d(step, prog):
    return KernelCall("avg_pool_s8", _pool_params(step, prog), [], "pool_s8_params")


@kernel("adaptc.qmax_pool2d")
def _qmax_pool2d(step, prog):
    return KernelCall("max_pool_s8", _pool_params(step, prog), [], "pool_s8_params")


def _rows_depth(step, prog):
    shape = step.out_shape
    return {"rows": int(np.prod(shape[:-1])), "depth": shape[-1]}


@kernel("adaptc.qsoftmax")
def _qsoftmax(step, prog):
    table = step.consts["exp_table"].astype(np.int32)
    return KernelCall("softmax_s8", {**_rows_depth(step, prog), "exp_table": ("array", "exp_table")},
                      [("exp_table", table)])


@kernel("adaptc.qlut")
def _qlut(step, prog):
    size = int(np.prod(step.out_shape))
    return KernelCall("lut_s8", {"size": size, "table": ("array", "table")},
                      [("table", step.consts["table"].astype(np.int8))])


def _pad_params(step, prog):
    in_shape, out_shape = step.in_shapes[0], step.out_shape
    if len(in_shape) > 4:
        raise TargetError(f"pad of a {len(in_shape)}-D tensor at step {step.index}; at most 4-D")
    lead = 4 - len(in_shape)
    widths = step.attrs["pad_width"]
    before = [0] * lead + [int(widths[2 * i]) for i in range(len(in_shape))]
    return {"in_dims": [1] * lead + list(in_shape), "out_dims": [1] * lead + list(out_shape),
            "before": before, "pad_value": step.attrs["pad_value"]}


@kernel("adaptc.qpad")
def _qpad(step, prog):
    return KernelCall("pad_s8", _pad_params(step, prog), [])


@kernel("adaptc.qgate")
def _qgate(step, prog):
    a, criterion = step.attrs, step.attrs["criterion"]
    params = {"classes": step.in_shapes[0][-1], "threshold": int(a["threshold"])}
    arrays = [(name, step.consts[name].astype(np.int32)) for name in ("exp_table", "ln_table") if name in step.consts]
    if criterion == "entropy":
        params["scale_q16"] = int(a["scale_q16"])
    params.update({name: ("array", name) for name, _ in arrays})
    return KernelCall(f"gate_{criterion}_s8", params, arrays)


# ------------------------------------------------------------------------------ float32


def _act_f32(a):
    return {"act_min": float(a.get("act_min", -np.inf)), "act_max": float(a.get("act_max", np.inf))}


@kernel("adaptc.conv2d_f32")
def _conv2d_f32(step, prog):
    geo = _conv_geometry(step, prog)
    depthwise, w = _filter(step, geo)
    params = {**geo, **_act_f32(step.attrs)}
    arrays = [("weights", w.astype(np.float32)), _bias(step, geo["out_c"], np.float32)]
    if depthwise:
        params["depth_multiplier"] = geo["out_c"] // geo["in_c"]
        return KernelCall("depthwise_conv2d_f32", params, arrays)
    return KernelCall("conv2d_f32", params, arrays)


@kernel("adaptc.dense_f32")
def _dense_f32(step, prog):
    geo = _dense_geometry(step, prog)
    w = np.ascontiguousarray(step.consts["weights"].T.astype(np.float32))
    return KernelCall("fully_connected_f32", {**geo, **_act_f32(step.attrs)},
                      [("weights", w), _bias(step, geo["out_features"], np.float32)])


@kernel("adaptc.add_f32")
def _add_f32(step, prog):
    return KernelCall("add_f32", {"size": int(np.prod(step.out_shape)),
                                  **_act_f32(step.attrs)}, [])


def _pool_params_f32(step, prog):
    p = _pool_params(step, prog)
    p.update(_act_f32(step.attrs))
    return p


@kernel("adaptc.avg_pool2d_f32")
def _avg_pool2d_f32(step, prog):
    return KernelCall("avg_pool_f32", _pool_params_f32(step, prog), [], "pool_f32_params")


@kernel("adaptc.max_pool2d_f32")
def _max_pool2d_f32(step, prog):
    return KernelCall("max_pool_f32", _pool_params_f32(step, prog), [], "pool_f32_params")


@kernel("adaptc.softmax_f32")
def _softmax_f32(step, prog):
    return KernelCall("softmax_f32", {**_rows_depth(step, prog), "beta": float(step.attrs.get("beta", 1.0))}, [])


@kernel("adaptc.clamp_f32")
def _clamp_f32(step, prog):
    return KernelCall("clamp_f32", {"size": int(np.prod(step.out_shape)),
                                    **_act_f32(step.attrs)}, [])


@kernel("adaptc.pad_f32")
def _pad_f32(step, prog):
    p = _pad_params(step, prog)
    p["pad_value"] = float(p["pad_value"])
    return KernelCall("pad_f32", p, [])


@kernel("adaptc.gate_f32")
def _gate_f32(step, prog):
    params = {"classes": step.in_shapes[0][-1], "threshold": float(step.attrs["threshold"])}
    return KernelCall(f"gate_{step.attrs['criterion']}_f32", params, [], "gate_f32_params",
                      [f"gate_{step.attrs['criterion']}_f32"])


# ------------------------------------------------------------------------------ layout


@kernel("adaptc.transpose")
def _transpose(step, prog):
    shape = step.in_shapes[0]
    axes = list(step.attrs["axes"])
    if len(shape) > 4:
        raise TargetError(f"transpose of a {len(shape)}-D tensor at step {step.index}; at most 4-D")
    lead = 4 - len(shape)
    params = {"in_dims": [1] * lead + list(shape), "perm": list(range(lead)) + [a + lead for a in axes]}
    suffix = {"int8": "s8", "float32": "f32"}[prog.tensors[step.output].dtype]
    return KernelCall(f"transpose_{suffix}", params, [], "transpose_params")


# Optimized drop-ins register themselves on import.
from . import kernels_dsp, kernels_mve  # noqa: E402,F401
