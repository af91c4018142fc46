"""What the kernel builders share: geometry read off a step, C layouts of filters and weights,
requantization arrays, weight formats, and the packed-weight call."""
from __future__ import annotations

import numpy as np

from adaptc import formats
from adaptc.errors import TargetError
from adaptc.program import Program, Step

from .registry import SCRATCH, KernelCall

POT_MULTIPLIER = 1 << 30          # the multiplier of a power-of-two scale ratio


def nhwc(shape):
    """(batches, h, w, c) of a 4-D NHWC shape."""
    if len(shape) != 4:
        raise TargetError(f"expected a 4-D NHWC tensor, got shape {list(shape)}")
    return shape


def conv_geometry(step: Step, prog: Program) -> dict:
    n, in_h, in_w, in_c = nhwc(step.in_shapes[0])
    _, out_h, out_w, out_c = nhwc(step.out_shape)
    a = step.attrs
    w = step.consts["weights"]
    pad_top, pad_left = a["padding"][0], a["padding"][1]
    return {"batches": n, "in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w,
            "out_c": out_c, "k_h": int(w.shape[0]), "k_w": int(w.shape[1]),
            "stride_h": a["strides"][0], "stride_w": a["strides"][1],
            "dil_h": a["dilation"][0], "dil_w": a["dilation"][1], "pad_top": pad_top, "pad_left": pad_left}


def conv_filter(step: Step, geo: dict):
    """(depthwise?, filter in the C layout) from the composite's HWIO / HWOI filter: OHWI for a
    convolution, HW(C*mult) for a depthwise one. TargetError for other groupings."""
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


def prefix_note(step: Step) -> str:
    """The report's note for a width level's step (adaptc.widths): it reads a channel prefix of
    the widest level's stored filter, which only the kernels registered with ``widths`` do."""
    return "width levels: a channel prefix of the widest level's filter" if step.prefix_weights else ""


def is_depthwise(step: Step) -> bool:
    return int(step.attrs["groups"]) != 1


def requant_arrays(step: Step, n: int):
    mult = np.broadcast_to(np.asarray(step.attrs["multiplier"], np.int32), (n,))
    shift = np.broadcast_to(np.asarray(step.attrs["shift"], np.int32), (n,))
    return [("mult", np.ascontiguousarray(mult)), ("shift", np.ascontiguousarray(shift))]


def bias_array(step: Step, n: int, dtype):
    b = step.consts.get("bias")
    return ("bias", None if b is None else np.ascontiguousarray(b.reshape(n).astype(dtype)))


def int8_output(step: Step) -> dict:
    """The output half of an int8 kernel's parameters: input offset, output offset, clamp."""
    a = step.attrs
    return {"input_offset": -a["input_zp"], "output_offset": a["output_zp"], "act_min": a["act_min"],
            "act_max": a["act_max"]}


def act_f32(a) -> dict:
    return {"act_min": float(a.get("act_min", -np.inf)), "act_max": float(a.get("act_max", np.inf))}


def dense_geometry(step: Step, prog: Program) -> dict:
    in_shape, out_shape = step.in_shapes[0], step.out_shape
    return {"batches": int(np.prod(in_shape[:-1])), "in_features": in_shape[-1], "out_features": out_shape[-1]}


def dense_rows(step: Step) -> np.ndarray:
    """Dense weights [IN, OUT] -> the rows [OUT][IN] the kernels read."""
    return np.ascontiguousarray(step.consts["weights"].T)


def pool_params(step: Step, prog: Program) -> dict:
    n, in_h, in_w, c = nhwc(step.in_shapes[0])
    _, out_h, out_w, _ = nhwc(step.out_shape)
    a = step.attrs
    return {"batches": n, "in_h": in_h, "in_w": in_w, "channels": c, "out_h": out_h, "out_w": out_w,
            "k_h": a["pool_size"][0], "k_w": a["pool_size"][1], "stride_h": a["strides"][0],
            "stride_w": a["strides"][1], "pad_top": a["padding"][0], "pad_left": a["padding"][1],
            "act_min": a["act_min"], "act_max": a["act_max"]}


def rows_depth(step: Step) -> dict:
    shape = step.out_shape
    return {"rows": int(np.prod(shape[:-1])), "depth": shape[-1]}


def elements(step: Step) -> int:
    return int(np.prod(step.out_shape)) if step.out_shape else 1


def output_dtype(step: Step, prog: Program) -> str:
    return prog.tensors[step.output].dtype


def weight_format(step: Step) -> formats.Format:
    """How a layer's weights are stored (adaptc.formats): its ``weight_format`` attribute (set
    by the low-bit quantization, LegalizeQDQ(weight_formats=True)), int8 otherwise."""
    return formats.get(step.attrs.get("weight_format", "int8"))


def packed_call(step: Step, params: dict, rows: np.ndarray, n_out: int, depth: int) -> KernelCall:
    """KernelCall of a packed-weight kernel: the rows [n_out][depth] as one bitstream, bias,
    and per channel an int8 shift (and the multipliers, unless every one is 2^30)."""
    fmt = weight_format(step)
    mult, shift = (a for _, a in requant_arrays(step, n_out))
    pot_requant = bool(np.all(mult == POT_MULTIPLIER))
    params = {**params, "bits": fmt.bits, "kind": int(fmt.kind == "pot"), "pot_requant": int(pot_requant),
              "scratch": SCRATCH}
    arrays = [("weights", formats.pack(rows, fmt)), bias_array(step, n_out, np.int32),
              ("mult", None if pot_requant else np.ascontiguousarray(mult)),
              ("shift", np.ascontiguousarray(shift.astype(np.int8)))]
    return KernelCall(params, arrays, scratch_bytes=depth)


def broadcast_loops(in_shapes, out_shape) -> dict:
    """The four loops of a broadcasting element-wise kernel: ``dims`` (outermost first) and, per
    input, the element stride of each loop (0 along a broadcast axis). Shapes are right-aligned
    (NumPy's rule); neighbouring axes that broadcast the same way are merged, so a same-shape
    operation is one loop and [1, H, W, C] x [1, 1, 1, C] two. TargetError past four loops."""
    rank = len(out_shape)
    shapes = [(1,) * (rank - len(s)) + tuple(s) for s in in_shapes]
    axes = []                                        # [extent, [stride per input]] innermost first
    strides = [1] * len(shapes)
    for d in reversed(range(rank)):
        extent = int(out_shape[d])
        if extent == 1:
            continue
        step = [strides[i] if s[d] != 1 else 0 for i, s in enumerate(shapes)]
        if axes and all((a == 0) == (b == 0) and (b == 0 or b == a * axes[-1][0])
                        for a, b in zip(axes[-1][1], step)):
            axes[-1][0] *= extent                     # the same pattern, contiguous: one loop
        else:
            axes.append([extent, step])
        strides = [st * int(s[d]) for st, s in zip(strides, shapes)]
    if len(axes) > 4:
        raise TargetError(f"broadcast of {[list(s) for s in in_shapes]} to {list(out_shape)} needs "
                          f"{len(axes)} loops; the element-wise kernels have 4")
    axes = [[1, [0] * len(shapes)]] * (4 - len(axes)) + axes[::-1]
    return {"dims": [a[0] for a in axes], **{f"strides{i + 1}": [a[1][i] for a in axes] for i in range(len(shapes))}}


def operand_loops(step: Step, operands: int = 0) -> dict:
    """broadcast_loops over a step's operands: its activations, then its constants (flash); the
    strides of unused operands (up to ``operands``) zero."""
    shapes = list(step.in_shapes) + [c.shape for c in step.consts.values()]
    loops = broadcast_loops(shapes, step.out_shape)
    for k in range(len(shapes), operands):
        loops[f"strides{k + 1}"] = [0, 0, 0, 0]
    return loops


def flash_operands(step: Step) -> list:
    """A step's constant operands, (role, data) in argument order after its activations."""
    return list(step.consts.items())
