"""Random single-operator TFLite models against TensorFlow Lite Micro: hypothesis draws one-input
models of every operator adaptc compiles that tests/helpers/tflite_ops.py builds -- CONV_2D
(kernel size, stride, SAME / VALID, dilation, fused NONE / RELU / RELU6, channels, per-channel
filter scales spread over up to 2^14), DEPTHWISE_CONV_2D (depth multiplier), FULLY_CONNECTED,
TRANSPOSE_CONV (output sizes around the default), BATCH_MATMUL (by a constant, or x @ x^T),
UNIDIRECTIONAL_SEQUENCE_LSTM, AVERAGE_POOL_2D, MAX_POOL_2D; ADD, SUB, MUL, MAXIMUM, MINIMUM,
SQUARED_DIFFERENCE of the input and a broadcast constant (either side), ADD and MUL of two
activations; SOFTMAX (beta), LOG_SOFTMAX, LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU (alpha of
either sign), ELU, RELU, RELU6, PRELU, RSQRT, L2_NORMALIZATION, QUANTIZE (requantization); MEAN,
SUM, REDUCE_MAX; PAD, PADV2, MIRROR_PAD, RESHAPE, TRANSPOSE, DEPTH_TO_SPACE, SPACE_TO_DEPTH,
RESIZE_BILINEAR, ARG_MAX, DEQUANTIZE -- with small random shapes (spatial <= 12, channels <= 16),
random quantization (scales from 1e-4 to 10, zero points over all of int8 with -128 and 127 drawn
often, requantization multipliers mostly near one whose outputs fill int8, else from below 2^-31
-- TFLite's multiplier 0 -- to above 1 -- a left shift, saturation) and random int8 inputs (two
uniform, one of the extremes). Each model compiles with ``adaptc.compile(path,
target="cortex-m4")`` and its generated C (``m.run``, host-built, cached by content as in every
test) equals TFLite Micro bit for bit. float32: conv, depthwise, dense, pooling, the binary
operators (DIV too), the element-wise ones and MEAN, within 1e-5 of TFLite Micro. A model adaptc
refuses (AdaptcError) passes only where TFLite Micro refuses it too. (Two-input models are out:
the C entry point takes one input.)

What TFLite Micro runs and adaptc refuses or computes otherwise is listed at the end as
``xfail(strict=True)`` examples; each strategy that draws around one names it.

227 drawn models (each test's max_examples times its operators) and 12 explicit ones: about 50 s
on one core with an empty host-build cache, 18 s with a warm one. The examples are derandomized
(the same models in every run): a failure is reproducible, hypothesis shrinks it, and the
falsifying example prints as the builder call that rebuilds the model.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adaptc.api as api
import tflite_ops as T
from adaptc.errors import AdaptcError

I8, F32 = np.int8, np.float32
N_RANDOM_INPUTS = 2          # and one input of the extremes


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- a case and its check

@dataclass
class Model:
    buf: bytes
    shape: tuple[int, ...]
    dtype: type = I8
    low: int = -128              # the least int8 input drawn (RSQRT: positive reals only)


class Case:
    """A builder function of this module and its (scalar) arguments: its repr is the call that
    rebuilds the model -- what hypothesis prints for a falsifying example."""

    def __init__(self, fn: Callable[..., Model], kw: dict):
        self.fn, self.kw = fn, kw

    def __repr__(self) -> str:
        return f"{self.fn.__name__}({', '.join(f'{k}={v!r}' for k, v in self.kw.items())})"

    def model(self) -> Model:
        return self.fn(**self.kw)


class Refused(AssertionError):
    """adaptc refuses a model that TFLite Micro runs."""


def _inputs(model: Model, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if model.dtype == F32:
        xs = [rng.normal(0, 2.0, model.shape) for _ in range(N_RANDOM_INPUTS)]
        return [x.astype(F32) for x in (*xs, rng.normal(0, 20.0, model.shape))]
    xs = [rng.integers(model.low, 128, model.shape) for _ in range(N_RANDOM_INPUTS)]
    return [x.astype(I8) for x in (*xs, rng.choice([model.low, 127], model.shape))]


def _tflm(buf: bytes, x: np.ndarray):
    """TFLite Micro's output, or None where it refuses the model (its Prepare or Invoke fails)."""
    try:
        return T.run_tflm(buf, x)
    except RuntimeError:
        return None


def check(case: Case, seed: int = 0) -> None:
    """Compile the case for cortex-m4: its C equals TFLite Micro bit for bit (a float output:
    within 1e-5) on every input, or adaptc and TFLite Micro both refuse the model."""
    model = case.model()
    xs = _inputs(model, seed)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "op.tflite"
        path.write_bytes(model.buf)
        try:
            m = api.compile(path, target="cortex-m4")
        except AdaptcError as e:
            if _tflm(model.buf, xs[0]) is not None:
                raise Refused(f"adaptc refuses a model TFLite Micro runs: {type(e).__name__}: {e}") from None
            return
    for i, x in enumerate(xs):
        want = _tflm(model.buf, x)
        assert want is not None, f"TFLite Micro refuses a model adaptc compiles (input #{i})"
        got = m.run(x)
        assert (got.shape, got.dtype) == (want.shape, want.dtype), "output shape / dtype: C vs TFLM"
        if want.dtype == F32:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"C vs TFLM, input #{i}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"C vs TFLM, input #{i}")


# ----------------------------------------------------------------------------- drawing helpers

def _sig(v: float) -> float:
    """Four significant digits: short reprs, and the model is rebuilt from exactly these."""
    return float(f"{v:.4g}")


def _exponent(lo: float, hi: float):
    """Uniform over [lo, hi] in steps of 1/100 (hypothesis' floats crowd at the ends and 0)."""
    return st.integers(round(lo * 100), round(hi * 100)).map(lambda i: i / 100)


def scales(lo: float = 1e-4, hi: float = 10.0):
    return _exponent(math.log10(lo), math.log10(hi)).map(lambda e: _sig(10.0 ** e))


ZP = st.one_of(st.integers(-128, 127), st.integers(-128, 127), st.sampled_from([-128, 127]))  # the ends 1 in 4
ACT = st.sampled_from(["NONE", "RELU", "RELU6"])
SEED = st.integers(0, 2**16)
# log2 of a requantization multiplier over the one that fills int8 (see _out_scale)
M_LOG2 = st.one_of(_exponent(-2.0, 2.0), _exponent(-12.0, 7.0))


def qparams(lo=1e-4, hi=10.0, zp=ZP):
    return st.tuples(scales(lo, hi), zp)


def near(draw, scale, lo=-3.0, hi=3.0):
    """(scale * 2^e, a zero point): e in [lo, hi] 2 times in 3 -- outputs that use int8 -- else up
    to 10 octaves further, where they are all one value or saturate."""
    e = draw(st.one_of(_exponent(lo, hi), _exponent(lo, hi), _exponent(lo - 10.0, hi + 10.0)))
    return _sig(float(np.float32(scale * 2.0 ** e))), draw(ZP)


def _nhwc(draw, batch=2, spatial=12, channels=16):
    return (draw(st.integers(1, batch)), draw(st.integers(1, spatial)), draw(st.integers(1, spatial)),
            draw(st.integers(1, channels)))


def _shape(draw, last=16):
    """Rank 1 to 4, the last axis up to ``last``, the others up to 6."""
    rank = draw(st.integers(1, 4))
    return tuple(draw(st.integers(1, last if i == rank - 1 else 6)) for i in range(rank))


def _broadcast(draw, shape):
    """A shape that broadcasts to ``shape``: each axis kept or 1, leading axes maybe dropped."""
    kept = tuple(d if draw(st.booleans()) else 1 for d in shape)
    return kept[draw(st.integers(0, len(shape) - 1)):]


def _geometry(draw, h, w, kmax=5, dmax=3):
    """(kernel, stride, dilation, padding) with a non-empty output."""
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    dil = (draw(st.integers(1, dmax)), draw(st.integers(1, dmax)))
    k = []
    for n, d in zip((h, w), dil):
        most = kmax if padding == "SAME" else min(kmax, (n - 1) // d + 1)
        k.append(draw(st.integers(1, most)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return tuple(k), stride, dil, padding


# An accumulator of k products of random int8 values has a standard deviation of about
# 74 * 74 * sqrt(k); the multiplier in_scale * filter_scale / out_scale that maps one to +-64 is
# "natural", and the drawn one is natural * 2^m_log2 for the channel of largest filter scale (the
# others down to 2^-spread smaller).
def _out_scale(in_s, w_max, k, m_log2):
    natural = 64.0 / (74.0 * 74.0 * math.sqrt(k))
    return float(np.float32(in_s * w_max / (natural * 2.0 ** m_log2)))


def _filter_scales(rng, n, spread):
    return (0.02 * 2.0 ** -rng.uniform(0, spread, n)).astype(F32) if spread else np.full(n, 0.02, F32)


def _bias(rng, n, bits):
    return rng.integers(-(2 ** bits), 2 ** bits + 1, n).astype(np.int32) if bits else np.zeros(n, np.int32)


def _weights(rng, shape):
    return rng.integers(-127, 128, shape).astype(I8)


# ----------------------------------------------------------------------------- CONV_2D, DEPTHWISE_CONV_2D

def conv2d(shape, out_c, kernel, stride, dilation, padding, act, in_q, out_zp, m_log2, spread, bias_bits,
           seed):
    rng = np.random.default_rng(seed)
    c = shape[3]
    ws = _filter_scales(rng, out_c, spread)
    out_s = _out_scale(in_q[0], float(ws.max()), kernel[0] * kernel[1] * c, m_log2)
    buf = T.conv2d_model(shape, _weights(rng, (out_c, *kernel, c)), _bias(rng, out_c, bias_bits), in_q,
                         T.QParams(ws, 0), (out_s, out_zp), stride=stride, dilation=dilation, padding=padding,
                         activation=act)
    return Model(buf, shape)


def depthwise_conv2d(shape, mult, kernel, stride, dilation, padding, act, in_q, out_zp, m_log2, spread,
                     bias_bits, seed):
    rng = np.random.default_rng(seed)
    oc = shape[3] * mult
    ws = _filter_scales(rng, oc, spread)
    out_s = _out_scale(in_q[0], float(ws.max()), kernel[0] * kernel[1], m_log2)
    buf = T.depthwise_conv2d_model(shape, _weights(rng, (1, *kernel, oc)), _bias(rng, oc, bias_bits), in_q,
                                   T.QParams(ws, 0), (out_s, out_zp), depth_multiplier=mult, stride=stride,
                                   dilation=dilation, padding=padding, activation=act)
    return Model(buf, shape)


def _requant(draw):
    return dict(act=draw(ACT), in_q=draw(qparams()), out_zp=draw(ZP), m_log2=draw(M_LOG2),
                spread=draw(st.sampled_from([0, 0, 4, 14])), bias_bits=draw(st.sampled_from([0, 10, 16, 20])),
                seed=draw(SEED))


@st.composite
def conv2d_cases(draw):
    shape = _nhwc(draw)
    kernel, stride, dilation, padding = _geometry(draw, shape[1], shape[2])
    return Case(conv2d, dict(shape=shape, out_c=draw(st.integers(1, 16)), kernel=kernel, stride=stride,
                             dilation=dilation, padding=padding, **_requant(draw)))


@st.composite
def depthwise_cases(draw):
    c = draw(st.integers(1, 16))
    mult = draw(st.integers(2 if c == 1 else 1, 16 // c))    # one output channel: GAPS depthwise_one_channel
    shape = (*_nhwc(draw)[:3], c)
    kernel, stride, dilation, padding = _geometry(draw, shape[1], shape[2])
    return Case(depthwise_conv2d, dict(shape=shape, mult=mult, kernel=kernel, stride=stride, dilation=dilation,
                                       padding=padding, **_requant(draw)))


@_settings(30)
@given(conv2d_cases())
def test_conv2d(case):
    check(case)


@_settings(20)
@given(depthwise_cases())
def test_depthwise_conv2d(case):
    check(case)


# ----------------------------------------------------------------------------- dense, transposed conv, LSTM

def fully_connected(shape, units, act, in_q, out_zp, m_log2, bias_bits, seed):
    rng = np.random.default_rng(seed)
    k = int(np.prod(shape[1:]))
    w_s = 0.02
    buf = T.fully_connected_model(shape, _weights(rng, (units, k)), _bias(rng, units, bias_bits), in_q, (w_s, 0),
                                  (_out_scale(in_q[0], w_s, k, m_log2), out_zp), activation=act)
    return Model(buf, shape)


def transpose_conv(shape, out_c, kernel, stride, padding, output_delta, in_q, out_zp, m_log2, spread, bias, seed,
                   beyond_scatter=False):
    """``output_delta``: the output's height and width off TFLite's default for the padding, less
    than a stride beyond the scatter of the input, (in - 1) * stride + kernel, unless
    ``beyond_scatter``."""
    rng = np.random.default_rng(seed)
    ws = _filter_scales(rng, out_c, spread)
    k = max(1, kernel[0] * kernel[1] * shape[3] // (stride[0] * stride[1]))   # products per output, about
    out_hw = tuple(max(1, min(T.transpose_conv_output_size(n, kk, s, padding) + dd,
                              n * s + kk - 1 + 999 * beyond_scatter))
                   for n, kk, s, dd in zip(shape[1:3], kernel, stride, output_delta))
    out_q = (_out_scale(in_q[0], float(ws.max()), k, m_log2), out_zp)
    buf = T.transpose_conv_model(shape, _weights(rng, (out_c, *kernel, shape[3])), _bias(rng, out_c, 12) if bias
                                 else None, in_q, T.QParams(ws, 0), out_q, stride=stride, padding=padding,
                                 output_hw=out_hw)
    return Model(buf, shape)


def batch_matmul(shape, cols, self_product, in_q, b_scale, out_zp, m_log2, seed):
    """x @ x^T (the one input twice, adj_y) or x @ a constant [..., k, cols]."""
    rng = np.random.default_rng(seed)
    k = shape[-1]
    out_s = _out_scale(in_q[0], in_q[0] if self_product else b_scale, k, m_log2)
    if self_product:
        buf = T.batch_matmul_model(shape, shape, in_q, in_q, (out_s, out_zp), adj_y=True, b_is_a=True)
    else:
        b = _weights(rng, (*shape[:-2], k, cols))
        buf = T.batch_matmul_model(shape, b.shape, in_q, (b_scale, 0), (out_s, out_zp), const_b=b)
    return Model(buf, shape)


def lstm(shape, units, in_q, hidden_q, cell_log2, seed):
    return Model(T.lstm_model(shape, units, in_q, hidden_q, seed=seed, cell_scale=2.0 ** cell_log2), shape)


@st.composite
def dense_cases(draw, op):
    seed, in_q, out_zp, m_log2 = draw(SEED), draw(qparams()), draw(ZP), draw(M_LOG2)
    if op == "FULLY_CONNECTED":
        shape = ((draw(st.integers(1, 3)), draw(st.integers(1, 64))) if draw(st.booleans())
                 else (1, *_nhwc(draw, 1, 4, 8)[1:]))
        return Case(fully_connected, dict(shape=shape, units=draw(st.integers(1, 16)), act=draw(ACT), in_q=in_q,
                                          out_zp=out_zp, m_log2=m_log2, bias_bits=draw(st.sampled_from([0, 12, 20])),
                                          seed=seed))
    # TRANSPOSE_CONV: no fused activation (GAPS transpose_conv_fused_activation), no output beyond
    # the input's scatter (GAPS transpose_conv_output_beyond_scatter)
    if op == "TRANSPOSE_CONV":
        return Case(transpose_conv, dict(shape=(1, *_nhwc(draw, 1, 6, 8)[1:]), out_c=draw(st.integers(1, 8)),
                                         kernel=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
                                         stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                                         padding=draw(st.sampled_from(["SAME", "VALID"])),
                                         output_delta=(draw(st.integers(-1, 1)), draw(st.integers(-1, 1))),
                                         in_q=in_q, out_zp=out_zp, m_log2=m_log2, spread=draw(st.sampled_from([0, 6])),
                                         bias=draw(st.booleans()), seed=seed))
    if op == "BATCH_MATMUL":
        batch = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
        return Case(batch_matmul, dict(shape=(*batch, draw(st.integers(1, 8)), draw(st.integers(1, 16))),
                                       cols=draw(st.integers(1, 8)), self_product=draw(st.booleans()), in_q=in_q,
                                       b_scale=draw(scales(1e-3, 0.1)), out_zp=out_zp, m_log2=m_log2, seed=seed))
    # batch 1: GAPS lstm_batch_2
    return Case(lstm, dict(shape=(1, draw(st.integers(1, 6)), draw(st.integers(1, 8))), units=draw(st.integers(1, 8)),
                           in_q=draw(qparams(1e-3, 1.0)), hidden_q=draw(qparams(1e-3, 0.1)),
                           cell_log2=draw(st.integers(-15, -8)), seed=seed))


@pytest.mark.parametrize("op", ["FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "UNIDIRECTIONAL_SEQUENCE_LSTM"])
@_settings(5)
@given(data=st.data())
def test_dense(op, data):
    check(data.draw(dense_cases(op)))


# ----------------------------------------------------------------------------- pooling

def pool(op, shape, filter, stride, padding, act, q):
    fn = T.avg_pool_model if op == "AVERAGE_POOL_2D" else T.max_pool_model
    return Model(fn(shape, q, filter=filter, stride=stride, padding=padding, activation=act), shape)


@st.composite
def pool_cases(draw, op):
    # input and output share their quantization, as TFLite's quantization spec has it
    shape = _nhwc(draw)
    kernel, stride, _, padding = _geometry(draw, shape[1], shape[2], dmax=1)
    return Case(pool, dict(op=op, shape=shape, filter=kernel, stride=stride, padding=padding, act=draw(ACT),
                           q=draw(qparams())))


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@_settings(5)
@given(data=st.data())
def test_pooling(op, data):
    check(data.draw(pool_cases(op)))


# ----------------------------------------------------------------------------- binary operators

def binary_const(op, shape, const_shape, const_first, act, in_q, const_q, out_q, seed):
    """``op`` of the input and a constant broadcast against it."""
    c = np.random.default_rng(seed).integers(-128, 128, const_shape).astype(I8)
    if const_first:
        return Model(T.binary_model(op, const_shape, shape, const_q, in_q, out_q, act, const1=c), shape)
    return Model(T.binary_model(op, shape, const_shape, in_q, const_q, out_q, act, const2=c), shape)


def add_residual(shape, act, in_q, mid_q, out_q, seed):
    """ADD(x, CONV_1x1(x)): ADD of two activations of their own quantization, one model input."""
    rng = np.random.default_rng(seed)
    c = shape[3]
    mb = T._ModelBuilder("adaptc test: int8 residual ADD")
    in_q_, mid_q_ = T.QParams(*in_q), T.QParams(*mid_q)
    wq = T.QParams(np.full(c, 0.02, F32), np.zeros(c, np.int64), 0)
    x = mb.input(shape, I8, "input", in_q_)
    wt = mb.const(_weights(rng, (c, 1, 1, c)), "filter", wq)
    bt = mb.const(np.zeros(c, np.int32), "bias", T._bias_q(in_q_, wq))
    mid = mb.tensor(shape, I8, "conv_out", mid_q_)
    mb.op(T._OP.CONV_2D, 3, [x, wt, bt], [mid], T._OPT.Conv2DOptions, T._conv_opts(1, 1, "SAME", "NONE"))
    y = mb.output(shape, I8, "output", T.QParams(*out_q))
    mb.op(T._OP.ADD, 2, [x, mid], [y], T._OPT.AddOptions, T._add_opts(act))
    return Model(mb.finish(), shape)


def mul_branch(shape, branch, swap, act, in_q, branch_q, out_q, seed):
    """MUL of the input by itself, by its spatial MEAN or by a 1x1 conv of it (T.mul_branch_model)."""
    w = np.random.default_rng(seed).integers(-127, 128, shape[3]).astype(I8)
    return Model(T.mul_branch_model(shape, in_q, out_q, branch=branch, branch_q=branch_q, weights=w, swap=swap,
                                    activation=act), shape)


# MAXIMUM / MINIMUM: one quantization for both inputs and the output (GAPS maximum_of_unequal_quantizations);
# no int8 DIV (GAPS int8_div).
BINARY = ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"]


@st.composite
def binary_cases(draw, op):
    seed, in_q = draw(SEED), draw(qparams(1e-3, 1.0))
    if op in BINARY:
        shape = _shape(draw, last=8)
        const_q = in_q if op in ("MAXIMUM", "MINIMUM") else near(draw, in_q[0])
        big = max(in_q[0], const_q[0])
        # an output scale about filled by the result of two operands that fill int8
        fill = {"ADD": 2 * big, "SUB": 2 * big, "MUL": 128 * in_q[0] * const_q[0], "SQUARED_DIFFERENCE": 128 * big**2}
        out_q = in_q if op in ("MAXIMUM", "MINIMUM") else near(draw, fill[op], -4.0, 1.0)
        return Case(binary_const, dict(op=op, shape=shape, const_shape=_broadcast(draw, shape),
                                       const_first=draw(st.booleans()),
                                       act=draw(ACT) if op in ("ADD", "SUB", "MUL") else "NONE",
                                       in_q=in_q, const_q=const_q, out_q=out_q, seed=seed))
    shape = (1, *_nhwc(draw, 1, 8, 8)[1:])
    if op == "ADD_residual":
        mid_q = near(draw, in_q[0] * 0.02 * 74 * math.sqrt(shape[3]) / 64)    # the 1x1 conv's
        return Case(add_residual, dict(shape=shape, act=draw(ACT), in_q=in_q, mid_q=mid_q,
                                       out_q=near(draw, 2 * max(in_q[0], mid_q[0]), -4.0, 1.0), seed=seed))
    branch = draw(st.sampled_from(["self", "mean", "conv"]))
    branch_q = in_q if branch == "self" else near(draw, in_q[0] * (math.sqrt(shape[3]) if branch == "conv" else 1))
    return Case(mul_branch, dict(shape=shape, branch=branch, swap=draw(st.booleans()), act=draw(ACT), in_q=in_q,
                                 branch_q=branch_q, out_q=near(draw, 128 * in_q[0] * branch_q[0], -4.0, 1.0),
                                 seed=seed))


@pytest.mark.parametrize("op", [*BINARY, "ADD_residual", "MUL_branch"])
@_settings(4)
@given(data=st.data())
def test_binary(op, data):
    check(data.draw(binary_cases(op)))


# ----------------------------------------------------------------------------- element-wise, softmax

def unary(op, shape, in_q, out_q=None, alpha=None, seed=0):
    """One element-wise operator. ``out_q`` None: the output quantization TFLM fixes for it."""
    fixed = [] if out_q is None else [out_q]
    if op == "LOGISTIC":
        return Model(T.logistic_model(shape, in_q, *fixed), shape)
    if op == "TANH":
        return Model(T.tanh_model(shape, in_q, *fixed), shape)
    if op == "L2_NORMALIZATION":
        return Model(T.l2_normalization_model(shape, in_q, *fixed), shape)
    if op == "LEAKY_RELU":
        return Model(T.leaky_relu_model(shape, in_q, out_q, alpha=alpha), shape)
    if op == "RSQRT":          # TFLM fails on a non-positive input
        return Model(T.rsqrt_model(shape, in_q, out_q), shape, low=in_q[1] + 1)
    if op == "PRELU":          # alpha: a constant broadcast against the input
        rng = np.random.default_rng(seed)
        a_shape = tuple(d if rng.random() < 0.5 else 1 for d in shape)[rng.integers(0, len(shape)):]
        alpha_q = (_sig(rng.uniform(1e-3, 0.05)), int(rng.integers(-128, 128)))
        return Model(T.prelu_model(shape, rng.integers(-128, 128, a_shape).astype(I8), in_q, alpha_q, out_q), shape)
    builder = {"HARD_SWISH": T.hard_swish_model, "ELU": T.elu_model, "RELU": T.relu_model, "RELU6": T.relu6_model,
               "QUANTIZE": T.quantize_model}[op]
    return Model(builder(shape, in_q, out_q), shape)


def softmax(op, shape, in_q, beta=1.0):
    if op == "SOFTMAX":
        return Model(T.softmax_model(shape, in_q, beta=beta), shape)
    return Model(T.log_softmax_model(shape, in_q), shape)


# LOGISTIC, TANH: the output TFLM assumes (others: GAPS logistic_output_scale_not_1_256,
# tanh_output_not_1_128_0).
# RELU6: the output quantization = the input's (others: GAPS relu6_requantizing).
UNARY = ["LOGISTIC", "TANH", "L2_NORMALIZATION", "HARD_SWISH", "LEAKY_RELU", "ELU", "RELU", "RELU6", "QUANTIZE",
         "RSQRT", "PRELU"]


@st.composite
def unary_cases(draw, op):
    if op in ("SOFTMAX", "LOG_SOFTMAX"):
        kw = dict(op=op, shape=_shape(draw, last=32), in_q=draw(qparams(1e-3, 10.0)))
        if op == "SOFTMAX":
            kw["beta"] = draw(st.sampled_from([1.0, _sig(draw(st.floats(0.1, 3.0)))]))
        return Case(softmax, kw)
    in_q = draw(qparams(1e-3, 10.0, zp=st.integers(-128, 126) if op == "RSQRT" else ZP))
    kw = dict(op=op, shape=_shape(draw), in_q=in_q)
    if op in ("HARD_SWISH", "LEAKY_RELU", "ELU", "RELU", "QUANTIZE", "PRELU"):
        kw["out_q"] = near(draw, in_q[0])
    if op == "RSQRT":       # 1 / sqrt(x) of x in (0, 256 * in_scale]
        kw["out_q"] = near(draw, 1 / math.sqrt(in_q[0]) / 128)
    if op == "RELU6":
        kw["out_q"] = in_q
    if op == "LEAKY_RELU":
        kw["alpha"] = _sig(draw(st.floats(-2.0, 2.0)))
    if op == "PRELU":
        kw["seed"] = draw(SEED)
    return Case(unary, kw)


@pytest.mark.parametrize("op", [*UNARY, "SOFTMAX", "LOG_SOFTMAX"])
@_settings(4)
@given(data=st.data())
def test_elementwise(op, data):
    check(data.draw(unary_cases(op)))


# ----------------------------------------------------------------------------- reductions

def reduce(op, shape, axes, keep_dims, in_q, out_q):
    return Model(T.reduce_model(op, shape, axes, keep_dims, in_q, out_q), shape)


@st.composite
def reduce_cases(draw, op):
    # over neighbouring axes (GAPS mean_over_axes_that_are_not_neighbours), not to a scalar
    # (GAPS reduction_to_a_scalar); REDUCE_MAX: the output quantization = the input's, as TFLM requires
    shape = _shape(draw, last=12)
    rank = len(shape)
    first = draw(st.integers(0, rank - 1))
    axes = [a - rank if draw(st.booleans()) else a for a in range(first, draw(st.integers(first, rank - 1)) + 1)]
    in_q = draw(qparams(1e-3, 1.0))
    return Case(reduce, dict(op=op, shape=shape, axes=axes, keep_dims=draw(st.booleans()) or len(axes) == rank,
                             in_q=in_q, out_q=in_q if op == "REDUCE_MAX" else near(draw, in_q[0] * (
                                 int(np.prod([shape[a] for a in axes])) if op == "SUM" else 1))))


@pytest.mark.parametrize("op", ["MEAN", "SUM", "REDUCE_MAX"])
@_settings(4)
@given(data=st.data())
def test_reduction(op, data):
    check(data.draw(reduce_cases(op)))


# ----------------------------------------------------------------------------- data movement

def data_movement(shape, in_q, op, params, out_q=None):
    """One T.data_movement_model operator; the output quantization is the input's unless given."""
    out_dtype, oq = (np.int32, None) if op == "ARG_MAX" else (F32, None) if op == "DEQUANTIZE" else (I8, out_q or in_q)
    if op == "PADV2":
        params = {**params, "value": np.int8(params["value"])}
    return Model(T.data_movement_model(shape, I8, in_q, [(op, out_dtype, oq, params)]), shape)


def pad(shape, paddings, q):
    return Model(T.pad_model(shape, paddings, q), shape)


def reshape(shape, new_shape, q):
    return Model(T.reshape_model(shape, new_shape, q), shape)


def _divisor(draw, n):
    return draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))


@st.composite
def data_cases(draw, op):
    # the output quantization = the input's, as TFLite's spec has it (RESIZE_BILINEAR otherwise:
    # GAPS resize_bilinear_requantizing)
    q, shape = draw(qparams()), _nhwc(draw, 2, 8, 16)
    if op in ("PAD", "PADV2", "MIRROR_PAD"):
        mode = draw(st.sampled_from(["REFLECT", "SYMMETRIC"]))
        most = [min(3, (d - 1 if mode == "REFLECT" else d) if op == "MIRROR_PAD" else 3) for d in shape]
        pads = [[draw(st.integers(0, m)), draw(st.integers(0, m))] for m in most]
        if op == "PAD":
            return Case(pad, dict(shape=shape, paddings=pads, q=q))
        params = {"paddings": pads, **({"value": draw(st.integers(-128, 127))} if op == "PADV2" else {"mode": mode})}
        return Case(data_movement, dict(shape=shape, in_q=q, op=op, params=params))
    if op == "RESHAPE":
        n = int(np.prod(shape))
        a = _divisor(draw, n)
        b = _divisor(draw, n // a)
        new = [a, b, n // (a * b)][:draw(st.integers(1, 3))]
        new[-1] = n // int(np.prod(new[:-1]))
        if draw(st.booleans()):
            new[draw(st.integers(0, len(new) - 1))] = -1
        return Case(reshape, dict(shape=shape, new_shape=new, q=q))
    params = {}
    if op == "TRANSPOSE":
        params = {"perm": list(draw(st.permutations(range(4))))}
    elif op in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH"):
        block = draw(st.integers(2, 3))
        if op == "DEPTH_TO_SPACE":
            shape = (*shape[:3], block * block * draw(st.integers(1, 16 // (block * block))))
        else:
            shape = (shape[0], block * draw(st.integers(1, 4)), block * draw(st.integers(1, 4)), shape[3])
        params = {"block": block}
    elif op == "RESIZE_BILINEAR":
        corners = draw(st.sampled_from([(False, False), (True, False), (False, True)]))
        params = {"size": [draw(st.integers(1, 12)), draw(st.integers(1, 12))], "align_corners": corners[0],
                  "half_pixel_centers": corners[1]}
    elif op == "ARG_MAX":
        params = {"axis": draw(st.integers(1, 3))}
    return Case(data_movement, dict(shape=shape, in_q=q, op=op, params=params))


@pytest.mark.parametrize("op", ["PAD", "PADV2", "MIRROR_PAD", "RESHAPE", "TRANSPOSE", "DEPTH_TO_SPACE",
                                "SPACE_TO_DEPTH", "RESIZE_BILINEAR", "ARG_MAX", "DEQUANTIZE"])
@_settings(3)
@given(data=st.data())
def test_data_movement(op, data):
    check(data.draw(data_cases(op)))


# ----------------------------------------------------------------------------- float32

def float_op(op, shape, seed, **kw):
    """One float32 operator, its weights (and a binary operator's constant) from ``seed``."""
    rng = np.random.default_rng(seed)

    def w(*s):
        return rng.normal(0, 0.5, s).astype(F32)

    if op == "CONV_2D":
        oc = kw["out_c"]
        return Model(T.conv2d_model_f32(shape, w(oc, *kw["kernel"], shape[3]), w(oc), stride=kw["stride"],
                                        dilation=kw["dilation"], padding=kw["padding"], activation=kw["act"]),
                     shape, F32)
    if op == "DEPTHWISE_CONV_2D":
        oc = shape[3] * kw["mult"]
        return Model(T.depthwise_conv2d_model_f32(shape, w(1, *kw["kernel"], oc), w(oc), depth_multiplier=kw["mult"],
                                                  stride=kw["stride"], dilation=kw["dilation"],
                                                  padding=kw["padding"], activation=kw["act"]), shape, F32)
    if op == "FULLY_CONNECTED":
        return Model(T.fully_connected_model_f32(shape, w(kw["units"], int(np.prod(shape[1:]))), w(kw["units"]),
                                                 activation=kw["act"]), shape, F32)
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        fn = T.avg_pool_model_f32 if op == "AVERAGE_POOL_2D" else T.max_pool_model_f32
        return Model(fn(shape, filter=kw["kernel"], stride=kw["stride"], padding=kw["padding"], activation=kw["act"]),
                     shape, F32)
    if op in (*BINARY, "DIV"):
        cs = kw["const_shape"]
        c = (rng.uniform(0.5, 2.0, cs) * rng.choice([-1, 1], cs)).astype(F32)
        args = dict(activation=kw["act"], dtype=F32)
        return Model(T.binary_model(op, cs, shape, const1=c, **args) if kw["const_first"] else
                     T.binary_model(op, shape, cs, const2=c, **args), shape, F32)
    if op == "SOFTMAX":
        return Model(T.softmax_model_f32(shape, beta=kw["beta"]), shape, F32)
    if op == "LOG_SOFTMAX":
        return Model(T.log_softmax_model(shape), shape, F32)
    if op == "MEAN":
        return Model(T.mean_model_f32(shape, kw["axes"], kw["keep_dims"]), shape, F32)
    if op == "LEAKY_RELU":
        return Model(T.leaky_relu_model_f32(shape, kw["alpha"]), shape, F32)
    return Model(getattr(T, f"{op.lower()}_model_f32")(shape), shape, F32)


F_UNARY = ["LOGISTIC", "TANH", "HARD_SWISH", "ELU", "RELU", "RELU6", "LEAKY_RELU", "SOFTMAX", "LOG_SOFTMAX"]


@st.composite
def float_cases(draw, family):
    shape, kw = (1, *_nhwc(draw, 1, 10, 8)[1:]), {}
    op = family
    if family in ("CONV_2D", "DEPTHWISE_CONV_2D", "POOL"):
        op = draw(st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"])) if family == "POOL" else family
        kernel, stride, dil, padding = _geometry(draw, shape[1], shape[2], dmax=1 if family == "POOL" else 3)
        kw = dict(kernel=kernel, stride=stride, padding=padding, act=draw(ACT))
        if op == "CONV_2D":
            kw.update(out_c=draw(st.integers(1, 8)), dilation=dil)
        elif op == "DEPTHWISE_CONV_2D":
            kw.update(mult=draw(st.integers(1, 2)), dilation=dil)
    elif family == "FULLY_CONNECTED":
        kw = dict(units=draw(st.integers(1, 16)), act=draw(ACT))
    elif family == "BINARY":
        op = draw(st.sampled_from([*BINARY, "DIV"]))
        kw = dict(const_shape=_broadcast(draw, shape), const_first=draw(st.booleans()),
                  act=draw(ACT) if op in ("ADD", "SUB", "MUL", "DIV") else "NONE")
    elif family == "UNARY":
        op, shape = draw(st.sampled_from(F_UNARY)), _shape(draw)
        if op == "SOFTMAX":
            kw = dict(beta=_sig(draw(st.floats(0.1, 3.0))))
        elif op == "LEAKY_RELU":
            kw = dict(alpha=_sig(draw(st.floats(-2.0, 2.0))))
    else:
        first = draw(st.integers(0, 3))
        kw = dict(axes=list(range(first, draw(st.integers(first, 3)) + 1)), keep_dims=draw(st.booleans()))
    return Case(float_op, dict(op=op, shape=shape, seed=draw(SEED), **kw))


@pytest.mark.parametrize("family", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "POOL", "BINARY", "UNARY",
                                    "MEAN"])
@_settings(3)
@given(data=st.data())
def test_float32(family, data):
    check(data.draw(float_cases(family)))


# ----------------------------------------------------------------------------- what TFLM runs, adaptc not (alike)

def _gap(case, id, reason, raises=Refused):
    return pytest.param(case, id=id, marks=pytest.mark.xfail(strict=True, raises=raises, reason=reason))


_OP_1x4x4x3 = dict(shape=(1, 4, 4, 3), const_shape=(1, 1, 1, 3), const_first=False, act="NONE", seed=0)

GAPS = [
    _gap(Case(binary_const, dict(op="MAXIMUM", **_OP_1x4x4x3, in_q=(0.05, 3), const_q=(0.02, -4), out_q=(0.05, 3))),
         "maximum_of_unequal_quantizations",
         "adaptc refuses MAXIMUM / MINIMUM of unequal quantizations; TFLM compares the raw int8 values"),
    _gap(Case(binary_const, dict(op="DIV", **_OP_1x4x4x3, in_q=(0.05, 3), const_q=(0.02, -4), out_q=(0.06, 1))),
         "int8_div", "adaptc refuses int8 DIV; TFLM runs it"),
    _gap(Case(reduce, dict(op="MEAN", shape=(1, 4, 4, 3), axes=[1, 3], keep_dims=False, in_q=(0.1, 2),
                           out_q=(0.05, -3))),
         "mean_over_axes_that_are_not_neighbours", "adaptc reduces over neighbouring axes only; TFLM over any"),
    _gap(Case(reduce, dict(op="MEAN", shape=(2, 3), axes=[0, 1], keep_dims=False, in_q=(0.1, 2), out_q=(0.05, -3))),
         "reduction_to_a_scalar", "adaptc's output has shape (1,), TFLM's () (the one value is equal)",
         raises=AssertionError),
    _gap(Case(unary, dict(op="LOGISTIC", shape=(1, 10), in_q=(0.1, 0), out_q=(1 / 128, -128))),
         "logistic_output_scale_not_1_256", "adaptc refuses; TFLM computes as if the output scale were 1/256"),
    _gap(Case(unary, dict(op="TANH", shape=(1, 10), in_q=(0.1, 0), out_q=(1 / 256, 3))),
         "tanh_output_not_1_128_0", "adaptc refuses; TFLM computes as if the output were (1/128, 0)"),
    _gap(Case(data_movement, dict(shape=(1, 4, 4, 2), in_q=(0.05, 3), op="RESIZE_BILINEAR", params={"size": [8, 8]},
                                  out_q=(0.1, 0))),
         "resize_bilinear_requantizing", "adaptc refuses; TFLM's int8 RESIZE_BILINEAR ignores the output quantization"),
    _gap(Case(depthwise_conv2d, dict(shape=(1, 3, 3, 1), mult=1, kernel=(3, 3), stride=(1, 1), dilation=(1, 1),
                                     padding="SAME", act="NONE", in_q=(0.1, 0), out_zp=0, m_log2=0.0, spread=0,
                                     bias_bits=0, seed=0)),
         "depthwise_one_channel",
         "TVM's TFLite frontend refuses one filter scale on quantized_dimension 3 (ModelLoadError); TFLM runs it"),
    _gap(Case(lstm, dict(shape=(2, 3, 4), units=3, in_q=(0.05, 3), hidden_q=(1 / 128, 0), cell_log2=-12, seed=1)),
         "lstm_batch_2", "adaptc compiles batch-1 LSTMs only; TFLM runs any batch"),
    _gap(Case(unary, dict(op="RELU6", shape=(1, 10), in_q=(0.1, 0), out_q=(0.05, 3))),
         "relu6_requantizing", "adaptc refuses; TFLM's int8 RELU6 clamps the raw input, ignoring the output "
         "quantization (LiteRT requantizes)"),
]


def transpose_conv_act(act):
    rng = np.random.default_rng(0)
    return Model(T.transpose_conv_model((1, 4, 4, 2), _weights(rng, (3, 3, 3, 2)), None, (0.1, 3),
                                        T.QParams(np.full(3, 0.02, F32), 0), (0.5, -2), stride=(2, 2),
                                        activation=act), (1, 4, 4, 2))


GAPS += [
    _gap(Case(transpose_conv_act, dict(act="RELU")), "transpose_conv_fused_activation",
         "adaptc refuses a fused activation; TFLM's TRANSPOSE_CONV ignores it"),
    _gap(Case(transpose_conv, dict(shape=(1, 4, 4, 2), out_c=3, kernel=(1, 1), stride=(1, 1), padding="SAME",
                                   output_delta=(1, 1), in_q=(0.1, 3), out_zp=0, m_log2=0.0, spread=0, bias=False,
                                   seed=0, beyond_scatter=True)),
         "transpose_conv_output_beyond_scatter",
         "adaptc refuses an output a stride or more beyond (in - 1) * stride + kernel; TFLM runs it"),
]


@pytest.mark.parametrize("case", GAPS)
def test_tflm_runs_and_adaptc_refuses_or_differs(case):
    check(case)
