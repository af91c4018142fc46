"""Synthetic layers of the operators added after the first cost fit, one function per composite:
what benchmarks/kernel_tables.py fits the cost tables and measures the code sizes of a new
kernel on (fit_cost_tables.py ``--kernels``, measure_code_sizes.py ``--kernels``).

``OPS[composite] = (dtype, layer)``: ``layer(rng)`` returns one layer ``(op, attrs, consts,
in_shapes, out_shape)`` of typical TinyML sizes drawn from ``rng`` (a numpy Generator); the
program's input and output are ``dtype``. Adding an operator adds its entries here (CONTRIBUTING.md,
"Add an operator"); the fit draws layers with random generators, the size measurement with
fixed seeds, so both are reproducible.
"""
from __future__ import annotations

import numpy as np

ELEMENTS = 6144                    # at most 24 KiB of float32 per layer (the Cortex-M3 board has 96 KiB)


def _spatial(rng) -> tuple[int, int, int, int]:
    """(batch, h, w, channels) of a feature map before global pooling."""
    while True:
        h = w = int(rng.choice([2, 3, 4, 5, 6, 7, 8, 8, 10, 12, 16]))
        if rng.random() < 0.25:                    # a spectrogram-like map
            h, w = int(rng.integers(2, 25)), int(rng.integers(1, 6))
        c = int(rng.choice([1, 3, 8, 10, 16, 24, 32, 64, 96, 128]))
        batch = 1 if rng.random() < 0.9 else 2
        if batch * h * w * c <= ELEMENTS:
            return batch, h, w, c


def reduce_s8(rng):
    """TFLite int8 MEAN, SUM or REDUCE_MAX over H, W (adaptc.qreduce's attributes, as
    LegalizeQDQ computes them)."""
    from adaptc import fixedpoint as fxp

    n, h, w, c = _spatial(rng)
    reduce = str(rng.choice(["mean", "mean", "sum", "max"]))
    in_scale, out_scale = float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.005, 0.2))
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    if reduce == "mean":
        mult, shift = fxp.mean_multiplier(in_scale, out_scale, h * w)
    elif reduce == "sum":
        mult, shift = fxp.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    else:
        out_scale, out_zp, mult, shift = in_scale, in_zp, 0, 0
    keep = bool(rng.random() < 0.5)
    narrow = rng.random() < 0.2
    attrs = {"reduce": reduce, "axes": [1, 2], "keep_dims": keep, "count": h * w, "input_zp": in_zp,
             "input_scale": in_scale, "multiplier": [mult], "shift": [shift], "output_zp": out_zp,
             "output_scale": out_scale, "act_min": -128 if not narrow else -10, "act_max": 127 if not narrow else 90}
    return "adaptc.qreduce", attrs, {}, [(n, h, w, c)], (n, 1, 1, c) if keep else (n, c)


def reduce_f32(rng):
    """ONNX ReduceMean, ReduceSum or ReduceMax over H, W of an NHWC float map (adaptc.reduce_f32)."""
    n, h, w, c = _spatial(rng)
    keep = bool(rng.random() < 0.5)
    attrs = {"reduce": str(rng.choice(["mean", "sum", "max"])), "axes": [1, 2], "keep_dims": keep, "count": h * w,
             "act_min": -np.inf, "act_max": np.inf}
    if rng.random() < 0.3:
        attrs.update(act_min=0.0, act_max=6.0)
    return "adaptc.reduce_f32", attrs, {}, [(n, h, w, c)], (n, 1, 1, c) if keep else (n, c)


def _batch_matmul(rng, dtype):
    """Operand shapes of an attention-like batched matmul: [B, M, K] x [B|1, K, N], sometimes
    with a constant lhs (swap)."""
    b, m, k, n = (int(rng.integers(1, 5)), int(rng.integers(1, 17)), int(rng.integers(1, 33)),
                  int(rng.integers(1, 17)))
    rhs_b = b if rng.random() < 0.7 else 1
    swap = bool(rng.random() < 0.2)
    lhs, rhs = (b, m, k), (rhs_b, k, n)
    if swap:
        lhs = (m, k)
        const = {"lhs": (rng.integers(-127, 128, lhs, dtype=np.int8) if dtype == "int8"
                         else rng.standard_normal(lhs).astype(np.float32))}
        return swap, const, [rhs], (rhs_b, m, n)
    return swap, {}, [lhs, rhs], (b, m, n)


def batch_matmul_s8(rng):
    """TFLite int8 BATCH_MATMUL (adaptc.qbatch_matmul's attributes, as LegalizeQDQ computes them)."""
    from adaptc import fixedpoint as fxp

    swap, consts, shapes, out = _batch_matmul(rng, "int8")
    mult, shift = fxp.quantize_multiplier(float(rng.uniform(1e-4, 0.02)))
    attrs = {"lhs_zp": int(rng.integers(-128, 128)), "rhs_zp": int(rng.integers(-128, 128)), "multiplier": [mult],
             "shift": [shift], "swap": swap, "output_zp": int(rng.integers(-128, 128)), "output_scale": 0.1,
             "act_min": -128, "act_max": 127}
    return "adaptc.qbatch_matmul", attrs, consts, shapes, out


def batch_matmul_f32(rng):
    """ONNX MatMul of two activations (or a constant lhs) with batch dims (adaptc.batch_matmul_f32)."""
    swap, consts, shapes, out = _batch_matmul(rng, "float32")
    return "adaptc.batch_matmul_f32", {"swap": swap, "act_min": -np.inf, "act_max": np.inf}, consts, shapes, out


def unary_f32(rng):
    """A float element-wise function of adaptc.unary over a feature map (adaptc.unary_f32)."""
    from adaptc import unary

    n, h, w, c = _spatial(rng)
    function = str(rng.choice(sorted(unary.FUNCTIONS)))
    attrs = {"function": function, "alpha": float(rng.uniform(0.01, 1.0)), "beta": 0.5}
    return "adaptc.unary_f32", attrs, {}, [(n, h, w, c)], (n, h, w, c)


def _broadcast_operands(rng):
    """Two operand shapes of a broadcasting element-wise op and the output shape: same shape, a
    per-channel gate [1, 1, 1, C] (squeeze-and-excitation), or a per-pixel one [1, H, W, 1]."""
    n, h, w, c = _spatial(rng)
    full = (n, h, w, c)
    other = [full, (n, 1, 1, c), (n, h, w, 1), (1, 1, 1, 1)][int(rng.integers(0, 4))]
    return [full, other] if rng.random() < 0.7 else [other, full], full


def mul_s8(rng):
    """TFLite int8 MUL, broadcasting (adaptc.qmul's attributes, as LegalizeQDQ computes them)."""
    from adaptc import fixedpoint as fxp

    shapes, out = _broadcast_operands(rng)
    s1, s2, so = (float(rng.uniform(0.005, 0.1)) for _ in range(3))
    mult, shift = fxp.quantize_multiplier(s1 * s2 / so)
    attrs = {"input1_zp": int(rng.integers(-128, 128)), "input2_zp": int(rng.integers(-128, 128)),
             "multiplier": [mult], "shift": [shift], "output_zp": int(rng.integers(-128, 128)), "output_scale": so,
             "act_min": -128, "act_max": 127}
    return "adaptc.qmul", attrs, {}, shapes, out


def mul_f32(rng):
    """ONNX Mul of two float maps, broadcasting (adaptc.mul_f32)."""
    shapes, out = _broadcast_operands(rng)
    return "adaptc.mul_f32", {"act_min": -np.inf, "act_max": np.inf}, {}, shapes, out


def _rescaled(rng, left_shift: int) -> dict:
    """The per-input rescaling TFLite's ADD / SUB (left_shift 20) and SQUARED_DIFFERENCE (7)
    compute, for random scales; the output multiplier is the caller's."""
    from adaptc import fixedpoint as fxp

    s1, s2 = (float(rng.uniform(0.005, 0.1)) for _ in range(2))
    m1, sh1 = fxp.quantize_multiplier(s1 / (2 * max(s1, s2)))
    m2, sh2 = fxp.quantize_multiplier(s2 / (2 * max(s1, s2)))
    return {"left_shift": left_shift, "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2,
            "input2_shift": sh2, "input1_zp": int(rng.integers(-128, 128)), "input2_zp": int(rng.integers(-128, 128)),
            "output_zp": int(rng.integers(-128, 128)), "act_min": -128, "act_max": 127, "twice_max": 2 * max(s1, s2)}


def addsub_s8(rng):
    """TFLite int8 ADD with broadcasting / SUB (adaptc.qaddsub, as LegalizeQDQ computes it)."""
    from adaptc import fixedpoint as fxp

    shapes, out = _broadcast_operands(rng)
    attrs = _rescaled(rng, 20)
    so = float(rng.uniform(0.005, 0.2))
    mult, shift = fxp.quantize_multiplier(attrs.pop("twice_max") / ((1 << 20) * so))
    sign = 1 if rng.random() < 0.5 else -1
    attrs.update(multiplier=[mult], shift=[shift], output_scale=so, input1_sign=1, input2_sign=sign)
    return "adaptc.qaddsub", attrs, {}, shapes, out


def squared_difference_s8(rng):
    """TFLite int8 SQUARED_DIFFERENCE, broadcasting (adaptc.qsquared_difference)."""
    from adaptc import fixedpoint as fxp

    shapes, out = _broadcast_operands(rng)
    attrs = _rescaled(rng, 7)
    so = float(rng.uniform(0.005, 0.2))
    twice_max = attrs.pop("twice_max")
    mult, shift = fxp.quantize_multiplier(twice_max * twice_max / ((1 << 14) * so))
    attrs.update(multiplier=[mult], shift=[shift], output_scale=so)
    return "adaptc.qsquared_difference", attrs, {}, shapes, out


def maxmin_s8(rng):
    """TFLite int8 MAXIMUM / MINIMUM, broadcasting (adaptc.qmaxmin)."""
    shapes, out = _broadcast_operands(rng)
    attrs = {"function": str(rng.choice(["maximum", "minimum"])), "output_zp": 0, "output_scale": 0.05,
             "act_min": -128, "act_max": 127}
    return "adaptc.qmaxmin", attrs, {}, shapes, out


def binary_f32(rng):
    """Float ADD (broadcasting) / SUB / DIV / MAXIMUM / MINIMUM / SQUARED_DIFFERENCE
    (adaptc.binary_f32), a third of them divisions (the kernel's slow case)."""
    from adaptc.qops import BINARY_F32

    shapes, out = _broadcast_operands(rng)
    function = "divide" if rng.random() < 0.33 else str(rng.choice(sorted(BINARY_F32)))
    return "adaptc.binary_f32", {"function": function, "act_min": -np.inf, "act_max": np.inf}, {}, shapes, out


def where_f32(rng):
    """ONNX Where of a comparison, float (adaptc.where_f32): two activations (one broadcast) and
    two constants (a scalar bound, a per-channel value), any comparison."""
    from adaptc.qops import COMPARISONS

    shapes, out = _broadcast_operands(rng)
    consts = {"operand2": np.float32(rng.normal()), "operand3": rng.normal(size=(out[-1],)).astype(np.float32)}
    slots = [[0, 2, 3, 1], [1, 2, 0, 3], [0, 1, 3, 0]][int(rng.integers(0, 3))]
    attrs = {"comparison": str(rng.choice(sorted(COMPARISONS))), "slots": slots}
    return "adaptc.where_f32", attrs, consts, shapes, out


def concat(rng):
    """A Relax concat of two to four int8 maps along channels (a fire module, an inception
    block) or rows (adaptc.concat; the kernel copies bytes, so int8 stands for every type)."""
    n, h, w, c = _spatial(rng)
    count = int(rng.integers(2, 5))
    axis = 3 if rng.random() < 0.8 else 1
    shapes = []
    for _ in range(count):
        shape = [n, h, w, c]
        shape[axis] = max(1, int(rng.integers(1, shape[axis] + 1)) // (1 if axis == 3 else 2) or 1)
        shapes.append(tuple(shape))
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return "adaptc.concat", {"axis": axis, "item_bytes": 1}, {}, shapes, tuple(out)


def slice_(rng):
    """A strided slice of an int8 map: half of the channels (a ShuffleNet split), a window of
    rows and columns, or every other pixel (adaptc.slice; bytes again stand for every type)."""
    n, h, w, c = _spatial(rng)
    shape = (n, h, w, c)
    begin, strides, out = [0, 0, 0, 0], [1, 1, 1, 1], list(shape)
    kind = int(rng.integers(0, 3))
    if kind == 0 and c > 1:
        begin[3] = int(rng.integers(0, c // 2 + 1))
        out[3] = c // 2 or 1
    elif kind == 1:
        for d in (1, 2):
            begin[d] = int(rng.integers(0, shape[d]))
            out[d] = int(rng.integers(1, shape[d] - begin[d] + 1))
    else:
        for d in (1, 2):
            strides[d] = 2
            out[d] = (shape[d] + 1) // 2
    return "adaptc.slice", {"begin": begin, "strides": strides, "item_bytes": 1}, {}, [shape], tuple(out)


def gather(rng):
    """A gather of rows or columns of an int8 map by constant indices: one axis of a nearest
    upsampling by 2 or 3, or of a downsampling (adaptc.gather; bytes stand for every type)."""
    n, h, w, c = _spatial(rng)
    axis = int(rng.choice([1, 2]))
    size = (n, h, w, c)[axis]
    factor = float(rng.choice([2.0, 3.0, 0.5]))
    count = max(1, int(size * factor))
    while n * h * w * c * count // size > ELEMENTS:
        count //= 2
    idx = np.minimum((np.arange(count) / factor).astype(np.int32), size - 1)
    out = [n, h, w, c]
    out[axis] = count
    return "adaptc.gather", {"axis": axis, "item_bytes": 1}, {"indices": idx}, [(n, h, w, c)], tuple(out)


def lstm_s8(rng):
    """TFLite int8 UNIDIRECTIONAL_SEQUENCE_LSTM, int16 cell state (adaptc.qlstm's attributes, as
    adaptc.lstm computes them from random scales)."""
    from adaptc import lstm

    t, n_in, units = int(rng.integers(2, 17)), int(rng.integers(1, 17)), int(rng.integers(4, 33))
    in_s, h_s = float(rng.uniform(0.005, 0.05)), float(rng.uniform(0.004, 0.02))
    attrs = lstm.params(in_s, int(rng.integers(-128, 128)), h_s, int(rng.integers(-128, 128)),
                        2.0 ** -int(rng.integers(10, 14)), 10.0, rng.uniform(0.002, 0.01, 4),
                        rng.uniform(0.002, 0.01, 4))
    attrs.update(time_steps=t, units=units)
    consts = {"input_weights": rng.integers(-127, 128, (n_in, 4 * units), dtype=np.int8),
              "recurrent_weights": rng.integers(-127, 128, (units, 4 * units), dtype=np.int8),
              "bias": rng.integers(-5000, 5000, 4 * units).astype(np.int32)}
    return "adaptc.qlstm", attrs, consts, [(1, t, n_in)], (1, t, units)


OPS = {
    "adaptc.qreduce": ("int8", reduce_s8),
    "adaptc.reduce_f32": ("float32", reduce_f32),
    "adaptc.qbatch_matmul": ("int8", batch_matmul_s8),
    "adaptc.batch_matmul_f32": ("float32", batch_matmul_f32),
    "adaptc.unary_f32": ("float32", unary_f32),
    "adaptc.qmul": ("int8", mul_s8),
    "adaptc.mul_f32": ("float32", mul_f32),
    "adaptc.qaddsub": ("int8", addsub_s8),
    "adaptc.qsquared_difference": ("int8", squared_difference_s8),
    "adaptc.qmaxmin": ("int8", maxmin_s8),
    "adaptc.binary_f32": ("float32", binary_f32),
    "adaptc.where_f32": ("float32", where_f32),
    "adaptc.concat": ("int8", concat),
    "adaptc.slice": ("int8", slice_),
    "adaptc.gather": ("int8", gather),
    "adaptc.qlstm": ("int8", lstm_s8),
}


def quantize_f32_s8(rng):
    """A float model input quantized to int8 (adaptc.quantize, TFLite QUANTIZE at the input)."""
    n, h, w, c = _spatial(rng)
    attrs = {"output_scale": float(rng.uniform(0.005, 0.1)), "output_zp": int(rng.integers(-128, 128)),
             "act_min": -128, "act_max": 127}
    return "adaptc.quantize", attrs, {}, [(n, h, w, c)], (n, h, w, c)


def dequantize_s8_f32(rng):
    """An int8 output dequantized to float (adaptc.dequantize, TFLite DEQUANTIZE at the output)."""
    n, h, w, c = _spatial(rng)
    attrs = {"input_scale": float(rng.uniform(0.005, 0.1)), "input_zp": int(rng.integers(-128, 128))}
    return "adaptc.dequantize", attrs, {}, [(n, h, w, c)], (n, h, w, c)


def _resize_layer(rng, integer: bool):
    from adaptc import resize

    while True:
        n, h, w, c = _spatial(rng)
        oh, ow = (int(d * float(rng.choice([2.0, 2.0, 1.5, 3.0, 0.5]))) or 1 for d in (h, w))
        if n * oh * ow * c <= ELEMENTS:
            break
    align, half = [(False, False), (True, False), (False, True)][int(rng.integers(3))]
    table = resize.tflite_integer if integer else resize.tflite_float
    ys, xs = table(h, oh, align, half), table(w, ow, align, half)
    consts = dict(zip(("y_lo", "y_hi", "y_frac", "x_lo", "x_hi", "x_frac"), (*ys, *xs)))
    attrs = {"out_h": oh, "out_w": ow, "align_corners": align, "half_pixel_centers": half}
    return ("adaptc.qresize_bilinear" if integer else "adaptc.resize_bilinear_f32"), attrs, consts, \
        [(n, h, w, c)], (n, oh, ow, c)


def resize_bilinear_s8(rng):
    """TFLite int8 RESIZE_BILINEAR (adaptc.qresize_bilinear) by 2, 1.5, 3 or 0.5."""
    return _resize_layer(rng, True)


def resize_bilinear_f32(rng):
    """Float bilinear resizing (adaptc.resize_bilinear_f32) by 2, 1.5, 3 or 0.5."""
    return _resize_layer(rng, False)


def _argmax_layer(rng, op: str):
    """ARG_MAX over the last axis of logits or of a segmentation map's channels (int32 output)."""
    if rng.random() < 0.5:
        shape = (1, int(rng.choice([2, 3, 10, 12, 35, 100, 1000])))
    else:
        n, h, w, c = _spatial(rng)
        shape = (n, h, w, c)
    return op, {"axis": len(shape) - 1}, {}, [shape], shape[:-1]


def argmax_s8(rng):
    return _argmax_layer(rng, "adaptc.qargmax")


def argmax_f32(rng):
    return _argmax_layer(rng, "adaptc.argmax_f32")


OPS.update({   # data movement and quantization (issue 16); (input dtype, output dtype) where they differ
    "adaptc.quantize": (("float32", "int8"), quantize_f32_s8),
    "adaptc.dequantize": (("int8", "float32"), dequantize_s8_f32),
    "adaptc.qresize_bilinear": ("int8", resize_bilinear_s8),
    "adaptc.resize_bilinear_f32": ("float32", resize_bilinear_f32),
    "adaptc.qargmax": (("int8", "int32"), argmax_s8),
    "adaptc.argmax_f32": (("float32", "int32"), argmax_f32),
})


def _resize_axis_layer(rng, integer: bool):
    """One axis of an ONNX Resize (adaptc.interpolate): linear or cubic, antialiased when
    downsampling, along H of NCHW-like [outer, in, inner] or W of NHWC-like maps."""
    from adaptc import interpolate, resize

    while True:
        n, h, w, c = _spatial(rng)
        scale = float(rng.choice([2.0, 2.0, 1.5, 3.0, 0.5]))
        out = max(int(h * scale), 1)
        if n * out * w * c <= ELEMENTS:
            break
    mode = str(rng.choice(["linear", "cubic"]))
    idx, wts, _ = resize.onnx_taps(h, out, scale, mode, antialias=scale < 1)
    attrs = {**interpolate.axis_geometry((n, h, w, c), 1, out), "taps": idx.shape[1], "out_shape": [n, out, w, c]}
    if not integer:
        return "adaptc.resize_axis_f32", attrs, {"indices": idx, "weights": wts}, [(n, h, w, c)], (n, out, w, c)
    call = interpolate.qresize_axis(attrs, idx, wts, float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128)),
                                    float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128)), (n, out, w, c))
    return "adaptc.qresize_axis", call.attrs, dict(zip(call.const_names, call.consts)), [(n, h, w, c)], (n, out, w, c)


def resize_axis_s8(rng):
    return _resize_axis_layer(rng, True)


def resize_axis_f32(rng):
    return _resize_axis_layer(rng, False)


OPS.update({   # ONNX Resize linear / cubic, one axis
    "adaptc.qresize_axis": ("int8", resize_axis_s8),
    "adaptc.resize_axis_f32": ("float32", resize_axis_f32),
})


def _prelu_layer(rng, integer: bool):
    """PReLU over a feature map, alpha per channel [1, 1, 1, C], per element or one value
    (adaptc.qprelu's attributes as LegalizeQDQ computes them; adaptc.prelu_f32)."""
    from adaptc import prelu

    n, h, w, c = _spatial(rng)
    shape = [(1, 1, 1, c), (1, h, w, c), (1, 1, 1, 1)][int(rng.integers(0, 3))]
    if not integer:
        return "adaptc.prelu_f32", {}, {"alpha": rng.normal(0, 0.3, shape).astype(np.float32)}, [(n, h, w, c)], \
            (n, h, w, c)
    s_in, s_a, s_out = (float(rng.uniform(0.005, 0.1)) for _ in range(3))
    attrs = {"input_zp": int(rng.integers(-128, 128)), "alpha_zp": int(rng.integers(-20, 20)),
             **prelu.multipliers(s_in, s_a, s_out), "output_zp": int(rng.integers(-128, 128)), "output_scale": s_out,
             "act_min": -128, "act_max": 127}
    return "adaptc.qprelu", attrs, {"alpha": rng.integers(-128, 128, shape, dtype=np.int8)}, [(n, h, w, c)], \
        (n, h, w, c)


def prelu_s8(rng):
    return _prelu_layer(rng, True)


def prelu_f32(rng):
    return _prelu_layer(rng, False)


OPS.update({   # TFLite PRELU, ONNX PRelu (issue 16)
    "adaptc.qprelu": ("int8", prelu_s8),
    "adaptc.prelu_f32": ("float32", prelu_f32),
})


def _transpose_conv_layer(rng, integer: bool):
    """A transposed convolution (decoder / upsampling layer): stride 1 or 2, kernel 2..4, SAME-like
    top / left pads, now and then dilated or depthwise (adaptc.qtranspose_conv2d's attributes as
    LegalizeQDQ computes them; adaptc.transpose_conv2d_f32). IOHW filter."""
    from adaptc import fixedpoint as fxp

    while True:
        h, w = int(rng.integers(2, 9)), int(rng.integers(2, 9))
        in_c = int(rng.choice([1, 3, 4, 8, 16]))
        depthwise = rng.random() < 0.2
        out_c = in_c if depthwise else int(rng.choice([1, 2, 4, 8, 16]))
        k = int(rng.integers(2, 5))
        s = int(rng.choice([1, 2, 2]))
        d = 2 if rng.random() < 0.15 else 1
        pad = (k - 1) * d // 2 if rng.random() < 0.7 else 0
        out_h, out_w = (h - 1) * s + (k - 1) * d + 1 - 2 * pad, (w - 1) * s + (k - 1) * d + 1 - 2 * pad
        if out_h > 0 and out_w > 0 and out_h * out_w * out_c <= ELEMENTS // 2:
            break
    attrs = {"strides": [s, s], "padding": [pad, pad, pad, pad], "output_padding": [0, 0], "dilation": [d, d],
             "groups": in_c if depthwise else 1, "kernel_layout": "IOHW"}
    w_shape = (in_c, 1 if depthwise else out_c, k, k)
    shapes = [(1, h, w, in_c)], (1, out_h, out_w, out_c)
    if not integer:
        attrs.update(act_min=-np.inf, act_max=np.inf)
        consts = {"weights": rng.normal(0, 0.3, w_shape).astype(np.float32),
                  "bias": rng.normal(0, 0.3, out_c).astype(np.float32)}
        return "adaptc.transpose_conv2d_f32", attrs, consts, *shapes
    s_in, s_out = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.02, 0.2))
    mult, shift = fxp.quantize_multipliers([s_in * float(rng.uniform(0.002, 0.02)) / s_out for _ in range(out_c)])
    attrs.update(input_zp=int(rng.integers(-128, 128)), input_scale=s_in, output_zp=int(rng.integers(-128, 128)),
                 output_scale=s_out, act_min=-128, act_max=127, multiplier=[int(v) for v in mult],
                 shift=[int(v) for v in shift])
    consts = {"weights": rng.integers(-127, 128, w_shape, dtype=np.int8),
              "bias": rng.integers(-3000, 3000, out_c).astype(np.int32)}
    return "adaptc.qtranspose_conv2d", attrs, consts, *shapes


def transpose_conv_s8(rng):
    return _transpose_conv_layer(rng, True)


def transpose_conv_f32(rng):
    return _transpose_conv_layer(rng, False)


OPS.update({   # TFLite TRANSPOSE_CONV, ONNX ConvTranspose (issue 16)
    "adaptc.qtranspose_conv2d": ("int8", transpose_conv_s8),
    "adaptc.transpose_conv2d_f32": ("float32", transpose_conv_f32),
})


def _depthwise_packed_layer(rng, dsp: bool = False):
    """A depthwise convolution with packed low-bit weights (pot2 .. pot5, int4: what
    QuantizeWeights gives a depthwise layer, LegalizeQDQ's weight_format), HWOI filter, depth
    multiplier 1 or 2, strides 1 / 2, SAME-like or no padding, now and then dilated; half with
    power-of-two requantization (every multiplier 2^30), half with TFLite's multipliers. ``dsp``:
    what depthwise_conv2d_s8_packed_dsp takes (multiplier 1, formats of int8 range)."""
    from adaptc import fixedpoint as fxp
    from adaptc import formats

    while True:
        n, h, w, c = _spatial(rng)
        if c == 1:
            continue                                         # one channel: groups 1, a plain conv2d
        h, w = max(h, 3), max(w, 3)
        mult = 1 if dsp or rng.random() < 0.85 else 2
        k_h, k_w = [(3, 3), (3, 3), (3, 3), (5, 5), (3, 1), (1, 3)][rng.integers(6)]
        s = int(rng.choice([1, 1, 2]))
        d = 2 if rng.random() < 0.1 else 1
        pad_h, pad_w = ((k_h - 1) * d // 2, (k_w - 1) * d // 2) if rng.random() < 0.7 else (0, 0)
        out_h = (h + 2 * pad_h - (k_h - 1) * d - 1) // s + 1
        out_w = (w + 2 * pad_w - (k_w - 1) * d - 1) // s + 1
        if out_h > 0 and out_w > 0 and n * out_h * out_w * c * mult <= ELEMENTS:
            break
    out_c = c * mult
    fmt = formats.get(str(rng.choice(["pot2", "pot3", "pot4", "int4"] + ([] if dsp else ["pot5"]))))
    weights = rng.choice(fmt.grid, size=(k_h, k_w, out_c, 1)).astype(np.int16 if fmt.max_value > 127 else np.int8)
    if rng.random() < 0.5:                                   # power-of-two requantization: shifts that fit the sums
        spread = np.log2(np.abs(weights.astype(np.float64)).reshape(-1, out_c).sum(axis=0) * 128 + 1)
        multiplier = [1 << 30] * out_c
        shift = [int(v) for v in (7 - np.ceil(spread)).astype(np.int64) + rng.integers(-1, 2, size=out_c)]
    else:
        scale = float(np.abs(weights).std() + 1) * 74.0 * np.sqrt(k_h * k_w)
        multiplier, shift = fxp.quantize_multipliers([float(rng.uniform(0.5, 2.0)) * 40.0 / scale
                                                      for _ in range(out_c)])
    attrs = {"strides": [s, s], "padding": [pad_h, pad_w, pad_h, pad_w], "dilation": [d, d], "groups": c,
             "kernel_layout": "HWOI", "input_zp": int(rng.integers(-128, 128)),
             "output_zp": int(rng.integers(-128, 128)), "act_min": -128, "act_max": 127,
             "multiplier": [int(v) for v in multiplier], "shift": [int(v) for v in shift],
             "weight_format": fmt.name}
    consts = {"weights": weights}
    if rng.random() < 0.9:
        consts["bias"] = rng.integers(-3000, 3000, out_c).astype(np.int32)
    return "adaptc.qconv2d", attrs, consts, [(n, h, w, c)], (n, out_h, out_w, out_c)


def depthwise_conv2d_s8_packed(rng):
    return _depthwise_packed_layer(rng)


def transpose_conv_s8_packed(rng):
    """A transposed convolution with packed low-bit weights (pot2 .. pot5, int4; LegalizeQDQ's
    weight_format), half with power-of-two requantization (every multiplier 2^30)."""
    from adaptc import formats

    op, attrs, consts, in_shapes, out_shape = _transpose_conv_layer(rng, True)
    fmt = formats.get(str(rng.choice(["pot2", "pot3", "pot4", "pot5", "int4"])))
    w = rng.choice(fmt.grid, size=consts["weights"].shape).astype(np.int16 if fmt.max_value > 127 else np.int8)
    out_c = out_shape[-1]
    if rng.random() < 0.5:                                   # shifts that fit the sums
        per_out = np.abs(w.astype(np.float64)).transpose(1, 0, 2, 3).reshape(w.shape[1], -1).sum(axis=1)
        spread = np.log2(np.resize(per_out, out_c) * 128 + 1)
        attrs.update(multiplier=[1 << 30] * out_c,
                     shift=[int(v) for v in (7 - np.ceil(spread)).astype(np.int64) + rng.integers(-1, 2, out_c)])
    attrs["weight_format"] = fmt.name
    return op, attrs, {**consts, "weights": w}, in_shapes, out_shape


def depthwise_conv2d_s8_packed_dsp(rng):
    """A _depthwise_packed_layer the DSP drop-in takes (its requantization provably exact)."""
    from adaptc.program import Program, Step, Tensor
    from adaptc.targets.cortex_m.kernels import KERNELS

    while True:
        op, attrs, consts, in_shapes, out_shape = layer = _depthwise_packed_layer(rng, dsp=True)
        step = Step(0, op, "synthetic", [0], 1, attrs, consts, in_shapes=in_shapes, out_shape=out_shape)
        prog = Program("probe", [Tensor(0, "x", in_shapes[0], "int8", "input"),
                                 Tensor(1, "y", out_shape, "int8", "output")], [step], [0], [1])
        if KERNELS["depthwise_conv2d_s8_packed_dsp"].build(step, prog) is not None:
            return layer


def conv2d_s8_prefix_dsp(rng):
    """A width level's int8 convolution (adaptc.widths): the stored filter is the widest width's
    [k_h, k_w, in_c, out_c], this width reads a channel prefix of it; ``attrs["prefix_weights"]``
    lists every width's input channels (the Step field of that name)."""
    while True:
        k = [(1, 1), (3, 3), (3, 3), (5, 5), (3, 1)][rng.integers(5)]
        h = w = int(rng.choice([4, 6, 8, 8, 12, 16]))
        stride = 1 if rng.random() < 0.7 else 2
        full_in, full_out = int(rng.choice([1, 3, 8, 16, 24, 32, 48, 64])), int(rng.choice([8, 16, 32, 48, 64, 96]))
        fractions = sorted({1.0, *rng.choice([0.25, 0.5, 0.75], size=int(rng.integers(0, 4)), replace=False)})
        ins = tuple(sorted({max(1, round(f * full_in)) for f in fractions})) if full_in > 3 else (full_in,)
        f = float(rng.choice(fractions))
        in_c, out_c = max(1, round(f * full_in)) if full_in > 3 else full_in, max(1, round(f * full_out))
        pads = [(k[0] - 1) // 2, (k[1] - 1) // 2, k[0] // 2, k[1] // 2] if rng.random() < 0.8 else [0, 0, 0, 0]
        oh, ow = (h + pads[0] + pads[2] - k[0]) // stride + 1, (w + pads[1] + pads[3] - k[1]) // stride + 1
        if min(oh, ow) >= 1 and oh * ow * out_c * k[0] * k[1] * in_c <= 1_500_000 \
                and max(h * w * in_c, oh * ow * out_c) <= ELEMENTS \
                and k[0] * k[1] * full_in * full_out <= 24 << 10:
            break
    weights = np.clip(np.round(rng.normal(0, rng.uniform(8, 60), (k[0], k[1], full_in, full_out))), -127, 127)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    attrs = {"strides": [stride, stride], "padding": pads, "dilation": [1, 1], "groups": 1, "kernel_layout": "HWIO",
             "input_zp": in_zp, "output_zp": out_zp, "act_min": -128 if rng.random() < 0.6 else out_zp, "act_max": 127,
             "multiplier": [int(v) for v in rng.integers(1 << 30, (1 << 31) - 1, out_c)],
             "shift": [int(v) for v in -rng.integers(6, 14, out_c)], "prefix_weights": ins}
    consts = {"weights": weights.astype(np.int8),
              "bias": rng.integers(-20000, 20000, out_c).astype(np.int32)}
    return "adaptc.qconv2d", attrs, consts, [(1, h, w, in_c)], (1, oh, ow, out_c)


OPS.update({   # width levels: the kernel's own layers (its steps read a prefix of a wider filter)
    "conv2d_s8_prefix_dsp": ("int8", conv2d_s8_prefix_dsp),
})


# the packed kernels' own layers, keyed by kernel (fit_cost_tables.py --kernels: OPS[kernel] before OPS[op]);
# the DSP drop-in first: measure_code_sizes.py measures a kernel on the first specimens that pick it
OPS.update({
    "depthwise_conv2d_s8_packed_dsp": ("int8", depthwise_conv2d_s8_packed_dsp),
    "depthwise_conv2d_s8_packed": ("int8", depthwise_conv2d_s8_packed),
    "transpose_conv_s8_packed": ("int8", transpose_conv_s8_packed),
})


def lut_s8(rng):
    """An int8 element-wise function of a feature map as its 256-entry table (adaptc.qlut: TFLite
    LOGISTIC, TANH, HARD_SWISH, requantizing RELUs, ...); sizes of every remainder modulo 8."""
    n, h, w, c = _spatial(rng)
    return "adaptc.qlut", {}, {"table": rng.integers(-128, 128, 256).astype(np.int8)}, [(n, h, w, c)], (n, h, w, c)


OPS.update({   # table lookups (the reference lut_s8 is fitted on fit_cost_tables.py's own layers)
    "adaptc.qlut": ("int8", lut_s8),
})


def recurrent_f32(rng):
    """An ONNX LSTM or GRU (adaptc.recurrent): a few sequences, random sizes, either GRU form."""
    from adaptc import recurrent

    cell = str(rng.choice(recurrent.CELLS))
    batch, t, n_in, units = int(rng.integers(1, 3)), int(rng.integers(2, 13)), int(rng.integers(1, 17)), \
        int(rng.integers(4, 25))
    g = recurrent.GATES[cell]
    consts = recurrent.constants_of(cell, batch, units, n_in, rng.normal(0, 0.4, (g * units, n_in)),
                                    rng.normal(0, 0.4, (g * units, units)), rng.normal(0, 0.2, 2 * g * units))
    attrs = {"cell": recurrent.CELLS.index(cell), "batch": batch, "time_steps": t, "units": units,
             "linear_before_reset": int(rng.integers(0, 2))}
    return "adaptc.recurrent_f32", attrs, consts, [(batch, t, n_in)], (batch, t, units)


OPS.update({   # ONNX LSTM / GRU, float
    "adaptc.recurrent_f32": ("float32", recurrent_f32),
})


def l2norm_s8(rng):
    """TFLite int8 L2_NORMALIZATION over the last axis of a few rows."""
    depth = int(rng.integers(1, 513))
    rows = max(1, min(int(rng.integers(1, 17)), ELEMENTS // depth))
    return "adaptc.ql2norm", {"input_zp": int(rng.integers(-128, 128))}, {}, [(rows, depth)], (rows, depth)


OPS.update({   # L2_NORMALIZATION, int8
    "adaptc.ql2norm": ("int8", l2norm_s8),
})


def softmax_f32(rng):
    """SOFTMAX / LOG_SOFTMAX float over the last axis of a few rows."""
    rows, depth = int(rng.integers(1, 9)), int(rng.choice([2, 4, 10, 12, 35, 64, 100, 256]))
    attrs = {"beta": float(rng.choice([1.0, 1.0, 0.5])), "log": int(rng.integers(0, 2))}
    return "adaptc.softmax_f32", attrs, {}, [(rows, depth)], (rows, depth)


def log_softmax_s8(rng):
    """TFLite int8 LOG_SOFTMAX (adaptc.fixedpoint.log_softmax_params of a random input scale)."""
    from adaptc import fixedpoint

    rows, depth = int(rng.integers(1, 9)), int(rng.choice([2, 4, 10, 12, 35, 64, 100, 256]))
    scale = float(rng.uniform(0.01, 0.5))
    p = fixedpoint.log_softmax_params(scale)
    attrs = {"input_scale": scale, **{k: int(p[k]) for k in ("reverse_multiplier", "reverse_shift", "diff_min")}}
    return "adaptc.qlog_softmax", attrs, {"exp_table": p["exp_table"], "diff_q5": p["diff_q5"]}, [(rows, depth)], \
        (rows, depth)


OPS.update({   # SOFTMAX / LOG_SOFTMAX
    "adaptc.softmax_f32": ("float32", softmax_f32),
    "adaptc.qlog_softmax": ("int8", log_softmax_s8),
})


def batch_matmul_s8_packed(rng):
    """A batched matmul by a constant with packed low-bit weights (pot2 .. pot5, int4; zero
    point 0, LegalizeQDQ's weight_format): a constant rhs [B|1, K, N] or lhs [M, K] (swap), half
    with power-of-two requantization (the multiplier 2^30, a shift that fits the sums)."""
    from adaptc import fixedpoint as fxp
    from adaptc import formats

    b, m, k, n = (int(rng.integers(1, 5)), int(rng.integers(1, 17)), int(rng.integers(1, 33)),
                  int(rng.integers(1, 17)))
    fmt = formats.get(str(rng.choice(["pot2", "pot3", "pot4", "pot5", "int4"])))
    swap = bool(rng.random() < 0.3)
    c_shape = (m, k) if swap else (b if rng.random() < 0.7 else 1, k, n)
    c = rng.choice(fmt.grid, size=c_shape).astype(np.int16 if fmt.max_value > 127 else np.int8)
    spread = np.log2(float(np.sqrt(np.mean(c.astype(np.float64) ** 2) * k)) * 74 + 1)
    if rng.random() < 0.5:
        mult, shift = 1 << 30, int(7 - np.ceil(spread)) + int(rng.integers(-1, 2))
    else:
        mult, shift = fxp.quantize_multiplier(2.0 ** (8 - np.ceil(spread)) * float(rng.uniform(0.5, 1.5)))
    act_zp = int(rng.integers(-128, 128))
    attrs = {"lhs_zp": 0 if swap else act_zp, "rhs_zp": act_zp if swap else 0, "multiplier": [int(mult)],
             "shift": [int(shift)], "swap": swap, "output_zp": int(rng.integers(-128, 128)), "output_scale": 0.1,
             "act_min": -128, "act_max": 127, "weight_format": fmt.name}
    if swap:
        return "adaptc.qbatch_matmul", attrs, {"lhs": c}, [(b, k, n)], (b, m, n)
    return "adaptc.qbatch_matmul", attrs, {"rhs": c}, [(b, m, k)], (b, m, n)


OPS.update({   # the packed batched matmul's own layers, keyed by kernel (as the other packed kernels')
    "batch_matmul_s8_packed": ("int8", batch_matmul_s8_packed),
})


def _pool_s8(rng, op: str):
    """TFLite int8 AVERAGE_POOL_2D / MAX_POOL_2D (adaptc.qavg_pool2d / qmax_pool2d): 2x2 and 3x3
    windows, strides 1 and 2, VALID or SAME; global pools up to 32x32 (windows past 256 elements:
    the DSP kernels' blocks); now and then a window of whole rows less a column (runs of len, not
    one run) or of rows wider than 256; channels of every remainder mod 8; narrowed ranges."""
    while True:
        n = 1 if rng.random() < 0.9 else 2
        c = int(rng.choice([1, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 64, 96]))
        r = rng.random()
        if r < 0.3:                                     # global, half of them past 256 elements
            h, w = (int(v) for v in rng.choice([2, 4, 5, 7, 8, 10] if rng.random() < 0.5 else [17, 20, 24, 32], 2))
            if rng.random() < 0.25:                     # a spectrogram-like map (KWS: 25x5)
                h, w = int(rng.integers(10, 50)), int(rng.integers(1, 6))
            k, s = (h, w), (h, w)
        elif r < 0.4:                                   # tall windows of rows: runs of k_w
            h, w = int(rng.integers(8, 21)), int(rng.integers(4, 21))
            k, s = (h - int(rng.integers(0, 3)), w - 1), (1, int(rng.integers(1, 3)))
        elif r < 0.45:                                  # rows wider than 256
            h, w = int(rng.integers(1, 4)), int(rng.integers(270, 400))
            k, s = (h, int(rng.integers(257, w))), (1, int(rng.integers(5, 40)))
        else:
            h, w = (int(v) for v in rng.choice([4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48], 2))
            kk = int(rng.choice([2, 2, 3]))
            k, s = (min(kk, h), min(kk, w)), (int(rng.choice([1, 2, 2])),) * 2
        if n * h * w * c <= ELEMENTS:
            break
    pad = [0, 0, 0, 0]
    if r >= 0.45 and rng.random() < 0.4:                # SAME
        pads = []
        for size, kk_, st in ((h, k[0], s[0]), (w, k[1], s[1])):
            out = -(-size // st)
            total = max((out - 1) * st + kk_ - size, 0)
            pads.append((total // 2, total - total // 2))
        pad = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
    oh = (h + pad[0] + pad[2] - k[0]) // s[0] + 1
    ow = (w + pad[1] + pad[3] - k[1]) // s[1] + 1
    narrow = rng.random() < 0.3
    attrs = {"pool_size": list(k), "strides": list(s), "padding": pad, "channels": c,
             "act_min": int(rng.integers(-128, 0)) if narrow else -128, "act_max": int(rng.integers(20, 128)) if narrow
             else 127}
    return op, attrs, {}, [(n, h, w, c)], (n, oh, ow, c)


def avg_pool_s8(rng):
    return _pool_s8(rng, "adaptc.qavg_pool2d")


def max_pool_s8(rng):
    return _pool_s8(rng, "adaptc.qmax_pool2d")


OPS.update({   # AVERAGE_POOL_2D / MAX_POOL_2D, int8 (the DSP kernels' windows)
    "adaptc.qavg_pool2d": ("int8", avg_pool_s8),
    "adaptc.qmax_pool2d": ("int8", max_pool_s8),
})
