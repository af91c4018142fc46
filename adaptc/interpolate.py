"""Resizing as a fixed linear map per axis: ONNX Resize (modes linear and cubic, antialias,
every coordinate_transformation_mode) is separable, and along each resized axis every output
element is a weighted sum of K input elements, the same K source indices and weights for every
position of the other axes. ``adaptc.resize.onnx_taps`` computes them at compile time, following
the ONNX specification (onnx.reference's Resize, per axis); the importer emits the per-axis map as
plain Relax (``tvm_compat.taps_expr``: a gather of the K sources, a product with the weights, a sum
over the taps), ``match_taps`` finds it again, FuseFloatOps turns it into
``adaptc.resize_axis_f32`` and post-training quantization into ``adaptc.qresize_axis`` -- one C
kernel each, index and weight tables in flash.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from . import tvm_compat
from .qops import CompositeCall, composite

WEIGHT_BITS = 16          # the int8 kernel's weights: round(w * 2^16), int32


def match_taps(g, var, value):
    """(x, axis, indices [out, K], weights [out, K]) if ``value`` (bound to ``var``) is the sum of
    a ``taps_expr``, and the vars of its gather, reshape and product, else None."""
    if tvm_compat.op_name(value) != "relax.sum" or bool(value.attrs.keepdims) or value.attrs.axis is None \
            or len(value.attrs.axis) != 1:
        return None
    prod = value.args[0]
    mul = g.resolve(prod)
    if tvm_compat.op_name(mul) != "relax.multiply" or not tvm_compat.is_constant(g.resolve(mul.args[1])):
        return None
    resh = g.resolve(mul.args[0])
    if tvm_compat.op_name(resh) != "relax.reshape":
        return None
    take = g.resolve(resh.args[0])
    if tvm_compat.op_name(take) != "relax.take" or not tvm_compat.is_constant(g.resolve(take.args[1])):
        return None
    axis = int(value.attrs.axis[0]) - 1
    x = take.args[0]
    in_shape = tvm_compat.shape_of(g.resolve(x).ty if x in g.value else x.ty)
    mid = tvm_compat.shape_of(resh.ty if not isinstance(mul.args[0], relax.Var) else mul.args[0].ty)
    if take.attrs.axis is None or int(take.attrs.axis) % len(in_shape) != axis or len(mid) != len(in_shape) + 1:
        return None
    out, k = mid[axis], mid[axis + 1]
    weights = tvm_compat.constant_value(g.resolve(mul.args[1]))
    if weights.shape != tuple([out, k] + [1] * (len(in_shape) - axis - 1)):
        return None
    indices = tvm_compat.constant_value(g.resolve(take.args[1])).reshape(out, k)
    inner = [v for v in (prod, mul.args[0], resh.args[0]) if isinstance(v, relax.Var)]
    return x, axis, indices.astype(np.int32), weights.reshape(out, k).astype(np.float32), inner


def axis_geometry(in_shape, axis: int, out_size: int) -> dict:
    """[outer][in_size][inner] -> [outer][out_size][inner] (the resized axis in the middle)."""
    return {"outer": int(np.prod(in_shape[:axis])), "in_size": int(in_shape[axis]), "out_size": int(out_size),
            "inner": int(np.prod(in_shape[axis + 1:]))}


def _gather_taps(F, x, indices, a):
    """x [outer, in, inner] -> the K sources of each output position, [outer, out, K, inner]."""
    outer, inner, out, k = (int(a[n]) for n in ("outer", "inner", "out_size", "taps"))
    x3 = F.emit(relax.op.reshape(x, (outer, int(a["in_size"]), inner)))
    g = F.emit(relax.op.take(x3, F.emit(relax.op.reshape(indices, (out * k,))), axis=1))
    return F.emit(relax.op.reshape(g, (outer, out, k, inner)))


@composite("adaptc.resize_axis_f32")
def _resize_axis_f32(F, p, a):
    """One axis of a resize (ONNX Resize linear / cubic / antialias): out[o, j, i] =
    sum_k weights[j, k] * x[o, indices[j, k], i], tables computed at compile time."""
    x, indices, weights = p
    out, k = int(a["out_size"]), int(a["taps"])
    g = _gather_taps(F, x, indices, a)
    y = F.emit(relax.op.sum(F.emit(relax.op.multiply(g, F.emit(relax.op.reshape(weights, (1, out, k, 1))))),
                            axis=[2]))
    return relax.op.reshape(y, [int(d) for d in a["out_shape"]])


@composite("adaptc.qresize_axis")
def _qresize_axis(F, p, a):
    """int8 form of adaptc.resize_axis_f32: acc = sum_k weights[j, k] * (x - input_zp) with
    weights round(w * 2^16) (int32), then out = clamp(mbqm(acc, multiplier, shift) + output_zp)
    (multiplier / shift: input_scale / output_scale / 2^16, TFLite's QuantizeMultiplier)."""
    x, indices, weights = p
    out, k = int(a["out_size"]), int(a["taps"])
    xi = F.emit(relax.op.subtract(F.cast(x, "int32"), F.const(int(a["input_zp"]))))
    g = _gather_taps(F, xi, indices, a)
    acc = F.emit(relax.op.sum(F.emit(relax.op.multiply(g, F.emit(relax.op.reshape(weights, (1, out, k, 1))))),
                              axis=[2]))
    y = F.mbqm(acc, np.asarray(a["multiplier"], np.int32), np.asarray(a["shift"], np.int32))
    y = F.emit(relax.op.add(y, F.const(int(a["output_zp"]))))
    y = F.cast(F.emit(relax.op.clip(y, -128, 127)), "int8")
    return relax.op.reshape(y, [int(d) for d in a["out_shape"]])


def qresize_axis(attrs: dict, indices: np.ndarray, weights: np.ndarray, input_scale, input_zp: int,
                 output_scale, output_zp: int, out_shape) -> CompositeCall:
    """The ``adaptc.qresize_axis`` call of an ``adaptc.resize_axis_f32`` quantized with these
    parameters (weights round(w * 2^16), the scale ratio and 2^-16 one multiplier)."""
    from .fixedpoint import quantize_multiplier

    w_q = np.round(weights.astype(np.float64) * (1 << WEIGHT_BITS)).astype(np.int32)
    multiplier, shift = quantize_multiplier(float(input_scale) / float(output_scale) / (1 << WEIGHT_BITS))
    geometry = {k: int(attrs[k]) for k in ("outer", "in_size", "out_size", "inner", "taps")}
    return CompositeCall("adaptc.qresize_axis", [], [indices.astype(np.int32), w_q], {
        **geometry, "out_shape": [int(d) for d in out_shape], "input_zp": int(input_zp), "output_zp": int(output_zp),
        "multiplier": int(multiplier), "shift": int(shift)}, tuple(out_shape), "int8", "resize",
        ["indices", "weights"])
