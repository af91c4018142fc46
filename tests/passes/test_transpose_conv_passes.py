"""The passes on transposed convolutions: FuseFloatOps (conv2d_transpose [+ bias] [+ act] ->
adaptc.transpose_conv2d_f32), ToNHWC (an NCHW conv2d_transpose becomes NHWC with its IOHW filter),
LegalizeQDQ (the QDQ form -> adaptc.qtranspose_conv2d) and QuantizeInt8 (the float composite ->
the QDQ form): Before / Expected pairs, well-formedness, and the numbers on llvm."""
from __future__ import annotations

import numpy as np
import tvm
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import fixedpoint as fxp
from adaptc import tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.passes.quantize_int8 import QuantizeInt8
from adaptc.passes.to_nhwc import ToNHWC

W = (np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 11.5) / 8.0     # IOHW
B = np.array([0.5, -1.0, 0.25], np.float32)


def scatter(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """A VALID transposed convolution of an NHWC input and an IOHW filter, in float64."""
    n, h, wd, _ = x.shape
    k = w.shape[2]
    out = np.zeros((n, (h - 1) * stride + k, (wd - 1) * stride + k, w.shape[1]))
    for i in range(h):
        for j in range(wd):
            out[:, i * stride:i * stride + k, j * stride:j * stride + k, :] += np.einsum("nc,cohw->nhwo", x[:, i, j],
                                                                                        w)
    return out


@I.ir_module
class FloatBefore:
    @R.function
    def main(x: R.Tensor((1, 2, 2, 2), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d_transpose(x, R.const(W), strides=[2, 2], data_layout="NHWC", kernel_layout="IOHW")
            b = R.add(c, R.const(B))
            r = R.clip(b, 0.0, 6.0)
            R.output(r)
        return r


@I.ir_module
class FloatExpected:
    @R.function(private=True)
    def transpose_conv2d_f32_0(x0: R.Tensor((1, 2, 2, 2), "float32"), weights: R.Tensor((2, 3, 2, 2), "float32"),
                               bias: R.Tensor((3,), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"Composite": "adaptc.transpose_conv2d_f32", "act_max": 6.0, "act_min": 0.0, "dilation": [1, 1],
                     "groups": 1, "kernel_layout": "IOHW", "output_padding": [0, 0], "padding": [0, 0, 0, 0],
                     "source": "transpose_conv+bias+act", "strides": [2, 2]})
        with R.dataflow():
            lv = R.permute_dims(x0, axes=[0, 3, 1, 2])
            lv1 = R.nn.conv2d_transpose(lv, weights, strides=[2, 2], data_layout="NCHW", kernel_layout="IOHW",
                                        out_dtype="float32")
            lv2 = R.permute_dims(lv1, axes=[0, 2, 3, 1])
            lv3 = R.add(lv2, bias)
            gv = R.clip(lv3, 0.0, 6.0)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 2, 2, 2), "float32")) -> R.Tensor((1, 4, 4, 3), "float32"):
        R.func_attr({"num_input": 1})
        cls = FloatExpected
        with R.dataflow():
            r = cls.transpose_conv2d_f32_0(x, R.const(W), R.const(B))
            gv = r
            R.output(gv)
        return gv


def test_float_transpose_conv_becomes_composite_before_expected():
    after = tvm_compat.apply(FuseFloatOps(), FloatBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, FloatExpected)
    x = np.random.default_rng(1).standard_normal((1, 2, 2, 2)).astype(np.float32) * 6
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    want = np.clip(scatter(x.astype(np.float64), W.astype(np.float64), 2) + B, 0.0, 6.0)
    assert want.min() == 0.0 and want.max() == 6.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@I.ir_module
class NCHWBefore:      # ONNX ConvTranspose as the importer writes it
    @R.function
    def main(x: R.Tensor((1, 2, 2, 2), "float32")) -> R.Tensor((1, 3, 4, 4), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d_transpose(x, R.const(W), strides=[2, 2])
            r = R.nn.relu(c)
            R.output(r)
        return r


@I.ir_module
class NCHWExpected:
    @R.function
    def main(x: R.Tensor((1, 2, 2, 2), "float32")) -> R.Tensor((1, 3, 4, 4), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            lv = R.permute_dims(x, axes=[0, 2, 3, 1])
            lv1 = R.nn.conv2d_transpose(lv, R.const(W), strides=[2, 2], data_layout="NHWC", kernel_layout="IOHW",
                                        out_layout="NHWC")
            lv2 = R.nn.relu(lv1)
            r = R.permute_dims(lv2, axes=[0, 3, 1, 2])
            R.output(r)
        return r


def test_to_nhwc_converts_transposed_convolutions_before_expected():
    after = tvm_compat.apply(ToNHWC(), NCHWBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, NCHWExpected)


WQ = np.arange(-12, 12, dtype=np.int8).reshape(2, 3, 2, 2)          # IOHW int8
W_SCALE = np.array([0.01, 0.02, 0.04], np.float32)
BQ = np.array([100, -200, 300], np.int32)


@I.ir_module
class QBefore:      # TFLite int8 TRANSPOSE_CONV as adaptc's importer writes it
    @R.function
    def main(x: R.Tensor((1, 2, 2, 2), "int8")) -> R.Tensor((1, 4, 4, 3), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            d = R.dequantize(x, R.const(0.05, "float32"), R.const(-3, "int32"), out_dtype="float32", axis=0)
            w = R.dequantize(R.const(WQ), R.const(W_SCALE), R.const(0, "int32"), out_dtype="float32", axis=1)
            c = R.nn.conv2d_transpose(d, w, strides=[2, 2], data_layout="NHWC", kernel_layout="IOHW",
                                      out_dtype="float32")
            b = R.dequantize(R.const(BQ), R.const(W_SCALE * np.float32(0.05)), R.const(0, "int32"),
                             out_dtype="float32", axis=0)
            a = R.add(c, b)
            q = R.quantize(a, R.const(0.1, "float32"), R.const(5, "int32"), out_dtype="int8", axis=0)
            R.output(q)
        return q


def test_int8_transpose_conv_becomes_qtranspose_conv2d():
    """The composite's attributes (TFLite's per-channel multipliers of 0.05 * s / 0.1) and its
    numbers against numpy's int64 arithmetic of TFLite Micro's TransposeConv."""
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), QBefore)
    assert tvm_compat.well_formed(after)
    [func] = [f for gv, f in after.functions_items() if gv.name_hint != "main"]
    a = tvm_compat.plain_attrs(func)
    mult, shift = fxp.quantize_multipliers([float(np.float32(0.05)) * float(s) / float(np.float32(0.1))
                                            for s in W_SCALE])
    assert a["Composite"] == "adaptc.qtranspose_conv2d"
    assert (a["input_zp"], a["output_zp"], a["strides"], a["padding"], a["groups"]) == (-3, 5, [2, 2], [0] * 4, 1)
    assert a["multiplier"] == [int(m) for m in mult] and a["shift"] == [int(s) for s in shift]
    [call] = [b.value for b in tvm_compat.bindings(after["main"]) if isinstance(b.value, tvm.relax.Call)]
    np.testing.assert_array_equal(tvm_compat.constant_value(call.args[1]), WQ)
    np.testing.assert_array_equal(tvm_compat.constant_value(call.args[2]), BQ)
    x = np.random.default_rng(2).integers(-128, 128, (1, 2, 2, 2), dtype=np.int8)
    acc = scatter(x.astype(np.int64) + 3, WQ.astype(np.int64), 2).astype(np.int64) + BQ
    want = np.clip(fxp.mbqm(acc, mult, shift) + 5, -128, 127)
    np.testing.assert_array_equal(tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0], want)


def test_quantize_int8_writes_the_qdq_form_legalize_qdq_takes():
    """QuantizeInt8 on the float composite: weights per output channel (axis 1 of IOHW), an int32
    bias, then LegalizeQDQ -> one adaptc.qtranspose_conv2d close to the float layer."""
    fused = tvm_compat.apply(FuseFloatOps(), FloatBefore)
    rng = np.random.default_rng(3)
    cal = rng.standard_normal((16, 1, 2, 2, 2)).astype(np.float32)
    qdq = tvm_compat.apply(QuantizeInt8(cal), fused)
    ops = {tvm_compat.op_name(b.value) for b in tvm_compat.bindings(qdq["main"])}
    assert "relax.nn.conv2d_transpose" in ops
    [w_dq] = [b.value for b in tvm_compat.bindings(qdq["main"]) if tvm_compat.op_name(b.value) == "relax.dequantize"
              and tvm_compat.is_constant(b.value.args[0]) and b.value.args[0].ty.ndim == 4]
    assert int(w_dq.attrs.axis) == 1
    after = tvm_compat.apply(LegalizeQDQ(), qdq)
    calls = [b.value for b in tvm_compat.bindings(after["main"]) if isinstance(b.value, tvm.relax.Call)]
    assert [str(after[c.op].attrs["Composite"]) for c in calls] == ["adaptc.qtranspose_conv2d"]
    a = after["main"].attrs
    x = cal[0]
    xq = np.clip(np.round(x / a["adaptc.input_scale"]) + int(a["adaptc.input_zero_point"]), -128, 127).astype(np.int8)
    y = tvm_compat.run_vm(tvm_compat.build_llvm(after), xq)[0].astype(np.float64)
    y = (y - int(a["adaptc.output_zero_point"])) * float(a["adaptc.output_scale"])
    want = tvm_compat.run_vm(tvm_compat.build_llvm(fused), x)[0]
    assert np.abs(y - want).max() < 0.1
