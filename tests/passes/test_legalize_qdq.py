"""LegalizeQDQ: TFLite-importer QDQ chains -> int8 composites with TFLite's integer semantics."""
import numpy as np
import pytest
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import tvm_compat
from adaptc.errors import UnsupportedOperatorError
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.qops import composite_name


def _calls(mod):
    main = mod["main"]
    return [(composite_name(mod, b.value), mod[b.value.op] if composite_name(mod, b.value) else None)
            for blk in main.body.blocks for b in blk.bindings if isinstance(b.value, relax.Call)]


def _run(mod, x):
    return tvm_compat.run_vm(tvm_compat.build_llvm(mod), x)[0]


@I.ir_module
class AvgPoolBefore:  # what TVM's TFLite importer writes for a quantized AVERAGE_POOL_2D
    @R.function
    def main(x: R.Tensor((1, 4, 6, 2), "int8")) -> R.Tensor((1, 2, 3, 2), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            a = R.astype(x, "int32")
            b = R.nn.avg_pool2d(a, pool_size=[2, 2], strides=[2, 2], layout="NHWC")
            c = R.astype(b, "int8")
            R.output(c)
        return c


def _tflite_avg_pool(x):
    """TFLite reference: sum of the 2x2 window, divided by 4 rounding half away from zero."""
    s = x.astype(np.int64).reshape(1, 2, 2, 3, 2, 2).sum(axis=(2, 4))
    return np.where(s > 0, (s + 2) // 4, -((-s + 2) // 4)).astype(np.int8)


def test_avg_pool_rounds_like_tflite_not_floor():
    after = tvm_compat.apply(LegalizeQDQ(), AvgPoolBefore)
    assert tvm_compat.well_formed(after)
    calls = _calls(after)
    assert [c[0] for c in calls] == ["adaptc.qavg_pool2d"]
    assert [int(v) for v in calls[0][1].attrs["pool_size"]] == [2, 2]
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(1, 4, 6, 2), dtype=np.int8)
    x[0, :2, :2, 0] = [[1, 0], [0, 1]]       # sum 2 -> 0.5 rounds to 1 (the importer floors to 0)
    x[0, :2, :2, 1] = [[-1, 0], [0, -1]]     # sum -2 -> -0.5 rounds to -1
    expected = _tflite_avg_pool(x)
    np.testing.assert_array_equal(_run(after, x), expected)
    assert not np.array_equal(_run(AvgPoolBefore, x), expected)   # the bug the pass fixes


def _conv_module(in_scale, w_scale, out_scale, in_zp, out_zp, act=None):
    w = np.array([[[[1, -2], [3, 4]]], [[[-5, 6], [7, -8]]]], np.int8).reshape(2, 2, 1, 2)  # HWIO
    bias = np.array([10, -20], np.int32)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 3, 3, 1), "int8"))
    f32 = lambda v: relax.const(np.float32(v))  # noqa: E731
    i32 = lambda v: relax.const(np.int32(v))    # noqa: E731
    with bb.function("main", [x], attrs={"num_input": 1}):
        with bb.dataflow():
            xf = bb.emit(relax.op.dequantize(x, f32(in_scale), i32(in_zp), axis=0))
            wf = bb.emit(relax.op.dequantize(relax.const(w), relax.const(np.full(2, w_scale, np.float32)),
                                             i32(0), axis=3))
            y = bb.emit(relax.op.nn.conv2d(xf, wf, data_layout="NHWC", kernel_layout="HWIO"))
            bf = bb.emit(relax.op.dequantize(relax.const(bias), relax.const(np.full(2, in_scale * w_scale, np.float32)),
                                             i32(0), axis=0))
            y = bb.emit(relax.op.add(y, bf))
            q = bb.emit(relax.op.quantize(y, f32(out_scale), i32(out_zp), axis=0, out_dtype="int8"))
            if act:
                q = bb.emit(relax.op.clip(q, *act))
            out = bb.emit_output(q)
        bb.emit_func_output(out)
    return bb.get(), w, bias


def test_conv_multiplier_shift_and_exact_integer_result():
    # effective scale 0.5 * 0.25 / 0.125 = 1.0 = 2^30 * 2^(1 - 31): TFLite's QuantizeMultiplier(1.0)
    mod, w, bias = _conv_module(0.5, 0.25, 0.125, in_zp=3, out_zp=-7, act=(-128, 100))
    after = tvm_compat.apply(LegalizeQDQ(), mod)
    assert tvm_compat.well_formed(after)
    ((name, fn),) = _calls(after)
    assert name == "adaptc.qconv2d"
    a = fn.attrs
    assert [int(v) for v in a["multiplier"]] == [1 << 30, 1 << 30] and [int(v) for v in a["shift"]] == [1, 1]
    assert (int(a["input_zp"]), int(a["output_zp"]), int(a["act_min"]), int(a["act_max"])) == (3, -7, -128, 100)
    x = np.random.default_rng(1).integers(-128, 128, size=(1, 3, 3, 1), dtype=np.int8)
    # multiplier exactly 1: output = clamp(conv(x - zp, w) + bias + out_zp); no rounding involved
    xi = x[0, :, :, 0].astype(np.int64) - 3
    acc = np.zeros((2, 2, 2), np.int64)
    for oy in range(2):
        for ox in range(2):
            acc[oy, ox] = np.einsum("hwo,hw->o", w[:, :, 0, :].astype(np.int64), xi[oy:oy + 2, ox:ox + 2])
    expected = np.clip(acc + bias - 7, -128, 100).astype(np.int8)[None]
    np.testing.assert_array_equal(_run(after, x), expected)


def test_unsupported_float_op_names_op_and_binding():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4), "int8"))
    with bb.function("main", [x], attrs={"num_input": 1}):
        with bb.dataflow():
            xf = bb.emit(relax.op.dequantize(x, relax.const(np.float32(0.1)), relax.const(np.int32(0))))
            t = bb.emit(relax.op.tanh(xf))
            q = bb.emit_output(relax.op.quantize(t, relax.const(np.float32(0.01)), relax.const(np.int32(0)),
                                                 out_dtype="int8"))
        bb.emit_func_output(q)
    with pytest.raises(UnsupportedOperatorError, match=r"tanh.*supported:.*conv2d"):
        tvm_compat.apply(LegalizeQDQ("m.tflite"), bb.get())
