"""Single-operator models (tests/tflite_ops.py) through ``adaptc.api.compile``.

int8: the generated C (``m.run``) and the Relax reference (``m.reference``) are bit-exact with
TFLite Micro. float32: both agree with LiteRT's reference kernels within 1e-5 (abs + rel).

ADD has two graph inputs in ``tflite_ops.add_model``; the C entry point takes one input, so
``api.compile`` refuses it (TargetError, tested below) and ADD is tested through a residual
two-operator model built with tflite_ops' model builder: ``y = ADD(x, CONV_1x1(x))``.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import adaptc.api as api
import tflite_ops as T
from adaptc.errors import TargetError, UnsupportedOperatorError

N_INPUTS = 4


@dataclass
class Case:
    id: str
    build: Callable[[np.random.Generator], bytes]
    input_shape: tuple[int, ...]
    saturates: bool = False        # the case is built to drive outputs to -128 and 127
    min_distinct: int = 4          # sanity check on the test itself: the output is not constant
    marks: object = ()


# ------------------------------------------------------------------------------- helpers

def _w(rng, shape):
    return rng.integers(-127, 128, size=shape, dtype=np.int8)


def _bias(rng, n, mag=2000):
    return rng.integers(-mag, mag + 1, size=n).astype(np.int32)


def _wscales(rng, n):
    return rng.uniform(0.004, 0.03, size=n).astype(np.float32)


def _out_scale(in_scale, w_scales, k, shrink=1.0):
    """An output scale for which ~3 standard deviations of a random accumulator fill int8."""
    return float(in_scale * float(np.mean(w_scales)) * np.sqrt(k) * 126.0 / shrink)


def conv(shape, o, kh, kw, in_q=(0.05, -3), out_zp=2, stride=1, dilation=1, padding="SAME",
         activation="NONE", shrink=1.0, per_channel=True):
    def build(rng):
        ci = shape[3]
        ws = _wscales(rng, o) if per_channel else np.full(o, 0.01, np.float32)
        out_s = _out_scale(in_q[0], ws, kh * kw * ci, shrink)
        return T.conv2d_model(shape, _w(rng, (o, kh, kw, ci)), _bias(rng, o), in_q,
                              T.QParams(ws, 0), (out_s, out_zp), stride=stride, dilation=dilation,
                              padding=padding, activation=activation)
    return with_macs(build, kh * kw * shape[3])


def dwconv(shape, mult, kh, kw, in_q=(0.05, 4), out_zp=-7, stride=1, dilation=1, padding="SAME",
           activation="NONE", shrink=1.0):
    def build(rng):
        oc = shape[3] * mult
        ws = _wscales(rng, oc)
        out_s = _out_scale(in_q[0], ws, kh * kw, shrink)
        return T.depthwise_conv2d_model(shape, _w(rng, (1, kh, kw, oc)), _bias(rng, oc), in_q,
                                        T.QParams(ws, 0), (out_s, out_zp), depth_multiplier=mult,
                                        stride=stride, dilation=dilation, padding=padding,
                                        activation=activation)
    return with_macs(build, kh * kw)


def fc(shape, o, in_q=(0.04, 1), out_zp=-3, activation="NONE", shrink=1.0):
    def build(rng):
        k = int(np.prod(shape[1:]))
        out_s = _out_scale(in_q[0], [0.01], k, shrink)
        return T.fully_connected_model(shape, _w(rng, (o, k)), _bias(rng, o), in_q, (0.01, 0),
                                       (out_s, out_zp), activation=activation)
    return with_macs(build, int(np.prod(shape[1:])))


def residual_add(shape, in_q, mid_q, out_q, activation="NONE"):
    """y = ADD(x, CONV_1x1(x)): one graph input, ADD of two activations with their own qparams."""
    def build(rng):
        c = shape[3]
        mb = T._ModelBuilder("adaptc test: int8 residual ADD")
        in_q_, mid_q_, out_q_ = T.QParams(*in_q), T.QParams(*mid_q), T.QParams(*out_q)
        wq = T.QParams(_wscales(rng, c), np.zeros(c, np.int64), 0)
        x = mb.input(shape, np.int8, "input", in_q_)
        wt = mb.const(_w(rng, (c, 1, 1, c)), "filter", wq)
        bt = mb.const(_bias(rng, c), "bias", T._bias_q(in_q_, wq))
        mid = mb.tensor(shape, np.int8, "conv_out", mid_q_)
        mb.op(T._OP.CONV_2D, 3, [x, wt, bt], [mid], T._OPT.Conv2DOptions,
              T._conv_opts(1, 1, "SAME", "NONE"))
        y = mb.output(shape, np.int8, "output", out_q_)
        mb.op(T._OP.ADD, 2, [x, mid], [y], T._OPT.AddOptions, T._add_opts(activation))
        return mb.finish()
    return with_macs(build, shape[3])   # the 1x1 conv


def reshape_then(shape, new_shape, q, then):
    """RESHAPE followed by ``then`` (``"softmax"`` or ``"fc"``): the consumer must see the
    reshaped geometry."""
    def build(rng):
        mb = T._ModelBuilder("adaptc test: int8 RESHAPE + op")
        q_ = T.QParams(*q)
        mid_shape = T._resolve_shape(shape, new_shape)
        x = mb.input(shape, np.int8, "input", q_)
        s = mb.const(np.asarray(mid_shape, np.int32), "shape")
        mid = mb.tensor(mid_shape, np.int8, "reshaped", q_)
        mb.op(T._OP.RESHAPE, 1, [x, s], [mid], T._OPT.ReshapeOptions, T._reshape_opts(mid_shape))
        if then == "softmax":
            y = mb.output(mid_shape, np.int8, "output", T.QParams(*SM_OUT))
            mb.op(T._OP.SOFTMAX, 2, [mid], [y], T._OPT.SoftmaxOptions, T._softmax_opts(1.0))
        else:
            o, k = 5, mid_shape[-1]
            wt = mb.const(_w(rng, (o, k)), "weights", T.QParams(0.01, 0))
            bt = mb.const(_bias(rng, o), "bias", T._bias_q(q_, T.QParams(0.01, 0)))
            y = mb.output((mid_shape[0], o), np.int8, "output", T.QParams(_out_scale(q[0], [0.01], k), 3))
            mb.op(T._OP.FULLY_CONNECTED, 4, [mid, wt, bt], [y], T._OPT.FullyConnectedOptions, T._fc_opts("NONE"))
        return mb.finish()
    return with_macs(build, T._resolve_shape(shape, new_shape)[-1] if then == "fc" else 0)


def const(fn, *args, **kw):
    return lambda rng: fn(*args, **kw)


def with_macs(build, per_output):
    """Attach the expected MAC count (output elements x MACs per output element) to a builder."""
    build.macs = lambda out_shape: int(np.prod(out_shape)) * int(per_output)
    return build


def expected_macs(case, out_shape) -> int:
    return getattr(case.build, "macs", lambda _: 0)(out_shape)


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


SM_OUT = (1 / 256, -128)

INT8_CASES = [
    # CONV_2D
    Case("conv_same_3x3_perchannel", conv((1, 8, 8, 3), 4, 3, 3), (1, 8, 8, 3)),
    Case("conv_valid_3x3", conv((1, 9, 7, 2), 5, 3, 3, padding="VALID"), (1, 9, 7, 2)),
    Case("conv_stride2_same_even_input", conv((1, 8, 8, 3), 4, 3, 3, stride=2), (1, 8, 8, 3)),
    Case("conv_dilation2_same", conv((1, 9, 9, 2), 3, 3, 3, dilation=2), (1, 9, 9, 2)),
    Case("conv_asym_pad_even_kernel_4x4", conv((1, 7, 7, 2), 3, 4, 4), (1, 7, 7, 2)),
    Case("conv_1x1", conv((1, 5, 5, 8), 6, 1, 1, per_channel=False), (1, 5, 5, 8)),
    Case("conv_nonsquare_1x3_stride_2x1", conv((1, 6, 9, 3), 4, 1, 3, stride=(2, 1)), (1, 6, 9, 3)),
    Case("conv_nonsquare_5x2_valid", conv((1, 8, 6, 2), 3, 5, 2, padding="VALID"), (1, 8, 6, 2)),
    Case("conv_relu", conv((1, 6, 6, 3), 4, 3, 3, activation="RELU"), (1, 6, 6, 3)),
    Case("conv_relu6", conv((1, 6, 6, 3), 4, 3, 3, in_q=(0.02, 0), out_zp=-100, activation="RELU6"),
         (1, 6, 6, 3)),
    Case("conv_batch2", conv((2, 5, 5, 2), 3, 3, 3), (2, 5, 5, 2)),
    Case("conv_zp_in_-128_out_127", conv((1, 6, 6, 3), 4, 3, 3, in_q=(0.03, -128), out_zp=127),
         (1, 6, 6, 3), min_distinct=2),
    Case("conv_zp_in_127_out_-128", conv((1, 6, 6, 3), 4, 3, 3, in_q=(0.03, 127), out_zp=-128),
         (1, 6, 6, 3), min_distinct=2),
    Case("conv_saturating", conv((1, 6, 6, 3), 4, 3, 3, shrink=40.0), (1, 6, 6, 3), saturates=True),
    # DEPTHWISE_CONV_2D
    Case("dw_mult1_same", dwconv((1, 8, 8, 4), 1, 3, 3), (1, 8, 8, 4)),
    Case("dw_mult2_stride2", dwconv((1, 9, 9, 3), 2, 3, 3, stride=2), (1, 9, 9, 3)),
    Case("dw_mult3_valid_dil2_relu6", dwconv((1, 10, 10, 2), 3, 3, 3, dilation=2, padding="VALID",
                                              activation="RELU6", in_q=(0.1, 0), out_zp=-128),
         (1, 10, 10, 2)),
    Case("dw_nonsquare_3x1_saturating", dwconv((1, 6, 6, 4), 1, 3, 1, shrink=30.0), (1, 6, 6, 4),
         saturates=True),
    # FULLY_CONNECTED
    Case("fc_batch1", fc((1, 16), 8), (1, 16)),
    Case("fc_batch2_relu", fc((2, 24), 5, activation="RELU"), (2, 24)),
    Case("fc_4d_input", fc((1, 2, 2, 4), 6), (1, 2, 2, 4)),
    Case("fc_zp_extremes_saturating", fc((1, 32), 10, in_q=(0.05, -128), out_zp=127, shrink=30.0),
         (1, 32), saturates=True, min_distinct=2),
    # ADD (residual, see module docstring)
    Case("add_similar_scales", residual_add((1, 4, 4, 3), (0.1, 3), (0.12, -5), (0.15, 1)), (1, 4, 4, 3)),
    Case("add_very_different_scales_relu", residual_add((1, 4, 4, 3), (0.5, -20), (0.002, 7), (0.3, -128),
                                                        activation="RELU"), (1, 4, 4, 3)),
    Case("add_zp_extremes", residual_add((1, 3, 5, 2), (0.05, -128), (0.2, 127), (0.1, 127)), (1, 3, 5, 2)),
    # AVERAGE_POOL_2D
    Case("avgpool_2x2_valid", const(T.avg_pool_model, (1, 8, 8, 3), (0.1, -4)), (1, 8, 8, 3)),
    Case("avgpool_3x3_same_edges", const(T.avg_pool_model, (1, 5, 5, 2), (0.1, 10), filter=3, stride=1,
                                         padding="SAME"), (1, 5, 5, 2)),
    Case("avgpool_3x3_same_stride2_relu6", const(T.avg_pool_model, (1, 7, 6, 2), (0.05, -128), filter=3,
                                                 stride=2, padding="SAME", activation="RELU6"),
         (1, 7, 6, 2)),
    Case("avgpool_global", const(T.avg_pool_model, (1, 6, 5, 8), (0.02, 127), filter=(6, 5), stride=1),
         (1, 6, 5, 8)),
    # MAX_POOL_2D
    Case("maxpool_2x2_valid", const(T.max_pool_model, (1, 8, 8, 3), (0.1, -4)), (1, 8, 8, 3)),
    Case("maxpool_3x3_same_stride2_relu", const(T.max_pool_model, (1, 7, 7, 2), (0.1, 20), filter=3,
                                                stride=2, padding="SAME", activation="RELU"), (1, 7, 7, 2)),
    # SOFTMAX (TFLM requires output (1/256, -128))
    Case("softmax_scale_0.01", const(T.softmax_model, (1, 10), (0.01, 0), SM_OUT), (1, 10), min_distinct=2),
    Case("softmax_scale_0.1", const(T.softmax_model, (1, 12), (0.1, -3), SM_OUT), (1, 12)),
    Case("softmax_scale_0.5", const(T.softmax_model, (2, 10), (0.5, 5), SM_OUT), (2, 10), min_distinct=2),
    Case("softmax_scale_1.0", const(T.softmax_model, (1, 16), (1.0, 0), SM_OUT), (1, 16), min_distinct=2),
    Case("softmax_scale_4.0_4d", const(T.softmax_model, (1, 2, 2, 8), (4.0, -128), SM_OUT), (1, 2, 2, 8),
         min_distinct=2),
    Case("softmax_scale_0.2_beta_0.5", const(T.softmax_model, (1, 10), (0.2, 0), SM_OUT, beta=0.5), (1, 10)),
    Case("log_softmax_scale_0.1", const(T.log_softmax_model, (3, 10), (0.1, 0)), (3, 10)),
    Case("log_softmax_scale_0.02_zp_-20", const(T.log_softmax_model, (2, 40), (0.02, -20)), (2, 40)),
    Case("log_softmax_scale_0.5_4d", const(T.log_softmax_model, (1, 2, 3, 7), (0.5, 5)), (1, 2, 3, 7)),
    Case("log_softmax_scale_2.0", const(T.log_softmax_model, (2, 12), (2.0, 0)), (2, 12), min_distinct=2),
    Case("log_softmax_depth_300", const(T.log_softmax_model, (1, 300), (0.01, 3)), (1, 300)),
    # RELU / RELU6 (same qparams in and out)
    Case("relu", const(T.relu_model, (1, 4, 4, 3), (0.1, 5)), (1, 4, 4, 3)),
    Case("relu_zp_-128", const(T.relu_model, (1, 16), (0.05, -128)), (1, 16)),
    Case("relu6", const(T.relu6_model, (1, 4, 4, 3), (0.05, -10)), (1, 4, 4, 3)),
    Case("relu6_zp_127", const(T.relu6_model, (1, 20), (0.02, 127)), (1, 20), min_distinct=1),
    # RESHAPE (followed by an op, and alone: the output is a copy of the input)
    Case("reshape_4d_to_2d_fc", reshape_then((1, 4, 4, 2), (1, 32), (0.1, 0), "fc"), (1, 4, 4, 2)),
    Case("reshape_2d_minus1_softmax", reshape_then((1, 3, 8), (3, -1), (0.3, 9), "softmax"), (1, 3, 8),
         min_distinct=2),
    Case("reshape_only", const(T.reshape_model, (1, 4, 4, 2), (1, 32), (0.1, 0)), (1, 4, 4, 2)),
    # PAD (the padding value is the zero point)
    Case("pad_spatial", const(T.pad_model, (1, 4, 4, 2), [[0, 0], [1, 1], [1, 1], [0, 0]], (0.1, 3)),
         (1, 4, 4, 2)),
    Case("pad_asym_channels_zp_-128", const(T.pad_model, (1, 3, 5, 2), [[0, 0], [0, 2], [3, 0], [1, 2]],
                                            (0.1, -128)), (1, 3, 5, 2)),
]


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


def _compile(tmp_path, model: bytes):
    path = tmp_path / "op.tflite"
    path.write_bytes(model)
    return api.compile(path)


def _check_program(case, m, want):
    """Output shape and MACs of the lowered program, checked before the C runs (a wrong geometry
    would make the kernel write outside the caller's output buffer)."""
    assert tuple(m.output.shape) == want.shape, f"{case.id}: output shape"
    assert m.program.macs == expected_macs(case, want.shape), f"{case.id}: MACs"


def _params(cases):
    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


@pytest.mark.parametrize("case", _params(INT8_CASES))
def test_int8_op_bit_exact_with_tflm(case, tmp_path):
    rng = np.random.default_rng(_seed(case.id))
    model = case.build(rng)
    m = _compile(tmp_path, model)
    assert m.format == "int8"
    assert tuple(m.input.shape) == case.input_shape and m.input.dtype == "int8"
    xs = [rng.integers(-128, 128, size=case.input_shape, dtype=np.int8) for _ in range(N_INPUTS)]
    _check_program(case, m, T.run_tflm(model, xs[0]))
    seen = set()
    for i, x in enumerate(xs):
        want = T.run_tflm(model, x)
        got = m.run(x)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"{case.id}: C vs TFLM, input #{i}")
        np.testing.assert_array_equal(m.reference(x), want, err_msg=f"{case.id}: reference vs TFLM, input #{i}")
        seen.update(np.unique(want).tolist())
    # the case exercises what it claims to
    if case.saturates:
        assert {-128, 127} <= seen, f"{case.id}: outputs do not saturate: {sorted(seen)}"
    assert len(seen) >= case.min_distinct, f"{case.id}: degenerate output {sorted(seen)}"


# ------------------------------------------------------------------------ refused graphs

@pytest.mark.parametrize("model", [
    T.add_model((1, 4, 4, 2), (0.1, 3), (0.2, -1), (0.3, 0)),
    T.add_model_f32((1, 4, 4, 2)),
], ids=["int8", "float32"])
def test_two_input_add_refused_by_target(model, tmp_path):
    with pytest.raises(TargetError, match="2 inputs"):
        _compile(tmp_path, model)


# ------------------------------------------------------------------------------ float32

def fconv(shape, o, kh, kw, **kw_):
    def build(rng):
        w = rng.normal(0, 0.3, size=(o, kh, kw, shape[3])).astype(np.float32)
        return T.conv2d_model_f32(shape, w, rng.normal(0, 0.1, o).astype(np.float32), **kw_)
    return with_macs(build, kh * kw * shape[3])


def fdw(shape, mult, kh, kw, **kw_):
    def build(rng):
        w = rng.normal(0, 0.3, size=(1, kh, kw, shape[3] * mult)).astype(np.float32)
        return T.depthwise_conv2d_model_f32(shape, w, rng.normal(0, 0.1, shape[3] * mult).astype(np.float32),
                                            depth_multiplier=mult, **kw_)
    return with_macs(build, kh * kw)


def ffc(shape, o, **kw_):
    def build(rng):
        k = int(np.prod(shape[1:]))
        w = rng.normal(0, 0.3, size=(o, k)).astype(np.float32)
        return T.fully_connected_model_f32(shape, w, rng.normal(0, 0.1, o).astype(np.float32), **kw_)
    return with_macs(build, int(np.prod(shape[1:])))


def fresidual_add(shape, activation="NONE"):
    def build(rng):
        c = shape[3]
        mb = T._ModelBuilder("adaptc test: f32 residual ADD")
        x = mb.input(shape, np.float32, "input")
        wt = mb.const(rng.normal(0, 0.5, size=(c, 1, 1, c)).astype(np.float32), "filter")
        bt = mb.const(rng.normal(0, 0.1, c).astype(np.float32), "bias")
        mid = mb.tensor(shape, np.float32, "conv_out")
        mb.op(T._OP.CONV_2D, 1, [x, wt, bt], [mid], T._OPT.Conv2DOptions, T._conv_opts(1, 1, "SAME", "NONE"))
        y = mb.output(shape, np.float32, "output")
        mb.op(T._OP.ADD, 1, [x, mid], [y], T._OPT.AddOptions, T._add_opts(activation))
        return mb.finish()
    return with_macs(build, shape[3])


def freshape_fc(shape, new_shape, o):
    def build(rng):
        mb = T._ModelBuilder("adaptc test: f32 RESHAPE + FULLY_CONNECTED")
        mid_shape = T._resolve_shape(shape, new_shape)
        x = mb.input(shape, np.float32, "input")
        s = mb.const(np.asarray(mid_shape, np.int32), "shape")
        mid = mb.tensor(mid_shape, np.float32, "reshaped")
        mb.op(T._OP.RESHAPE, 1, [x, s], [mid], T._OPT.ReshapeOptions, T._reshape_opts(mid_shape))
        wt = mb.const(rng.normal(0, 0.3, size=(o, mid_shape[-1])).astype(np.float32), "weights")
        bt = mb.const(rng.normal(0, 0.1, o).astype(np.float32), "bias")
        y = mb.output((mid_shape[0], o), np.float32, "output")
        mb.op(T._OP.FULLY_CONNECTED, 1, [mid, wt, bt], [y], T._OPT.FullyConnectedOptions, T._fc_opts("NONE"))
        return mb.finish()
    return with_macs(build, T._resolve_shape(shape, new_shape)[-1])


F32_CASES = [
    Case("f32_conv_same_3x3", fconv((1, 8, 8, 3), 4, 3, 3), (1, 8, 8, 3)),
    Case("f32_conv_stride2_dil_relu6", fconv((1, 9, 9, 2), 3, 3, 3, stride=2, padding="SAME",
                                             activation="RELU6"), (1, 9, 9, 2)),
    Case("f32_conv_dilation2_valid_relu", fconv((1, 9, 9, 2), 3, 3, 2, dilation=2, padding="VALID",
                                                activation="RELU"), (1, 9, 9, 2)),
    Case("f32_dw_mult2_stride2", fdw((1, 8, 8, 3), 2, 3, 3, stride=2), (1, 8, 8, 3)),
    Case("f32_fc_batch2_relu", ffc((2, 20), 7, activation="RELU"), (2, 20)),
    Case("f32_add_residual_relu", fresidual_add((1, 4, 4, 3), activation="RELU"), (1, 4, 4, 3)),
    Case("f32_avgpool_3x3_same", const(T.avg_pool_model_f32, (1, 5, 5, 2), filter=3, stride=1, padding="SAME"),
         (1, 5, 5, 2)),
    Case("f32_maxpool_2x2", const(T.max_pool_model_f32, (1, 6, 6, 3)), (1, 6, 6, 3)),
    Case("f32_softmax", const(T.softmax_model_f32, (2, 10)), (2, 10)),
    Case("f32_softmax_beta2", const(T.softmax_model_f32, (1, 12), beta=2.0), (1, 12)),
    Case("f32_log_softmax", const(T.log_softmax_model, (3, 10)), (3, 10)),
    Case("f32_relu", const(T.relu_model_f32, (1, 4, 4, 3)), (1, 4, 4, 3)),
    Case("f32_relu6", const(T.relu6_model_f32, (1, 30)), (1, 30)),
    Case("f32_reshape_4d_to_2d_fc", freshape_fc((1, 4, 4, 2), (1, -1), 6), (1, 4, 4, 2)),
    Case("f32_reshape_only", const(T.reshape_model_f32, (1, 4, 4, 2), (1, -1)), (1, 4, 4, 2)),
    Case("f32_pad", const(T.pad_model_f32, (1, 4, 3, 2), [[0, 0], [1, 2], [0, 1], [0, 0]]), (1, 4, 3, 2)),
]


@pytest.mark.parametrize("case", _params(F32_CASES))
def test_f32_op_matches_litert(case, tmp_path):
    rng = np.random.default_rng(_seed(case.id))
    model = case.build(rng)
    m = _compile(tmp_path, model)
    assert m.format == "float32"
    assert tuple(m.input.shape) == case.input_shape and m.input.dtype == "float32"
    xs = [rng.normal(0, 4.0, size=case.input_shape).astype(np.float32)  # exercises RELU6's top too
          for _ in range(N_INPUTS)]
    _check_program(case, m, T.run_litert(model, xs[0]))
    for i, x in enumerate(xs):
        want = T.run_litert(model, x)
        got = m.run(x)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{case.id}: C vs LiteRT, input #{i}")
        np.testing.assert_allclose(m.reference(x), want, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{case.id}: reference vs LiteRT, input #{i}")


def test_int8_log_softmax_output_parameters_refused(tmp_path):
    """An int8 LOG_SOFTMAX output other than scale 16/256, zero point 127 (TFLite Micro's Prepare
    rejects it): refused before any work, naming the operator and the values."""
    path = tmp_path / "ls.tflite"
    path.write_bytes(T.log_softmax_model((1, 10), (0.1, 0), (1 / 16, 0)))
    with pytest.raises(UnsupportedOperatorError, match="LOG_SOFTMAX .*scale 0.0625, zero point 0; TFLite Micro"):
        api.load(path)
