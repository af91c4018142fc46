"""Shared machinery of the passes that rewrite ``main`` into composite calls.

``Graph`` is a read-only view of main's bindings; a pass walks it, collects ``CompositeCall``s
(and reshape-like bindings kept as they are) keyed by the var they replace, and
``rebuild_main`` materializes them: one private composite function per call, and a new ``main``
that calls them in order.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from . import tvm_compat
from .errors import UnsupportedOperatorError
from .qops import CompositeCall, build_function


class Graph:
    """Read-only view of main's bindings: var -> value, use counts."""

    def __init__(self, func, path, supported=()):
        self.path, self.supported = path, supported
        self.bindings = tvm_compat.bindings(func)
        self.value = {b.var: b.value for b in self.bindings}
        self.uses: dict = {}
        for b in self.bindings:
            for v in relax.analysis.free_vars(b.value):
                self.uses[v] = self.uses.get(v, 0) + 1
        self.results = tvm_compat.results(func)
        for r in self.results:
            for v in relax.analysis.free_vars(r):
                self.uses[v] = self.uses.get(v, 0) + 1

    def resolve(self, expr):
        """The value bound to a var (following var-to-var aliases), else the expr itself."""
        while isinstance(expr, relax.Var) and expr in self.value:
            expr = self.value[expr]
        return expr

    def op(self, expr) -> str | None:
        return tvm_compat.op_name(self.resolve(expr))

    def fail(self, what, node, detail="", supported=()):
        raise UnsupportedOperatorError(self.path, what, str(node), supported or self.supported, detail)


_CONST_ARITHMETIC = {"relax.add": np.add, "relax.subtract": np.subtract, "relax.multiply": np.multiply,
                     "relax.divide": np.divide}


def const_eval(g: Graph, expr):
    """NumPy value of an expression built from constants by reshape / permute_dims and
    element-wise add / subtract / multiply / divide (in the constants' own type, as the module
    computes it), else None."""
    expr = g.resolve(expr)
    if tvm_compat.is_constant(expr):
        return tvm_compat.constant_value(expr)
    name = tvm_compat.op_name(expr)
    if name in _CONST_ARITHMETIC:
        a, b = (const_eval(g, arg) for arg in expr.args)
        if a is None or b is None:
            return None
        return _CONST_ARITHMETIC[name](a, b).astype(tvm_compat.dtype_of(expr.ty))
    if name in ("relax.reshape", "relax.permute_dims"):
        inner = const_eval(g, expr.args[0])
        if inner is None:
            return None
        if name == "relax.reshape":
            return inner.reshape(tvm_compat.shape_of(expr.ty))
        axes = expr.attrs.axes
        return inner.transpose(None if axes is None else [int(a) for a in axes])
    return None


def rebuild_main(mod, g: Graph, calls, alias, attrs: dict | None = None):
    """A module with one composite function per CompositeCall in ``calls`` (a list of
    (replaced var, CompositeCall | reshape-like Call)) and a ``main`` that calls them in order.
    ``alias`` maps vars that equal another var; ``attrs`` are added to main's attributes."""
    func = mod["main"]
    bb = relax.BlockBuilder()
    new_of = {p: p for p in func.params}

    def root(v):
        while v in alias:
            v = alias[v]
        return v

    def lookup(v):
        v = root(v)
        if v not in new_of:
            g.fail(str(g.op(v)).replace("relax.", ""), v.name, "its value is not produced by a supported pattern")
        return new_of[v]

    fns = {}
    for i, (_var, call) in enumerate(calls):
        if isinstance(call, CompositeCall):
            name = f"{call.name.split('.')[-1]}_{i}"
            fns[i] = bb.add_func(build_function(call, [root(x).ty for x in call.inputs]), name)
    attrs = {**{k: v for k, v in tvm_compat.attrs_dict(func).items() if k != "params"}, **(attrs or {})}
    with bb.function("main", list(func.params), attrs=attrs):
        with bb.dataflow():
            for i, (var, call) in enumerate(calls):
                if isinstance(call, CompositeCall):
                    gv = fns[i]
                    args = [lookup(x) for x in call.inputs] + [relax.const(c) for c in call.consts]
                    new_of[var] = bb.emit(relax.Call(gv, args), name_hint=var.name)
                else:  # reshape-like: same op on the new input
                    new_of[var] = bb.emit(relax.Call(call.op, [lookup(call.args[0])] + list(call.args[1:]),
                                                     call.attrs), name_hint=var.name)
            if len(g.results) > 1:
                ret = bb.emit_output(relax.Tuple([lookup(f) for f in g.results]))
            else:
                ret = bb.emit_output(lookup(g.results[0]))
        bb.emit_func_output(ret)
    return bb.get()


def spatial_mean_axes(g: Graph, call, node) -> tuple[list[int], bool]:
    """(axes, keep_dims) of a ``mean`` over H and W of a 4-D NHWC tensor; UnsupportedOperatorError
    naming the axes for any other mean (LegalizeQDQ, FuseFloatOps)."""
    x = call.args[0]
    rank = len(tvm_compat.shape_of(g.resolve(x).ty if x in g.value else x.ty))
    axes = None if call.attrs.axis is None else sorted({int(v) % rank for v in call.attrs.axis})
    if rank != 4 or axes != [1, 2]:
        g.fail("mean", node, f"mean over axes {'all' if axes is None else axes} of a {rank}-D tensor; "
               "only the spatial axes [1, 2] of an NHWC tensor (global average pooling)")
    return axes, bool(call.attrs.keepdims)
