"""FuseFloatOps on selects, softmax over any axis and casts to the same type.

``where(a <cmp> b, t, f)`` -> ``adaptc.where_f32`` (each distinct activation once, then the
constants; ``slots`` says which operand is a, b, t, f); ``where(a < b, b, a)`` -> maximum (ONNX's
Clip body); a softmax over another axis than the last between two transposes; ``astype`` to the
type a value has -> nothing (ONNX CastLike). Numbers against NumPy float64.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.qops import composite_name

SCALE = np.array([1.0, 2.0, 3.0], "float32")


def _run(mod, x):
    return tvm_compat.run_vm(tvm_compat.build_llvm(mod), x)[0]


@I.ir_module
class WhereBefore:
    @R.function
    def main(x: R.Tensor((1, 4, 4, 3), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.less(x, R.const(0.5, "float32"))
            s = R.sigmoid(x)
            y = R.where(c, s, R.const(SCALE))
            R.output(y)
        return y


@I.ir_module
class WhereExpected:
    @R.function(private=True)
    def unary_f32_0(x0: R.Tensor((1, 4, 4, 3), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"Composite": "adaptc.unary_f32", "function": "sigmoid", "source": "sigmoid"})
        with R.dataflow():
            gv = R.sigmoid(x0)
            R.output(gv)
        return gv

    @R.function(private=True)
    def where_f32_1(x0: R.Tensor((1, 4, 4, 3), "float32"), x1: R.Tensor((1, 4, 4, 3), "float32"),
                    operand2: R.Tensor((), "float32"), operand3: R.Tensor((3,), "float32")) \
            -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"Composite": "adaptc.where_f32", "comparison": "less", "slots": [0, 2, 1, 3], "source": "where"})
        with R.dataflow():
            lv = R.less(x0, operand2)
            lv1 = R.where(lv, x1, operand3)
            gv = lv1
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 4, 4, 3), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"num_input": 1})
        cls = WhereExpected
        with R.dataflow():
            s = cls.unary_f32_0(x)
            y = cls.where_f32_1(x, s, R.const(0.5, "float32"), R.const(SCALE))
            gv = y
            R.output(gv)
        return gv


def test_where_of_a_comparison_becomes_one_select_before_expected():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), WhereBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, WhereExpected)
    x = np.random.default_rng(0).normal(0.0, 1.0, (1, 4, 4, 3)).astype(np.float32)
    xd = x.astype(np.float64)
    want = np.where(xd < 0.5, 1 / (1 + np.exp(-xd)), SCALE)
    np.testing.assert_allclose(_run(after, x), want, rtol=1e-6, atol=1e-7)


@I.ir_module
class ClipBodyBefore:       # ONNX Clip's function body: where(x < lo, lo, x), then where(hi < y, hi, y)
    @R.function
    def main(x: R.Tensor((2, 5), "float32")) -> R.Tensor((2, 5), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.less(x, R.const(-0.5, "float32"))
            y = R.where(c, R.const(-0.5, "float32"), x)
            d = R.less(R.const(0.7, "float32"), y)
            z = R.where(d, R.const(0.7, "float32"), y)
            R.output(z)
        return z


def test_where_of_the_bounds_is_a_maximum_and_a_minimum():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), ClipBodyBefore)
    calls = [(composite_name(after, b.value), dict(after[b.value.op].attrs)) for b in tvm_compat.bindings(after["main"])
             if composite_name(after, b.value)]
    assert [(name, str(attrs["function"])) for name, attrs in calls] == [
        ("adaptc.binary_f32", "maximum"), ("adaptc.binary_f32", "minimum")]
    x = np.linspace(-2.0, 2.0, 10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(_run(after, x), np.clip(x, np.float32(-0.5), np.float32(0.7)))


@I.ir_module
class SoftmaxBefore:
    @R.function
    def main(x: R.Tensor((2, 3, 4), "float32")) -> R.Tensor((2, 3, 4), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.astype(x, "float32")
            y = R.nn.softmax(c, axis=1)
            R.output(y)
        return y


@I.ir_module
class SoftmaxExpected:
    @R.function(private=True)
    def softmax_f32_1(x0: R.Tensor((2, 4, 3), "float32")) -> R.Tensor((2, 4, 3), "float32"):
        R.func_attr({"Composite": "adaptc.softmax_f32", "beta": 1.0, "log": 0, "source": "softmax"})
        with R.dataflow():
            gv = R.nn.softmax(x0, axis=-1)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((2, 3, 4), "float32")) -> R.Tensor((2, 3, 4), "float32"):
        R.func_attr({"num_input": 1})
        cls = SoftmaxExpected
        with R.dataflow():
            y_last = R.permute_dims(x, axes=[0, 2, 1])
            y_softmax = cls.softmax_f32_1(y_last)
            y = R.permute_dims(y_softmax, axes=[0, 2, 1])
            gv = y
            R.output(gv)
        return gv


def test_softmax_over_a_middle_axis_between_transposes_before_expected():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), SoftmaxBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, SoftmaxExpected)
    x = np.random.default_rng(1).normal(0.0, 2.0, (2, 3, 4)).astype(np.float32)
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(_run(after, x), e / e.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-7)
