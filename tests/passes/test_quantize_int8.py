"""QuantizeInt8: post-training int8 (TFLite scheme) -> QDQ form that LegalizeQDQ lowers exactly."""
import numpy as np
import pytest
import tvm
from test_fuse_float_ops import B, Before, W  # noqa: F401  (same float network)
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import tvm_compat
from adaptc.errors import InputError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.passes.quantize_int8 import HISTOGRAM_BINS, Histogram, QuantizeInt8, _qparams, mse_range
from adaptc.qops import composite_name

rng = np.random.default_rng(2)
CAL = rng.standard_normal((16, 1, 6, 6, 2)).astype(np.float32)


def test_qparams_tflite_scheme():
    scale, zp = _qparams(-1.0, 3.0)          # range 4 over 255 steps; real 0 must be exact
    assert np.isclose(scale, 4 / 255) and zp == -128 + round(1.0 / (4 / 255))
    assert _qparams(0.5, 2.0)[1] == -128      # range widened to include 0
    assert _qparams(0.0, 0.0) == (np.float32(1 / 255), -128)


def test_weights_per_channel_and_close_to_float():
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    qdq = tvm_compat.apply(QuantizeInt8(CAL), fused)
    main = qdq["main"]
    assert tvm_compat.dtype_of(main.params[0].ty) == "int8"
    s_in, zp_in = float(main.attrs["adaptc.input_scale"]), int(main.attrs["adaptc.input_zero_point"])
    assert np.isclose(s_in, (CAL.max() - min(CAL.min(), 0)) / 255, rtol=1e-6)
    integer = tvm_compat.apply(LegalizeQDQ(), qdq)
    conv = next(integer[b.value.op] for blk in integer["main"].body.blocks for b in blk.bindings
                if composite_name(integer, b.value) == "adaptc.qconv2d")
    assert len(conv.attrs["multiplier"]) == 4   # per output channel
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    xq = np.clip(np.round(x / s_in) + zp_in, -128, 127).astype(np.int8)
    ref = tvm_compat.run_vm(tvm_compat.build_llvm(Before), x)[0]
    y = tvm_compat.run_vm(tvm_compat.build_llvm(integer), xq)[0]
    prob = (y.astype(np.float32) + 128) / 256     # softmax output: scale 1/256, zero point -128
    assert np.abs(prob - ref).max() < 0.05        # int8 end to end, 4 classes


def test_calibration_shape_is_checked():
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    with pytest.raises(InputError, match=r"calibration data must have shape \(N, 1, 6, 6, 2\)"):
        tvm_compat.apply(QuantizeInt8(np.zeros((4, 3, 3), np.float32), "net.onnx"), fused)


# ------------------------------------------------------------------ Before / Expected (TVM's shape)
#
# FuseFloatOps' form of conv2d(1x1, 1 -> 2 channels) + bias + relu -> reshape -> softmax. Every
# number is a short binary fraction, so each quantization parameter below is derived by hand from
# the scheme in QuantizeInt8's docstring, and the float arithmetic in the check is exact.

W_F = np.array([127 / 128, -127 / 256], np.float32).reshape(1, 1, 1, 2)     # HWIO
B_F = np.array([0.25, -0.5], np.float32)


@I.ir_module
class LayersBefore:
    @R.function(private=True)
    def conv2d_f32_0(x0: R.Tensor((1, 2, 2, 1), "float32"), weights: R.Tensor((1, 1, 1, 2), "float32"),
                     bias: R.Tensor((2,), "float32")) -> R.Tensor((1, 2, 2, 2), "float32"):
        R.func_attr({"Composite": "adaptc.conv2d_f32", "act_max": float("inf"), "act_min": 0.0, "dilation": [1, 1],
                     "groups": 1, "kernel_layout": "HWIO", "padding": [0, 0, 0, 0], "source": "conv2d+bias+act",
                     "strides": [1, 1]})
        with R.dataflow():
            lv = R.nn.conv2d(x0, weights, data_layout="NHWC", kernel_layout="HWIO")
            lv1 = R.add(lv, bias)
            gv = R.clip(lv1, 0.0, float("inf"))
            R.output(gv)
        return gv

    @R.function(private=True)
    def softmax_f32_2(x0: R.Tensor((1, 8), "float32")) -> R.Tensor((1, 8), "float32"):
        R.func_attr({"Composite": "adaptc.softmax_f32", "beta": 1.0, "source": "softmax"})
        with R.dataflow():
            gv = R.nn.softmax(x0, axis=-1)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 2, 2, 1), "float32")) -> R.Tensor((1, 8), "float32"):
        R.func_attr({"num_input": 1})
        cls = LayersBefore
        with R.dataflow():
            r = cls.conv2d_f32_0(x, R.const(W_F), R.const(B_F))
            f = R.reshape(r, R.shape([1, 8]))
            y = cls.softmax_f32_2(f)
            R.output(y)
        return y


# calibration inputs: multiples of 1/128 in [-0.5, 191/128], both ends present
LAYERS_CAL = (np.random.default_rng(9).integers(-64, 192, size=(8, 1, 2, 2, 1)) / 128).astype(np.float32)
LAYERS_CAL[0, 0, 0, :, 0] = [-64 / 128, 191 / 128]
S_IN, ZP_IN = 2.0 ** -7, -64                    # (191 + 64) / 128 / 255 = 1/128; -128 - (-0.5) * 128
W_Q = np.array([127, -127], np.int8).reshape(1, 1, 1, 2)
W_S = np.array([2.0 ** -7, 2.0 ** -8], np.float32)          # max |w| / 127 per output channel
B_Q = np.array([4096, -16384], np.int32)                     # bias / (S_IN * W_S) = bias * [2^14, 2^15]
B_S = np.array([2.0 ** -14, 2.0 ** -15], np.float32)
# relu output range [0, 191/128 * 127/128 + 1/4] (channel 1 is never positive); zero point -128
S_R = np.float32((191 * 127 + 4096) / 16384 / 255)
S_SOFTMAX = np.float32(1 / 256)


@I.ir_module
class LayersExpected:
    @R.function
    def main(x: R.Tensor((1, 2, 2, 1), "int8")) -> R.Tensor((1, 8), "int8"):
        R.func_attr({"adaptc.input_scale": float(S_IN), "adaptc.input_zero_point": ZP_IN,
                     "adaptc.output_scale": float(S_SOFTMAX), "adaptc.output_zero_point": -128, "num_input": 1})
        with R.dataflow():
            # conv2d: quantize(relu(conv(dq(x), dq(W)) + dq(b)))
            lv = R.dequantize(R.const(W_Q), R.const(W_S), R.const(0, "int32"), axis=3)
            lv1 = R.dequantize(x, R.const(S_IN, "float32"), R.const(ZP_IN, "int32"), axis=0)
            lv2 = R.nn.conv2d(lv1, lv, data_layout="NHWC", kernel_layout="HWIO")
            lv3 = R.dequantize(R.const(B_Q), R.const(B_S), R.const(0, "int32"), axis=0)
            lv4 = R.add(lv2, lv3)
            lv5 = R.nn.relu(lv4)
            r = R.quantize(lv5, R.const(S_R, "float32"), R.const(-128, "int32"), axis=0, out_dtype="int8")
            # reshape on the int8 tensor
            f = R.reshape(r, R.shape([1, 8]))
            # softmax: output at 1/256, zero point -128
            lv6 = R.dequantize(f, R.const(S_R, "float32"), R.const(-128, "int32"), axis=0)
            lv7 = R.nn.softmax(lv6, axis=-1)
            y = R.quantize(lv7, R.const(S_SOFTMAX, "float32"), R.const(-128, "int32"), axis=0, out_dtype="int8")
            gv = y
            R.output(gv)
        return gv


def _round_half_away(v):
    """relax.quantize's rounding (te.round = llvm.round): nearest, ties away from zero."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _away_from_ties(v):
    """True when no value is within 1e-3 of a rounding tie, so float32 vs float64 cannot matter."""
    return bool(np.all(np.abs(np.abs(v) % 1 - 0.5) > 1e-3))


def _qdq_reference(xq):
    """LayersExpected's QDQ arithmetic in float64 (conv2d 1x1: one product per output)."""
    xf = (xq.astype(np.float64) - ZP_IN) * S_IN
    v = np.maximum(xf * W_F.reshape(2).astype(np.float64) + B_F, 0)
    assert _away_from_ties(v / np.float64(S_R))
    r = np.clip(_round_half_away(v / np.float64(S_R)) - 128, -128, 127).reshape(1, 8)
    d = (r + 128) * np.float64(S_R)
    e = np.exp(d - d.max())
    p = e / e.sum()
    assert _away_from_ties(p * 256)
    return np.clip(_round_half_away(p * 256) - 128, -128, 127).astype(np.int8)


def test_layers_before_expected():
    after = tvm_compat.apply(QuantizeInt8(LAYERS_CAL), LayersBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, LayersExpected)
    vm = tvm_compat.build_llvm(after)
    for xq in np.random.default_rng(10).integers(-128, 128, size=(16, 1, 2, 2, 1), dtype=np.int8):
        np.testing.assert_array_equal(tvm_compat.run_vm(vm, xq)[0], _qdq_reference(xq))


# ------------------------------------------------------------------ MSE-optimal activation ranges


def _fake_quant_sse(v, scale, zp):
    """Sum of squared errors of int8 quantize -> dequantize, in float64 (the reference)."""
    q = np.clip(np.round(v / np.float64(scale)) + zp, -128, 127)
    return float(np.sum(((q - zp) * np.float64(scale) - v) ** 2))


def _with_outliers(seed=3):
    r = np.random.default_rng(seed)
    v = r.standard_normal(200_000)
    v[:8] = [40.0, -35.0, 30.0, 25.0, -20.0, 18.0, 22.0, -28.0]       # a few outliers blow up min/max
    return v


def test_histogram_squared_error_is_the_quantization_error():
    v = _with_outliers()
    hist = Histogram(v.min(), v.max(), HISTOGRAM_BINS)
    hist.add(np.concatenate([v, np.zeros(1000)]))                        # exact zeros: never an error
    assert hist.zeros == 1000
    for lo, hi in [(v.min(), v.max()), (-4.0, 4.0), (-2.0, 3.0), (-0.5, 0.5)]:
        s, zp = _qparams(lo, hi)
        np.testing.assert_allclose(hist.squared_error([(s, zp)])[0], _fake_quant_sse(v, s, zp), rtol=0.05)


def test_mse_range_beats_min_max_on_outliers():
    v = _with_outliers()
    hist = Histogram(v.min(), v.max(), HISTOGRAM_BINS)
    hist.add(v)
    lo, hi = mse_range(hist, _qparams)
    chosen = _fake_quant_sse(v, *_qparams(lo, hi))
    assert chosen < _fake_quant_sse(v, *_qparams(v.min(), v.max())) / 1.3
    # against a brute-force search of symmetric clipping ranges, computed by numpy alone
    best = min(_fake_quant_sse(v, *_qparams(-c, c)) for c in np.linspace(1, 40, 391))
    assert chosen < best * 1.05
    assert -35 < lo < hi < 40


def test_mse_range_keeps_min_max_when_nothing_clips_better():
    v = np.repeat(np.linspace(0, 1, 256), 10)                  # uniform on the grid's own span
    hist = Histogram(v.min(), v.max(), HISTOGRAM_BINS)
    hist.add(v)
    assert mse_range(hist, _qparams) == (0.0, 1.0)


def test_quantize_int8_mse_ranges():
    """ranges="mse": the input's parameters are mse_range's over the calibration values (a
    heavy-tailed input, so that they differ from min/max's), and the int8 module still works."""
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    cal = np.random.default_rng(2).standard_t(2, (64, 1, 6, 6, 2)).astype(np.float32)
    qdq = tvm_compat.apply(QuantizeInt8(cal, ranges="mse"), fused)
    main = qdq["main"]
    s_in, zp_in = float(main.attrs["adaptc.input_scale"]), int(main.attrs["adaptc.input_zero_point"])
    hist = Histogram(cal.min(), cal.max(), HISTOGRAM_BINS)
    hist.add(cal)
    expected = _qparams(*mse_range(hist, _qparams))
    assert (np.float32(s_in), zp_in) == expected and expected != _qparams(cal.min(), cal.max())
    minmax = tvm_compat.apply(QuantizeInt8(cal), fused)["main"]
    assert np.isclose(float(minmax.attrs["adaptc.input_scale"]), (cal.max() - min(cal.min(), 0)) / 255, rtol=1e-6)
    v = cal.astype(np.float64).ravel()
    assert _fake_quant_sse(v, s_in, zp_in) < _fake_quant_sse(v, *_qparams(cal.min(), cal.max()))
    integer = tvm_compat.apply(LegalizeQDQ(), qdq)
    vm_i = tvm_compat.build_llvm(integer)
    ref = tvm_compat.build_llvm(Before)
    for x in np.random.default_rng(3).standard_t(2, (4, 1, 6, 6, 2)).astype(np.float32):   # drawn like cal
        xq = np.clip(np.round(x / s_in) + zp_in, -128, 127).astype(np.int8)
        y = tvm_compat.run_vm(vm_i, xq)[0]
        assert np.abs((y.astype(np.float32) + 128) / 256 - tvm_compat.run_vm(ref, x)[0]).max() < 0.1
    with pytest.raises(InputError, match="activation ranges"):
        QuantizeInt8(cal, ranges="kl")
