"""The element-wise functions of adaptc.unary and MUL through the passes.

FuseFloatOps: a hard swish in its canonical form -> ``adaptc.unary_f32`` (its inner multiply of
two activations is not a MUL), a multiply of two activations (broadcasting) -> ``adaptc.mul_f32``.
LegalizeQDQ: ``quantize(sigmoid(dequantize(x)))`` -> ``adaptc.qlut`` holding TFLite Micro's
LOGISTIC table; ``quantize(multiply(dequantize(a), dequantize(b)))`` -> ``adaptc.qmul``, also with
a constant operand (flash, "input2", whichever side it was on). Numbers are checked against
TFLite Micro's kernels and float64 NumPy, never against adaptc's own output.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

import tflite_ops as T
from adaptc import luts, tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.qops import composite_name

INPUTS = np.arange(-128, 128, dtype=np.int8)


def _calls(mod) -> list[tuple[str, object]]:
    """(composite or op name, callee or None) of each call in main, in order."""
    out = []
    for b in tvm_compat.bindings(mod["main"]):
        if isinstance(b.value, relax.Call):
            name = composite_name(mod, b.value)
            out.append((name or tvm_compat.op_name(b.value), mod[b.value.op] if name else None))
    return out


def _run(mod, *xs):
    return tvm_compat.run_vm(tvm_compat.build_llvm(mod), *xs)[0]


# ------------------------------------------------------------------ FuseFloatOps


@I.ir_module
class HardSwishMulBefore:   # a hard swish gated by the channel means (a squeeze-excitation shape)
    @R.function
    def main(x: R.Tensor((1, 4, 4, 3), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            a = R.add(x, R.const(3.0, "float32"))
            c = R.clip(a, 0.0, 6.0)
            d = R.divide(c, R.const(6.0, "float32"))
            h = R.multiply(x, d)                       # hard_swish(x) = x * clip(x + 3, 0, 6) / 6
            m = R.mean(x, axis=[1, 2], keepdims=True)
            y = R.multiply(h, m)                       # [1, 4, 4, 3] x [1, 1, 1, 3]
            R.output(y)
        return y


@I.ir_module
class HardSwishMulExpected:
    @R.function(private=True)
    def unary_f32_0(x0: R.Tensor((1, 4, 4, 3), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"Composite": "adaptc.unary_f32", "function": "hard_swish", "source": "hard_swish"})
        with R.dataflow():
            lv = R.add(x0, R.const(3.0, "float32"))
            lv1 = R.clip(lv, 0, 6)
            lv2 = R.divide(lv1, R.const(6.0, "float32"))
            gv = R.multiply(x0, lv2)
            R.output(gv)
        return gv

    @R.function(private=True)
    def avg_pool2d_f32_1(x0: R.Tensor((1, 4, 4, 3), "float32")) -> R.Tensor((1, 1, 1, 3), "float32"):
        R.func_attr({"Composite": "adaptc.avg_pool2d_f32", "act_max": float("inf"), "act_min": float("-inf"),
                     "padding": [0, 0, 0, 0], "pool_size": [4, 4], "source": "mean", "strides": [1, 1]})
        with R.dataflow():
            lv = R.nn.avg_pool2d(x0, pool_size=[4, 4], strides=[1, 1], padding=[0, 0, 0, 0],
                                 count_include_pad=False, layout="NHWC")
            gv = lv
            R.output(gv)
        return gv

    @R.function(private=True)
    def mul_f32_2(x0: R.Tensor((1, 4, 4, 3), "float32"), x1: R.Tensor((1, 1, 1, 3), "float32")) \
            -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"Composite": "adaptc.mul_f32", "act_max": float("inf"), "act_min": float("-inf"),
                     "source": "mul"})
        with R.dataflow():
            lv = R.multiply(x0, x1)
            gv = lv
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 4, 4, 3), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"num_input": 1})
        cls = HardSwishMulExpected
        with R.dataflow():
            h = cls.unary_f32_0(x)
            m = cls.avg_pool2d_f32_1(x)
            y = cls.mul_f32_2(h, m)
            gv = y
            R.output(gv)
        return gv


def test_hard_swish_and_mul_become_composites_before_expected():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), HardSwishMulBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, HardSwishMulExpected)
    x = np.random.default_rng(1).normal(0.0, 3.0, size=(1, 4, 4, 3)).astype(np.float32)
    x[0, 0, :, 0] = [-3.0, 3.0, -4.0, 5.0]             # both corners of the clip
    xd = x.astype(np.float64)
    hs = xd * np.maximum(0.0, np.minimum(1.0, xd / 6.0 + 0.5))      # ONNX HardSwish, float64
    want = hs * xd.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(_run(after, x), want, rtol=1e-5, atol=1e-6)


@I.ir_module
class MulOfTwoActivationsBefore:      # two branches multiplied, a ReLU6 after (fused)
    @R.function
    def main(x: R.Tensor((2, 6), "float32")) -> R.Tensor((2, 6), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            a = R.nn.relu(x)
            b = R.sigmoid(x)
            p = R.multiply(a, b)
            y = R.clip(p, 0.0, 6.0)
            R.output(y)
        return y


@I.ir_module
class MulOfTwoActivationsExpected:
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
    def mul_f32_2(x0: R.Tensor((2, 6), "float32"), x1: R.Tensor((2, 6), "float32")) -> R.Tensor((2, 6), "float32"):
        R.func_attr({"Composite": "adaptc.mul_f32", "act_max": 6.0, "act_min": 0.0, "source": "mul"})
        with R.dataflow():
            lv = R.multiply(x0, x1)
            gv = R.clip(lv, 0.0, 6.0)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((2, 6), "float32")) -> R.Tensor((2, 6), "float32"):
        R.func_attr({"num_input": 1})
        cls = MulOfTwoActivationsExpected
        with R.dataflow():
            a = cls.clamp_f32_0(x)
            b = cls.unary_f32_1(x)
            y = cls.mul_f32_2(a, b)
            gv = y
            R.output(gv)
        return gv


def test_mul_of_two_activations_takes_the_relu6_before_expected():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), MulOfTwoActivationsBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, MulOfTwoActivationsExpected)
    x = np.linspace(-8.0, 8.0, 12, dtype=np.float32).reshape(2, 6)
    xd = x.astype(np.float64)
    want = np.clip(np.maximum(xd, 0.0) / (1.0 + np.exp(-xd)), 0.0, 6.0)
    assert want.max() == 6.0 and 0.0 < want[want > 0].min() < 6.0     # the clip bites, and not everywhere
    np.testing.assert_allclose(_run(after, x), want, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ LegalizeQDQ: unary -> table

SIG_IN = (0.0625, 3)                       # exact in float32
SIG_TABLE = T.run_tflm(T.logistic_model((1, 256), SIG_IN), INPUTS[None])[0]    # TFLM's LOGISTIC, every input


@I.ir_module
class SigmoidBefore:   # TFLite int8 LOGISTIC as TVM's importer writes it
    @R.function
    def main(x: R.Tensor((1, 256), "int8")) -> R.Tensor((1, 256), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            xf = R.dequantize(x, R.const(0.0625, "float32"), R.const(3, "int32"), axis=0)
            s = R.sigmoid(xf)
            q = R.quantize(s, R.const(0.00390625, "float32"), R.const(-128, "int32"), axis=0, out_dtype="int8")
            R.output(q)
        return q


@I.ir_module
class SigmoidExpected:
    @R.function(private=True)
    def qlut_0(x0: R.Tensor((1, 256), "int8"), table: R.Tensor((256,), "int8")) -> R.Tensor((1, 256), "int8"):
        R.func_attr({"Composite": "adaptc.qlut", "act_max": 127, "act_min": -128, "input_scale": 0.0625,
                     "input_zp": 3, "output_scale": 0.00390625, "output_zp": -128, "source": "sigmoid"})
        with R.dataflow():
            lv = R.astype(x0, "int32")
            lv1 = R.add(lv, R.const(128, "int32"))
            gv = R.take(table, lv1, axis=0, mode="clip")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 256), "int8")) -> R.Tensor((1, 256), "int8"):
        R.func_attr({"num_input": 1})
        cls = SigmoidExpected
        with R.dataflow():
            q = cls.qlut_0(x, R.const(SIG_TABLE))
            gv = q
            R.output(gv)
        return gv


def test_quantized_sigmoid_becomes_tflm_logistic_table_before_expected():
    """The table is TFLite Micro's own LOGISTIC output on every int8 input (and adaptc.luts'
    logistic, which computes it); the module, run on llvm, is TFLM bit for bit."""
    np.testing.assert_array_equal(luts.logistic(*SIG_IN), SIG_TABLE)
    assert len(np.unique(SIG_TABLE)) > 100 and SIG_TABLE.min() == -128 and SIG_TABLE.max() == 127
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), SigmoidBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, SigmoidExpected)
    x = np.random.default_rng(2).permutation(INPUTS)[None]
    np.testing.assert_array_equal(_run(after, x), T.run_tflm(T.logistic_model((1, 256), SIG_IN), x))


@I.ir_module
class HardSigmoidBefore:   # quantize(hard_sigmoid(dequantize(x))): the function ends in its own clip
    @R.function
    def main(x: R.Tensor((1, 256), "int8")) -> R.Tensor((1, 256), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            xf = R.dequantize(x, R.const(0.0625, "float32"), R.const(-10, "int32"), axis=0)
            m = R.multiply(R.const(0.25, "float32"), xf)
            a = R.add(m, R.const(0.5, "float32"))
            c = R.clip(a, 0.0, 1.0)
            q = R.quantize(c, R.const(0.00390625, "float32"), R.const(-128, "int32"), axis=0, out_dtype="int8")
            R.output(q)
        return q


def test_quantized_hard_sigmoid_is_one_table_not_a_clamp():
    """The clip that ends a hard sigmoid is the function's, not a fused activation: one qlut whose
    table is round((clip(0.25 x + 0.5, 0, 1)) * 256) - 128 saturated, the whole int8 range used."""
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), HardSigmoidBefore)
    assert tvm_compat.well_formed(after)
    [(name, func)] = _calls(after)
    assert name == "adaptc.qlut"
    a = tvm_compat.plain_attrs(func)
    assert (a["act_min"], a["act_max"], a["source"]) == (-128, 127, "hard_sigmoid")
    real = np.clip(0.25 * (INPUTS.astype(np.float64) + 10) * 0.0625 + 0.5, 0.0, 1.0)
    want = np.clip(np.floor(real * 256 + 0.5) - 128, -128, 127).astype(np.int8)   # exact: multiples of 2^-8
    assert want.min() == -128 and want.max() == 127
    np.testing.assert_array_equal(_run(after, INPUTS[None])[0], want)


# ------------------------------------------------------------------ LegalizeQDQ: MUL

# real multiplier 0.5 * 0.25 / 1.0 = 0.125 = 2^30 * 2^(-2 - 31): QuantizeMultiplier gives (2^30, -2)
MUL_Q = ((0.5, 3), (0.25, -2), (1.0, -7))


@I.ir_module
class MulBefore:   # TFLite int8 MUL, the second input broadcast over H and W
    @R.function
    def main(a: R.Tensor((1, 2, 2, 3), "int8"), b: R.Tensor((1, 1, 1, 3), "int8")) -> R.Tensor((1, 2, 2, 3), "int8"):
        R.func_attr({"num_input": 2})
        with R.dataflow():
            af = R.dequantize(a, R.const(0.5, "float32"), R.const(3, "int32"), axis=0)
            bf = R.dequantize(b, R.const(0.25, "float32"), R.const(-2, "int32"), axis=0)
            p = R.multiply(af, bf)
            q = R.quantize(p, R.const(1.0, "float32"), R.const(-7, "int32"), axis=0, out_dtype="int8")
            R.output(q)
        return q


@I.ir_module
class MulExpected:
    @R.function(private=True)
    def qmul_0(x0: R.Tensor((1, 2, 2, 3), "int8"), x1: R.Tensor((1, 1, 1, 3), "int8")) \
            -> R.Tensor((1, 2, 2, 3), "int8"):
        R.func_attr({"Composite": "adaptc.qmul", "act_max": 127, "act_min": -128, "input1_zp": 3, "input2_zp": -2,
                     "multiplier": [1 << 30], "output_scale": 1.0, "output_zp": -7, "shift": [-2],
                     "source": "mul"})
        with R.dataflow():
            # (a - 3) * (b + 2) in int32, broadcasting
            lv = R.astype(x0, "int32")
            lv1 = R.subtract(lv, R.const(3, "int32"))
            lv2 = R.astype(x1, "int32")
            lv3 = R.subtract(lv2, R.const(-2, "int32"))
            lv4 = R.multiply(lv1, lv3)
            # SRDHM(p, 2^30) (no left shift: shift < 0)
            lv5 = R.astype(lv4, "int64")
            lv6 = R.multiply(lv5, R.const(np.array([1 << 30]), "int64"))
            lv7 = R.greater_equal(lv6, R.const(0, "int64"))
            lv8 = R.where(lv7, R.const(1 << 30, "int64"), R.const(1 - (1 << 30), "int64"))
            lv9 = R.add(lv6, lv8)
            lv10 = R.right_shift(lv9, R.const(31, "int64"))
            lv11 = R.negative(lv9)
            lv12 = R.right_shift(lv11, R.const(31, "int64"))
            lv13 = R.negative(lv12)
            lv14 = R.greater_equal(lv9, R.const(0, "int64"))
            lv15 = R.where(lv14, lv10, lv13)
            lv16 = R.astype(lv15, "int32")
            # RDBPOT(., 2)
            lv17 = R.less(lv16, R.const(0, "int32"))
            lv18 = R.astype(lv17, "int32")
            lv19 = R.right_shift(R.const(np.array([3], np.int32)), R.const(1, "int32"))
            lv20 = R.add(lv19, lv18)
            lv21 = R.bitwise_and(lv16, R.const(np.array([3], np.int32)))
            lv22 = R.greater(lv21, lv20)
            lv23 = R.astype(lv22, "int32")
            lv24 = R.right_shift(lv16, R.const(np.array([2], np.int32)))
            lv25 = R.add(lv24, lv23)
            # + output_zp, clamp, int8
            lv26 = R.add(lv25, R.const(-7, "int32"))
            lv27 = R.clip(lv26, -128, 127)
            gv = R.astype(lv27, "int8")
            R.output(gv)
        return gv

    @R.function
    def main(a: R.Tensor((1, 2, 2, 3), "int8"), b: R.Tensor((1, 1, 1, 3), "int8")) -> R.Tensor((1, 2, 2, 3), "int8"):
        R.func_attr({"num_input": 2})
        cls = MulExpected
        with R.dataflow():
            q = cls.qmul_0(a, b)
            gv = q
            R.output(gv)
        return gv


def _tflm_mul_by_hand(a, b):
    """TFLM's int8 MUL of MulBefore's parameters in Python integers: p = (a - 3) * (b + 2),
    SRDHM(p, 2^30) = round(p / 2) ties up, RDBPOT(., 2) ties away from zero, - 7, clamped."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), np.int8)
    for idx in np.ndindex(out.shape):
        p = (int(a[idx]) - 3) * (int(b[(0, 0, 0, idx[3])]) + 2)
        h = (p + 1) // 2                                   # SRDHM by 2^30: (2p + 1) >> 1 in effect
        q, r = divmod(abs(h), 4)
        q = (q + (r >= 2)) * (1 if h >= 0 else -1)
        out[idx] = min(max(q - 7, -128), 127)
    return out


def test_quantized_mul_becomes_qmul_before_expected():
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), MulBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, MulExpected)
    buf = T.mul_model((1, 2, 2, 3), (1, 1, 1, 3), *MUL_Q)
    vm = tvm_compat.build_llvm(after)
    rng = np.random.default_rng(3)
    pairs = [(rng.integers(-128, 128, (1, 2, 2, 3), dtype=np.int8),
              rng.integers(-128, 128, (1, 1, 1, 3), dtype=np.int8)) for _ in range(30)]
    pairs += [(np.full((1, 2, 2, 3), v, np.int8), np.full((1, 1, 1, 3), w, np.int8)) for v in (-128, 127)
              for w in (-128, 127)]
    outs = []
    for a, b in pairs:
        got = tvm_compat.run_vm(vm, a, b)[0]
        np.testing.assert_array_equal(got, T.run_tflm(buf, a, b))
        np.testing.assert_array_equal(got, _tflm_mul_by_hand(a, b))
        outs.append(got)
    assert np.min(outs) == -128 and np.max(outs) == 127    # both saturations reached


def _mul_const_module(const_first: bool):
    """quantize(multiply(dequantize(x), dequantize(C))) with C a constant [1, 1, 1, 3] (or first)."""
    c = np.array([-100, 7, 127], np.int8).reshape(1, 1, 1, 3)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 2, 2, 3), "int8"))
    f32 = lambda v: relax.const(np.float32(v))  # noqa: E731
    i32 = lambda v: relax.const(np.int32(v))    # noqa: E731
    with bb.function("main", [x], attrs={"num_input": 1}):
        with bb.dataflow():
            xf = bb.emit(relax.op.dequantize(x, f32(0.5), i32(3), axis=0))
            cf = bb.emit(relax.op.dequantize(relax.const(c), f32(0.25), i32(-2), axis=0))
            p = bb.emit(relax.op.multiply(*((cf, xf) if const_first else (xf, cf))))
            q = bb.emit_output(relax.op.quantize(p, f32(1.0), i32(-7), axis=0, out_dtype="int8"))
        bb.emit_func_output(q)
    return bb.get(), c


def test_quantized_mul_by_a_constant_keeps_it_in_flash_as_input2():
    """Either side constant: one qmul with the activation first and the constant as its "input2"
    parameter (the zero points following their operands); TFLM's MUL with a constant second
    input bit for bit."""
    buf = None
    for const_first in (False, True):
        mod, c = _mul_const_module(const_first)
        after = tvm_compat.apply(LegalizeQDQ("t.tflite"), mod)
        assert tvm_compat.well_formed(after)
        [(name, func)] = _calls(after)
        assert name == "adaptc.qmul" and [tvm_compat.var_name(p) for p in func.params] == ["x0", "input2"]
        a = tvm_compat.plain_attrs(func)
        assert (a["input1_zp"], a["input2_zp"], a["multiplier"], a["shift"]) == (3, -2, [1 << 30], [-2])
        call = next(b.value for b in tvm_compat.bindings(after["main"]) if isinstance(b.value, relax.Call))
        np.testing.assert_array_equal(tvm_compat.constant_value(call.args[1]), c)
        buf = T.mul_model((1, 2, 2, 3), (1, 1, 1, 3), *MUL_Q, const2=c)
        vm = tvm_compat.build_llvm(after)
        for seed in range(4):
            x = np.random.default_rng(seed).integers(-128, 128, (1, 2, 2, 3), dtype=np.int8)
            got = tvm_compat.run_vm(vm, x)[0]
            np.testing.assert_array_equal(got, T.run_tflm(buf, x))
            np.testing.assert_array_equal(got, _tflm_mul_by_hand(x, c))
