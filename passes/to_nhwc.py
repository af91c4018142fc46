"""ToNHWC: NCHW convolutions (ONNX) become NHWC/HWIO, the layout of the C kernels.

Requires: a float module (ONNX import) whose convolutions may be NCHW/OIHW.

Ensures: every ``nn.conv2d`` is NHWC with an HWIO filter, every ``nn.conv2d_transpose`` NHWC with
its IOHW filter (TVM's ConvertLayout, which also
carries NHWC through pooling, ``mean`` and elementwise ops and inserts ``permute_dims`` where a
layout meets a layout-dependent op such as ``reshape``); a ``permute_dims`` that only moves
size-1 axes does not change the bytes and becomes a ``reshape``. ``clip`` (ReLU6: ONNX Clip)
is carried through as well: 0.27's ConvertLayout stops at it, so it crosses as
``minimum(maximum(x, lo), hi)`` and is a ``clip`` again afterwards; negative axes of
``squeeze`` / ``expand_dims`` are made positive first (0.27's ConvertLayout fails on them). A 2-D
pooling still NCHW after that (no convolution before it) runs NHWC between two transposes.
Modules already in NHWC are unchanged. Numerics are unchanged (checked on llvm in
tests/passes/test_to_nhwc.py).
"""
from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

from adaptc import tvm_compat


def keeps_memory_order(shape, axes) -> bool:
    """True if permuting ``shape`` by ``axes`` leaves the row-major byte order unchanged."""
    moved = [a for a in axes if shape[a] != 1]
    return moved == sorted(moved)


def ToNHWC():
    """Convert NCHW convolutions to NHWC (see module docstring)."""

    @tvm_compat.module_pass("adaptc.ToNHWC")
    def _pass(mod):
        mod = tvm_compat.replace_function(mod, "main", _clips_as_min_max(_positive_axes(mod["main"])))
        mod = relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "HWIO"],
                                             "relax.nn.conv2d_transpose": ["NHWC", "IOHW"]})(mod)
        mod = tvm_compat.replace_function(mod, "main", _pools_to_nhwc(_min_max_as_clips(
            _transposes_after_elementwise(mod["main"]))))
        x = wildcard()
        pattern = is_op("relax.permute_dims")(x)

        def to_reshape(call, matches):
            shape = tvm_compat.shape_of(matches[x].ty)
            axes = call.attrs.axes
            axes = list(range(len(shape)))[::-1] if axes is None else [int(a) for a in axes]
            if keeps_memory_order(shape, axes):
                return relax.op.reshape(matches[x], [int(d) for d in np.array(shape)[axes]])
            return call

        main = rewrite_call(pattern, to_reshape, mod["main"])
        return tvm_compat.replace_function(mod, "main", main)

    return _pass


def _clips_as_min_max(main):
    """``clip(x, lo, hi)`` -> ``minimum(maximum(x, lo), hi)`` with scalar constants (ops whose
    layout ConvertLayout infers)."""
    x = wildcard()

    def rewrite(call, matches):
        dtype = tvm_compat.dtype_of(call.ty)
        lo, hi = (float(a.value) for a in call.args[1:3])
        return relax.op.minimum(relax.op.maximum(matches[x], relax.const(lo, dtype)), relax.const(hi, dtype))

    return rewrite_call(is_op("relax.clip")(x, wildcard(), wildcard()), rewrite, main)


def _min_max_as_clips(main):
    """``minimum(maximum(x, lo), hi)`` with scalar constants -> ``clip(x, lo, hi)``."""
    x, lo, hi = wildcard(), is_const(), is_const()

    def rewrite(call, matches):
        bounds = [tvm_compat.constant_value(matches[c]) for c in (lo, hi)]
        if any(b.shape != () for b in bounds):
            return call
        return relax.op.clip(matches[x], float(bounds[0]), float(bounds[1]))

    return rewrite_call(is_op("relax.minimum")(is_op("relax.maximum")(x, lo), hi), rewrite, main)


def _positive_axes(main):
    """``squeeze`` / ``expand_dims`` with negative axes -> the same with positive ones."""
    x = wildcard()

    def squeeze(call, matches):
        axes = call.attrs.axis
        rank = len(tvm_compat.shape_of(matches[x].ty))
        if axes is None or all(int(a) >= 0 for a in axes):
            return call
        return relax.op.squeeze(matches[x], [int(a) % rank for a in axes])

    def expand_dims(call, matches):
        axes = [int(a) for a in call.attrs.axis]
        rank = len(tvm_compat.shape_of(call.ty))
        if all(a >= 0 for a in axes):
            return call
        return relax.op.expand_dims(matches[x], [a % rank for a in axes])

    main = rewrite_call(is_op("relax.squeeze")(x), squeeze, main)
    return rewrite_call(is_op("relax.expand_dims")(x), expand_dims, main)


def _pools_to_nhwc(main):
    """``max_pool2d`` / ``avg_pool2d`` still NCHW -> the same pooling NHWC between transposes
    (0.27's ConvertLayout takes no desired layout for pooling)."""
    x = wildcard()

    def rewrite(call, matches):
        a = call.attrs
        if str(a.layout) != "NCHW":
            return call
        kw = {"pool_size": a.pool_size, "strides": a.strides, "padding": a.padding, "dilation": a.dilation,
              "ceil_mode": bool(a.ceil_mode), "layout": "NHWC"}
        nhwc = relax.op.permute_dims(matches[x], [0, 2, 3, 1])
        if tvm_compat.op_name(call) == "relax.nn.avg_pool2d":
            pooled = relax.op.nn.avg_pool2d(nhwc, count_include_pad=bool(a.count_include_pad), **kw)
        else:
            pooled = relax.op.nn.max_pool2d(nhwc, **kw)
        return relax.op.permute_dims(pooled, [0, 3, 1, 2])

    main = rewrite_call(is_op("relax.nn.max_pool2d")(x), rewrite, main)
    return rewrite_call(is_op("relax.nn.avg_pool2d")(x), rewrite, main)


# element-wise operators ConvertLayout may leave between transposes (it infers no layout for where,
# so a where and everything after it runs NCHW)
ELEMENTWISE = ("relax.where", "relax.less", "relax.less_equal", "relax.greater", "relax.greater_equal",
               "relax.equal", "relax.not_equal", "relax.add", "relax.subtract", "relax.multiply", "relax.divide",
               "relax.maximum", "relax.minimum", "relax.power", "relax.exp", "relax.sigmoid", "relax.tanh",
               "relax.nn.relu", "relax.clip", "relax.astype")

def _transposes_after_elementwise(main):
    """An element-wise op whose tensor operands are ``permute(_, p)`` (the same p), constants or
    -- no more of them than of the permuted ones -- other activations of the same rank ->
    ``permute(op(...), p)``, the constants and other activations permuted into the inner frame
    (scalars kept): the ops run in the layout before the transposes, which meet each other (or
    a reshape) further on. One walk in order carries a transpose through a chain of them. Only in
    a function with a ``where`` (what ConvertLayout leaves behind); others are returned as they are."""

    @relax.expr_functor.mutator
    class Sink(relax.PyExprMutator):
        def permuted(self, arg):
            value = self.lookup_binding(arg) if isinstance(arg, relax.Var) else None
            if value is not None and tvm_compat.op_name(value) == "relax.permute_dims" and value.attrs.axes is not None:
                return value.args[0], [int(a) for a in value.attrs.axes]
            return None

        def visit_call_(self, op):
            call = super().visit_call_(op)
            if tvm_compat.op_name(call) not in ELEMENTWISE:
                return call
            tensors = [a for a in call.args if isinstance(a.ty, relax.TensorType)]
            inner = [self.permuted(a) for a in tensors]
            perms = {tuple(p[1]) for p in inner if p is not None}
            consts = sum(tvm_compat.is_constant(a) for a in tensors)
            plain = sum(p is None and not tvm_compat.is_constant(a) for a, p in zip(tensors, inner))
            if len(perms) != 1 or plain > len(tensors) - plain - consts:
                return call             # more transposes than it saves
            perm = list(perms.pop())
            inverse = [int(d) for d in np.argsort(perm)]
            args = []
            for a in call.args:
                p = self.permuted(a) if isinstance(a.ty, relax.TensorType) else None
                if p is not None:
                    args.append(p[0])
                elif not isinstance(a.ty, relax.TensorType) or (tvm_compat.is_constant(a) and
                                                               tvm_compat.constant_value(a).ndim == 0):
                    args.append(a)
                elif tvm_compat.is_constant(a):
                    c = tvm_compat.constant_value(a)
                    c = c.reshape((1,) * (len(perm) - c.ndim) + c.shape)
                    args.append(relax.const(np.ascontiguousarray(np.transpose(c, inverse))))
                elif len(tvm_compat.shape_of(a.ty)) == len(perm):
                    args.append(self.builder_.emit(relax.op.permute_dims(a, inverse)))
                else:
                    return call
            inner_value = self.builder_.emit(relax.Call(call.op, args, call.attrs, call.ty_args))
            return relax.op.permute_dims(inner_value, perm)

    if not any(tvm_compat.op_name(b.value) == "relax.where" for b in tvm_compat.bindings(main)):
        return main             # ConvertLayout carried everything else
    return relax.analysis.remove_all_unused(Sink().visit_expr(main))
