"""ToNHWC: NCHW convolutions (ONNX) become NHWC/HWIO, the layout of the C kernels.

Requires: a float module (ONNX import) whose convolutions may be NCHW/OIHW.

Ensures: every ``nn.conv2d`` is NHWC with an HWIO filter (TVM's ConvertLayout, which also
carries NHWC through pooling, ``mean`` and elementwise ops and inserts ``permute_dims`` where a
layout meets a layout-dependent op such as ``reshape``); a ``permute_dims`` that only moves
size-1 axes does not change the bytes and becomes a ``reshape``. Modules already in NHWC are
unchanged. Numerics are unchanged (checked on llvm in tests/passes/test_to_nhwc.py).
"""
from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_op, rewrite_call, wildcard

from adaptc import tvm_compat


def keeps_memory_order(shape, axes) -> bool:
    """True if permuting ``shape`` by ``axes`` leaves the row-major byte order unchanged."""
    moved = [a for a in axes if shape[a] != 1]
    return moved == sorted(moved)


def ToNHWC():
    """Convert NCHW convolutions to NHWC (see module docstring)."""

    @tvm_compat.module_pass("adaptc.ToNHWC")
    def _pass(mod):
        mod = relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "HWIO"]})(mod)
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
