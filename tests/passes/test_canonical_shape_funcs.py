"""CanonicalShapeFuncs: VMShapeLower's shape functions sorted, merged and named in call order.

The batched builds' values with the pass in their pipeline are checked bit-exact on llvm in
tests/targets/cuda/test_batched.py; their exports byte-identical in tests/core/test_reproducible.py."""
import tvm
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from adaptc import tvm_compat
from adaptc.passes.canonical_shape_funcs import CanonicalShapeFuncs


@I.ir_module
class Before:
    # shape_func and shape_func1 store the same values in another order (VMShapeLower's order
    # changes between processes); shape_func2 is another function, called first.
    @T.prim_func(private=True)
    def shape_func(H: T.Buffer((T.int64(3),), "int64")):
        T.func_attr({"tirx.is_host_func": True})
        H[T.int64(2)] = H[T.int64(0)] * T.int64(64)
        H[T.int64(1)] = T.int64(32000) * H[T.int64(0)]

    @T.prim_func(private=True)
    def shape_func1(H: T.Buffer((T.int64(3),), "int64")):
        T.func_attr({"tirx.is_host_func": True})
        H[T.int64(1)] = T.int64(32000) * H[T.int64(0)]
        H[T.int64(2)] = H[T.int64(0)] * T.int64(64)

    @T.prim_func(private=True)
    def shape_func2(H: T.Buffer((T.int64(3),), "int64")):
        T.func_attr({"tirx.is_host_func": True})
        H[T.int64(2)] = H[T.int64(0)] * T.int64(12)
        H[T.int64(1)] = T.int64(256) * H[T.int64(0)]

    @R.function(pure=False)
    def main(heap: R.Tensor((3,), "int64")):
        cls = Before
        cls.shape_func2(heap)
        cls.shape_func1(heap)
        cls.shape_func(heap)
        return heap


@I.ir_module
class Expected:
    @T.prim_func(private=True)
    def shape_func(H: T.Buffer((T.int64(3),), "int64")):
        T.func_attr({"tirx.is_host_func": True})
        H[T.int64(1)] = T.int64(256) * H[T.int64(0)]
        H[T.int64(2)] = H[T.int64(0)] * T.int64(12)

    @T.prim_func(private=True)
    def shape_func1(H: T.Buffer((T.int64(3),), "int64")):
        T.func_attr({"tirx.is_host_func": True})
        H[T.int64(1)] = T.int64(32000) * H[T.int64(0)]
        H[T.int64(2)] = H[T.int64(0)] * T.int64(64)

    @R.function(pure=False)
    def main(heap: R.Tensor((3,), "int64")):
        cls = Expected
        cls.shape_func(heap)
        cls.shape_func1(heap)
        cls.shape_func1(heap)
        return heap


def test_sorts_merges_and_names_in_call_order():
    after = tvm_compat.apply(CanonicalShapeFuncs, Before)
    tvm.ir.assert_structural_equal(after, Expected)


def test_module_without_shape_functions_is_unchanged():
    @I.ir_module
    class Plain:
        @R.function
        def main(x: R.Tensor((2,), "float32")):
            return x

    assert tvm_compat.apply(CanonicalShapeFuncs, Plain).same_as(Plain)


def test_named_functions_keep_their_symbol_in_step_with_the_name():
    """After AttachGlobalSymbol each function's global_symbol is its name: a merged and renamed
    shape function gets its new name as its symbol, and names do not keep two functions apart."""
    named = tvm.IRModule({gv: (f.with_attr("global_symbol", gv.name_hint) if isinstance(f, tvm.tirx.PrimFunc) else f)
                          for gv, f in Before.functions_items()})
    after = tvm_compat.apply(CanonicalShapeFuncs, named)
    symbols = {gv.name_hint: str(f.attrs["global_symbol"]) for gv, f in after.functions_items()
               if isinstance(f, tvm.tirx.PrimFunc)}
    assert symbols == {"shape_func": "shape_func", "shape_func1": "shape_func1"}

