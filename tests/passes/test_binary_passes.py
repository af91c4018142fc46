"""The element-wise binary operators through the passes.

FuseFloatOps: ``subtract`` / ``maximum`` / ``power(subtract(x, y), 2)`` of activations (and a
fused ReLU6) -> ``adaptc.binary_f32``; a constant first operand of ``divide`` -> its reversed
function with the constant as "input2". LegalizeQDQ: ``quantize(maximum(dequantize(a),
dequantize(b)))`` of equal parameters -> ``adaptc.qmaxmin`` (a raw int8 maximum, TFLM's).
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm.script import ir as I
from tvm.script import relax as R

import tflite_ops as T
from adaptc import tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.qops import composite_name


def _run(mod, *xs):
    return tvm_compat.run_vm(tvm_compat.build_llvm(mod), *xs)[0]


@I.ir_module
class FloatBefore:      # max(relu(x), sigmoid(x)) - x, ReLU6 after; (x - sigmoid(x))^2
    @R.function
    def main(x: R.Tensor((2, 6), "float32")) -> R.Tensor((2, 6), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            a = R.nn.relu(x)
            b = R.sigmoid(x)
            m = R.maximum(a, b)
            s = R.subtract(m, x)
            c = R.clip(s, 0.0, 6.0)
            d = R.subtract(c, b)
            y = R.power(d, R.const(2.0, "float32"))
            R.output(y)
        return y


@I.ir_module
class FloatExpected:
    @R.function(private=True)
    def clamp_f32_0(x0: R.Tensor((2, 6), "float32")) -> R.Tensor((2, 6), "float32"):
        R.func_attr({"Composite": "adaptc.clamp_f32", "act_max": float("inf"), "act_min": 0.0, "source": "relu"})
        with R.dataflow():
            gv = R.clip(x0, 0.0, float("inf"))
            R.output(gv)
        return gv

    @R.function(private=True)
    def unary_f32_1(x0: R.Tensor((2, 6), "float32")) -> R.Tensor((2, 6), "float32"):
        R.func_attr({"Composite": "adaptc.unary_f32", "function": "sigmoid", "source": "sigmoid"})
        with R.dataflow():
            gv = R.sigmoid(x0)
            R.output(gv)
        return gv

    @R.function(private=True)
    def binary_f32_2(x0: R.Tensor((2, 6), "float32"), x1: R.Tensor((2, 6), "float32")) \
            -> R.Tensor((2, 6), "float32"):
        R.func_attr({"Composite": "adaptc.binary_f32", "act_max": float("inf"), "act_min": float("-inf"),
                     "function": "maximum", "source": "maximum"})
        with R.dataflow():
            lv = R.maximum(x0, x1)
            gv = lv
            R.output(gv)
        return gv

    @R.function(private=True)
    def binary_f32_3(x0: R.Tensor((2, 6), "float32"), x1: R.Tensor((2, 6), "float32")) \
            -> R.Tensor((2, 6), "float32"):
        R.func_attr({"Composite": "adaptc.binary_f32", "act_max": 6.0, "act_min": 0.0, "function": "subtract",
                     "source": "subtract"})
        with R.dataflow():
            lv = R.subtract(x0, x1)
            gv = R.clip(lv, 0.0, 6.0)
            R.output(gv)
        return gv

    @R.function(private=True)
    def binary_f32_4(x0: R.Tensor((2, 6), "float32"), x1: R.Tensor((2, 6), "float32")) \
            -> R.Tensor((2, 6), "float32"):
        R.func_attr({"Composite": "adaptc.binary_f32", "act_max": float("inf"), "act_min": float("-inf"),
                     "function": "squared_difference", "source": "squared_difference"})
        with R.dataflow():
            lv = R.subtract(x0, x1)
            lv1 = R.multiply(lv, lv)
            gv = lv1
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((2, 6), "float32")) -> R.Tensor((2, 6), "float32"):
        R.func_attr({"num_input": 1})
        cls = FloatExpected
        with R.dataflow():
            a = cls.clamp_f32_0(x)
            b = cls.unary_f32_1(x)
            m = cls.binary_f32_2(a, b)
            c = cls.binary_f32_3(m, x)
            y = cls.binary_f32_4(c, b)
            gv = y
            R.output(gv)
        return gv


def test_float_binary_ops_become_binary_f32_before_expected():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), FloatBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, FloatExpected)
    x = np.linspace(-8.0, 8.0, 12, dtype=np.float32).reshape(2, 6)
    xd = x.astype(np.float64)
    sig = 1 / (1 + np.exp(-xd))
    want = (np.clip(np.maximum(np.maximum(xd, 0), sig) - xd, 0.0, 6.0) - sig) ** 2
    np.testing.assert_allclose(_run(after, x), want, rtol=1e-5, atol=1e-6)


@I.ir_module
class DivideConstFirstBefore:
    @R.function
    def main(x: R.Tensor((1, 2, 2, 3), "float32")) -> R.Tensor((1, 2, 2, 3), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            y = R.divide(R.const(np.array([1.0, -2.0, 4.0], np.float32).reshape(1, 1, 1, 3)), x)
            R.output(y)
        return y


def test_constant_first_divide_is_a_reverse_divide_by_input2():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), DivideConstFirstBefore)
    assert tvm_compat.well_formed(after)
    [b] = tvm_compat.bindings(after["main"])[:1]
    func = after[b.value.op]
    attrs = tvm_compat.plain_attrs(func)
    assert (composite_name(after, b.value), attrs["function"]) == ("adaptc.binary_f32", "reverse_divide")
    assert [tvm_compat.var_name(p) for p in func.params] == ["x0", "input2"]
    x = np.linspace(0.5, 6.0, 12, dtype=np.float32).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(_run(after, x), np.array([1.0, -2.0, 4.0], np.float32).reshape(1, 1, 1, 3) / x)


@I.ir_module
class MaxBefore:   # TFLite int8 MAXIMUM, equal parameters, the second input broadcast
    @R.function
    def main(a: R.Tensor((1, 2, 2, 3), "int8"), b: R.Tensor((1, 1, 1, 3), "int8")) -> R.Tensor((1, 2, 2, 3), "int8"):
        R.func_attr({"num_input": 2})
        with R.dataflow():
            af = R.dequantize(a, R.const(0.5, "float32"), R.const(3, "int32"), axis=0)
            bf = R.dequantize(b, R.const(0.5, "float32"), R.const(3, "int32"), axis=0)
            p = R.maximum(af, bf)
            q = R.quantize(p, R.const(0.5, "float32"), R.const(3, "int32"), axis=0, out_dtype="int8")
            R.output(q)
        return q


@I.ir_module
class MaxExpected:
    @R.function(private=True)
    def qmaxmin_0(x0: R.Tensor((1, 2, 2, 3), "int8"), x1: R.Tensor((1, 1, 1, 3), "int8")) \
            -> R.Tensor((1, 2, 2, 3), "int8"):
        R.func_attr({"Composite": "adaptc.qmaxmin", "act_max": 127, "act_min": -128, "function": "maximum",
                     "output_scale": 0.5, "output_zp": 3, "source": "maximum"})
        with R.dataflow():
            lv = R.maximum(x0, x1)
            lv1 = R.clip(lv, -128, 127)
            gv = R.astype(lv1, "int8")
            R.output(gv)
        return gv

    @R.function
    def main(a: R.Tensor((1, 2, 2, 3), "int8"), b: R.Tensor((1, 1, 1, 3), "int8")) -> R.Tensor((1, 2, 2, 3), "int8"):
        R.func_attr({"num_input": 2})
        cls = MaxExpected
        with R.dataflow():
            q = cls.qmaxmin_0(a, b)
            gv = q
            R.output(gv)
        return gv


def test_quantized_maximum_becomes_qmaxmin_before_expected():
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), MaxBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, MaxExpected)
    buf = T.binary_model("MAXIMUM", (1, 2, 2, 3), (1, 1, 1, 3), (0.5, 3), (0.5, 3), (0.5, 3))
    vm = tvm_compat.build_llvm(after)
    rng = np.random.default_rng(4)
    for _ in range(10):
        a = rng.integers(-128, 128, (1, 2, 2, 3), dtype=np.int8)
        b = rng.integers(-128, 128, (1, 1, 1, 3), dtype=np.int8)
        got = tvm_compat.run_vm(vm, a, b)[0]
        np.testing.assert_array_equal(got, T.run_tflm(buf, a, b))
        np.testing.assert_array_equal(got, np.maximum(a, b))
