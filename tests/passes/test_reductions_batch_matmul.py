"""LegalizeQDQ and FuseFloatOps on the reductions (sum, max: adaptc.qreduce / adaptc.reduce_f32)
and batched matmuls (adaptc.qbatch_matmul / adaptc.batch_matmul_f32): Before / Expected pairs,
well-formedness, and the numbers on llvm against numpy."""
from __future__ import annotations

import numpy as np
import tvm
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import fixedpoint as fxp
from adaptc import tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ


@I.ir_module
class QMaxBefore:      # TFLite int8 REDUCE_MAX over W, as TVM's importer writes it
    @R.function
    def main(x: R.Tensor((1, 3, 4, 2), "int8")) -> R.Tensor((1, 3, 2), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            d = R.dequantize(x, R.const(0.05, "float32"), R.const(-3, "int32"), out_dtype="float32", axis=0)
            m = R.max(d, axis=[2], keepdims=False)
            q = R.quantize(m, R.const(0.05, "float32"), R.const(-3, "int32"), out_dtype="int8", axis=0)
            R.output(q)
        return q


@I.ir_module
class QMaxExpected:
    @R.function(private=True)
    def qreduce_0(x0: R.Tensor((1, 3, 4, 2), "int8")) -> R.Tensor((1, 3, 2), "int8"):
        R.func_attr({"Composite": "adaptc.qreduce", "act_max": 127, "act_min": -128, "axes": [2], "count": 4,
                     "input_scale": 0.05000000074505806, "input_zp": -3, "keep_dims": False,
                     "output_scale": 0.05000000074505806, "output_zp": -3, "reduce": "max", "source": "max"})
        with R.dataflow():
            lv = R.max(x0, axis=[2], keepdims=False)
            lv1 = R.astype(lv, "int32")
            lv2 = R.clip(lv1, -128, 127)
            gv = R.astype(lv2, "int8")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 3, 4, 2), "int8")) -> R.Tensor((1, 3, 2), "int8"):
        R.func_attr({"num_input": 1})
        cls = QMaxExpected
        with R.dataflow():
            q = cls.qreduce_0(x)
            gv = q
            R.output(gv)
        return gv


def test_int8_max_becomes_qreduce_before_expected():
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), QMaxBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, QMaxExpected)
    x = np.random.default_rng(1).integers(-128, 128, (1, 3, 4, 2), dtype=np.int8)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    np.testing.assert_array_equal(got, x.max(axis=2))


@I.ir_module
class QBatchMatmulBefore:      # TFLite int8 BATCH_MATMUL of two activations
    @R.function
    def main(a: R.Tensor((2, 3, 4), "int8"), b: R.Tensor((2, 4, 5), "int8")) -> R.Tensor((2, 3, 5), "int8"):
        R.func_attr({"num_input": 2})
        with R.dataflow():
            da = R.dequantize(a, R.const(0.05, "float32"), R.const(3, "int32"), out_dtype="float32", axis=0)
            db = R.dequantize(b, R.const(0.04, "float32"), R.const(-2, "int32"), out_dtype="float32", axis=0)
            m = R.matmul(da, db)
            q = R.quantize(m, R.const(0.2, "float32"), R.const(5, "int32"), out_dtype="int8", axis=0)
            R.output(q)
        return q


def test_int8_batch_matmul_becomes_qbatch_matmul_before_expected():
    """The composite's attributes (TFLite's multiplier of 0.05 * 0.04 / 0.2) and its numbers
    against numpy's int64 arithmetic of TFLite Micro's BatchMatMul."""
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), QBatchMatmulBefore)
    assert tvm_compat.well_formed(after)
    [func] = [f for gv, f in after.functions_items() if gv.name_hint != "main"]
    a = tvm_compat.plain_attrs(func)
    mult, shift = fxp.quantize_multiplier(float(np.float32(0.05)) * float(np.float32(0.04)) / float(np.float32(0.2)))
    assert a["Composite"] == "adaptc.qbatch_matmul" and a["swap"] is False
    assert (a["lhs_zp"], a["rhs_zp"], a["multiplier"], a["shift"], a["output_zp"]) == (3, -2, [mult], [shift], 5)
    main_calls = [b.value for b in tvm_compat.bindings(after["main"]) if isinstance(b.value, tvm.relax.Call)]
    assert len(main_calls) == 1 and [str(x.name) for x in main_calls[0].args] == ["a", "b"]
    rng = np.random.default_rng(2)
    x, y = rng.integers(-128, 128, (2, 3, 4), dtype=np.int8), rng.integers(-128, 128, (2, 4, 5), dtype=np.int8)
    acc = (x.astype(np.int64) - 3) @ (y.astype(np.int64) + 2)
    want = np.clip(fxp.mbqm(acc, mult, shift) + 5, -128, 127)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x, y)[0]
    np.testing.assert_array_equal(got, want)


@I.ir_module
class FloatBefore:      # ONNX: x @ x^T, then a sum over the last axis
    @R.function
    def main(x: R.Tensor((2, 3, 4), "float32")) -> R.Tensor((2, 3), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            t = R.permute_dims(x, [0, 2, 1])
            m = R.matmul(x, t)
            s = R.sum(m, axis=[2], keepdims=False)
            R.output(s)
        return s


@I.ir_module
class FloatExpected:
    @R.function(private=True)
    def batch_matmul_f32_1(x0: R.Tensor((2, 3, 4), "float32"), x1: R.Tensor((2, 4, 3), "float32")
                           ) -> R.Tensor((2, 3, 3), "float32"):
        R.func_attr({"Composite": "adaptc.batch_matmul_f32", "act_max": float("inf"), "act_min": float("-inf"),
                     "source": "batch_matmul", "swap": False})
        with R.dataflow():
            lv = R.matmul(x0, x1)
            gv = lv
            R.output(gv)
        return gv

    @R.function(private=True)
    def reduce_f32_2(x0: R.Tensor((2, 3, 3), "float32")) -> R.Tensor((2, 3), "float32"):
        R.func_attr({"Composite": "adaptc.reduce_f32", "act_max": float("inf"), "act_min": float("-inf"),
                     "axes": [2], "count": 3, "keep_dims": False, "reduce": "sum", "source": "sum"})
        with R.dataflow():
            lv = R.sum(x0, axis=[2], keepdims=False)
            gv = lv
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((2, 3, 4), "float32")) -> R.Tensor((2, 3), "float32"):
        R.func_attr({"num_input": 1})
        cls = FloatExpected
        with R.dataflow():
            t = R.permute_dims(x, [0, 2, 1])
            m = cls.batch_matmul_f32_1(x, t)
            s = cls.reduce_f32_2(m)
            gv = s
            R.output(gv)
        return gv


def test_float_batch_matmul_and_sum_become_composites_before_expected():
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), FloatBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, FloatExpected)
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    np.testing.assert_allclose(got, (x @ x.transpose(0, 2, 1)).sum(axis=2), rtol=1e-5, atol=1e-5)
