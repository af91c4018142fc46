"""QuantizeWeights: low-bit / power-of-two weights -> the QDQ form LegalizeQDQ lowers, on grids."""
import numpy as np
import pytest
import tvm
from test_fuse_float_ops import B, Before, W  # noqa: F401  (same float network)
from test_quantize_int8 import (
    LAYERS_CAL,
    LayersBefore,
    _away_from_ties,
    _round_half_away,
)
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import formats as F
from adaptc import tvm_compat
from adaptc.errors import InputError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.passes.quantize_weights import CodedWeights, QuantizeWeights
from adaptc.qops import composite_name

rng = np.random.default_rng(3)
CAL = rng.standard_normal((32, 1, 6, 6, 2)).astype(np.float32)


def _weighted(mod):
    return [mod[b.value.op] for blk in mod["main"].body.blocks for b in blk.bindings
            if composite_name(mod, b.value) in ("adaptc.qconv2d", "adaptc.qdense")]


@pytest.mark.parametrize("fmt", ["pot2", "pot3", "pot4", "pot5", "int4"])
def test_weights_on_the_grid_with_power_of_two_requantization(fmt):
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    scheme = CodedWeights(fmt)
    integer = tvm_compat.apply([QuantizeWeights(CAL, fmt, scheme=scheme), LegalizeQDQ(weight_formats=True)], fused)
    assert tvm_compat.well_formed(integer)
    main = integer["main"]
    s_in = float(main.attrs["adaptc.input_scale"])
    assert np.log2(s_in) == np.round(np.log2(s_in))                 # power-of-two activation scale
    layers = _weighted(integer)
    assert layers and [r["format"] for r in scheme.report] == [fmt] * len(layers)
    for f in layers:
        w = next(c for c in f.params[1:2])                           # the weights parameter
        assert str(f.attrs["weight_format"]) in F.FORMATS
        assert all(int(m) == 1 << 30 for m in f.attrs["multiplier"])  # scale ratios are powers of two
        assert tvm_compat.dtype_of(w.ty) in ("int8", "int16")
    for r in scheme.report:
        assert 0 <= r["error"] <= r["nearest_error"] + 1e-9          # error-correcting rounding helps
    # still a model of the float network: it runs on llvm and its top class mostly agrees
    x = rng.standard_normal((8, 1, 6, 6, 2)).astype(np.float32)
    zp = int(main.attrs["adaptc.input_zero_point"])
    vm_f, vm_q = tvm_compat.build_llvm(Before), tvm_compat.build_llvm(integer)
    agree = [np.argmax(tvm_compat.run_vm(vm_f, xi)[0]) ==
             np.argmax(tvm_compat.run_vm(vm_q, np.clip(np.round(xi / s_in) + zp, -128, 127).astype(np.int8))[0])
             for xi in x]
    assert np.mean(agree) >= (0.5 if fmt == "pot2" else 0.75)


def test_formats_per_layer_and_errors():
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    with pytest.raises(InputError, match="weight formats given"):
        tvm_compat.apply(QuantizeWeights(CAL, []), fused)
    with pytest.raises(ValueError, match="unknown weight format"):
        tvm_compat.apply(QuantizeWeights(CAL, "pot7"), fused)


# ------------------------------------------------------------------ Before / Expected (TVM's shape)
#
# QuantizeInt8's LayersBefore (conv2d 1x1 + bias + relu -> reshape -> softmax) with pot3 weights
# ({0, +-1, +-2, +-4}) and power-of-two activation scales; every number derived by hand from the
# docstrings of QuantizeWeights and adaptc.ptq.

# input range [-0.5, 191/128]: 2^ceil(log2(255/128/255)) = 1/128, zero point -128 + 0.5 * 128
POT_S_IN, POT_ZP_IN = 2.0 ** -7, -64
# per channel, the scales 2^ceil(log2(max|w| / 4)), and the next two finer ones, are tried and the
# one with the least output error kept: 127/128 -> 4 * 1/4 (error 1/128); -127/256 -> -4 * 1/8
# (error 1/256); the finer scales clip to +-4 and lose more
POT_W_Q = np.array([4, -4], np.int8).reshape(1, 1, 1, 2)
POT_W_S = np.array([2.0 ** -2, 2.0 ** -3], np.float32)
# bias correction: b + (w - s q) * mean(input) with (w - s q) = [-1/128, 1/256], then quantized at
# POT_S_IN * POT_W_S = [2^-9, 2^-10]
MEAN_IN = LAYERS_CAL.astype(np.float64).mean()
POT_B_REAL = np.array([0.25 - MEAN_IN / 128, -0.5 + MEAN_IN / 256]) * [2.0 ** 9, 2.0 ** 10]
POT_B_Q = np.round(POT_B_REAL).astype(np.int32)
POT_B_S = np.array([2.0 ** -9, 2.0 ** -10], np.float32)
# relu output range [0, 1.73]: 2^ceil(log2(1.73 / 255)) = 1/128, zero point -128
POT_S_R = 2.0 ** -7


@I.ir_module
class Pot3Expected:
    @R.function
    def main(x: R.Tensor((1, 2, 2, 1), "int8")) -> R.Tensor((1, 8), "int8"):
        R.func_attr({"adaptc.input_scale": POT_S_IN, "adaptc.input_zero_point": POT_ZP_IN,
                     "adaptc.output_scale": 1 / 256, "adaptc.output_zero_point": -128, "num_input": 1})
        with R.dataflow():
            lv = R.dequantize(R.const(POT_W_Q), R.const(POT_W_S), R.const(0, "int32"), axis=3)
            lv1 = R.dequantize(x, R.const(POT_S_IN, "float32"), R.const(POT_ZP_IN, "int32"), axis=0)
            lv2 = R.nn.conv2d(lv1, lv, data_layout="NHWC", kernel_layout="HWIO")
            lv3 = R.dequantize(R.const(POT_B_Q), R.const(POT_B_S), R.const(0, "int32"), axis=0)
            lv4 = R.add(lv2, lv3)
            lv5 = R.nn.relu(lv4)
            r = R.quantize(lv5, R.const(POT_S_R, "float32"), R.const(-128, "int32"), axis=0, out_dtype="int8")
            f = R.reshape(r, R.shape([1, 8]))
            lv6 = R.dequantize(f, R.const(POT_S_R, "float32"), R.const(-128, "int32"), axis=0)
            lv7 = R.nn.softmax(lv6, axis=-1)
            y = R.quantize(lv7, R.const(1 / 256, "float32"), R.const(-128, "int32"), axis=0, out_dtype="int8")
            gv = y
            R.output(gv)
        return gv


def _pot3_reference(xq):
    """Pot3Expected's QDQ arithmetic in float64. Up to the softmax every value is a short binary
    fraction, so float32 and float64 agree exactly."""
    xf = (xq.astype(np.float64) - POT_ZP_IN) * POT_S_IN
    v = np.maximum(xf * (POT_W_Q * POT_W_S).reshape(2) + POT_B_Q * POT_B_S.astype(np.float64), 0)
    r = np.clip(_round_half_away(v / POT_S_R) - 128, -128, 127).reshape(1, 8)
    d = (r + 128) * POT_S_R
    e = np.exp(d - d.max())
    p = e / e.sum()
    assert _away_from_ties(p * 256)
    return np.clip(_round_half_away(p * 256) - 128, -128, 127).astype(np.int8)


def test_pot3_before_expected():
    assert np.all(np.abs(POT_B_REAL % 1 - 0.5) > 1e-3)          # no tie in the bias rounding
    scheme = CodedWeights("pot3")
    after = tvm_compat.apply(QuantizeWeights(LAYERS_CAL, "pot3", scheme=scheme), LayersBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, Pot3Expected)
    (report,) = scheme.report
    assert {k: report[k] for k in ("layer", "kind", "format", "weights", "channels", "weight_bytes")} == {
        "layer": 0, "kind": "conv2d", "format": "pot3", "weights": 2, "channels": 2,
        "weight_bytes": 2}                                       # 2 x 3 bits + the straddle byte
    vm = tvm_compat.build_llvm(after)
    for xq in np.random.default_rng(11).integers(-128, 128, size=(16, 1, 2, 2, 1), dtype=np.int8):
        np.testing.assert_array_equal(tvm_compat.run_vm(vm, xq)[0], _pot3_reference(xq))


# ------------------------------------------------------------ transposed and depthwise layers


def _transpose_conv(x, w, strides, dilation, pads, groups):
    """conv_transpose, NHWC x IOHW, written as the scatter (independent of the pass's rows):
    every input pixel times the filter into the outputs it reaches; [t, l, b, r] pads cropped."""
    n, h, wd, in_c = x.shape
    _, og, k_h, k_w = w.shape
    ig = in_c // groups
    full = np.zeros((n, (h - 1) * strides[0] + (k_h - 1) * dilation[0] + 1,
                     (wd - 1) * strides[1] + (k_w - 1) * dilation[1] + 1, og * groups))
    for g in range(groups):
        ins, outs = slice(g * ig, (g + 1) * ig), slice(g * og, (g + 1) * og)
        for ky in range(k_h):
            for kx in range(k_w):
                oy, ox = ky * dilation[0], kx * dilation[1]
                full[:, oy:oy + (h - 1) * strides[0] + 1:strides[0], ox:ox + (wd - 1) * strides[1] + 1:strides[1],
                     outs] += x[..., ins] @ w[ins, :, ky, kx]
    return full[:, pads[0]:full.shape[1] - pads[2], pads[1]:full.shape[2] - pads[3]]


@pytest.mark.parametrize("fmt", ["pot2", "pot4", "int4", "pot5"])
@pytest.mark.parametrize("geometry", [((2, 2), (1, 1), [1, 1, 1, 1], 1), ((1, 2), (2, 1), [0, 1, 2, 0], 1),
                                      ((2, 2), (1, 1), [1, 1, 1, 1], 4)], ids=["s2_pad1", "dilated_asym", "depthwise"])
def test_transposed_weights_on_the_grid_and_bias_corrected(fmt, geometry):
    """A transposed convolution's IOHW weights: every value on the format's grid, one
    power-of-two scale per output channel, and the corrected bias cancels the quantization's
    mean output error on the calibration inputs -- measured by the scatter above, so the rows
    the pass builds (the filter flipped over the input with zeros between pixels) are the
    transposed convolution's."""
    strides, dilation, pads, groups = geometry
    r = np.random.default_rng(len(fmt) + groups)
    in_c = 4
    w = r.normal(0, 0.3, (in_c, 1 if groups > 1 else 3, 3, 3))
    x = np.maximum(r.normal(0.3, 1, (24, 5, 6, in_c)), 0)
    bias = r.normal(0, 0.1, w.shape[1] * groups)
    attrs = {"strides": strides, "dilation": dilation, "padding": pads, "output_padding": [0, 0], "groups": groups}
    scheme = CodedWeights(fmt)
    axis = 0 if groups > 1 else 1
    w_q, s, b = scheme.weights(0, "adaptc.transpose_conv2d_f32", w, axis, attrs, x, bias.copy())
    assert w_q.shape == w.shape and F.fits(w_q, F.get(fmt))
    assert s.shape == (w.shape[1] * groups,) and np.all(np.log2(s) == np.round(np.log2(s)))
    shape = [1] * 4
    shape[axis] = -1
    y_f = _transpose_conv(x, w, strides, dilation, pads, groups) + bias
    y_q = _transpose_conv(x, w_q * s.astype(np.float64).reshape(shape), strides, dilation, pads, groups) + b
    np.testing.assert_allclose((y_q - y_f).mean(axis=(0, 1, 2)), 0, atol=1e-9)
    assert not np.allclose(b, bias)                                   # a correction was needed
    assert scheme.report[0]["kind"] == "transpose_conv2d" and scheme.report[0]["format"] == fmt
    assert scheme.report[0]["error"] <= scheme.report[0]["nearest_error"] + 1e-9


@pytest.mark.parametrize("fmt", ["pot3", "int4"])
def test_depthwise_weights_take_the_format(fmt):
    """A depthwise convolution is quantized to the requested format (not kept int8), per output
    channel, and LegalizeQDQ marks its weight_format as for conv2d."""
    dw = np.random.default_rng(9).normal(0, 0.5, (3, 3, 2, 1)).astype(np.float32)

    @I.ir_module
    class DW:
        @R.function
        def main(x: R.Tensor((1, 6, 6, 2), "float32")) -> R.Tensor((1, 6, 6, 2), "float32"):
            with R.dataflow():
                y = R.nn.conv2d(x, R.const(dw), padding=[1, 1, 1, 1], groups=2, data_layout="NHWC",
                                kernel_layout="HWOI")
                R.output(y)
            return y

    fused = tvm_compat.apply(FuseFloatOps(), DW)
    scheme = CodedWeights(fmt)
    integer = tvm_compat.apply([QuantizeWeights(CAL, fmt, scheme=scheme), LegalizeQDQ(weight_formats=True)], fused)
    assert [(r["kind"], r["format"], r["channels"]) for r in scheme.report] == [("depthwise_conv2d", fmt, 2)]
    (f,) = _weighted(integer)
    assert int(f.attrs["groups"]) == 2 and F.get(str(f.attrs["weight_format"])).bits <= F.get(fmt).bits


# ------------------------------------------------------------ batched matmuls by a constant


@pytest.mark.parametrize("fmt", ["pot2", "pot4", "int4", "pot5"])
@pytest.mark.parametrize("shapes", [((3, 5, 6), (3, 6, 4), False), ((2, 5, 6), (1, 6, 4), False),
                                    ((2, 6, 4), (5, 6), True), ((5, 6), (6,), False)],
                         ids=["rhs_per_batch", "rhs_broadcast", "lhs_swap", "column"])
def test_matmul_constant_one_scale_on_the_grid(fmt, shapes):
    """A batched matmul's constant operand: every value on the format's grid under one
    power-of-two scale for the whole tensor (TFLite's BATCH_MATMUL takes one per operand), and
    the error-correcting rounding's output error -- measured by numpy's matmul of the calibration
    activations, independent of the pass's rows -- no larger than nearest rounding's at the same
    scale."""
    x_shape, c_shape, swap = shapes
    r = np.random.default_rng(len(fmt) + len(c_shape))
    c = r.normal(0, 0.3, c_shape)
    x = r.normal(0, 1, (40, *x_shape)) @ np.diag(r.uniform(0.2, 2.0, x_shape[-1]))   # correlated-scale inputs
    scheme = CodedWeights(fmt)
    c_q, s, b = scheme.weights(0, "adaptc.batch_matmul_f32", c, None, {"swap": swap}, x, None)
    assert c_q.shape == c.shape and F.fits(c_q, F.get(fmt)) and b is None
    assert np.ndim(s) == 0 and np.log2(float(s)) == np.round(np.log2(float(s)))
    grid = F.get(fmt).grid

    def err(q):
        cq = q * np.float64(s)
        y, yq = (np.matmul(cq if swap else x, x if swap else cq) for cq in (c, cq))
        return float(((y - yq) ** 2).sum())

    nearest = grid[np.abs(c[..., None] / np.float64(s) - grid).argmin(axis=-1)]
    assert err(c_q) <= err(nearest) * (1 + 1e-9)
    report = scheme.report[0]
    assert (report["kind"], report["format"], report["channels"]) == ("batch_matmul", fmt, 1)


@pytest.mark.parametrize("fmt", ["pot3", "pot5"])
def test_matmul_constant_takes_the_format(fmt):
    """QuantizeWeights then LegalizeQDQ(weight_formats=True): a matmul by a 3-D constant is one
    adaptc.qbatch_matmul whose constant is on the format's grid (int16 for pot5, not cast to
    int8) and marked with its weight_format; a matmul of two activations gets no mark."""
    c = np.random.default_rng(4).normal(0, 0.5, (1, 2, 3)).astype(np.float32)

    @I.ir_module
    class MM:
        @R.function
        def main(x: R.Tensor((1, 6, 6, 2), "float32")) -> R.Tensor((1, 6, 6, 6), "float32"):
            with R.dataflow():
                y = R.matmul(x, R.const(c))
                z = R.matmul(y, R.permute_dims(y, [0, 1, 3, 2]))
                R.output(z)
            return z

    fused = tvm_compat.apply(FuseFloatOps(), MM)
    scheme = CodedWeights(fmt)
    integer = tvm_compat.apply([QuantizeWeights(CAL, fmt, scheme=scheme), LegalizeQDQ(weight_formats=True)], fused)
    assert [(r["kind"], r["format"], r["channels"]) for r in scheme.report] == [("batch_matmul", fmt, 1)]
    calls = [b.value for blk in integer["main"].body.blocks for b in blk.bindings
             if composite_name(integer, b.value) == "adaptc.qbatch_matmul"]
    assert len(calls) == 2
    marks = [str(integer[v.op].attrs["weight_format"]) if "weight_format" in integer[v.op].attrs else None
             for v in calls]
    (const,) = [tvm_compat.constant_value(a) for a in calls[0].args if tvm_compat.is_constant(a)]
    assert marks[1] is None and F.get(marks[0]).bits <= F.get(fmt).bits and F.fits(const, F.get(fmt))
    if fmt == "pot5":
        assert const.dtype == np.int16
