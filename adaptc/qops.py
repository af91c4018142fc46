"""Integer operators as Relax composite functions: the executable definition of every kernel.

A quantized layer is a private global function carrying ``"Composite": "adaptc.<op>"`` whose
body is plain Relax integer arithmetic (see :mod:`adaptc.fixedpoint`) and whose attributes carry
the kernel parameters (zero points, activation range, per-channel multipliers and shifts, ...).
Tensors that live in flash (weights, bias, tables) are its parameters after the activations and
are passed as constants at the call site. The Relax VM on llvm runs the body; the C target reads
the name, attributes and constant arguments, and its kernel must agree bit for bit.

Float models use the same shape with ``"adaptc.<op>_f32"`` composites whose bodies are the float
Relax ops.

Each entry of ``COMPOSITES`` is one operator: its body builder, registered with ``@composite``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from . import fixedpoint as fxp
from . import gates, lstm, recurrent, tvm_compat, unary
from .fixedpoint import RelaxFixedPoint

COMPOSITES: dict[str, Callable] = {}


def composite(name: str):
    def register(fn):
        assert name not in COMPOSITES, f"composite {name} registered twice"
        COMPOSITES[name] = fn
        return fn
    return register


@dataclass
class CompositeCall:
    """A call to be materialized: composite ``name`` applied to activations then constants."""

    name: str
    inputs: list                       # activation exprs (Relax vars of the caller)
    consts: list[np.ndarray]           # flash tensors, in parameter order after the activations
    attrs: dict                        # scalar / list-of-int kernel parameters
    out_shape: tuple[int, ...]
    out_dtype: str
    source: str = ""                   # the source op(s) it replaces, for comments in the C
    const_names: list[str] = field(default_factory=list)


def build_function(call: CompositeCall, input_types: list) -> relax.Function:
    """Build the composite function for ``call`` (its body from the registry)."""
    body = COMPOSITES[call.name]
    bb = relax.BlockBuilder()
    params = [relax.Var(f"x{i}", ty) for i, ty in enumerate(input_types)]
    names = call.const_names or [f"c{i}" for i in range(len(call.consts))]
    params += [relax.Var(n, tvm_compat.tensor_type(c.shape, str(c.dtype))) for n, c in zip(names, call.consts)]
    attrs = {"Composite": call.name, **call.attrs}
    if call.source:
        attrs["source"] = call.source
    with bb.function("f", params, attrs=attrs, private=True):
        with bb.dataflow():
            out = body(RelaxFixedPoint(bb), params, call.attrs)
            out = bb.emit_output(out)
        bb.emit_func_output(out)
    return bb.get()["f"]


# ------------------------------------------------------------------------------ int8 helpers


def _requantize_output(F: RelaxFixedPoint, acc, a):
    """acc (int32) -> mbqm -> + output_zp -> clamp -> int8."""
    y = F.mbqm(acc, np.asarray(a["multiplier"]), np.asarray(a["shift"]))
    y = F.emit(relax.op.add(y, F.const(a["output_zp"])))
    return _clamp_s8(F, y, a)


def _clamp_s8(F, y, a):
    y = F.emit(relax.op.clip(y, int(a["act_min"]), int(a["act_max"])))
    return relax.op.astype(y, "int8")


def _offset(F, x, zp: int):
    xi = F.cast(x, "int32")
    return F.emit(relax.op.subtract(xi, F.const(zp))) if zp else xi


# ------------------------------------------------------------------------------- int8 ops


@composite("adaptc.qconv2d")
def _qconv2d(F, p, a):
    """TFLite CONV_2D / DEPTHWISE_CONV_2D int8 (per-channel): NHWC input, HWIO/HWOI filter."""
    x, w = p[0], p[1]
    acc = F.emit(relax.op.nn.conv2d(
        _offset(F, x, int(a["input_zp"])), F.cast(w, "int32"), strides=a["strides"],
        padding=a["padding"], dilation=a["dilation"], groups=int(a["groups"]), data_layout="NHWC",
        kernel_layout=str(a["kernel_layout"]), out_dtype="int32"))
    if len(p) > 2:
        acc = F.emit(relax.op.add(acc, p[2]))
    return _requantize_output(F, acc, a)


def _transpose_conv2d(F, x, w, a, out_dtype):
    """relax conv2d_transpose of an NHWC input and an IOHW filter (legalized by TVM for NCHW only:
    between transposes)."""
    y = F.emit(relax.op.nn.conv2d_transpose(
        F.emit(relax.op.permute_dims(x, [0, 3, 1, 2])), w, strides=a["strides"], padding=a["padding"],
        output_padding=a["output_padding"], dilation=a["dilation"], groups=int(a["groups"]), data_layout="NCHW",
        kernel_layout="IOHW", out_dtype=out_dtype))
    return F.emit(relax.op.permute_dims(y, [0, 2, 3, 1]))


@composite("adaptc.qtranspose_conv2d")
def _qtranspose_conv2d(F, p, a):
    """TFLite TRANSPOSE_CONV int8 (reference_integer_ops::TransposeConv): the scatter of
    (input - zp) x filter into int32, + bias, requantized per output channel. NHWC input, IOHW
    filter (groups 1 or depthwise)."""
    acc = _transpose_conv2d(F, _offset(F, p[0], int(a["input_zp"])), F.cast(p[1], "int32"), a, "int32")
    if len(p) > 2:
        acc = F.emit(relax.op.add(acc, p[2]))
    return _requantize_output(F, acc, a)


@composite("adaptc.qdense")
def _qdense(F, p, a):
    """TFLite FULLY_CONNECTED int8: x [N, IN] @ w [IN, OUT] (+ bias)."""
    x, w = p[0], p[1]
    wi = _offset(F, w, -int(a["filter_offset"]))
    acc = F.emit(relax.op.matmul(_offset(F, x, int(a["input_zp"])), wi, out_dtype="int32"))
    if len(p) > 2:
        acc = F.emit(relax.op.add(acc, p[2]))
    return _requantize_output(F, acc, a)


@composite("adaptc.qadd")
def _qadd(F, p, a):
    """TFLite ADD int8 (same shapes): both inputs rescaled to a common 2^left_shift scale."""
    scaled = []
    for i, x in enumerate(p[:2], start=1):
        v = F.emit(relax.op.left_shift(_offset(F, x, int(a[f"input{i}_zp"])), F.const(int(a["left_shift"]))))
        scaled.append(F.mbqm(v, np.int32(a[f"input{i}_multiplier"]), np.int32(a[f"input{i}_shift"])))
    raw = F.emit(relax.op.add(*scaled))
    return _requantize_output(F, raw, a)


@composite("adaptc.qmul")
def _qmul(F, p, a):
    """TFLite MUL int8 (broadcasting): (x1 - zp1) * (x2 - zp2) requantized by one multiplier."""
    product = F.emit(relax.op.multiply(_offset(F, p[0], int(a["input1_zp"])), _offset(F, p[1], int(a["input2_zp"]))))
    return _requantize_output(F, product, a)


def _scaled_operands(F, p, a):
    """TFLite's ArithmeticParams rescaling of ADD / SUB / SQUARED_DIFFERENCE: per input
    MBQM((x - zp) << left_shift, input_multiplier, input_shift)."""
    out = []
    for i, x in enumerate(p[:2], start=1):
        v = F.emit(relax.op.left_shift(_offset(F, x, int(a[f"input{i}_zp"])), F.const(int(a["left_shift"]))))
        out.append(F.mbqm(v, np.int32(a[f"input{i}_multiplier"]), np.int32(a[f"input{i}_shift"])))
    return out


@composite("adaptc.qaddsub")
def _qaddsub(F, p, a):
    """TFLite ADD / SUB int8 with broadcasting (BroadcastAdd6DSlow, BroadcastQuantSubSlow): the
    rescaled inputs combined as input1_sign * s1 + input2_sign * s2 (ADD 1, 1; SUB 1, -1; a SUB
    whose constant first operand is stored second -1, 1), requantized."""
    scaled = [s if int(a[f"input{i}_sign"]) > 0 else F.emit(relax.op.negative(s))
              for i, s in enumerate(_scaled_operands(F, p, a), start=1)]
    return _requantize_output(F, F.emit(relax.op.add(*scaled)), a)


@composite("adaptc.qsquared_difference")
def _qsquared_difference(F, p, a):
    """TFLite SQUARED_DIFFERENCE int8 (broadcasting): (s1 - s2)^2 of the inputs rescaled with
    left_shift 7, requantized by the output multiplier (which may exceed 1)."""
    s1, s2 = _scaled_operands(F, p, a)
    diff = F.emit(relax.op.subtract(s1, s2))
    return _requantize_output(F, F.emit(relax.op.multiply(diff, diff)), a)


@composite("adaptc.qmaxmin")
def _qmaxmin(F, p, a):
    """TFLite MAXIMUM / MINIMUM int8 (broadcasting): the larger / smaller raw int8 value, as
    TFLite Micro compares them (right only where inputs and output share scale and zero point,
    which LegalizeQDQ requires), clamped to the activation range."""
    op = relax.op.maximum if str(a["function"]) == "maximum" else relax.op.minimum
    return _clamp_s8(F, F.emit(op(p[0], p[1])), a)


@composite("adaptc.qavg_pool2d")
def _qavg_pool2d(F, p, a):
    """TFLite AVERAGE_POOL_2D int8: window sum / in-bounds count, rounded half away from zero."""
    (x, counts) = p
    channels = int(a["channels"])
    xi = F.cast(x, "int32")
    kh, kw = (int(v) for v in a["pool_size"])
    ones = F.const(np.ones((kh, kw, 1, channels), np.int32))
    total = F.emit(relax.op.nn.conv2d(xi, ones, strides=a["strides"], padding=a["padding"],
                                      groups=channels, data_layout="NHWC", kernel_layout="HWIO",
                                      out_dtype="int32"))
    half = F.emit(relax.op.right_shift(counts, F.const(1)))
    pos = F.emit(relax.op.floor_divide(relax.op.add(total, half), counts))
    neg = F.emit(relax.op.negative(relax.op.floor_divide(relax.op.subtract(half, total), counts)))
    avg = F.where(F.emit(relax.op.greater(total, F.const(0))), pos, neg)
    return _clamp_s8(F, avg, a)


REDUCTIONS = ("mean", "sum", "max")     # the ``reduce`` attribute of adaptc.qreduce / adaptc.reduce_f32


@composite("adaptc.qreduce")
def _qreduce(F, p, a):
    """TFLite MEAN, SUM and REDUCE_MAX int8 over neighbouring axes (``reduce`` mean | sum | max).
    mean, sum (TFLM reference_ops::QuantizedMeanOrSum): acc = sum of x - input_zp * count, then
    MultiplyByQuantizedMultiplier by the multiplier/shift (for a mean they already fold in
    1/count). max (TFLM ReduceGeneric; input and output parameters equal): the largest x."""
    axes, keep = [int(v) for v in a["axes"]], bool(a["keep_dims"])
    if str(a["reduce"]) == "max":
        return _clamp_s8(F, F.cast(F.emit(relax.op.max(p[0], axis=axes, keepdims=keep)), "int32"), a)
    total = F.emit(relax.op.sum(F.cast(p[0], "int32"), axis=axes, keepdims=keep))
    offset = int(a["input_zp"]) * int(a["count"])
    acc = F.emit(relax.op.subtract(total, F.const(offset))) if offset else total
    return _requantize_output(F, acc, a)


def _matmul_operands(p, a):
    """(lhs, rhs) of a batched matmul: the activation first unless ``swap`` (a constant lhs,
    stored after the activation)."""
    return (p[1], p[0]) if bool(a.get("swap", False)) else (p[0], p[1])


@composite("adaptc.qbatch_matmul")
def _qbatch_matmul(F, p, a):
    """TFLite BATCH_MATMUL int8 (TFLM reference_ops::BatchMatMul): batch dims broadcast,
    acc = sum_k (lhs - lhs_zp)(rhs - rhs_zp), requantized by in1 * in2 / out scale."""
    lhs, rhs = _matmul_operands(p, a)
    acc = F.emit(relax.op.matmul(_offset(F, lhs, int(a["lhs_zp"])), _offset(F, rhs, int(a["rhs_zp"])),
                                 out_dtype="int32"))
    return _requantize_output(F, acc, a)


@composite("adaptc.qmax_pool2d")
def _qmax_pool2d(F, p, a):
    """TFLite MAX_POOL_2D int8: max over the in-bounds window."""
    y = F.emit(relax.op.nn.max_pool2d(p[0], pool_size=a["pool_size"], strides=a["strides"],
                                      padding=a["padding"], layout="NHWC"))
    return _clamp_s8(F, F.cast(y, "int32"), a)


@composite("adaptc.qsoftmax")
def _qsoftmax(F, p, a):
    """TFLite SOFTMAX int8 -> int8 (output scale 1/256, zp -128), last axis."""
    x, table = p
    xi = F.cast(x, "int32")
    diff = F.emit(relax.op.subtract(relax.op.max(xi, axis=-1, keepdims=True), xi))
    e = F.emit(relax.op.take(table, diff, axis=0, mode="clip"))  # diff is in 0..255 by construction
    total = F.emit(relax.op.sum(F.rdbpot(e, 12), axis=-1, keepdims=True))
    scale, nbits = F.softmax_reciprocal(total)
    out = F.rdbpot(F.srdhm(e, scale), F.emit(relax.op.add(nbits, F.const(31 - 8))))
    out = F.emit(relax.op.subtract(out, F.const(128)))
    return _clamp_s8(F, out, {"act_min": -128, "act_max": 127})


@composite("adaptc.qlog_softmax")
def _qlog_softmax(F, p, a):
    """TFLite LOG_SOFTMAX int8 -> int8 (output scale 16/256, zp 127), last axis
    (reference_ops::LogSoftmaxQuantized; adaptc.fixedpoint.log_softmax_s8): per row the sum of
    the exp table over d = x - max, its log (Q5.26), each output RoundingDivideByPOT(diff_q5[d] -
    log, 22) + 127 where d > the adjusted diff_min, else -128."""
    op = relax.op
    x, exp_table, diff_q5 = p
    xi = F.cast(x, "int32")
    d = F.emit(op.subtract(op.max(xi, axis=-1, keepdims=True), xi))           # 0..255: the tables' index
    total = F.emit(op.sum(op.take(exp_table, d, axis=0, mode="clip"), axis=-1, keepdims=True))
    log_sum = F.log_x_for_x_greater_than_or_equal_to_1(total, fxp.SOFTMAX_ACCUMULATION_INTEGER_BITS,
                                                       fxp.SOFTMAX_SCALED_DIFF_INTEGER_BITS)
    shifted = F.cast(F.emit(op.add(F.cast(log_sum, "int64"), F.const(fxp.INT32_MIN, "int64"))), "int32")
    adjusted = F.emit(op.maximum(F.mbqm(shifted, np.int32(a["reverse_multiplier"]), np.int32(a["reverse_shift"])),
                                 F.const(int(a["diff_min"]) - 1)))
    out = F.rdbpot(F.add_wrap(F.emit(op.take(diff_q5, d, axis=0, mode="clip")), F.emit(op.negative(log_sum))),
                   31 - fxp.SOFTMAX_SCALED_DIFF_INTEGER_BITS - 4)
    out = F.emit(op.clip(op.add(out, F.const(127)), -128, 127))
    keep = F.emit(op.greater(op.negative(d), adjusted))
    return op.astype(op.where(keep, out, F.const(-128)), "int8")


@composite("adaptc.qlut")
def _qlut(F, p, a):
    """Any int8 -> int8 elementwise op, as a 256-entry table indexed by x + 128."""
    x, table = p
    return relax.op.take(table, F.emit(relax.op.add(F.cast(x, "int32"), F.const(128))), axis=0, mode="clip")


@composite("adaptc.qpad")
def _qpad(F, p, a):
    """TFLite PAD int8: constant padding with the zero point."""
    return relax.op.nn.pad(p[0], pad_width=[int(v) for v in a["pad_width"]], pad_value=float(a["pad_value"]))


@composite("adaptc.qgate")
def _qgate(F, p, a):
    """Exit gate, integer only (adaptc.gates): int8 logits [1, C], level (int32 scalar)[, tables]
    -> bool scalar: leave at this exit when confidence >= threshold or level <= exit."""
    x, level, tables = p[0], p[1], p[2:]
    conf = gate_confidence_int(F, x, tables, a)
    return _gate_decision(F, conf, level, a, F.const(int(a["threshold"])))


def gate_confidence_int(F, x, tables, a):
    """Integer confidence (adaptc.gates.confidence_int) of int8 logits [N, C] -> int32 [N, 1];
    the body of ``adaptc.qgate`` before the decision, shared with the batched CUDA segments."""
    xi = F.cast(x, "int32")
    top = F.emit(relax.op.max(xi, axis=-1, keepdims=True))
    if a["criterion"] == "margin":
        classes = int(x.ty.shape.values[-1])     # (the batch dimension may be symbolic)
        first = F.emit(relax.op.equal(F.const(np.arange(classes, dtype=np.int32)),
                                      F.emit(relax.op.expand_dims(relax.op.argmax(xi, axis=-1), -1))))
        second = F.emit(relax.op.max(F.where(first, F.const(-256), xi), axis=-1, keepdims=True))
        return F.emit(relax.op.subtract(top, second))
    e = F.emit(relax.op.take(tables[0], F.emit(relax.op.subtract(top, xi)), axis=0, mode="clip"))
    z = F.emit(relax.op.sum(e, axis=-1, keepdims=True))
    if a["criterion"] == "max_prob":
        return F.emit(relax.op.floor_divide(F.const(1 << 30), z))
    # entropy: -s W / Z - ln(Z / 2^15), 64-bit
    d64 = F.cast(F.emit(relax.op.subtract(top, xi)), "int64")
    w = F.emit(relax.op.sum(relax.op.multiply(F.cast(e, "int64"), d64), axis=-1, keepdims=True))
    mean = F.emit(relax.op.floor_divide(relax.op.left_shift(w, F.const(12, "int64")), F.cast(z, "int64")))
    term = F.cast(F.emit(relax.op.right_shift(relax.op.multiply(mean, F.const(int(a["scale_q16"]), "int64")),
                                              F.const(16, "int64"))), "int32")
    k = F.emit(relax.op.subtract(F.const(16), F.clz_positive(z)))
    m = F.emit(relax.op.right_shift(z, k))
    idx = F.emit(relax.op.subtract(relax.op.right_shift(m, F.const(7)), F.const(256)))
    ln = F.emit(relax.op.add(relax.op.multiply(k, F.const(gates.LN2_Q12)),
                             relax.op.take(tables[1], idx, axis=0, mode="clip")))
    return F.emit(relax.op.subtract(relax.op.negative(term), ln))


def _gate_decision(F, conf, level, a, threshold):
    hit = F.emit(relax.op.greater_equal(relax.op.reshape(conf, ()), threshold))
    capped = F.emit(relax.op.less_equal(level, F.const(int(a["exit"]))))
    return relax.op.logical_or(hit, capped)


# ------------------------------------------------------------------------------- float ops


def _act_f32(y, a):
    lo, hi = float(a["act_min"]), float(a["act_max"])
    if lo == -np.inf and hi == np.inf:
        return y
    return relax.op.clip(y, lo, hi)


@composite("adaptc.conv2d_f32")
def _conv2d_f32(F, p, a):
    y = F.emit(relax.op.nn.conv2d(p[0], p[1], strides=a["strides"], padding=a["padding"],
                                  dilation=a["dilation"], groups=int(a["groups"]), data_layout="NHWC",
                                  kernel_layout=str(a["kernel_layout"])))
    if len(p) > 2:
        y = F.emit(relax.op.add(y, p[2]))
    return _act_f32(y, a)


@composite("adaptc.transpose_conv2d_f32")
def _transpose_conv2d_f32(F, p, a):
    """TFLite TRANSPOSE_CONV / ONNX ConvTranspose float32: NHWC input, IOHW filter, + bias, clamp."""
    y = _transpose_conv2d(F, p[0], p[1], a, "float32")
    if len(p) > 2:
        y = F.emit(relax.op.add(y, p[2]))
    return _act_f32(y, a)


@composite("adaptc.dense_f32")
def _dense_f32(F, p, a):
    y = F.emit(relax.op.matmul(p[0], p[1]))
    if len(p) > 2:
        y = F.emit(relax.op.add(y, p[2]))
    return _act_f32(y, a)


@composite("adaptc.add_f32")
def _add_f32(F, p, a):
    return _act_f32(F.emit(relax.op.add(p[0], p[1])), a)


@composite("adaptc.mul_f32")
def _mul_f32(F, p, a):
    return _act_f32(F.emit(relax.op.multiply(p[0], p[1])), a)


BINARY_F32 = {   # adaptc.binary_f32's functions: (C op code, Relax body of input1, input2)
    "add": (0, relax.op.add),
    "subtract": (1, relax.op.subtract),
    "reverse_subtract": (2, lambda x, c: relax.op.subtract(c, x)),
    "divide": (3, relax.op.divide),
    "reverse_divide": (4, lambda x, c: relax.op.divide(c, x)),
    "maximum": (5, relax.op.maximum),
    "minimum": (6, relax.op.minimum),
    "squared_difference": (7, None),
}


@composite("adaptc.binary_f32")
def _binary_f32(F, p, a):
    """Element-wise float binary operators with broadcasting (TFLite ADD, SUB, DIV, MAXIMUM,
    MINIMUM, SQUARED_DIFFERENCE; ONNX Add, Sub, Div, Max, Min). ``function`` names the operator;
    the ``reverse_`` forms compute input2 op input1 (a constant first operand, stored second)."""
    function = str(a["function"])
    if function == "squared_difference":
        d = F.emit(relax.op.subtract(p[0], p[1]))
        return _act_f32(F.emit(relax.op.multiply(d, d)), a)
    return _act_f32(F.emit(BINARY_F32[function][1](p[0], p[1])), a)


COMPARISONS = {   # adaptc.where_f32's comparisons: (C code, Relax op)
    "less": (0, relax.op.less),
    "less_equal": (1, relax.op.less_equal),
    "greater": (2, relax.op.greater),
    "greater_equal": (3, relax.op.greater_equal),
    "equal": (4, relax.op.equal),
}


@composite("adaptc.where_f32")
def _where_f32(F, p, a):
    """``where(a <comparison> b, t, f)``, float, broadcasting (ONNX Where of a Less / Greater /
    ... ; TFLite SELECT_V2 of a LESS / ...). ``slots``: the operand (index into the inputs, then
    the constants) of a, b, t and f."""
    a_, b_, t_, f_ = (p[int(k)] for k in a["slots"])
    return F.emit(relax.op.where(F.emit(COMPARISONS[str(a["comparison"])][1](a_, b_)), t_, f_))


@composite("adaptc.avg_pool2d_f32")
def _avg_pool2d_f32(F, p, a):
    y = F.emit(relax.op.nn.avg_pool2d(p[0], pool_size=a["pool_size"], strides=a["strides"],
                                      padding=a["padding"], layout="NHWC", count_include_pad=False))
    return _act_f32(y, a)


@composite("adaptc.reduce_f32")
def _reduce_f32(F, p, a):
    """Mean, sum or max over neighbouring axes (ONNX ReduceMean / ReduceSum / ReduceMax, TFLite
    MEAN / SUM / REDUCE_MAX), e.g. the spatial mean of NHWC [N, H, W, C] -> [N, 1, 1, C] | [N, C]."""
    reduce = {"mean": relax.op.mean, "sum": relax.op.sum, "max": relax.op.max}[str(a["reduce"])]
    y = F.emit(reduce(p[0], axis=[int(v) for v in a["axes"]], keepdims=bool(a["keep_dims"])))
    return _act_f32(y, a)


@composite("adaptc.batch_matmul_f32")
def _batch_matmul_f32(F, p, a):
    """Batched matmul with broadcasting over the batch dims (TFLite BATCH_MATMUL, ONNX MatMul)."""
    lhs, rhs = _matmul_operands(p, a)
    return _act_f32(F.emit(relax.op.matmul(lhs, rhs)), a)


@composite("adaptc.max_pool2d_f32")
def _max_pool2d_f32(F, p, a):
    y = F.emit(relax.op.nn.max_pool2d(p[0], pool_size=a["pool_size"], strides=a["strides"],
                                      padding=a["padding"], layout="NHWC"))
    return _act_f32(y, a)


@composite("adaptc.softmax_f32")
def _softmax_f32(F, p, a):
    """Softmax over the last axis, of x * beta; its logarithm where ``log`` (LogSoftmax)."""
    beta = float(a.get("beta", 1.0))
    x = p[0] if beta == 1.0 else relax.op.multiply(p[0], relax.const(np.float32(beta)))
    return relax.op.nn.log_softmax(x, axis=-1) if int(a.get("log", 0)) else relax.op.nn.softmax(x, axis=-1)


@composite("adaptc.clamp_f32")
def _clamp_f32(F, p, a):
    return _act_f32(p[0], a)


@composite("adaptc.unary_f32")
def _unary_f32(F, p, a):
    """An element-wise function of adaptc.unary (sigmoid, tanh, hard swish, ...), float32."""
    return unary.build(str(a["function"]), p[0], **a)


@composite("adaptc.pad_f32")
def _pad_f32(F, p, a):
    return relax.op.nn.pad(p[0], pad_width=[int(v) for v in a["pad_width"]], pad_value=float(a["pad_value"]))


@composite("adaptc.gate_f32")
def _gate_f32(F, p, a):
    """Exit gate, float: logits [1, C], level (int32 scalar) -> bool scalar (adaptc.gates)."""
    x, level = p[0], p[1]
    conf = gate_confidence_f32(F, x, a)
    return _gate_decision(F, conf, level, a, relax.const(np.float32(a["threshold"])))


def gate_confidence_f32(F, x, a):
    """Float confidence of logits [N, C] -> float32 [N, 1]; the body of ``adaptc.gate_f32``
    before the decision, shared with the batched CUDA segments."""
    if a["criterion"] == "margin":
        top2 = F.emit(relax.op.topk(x, k=2, axis=-1, ret_type="values"))
        return F.emit(relax.op.subtract(relax.op.strided_slice(top2, [1], [0], [1]),
                                        relax.op.strided_slice(top2, [1], [1], [2])))
    logp = F.emit(relax.op.nn.log_softmax(x, axis=-1))
    if a["criterion"] == "max_prob":
        return F.emit(relax.op.exp(relax.op.max(logp, axis=-1, keepdims=True)))
    return F.emit(relax.op.sum(relax.op.multiply(relax.op.exp(logp), logp), axis=-1, keepdims=True))


@composite("adaptc.ql2norm")
def _ql2norm(F, p, a):
    """TFLite L2_NORMALIZATION int8 (reference_integer_ops::L2Normalization) over the last axis:
    per row the sum of (x - zp)^2, its inverse square root as a multiplier and shift
    (GetInvSqrtQuantizedMultiplierExp), each output MultiplyByQuantizedMultiplier(x - zp,
    multiplier, shift + 7) clamped to int8 (output scale 1/128, zero point 0)."""
    op = relax.op
    x = F.emit(op.subtract(F.cast(p[0], "int32"), F.const(int(a["input_zp"]))))
    total = F.emit(op.sum(op.multiply(x, x), axis=-1, keepdims=True))
    multiplier, shift = F.inv_sqrt_multiplier_exp(total)
    y = F.mbqm_tensor(x, multiplier, F.emit(op.add(shift, F.const(7))))
    return op.astype(op.clip(y, -128, 127), "int8")


@composite("adaptc.recurrent_f32")
def _recurrent_f32(F, p, a):
    """ONNX LSTM / GRU, float32 (adaptc.recurrent)."""
    return recurrent.body(F, p, a)


@composite("adaptc.qlstm")
def _qlstm(F, p, a):
    """TFLite UNIDIRECTIONAL_SEQUENCE_LSTM int8 with an int16 cell state (adaptc.lstm)."""
    return lstm.body(F, p, a, tvm_compat.shape_of(p[1].ty)[0])


# ------------------------------------------------------------- data movement and quantization


@composite("adaptc.quantize")
def _quantize(F, p, a):
    """TFLite QUANTIZE float32 -> int8 (reference_ops::AffineQuantize): zp + round(x / scale),
    the quotient in float32, rounded half away from zero (in float64, exact for a float32), clamped."""
    v = F.cast(F.emit(relax.op.divide(p[0], relax.const(np.float32(a["output_scale"])))), "float64")
    half = relax.const(0.5, "float64")
    r = F.emit(relax.op.multiply(relax.op.sign(v), relax.op.floor(relax.op.add(relax.op.abs(v), half))))
    r = F.cast(F.emit(relax.op.clip(r, -512.0, 512.0)), "int32")
    return _clamp_s8(F, F.emit(relax.op.add(r, F.const(int(a["output_zp"])))), a)


@composite("adaptc.dequantize")
def _dequantize(F, p, a):
    """TFLite DEQUANTIZE int8 -> float32: scale * (x - zp) (the product of two exact floats,
    rounded once, as reference_ops::Dequantize's double product cast to float)."""
    d = F.cast(_offset(F, p[0], int(a["input_zp"])), "float32")
    return relax.op.multiply(d, relax.const(np.float32(a["input_scale"])))


def _corners(F, x, y_lo, y_hi, x_lo, x_hi):
    """The four source values of each output position: x[:, y_lo|y_hi, x_lo|x_hi, :]."""
    rows = [F.emit(relax.op.take(x, y, axis=1)) for y in (y_lo, y_hi)]
    return [[F.emit(relax.op.take(r, c, axis=2)) for c in (x_lo, x_hi)] for r in rows]


@composite("adaptc.qresize_bilinear")
def _qresize_bilinear(F, p, a):
    """TFLite RESIZE_BILINEAR int8 (reference_ops::ResizeBilinearInteger), NHWC: per output row
    and column the lower / upper source index and the 10-bit fraction (tables computed at compile
    time, adaptc.resize); sum of the four corners times (1024 - f | f) products, divided by 2^20
    rounding half away from zero. Output parameters are the input's."""
    x, y_lo, y_hi, y_frac, x_lo, x_hi, x_frac = p
    (v00, v01), (v10, v11) = _corners(F, F.cast(x, "int32"), y_lo, y_hi, x_lo, x_hi)
    oh, ow = int(a["out_h"]), int(a["out_w"])
    fy = F.emit(relax.op.reshape(y_frac, (1, oh, 1, 1)))
    fx = F.emit(relax.op.reshape(x_frac, (1, 1, ow, 1)))
    gy = F.emit(relax.op.subtract(F.const(1024), fy))
    gx = F.emit(relax.op.subtract(F.const(1024), fx))
    mul = relax.op.multiply
    acc = F.emit(relax.op.add(relax.op.add(mul(mul(v00, gy), gx), mul(mul(v10, fy), gx)),
                              relax.op.add(mul(mul(v01, gy), fx), mul(mul(v11, fy), fx))))
    pos = F.emit(relax.op.right_shift(relax.op.add(acc, F.const(1 << 19)), F.const(20)))
    neg = F.emit(relax.op.negative(relax.op.right_shift(relax.op.subtract(F.const(1 << 19), acc), F.const(20))))
    return _clamp_s8(F, F.where(F.emit(relax.op.greater(acc, F.const(0))), pos, neg), {"act_min": -128, "act_max": 127})


@composite("adaptc.resize_bilinear_f32")
def _resize_bilinear_f32(F, p, a):
    """Bilinear resize of NHWC float32 (TFLite RESIZE_BILINEAR's reference_ops::ResizeBilinear,
    ONNX Resize linear): the four corners weighted (1 - f | f) per axis, from compile-time tables."""
    x, y_lo, y_hi, y_frac, x_lo, x_hi, x_frac = p
    (v00, v01), (v10, v11) = _corners(F, x, y_lo, y_hi, x_lo, x_hi)
    oh, ow = int(a["out_h"]), int(a["out_w"])
    one = relax.const(np.float32(1.0))
    fy = F.emit(relax.op.reshape(y_frac, (1, oh, 1, 1)))
    fx = F.emit(relax.op.reshape(x_frac, (1, 1, ow, 1)))
    gy, gx = F.emit(relax.op.subtract(one, fy)), F.emit(relax.op.subtract(one, fx))
    return relax.op.add(
        relax.op.add(relax.op.add(relax.op.multiply(relax.op.multiply(v00, gy), gx),
                                  relax.op.multiply(relax.op.multiply(v10, fy), gx)),
                     relax.op.multiply(relax.op.multiply(v01, gy), fx)),
        relax.op.multiply(relax.op.multiply(v11, fy), fx))


@composite("adaptc.qargmax")
def _qargmax(F, p, a):
    """TFLite ARG_MAX of int8 (raw values compared; the first of equal maxima) -> int32 indices."""
    return relax.op.astype(relax.op.argmax(p[0], axis=int(a["axis"]), keepdims=False), "int32")


@composite("adaptc.argmax_f32")
def _argmax_f32(F, p, a):
    """TFLite ARG_MAX / ONNX ArgMax of float32 (the first of equal maxima) -> int32 indices."""
    return relax.op.astype(relax.op.argmax(p[0], axis=int(a["axis"]), keepdims=False), "int32")


def imported_composite(mod, call) -> CompositeCall | None:
    """The CompositeCall of a composite call the importer emitted itself (adaptc.qlstm), else None."""
    name = composite_name(mod, call)
    if name is None:
        return None
    func = mod[call.op]
    attrs = {k: v for k, v in tvm_compat.plain_attrs(func).items() if k not in ("Composite", "source")}
    consts = [(p.name, tvm_compat.constant_value(a)) for p, a in zip(func.params, call.args)
              if tvm_compat.is_constant(a)]
    inputs = [a for a in call.args if not tvm_compat.is_constant(a)]
    return CompositeCall(name, inputs, [c for _, c in consts], attrs, tvm_compat.shape_of(call.ty),
                         tvm_compat.dtype_of(call.ty), str(func.attrs["source"]) if "source" in func.attrs else "",
                         [n for n, _ in consts])


def is_composite(func) -> bool:
    return isinstance(func, relax.Function) and func.attrs is not None and "Composite" in func.attrs


def composite_name(mod, call) -> str | None:
    """'adaptc.qconv2d' if ``call`` calls a composite global function of ``mod``."""
    if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.GlobalVar):
        func = mod[call.op]
        if is_composite(func):
            return str(func.attrs["Composite"])
    return None


# ------------------------------------------------------------------------------- PReLU (issue 16)


@composite("adaptc.qprelu")
def _qprelu(F, p, a):
    """TFLite PRELU int8 (reference_ops::BroadcastPrelu4DSlow; adaptc.prelu): x - zp >= 0
    requantized by the identity multiplier, else (x - zp) * (alpha - zp_alpha) by the alpha
    multiplier; alpha a constant broadcasting to x."""
    x = _offset(F, p[0], int(a["input_zp"]))
    alpha = _offset(F, p[1], int(a["alpha_zp"]))
    pos = F.mbqm(x, np.int32(a["identity_multiplier"]), np.int32(a["identity_shift"]))
    neg = F.mbqm(F.emit(relax.op.multiply(x, alpha)), np.int32(a["alpha_multiplier"]), np.int32(a["alpha_shift"]))
    y = F.where(F.emit(relax.op.greater_equal(x, F.const(0))), pos, neg)
    return _clamp_s8(F, F.emit(relax.op.add(y, F.const(int(a["output_zp"])))), a)


@composite("adaptc.prelu_f32")
def _prelu_f32(F, p, a):
    """PReLU float32 (TFLite PRELU, ONNX PRelu): x >= 0 ? x : x * alpha, alpha broadcasting to x."""
    zero = relax.const(np.float32(0.0))
    return relax.op.where(relax.op.greater_equal(p[0], zero), p[0], relax.op.multiply(p[0], p[1]))
