"""Build tiny single-operator TFLite flatbuffer models in memory.

The models are meant for bit-exact kernel testing against TFLite Micro
(and LiteRT's reference kernels): every builder returns the serialized
``.tflite`` bytes of a one-subgraph model with one operator (PAD/RESHAPE
carry a constant int32 side input).

int8 models follow the TFLite quantization spec:

* activations: int8, per-tensor (scale, zero_point)
* conv filters: int8, per-channel symmetric, ``quantized_dimension`` 0 (OHWI)
* depthwise filters: int8, per-channel symmetric, ``quantized_dimension`` 3
  (1, KH, KW, C*mult)
* fully-connected weights: int8, per-tensor symmetric
* biases: int32, scale = in_scale * filter_scale[c], zero point 0

Usage::

    from tflite_ops import QParams, conv2d_model, run_tflm
    buf = conv2d_model((1, 8, 8, 3), w, b, QParams(0.05, -3),
                       QParams(np.full(4, 0.01), 0), QParams(0.1, 2))
    y = run_tflm(buf, x)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import flatbuffers
import numpy as np
import tflite  # flatbuffer schema bindings (prefixed builder functions live at package level)

__all__ = [
    "QParams",
    "conv2d_model",
    "depthwise_conv2d_model",
    "fully_connected_model",
    "add_model",
    "avg_pool_model",
    "max_pool_model",
    "softmax_model",
    "relu_model",
    "relu6_model",
    "pad_model",
    "reshape_model",
    "mean_model",
    "conv2d_model_f32",
    "depthwise_conv2d_model_f32",
    "fully_connected_model_f32",
    "add_model_f32",
    "avg_pool_model_f32",
    "max_pool_model_f32",
    "softmax_model_f32",
    "relu_model_f32",
    "relu6_model_f32",
    "pad_model_f32",
    "reshape_model_f32",
    "mean_model_f32",
    "logistic_model",
    "tanh_model",
    "hard_swish_model",
    "leaky_relu_model",
    "elu_model",
    "quantize_model",
    "logistic_model_f32",
    "tanh_model_f32",
    "hard_swish_model_f32",
    "leaky_relu_model_f32",
    "elu_model_f32",
    "run_tflm",
    "run_litert",
    "conv_output_size",
]

_SCHEMA_VERSION = 3
_FILE_IDENTIFIER = b"TFL3"

_TT = tflite.TensorType
_OP = tflite.BuiltinOperator
_OPT = tflite.BuiltinOptions

_NP_TO_TT = {
    np.dtype(np.int8): _TT.INT8,
    np.dtype(np.uint8): _TT.UINT8,
    np.dtype(np.int16): _TT.INT16,
    np.dtype(np.int32): _TT.INT32,
    np.dtype(np.int64): _TT.INT64,
    np.dtype(np.float32): _TT.FLOAT32,
}

_ACT = {
    "NONE": tflite.ActivationFunctionType.NONE,
    "RELU": tflite.ActivationFunctionType.RELU,
    "RELU6": tflite.ActivationFunctionType.RELU6,
    "RELU_N1_TO_1": tflite.ActivationFunctionType.RELU_N1_TO_1,
}

_PAD = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}


# --------------------------------------------------------------------------
# quantization parameters
# --------------------------------------------------------------------------
@dataclass
class QParams:
    """Quantization parameters of one tensor.

    ``scale``/``zero_point`` are scalars for per-tensor quantization or 1-D
    arrays for per-channel quantization along ``axis``. A scalar zero point
    together with an array of scales is broadcast to every channel.
    """

    scale: float | np.ndarray
    zero_point: int | np.ndarray = 0
    axis: int = 0

    def scales(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.scale, dtype=np.float32)).reshape(-1)

    def zero_points(self) -> np.ndarray:
        zp = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64)).reshape(-1)
        n = self.scales().size
        if zp.size == 1 and n > 1:
            zp = np.full(n, zp[0], dtype=np.int64)
        if zp.size != n:
            raise ValueError(f"QParams: {n} scales but {zp.size} zero points")
        return zp

    @property
    def per_channel(self) -> bool:
        return self.scales().size > 1

    def quantize(self, x: np.ndarray, dtype=np.int8) -> np.ndarray:
        """Per-tensor float -> int quantization (np.round, i.e. half to even); test convenience."""
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, np.float64) / float(self.scales()[0])) + int(self.zero_points()[0])
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, np.float64) - int(self.zero_points()[0])) * float(self.scales()[0])


def _as_q(q) -> QParams:
    if isinstance(q, QParams):
        return q
    if isinstance(q, (tuple, list)) and len(q) in (2, 3):
        return QParams(*q)
    raise TypeError(f"expected QParams or (scale, zero_point), got {q!r}")


# --------------------------------------------------------------------------
# shared model builder
# --------------------------------------------------------------------------
@dataclass
class _Tensor:
    shape: tuple[int, ...]
    ttype: int
    name: str
    buffer: int
    q: QParams | None


@dataclass
class _Operator:
    opcode_index: int
    inputs: list[int]
    outputs: list[int]
    options_type: int
    options_fn: Callable[[flatbuffers.Builder], int] | None


class _ModelBuilder:
    """Collects tensors, buffers, operator codes and operators; ``finish()``
    serializes everything into a TFLite (schema v3) flatbuffer."""

    def __init__(self, description: str = "adaptc test model"):
        self.description = description
        self.buffers: list[bytes] = [b""]  # buffer 0: the conventional empty sentinel
        self.tensors: list[_Tensor] = []
        self.opcodes: list[tuple[int, int]] = []  # (builtin code, version)
        self.operators: list[_Operator] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    # -- tensors ----------------------------------------------------------
    def tensor(self, shape, dtype, name: str, q: QParams | None = None,
               data: np.ndarray | None = None) -> int:
        dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        buf = 0
        if data is not None:
            arr = np.asarray(data)
            if arr.dtype != dtype:
                raise TypeError(f"tensor {name}: data dtype {arr.dtype} != {dtype}")
            if arr.size != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"tensor {name}: {arr.size} elements for shape {shape}")
            self.buffers.append(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())
            buf = len(self.buffers) - 1
        self.tensors.append(_Tensor(shape, _NP_TO_TT[dtype], name, buf, q))
        return len(self.tensors) - 1

    def input(self, shape, dtype, name="input", q=None) -> int:
        t = self.tensor(shape, dtype, name, q)
        self.inputs.append(t)
        return t

    def output(self, shape, dtype, name="output", q=None) -> int:
        t = self.tensor(shape, dtype, name, q)
        self.outputs.append(t)
        return t

    def const(self, data: np.ndarray, name: str, q: QParams | None = None) -> int:
        data = np.asarray(data)
        return self.tensor(data.shape, data.dtype, name, q, data)

    # -- operators --------------------------------------------------------
    def opcode(self, builtin: int, version: int) -> int:
        key = (int(builtin), int(version))
        if key not in self.opcodes:
            self.opcodes.append(key)
        return self.opcodes.index(key)

    def op(self, builtin: int, version: int, inputs: Sequence[int], outputs: Sequence[int],
           options_type: int = _OPT.NONE, options_fn=None) -> None:
        self.operators.append(_Operator(self.opcode(builtin, version), list(inputs),
                                        list(outputs), options_type, options_fn))

    # -- serialization ----------------------------------------------------
    @staticmethod
    def _vec_i32(b: flatbuffers.Builder, values) -> int:
        return b.CreateNumpyVector(np.asarray(list(values), dtype=np.int32).reshape(-1))

    @staticmethod
    def _bytes_vec(b: flatbuffers.Builder, data: bytes, alignment: int = 16) -> int:
        # Align raw buffer data to 16 bytes so int32/float32 constants are
        # naturally aligned when TFLM reads them in place.
        b.StartVector(1, len(data), alignment)
        b.head = b.head - len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        b.vectorNumElems = len(data)
        return b.EndVector()

    def _quant(self, b: flatbuffers.Builder, q: QParams) -> int:
        scale = b.CreateNumpyVector(q.scales().astype(np.float32))
        zp = b.CreateNumpyVector(q.zero_points().astype(np.int64))
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, scale)
        tflite.QuantizationParametersAddZeroPoint(b, zp)
        tflite.QuantizationParametersAddQuantizedDimension(b, int(q.axis))
        return tflite.QuantizationParametersEnd(b)

    def finish(self) -> bytes:
        b = flatbuffers.Builder(1024)

        # buffers
        buf_offs = []
        for data in self.buffers:
            dvec = self._bytes_vec(b, data) if data else None
            tflite.BufferStart(b)
            if dvec is not None:
                tflite.BufferAddData(b, dvec)
            buf_offs.append(tflite.BufferEnd(b))

        # tensors
        ten_offs = []
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = self._vec_i32(b, t.shape)
            quant = self._quant(b, t.q) if t.q is not None else None
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, t.ttype)
            tflite.TensorAddBuffer(b, t.buffer)
            tflite.TensorAddName(b, name)
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            ten_offs.append(tflite.TensorEnd(b))

        # operators
        op_offs = []
        for o in self.operators:
            ins = self._vec_i32(b, o.inputs)
            outs = self._vec_i32(b, o.outputs)
            opts = o.options_fn(b) if o.options_fn is not None else None
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, o.opcode_index)
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, o.options_type)
                tflite.OperatorAddBuiltinOptions(b, opts)
            op_offs.append(tflite.OperatorEnd(b))

        def vec_of(offsets, start_fn):
            start_fn(b, len(offsets))
            for off in reversed(offsets):
                b.PrependUOffsetTRelative(off)
            return b.EndVector()

        tensors_vec = vec_of(ten_offs, tflite.SubGraphStartTensorsVector)
        ops_vec = vec_of(op_offs, tflite.SubGraphStartOperatorsVector)
        sg_in = self._vec_i32(b, self.inputs)
        sg_out = self._vec_i32(b, self.outputs)
        sg_name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, sg_in)
        tflite.SubGraphAddOutputs(b, sg_out)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddName(b, sg_name)
        subgraph = tflite.SubGraphEnd(b)

        code_offs = []
        for builtin, version in self.opcodes:
            tflite.OperatorCodeStart(b)
            # deprecated_builtin_code is an int8; codes >= 127 use the
            # PLACEHOLDER_FOR_GREATER_OP_CODES (127) escape.
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(builtin, 127))
            tflite.OperatorCodeAddBuiltinCode(b, builtin)
            tflite.OperatorCodeAddVersion(b, version)
            code_offs.append(tflite.OperatorCodeEnd(b))

        codes_vec = vec_of(code_offs, tflite.ModelStartOperatorCodesVector)
        subgraphs_vec = vec_of([subgraph], tflite.ModelStartSubgraphsVector)
        buffers_vec = vec_of(buf_offs, tflite.ModelStartBuffersVector)
        desc = b.CreateString(self.description)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, _SCHEMA_VERSION)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, buffers_vec)
        model = tflite.ModelEnd(b)
        b.Finish(model, file_identifier=_FILE_IDENTIFIER)
        return bytes(b.Output())


# --------------------------------------------------------------------------
# option tables
# --------------------------------------------------------------------------
def _act(activation: str) -> int:
    try:
        return _ACT[activation.upper()]
    except KeyError:
        raise ValueError(f"unknown activation {activation!r}") from None


def _padding(padding: str) -> int:
    try:
        return _PAD[padding.upper()]
    except KeyError:
        raise ValueError(f"unknown padding {padding!r}") from None


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, c = v
    return int(a), int(c)


def _conv_opts(stride, dilation, padding, activation):
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)

    def fn(b):
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, _padding(padding))
        tflite.Conv2DOptionsAddStrideH(b, sh)
        tflite.Conv2DOptionsAddStrideW(b, sw)
        tflite.Conv2DOptionsAddDilationHFactor(b, dh)
        tflite.Conv2DOptionsAddDilationWFactor(b, dw)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, _act(activation))
        return tflite.Conv2DOptionsEnd(b)
    return fn


def _dw_opts(depth_multiplier, stride, dilation, padding, activation):
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)

    def fn(b):
        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, _padding(padding))
        tflite.DepthwiseConv2DOptionsAddStrideH(b, sh)
        tflite.DepthwiseConv2DOptionsAddStrideW(b, sw)
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, int(depth_multiplier))
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, dh)
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, dw)
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, _act(activation))
        return tflite.DepthwiseConv2DOptionsEnd(b)
    return fn


def _fc_opts(activation):
    def fn(b):
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, _act(activation))
        tflite.FullyConnectedOptionsAddWeightsFormat(b, tflite.FullyConnectedOptionsWeightsFormat.DEFAULT)
        tflite.FullyConnectedOptionsAddKeepNumDims(b, False)
        return tflite.FullyConnectedOptionsEnd(b)
    return fn


def _add_opts(activation):
    def fn(b):
        tflite.AddOptionsStart(b)
        tflite.AddOptionsAddFusedActivationFunction(b, _act(activation))
        return tflite.AddOptionsEnd(b)
    return fn


def _pool_opts(filter, stride, padding, activation):
    fh, fw = _pair(filter)
    sh, sw = _pair(stride)

    def fn(b):
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, _padding(padding))
        tflite.Pool2DOptionsAddStrideH(b, sh)
        tflite.Pool2DOptionsAddStrideW(b, sw)
        tflite.Pool2DOptionsAddFilterHeight(b, fh)
        tflite.Pool2DOptionsAddFilterWidth(b, fw)
        tflite.Pool2DOptionsAddFusedActivationFunction(b, _act(activation))
        return tflite.Pool2DOptionsEnd(b)
    return fn


def _softmax_opts(beta):
    def fn(b):
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, float(beta))
        return tflite.SoftmaxOptionsEnd(b)
    return fn


def _pad_opts(b):
    tflite.PadOptionsStart(b)
    return tflite.PadOptionsEnd(b)


def _reducer_opts(keep_dims):
    def fn(b):
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, bool(keep_dims))
        return tflite.ReducerOptionsEnd(b)
    return fn


def _reshape_opts(new_shape):
    def fn(b):
        vec = _ModelBuilder._vec_i32(b, new_shape)
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, vec)
        return tflite.ReshapeOptionsEnd(b)
    return fn


# --------------------------------------------------------------------------
# shape helpers
# --------------------------------------------------------------------------
def conv_output_size(in_size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """TFLite output spatial size (``ComputeOutSize``)."""
    eff = (k - 1) * dilation + 1
    if padding.upper() == "SAME":
        return (in_size + stride - 1) // stride
    if padding.upper() == "VALID":
        return (in_size - eff + stride) // stride
    raise ValueError(padding)


def _spatial_out(input_shape, kh, kw, stride, dilation, padding):
    n, h, w, _ = (int(d) for d in input_shape)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    oh = conv_output_size(h, kh, sh, dh, padding)
    ow = conv_output_size(w, kw, sw, dw, padding)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"empty output for input {tuple(input_shape)} kernel {(kh, kw)}")
    return n, oh, ow


def _bias_q(in_q: QParams, w_q: QParams) -> QParams:
    s = in_q.scales().astype(np.float64)[0] * w_q.scales().astype(np.float64)
    return QParams(s.astype(np.float32) if s.size > 1 else float(s[0]),
                   np.zeros(s.size, np.int64) if s.size > 1 else 0, 0)


def _zeros_bias(bias, n, dtype):
    if bias is None:
        return np.zeros(n, dtype)
    bias = np.asarray(bias)
    if bias.shape != (n,):
        raise ValueError(f"bias shape {bias.shape}, expected ({n},)")
    return bias.astype(dtype, copy=False) if bias.dtype == dtype else _strict_cast(bias, dtype)


def _strict_cast(a, dtype):
    a = np.asarray(a)
    out = a.astype(dtype)
    if np.issubdtype(np.dtype(dtype), np.integer) and not np.array_equal(out, a):
        raise ValueError(f"values do not fit {np.dtype(dtype)}")
    return out


def _i8(a):
    a = np.asarray(a)
    if a.dtype != np.int8:
        a = _strict_cast(a, np.int8)
    return a


def _f32(a):
    return np.asarray(a, dtype=np.float32)


# --------------------------------------------------------------------------
# int8 builders
# --------------------------------------------------------------------------
def conv2d_model(input_shape, filter_i8, bias_i32, in_q, filter_q, out_q,
                 stride=(1, 1), dilation=(1, 1), padding="SAME", activation="NONE") -> bytes:
    """int8 CONV_2D (version 3). ``filter_i8`` is OHWI, ``filter_q`` per-channel (axis 0)."""
    in_q, filter_q, out_q = _as_q(in_q), _as_q(filter_q), _as_q(out_q)
    w = _i8(filter_i8)
    o, kh, kw, ci = w.shape
    if ci != input_shape[3]:
        raise ValueError("filter input channels != input channels")
    filter_q = QParams(filter_q.scales() if filter_q.per_channel else np.full(o, filter_q.scales()[0], np.float32),
                       np.zeros(o, np.int64), 0)
    n, oh, ow = _spatial_out(input_shape, kh, kw, stride, dilation, padding)
    m = _ModelBuilder(f"adaptc test: int8 CONV_2D {tuple(input_shape)} k{kh}x{kw} s{_pair(stride)} "
                      f"d{_pair(dilation)} {padding} {activation}")
    x = m.input(input_shape, np.int8, "input", in_q)
    wt = m.const(w, "filter", filter_q)
    bt = m.const(_zeros_bias(bias_i32, o, np.int32), "bias", _bias_q(in_q, filter_q))
    y = m.output((n, oh, ow, o), np.int8, "output", out_q)
    m.op(_OP.CONV_2D, 3, [x, wt, bt], [y], _OPT.Conv2DOptions,
         _conv_opts(stride, dilation, padding, activation))
    return m.finish()


def depthwise_conv2d_model(input_shape, filter_i8, bias_i32, in_q, filter_q, out_q,
                           depth_multiplier=1, stride=(1, 1), dilation=(1, 1), padding="SAME",
                           activation="NONE") -> bytes:
    """int8 DEPTHWISE_CONV_2D (version 3). ``filter_i8`` is (1, KH, KW, C*mult), per-channel axis 3."""
    in_q, filter_q, out_q = _as_q(in_q), _as_q(filter_q), _as_q(out_q)
    w = _i8(filter_i8)
    _, kh, kw, oc = w.shape
    if oc != input_shape[3] * depth_multiplier:
        raise ValueError("filter channels != input channels * depth_multiplier")
    filter_q = QParams(filter_q.scales() if filter_q.per_channel else np.full(oc, filter_q.scales()[0], np.float32),
                       np.zeros(oc, np.int64), 3)
    n, oh, ow = _spatial_out(input_shape, kh, kw, stride, dilation, padding)
    m = _ModelBuilder(f"adaptc test: int8 DEPTHWISE_CONV_2D {tuple(input_shape)} k{kh}x{kw} "
                      f"mult{depth_multiplier} s{_pair(stride)} d{_pair(dilation)} {padding} {activation}")
    x = m.input(input_shape, np.int8, "input", in_q)
    wt = m.const(w, "filter", filter_q)
    bt = m.const(_zeros_bias(bias_i32, oc, np.int32), "bias", _bias_q(in_q, filter_q))
    y = m.output((n, oh, ow, oc), np.int8, "output", out_q)
    m.op(_OP.DEPTHWISE_CONV_2D, 3, [x, wt, bt], [y], _OPT.DepthwiseConv2DOptions,
         _dw_opts(depth_multiplier, stride, dilation, padding, activation))
    return m.finish()


def fully_connected_model(input_shape, weights_i8, bias_i32, in_q, w_q, out_q,
                          activation="NONE") -> bytes:
    """int8 FULLY_CONNECTED (version 4). ``weights_i8`` is (OUT, IN), per-tensor symmetric."""
    in_q, w_q, out_q = _as_q(in_q), _as_q(w_q), _as_q(out_q)
    w = _i8(weights_i8)
    o, i = w.shape
    if int(np.prod(input_shape[1:])) != i:
        raise ValueError("input features != weights IN")
    m = _ModelBuilder(f"adaptc test: int8 FULLY_CONNECTED {tuple(input_shape)} -> {o} {activation}")
    x = m.input(input_shape, np.int8, "input", in_q)
    wt = m.const(w, "weights", QParams(float(w_q.scales()[0]), 0, 0))
    bt = m.const(_zeros_bias(bias_i32, o, np.int32), "bias", _bias_q(in_q, QParams(float(w_q.scales()[0]), 0)))
    y = m.output((int(input_shape[0]), o), np.int8, "output", out_q)
    m.op(_OP.FULLY_CONNECTED, 4, [x, wt, bt], [y], _OPT.FullyConnectedOptions, _fc_opts(activation))
    return m.finish()


def add_model(shape, in1_q, in2_q, out_q, activation="NONE") -> bytes:
    """int8 ADD (version 2) of two same-shaped int8 inputs."""
    m = _ModelBuilder(f"adaptc test: int8 ADD {tuple(shape)} {activation}")
    a = m.input(shape, np.int8, "input1", _as_q(in1_q))
    c = m.input(shape, np.int8, "input2", _as_q(in2_q))
    y = m.output(shape, np.int8, "output", _as_q(out_q))
    m.op(_OP.ADD, 2, [a, c], [y], _OPT.AddOptions, _add_opts(activation))
    return m.finish()


def _pool_model(kind, builtin, version, dtype, input_shape, q, filter, stride, padding, activation):
    fh, fw = _pair(filter)
    n, oh, ow = _spatial_out(input_shape, fh, fw, stride, (1, 1), padding)
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} {kind} {tuple(input_shape)} f{(fh, fw)} "
                      f"s{_pair(stride)} {padding} {activation}")
    x = m.input(input_shape, dtype, "input", q)
    y = m.output((n, oh, ow, int(input_shape[3])), dtype, "output", q)
    m.op(builtin, version, [x], [y], _OPT.Pool2DOptions, _pool_opts(filter, stride, padding, activation))
    return m.finish()


def avg_pool_model(input_shape, q, filter=(2, 2), stride=(2, 2), padding="VALID",
                   activation="NONE") -> bytes:
    """int8 AVERAGE_POOL_2D (version 2); input and output share ``q``."""
    return _pool_model("AVERAGE_POOL_2D", _OP.AVERAGE_POOL_2D, 2, np.int8, input_shape, _as_q(q),
                       filter, stride, padding, activation)


def max_pool_model(input_shape, q, filter=(2, 2), stride=(2, 2), padding="VALID",
                   activation="NONE") -> bytes:
    """int8 MAX_POOL_2D (version 2); input and output share ``q``."""
    return _pool_model("MAX_POOL_2D", _OP.MAX_POOL_2D, 2, np.int8, input_shape, _as_q(q),
                       filter, stride, padding, activation)


def softmax_model(input_shape, in_q, out_q=QParams(1 / 256, -128), beta=1.0) -> bytes:
    """int8 SOFTMAX (version 2) over the last axis. TFLM requires out_q = (1/256, -128)."""
    m = _ModelBuilder(f"adaptc test: int8 SOFTMAX {tuple(input_shape)} beta={beta}")
    x = m.input(input_shape, np.int8, "input", _as_q(in_q))
    y = m.output(input_shape, np.int8, "output", _as_q(out_q))
    m.op(_OP.SOFTMAX, 2, [x], [y], _OPT.SoftmaxOptions, _softmax_opts(beta))
    return m.finish()


def _unary_model(kind, builtin, version, dtype, shape, in_q, out_q):
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} {kind} {tuple(shape)}")
    x = m.input(shape, dtype, "input", in_q)
    y = m.output(shape, dtype, "output", out_q)
    m.op(builtin, version, [x], [y])
    return m.finish()


def relu_model(shape, in_q, out_q=None) -> bytes:
    """int8 RELU (version 2); ``out_q`` defaults to ``in_q``."""
    in_q = _as_q(in_q)
    return _unary_model("RELU", _OP.RELU, 2, np.int8, shape, in_q, _as_q(out_q) if out_q is not None else in_q)


def relu6_model(shape, in_q, out_q=None) -> bytes:
    """int8 RELU6 (version 2); ``out_q`` defaults to ``in_q``.

    Note: TFLM's int8 RELU6 ignores the output quantization (it clamps the raw
    input to [in_zp, quantize(6, in_q)]), whereas LiteRT requantizes to
    ``out_q``; the two only agree when ``out_q == in_q``.
    """
    in_q = _as_q(in_q)
    return _unary_model("RELU6", _OP.RELU6, 2, np.int8, shape, in_q, _as_q(out_q) if out_q is not None else in_q)


def _pad_model(dtype, version, input_shape, paddings, q):
    pads = np.asarray(paddings, dtype=np.int32).reshape(len(input_shape), 2)
    out_shape = tuple(int(d) + int(p[0]) + int(p[1]) for d, p in zip(input_shape, pads))
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} PAD {tuple(input_shape)} {pads.tolist()}")
    x = m.input(input_shape, dtype, "input", q)
    p = m.const(pads, "paddings")
    y = m.output(out_shape, dtype, "output", q)
    m.op(_OP.PAD, version, [x, p], [y], _OPT.PadOptions, _pad_opts)
    return m.finish()


def pad_model(input_shape, paddings, q) -> bytes:
    """int8 PAD (version 2); padding value is the zero point of ``q``."""
    return _pad_model(np.int8, 2, input_shape, paddings, _as_q(q))


def _resolve_shape(input_shape, new_shape):
    new_shape = [int(d) for d in new_shape]
    total = int(np.prod(input_shape))
    if new_shape.count(-1) == 1:
        known = int(np.prod([d for d in new_shape if d != -1]))
        new_shape[new_shape.index(-1)] = total // known
    if int(np.prod(new_shape)) != total:
        raise ValueError(f"cannot reshape {tuple(input_shape)} to {tuple(new_shape)}")
    return tuple(new_shape)


def _reshape_model(dtype, input_shape, new_shape, q):
    out_shape = _resolve_shape(input_shape, new_shape)
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} RESHAPE {tuple(input_shape)} -> {out_shape}")
    x = m.input(input_shape, dtype, "input", q)
    s = m.const(np.asarray(out_shape, np.int32), "shape")
    y = m.output(out_shape, dtype, "output", q)
    m.op(_OP.RESHAPE, 1, [x, s], [y], _OPT.ReshapeOptions, _reshape_opts(out_shape))
    return m.finish()


def reshape_model(input_shape, new_shape, q) -> bytes:
    """int8 RESHAPE (version 1); ``new_shape`` may contain one -1."""
    return _reshape_model(np.int8, input_shape, new_shape, _as_q(q))


def _mean_out_shape(input_shape, axes, keep_dims):
    rank = len(input_shape)
    reduced = {int(a) % rank for a in axes}
    if keep_dims:
        return tuple(1 if i in reduced else int(d) for i, d in enumerate(input_shape))
    return tuple(int(d) for i, d in enumerate(input_shape) if i not in reduced)


def _mean_model(dtype, version, input_shape, axes, keep_dims, in_q, out_q):
    out_shape = _mean_out_shape(input_shape, axes, keep_dims)
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} MEAN {tuple(input_shape)} axes={list(axes)} "
                      f"keep_dims={bool(keep_dims)}")
    x = m.input(input_shape, dtype, "input", in_q)
    a = m.const(np.asarray(axes, np.int32).reshape(-1), "axes")
    y = m.output(out_shape, dtype, "output", out_q)
    m.op(_OP.MEAN, version, [x, a], [y], _OPT.ReducerOptions, _reducer_opts(keep_dims))
    return m.finish()


def mean_model(in_shape, axes, keep_dims, in_q, out_q) -> bytes:
    """int8 MEAN (version 2) over ``axes`` (an int32 constant side input), with ``keep_dims``;
    input and output quantization may differ (TFLM rescales by in_scale / out_scale / count)."""
    return _mean_model(np.int8, 2, in_shape, axes, keep_dims, _as_q(in_q), _as_q(out_q))


# --------------------------------------------------------------------------
# float32 builders
# --------------------------------------------------------------------------
def conv2d_model_f32(input_shape, filter_f32, bias_f32=None, stride=(1, 1), dilation=(1, 1),
                     padding="SAME", activation="NONE") -> bytes:
    """float32 CONV_2D (version 1, 2 with dilation). ``filter_f32`` is OHWI."""
    w = _f32(filter_f32)
    o, kh, kw, ci = w.shape
    if ci != input_shape[3]:
        raise ValueError("filter input channels != input channels")
    n, oh, ow = _spatial_out(input_shape, kh, kw, stride, dilation, padding)
    m = _ModelBuilder(f"adaptc test: f32 CONV_2D {tuple(input_shape)} k{kh}x{kw} s{_pair(stride)} "
                      f"d{_pair(dilation)} {padding} {activation}")
    x = m.input(input_shape, np.float32, "input")
    wt = m.const(w, "filter")
    bt = m.const(_zeros_bias(bias_f32, o, np.float32), "bias")
    y = m.output((n, oh, ow, o), np.float32, "output")
    version = 1 if _pair(dilation) == (1, 1) else 2
    m.op(_OP.CONV_2D, version, [x, wt, bt], [y], _OPT.Conv2DOptions,
         _conv_opts(stride, dilation, padding, activation))
    return m.finish()


def depthwise_conv2d_model_f32(input_shape, filter_f32, bias_f32=None, depth_multiplier=1,
                               stride=(1, 1), dilation=(1, 1), padding="SAME",
                               activation="NONE") -> bytes:
    """float32 DEPTHWISE_CONV_2D (version 1, 2 with dilation). ``filter_f32`` is (1, KH, KW, C*mult)."""
    w = _f32(filter_f32)
    _, kh, kw, oc = w.shape
    if oc != input_shape[3] * depth_multiplier:
        raise ValueError("filter channels != input channels * depth_multiplier")
    n, oh, ow = _spatial_out(input_shape, kh, kw, stride, dilation, padding)
    m = _ModelBuilder(f"adaptc test: f32 DEPTHWISE_CONV_2D {tuple(input_shape)} k{kh}x{kw} "
                      f"mult{depth_multiplier} s{_pair(stride)} d{_pair(dilation)} {padding} {activation}")
    x = m.input(input_shape, np.float32, "input")
    wt = m.const(w, "filter")
    bt = m.const(_zeros_bias(bias_f32, oc, np.float32), "bias")
    y = m.output((n, oh, ow, oc), np.float32, "output")
    version = 1 if _pair(dilation) == (1, 1) else 2
    m.op(_OP.DEPTHWISE_CONV_2D, version, [x, wt, bt], [y], _OPT.DepthwiseConv2DOptions,
         _dw_opts(depth_multiplier, stride, dilation, padding, activation))
    return m.finish()


def fully_connected_model_f32(input_shape, weights_f32, bias_f32=None, activation="NONE") -> bytes:
    """float32 FULLY_CONNECTED (version 1). ``weights_f32`` is (OUT, IN)."""
    w = _f32(weights_f32)
    o, i = w.shape
    if int(np.prod(input_shape[1:])) != i:
        raise ValueError("input features != weights IN")
    m = _ModelBuilder(f"adaptc test: f32 FULLY_CONNECTED {tuple(input_shape)} -> {o} {activation}")
    x = m.input(input_shape, np.float32, "input")
    wt = m.const(w, "weights")
    bt = m.const(_zeros_bias(bias_f32, o, np.float32), "bias")
    y = m.output((int(input_shape[0]), o), np.float32, "output")
    m.op(_OP.FULLY_CONNECTED, 1, [x, wt, bt], [y], _OPT.FullyConnectedOptions, _fc_opts(activation))
    return m.finish()


def add_model_f32(shape, activation="NONE") -> bytes:
    """float32 ADD (version 1) of two same-shaped inputs."""
    m = _ModelBuilder(f"adaptc test: f32 ADD {tuple(shape)} {activation}")
    a = m.input(shape, np.float32, "input1")
    c = m.input(shape, np.float32, "input2")
    y = m.output(shape, np.float32, "output")
    m.op(_OP.ADD, 1, [a, c], [y], _OPT.AddOptions, _add_opts(activation))
    return m.finish()


def avg_pool_model_f32(input_shape, filter=(2, 2), stride=(2, 2), padding="VALID",
                       activation="NONE") -> bytes:
    """float32 AVERAGE_POOL_2D (version 1)."""
    return _pool_model("AVERAGE_POOL_2D", _OP.AVERAGE_POOL_2D, 1, np.float32, input_shape, None,
                       filter, stride, padding, activation)


def max_pool_model_f32(input_shape, filter=(2, 2), stride=(2, 2), padding="VALID",
                       activation="NONE") -> bytes:
    """float32 MAX_POOL_2D (version 1)."""
    return _pool_model("MAX_POOL_2D", _OP.MAX_POOL_2D, 1, np.float32, input_shape, None,
                       filter, stride, padding, activation)


def softmax_model_f32(input_shape, beta=1.0) -> bytes:
    """float32 SOFTMAX (version 1) over the last axis."""
    m = _ModelBuilder(f"adaptc test: f32 SOFTMAX {tuple(input_shape)} beta={beta}")
    x = m.input(input_shape, np.float32, "input")
    y = m.output(input_shape, np.float32, "output")
    m.op(_OP.SOFTMAX, 1, [x], [y], _OPT.SoftmaxOptions, _softmax_opts(beta))
    return m.finish()


def relu_model_f32(shape) -> bytes:
    """float32 RELU (version 1)."""
    return _unary_model("RELU", _OP.RELU, 1, np.float32, shape, None, None)


def relu6_model_f32(shape) -> bytes:
    """float32 RELU6 (version 1)."""
    return _unary_model("RELU6", _OP.RELU6, 1, np.float32, shape, None, None)


def pad_model_f32(input_shape, paddings) -> bytes:
    """float32 PAD (version 1), zero padding."""
    return _pad_model(np.float32, 1, input_shape, paddings, None)


def reshape_model_f32(input_shape, new_shape) -> bytes:
    """float32 RESHAPE (version 1)."""
    return _reshape_model(np.float32, input_shape, new_shape, None)


def mean_model_f32(in_shape, axes, keep_dims) -> bytes:
    """float32 MEAN (version 1) over ``axes`` with ``keep_dims``."""
    return _mean_model(np.float32, 1, in_shape, axes, keep_dims, None, None)


# --------------------------------------------------------------------------
# unary activations with a lookup-table int8 form (int8 and float32)
# --------------------------------------------------------------------------
def _leaky_relu_opts(alpha):
    def fn(b):
        tflite.LeakyReluOptionsStart(b)
        tflite.LeakyReluOptionsAddAlpha(b, float(alpha))
        return tflite.LeakyReluOptionsEnd(b)
    return fn


def _leaky_relu_model(dtype, version, shape, in_q, out_q, alpha):
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} LEAKY_RELU {tuple(shape)} alpha={alpha}")
    x = m.input(shape, dtype, "input", in_q)
    y = m.output(shape, dtype, "output", out_q)
    m.op(_OP.LEAKY_RELU, version, [x], [y], _OPT.LeakyReluOptions, _leaky_relu_opts(alpha))
    return m.finish()


def logistic_model(shape, in_q, out_q=QParams(1 / 256, -128)) -> bytes:
    """int8 LOGISTIC (version 2). TFLM refuses an output zero point other than -128 and
    assumes (without checking) an output scale of 1/256."""
    return _unary_model("LOGISTIC", _OP.LOGISTIC, 2, np.int8, shape, _as_q(in_q), _as_q(out_q))


def tanh_model(shape, in_q, out_q=QParams(1 / 128, 0)) -> bytes:
    """int8 TANH (version 2). TFLM assumes (without checking) output (1/128, 0)."""
    return _unary_model("TANH", _OP.TANH, 2, np.int8, shape, _as_q(in_q), _as_q(out_q))


def hard_swish_model(shape, in_q, out_q) -> bytes:
    """int8 HARD_SWISH (version 1). TFLM refuses in_scale / out_scale >= 128."""
    return _unary_model("HARD_SWISH", _OP.HARD_SWISH, 1, np.int8, shape, _as_q(in_q), _as_q(out_q))


def leaky_relu_model(shape, in_q, out_q, alpha=0.2) -> bytes:
    """int8 LEAKY_RELU (version 2) with LeakyReluOptions ``alpha`` (any sign)."""
    return _leaky_relu_model(np.int8, 2, shape, _as_q(in_q), _as_q(out_q), alpha)


def elu_model(shape, in_q, out_q) -> bytes:
    """int8 ELU (version 2); TFLM evaluates it through a table computed in float32."""
    return _unary_model("ELU", _OP.ELU, 2, np.int8, shape, _as_q(in_q), _as_q(out_q))


def quantize_model(shape, in_q, out_q) -> bytes:
    """int8 -> int8 QUANTIZE (version 2): a requantization from ``in_q`` to ``out_q``."""
    return _unary_model("QUANTIZE", _OP.QUANTIZE, 2, np.int8, shape, _as_q(in_q), _as_q(out_q))


def logistic_model_f32(shape) -> bytes:
    """float32 LOGISTIC (version 1)."""
    return _unary_model("LOGISTIC", _OP.LOGISTIC, 1, np.float32, shape, None, None)


def tanh_model_f32(shape) -> bytes:
    """float32 TANH (version 1)."""
    return _unary_model("TANH", _OP.TANH, 1, np.float32, shape, None, None)


def hard_swish_model_f32(shape) -> bytes:
    """float32 HARD_SWISH (version 1)."""
    return _unary_model("HARD_SWISH", _OP.HARD_SWISH, 1, np.float32, shape, None, None)


def leaky_relu_model_f32(shape, alpha=0.2) -> bytes:
    """float32 LEAKY_RELU (version 1) with LeakyReluOptions ``alpha``."""
    return _leaky_relu_model(np.float32, 1, shape, None, None, alpha)


def elu_model_f32(shape) -> bytes:
    """float32 ELU (version 1)."""
    return _unary_model("ELU", _OP.ELU, 1, np.float32, shape, None, None)


# --------------------------------------------------------------------------
# runners
# --------------------------------------------------------------------------
def run_tflm(model: bytes, *inputs: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Run the model in the TFLite Micro Python interpreter; return output 0."""
    from tflite_micro import runtime as tflm

    if arena_size is None:
        io_bytes = sum(np.asarray(x).nbytes for x in inputs)
        arena_size = max(1 << 20, 16 * (len(model) + io_bytes))
    interp = tflm.Interpreter.from_bytes(bytes(model), arena_size=arena_size)
    for i, x in enumerate(inputs):
        interp.set_input(np.ascontiguousarray(x), i)
    interp.invoke()
    return np.array(interp.get_output(0), copy=True)


def run_litert(model: bytes, *inputs: np.ndarray) -> np.ndarray:
    """Run the model in LiteRT with its reference kernels (no XNNPACK), one thread."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=bytes(model), num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    details = interp.get_input_details()
    if len(details) != len(inputs):
        raise ValueError(f"model has {len(details)} inputs, got {len(inputs)}")
    for d, x in zip(details, inputs):
        interp.set_tensor(d["index"], np.ascontiguousarray(x))
    interp.invoke()
    out = interp.get_output_details()[0]
    return np.array(interp.get_tensor(out["index"]), copy=True)


# --------------------------------------------------------------------------
# MUL with broadcasting (int8 and float32)
# --------------------------------------------------------------------------
def _mul_opts(activation):
    def fn(b):
        tflite.MulOptionsStart(b)
        tflite.MulOptionsAddFusedActivationFunction(b, _act(activation))
        return tflite.MulOptionsEnd(b)
    return fn


def _mul_model(dtype, version, shape1, shape2, in1_q, in2_q, out_q, activation, const2):
    out_shape = tuple(int(d) for d in np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} MUL {tuple(shape1)} x {tuple(shape2)}"
                      f"{' (constant)' if const2 is not None else ''} {activation}")
    a = m.input(shape1, dtype, "input1", in1_q)
    if const2 is None:
        c = m.input(shape2, dtype, "input2", in2_q)
    else:
        data = np.asarray(const2, dtype)
        if data.shape != tuple(shape2):
            raise ValueError(f"const2 shape {data.shape} != shape2 {tuple(shape2)}")
        c = m.tensor(shape2, dtype, "input2", in2_q, data)
    y = m.output(out_shape, dtype, "output", out_q)
    m.op(_OP.MUL, version, [a, c], [y], _OPT.MulOptions, _mul_opts(activation))
    return m.finish()


def mul_model(shape1, shape2, in1_q, in2_q, out_q, activation="NONE", const2=None) -> bytes:
    """int8 MUL (version 2), broadcasting ``shape1`` against ``shape2`` (NumPy's rule, as
    TFLM's BroadcastMul6DSlow); ``const2`` (int8, ``shape2``) makes the second input a constant
    tensor, else the model has two inputs."""
    return _mul_model(np.int8, 2, shape1, shape2, _as_q(in1_q), _as_q(in2_q), _as_q(out_q), activation,
                      None if const2 is None else _i8(const2))


def mul_model_f32(shape1, shape2, activation="NONE", const2=None) -> bytes:
    """float32 MUL (version 1), broadcasting; ``const2`` (float32, ``shape2``) as in ``mul_model``."""
    return _mul_model(np.float32, 1, shape1, shape2, None, None, None, activation,
                      None if const2 is None else _f32(const2))


# --------------------------------------------------------------------------
# small int8 graphs (one input): element-wise chains and MUL of two activations
# --------------------------------------------------------------------------
_UNARY_OPS = {  # name -> (builtin, int8 version, options type, options builder of alpha or None)
    "LOGISTIC": (_OP.LOGISTIC, 2, _OPT.NONE, None),
    "TANH": (_OP.TANH, 2, _OPT.NONE, None),
    "HARD_SWISH": (_OP.HARD_SWISH, 1, _OPT.NONE, None),
    "LEAKY_RELU": (_OP.LEAKY_RELU, 2, _OPT.LeakyReluOptions, _leaky_relu_opts),
    "ELU": (_OP.ELU, 2, _OPT.NONE, None),
    "RELU": (_OP.RELU, 2, _OPT.NONE, None),
}


def unary_chain_model(shape, ops, qs) -> bytes:
    """int8 chain of element-wise operators: ``ops`` names from LOGISTIC, TANH, HARD_SWISH,
    LEAKY_RELU, ELU, RELU, or (name, alpha) for LEAKY_RELU; ``qs`` the quantization of the
    input and of each operator's output (len(ops) + 1 entries)."""
    if len(qs) != len(ops) + 1:
        raise ValueError(f"{len(ops)} operators need {len(ops) + 1} quantizations, got {len(qs)}")
    names = [op if isinstance(op, str) else op[0] for op in ops]
    m = _ModelBuilder(f"adaptc test: int8 {' -> '.join(names)} {tuple(shape)}")
    t = m.input(shape, np.int8, "input", _as_q(qs[0]))
    for k, (op, q) in enumerate(zip(ops, qs[1:])):
        name, alpha = (op, 0.2) if isinstance(op, str) else op
        builtin, version, opt_type, opts = _UNARY_OPS[name]
        y = m.output(shape, np.int8, "output", _as_q(q)) if k == len(ops) - 1 else \
            m.tensor(shape, np.int8, f"{name.lower()}_{k}", _as_q(q))
        m.op(builtin, version, [t], [y], opt_type, opts(alpha) if opts else None)
        t = y
    return m.finish()


def mul_branch_model(shape, in_q, out_q, branch="self", branch_q=None, weights=None, swap=False,
                     activation="NONE", dtype=np.int8) -> bytes:
    """MUL of the input by a second activation computed from it (one model input):

    * ``branch="self"``: MUL(x, x), the same tensor twice;
    * ``"mean"``: MEAN over H, W (keep_dims) -> [1, 1, 1, C], a squeeze-excitation gate;
    * ``"conv"``: a 1x1 CONV_2D to one channel (``weights``: int8 (1, 1, 1, C) for int8, float
      for float32) -> [1, H, W, 1], a spatial gate.

    ``swap`` puts the branch first (broadcasting the first operand). int8: ``branch_q`` is the
    branch's quantization (the conv's filter is per-tensor 1/64); float32: no quantization."""
    int8 = np.dtype(dtype) == np.int8

    def q(v):
        return _as_q(v) if int8 else None

    n, h, w, c = (int(d) for d in shape)
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} MUL(x, {branch}(x)) {tuple(shape)} {activation}")
    x = m.input(shape, dtype, "input", q(in_q))
    if branch == "self":
        b = x
    elif branch == "mean":
        b = m.tensor((n, 1, 1, c), dtype, "mean", q(branch_q))
        axes = m.const(np.asarray([1, 2], np.int32), "axes")
        m.op(_OP.MEAN, 2 if int8 else 1, [x, axes], [b], _OPT.ReducerOptions, _reducer_opts(True))
    elif branch == "conv":
        b = m.tensor((n, h, w, 1), dtype, "gate", q(branch_q))
        if int8:
            w_q = QParams(np.full(1, 1 / 64, np.float32), np.zeros(1, np.int64), 0)
            wt = m.const(_i8(weights).reshape(1, 1, 1, c), "filter", w_q)
            bt = m.const(np.zeros(1, np.int32), "bias", _bias_q(_as_q(in_q), w_q))
        else:
            wt = m.const(_f32(weights).reshape(1, 1, 1, c), "filter")
            bt = m.const(np.zeros(1, np.float32), "bias")
        m.op(_OP.CONV_2D, 3 if int8 else 1, [x, wt, bt], [b], _OPT.Conv2DOptions,
             _conv_opts(1, 1, "SAME", "NONE"))
    else:
        raise ValueError(f"unknown branch {branch!r}")
    y = m.output(shape, dtype, "output", q(out_q))
    m.op(_OP.MUL, 2 if int8 else 1, [b, x] if swap else [x, b], [y], _OPT.MulOptions, _mul_opts(activation))
    return m.finish()


# --------------------------------------------------------------------------
# element-wise binary operators with broadcasting (int8 and float32)
# --------------------------------------------------------------------------
def _fused_opts(prefix):
    def make(activation):
        def fn(b):
            getattr(tflite, f"{prefix}OptionsStart")(b)
            getattr(tflite, f"{prefix}OptionsAddFusedActivationFunction")(b, _act(activation))
            return getattr(tflite, f"{prefix}OptionsEnd")(b)
        return fn
    return make


def _empty_opts(prefix):
    def make(activation):
        if activation != "NONE":
            raise ValueError(f"{prefix} has no fused activation")

        def fn(b):
            getattr(tflite, f"{prefix}OptionsStart")(b)
            return getattr(tflite, f"{prefix}OptionsEnd")(b)
        return fn
    return make


# name -> (builtin, int8 version, float version, options type, options builder of the activation)
_BINARY_OPS = {
    "ADD": (_OP.ADD, 2, 1, _OPT.AddOptions, _fused_opts("Add")),
    "SUB": (_OP.SUB, 2, 1, _OPT.SubOptions, _fused_opts("Sub")),
    "MUL": (_OP.MUL, 2, 1, _OPT.MulOptions, _fused_opts("Mul")),
    "DIV": (_OP.DIV, 2, 1, _OPT.DivOptions, _fused_opts("Div")),
    "MAXIMUM": (_OP.MAXIMUM, 2, 1, _OPT.MaximumMinimumOptions, _empty_opts("MaximumMinimum")),
    "MINIMUM": (_OP.MINIMUM, 2, 1, _OPT.MaximumMinimumOptions, _empty_opts("MaximumMinimum")),
    "SQUARED_DIFFERENCE": (_OP.SQUARED_DIFFERENCE, 2, 1, _OPT.SquaredDifferenceOptions,
                           _empty_opts("SquaredDifference")),
}


def binary_model(op, shape1, shape2, in1_q=None, in2_q=None, out_q=None, activation="NONE", const1=None,
                 const2=None, dtype=np.int8) -> bytes:
    """One element-wise binary operator (ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE),
    broadcasting ``shape1`` against ``shape2`` (NumPy's rule). ``const1`` / ``const2`` (of
    ``dtype``, the operand's shape) make that operand a constant tensor, else it is a model input.
    int8: ``in1_q``, ``in2_q``, ``out_q`` the per-tensor quantizations; float32: none."""
    builtin, v8, vf, opt_type, opts = _BINARY_OPS[op]
    int8 = np.dtype(dtype) == np.int8
    cast = _i8 if int8 else _f32

    def q(v):
        return _as_q(v) if int8 else None

    out_shape = tuple(int(d) for d in np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} {op} {tuple(shape1)} x {tuple(shape2)} {activation}")
    operands = []
    for k, (shape, qk, const) in enumerate(((shape1, in1_q, const1), (shape2, in2_q, const2)), start=1):
        if const is None:
            operands.append(m.input(shape, dtype, f"input{k}", q(qk)))
            continue
        data = cast(const)
        if data.shape != tuple(shape):
            raise ValueError(f"const{k} shape {data.shape} != shape{k} {tuple(shape)}")
        operands.append(m.tensor(shape, dtype, f"input{k}", q(qk), data))
    y = m.output(out_shape, dtype, "output", q(out_q))
    m.op(builtin, v8 if int8 else vf, operands, [y], opt_type, opts(activation))
    return m.finish()


# --------------------------------------------------------------------------
# UNIDIRECTIONAL_SEQUENCE_LSTM (int8 activations, int16 cell state; float32)
# --------------------------------------------------------------------------
class _VariableTensorsBuilder(_ModelBuilder):
    """A _ModelBuilder whose tensors in ``variables`` are marked ``is_variable`` (an LSTM's
    hidden and cell states, which TFLite Micro resets to their zero points)."""

    def __init__(self, description: str):
        super().__init__(description)
        self.variables: set[int] = set()

    def finish(self) -> bytes:
        original = tflite.TensorAddType
        order = iter(range(len(self.tensors)))

        def add_type(b, ttype):
            original(b, ttype)
            if next(order) in self.variables:
                tflite.TensorAddIsVariable(b, True)

        tflite.TensorAddType = add_type
        try:
            return super().finish()
        finally:
            tflite.TensorAddType = original


def _lstm_opts(activation, cell_clip, time_major):
    def fn(b):
        tflite.UnidirectionalSequenceLSTMOptionsStart(b)
        tflite.UnidirectionalSequenceLSTMOptionsAddFusedActivationFunction(
            b, {"TANH": tflite.ActivationFunctionType.TANH, "RELU": tflite.ActivationFunctionType.RELU}[activation])
        tflite.UnidirectionalSequenceLSTMOptionsAddCellClip(b, float(cell_clip))
        tflite.UnidirectionalSequenceLSTMOptionsAddProjClip(b, 0.0)
        tflite.UnidirectionalSequenceLSTMOptionsAddTimeMajor(b, bool(time_major))
        return tflite.UnidirectionalSequenceLSTMOptionsEnd(b)
    return fn


def lstm_model(input_shape, units, in_q, hidden_q, seed=0, cell_scale=2.0 ** -12, cell_clip=10.0,
               activation="TANH", time_major=False, variant=None, dtype=np.int8, weight_std=0.4) -> bytes:
    """One UNIDIRECTIONAL_SEQUENCE_LSTM (version 1) as the TFLite converter writes a Keras LSTM
    (``return_sequences=True``): input [batch, time, features] (``time_major``: [time, batch,
    features]), gates input / forget / cell / output with their weights drawn N(0, weight_std) and
    biases N(0, 0.1) (forget + 1) from ``seed``, output [.., units] = the hidden state.

    int8 (``dtype``): weights per-tensor symmetric (max |w| / 127), biases int32 at scale
    in_scale * w_scale, the hidden state (and output) at ``hidden_q``, the cell state int16 at
    ``cell_scale`` (the converter picks a power of two), both states variable tensors.
    float32: the same float weights, no quantization. ``variant`` adds what a Keras LSTM has
    not: "peephole" (cell_to_gate weights), "projection" (projection weights), "layer_norm"
    (layer-norm coefficients) or "cifg" (no input gate)."""
    rng = np.random.default_rng(seed)
    int8 = np.dtype(dtype) == np.int8
    shape = tuple(int(d) for d in input_shape)
    batch = shape[1] if time_major else shape[0]
    features = shape[2]
    m = _VariableTensorsBuilder(f"adaptc test: {np.dtype(dtype).name} UNIDIRECTIONAL_SEQUENCE_LSTM {shape} "
                                f"units {units} {variant or ''}")
    in_q = _as_q(in_q) if int8 else None
    x = m.input(shape, dtype, "input", in_q)

    def weights(rows, cols, name):
        w = rng.normal(0, weight_std, (rows, cols)).astype(np.float32)
        if not int8:
            return m.const(w, name), None
        s = float(np.float32(np.abs(w).max() / 127))
        q = QParams(s, 0)
        return m.const(np.clip(np.round(w / s), -127, 127).astype(np.int8), name, q), q

    gates = ("input", "forget", "cell", "output")
    w_in, w_rec, biases = {}, {}, {}
    for g in gates:
        w_in[g], wq = weights(units, features, f"input_to_{g}_weights")
        w_rec[g], _ = weights(units, units, f"recurrent_to_{g}_weights")
        b = rng.normal(1.0 if g == "forget" else 0.0, 0.1, units).astype(np.float32)
        if int8:
            bq = _bias_q(in_q, wq)
            biases[g] = m.const(np.round(b / bq.scales()[0]).astype(np.int32), f"{g}_gate_bias", bq)
        else:
            biases[g] = m.const(b, f"{g}_gate_bias")
    state_shape = (batch, units)
    h = m.tensor(state_shape, dtype, "output_state", _as_q(hidden_q) if int8 else None)
    c = m.tensor(state_shape, np.int16 if int8 else dtype, "cell_state", QParams(cell_scale, 0) if int8 else None)
    m.variables |= {h, c}
    ins = [x, w_in["input"], w_in["forget"], w_in["cell"], w_in["output"],
           w_rec["input"], w_rec["forget"], w_rec["cell"], w_rec["output"], -1, -1, -1,
           biases["input"], biases["forget"], biases["cell"], biases["output"], -1, -1, h, c, -1, -1, -1, -1]
    if variant == "peephole":
        for i in (9, 10, 11):
            ins[i] = m.const(np.ones(units, np.int16 if int8 else np.float32), f"peephole_{i}",
                             QParams(2.0 ** -10, 0) if int8 else None)
    elif variant == "projection":
        ins[16], _ = weights(units, units, "projection_weights")
    elif variant == "layer_norm":
        for i in (20, 21, 22, 23):
            ins[i] = m.const(np.ones(units, np.int16 if int8 else np.float32), f"layer_norm_{i}",
                             QParams(2.0 ** -10, 0) if int8 else None)
    elif variant == "cifg":
        ins[1] = ins[5] = ins[12] = -1
    elif variant is not None:
        raise ValueError(f"unknown LSTM variant {variant!r}")
    out_shape = (shape[0], shape[1], units)
    y = m.output(out_shape, dtype, "output", _as_q(hidden_q) if int8 else None)
    m.op(_OP.UNIDIRECTIONAL_SEQUENCE_LSTM, 1, ins, [y], _OPT.UnidirectionalSequenceLSTMOptions,
         _lstm_opts(activation, cell_clip, time_major))
    return m.finish()


# --------------------------------------------------------------------------
# data movement and quantization: chains of single-input operators
# --------------------------------------------------------------------------
def _options(name, **fields):
    """An options-table builder: tflite.<name>Start, one Add<Field> per keyword, End."""
    def fn(b):
        getattr(tflite, f"{name}Start")(b)
        for field, value in fields.items():
            getattr(tflite, f"{name}Add{field}")(b, value)
        return getattr(tflite, f"{name}End")(b)
    return fn


def _pads(shape, paddings):
    return np.asarray(paddings, np.int32).reshape(len(shape), 2)


def _mirror_out(shape, p):
    return tuple(int(d) + int(a) + int(b) for d, (a, b) in zip(shape, _pads(shape, p["paddings"])))


def _d2s_out(shape, p):
    n, h, w, c = shape
    k = int(p["block"])
    return (n, h * k, w * k, c // (k * k))


def _s2d_out(shape, p):
    n, h, w, c = shape
    k = int(p["block"])
    return (n, h // k, w // k, c * k * k)


def _pack_out(shape, p):
    out = list(shape)
    out.insert(int(p["axis"]) % (len(shape) + 1), int(p.get("count", 2)))
    return tuple(out)


def _unpack_out(shape, p):
    return tuple(d for i, d in enumerate(shape) if i != int(p["axis"]) % len(shape))


def _argmax_out(shape, p):
    return tuple(d for i, d in enumerate(shape) if i != int(p["axis"]) % len(shape))


_DATA_OPS = {  # name -> (builtin, version, out shape of (in shape, params), (options type, builder) of params)
    "TRANSPOSE": (_OP.TRANSPOSE, 2, lambda s, p: tuple(s[i] for i in p["perm"]),
                  lambda p: (_OPT.TransposeOptions, _options("TransposeOptions"))),
    "PACK": (_OP.PACK, 2, _pack_out, lambda p: (_OPT.PackOptions, _options(
        "PackOptions", ValuesCount=int(p.get("count", 2)), Axis=int(p["axis"])))),
    "UNPACK": (_OP.UNPACK, 2, _unpack_out, lambda p: (_OPT.UnpackOptions, _options(
        "UnpackOptions", Num=int(p["num"]), Axis=int(p["axis"])))),
    "DEPTH_TO_SPACE": (_OP.DEPTH_TO_SPACE, 2, _d2s_out, lambda p: (_OPT.DepthToSpaceOptions, _options(
        "DepthToSpaceOptions", BlockSize=int(p["block"])))),
    "SPACE_TO_DEPTH": (_OP.SPACE_TO_DEPTH, 2, _s2d_out, lambda p: (_OPT.SpaceToDepthOptions, _options(
        "SpaceToDepthOptions", BlockSize=int(p["block"])))),
    "PADV2": (_OP.PADV2, 2, _mirror_out, lambda p: (_OPT.PadV2Options, _options("PadV2Options"))),
    "MIRROR_PAD": (_OP.MIRROR_PAD, 2, _mirror_out, lambda p: (_OPT.MirrorPadOptions, _options(
        "MirrorPadOptions", Mode={"REFLECT": 0, "SYMMETRIC": 1}[p["mode"]]))),
    "QUANTIZE": (_OP.QUANTIZE, 2, lambda s, p: tuple(s), lambda p: (_OPT.NONE, None)),
    "DEQUANTIZE": (_OP.DEQUANTIZE, 2, lambda s, p: tuple(s), lambda p: (_OPT.NONE, None)),
    "RESIZE_BILINEAR": (_OP.RESIZE_BILINEAR, 3, lambda s, p: (s[0], *p["size"], s[3]),
                        lambda p: (_OPT.ResizeBilinearOptions, _options(
                            "ResizeBilinearOptions", AlignCorners=bool(p.get("align_corners", False)),
                            HalfPixelCenters=bool(p.get("half_pixel_centers", False))))),
    "ARG_MAX": (_OP.ARG_MAX, 2, _argmax_out, lambda p: (_OPT.ArgMaxOptions, _options(
        "ArgMaxOptions", OutputType=_TT.INT32))),
}


def data_movement_model(shape, dtype, in_q, ops) -> bytes:
    """A chain of single-input operators from one model input of ``shape`` / ``dtype`` / ``in_q``.

    ``ops``: (name, out dtype, out quantization or None, params) per operator, names from
    TRANSPOSE (perm), PACK (axis, count: a first PACK packs ``count`` model inputs, a later one
    ``count`` times its input), UNPACK (axis, num: a last UNPACK's parts are all model outputs),
    DEPTH_TO_SPACE / SPACE_TO_DEPTH (block), PADV2 (paddings, value: of the input's dtype, int8
    raw), MIRROR_PAD (paddings, mode REFLECT | SYMMETRIC), QUANTIZE, DEQUANTIZE,
    RESIZE_BILINEAR (size, align_corners, half_pixel_centers), ARG_MAX (axis; int32 output)."""
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} {' -> '.join(o[0] for o in ops)} {tuple(shape)}")
    q = _as_q(in_q) if in_q is not None else None
    t = m.input(shape, dtype, "input", q)
    shape = tuple(int(d) for d in shape)
    for k, (name, out_dtype, out_q, params) in enumerate(ops):
        builtin, version, out_of, opts = _DATA_OPS[name]
        last = k == len(ops) - 1
        out_shape = out_of(shape, params)
        oq = _as_q(out_q) if out_q is not None else None
        ins = [t]
        if name == "PACK":
            count = int(params.get("count", 2))
            ins = [t] + [m.input(shape, dtype, f"input{i}", q) if k == 0 else t for i in range(1, count)]
        elif name == "TRANSPOSE":
            ins.append(m.const(np.asarray(params["perm"], np.int32), f"perm_{k}"))
        elif name in ("PADV2", "MIRROR_PAD"):
            ins.append(m.const(_pads(shape, params["paddings"]), f"paddings_{k}"))
            if name == "PADV2":
                ins.append(m.const(np.asarray([params["value"]], dtype), f"value_{k}", q))
        elif name == "RESIZE_BILINEAR":
            ins.append(m.const(np.asarray(params["size"], np.int32), f"size_{k}"))
        elif name == "ARG_MAX":
            ins.append(m.const(np.asarray([params["axis"]], np.int32), f"axis_{k}"))
        if name == "UNPACK":
            outs = [m.output(out_shape, out_dtype, f"output{i}", oq) if last else
                    m.tensor(out_shape, out_dtype, f"part{k}_{i}", oq) for i in range(int(params["num"]))]
        else:
            outs = [m.output(out_shape, out_dtype, "output", oq) if last else
                    m.tensor(out_shape, out_dtype, f"{name.lower()}_{k}", oq)]
        m.op(builtin, version, ins, outs, *opts(params))
        t, shape, dtype, q = outs[0], out_shape, out_dtype, oq
    return m.finish()


def run_tflm_all(model: bytes, *inputs: np.ndarray) -> list[np.ndarray]:
    """Run the model in the TFLite Micro Python interpreter; return every output."""
    from tflite_micro import runtime as tflm

    interp = tflm.Interpreter.from_bytes(bytes(model), arena_size=max(1 << 20, 16 * len(model)))
    for i, x in enumerate(inputs):
        interp.set_input(np.ascontiguousarray(x), i)
    interp.invoke()
    outs, i = [], 0
    while True:
        try:
            outs.append(np.array(interp.get_output(i), copy=True))
        except Exception:   # past the last output
            return outs
        i += 1


# --------------------------------------------------------------------------
# reductions (SUM, REDUCE_MAX, MEAN), LOG_SOFTMAX, BATCH_MATMUL (int8 and float32)
# --------------------------------------------------------------------------
def reduce_model(op, in_shape, axes, keep_dims, in_q=None, out_q=None) -> bytes:
    """``op`` ("SUM", "REDUCE_MAX", "MEAN") over ``axes`` (an int32 constant side input) with
    ``keep_dims``: int8 (version 2) when ``in_q`` is given, else float32 (version 1)."""
    dtype = np.int8 if in_q is not None else np.float32
    out_shape = _mean_out_shape(in_shape, axes, keep_dims)
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} {op} {tuple(in_shape)} axes={list(axes)} "
                      f"keep_dims={bool(keep_dims)}")
    x = m.input(in_shape, dtype, "input", _as_q(in_q) if in_q is not None else None)
    a = m.const(np.asarray(axes, np.int32).reshape(-1), "axes")
    y = m.output(out_shape, dtype, "output", _as_q(out_q) if out_q is not None else None)
    m.op(getattr(_OP, op), 2 if in_q is not None else 1, [x, a], [y], _OPT.ReducerOptions, _reducer_opts(keep_dims))
    return m.finish()


def batch_matmul_model(shape_a, shape_b, a_q=None, b_q=None, out_q=None, adj_x=False, adj_y=False,
                       const_a=None, const_b=None, b_is_a=False) -> bytes:
    """BATCH_MATMUL (int8, version 2, when ``a_q`` is given; else float32, version 1) with the
    batch dims broadcast; ``const_a`` / ``const_b``: an operand as a constant tensor; ``b_is_a``:
    both operands the one input (x @ x^T with ``adj_y``: a model with one input)."""
    dtype = np.int8 if a_q is not None else np.float32
    a_shape = list(shape_a)
    b_shape = list(shape_b)
    rows = a_shape[-1] if adj_x else a_shape[-2]
    cols = b_shape[-2] if adj_y else b_shape[-1]
    batch = np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} BATCH_MATMUL {tuple(shape_a)} x {tuple(shape_b)} "
                      f"adj {adj_x} {adj_y}")
    qa = _as_q(a_q) if a_q is not None else None
    qb = _as_q(b_q) if b_q is not None else None
    a = m.const(np.asarray(const_a, dtype), "a", qa) if const_a is not None else m.input(a_shape, dtype, "a", qa)
    if b_is_a:
        b = a
    else:
        b = m.const(np.asarray(const_b, dtype), "b", qb) if const_b is not None else m.input(b_shape, dtype, "b", qb)
    y = m.output((*batch, rows, cols), dtype, "output", _as_q(out_q) if out_q is not None else None)

    def opts(builder):
        tflite.BatchMatMulOptionsStart(builder)
        tflite.BatchMatMulOptionsAddAdjX(builder, bool(adj_x))
        tflite.BatchMatMulOptionsAddAdjY(builder, bool(adj_y))
        return tflite.BatchMatMulOptionsEnd(builder)
    m.op(_OP.BATCH_MATMUL, 2 if a_q is not None else 1, [a, b], [y], _OPT.BatchMatMulOptions, opts)
    return m.finish()


# --------------------------------------------------------------------------
# PRELU, RSQRT, L2_NORMALIZATION (issue 16)
# --------------------------------------------------------------------------
def prelu_model(shape, alpha, in_q=None, alpha_q=None, out_q=None) -> bytes:
    """PRELU with the constant ``alpha`` (any shape broadcasting to ``shape``): int8 (version 1,
    ``alpha`` given as int8 values with ``alpha_q``) when ``in_q`` is given, else float32."""
    dtype = np.int8 if in_q is not None else np.float32
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} PRELU {tuple(shape)} alpha {np.shape(alpha)}")
    x = m.input(shape, dtype, "input", _as_q(in_q) if in_q is not None else None)
    a = m.const(np.asarray(alpha, dtype), "alpha", _as_q(alpha_q) if alpha_q is not None else None)
    y = m.output(shape, dtype, "output", _as_q(out_q) if out_q is not None else None)
    m.op(_OP.PRELU, 1, [x, a], [y])
    return m.finish()


def rsqrt_model(shape, in_q=None, out_q=None) -> bytes:
    """RSQRT: int8 (version 2) when ``in_q`` is given, else float32 (version 1)."""
    if in_q is None:
        return _unary_model("RSQRT", _OP.RSQRT, 1, np.float32, shape, None, None)
    return _unary_model("RSQRT", _OP.RSQRT, 2, np.int8, shape, _as_q(in_q), _as_q(out_q))


def l2_normalization_model(shape, in_q=None, out_q=QParams(1 / 128, 0)) -> bytes:
    """L2_NORMALIZATION over the last axis: int8 (version 2) when ``in_q`` is given, else float32."""
    dtype = np.int8 if in_q is not None else np.float32
    m = _ModelBuilder(f"adaptc test: {np.dtype(dtype).name} L2_NORMALIZATION {tuple(shape)}")
    x = m.input(shape, dtype, "input", _as_q(in_q) if in_q is not None else None)
    y = m.output(shape, dtype, "output", _as_q(out_q) if in_q is not None else None)

    def opts(b):
        tflite.L2NormOptionsStart(b)
        tflite.L2NormOptionsAddFusedActivationFunction(b, 0)
        return tflite.L2NormOptionsEnd(b)
    m.op(_OP.L2_NORMALIZATION, 2 if in_q is not None else 1, [x], [y], _OPT.L2NormOptions, opts)
    return m.finish()


# --------------------------------------------------------------------------
# TRANSPOSE_CONV (issue 16)
# --------------------------------------------------------------------------
def transpose_conv_output_size(in_size: int, k: int, stride: int, padding: str) -> int:
    """The output size TFLite's converter gives a TRANSPOSE_CONV: in * stride (SAME), or
    (in - 1) * stride + k (VALID)."""
    return in_size * stride if padding.upper() == "SAME" else (in_size - 1) * stride + k


def transpose_conv_model(input_shape, filter_ohwi, bias=None, in_q=None, filter_q=None, out_q=None,
                         stride=(1, 1), padding="SAME", output_hw=None, activation="NONE") -> bytes:
    """TRANSPOSE_CONV: inputs output_shape (int32 constant), weights OHWI, input, bias (optional).
    int8 (per-channel ``filter_q`` on axis 0, int32 bias) when ``in_q`` is given, else float32.
    ``output_hw``: the output's height and width (default transpose_conv_output_size)."""
    sh, sw = _pair(stride)
    o, kh, kw, ci = np.asarray(filter_ohwi).shape
    if ci != input_shape[3]:
        raise ValueError("filter input channels != input channels")
    n, ih, iw, _ = input_shape
    oh, ow = output_hw or (transpose_conv_output_size(ih, kh, sh, padding),
                           transpose_conv_output_size(iw, kw, sw, padding))
    quantized = in_q is not None
    m = _ModelBuilder(f"adaptc test: {'int8' if quantized else 'f32'} TRANSPOSE_CONV {tuple(input_shape)} "
                      f"k{kh}x{kw} s{(sh, sw)} {padding} -> {oh}x{ow}")
    shape_t = m.const(np.asarray([n, oh, ow, o], np.int32), "output_shape")
    if quantized:
        in_q, filter_q, out_q = _as_q(in_q), _as_q(filter_q), _as_q(out_q)
        filter_q = QParams(filter_q.scales() if filter_q.per_channel else np.full(o, filter_q.scales()[0], np.float32),
                           np.zeros(o, np.int64), 0)
        wt = m.const(_i8(filter_ohwi), "filter", filter_q)
        x = m.input(input_shape, np.int8, "input", in_q)
        ins = [shape_t, wt, x]
        if bias is not None:
            ins.append(m.const(_zeros_bias(bias, o, np.int32), "bias", _bias_q(in_q, filter_q)))
        y = m.output((n, oh, ow, o), np.int8, "output", out_q)
    else:
        wt = m.const(_f32(filter_ohwi), "filter")
        x = m.input(input_shape, np.float32, "input")
        ins = [shape_t, wt, x]
        if bias is not None:
            ins.append(m.const(_zeros_bias(bias, o, np.float32), "bias"))
        y = m.output((n, oh, ow, o), np.float32, "output")

    def opts(b):
        tflite.TransposeConvOptionsStart(b)
        tflite.TransposeConvOptionsAddPadding(b, _padding(padding))
        tflite.TransposeConvOptionsAddStrideH(b, sh)
        tflite.TransposeConvOptionsAddStrideW(b, sw)
        tflite.TransposeConvOptionsAddFusedActivationFunction(b, _act(activation))
        return tflite.TransposeConvOptionsEnd(b)
    m.op(_OP.TRANSPOSE_CONV, 3 if quantized else 1, ins, [y], _OPT.TransposeConvOptions, opts)
    return m.finish()


def log_softmax_model(shape, in_q=None, out_q=QParams(16 / 256, 127)) -> bytes:
    """LOG_SOFTMAX over the last axis: int8 (version 2; TFLite's output scale 16/256, zero point
    127) when ``in_q`` is given, else float32."""
    if in_q is None:
        return _unary_model("LOG_SOFTMAX", _OP.LOG_SOFTMAX, 1, np.float32, shape, None, None)
    return _unary_model("LOG_SOFTMAX", _OP.LOG_SOFTMAX, 2, np.int8, shape, _as_q(in_q), _as_q(out_q))
