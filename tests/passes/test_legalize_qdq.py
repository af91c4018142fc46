"""LegalizeQDQ: TFLite-importer QDQ chains -> int8 composites with TFLite's integer semantics."""
import numpy as np
import pytest
import tvm
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


# ------------------------------------------------------------------ Before / Expected (TVM's shape)
#
# The numbers in each Expected are derived by hand from TFLite's integer semantics, and the
# numeric checks spell the arithmetic out in float64 (exact for these small integers):
#   QuantizeMultiplier(r): r = M * 2^(shift - 31) with M in [2^30, 2^31);
#   SRDHM(a, M) = a * M / 2^31 rounded to nearest, ties toward +inf;
#   RDBPOT(a, e) = a / 2^e rounded to nearest, ties away from zero;
#   requantize(acc) = clamp(RDBPOT(SRDHM(acc << max(shift, 0), M), max(-shift, 0)) + out_zp).

WQ = np.array([[1, -2], [3, 4], [-5, 6], [7, -8]], np.int8).reshape(2, 2, 1, 2)    # HWIO, 1 -> 2 channels
W_SCALE = np.array([0.375, 0.1875], np.float32)                                     # per output channel
BQ = np.array([10, -20], np.int32)
B_SCALE = np.array([0.1875, 0.09375], np.float32)                                   # 0.5 * W_SCALE
# real multipliers 0.5 * 0.375 / 0.25 = 0.75 = (0.75 * 2^31) * 2^(0 - 31) and
#                  0.5 * 0.1875 / 0.25 = 0.375 = (0.75 * 2^31) * 2^(-1 - 31)
M_075 = 1610612736                                                                   # 0.75 * 2^31


@I.ir_module
class ConvBefore:      # TFLite CONV_2D (per-channel int8, int32 bias, fused RELU) as the importer writes it
    @R.function
    def main(x: R.Tensor((1, 3, 3, 1), "int8")) -> R.Tensor((1, 2, 2, 2), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            xf = R.dequantize(x, R.const(0.5, "float32"), R.const(3, "int32"), axis=0)
            wf = R.dequantize(R.const(WQ), R.const(W_SCALE), R.const(0, "int32"), axis=3)
            y = R.nn.conv2d(xf, wf, data_layout="NHWC", kernel_layout="HWIO")
            bf = R.dequantize(R.const(BQ), R.const(B_SCALE), R.const(0, "int32"), axis=0)
            z = R.add(y, bf)
            r = R.nn.relu(z)
            q = R.quantize(r, R.const(0.25, "float32"), R.const(-7, "int32"), axis=0, out_dtype="int8")
            R.output(q)
        return q


@I.ir_module
class ConvExpected:
    @R.function(private=True)
    def qconv2d_0(x0: R.Tensor((1, 3, 3, 1), "int8"), weights: R.Tensor((2, 2, 1, 2), "int8"),
                  bias: R.Tensor((2,), "int32")) -> R.Tensor((1, 2, 2, 2), "int8"):
        R.func_attr({"Composite": "adaptc.qconv2d", "act_max": 127,
                     "act_min": -7,                     # relu: the output zero point
                     "dilation": [1, 1], "groups": 1, "input_scale": 0.5, "input_zp": 3,
                     "kernel_layout": "HWIO", "multiplier": [M_075, M_075], "output_scale": 0.25,
                     "output_zp": -7, "padding": [0, 0, 0, 0], "shift": [0, -1], "source": "conv2d+bias",
                     "strides": [1, 1]})
        with R.dataflow():
            # acc = conv(x - input_zp, w) + bias, in int32
            lv = R.astype(x0, "int32")
            lv1 = R.subtract(lv, R.const(3, "int32"))
            lv2 = R.astype(weights, "int32")
            lv3 = R.nn.conv2d(lv1, lv2, data_layout="NHWC", kernel_layout="HWIO", out_dtype="int32")
            lv4 = R.add(lv3, bias)
            # SRDHM(acc, M): (acc * M + nudge) / 2^31, truncating toward zero (no left shift: shift <= 0)
            lv5 = R.astype(lv4, "int64")
            lv6 = R.multiply(lv5, R.const(np.array([M_075, M_075]), "int64"))
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
            # RDBPOT(., [0, 1]): mask = 2^e - 1, threshold = (mask >> 1) + (x < 0)
            lv17 = R.less(lv16, R.const(0, "int32"))
            lv18 = R.astype(lv17, "int32")
            lv19 = R.right_shift(R.const(np.array([0, 1], np.int32)), R.const(1, "int32"))
            lv20 = R.add(lv19, lv18)
            lv21 = R.bitwise_and(lv16, R.const(np.array([0, 1], np.int32)))
            lv22 = R.greater(lv21, lv20)
            lv23 = R.astype(lv22, "int32")
            lv24 = R.right_shift(lv16, R.const(np.array([0, 1], np.int32)))
            lv25 = R.add(lv24, lv23)
            # + output_zp, clamp to the activation range, int8
            lv26 = R.add(lv25, R.const(-7, "int32"))
            lv27 = R.clip(lv26, -7, 127)
            gv = R.astype(lv27, "int8")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 3, 3, 1), "int8")) -> R.Tensor((1, 2, 2, 2), "int8"):
        R.func_attr({"num_input": 1})
        cls = ConvExpected
        with R.dataflow():
            q = cls.qconv2d_0(x, R.const(WQ), R.const(BQ))
            gv = q
            R.output(gv)
        return gv


def _tflite_conv(x):
    """TFLite's int8 CONV_2D with ConvBefore's parameters, in float64 (exact here)."""
    xi = x[0, :, :, 0].astype(np.float64) - 3
    acc = np.array([[np.einsum("hwo,hw->o", WQ[:, :, 0, :].astype(np.float64), xi[i:i + 2, j:j + 2])
                     for j in range(2)] for i in range(2)]) + BQ
    t = np.floor(0.75 * acc + 0.5)                                  # SRDHM(acc, 0.75 * 2^31)
    t[..., 1] = np.sign(t[..., 1]) * np.floor(np.abs(t[..., 1]) / 2 + 0.5)   # RDBPOT(., 1) on channel 1
    return np.clip(t - 7, -7, 127).astype(np.int8)[None], acc, t


def test_conv_before_expected_and_tflite_rounding():
    after = tvm_compat.apply(LegalizeQDQ(), ConvBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, ConvExpected)
    vm = tvm_compat.build_llvm(after)
    xs = np.random.default_rng(5).integers(-128, 128, size=(64, 1, 3, 3, 1), dtype=np.int8)
    accs, ts = [], []
    for x in xs:
        expected, acc, t = _tflite_conv(x)
        np.testing.assert_array_equal(tvm_compat.run_vm(vm, x)[0], expected)
        accs.append(acc)
        ts.append(t)
    acc, t = np.array(accs), np.array(ts)
    # the inputs reach every rounding case the test is meant to pin down
    assert np.any((acc % 4 == 2) & (acc > 0)) and np.any((acc % 4 == 2) & (acc < 0))   # SRDHM ties
    assert np.any((t[..., 1] % 2 == 1) & (t[..., 1] < 0))                              # RDBPOT ties
    assert np.any(t - 7 < -7) and np.any(t - 7 > -7)                                   # relu clamps


@I.ir_module
class ReluBefore:      # TFLite RELU on int8: its own input and output parameters
    @R.function
    def main(x: R.Tensor((1, 256), "int8")) -> R.Tensor((1, 256), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            xf = R.dequantize(x, R.const(0.375, "float32"), R.const(3, "int32"), axis=0)
            r = R.nn.relu(xf)
            q = R.quantize(r, R.const(0.5, "float32"), R.const(-10, "int32"), axis=0, out_dtype="int8")
            R.output(q)
        return q


# TFLite int8 RELU: clamp(out_zp + MBQM(x - in_zp, 0.375 / 0.5 = 0.75), quantized 0 = out_zp, 127) for
# every x in -128..127; MBQM(d, 0.75) with shift 0 is SRDHM: d * 0.75 rounded, ties toward +inf
RELU_TABLE = np.clip(-10 + np.floor(0.75 * (np.arange(-128, 128) - 3) + 0.5), -10, 127).astype(np.int8)


@I.ir_module
class ReluExpected:
    @R.function(private=True)
    def qlut_0(x0: R.Tensor((1, 256), "int8"), table: R.Tensor((256,), "int8")) -> R.Tensor((1, 256), "int8"):
        R.func_attr({"Composite": "adaptc.qlut", "act_max": 127, "act_min": -10, "input_scale": 0.375,
                     "input_zp": 3, "output_scale": 0.5, "output_zp": -10, "source": "relu/requantize"})
        with R.dataflow():
            lv = R.astype(x0, "int32")
            lv1 = R.add(lv, R.const(128, "int32"))
            gv = R.take(table, lv1, axis=0, mode="clip")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 256), "int8")) -> R.Tensor((1, 256), "int8"):
        R.func_attr({"num_input": 1})
        cls = ReluExpected
        with R.dataflow():
            q = cls.qlut_0(x, R.const(RELU_TABLE))
            gv = q
            R.output(gv)
        return gv


def test_relu_becomes_a_table_before_expected():
    after = tvm_compat.apply(LegalizeQDQ(), ReluBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, ReluExpected)
    x = np.random.default_rng(6).permutation(np.arange(-128, 128)).astype(np.int8)[None]   # every value
    d = x.astype(np.float64) - 3
    expected = np.clip(-10 + np.floor(0.75 * d + 0.5), -10, 127)
    np.testing.assert_array_equal(_run(after, x), expected.astype(np.int8))
    assert expected.min() == -10 and np.any(d < 0) and np.any((d % 4 == 2) & (d > 0))   # clamp and ties met


@I.ir_module
class AvgPoolExpected:
    @R.function(private=True)
    def qavg_pool2d_0(x0: R.Tensor((1, 4, 6, 2), "int8"), counts: R.Tensor((2, 3, 1), "int32")) \
            -> R.Tensor((1, 2, 3, 2), "int8"):
        R.func_attr({"Composite": "adaptc.qavg_pool2d", "act_max": 127, "act_min": -128, "channels": 2,
                     "padding": [0, 0, 0, 0], "pool_size": [2, 2], "source": "avg_pool2d", "strides": [2, 2]})
        with R.dataflow():
            # window sums: a depthwise conv with a filter of ones
            lv = R.astype(x0, "int32")
            lv1 = R.nn.conv2d(lv, R.const(np.ones((2, 2, 1, 2), np.int32)), strides=[2, 2], groups=2,
                              data_layout="NHWC", kernel_layout="HWIO", out_dtype="int32")
            # sum / count rounded half away from zero: (sum + count/2) // count, or -((count/2 - sum) // count)
            lv2 = R.right_shift(counts, R.const(1, "int32"))
            lv3 = R.add(lv1, lv2)
            lv4 = R.floor_divide(lv3, counts)
            lv5 = R.subtract(lv2, lv1)
            lv6 = R.floor_divide(lv5, counts)
            lv7 = R.negative(lv6)
            lv8 = R.greater(lv1, R.const(0, "int32"))
            lv9 = R.where(lv8, lv4, lv7)
            lv10 = R.clip(lv9, -128, 127)
            gv = R.astype(lv10, "int8")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 4, 6, 2), "int8")) -> R.Tensor((1, 2, 3, 2), "int8"):
        R.func_attr({"num_input": 1})
        cls = AvgPoolExpected
        with R.dataflow():
            c = cls.qavg_pool2d_0(x, R.const(np.full((2, 3, 1), 4, np.int32)))   # 4 taps in every window
            gv = c
            R.output(gv)
        return gv


def test_avg_pool_before_expected():
    after = tvm_compat.apply(LegalizeQDQ(), AvgPoolBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, AvgPoolExpected)
    x = np.random.default_rng(7).integers(-128, 128, size=(1, 4, 6, 2), dtype=np.int8)
    np.testing.assert_array_equal(_run(after, x), _tflite_avg_pool(x))


@I.ir_module
class MaxPoolBefore:   # int8 max pool, a fused activation as an int8 clip, then a reshape
    @R.function
    def main(x: R.Tensor((1, 4, 4, 1), "int8")) -> R.Tensor((1, 4), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            p = R.nn.max_pool2d(x, pool_size=[2, 2], strides=[2, 2], layout="NHWC")
            c = R.clip(p, -20, 50)
            f = R.reshape(c, R.shape([1, 4]))
            R.output(f)
        return f


@I.ir_module
class MaxPoolExpected:
    @R.function(private=True)
    def qmax_pool2d_0(x0: R.Tensor((1, 4, 4, 1), "int8")) -> R.Tensor((1, 2, 2, 1), "int8"):
        R.func_attr({"Composite": "adaptc.qmax_pool2d", "act_max": 50, "act_min": -20, "padding": [0, 0, 0, 0],
                     "pool_size": [2, 2], "source": "max_pool2d", "strides": [2, 2]})
        with R.dataflow():
            lv = R.nn.max_pool2d(x0, pool_size=[2, 2], strides=[2, 2], layout="NHWC")
            lv1 = R.astype(lv, "int32")
            lv2 = R.clip(lv1, -20, 50)                 # the clip folded into the composite
            gv = R.astype(lv2, "int8")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 4, 4, 1), "int8")) -> R.Tensor((1, 4), "int8"):
        R.func_attr({"num_input": 1})
        cls = MaxPoolExpected
        with R.dataflow():
            p = cls.qmax_pool2d_0(x)
            f = R.reshape(p, R.shape([1, 4]))           # layout ops stay on int8
            gv = f
            R.output(gv)
        return gv


def test_max_pool_clip_reshape_before_expected():
    after = tvm_compat.apply(LegalizeQDQ(), MaxPoolBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, MaxPoolExpected)
    x = np.random.default_rng(8).integers(-128, 128, size=(1, 4, 4, 1), dtype=np.int8)
    x[0, :2, :2, 0] = [[-60, -30], [-90, -128]]      # a window whose max is below the clip
    windows = x[0, :, :, 0].astype(np.int64).reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)
    expected = np.clip(windows.max(axis=-1), -20, 50).reshape(1, 4)
    np.testing.assert_array_equal(_run(after, x), expected.astype(np.int8))
    assert expected.min() == -20 and expected.max() == 50     # both bounds clamp for this input


@I.ir_module
class MeanBefore:      # TFLite MEAN over H, W (int8) as the importer writes it
    @R.function
    def main(x: R.Tensor((1, 5, 7, 3), "int8")) -> R.Tensor((1, 3), "int8"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            xf = R.dequantize(x, R.const(0.05, "float32"), R.const(-3, "int32"), axis=0)
            m = R.mean(xf, axis=[1, 2], keepdims=False)
            q = R.quantize(m, R.const(0.025, "float32"), R.const(4, "int32"), axis=0, out_dtype="int8")
            R.output(q)
        return q


# TFLM's MEAN folds 1/count into QuantizeMultiplier(0.05 / 0.025 = 2.0) = (2^30, shift 2):
# k = min(floor(log2 35), 32, 31 + 2) = 5, M = (2^30 << 5) // 35 = 981706810, shift 2 - 5 = -3
M_MEAN, SHIFT_MEAN = (1 << 35) // 35, -3


@I.ir_module
class MeanExpected:
    @R.function(private=True)
    def qreduce_0(x0: R.Tensor((1, 5, 7, 3), "int8")) -> R.Tensor((1, 3), "int8"):
        R.func_attr({"Composite": "adaptc.qreduce", "act_max": 127, "act_min": -128, "axes": [1, 2], "count": 35,
                     "input_scale": 0.05000000074505806, "input_zp": -3, "keep_dims": False,
                     "multiplier": [M_MEAN], "output_scale": 0.02500000037252903, "output_zp": 4,
                     "reduce": "mean", "shift": [SHIFT_MEAN], "source": "mean"})
        with R.dataflow():
            # acc = sum over H, W - input_zp * count
            lv = R.astype(x0, "int32")
            lv1 = R.sum(lv, axis=[1, 2], keepdims=False)
            lv2 = R.subtract(lv1, R.const(-105, "int32"))
            # SRDHM(acc, M) (no left shift: shift < 0)
            lv3 = R.astype(lv2, "int64")
            lv4 = R.multiply(lv3, R.const(np.array([M_MEAN]), "int64"))
            lv5 = R.greater_equal(lv4, R.const(0, "int64"))
            lv6 = R.where(lv5, R.const(1 << 30, "int64"), R.const(1 - (1 << 30), "int64"))
            lv7 = R.add(lv4, lv6)
            lv8 = R.right_shift(lv7, R.const(31, "int64"))
            lv9 = R.negative(lv7)
            lv10 = R.right_shift(lv9, R.const(31, "int64"))
            lv11 = R.negative(lv10)
            lv12 = R.greater_equal(lv7, R.const(0, "int64"))
            lv13 = R.where(lv12, lv8, lv11)
            lv14 = R.astype(lv13, "int32")
            # RDBPOT(., 3)
            lv15 = R.less(lv14, R.const(0, "int32"))
            lv16 = R.astype(lv15, "int32")
            lv17 = R.right_shift(R.const(np.array([7], np.int32)), R.const(1, "int32"))
            lv18 = R.add(lv17, lv16)
            lv19 = R.bitwise_and(lv14, R.const(np.array([7], np.int32)))
            lv20 = R.greater(lv19, lv18)
            lv21 = R.astype(lv20, "int32")
            lv22 = R.right_shift(lv14, R.const(np.array([3], np.int32)))
            lv23 = R.add(lv22, lv21)
            # + output_zp, clamp, int8
            lv24 = R.add(lv23, R.const(4, "int32"))
            lv25 = R.clip(lv24, -128, 127)
            gv = R.astype(lv25, "int8")
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 5, 7, 3), "int8")) -> R.Tensor((1, 3), "int8"):
        R.func_attr({"num_input": 1})
        cls = MeanExpected
        with R.dataflow():
            q = cls.qreduce_0(x)
            gv = q
            R.output(gv)
        return gv


def _tflm_mean(x):
    """TFLM's int8 MEAN of MeanBefore's parameters, in Python integers: the sum less
    input_zp * count, then MultiplyByQuantizedMultiplier(M_MEAN, -3), + 4, clamped."""
    out = []
    for c in range(3):
        acc = int(x[0, :, :, c].astype(np.int64).sum()) + 3 * 35
        prod = acc * M_MEAN
        high = (prod + (1 << 30 if prod >= 0 else 1 - (1 << 30)))
        high = high // (1 << 31) if high >= 0 else -((-high) // (1 << 31))       # truncating
        rem, threshold = high & 7, (7 >> 1) + (high < 0)
        out.append(min(max((high >> 3) + (rem > threshold) + 4, -128), 127))
    return np.array([out], np.int8)


def test_mean_before_expected():
    after = tvm_compat.apply(LegalizeQDQ("t.tflite"), MeanBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, MeanExpected)
    rng = np.random.default_rng(7)
    xs = [rng.integers(-128, 128, size=(1, 5, 7, 3), dtype=np.int8) for _ in range(8)]
    xs += [np.full((1, 5, 7, 3), v, np.int8) for v in (-128, 127)]
    outs = [_run(after, x) for x in xs]
    for x, y in zip(xs, outs):
        np.testing.assert_array_equal(y, _tflm_mean(x))
    assert len(np.unique(np.concatenate(outs))) > 8 and np.max(outs) == 127
