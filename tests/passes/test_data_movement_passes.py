"""Quantization at a model's edges and ARG_MAX through the passes (issue 16).

LegalizeQDQ: a ``dequantize`` that is the model's output -> ``adaptc.dequantize`` (TFLite
DEQUANTIZE); FuseFloatOps: ``argmax`` -> ``adaptc.argmax_f32`` with int32 indices (TFLite ARG_MAX's
output type). Numbers are checked against TFLite Micro and NumPy, never against adaptc's own output.
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


def _run(mod, *xs):
    return tvm_compat.run_vm(tvm_compat.build_llvm(mod), *xs)[0]


@I.ir_module
class DequantizeBefore:   # TFLite DEQUANTIZE as the last operator, as TVM's importer writes it
    @R.function
    def main(x: R.Tensor((1, 10), "int8")) -> R.Tensor((1, 10), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            y = R.dequantize(x, R.const(0.25, "float32"), R.const(-3, "int32"), axis=0)
            R.output(y)
        return y


@I.ir_module
class DequantizeExpected:
    @R.function(private=True)
    def dequantize_0(x0: R.Tensor((1, 10), "int8")) -> R.Tensor((1, 10), "float32"):
        R.func_attr({"Composite": "adaptc.dequantize", "input_scale": 0.25, "input_zp": -3, "source": "dequantize"})
        with R.dataflow():
            lv = R.astype(x0, "int32")
            lv1 = R.subtract(lv, R.const(-3, "int32"))
            lv2 = R.astype(lv1, "float32")
            gv = R.multiply(lv2, R.const(0.25, "float32"))
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 10), "int8")) -> R.Tensor((1, 10), "float32"):
        R.func_attr({"num_input": 1})
        cls = DequantizeExpected
        with R.dataflow():
            y = cls.dequantize_0(x)
            gv = y
            R.output(gv)
        return gv


def test_output_dequantize_becomes_composite_before_expected():
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), DequantizeBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, DequantizeExpected)
    x = np.array([[-128, -100, -3, -2, 0, 1, 7, 64, 100, 127]], np.int8)
    buf = T.data_movement_model((1, 10), np.int8, (0.25, -3), [("DEQUANTIZE", np.float32, None, {})])
    np.testing.assert_array_equal(_run(after, x), T.run_tflm(buf, x))


@I.ir_module
class ArgmaxBefore:       # float ARG_MAX over the channels (Relax's argmax gives int64)
    @R.function
    def main(x: R.Tensor((1, 4, 5, 3), "float32")) -> R.Tensor((1, 4, 5), "int64"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            y = R.argmax(x, axis=3, keepdims=False)
            R.output(y)
        return y


@I.ir_module
class ArgmaxExpected:
    @R.function(private=True)
    def argmax_f32_0(x0: R.Tensor((1, 4, 5, 3), "float32")) -> R.Tensor((1, 4, 5), "int32"):
        R.func_attr({"Composite": "adaptc.argmax_f32", "axis": 3, "source": "arg_max"})
        with R.dataflow():
            lv = R.argmax(x0, axis=3, keepdims=False)
            gv = R.astype(lv, "int32")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 4, 5, 3), "float32")) -> R.Tensor((1, 4, 5), "int32"):
        R.func_attr({"num_input": 1})
        cls = ArgmaxExpected
        with R.dataflow():
            y = cls.argmax_f32_0(x)
            gv = y
            R.output(gv)
        return gv


def test_argmax_becomes_int32_composite_before_expected():
    after = tvm_compat.apply(FuseFloatOps("t.tflite"), ArgmaxBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, ArgmaxExpected)
    x = np.random.default_rng(0).integers(-2, 3, (1, 4, 5, 3)).astype(np.float32)   # ties: the first wins
    got = _run(after, x)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.argmax(x, axis=3))
