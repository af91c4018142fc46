"""LegalizeQDQ: dequantize -> float op -> quantize chains become integer composites.

Requires: ``main`` as TVM's TFLite importer (or adaptc's QuantizeInt8 pass) writes quantized
networks: one dataflow block; every quantized layer is ``quantize(act?(op(dequantize(x), ...)))``
with int8 activations, per-channel int8 weights and int32 bias as dequantized constants; fused
activations as ``clip`` on the int8 result or ``relu``/``clip`` before ``quantize``; quantized
average pooling as ``astype(avg_pool2d(astype(x, int32)), int8)``; quantized MEAN as
``quantize(mean(dequantize(x)))`` over neighbouring axes ([1, 2] of NHWC); element-wise
functions of adaptc.unary as ``quantize(f(dequantize(x)))`` (becoming tables); concat as
``quantize(concat(dequantize(x1), ...))`` (an int8 concat, inputs requantized where their
parameters differ from the output's); max pooling,
padding and reshapes directly on int8 tensors.

Ensures: ``main`` holds only int8 values: calls to private composite functions
(``adaptc.qconv2d``, ``adaptc.qdense``, ``adaptc.qadd``, ``adaptc.qaddsub`` (ADD with broadcasting or a
constant, SUB), ``adaptc.qsquared_difference``, ``adaptc.qmaxmin`` (inputs and output of equal
parameters), ``adaptc.qmul``, ``adaptc.qavg_pool2d``,
``adaptc.qmax_pool2d``, ``adaptc.qreduce`` (MEAN, SUM, REDUCE_MAX), ``adaptc.qbatch_matmul``,
``adaptc.qsoftmax``, ``adaptc.qlog_softmax`` (LOG_SOFTMAX), ``adaptc.qlut``, ``adaptc.qpad``)
and layout ops (reshape, permute_dims, strided_slice: a split's parts become slices; take: a
gather) and concat.
Each composite's body is the exact TFLite integer arithmetic (TFLite's double-rounding
requantization; average pooling rounds half away from zero, fixing the importer's floor; MEAN
folds 1/count into its multiplier as TFLite Micro does), so the module on llvm is bit-exact with
TFLite Micro's reference kernels. An op outside these patterns raises UnsupportedOperatorError
naming the op and the binding (for a mean: its axes).

Data movement and the edges (issue 16): ``quantize`` of a float model input ->
``adaptc.quantize`` (the model takes float input); a ``dequantize`` that is the output ->
``adaptc.dequantize``; the same two around a float composite that has no int8 form (post-training
quantization keeps a GRU float between them); ``quantize(resize2d(dequantize(x)))`` bilinear ->
``adaptc.qresize_bilinear`` (TFLite's integer ResizeBilinear; output parameters must equal the
input's); an int8 ``argmax`` -> ``adaptc.qargmax`` (int32 indices); an int8 ``concat`` (PACK)
stays a concat.
``quantize(relu(x) + minimum(x, 0) * alpha)`` (adaptc.prelu's form, x and alpha dequantized) ->
``adaptc.qprelu`` (TFLite PRELU). Composite calls the importer emitted itself (``adaptc.qlstm``,
``adaptc.ql2norm``) are kept.

Parameters: ``path`` -- the model file, for error messages.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from adaptc import fixedpoint as fxp
from adaptc import formats, luts, prelu, resize, tvm_compat, unary
from adaptc.graph import Graph, const_eval, match_prelu, match_unary, mean_axes, rebuild_main, split_part
from adaptc.qops import CompositeCall, imported_composite

SUPPORTED = ("add", "avg_pool2d", "clip", "concat", "conv2d", "matmul", "max", "max_pool2d", "maximum", "mean",
             "log_softmax", "minimum", "multiply", "nn.pad", "relu", "reshape", "softmax", "split",
             "squared_difference", "strided_slice", "subtract", "sum", "take", "conv2d_transpose", *unary.FUNCTIONS)


def _scalar(expr) -> float:
    return float(tvm_compat.constant_value(expr).reshape(-1)[0])


def _dequantized(g: Graph, expr):
    """(int values or var, scale array, zp array) if expr is a (reshaped) dequantize, else None.

    For constants the values come back as a NumPy array in the final (reshaped) layout."""
    expr = g.resolve(expr)
    name = tvm_compat.op_name(expr)
    if name == "relax.reshape":
        inner = _dequantized(g, expr.args[0])
        if inner is None or not isinstance(inner[0], np.ndarray):
            return None
        return inner[0].reshape(tvm_compat.shape_of(expr.ty)), inner[1], inner[2]
    if name != "relax.dequantize":
        return None
    scale = tvm_compat.constant_value(g.resolve(expr.args[1])).astype(np.float32).reshape(-1)
    zp = tvm_compat.constant_value(g.resolve(expr.args[2])).astype(np.int64).reshape(-1)
    value = const_eval(g, expr.args[0])
    return (expr.args[0] if value is None else value), scale, zp


def _quantized_bound(value: float, scale, zp: int) -> int:
    """zp + round(value / scale) in float32, as TFLite computes activation bounds; int8-clamped."""
    with np.errstate(over="ignore"):
        q = fxp.round_away_f32(np.float32(value) / np.float32(scale))
    return int(np.clip(zp + q, -128, 127))


def _activation_range(g: Graph, expr, out_scale, out_zp):
    """Strip a float relu/clip before quantize: (inner expr, act_min, act_max)."""
    name = g.op(expr)
    if name == "relax.nn.relu":
        return g.resolve(expr).args[0], _quantized_bound(0.0, out_scale, out_zp), 127
    if name == "relax.clip":
        call = g.resolve(expr)
        return (call.args[0], _quantized_bound(float(call.args[1].value), out_scale, out_zp),
                _quantized_bound(float(call.args[2].value), out_scale, out_zp))
    return expr, -128, 127


def _out_range(out_scale, out_zp, act_min, act_max):
    return {"output_zp": int(out_zp), "act_min": int(act_min), "act_max": int(act_max),
            "output_scale": float(out_scale)}


def _bias(g: Graph, expr):
    dq = _dequantized(g, expr)
    if dq is None or not isinstance(dq[0], np.ndarray) or dq[0].dtype != np.int32:
        return None
    return dq[0].reshape(-1)


def _match_conv(g, core, out_scale, out_zp, act_min, act_max, node):
    """add(conv2d(dq(x), dq(W)), dq(b)) or conv2d(dq(x), dq(W))."""
    bias = None
    if g.op(core) == "relax.add":
        add = g.resolve(core)
        conv_expr, b_expr = add.args
        if g.op(conv_expr) not in ("relax.nn.conv2d", "relax.matmul"):
            conv_expr, b_expr = b_expr, conv_expr
        if g.op(conv_expr) not in ("relax.nn.conv2d", "relax.matmul"):
            return None
        bias = _bias(g, b_expr)
        if bias is None:
            return None
        core = conv_expr
    if g.op(core) not in ("relax.nn.conv2d", "relax.matmul"):
        return None
    call = g.resolve(core)
    x = _dequantized(g, call.args[0])
    w = _dequantized(g, call.args[1])
    if x is None or w is None or isinstance(x[0], np.ndarray) or not isinstance(w[0], np.ndarray):
        return None
    (x_var, in_scale, in_zp), (w_q, w_scale, w_zp) = x, w
    if np.any(w_zp != 0) and tvm_compat.op_name(call) == "relax.nn.conv2d":
        g.fail("conv2d", node, "int8 filters must be symmetric (zero point 0)")
    out_c = tvm_compat.shape_of(call.ty)[-1]
    w_scale = np.broadcast_to(w_scale, (out_c,)).astype(np.float32)
    real = [float(in_scale[0]) * float(s) / float(out_scale) for s in w_scale]  # as TFLite: in doubles
    mult, shift = fxp.quantize_multipliers(real)
    attrs = {"input_zp": int(in_zp[0]), "input_scale": float(in_scale[0]),
             **_out_range(out_scale, out_zp, act_min, act_max),
             "multiplier": [int(m) for m in mult], "shift": [int(s) for s in shift]}
    wide = np.abs(w_q.astype(np.int64)).max(initial=0) > 127    # power-of-two weights up to 2^14
    consts, names = [w_q.astype(np.int16 if wide else np.int8)], ["weights"]
    if bias is not None:
        consts.append(np.broadcast_to(bias, (out_c,)).astype(np.int32))
        names.append("bias")
    out_shape = tvm_compat.shape_of(call.ty)
    if tvm_compat.op_name(call) == "relax.nn.conv2d":
        a = call.attrs
        attrs.update(strides=[int(v) for v in a.strides], padding=[int(v) for v in a.padding],
                     dilation=[int(v) for v in a.dilation], groups=int(a.groups),
                     kernel_layout=str(a.kernel_layout))
        if str(a.data_layout) != "NHWC":
            g.fail("conv2d", node, f"data layout {a.data_layout}; int8 convolutions must be NHWC")
        return CompositeCall("adaptc.qconv2d", [x_var], consts, attrs, out_shape, "int8",
                             "conv2d" + ("+bias" if bias is not None else ""), names)
    attrs["filter_offset"] = -int(w_zp[0])
    return CompositeCall("adaptc.qdense", [x_var], consts, attrs, out_shape, "int8",
                         "fully_connected", names)


def _match_transpose_conv(g, core, out_scale, out_zp, act_min, act_max, node):
    """add(conv2d_transpose(dq(x), dq(W)), dq(b)) or conv2d_transpose(dq(x), dq(W)): NHWC, IOHW
    filter, symmetric per-output-channel int8 weights (TFLite TRANSPOSE_CONV, or QuantizeInt8)."""
    bias = None
    if g.op(core) == "relax.add":
        args = g.resolve(core).args
        if g.op(args[0]) != "relax.nn.conv2d_transpose":
            args = args[::-1]
        if g.op(args[0]) != "relax.nn.conv2d_transpose" or (bias := _bias(g, args[1])) is None:
            return None
        core = args[0]
    if g.op(core) != "relax.nn.conv2d_transpose":
        return None
    call = g.resolve(core)
    x, w = _dequantized(g, call.args[0]), _dequantized(g, call.args[1])
    if x is None or w is None or isinstance(x[0], np.ndarray) or not isinstance(w[0], np.ndarray):
        return None
    (x_var, in_scale, in_zp), (w_q, w_scale, w_zp) = x, w
    a = call.attrs
    if np.any(w_zp != 0):
        g.fail("conv2d_transpose", node, "int8 filters must be symmetric (zero point 0)")
    if str(a.data_layout) != "NHWC" or str(a.kernel_layout) != "IOHW":
        g.fail("conv2d_transpose", node, f"layouts {a.data_layout} / {a.kernel_layout}; expected NHWC / IOHW")
    out_shape = tvm_compat.shape_of(call.ty)
    out_c = out_shape[-1]
    w_scale = np.broadcast_to(w_scale, (out_c,)).astype(np.float32)
    mult, shift = fxp.quantize_multipliers([float(in_scale[0]) * float(s) / float(out_scale) for s in w_scale])
    attrs = {"input_zp": int(in_zp[0]), "input_scale": float(in_scale[0]),
             **_out_range(out_scale, out_zp, act_min, act_max),
             "multiplier": [int(m) for m in mult], "shift": [int(s) for s in shift],
             "strides": [int(v) for v in a.strides], "padding": [int(v) for v in a.padding],
             "output_padding": [int(v) for v in a.output_padding], "dilation": [int(v) for v in a.dilation],
             "groups": int(a.groups), "kernel_layout": "IOHW"}
    consts, names = [w_q.astype(np.int8)], ["weights"]
    if bias is not None:
        consts.append(np.broadcast_to(bias, (out_c,)).astype(np.int32))
        names.append("bias")
    return CompositeCall("adaptc.qtranspose_conv2d", [x_var], consts, attrs, out_shape, "int8",
                         "transpose_conv" + "+bias" * (bias is not None), names)


def _match_add(g, core, out_scale, out_zp, act_min, act_max, node):
    if g.op(core) != "relax.add":
        return None
    call = g.resolve(core)
    a, b = (_dequantized(g, e) for e in call.args)
    if a is None or b is None or isinstance(a[0], np.ndarray) or isinstance(b[0], np.ndarray):
        return None
    shape = tvm_compat.shape_of(call.ty)
    if any(tvm_compat.shape_of(g.resolve(e).ty) != shape for e in call.args):
        return None                                   # broadcasting: _match_addsub
    left_shift = 20
    s1, s2 = float(a[1][0]), float(b[1][0])
    twice_max = 2 * max(s1, s2)
    m1, sh1 = fxp.quantize_multiplier(s1 / twice_max)
    m2, sh2 = fxp.quantize_multiplier(s2 / twice_max)
    mo, sho = fxp.quantize_multiplier(twice_max / ((1 << left_shift) * float(out_scale)))
    attrs = {"left_shift": left_shift, "input1_zp": int(a[2][0]), "input2_zp": int(b[2][0]),
             "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2, "input2_shift": sh2,
             "multiplier": [mo], "shift": [sho], **_out_range(out_scale, out_zp, act_min, act_max)}
    return CompositeCall("adaptc.qadd", [a[0], b[0]], [], attrs, shape, "int8", "add")


def _binary_operands(g, call, what, node):
    """(a, b, swapped) of a binary op's dequantized operands, the activation first (a constant
    lives in flash as the kernels' second operand); None if either is not dequantized.
    UnsupportedOperatorError for two constants or a per-channel quantized operand."""
    a, b = (_dequantized(g, e) for e in call.args)
    if a is None or b is None:
        return None
    swapped = isinstance(a[0], np.ndarray)
    if swapped:
        a, b = b, a
    if isinstance(a[0], np.ndarray) or len(a[1]) != 1 or len(b[1]) != 1:
        g.fail(what, node, f"int8 {what} of two constants or of a per-channel quantized tensor")
    if isinstance(b[0], np.ndarray) and b[0].dtype != np.int8:
        g.fail(what, node, f"int8 {what} with a {b[0].dtype} constant operand")
    return a, b, swapped


def _binary_call(name, a, b, attrs, call, source):
    """The composite call of a binary op: two activations, or an activation and a constant
    (flash, "input2")."""
    shape = tvm_compat.shape_of(call.ty)
    if isinstance(b[0], np.ndarray):
        return CompositeCall(name, [a[0]], [b[0].astype(np.int8)], attrs, shape, "int8", source, ["input2"])
    return CompositeCall(name, [a[0], b[0]], [], attrs, shape, "int8", source)


def _rescaling(s1: float, s2: float, left_shift: int) -> dict:
    """TFLite's per-input rescaling of ADD / SQUARED_DIFFERENCE: input_i scale / (2 max scale),
    in doubles of the float32 scales."""
    twice_max = 2 * max(s1, s2)
    m1, sh1 = fxp.quantize_multiplier(s1 / twice_max)
    m2, sh2 = fxp.quantize_multiplier(s2 / twice_max)
    return {"left_shift": left_shift, "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2,
            "input2_shift": sh2}


def _match_addsub(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(add|subtract(dequantize(a), dequantize(b))) with broadcasting or a constant
    operand (the same-shape add of two activations is _match_add): TFLite Micro's int8 ADD or
    SUB, left_shift 20, the multipliers in doubles of the float32 scales (as the tflite_micro
    wheel the tests run; newer sub_common.cc divides in float32, which moves a multiplier by a
    few units in the last place)."""
    name = g.op(core)
    if name not in ("relax.add", "relax.subtract"):
        return None
    call = g.resolve(core)
    what = name.replace("relax.", "")
    operands = _binary_operands(g, call, what, node)
    if operands is None:
        return None
    a, b, swapped = operands
    s1, s2 = float(a[1][0]), float(b[1][0])
    attrs = _rescaling(s1, s2, 20)
    mo, sho = fxp.quantize_multiplier(2 * max(s1, s2) / ((1 << 20) * float(out_scale)))
    signs = (1, 1) if name == "relax.add" else (-1, 1) if swapped else (1, -1)
    attrs.update({"input1_zp": int(a[2][0]), "input2_zp": int(b[2][0]), "input1_sign": signs[0],
                  "input2_sign": signs[1], "multiplier": [mo], "shift": [sho],
                  **_out_range(out_scale, out_zp, act_min, act_max)})
    return _binary_call("adaptc.qaddsub", a, b, attrs, call, "add" if name == "relax.add" else "sub")


def _match_squared_difference(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(multiply(d, d)), d = subtract(dequantize(a), dequantize(b)) (TVM's import of
    SQUARED_DIFFERENCE): TFLite Micro's int8 SQUARED_DIFFERENCE, left_shift 7, the output
    multiplier (2 max scale)^2 / (2^14 s_out) in doubles; no activation."""
    if g.op(core) != "relax.multiply":
        return None
    call = g.resolve(core)
    if not call.args[0].same_as(call.args[1]) or g.op(call.args[0]) != "relax.subtract":
        return None
    operands = _binary_operands(g, g.resolve(call.args[0]), "squared_difference", node)
    if operands is None:
        return None
    a, b, _ = operands                     # (a - b)^2 = (b - a)^2
    s1, s2 = float(a[1][0]), float(b[1][0])
    twice_max = 2 * max(s1, s2)
    mo, sho = fxp.quantize_multiplier(twice_max * twice_max / ((1 << 14) * float(out_scale)))
    attrs = {**_rescaling(s1, s2, 7), "input1_zp": int(a[2][0]), "input2_zp": int(b[2][0]),
             "multiplier": [mo], "shift": [sho], **_out_range(out_scale, out_zp, act_min, act_max)}
    return _binary_call("adaptc.qsquared_difference", a, b, attrs, call, "squared_difference")


def _match_maxmin(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(maximum|minimum(dequantize(a), dequantize(b))): TFLite Micro's int8 MAXIMUM /
    MINIMUM compare the raw int8 values without checking their parameters, which gives the
    maximum only where both inputs have the output's scale and zero point: required here
    (post-training quantization requantizes the inputs to the output's parameters)."""
    name = g.op(core)
    if name not in ("relax.maximum", "relax.minimum"):
        return None
    call = g.resolve(core)
    what = name.replace("relax.", "")
    operands = _binary_operands(g, call, what, node)
    if operands is None:
        return None
    a, b, _ = operands
    params = {(float(np.float32(x[1][0])), int(x[2][0])) for x in (a, b)}
    if params != {(float(np.float32(out_scale)), int(out_zp))}:
        g.fail(what, node, f"int8 {what} with inputs quantized (scale, zero point) "
               f"{[(float(x[1][0]), int(x[2][0])) for x in (a, b)]} and output ({float(out_scale)}, {int(out_zp)}): "
               "TFLite Micro compares raw int8 values, so all three must be equal")
    attrs = {"function": what, **_out_range(out_scale, out_zp, act_min, act_max)}
    return _binary_call("adaptc.qmaxmin", a, b, attrs, call, what)


def _match_divide(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(divide(...)): refused (the C target has float DIV only; post-training
    quantization turns a division by a constant into a multiplication first). 1 / x is
    adaptc.unary's reciprocal (a table)."""
    if g.op(core) == "relax.divide" and match_unary(g, core) is None:
        g.fail("divide", node, "int8 division (DIV / Div) is not supported: only float32 DIV, and an int8 "
               "division by a constant as a multiplication by its reciprocal")
    return None


def _match_mul(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(multiply(dequantize(a), dequantize(b))), broadcasting, b possibly a constant:
    TFLite Micro's int8 MUL (the multiplier of s_a * s_b / s_out, in doubles of the float32
    scales)."""
    if g.op(core) != "relax.multiply":
        return None
    call = g.resolve(core)
    a, b = (_dequantized(g, e) for e in call.args)
    if a is None or b is None:
        return None
    if isinstance(a[0], np.ndarray):
        a, b = b, a                                   # the constant second (it lives in flash)
    if isinstance(a[0], np.ndarray) or len(a[1]) != 1 or len(b[1]) != 1:
        g.fail("multiply", node, "int8 multiply of two constants or by a per-channel quantized tensor")
    real = float(np.float32(a[1][0])) * float(np.float32(b[1][0])) / float(np.float32(out_scale))
    mult, shift = fxp.quantize_multiplier(real)
    attrs = {"input1_zp": int(a[2][0]), "input2_zp": int(b[2][0]), "multiplier": [mult], "shift": [shift],
             **_out_range(out_scale, out_zp, act_min, act_max)}
    if isinstance(b[0], np.ndarray):
        return CompositeCall("adaptc.qmul", [a[0]], [b[0].astype(np.int8)], attrs, tvm_compat.shape_of(call.ty),
                             "int8", "mul", ["input2"])
    return CompositeCall("adaptc.qmul", [a[0], b[0]], [], attrs, tvm_compat.shape_of(call.ty), "int8", "mul")


def _match_softmax(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(softmax | log_softmax(dequantize(x))), last axis: TFLite int8 SOFTMAX (output
    1/256, -128) and LOG_SOFTMAX (16/256, 127)."""
    log = g.op(core) == "relax.nn.log_softmax"
    if g.op(core) != "relax.nn.softmax" and not log:
        return None
    name = "log_softmax" if log else "softmax"
    call = g.resolve(core)
    x = _dequantized(g, call.args[0])
    if x is None or isinstance(x[0], np.ndarray):
        return None
    if int(call.attrs.axis) not in (-1, len(tvm_compat.shape_of(call.ty)) - 1):
        g.fail(name, node, f"{name} over an axis other than the last")
    want = fxp.LOG_SOFTMAX_OUTPUT if log else (1 / 256, -128)
    if abs(float(out_scale) - want[0]) > 1e-9 or out_zp != want[1]:
        g.fail(name, node, f"int8 {name} output must have scale {want[0]:g} and zero point {want[1]}")
    if log:
        p = fxp.log_softmax_params(float(x[1][0]))
        attrs = {k: int(p[k]) for k in ("reverse_multiplier", "reverse_shift", "diff_min")}
        return CompositeCall("adaptc.qlog_softmax", [x[0]], [p["exp_table"], p["diff_q5"]],
                             {"input_scale": float(x[1][0]), **attrs}, tvm_compat.shape_of(call.ty), "int8",
                             "log_softmax", ["exp_table", "diff_q5"])
    table = fxp.softmax_exp_table(float(x[1][0]))
    return CompositeCall("adaptc.qsoftmax", [x[0]], [table], {"input_scale": float(x[1][0])},
                         tvm_compat.shape_of(call.ty), "int8", "softmax", ["exp_table"])


def _match_mean(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(mean|sum|max(dequantize(x), neighbouring axes)): TFLite int8 MEAN, SUM and
    REDUCE_MAX (adaptc.qops._qreduce). A max keeps its input's parameters, as TFLite Micro requires."""
    reduce = {"relax.mean": "mean", "relax.sum": "sum", "relax.max": "max"}.get(g.op(core))
    if reduce is None:
        return None
    call = g.resolve(core)
    x = _dequantized(g, call.args[0])
    if x is None or isinstance(x[0], np.ndarray):
        return None
    axes, keep_dims = mean_axes(g, call, node, reduce)
    in_shape = tvm_compat.shape_of(g.resolve(x[0]).ty if x[0] in g.value else x[0].ty)
    count = int(np.prod([in_shape[a] for a in axes]))
    in_scale, in_zp = float(x[1][0]), int(x[2][0])
    attrs = {"reduce": reduce, "axes": axes, "keep_dims": keep_dims, "count": count, "input_zp": in_zp,
             "input_scale": in_scale}
    if reduce == "max":
        if np.float32(in_scale) != np.float32(out_scale) or in_zp != int(out_zp):
            g.fail("max", node, "int8 REDUCE_MAX with output quantization other than the input's "
                   "(TFLite Micro requires equal scales and zero points)")
    elif reduce == "mean":
        mult, shift = fxp.mean_multiplier(in_scale, float(out_scale), count)
        attrs.update(multiplier=[mult], shift=[shift])
    else:
        mult, shift = fxp.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
        attrs.update(multiplier=[mult], shift=[shift])
    attrs.update(_out_range(out_scale, out_zp, act_min, act_max))
    return CompositeCall("adaptc.qreduce", [x[0]], [], attrs, tvm_compat.shape_of(call.ty), "int8", reduce)


def _match_batch_matmul(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(matmul(dequantize(a), dequantize(b))) with both operands activations, a constant
    lhs, or a constant rhs of rank other than 2 (a 2-D constant rhs is FULLY_CONNECTED's, see
    _match_conv): TFLite int8 BATCH_MATMUL (adaptc.qops._qbatch_matmul), per-tensor parameters."""
    if g.op(core) != "relax.matmul":
        return None
    call = g.resolve(core)
    a, b = (_dequantized(g, arg) for arg in call.args)
    if a is None or b is None:
        return None
    a_const, b_const = isinstance(a[0], np.ndarray), isinstance(b[0], np.ndarray)
    if a_const and b_const or (b_const and b[0].ndim == 2):
        return None
    if a[1].size != 1 or b[1].size != 1:
        g.fail("matmul", node, "int8 batched matmul with per-channel quantization (TFLite Micro's "
               "BATCH_MATMUL takes one scale per operand)")
    real = float(np.float32(a[1][0])) * float(np.float32(b[1][0])) / float(np.float32(out_scale))
    mult, shift = fxp.quantize_multiplier(real)
    attrs = {"lhs_zp": int(a[2][0]), "rhs_zp": int(b[2][0]), "multiplier": [mult], "shift": [shift],
             "swap": a_const, **_out_range(out_scale, out_zp, act_min, act_max)}
    shape = tvm_compat.shape_of(call.ty)
    if a_const or b_const:
        const, act = (a, b) if a_const else (b, a)
        wide = np.abs(const[0].astype(np.int64)).max(initial=0) > 127     # power-of-two weights up to 2^14
        c = const[0].astype(np.int16 if wide else np.int8)
        return CompositeCall("adaptc.qbatch_matmul", [act[0]], [c], attrs, shape, "int8",
                             "batch_matmul", ["lhs" if a_const else "rhs"])
    return CompositeCall("adaptc.qbatch_matmul", [a[0], b[0]], [], attrs, shape, "int8", "batch_matmul")


def _requantize_call(x, in_scale: float, in_zp: int, out_scale, out_zp, act_min, act_max, shape, source):
    """x (int8, in_scale / in_zp) -> out_scale / out_zp, clamped: TFLite's int8 requantization
    (QUANTIZE, RELU) as a 256-entry table."""
    table = np.clip(luts.requantize(in_scale, in_zp, float(out_scale), int(out_zp)), act_min, act_max)
    return CompositeCall("adaptc.qlut", [x], [table.astype(np.int8)], {"input_scale": in_scale, "input_zp": in_zp,
                         **_out_range(out_scale, out_zp, act_min, act_max)}, shape, "int8", source, ["table"])


def _match_unary_lut(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(relu|clip(dequantize(x))) and quantize(dequantize(x)): a 256-entry table,
    computed with TFLite's int8 ReLU arithmetic (requantize, then clamp)."""
    x = _dequantized(g, core)
    if x is None or isinstance(x[0], np.ndarray):
        return None
    return _requantize_call(x[0], float(x[1][0]), int(x[2][0]), out_scale, out_zp, act_min, act_max,
                            tvm_compat.shape_of(g.resolve(core).ty), "relu/requantize")


def _match_unary_function(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(f(dequantize(x))) for a function f of adaptc.unary: its 256-entry table (TFLite
    Micro's int8 arithmetic for the operators TFLite has), clamped to the activation range."""
    m = match_unary(g, core)
    x = None if m is None else _dequantized(g, m.x)
    if x is None or isinstance(x[0], np.ndarray):
        return None
    in_scale, in_zp = float(x[1][0]), int(x[2][0])
    try:
        table = m.function.table(in_scale, in_zp, float(out_scale), int(out_zp), m.params)
    except ValueError as e:
        g.fail(m.function.name, node, str(e))
    table = np.clip(table, act_min, act_max).astype(np.int8)
    return CompositeCall("adaptc.qlut", [x[0]], [table], {"input_scale": in_scale, "input_zp": in_zp,
                         **_out_range(out_scale, out_zp, act_min, act_max)},
                         tvm_compat.shape_of(g.resolve(core).ty), "int8", m.function.name, ["table"])


def _match_prelu(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(adaptc.prelu's form of dequantize(x) and a dequantized constant alpha): TFLite
    Micro's int8 PRELU (BroadcastPrelu4DSlow; alpha int8, per tensor). Before the unary
    functions: a one-value alpha is PReLU's arithmetic, not LEAKY_RELU's."""
    m = match_prelu(g, core)
    if m is None:
        return None
    x, alpha = _dequantized(g, m[0]), _dequantized(g, m[1])
    if x is None or alpha is None or isinstance(x[0], np.ndarray) or not isinstance(alpha[0], np.ndarray):
        return None
    if len(alpha[1]) != 1 or alpha[0].dtype != np.int8:
        g.fail("prelu", node, "int8 PReLU with an alpha quantized per channel or not int8")
    attrs = {"input_zp": int(x[2][0]), "alpha_zp": int(alpha[2][0]),
             **prelu.multipliers(x[1][0], alpha[1][0], out_scale), **_out_range(out_scale, out_zp, act_min, act_max)}
    return CompositeCall("adaptc.qprelu", [x[0]], [alpha[0]], attrs, tvm_compat.shape_of(g.resolve(core).ty),
                         "int8", "prelu", ["alpha"])


def _match_input_quantize(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(x) of a float model input (TFLite QUANTIZE float32 -> int8 as a model's first
    operator): the compiled model takes the float input and quantizes it as TFLite does; or of
    a float composite's result (an operator with no int8 form, kept float by post-training
    quantization between a dequantize and a quantize: a GRU)."""
    x = core if isinstance(core, relax.Var) and _float_composite(g.value.get(core)) else g.resolve(core)
    if not isinstance(x, relax.Var) or tvm_compat.dtype_of(x.ty) != "float32":
        return None
    if x in g.value and not _float_composite(g.value[x]):
        return None
    return CompositeCall("adaptc.quantize", [x], [], _out_range(out_scale, out_zp, act_min, act_max),
                         tvm_compat.shape_of(x.ty), "int8", "quantize")


def _float_composite(value) -> bool:
    """A call of a float composite function (main calls no other global)."""
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar) and \
        tvm_compat.dtype_of(value.ty) == "float32"


RESIZE_MODES = {"asymmetric": (False, False), "align_corners": (True, False), "half_pixel": (False, True)}


def _match_resize(g, core, out_scale, out_zp, act_min, act_max, node):
    """quantize(resize2d(dequantize(x)), mode linear, NHWC): TFLite's int8 RESIZE_BILINEAR
    (ResizeBilinearInteger; no requantization, so the output parameters must be the input's)."""
    if g.op(core) != "relax.image.resize2d":
        return None
    call = g.resolve(core)
    x = _dequantized(g, call.args[0])
    if x is None or isinstance(x[0], np.ndarray):
        return None
    a = call.attrs
    mode = str(a.coordinate_transformation_mode)
    if str(a.method) != "linear" or str(a.layout) != "NHWC" or mode not in RESIZE_MODES:
        g.fail("resize2d", node, f"int8 resize {a.method} {a.layout} {mode}: only bilinear NHWC, "
               "coordinates asymmetric | align_corners | half_pixel")
    if np.float32(x[1][0]) != np.float32(out_scale) or int(x[2][0]) != int(out_zp) or (act_min, act_max) != (-128, 127):
        g.fail("resize2d", node, "int8 bilinear resize with output quantization other than the input's "
               "(TFLite Micro does not requantize)")
    in_shape = tvm_compat.shape_of(g.resolve(x[0]).ty if x[0] in g.value else x[0].ty)
    out_shape = tvm_compat.shape_of(call.ty)
    align, half = RESIZE_MODES[mode]
    ys = resize.tflite_integer(in_shape[1], out_shape[1], align, half)
    xs = resize.tflite_integer(in_shape[2], out_shape[2], align, half)
    return CompositeCall("adaptc.qresize_bilinear", [x[0]], [*ys, *xs],
                         {"out_h": out_shape[1], "out_w": out_shape[2], "align_corners": align,
                          "half_pixel_centers": half}, out_shape, "int8", "resize_bilinear",
                         ["y_lo", "y_hi", "y_frac", "x_lo", "x_hi", "x_frac"])


QUANTIZE_MATCHERS = (_match_conv, _match_add, _match_addsub, _match_squared_difference, _match_maxmin, _match_divide,
                     _match_mul, _match_softmax, _match_mean, _match_unary_function, _match_unary_lut)
QUANTIZE_MATCHERS += (_match_input_quantize, _match_resize)    # data movement (issue 16)
QUANTIZE_MATCHERS = (_match_batch_matmul, *QUANTIZE_MATCHERS)    # before _match_conv's dense (issue 16)
QUANTIZE_MATCHERS = (_match_transpose_conv, *QUANTIZE_MATCHERS)  # before _match_add: its bias is an add
QUANTIZE_MATCHERS = (_match_prelu, *QUANTIZE_MATCHERS)    # before the unary functions' leaky_relu (issue 16)
WEIGHTED = ("adaptc.qconv2d", "adaptc.qdense", "adaptc.qtranspose_conv2d",   # marked with their weight_format
            "adaptc.qbatch_matmul")                                            # (when it has a constant operand)


def _pool_padding(attrs):
    return [int(v) for v in attrs.padding]


def _valid_counts(in_hw, out_hw, pool, strides, padding):
    """Number of in-bounds window elements per output position: int32 [out_h, out_w, 1]."""
    counts = np.zeros((out_hw[0], out_hw[1], 1), np.int32)
    for oy in range(out_hw[0]):
        y0 = oy * strides[0] - padding[0]
        ny = min(y0 + pool[0], in_hw[0]) - max(y0, 0)
        for ox in range(out_hw[1]):
            x0 = ox * strides[1] - padding[1]
            counts[oy, ox, 0] = ny * (min(x0 + pool[1], in_hw[1]) - max(x0, 0))
    return counts


class _Legalizer:
    def __init__(self, mod, path, weight_formats=False):
        self.mod, self.path, self.weight_formats = mod, path, weight_formats
        self.g = Graph(mod["main"], path, SUPPORTED)
        self.calls: list[tuple[relax.Var, object]] = []   # (old var, CompositeCall | reshape expr)
        self.alias: dict = {}                              # old var -> old var it equals
        self.act: dict = {}                                # quantize var -> (act_min, act_max)

    def run(self):
        g = self.g
        # the inputs of float composites: their dequantizes become steps (adaptc.dequantize)
        self.float_inputs = {a for b in g.bindings if _float_composite(b.value) for a in b.value.args}
        # Fold int8 clips into the single-use quantize (or composite) that produces them.
        for b in g.bindings:
            if tvm_compat.op_name(b.value) == "relax.clip" and tvm_compat.dtype_of(b.var.ty) == "int8":
                src = b.value.args[0]
                if g.uses.get(src) == 1 and g.op(src) in ("relax.quantize", "relax.astype", "relax.nn.max_pool2d"):
                    lo, hi = self.act.get(src, (-128, 127))
                    self.act[src] = (max(lo, int(float(b.value.args[1].value))),
                                     min(hi, int(float(b.value.args[2].value))))
                    self.alias[b.var] = src
        for b in g.bindings:
            if b.var in self.alias:
                continue
            self.visit(b.var, b.value)
        return self.materialize()

    def visit(self, var, value):
        g = self.g
        name = tvm_compat.op_name(value)
        dtype = None if name == "relax.split" else tvm_compat.dtype_of(var.ty)   # (a split: a tuple)
        if isinstance(value, relax.Var):
            self.alias[var] = value
        elif name == "relax.split":            # its parts become slices (split_part)
            return
        elif (part := split_part(g, value)) is not None:
            self.calls.append((var, part))
        elif (imported := imported_composite(self.mod, value)) is not None:
            self.calls.append((var, imported))   # emitted by the importer (adaptc.qlstm)
        elif const_eval(g, value) is not None:
            return  # constant subexpression (weights being reshaped): read by the matchers
        elif name == "relax.quantize":
            out_scale = np.float32(_scalar(g.resolve(value.args[1])))
            out_zp = int(_scalar(g.resolve(value.args[2])))
            if dtype != "int8":
                g.fail(f"quantize to {dtype}", var.name, "only int8 activations")
            act_min, act_max = self.act.get(var, (-128, 127))
            core, lo, hi = value.args[0], -128, 127
            if match_unary(g, core) is None:          # (a hard sigmoid ends with its own clip)
                core, lo, hi = _activation_range(g, core, out_scale, out_zp)
            act_min, act_max = max(act_min, lo), min(act_max, hi)
            if g.op(core) == "relax.concat":
                self.visit_concat(var, g.resolve(core), out_scale, out_zp, act_min, act_max)
                return
            for matcher in QUANTIZE_MATCHERS:
                call = matcher(g, core, out_scale, out_zp, act_min, act_max, var.name)
                if call is not None and self.weight_formats and call.name in WEIGHTED and call.consts:
                    call.attrs["weight_format"] = formats.format_of(call.consts[0]).name
                if call is not None:
                    self.calls.append((var, call))
                    return
            g.fail(str(g.op(core) or type(g.resolve(core)).__name__).replace("relax.", ""), var.name,
                   "no integer lowering for this quantized pattern")
        elif name == "relax.astype" and dtype == "int8":
            self.visit_avg_pool(var, value)
        elif name == "relax.nn.max_pool2d" and dtype == "int8":
            a = value.attrs
            act_min, act_max = self.act.get(var, (-128, 127))
            self.calls.append((var, CompositeCall(
                "adaptc.qmax_pool2d", [value.args[0]], [],
                {"pool_size": [int(v) for v in a.pool_size], "strides": [int(v) for v in a.strides],
                 "padding": _pool_padding(a), "act_min": act_min, "act_max": act_max},
                tvm_compat.shape_of(var.ty), "int8", "max_pool2d")))
        elif name == "relax.nn.pad" and dtype == "int8":
            a = value.attrs
            self.calls.append((var, CompositeCall(
                "adaptc.qpad", [value.args[0]], [],
                {"pad_width": [int(v) for v in a.pad_width], "pad_value": int(float(a.pad_value))},
                tvm_compat.shape_of(var.ty), "int8", "pad")))
        elif name in ("relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.permute_dims",
                      "relax.strided_slice", "relax.take", "relax.concat") and dtype == "int8" or \
                name in ("relax.reshape", "relax.squeeze", "relax.expand_dims") and dtype in ("int32", "int64"):
            self.calls.append((var, value))     # (an int8 concat: TFLite PACK, no requantization; int32: indices)
        elif name == "relax.argmax" and tvm_compat.dtype_of(value.args[0].ty) == "int8":
            self.calls.append((var, CompositeCall(
                "adaptc.qargmax", [value.args[0]], [], {"axis": int(value.attrs.axis) % len(value.args[0].ty.shape)},
                tvm_compat.shape_of(var.ty), "int32", "arg_max")))
        elif name == "relax.dequantize" and not tvm_compat.is_constant(value.args[0]) and (
                any(var.same_as(r) for r in g.results) or var in self.float_inputs):
            x = _dequantized(g, var)
            self.calls.append((var, CompositeCall(
                "adaptc.dequantize", [x[0]], [], {"input_scale": float(x[1][0]), "input_zp": int(x[2][0])},
                tvm_compat.shape_of(var.ty), "float32", "dequantize")))
        elif dtype == "int8" or name == "relax.clip" and dtype == "int8":
            g.fail(str(name).replace("relax.", ""), var.name, "int8 operator outside a quantize pattern")
        # float and int32 bindings are consumed by the patterns above; leftovers are checked later

    def visit_concat(self, var, call, out_scale, out_zp, act_min, act_max):
        """quantize(concat(dequantize(x1), ...)): the int8 concat of the inputs, each first
        requantized to the output's parameters (a table) where its own differ or a clamp applies
        (TFLite Micro requires equal parameters; post-training quantization may not have them)."""
        g, parts = self.g, []
        for i, field in enumerate(call.args[0].fields):
            x = _dequantized(g, field)
            if x is None or isinstance(x[0], np.ndarray):
                g.fail("concat", var.name, "int8 concat of a constant or of a value that is not int8")
            in_scale, in_zp = float(x[1][0]), int(x[2][0])
            if (np.float32(in_scale) == np.float32(out_scale) and in_zp == int(out_zp)
                    and (act_min, act_max) == (-128, 127)):
                parts.append(x[0])
                continue
            shape = tvm_compat.shape_of(g.resolve(field).ty)
            requantized = relax.Var(f"{var.name}_in{i}", tvm_compat.tensor_type(shape, "int8"))
            self.calls.append((requantized, _requantize_call(x[0], in_scale, in_zp, out_scale, out_zp, act_min,
                                                             act_max, shape, "concat input requantize")))
            parts.append(requantized)
        self.calls.append((var, relax.op.concat(parts, axis=int(call.attrs.axis))))

    def visit_avg_pool(self, var, value):
        g = self.g
        pool = g.resolve(value.args[0])
        if tvm_compat.op_name(pool) != "relax.nn.avg_pool2d" or g.op(pool.args[0]) != "relax.astype":
            g.fail("astype", var.name, "int8 cast outside the quantized average-pool pattern")
        x = g.resolve(pool.args[0]).args[0]
        a = pool.attrs
        in_shape = tvm_compat.shape_of(g.resolve(x).ty if x in g.value else x.ty)
        out_shape = tvm_compat.shape_of(var.ty)
        if str(a.layout) != "NHWC" or int(a.dilation[0]) != 1 or int(a.dilation[1]) != 1 or bool(a.ceil_mode):
            g.fail("avg_pool2d", var.name, "int8 average pooling must be NHWC, no dilation, floor mode")
        pool_size, strides, padding = ([int(v) for v in a.pool_size], [int(v) for v in a.strides], _pool_padding(a))
        counts = _valid_counts(in_shape[1:3], out_shape[1:3], pool_size, strides, padding)
        act_min, act_max = self.act.get(var, (-128, 127))
        self.calls.append((var, CompositeCall(
            "adaptc.qavg_pool2d", [x], [counts],
            {"pool_size": pool_size, "strides": strides, "padding": padding, "channels": in_shape[-1],
             "act_min": act_min, "act_max": act_max},
            out_shape, "int8", "avg_pool2d", ["counts"])))

    def materialize(self):
        return rebuild_main(self.mod, self.g, self.calls, self.alias)


def LegalizeQDQ(path: str = "<module>", weight_formats: bool = False) -> tvm.transform.Pass:
    """Rewrite QDQ chains into int8 composite functions (see module docstring). With
    ``weight_formats`` (after QuantizeWeights), conv2d (depthwise too), transposed conv2d and dense composites also
    carry ``weight_format``: the smallest adaptc.formats format of their weights, which the C
    target stores packed."""

    @tvm_compat.module_pass("adaptc.LegalizeQDQ")
    def _pass(mod):
        return _Legalizer(mod, path, weight_formats).run()

    return _pass
