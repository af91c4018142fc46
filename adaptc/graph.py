"""Shared machinery of the passes that rewrite ``main`` into composite calls.

``Graph`` is a read-only view of main's bindings; a pass walks it, collects ``CompositeCall``s
(and reshape-like bindings kept as they are) keyed by the var they replace, and
``rebuild_main`` materializes them: one private composite function per call, and a new ``main``
that calls them in order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax

from . import tvm_compat, unary
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
    (replaced var, CompositeCall | reshape-like Call or concat)) and a ``main`` that calls them
    in order.
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

    def remap(arg):
        if isinstance(arg, relax.Var):
            return lookup(arg)
        if isinstance(arg, relax.Tuple) and all(isinstance(f, relax.Var) for f in arg.fields):   # concat's
            return relax.Tuple([lookup(f) for f in arg.fields])
        return arg

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
                else:  # reshape-like (or concat): the same op on the new inputs
                    new_of[var] = bb.emit(relax.Call(call.op, [remap(a) for a in call.args], call.attrs),
                                          name_hint=var.name)
            if len(g.results) > 1:
                ret = bb.emit_output(relax.Tuple([lookup(f) for f in g.results]))
            else:
                ret = bb.emit_output(lookup(g.results[0]))
        bb.emit_func_output(ret)
    return bb.get()


def mean_axes(g: Graph, call, node, op: str = "mean") -> tuple[list[int], bool]:
    """(axes, keep_dims) of a ``mean`` (or ``op``: ``sum``, ``max``) over a contiguous range of
    axes (global average pooling of any rank: [1, 2] of NHWC, [1] of [N, T, C]);
    UnsupportedOperatorError naming the axes for any other reduction (LegalizeQDQ, FuseFloatOps)."""
    x = call.args[0]
    rank = len(tvm_compat.shape_of(g.resolve(x).ty if x in g.value else x.ty))
    axes = list(range(rank)) if call.attrs.axis is None else sorted({int(v) % rank for v in call.attrs.axis})
    if axes != list(range(axes[0], axes[-1] + 1)):
        g.fail(op, node, f"{op} over axes {axes} of a {rank}-D tensor; only over neighbouring axes "
               "(e.g. [1, 2] of NHWC: global average pooling)")
    return axes, bool(call.attrs.keepdims)


@dataclass(frozen=True)
class UnaryMatch:
    """An element-wise unary function found in main: ``function`` (adaptc.unary) applied to
    ``x`` with ``params``; ``inner`` are the vars of its intermediate values (excluding the
    root)."""

    x: object
    function: unary.Function
    params: dict
    inner: tuple


def match_unary(g: Graph, expr) -> UnaryMatch | None:
    """The adaptc.unary function whose canonical expression (its ``pattern``) ``expr`` is, if
    any. Intermediate values must have no other use."""
    for f in unary.FUNCTIONS.values():
        for pattern in (f.pattern, *f.also):
            env: dict = {"inner": []}
            if _match(g, pattern, expr, env, root=True) and all(g.uses.get(v, 0) == 1 for v in env["inner"]):
                params = {k: env[k] for k in f.params}
                return UnaryMatch(env[unary.X], f, params, tuple(env["inner"]))
    return None


def match_prelu(g: Graph, expr):
    """(x, alpha expr, inner vars) if ``expr`` is adaptc.prelu.build's expression, else None. The
    intermediate values must have no other use; alpha is returned as written (a constant, or a
    dequantize of one)."""
    call = g.resolve(expr)
    if tvm_compat.op_name(call) != "relax.add":
        return None
    for r, m in (call.args, call.args[::-1]):
        if g.op(r) != "relax.nn.relu" or g.op(m) != "relax.multiply":
            continue
        x = g.resolve(r).args[0]
        mul = g.resolve(m)
        for mn, alpha in (mul.args, mul.args[::-1]):
            if g.op(mn) != "relax.minimum":
                continue
            lhs, zero = g.resolve(mn).args
            z = const_eval(g, zero)
            if not lhs.same_as(x) or z is None or z.size != 1 or float(z.reshape(())) != 0.0:
                continue
            inner = [v for v in (r, m, mn) if isinstance(v, relax.Var)]
            if all(g.uses.get(v, 0) == 1 for v in inner) and _constant_or_dequantized(g, alpha):
                return x, alpha, tuple(inner)
    return None


def _constant_or_dequantized(g: Graph, expr) -> bool:
    """A constant, or a dequantize of one (int8 alpha)."""
    if g.op(expr) == "relax.dequantize":
        expr = g.resolve(expr).args[0]
    return const_eval(g, expr) is not None


_COMMUTATIVE = ("add", "multiply")


def _scalar_of(g: Graph, expr) -> float | None:
    if tvm_compat.is_prim_imm(expr):             # clip's bounds
        return float(expr.value)
    value = const_eval(g, expr)
    return None if value is None or value.size != 1 else float(value.reshape(()))


def _match(g: Graph, pat, expr, env: dict, root: bool = False) -> bool:
    """``expr`` against pattern ``pat``: unary.X (the input, the same var wherever it appears),
    a number (a scalar constant equal to it), ``"$name"`` (a scalar constant, bound to
    env[name]) or ``(op, *args[, {attr: pattern}])`` (a call of relax.<op>; add and multiply in
    either argument order)."""
    if pat == unary.X:
        if const_eval(g, expr) is not None:
            return False
        if unary.X in env:
            return env[unary.X].same_as(expr)
        env[unary.X] = expr
        return True
    if isinstance(pat, (int, float)) or isinstance(pat, str):
        value = _scalar_of(g, expr)
        if value is None:
            return False
        if isinstance(pat, str):
            env[pat[1:]] = value
            return True
        return bool(np.isclose(value, pat, rtol=1e-6, atol=0.0))
    call = g.resolve(expr)
    op, *args = pat
    attrs = args.pop() if args and isinstance(args[-1], dict) else {}
    if tvm_compat.op_name(call) != f"relax.{op}" or len(call.args) != len(args):
        return False
    orders = [list(call.args)] + ([list(call.args)[::-1]] if op in _COMMUTATIVE else [])
    for order in orders:
        trial = {**env, "inner": list(env["inner"])}
        if all(_match(g, p, e, trial) for p, e in zip(args, order)):
            if all(_match_attr(getattr(call.attrs, k), p, trial) for k, p in attrs.items()):
                if not root and isinstance(expr, relax.Var):
                    trial["inner"].append(expr)
                env.clear()
                env.update(trial)
                return True
    return False


def _match_attr(value, pat, env: dict) -> bool:
    value = float(value.value if hasattr(value, "value") else value)
    if isinstance(pat, str):
        env[pat[1:]] = value
        return True
    return bool(np.isclose(value, pat, rtol=1e-6, atol=0.0))


def split_part(g: Graph, value):
    """The ``strided_slice`` that equals ``value`` when it is one part of a ``split``
    (``TupleGetItem(split(x), i)``), else None: the passes keep splits as slices."""
    if not isinstance(value, relax.TupleGetItem):
        return None
    tup = value.tuple_value
    split = g.resolve(tup)
    if tvm_compat.op_name(split) != "relax.split":
        return None
    axis = int(split.attrs.axis) % len(tvm_compat.shape_of(split.args[0].ty))
    sizes = [tvm_compat.shape_of(t)[axis] for t in tup.ty.fields]
    begin = sum(sizes[:int(value.index)])
    return relax.op.strided_slice(split.args[0], axes=[axis], begin=[begin], end=[begin + sizes[int(value.index)]])
