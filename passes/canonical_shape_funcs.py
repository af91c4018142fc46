"""CanonicalShapeFuncs: the shape functions TVM's VMShapeLower writes, in one order in every process.

VMShapeLower (TVM, C++) computes a function's symbolic shape expressions (``n * 64``,
``32000 * n``) in ``shape_func*`` PrimFuncs, one store per expression into the shape heap. The
stores' order comes from an unordered map hashed on object addresses, so it changes from one
process to the next; structurally equal shape functions are shared only when their stores
happen to come out in the same order, so even the number of shape functions, their names and the
VM's function table -- and with them the exported library's bytes -- differ between two identical
compiles.

Requires: a module after VMShapeLower (Relax functions calling ``shape_func*`` PrimFuncs on
their shape heap).

Ensures: every shape function's stores sorted by heap index (they are independent: each reads
only the heap slots of symbolic variables, written before the call); structurally equal shape
functions merged; the rest named ``shape_func``, ``shape_func1``, ... in the order the Relax
functions (module order, then binding order) first call them, and the calls renamed to match.
The values computed are unchanged. A ``global_symbol`` attribute, where one is set, follows the
name.
"""
from __future__ import annotations

import tvm
from tvm import relax, tirx

from adaptc import tvm_compat

PREFIX = "shape_func"       # VMShapeLower's name for the functions it writes


def _store_index(stmt) -> int:
    return int(stmt.indices[0])


def _sorted(func):
    """``func`` with its top-level stores in heap-index order, without its name (a
    ``global_symbol`` attribute, set again by ``_named``)."""
    if func.attrs is not None and "global_symbol" in func.attrs:
        func = func.without_attr("global_symbol")
    body = func.body
    if not isinstance(body, tirx.SeqStmt) or not all(isinstance(s, tirx.BufferStore) for s in body.seq):
        return func
    return func.with_body(tirx.SeqStmt(sorted(body.seq, key=_store_index)))


def _calls_in_order(mod, shape_funcs: dict) -> list:
    """Shape-function GlobalVars in the order the Relax functions first call them."""
    order: list = []

    def visit(expr):
        if isinstance(expr, relax.Call) and expr.op in shape_funcs and not any(expr.op.same_as(g) for g in order):
            order.append(expr.op)

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return order


@relax.expr_functor.mutator
class _RenameCalls(relax.PyExprMutator):
    def __init__(self, renamed: dict):
        super().__init__()
        self.renamed = renamed

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.GlobalVar) and call.op in self.renamed:
            return relax.Call(self.renamed[call.op], call.args, call.attrs, call.ty_args)
        return call


def _named(func, name: str, old):
    return func.with_attr("global_symbol", name) if old.attrs is not None and "global_symbol" in old.attrs else func


@tvm_compat.module_pass("adaptc.CanonicalShapeFuncs")
def CanonicalShapeFuncs(mod):
    shape_funcs = {gv: _sorted(f) for gv, f in mod.functions_items()
                   if isinstance(f, tirx.PrimFunc) and gv.name_hint.startswith(PREFIX)}
    if not shape_funcs:
        return mod
    kept: list[tuple[tvm.ir.GlobalVar, tirx.PrimFunc, tirx.PrimFunc]] = []    # (new var, unnamed, named)
    renamed: dict = {}
    for old in _calls_in_order(mod, shape_funcs):
        func = shape_funcs[old]
        same = next((gv for gv, f, _ in kept if tvm_compat.structural_equal(f, func)), None)
        if same is None:
            name = PREFIX + (str(len(kept)) if kept else "")
            same = tvm_compat.typed_global_var(name, old.ty)
            kept.append((same, func, _named(func, name, mod[old])))
        renamed[old] = same
    functions = {gv: f for gv, f in mod.functions_items() if gv not in shape_funcs}
    rename = _RenameCalls(renamed)
    for gv, func in list(functions.items()):
        if isinstance(func, relax.Function):
            functions[gv] = rename.visit_expr(func)
    functions.update((gv, named) for gv, _, named in kept)
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
