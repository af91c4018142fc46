"""QuantizeInt8: post-training int8 quantization of a float composite module (TFLite scheme).

Requires: the output of FuseFloatOps (``main`` = float ``adaptc.*_f32`` composites and
reshapes) and a calibration array (first axis = samples, each sample the model input's shape
or that shape without its leading batch dimension of 1).

Ensures: ``main`` is rewritten into the QDQ form the TFLite importer produces -- int8 input,
``quantize(act?(op(dequantize(x), dequantize(W), dequantize(b))))`` per layer, pooling and
reshapes on int8 -- ready for LegalizeQDQ. Scheme: per-tensor asymmetric int8 activations from
the calibration min/max (range widened to include 0), per-output-channel symmetric int8 weights
(max |w| / 127), int32 bias at scale ``s_in * s_w[c]``, softmax output at 1/256 with zero point
-128, an element-wise function (adaptc.unary) TFLite's output parameters where TFLite fixes them
(LOGISTIC, TANH), pooling, padding and a max reduction keep their input's parameters, a mean or
sum (``adaptc.reduce_f32``) gets its own from calibration, like TFLite's MEAN and SUM, and so
does a concat (over all of its inputs'
values). main gains the attributes
``adaptc.input_scale``/``adaptc.input_zero_point`` (and the same for the output) so callers
can quantize inputs and dequantize outputs.

Activation ranges (``ranges``): ``"minmax"`` (the default, as above: TFLite's converter) or
``"mse"``, MSE-optimal clipping (as in Banner et al. 2019, "Post-training 4-bit quantization of
convolutional networks for rapid deployment", and the MSE observers of PyTorch / OpenVINO): each
tensor's values are histogrammed over its min/max range (HISTOGRAM_BINS bins, exact zeros apart)
and the range [a * min, b * max] (a, b on a grid in (0, 1]) is kept whose int8 parameters give
the least expected squared error -- s^2 / 12 per value inside the grid's span (uniform rounding
error), the squared distance to the span for a value outside it (clipping). Measured on the zoo's
int8 builds (benchmarks/ptq_snr.py --ranges mse, test_zoo's calibration): output SNR +1.9 dB
MobileNetV3, +1.1 ShuffleNetV2, +0.7 MnasNet, but -3.8 SqueezeNet -- clipping errors are
one-signed and add up coherently in the sums after a tensor (convolutions, pooling, means) where
rounding errors average out, so per-tensor MSE can over-clip; hence not the default.

Parameters: ``calibration`` -- representative inputs; ``path`` -- for error messages;
``ranges`` -- "minmax" or "mse".
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from adaptc import fixedpoint as fxp
from adaptc import interpolate, recurrent, tvm_compat, unary, validation
from adaptc.errors import InputError
from adaptc.qops import CompositeCall, build_function, composite_name

HISTOGRAM_BINS = 2048


def _qparams(lo: float, hi: float) -> tuple[np.float32, int]:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-12:
        return np.float32(1.0 / 255), -128
    scale = np.float32((hi - lo) / 255.0)
    zp = int(np.clip(np.round(-128 - lo / float(scale)), -128, 127))
    return scale, zp


def calibrate_ranges(mod, samples: np.ndarray, keep=()) -> tuple[dict[int, tuple[float, float]], dict]:
    """min/max of main's input (index 0) and of every binding's value (index i + 1 for binding
    i) over the calibration samples; and the values themselves, stacked over the samples, for the
    indices in ``keep``."""
    ranges, kept, _ = calibrate(mod, samples, keep)
    return ranges, kept


def calibrate(mod, samples: np.ndarray, keep=(), bins: int = 0):
    """calibrate_ranges, and with ``bins`` > 0 also a Histogram of each value over its min/max
    range (a second run over the samples): (ranges, kept values, histograms)."""
    mod = tvm_compat.to_non_dataflow(mod)
    func = mod["main"]
    bindings = tvm_compat.bindings(func)
    outs = relax.Tuple([b.var for b in bindings])
    taps = relax.Function(func.params, relax.SeqExpr(func.body.blocks, outs),
                          ret_ty=relax.TupleType([b.var.ty for b in bindings]), attrs=func.attrs)
    probe = tvm_compat.replace_function(mod, "main", taps)
    vm = tvm_compat.build_llvm(probe)
    lo = np.full(len(bindings) + 1, np.inf)
    hi = np.full(len(bindings) + 1, -np.inf)
    kept: dict = {i: [] for i in keep}
    for x in samples:
        values = [x] + tvm_compat.run_vm(vm, x)
        for i, v in enumerate(values):
            lo[i], hi[i] = min(lo[i], float(v.min())), max(hi[i], float(v.max()))
            if i in kept:
                kept[i].append(v)
    ranges = {i: (lo[i], hi[i]) for i in range(len(lo))}
    hists: dict = {}
    if bins:
        hists = {i: Histogram(lo[i], hi[i], bins) for i in ranges}
        for x in samples:
            for i, v in enumerate([x] + tvm_compat.run_vm(vm, x)):
                hists[i].add(v)
    return ranges, {i: np.concatenate(v) for i, v in kept.items()}, hists


class Histogram:
    """Counts of a tensor's values in ``bins`` equal bins over [min(lo, 0), max(hi, 0)]; exact
    zeros (ReLU's, padding's) counted apart, since every int8 grid represents them exactly."""

    def __init__(self, lo: float, hi: float, bins: int):
        self.edges = np.linspace(min(float(lo), 0.0), max(float(hi), 0.0), bins + 1)
        self.counts = np.zeros(bins)
        self.zeros = 0

    def add(self, v: np.ndarray) -> None:
        v = np.asarray(v, np.float64).ravel()
        nonzero = v[v != 0]
        self.zeros += v.size - nonzero.size
        self.counts += np.histogram(nonzero, self.edges)[0]

    def squared_error(self, params: list[tuple[float, int]]) -> np.ndarray:
        """Expected sum of squared quantization errors of the counted values under each
        (scale, zero point): a value inside the grid's span errs by s^2 / 12 (uniform rounding
        error), one outside by its distance to the span's end, squared (at its bin's centre)."""
        c = (self.edges[:-1] + self.edges[1:]) / 2
        s = np.array([p[0] for p in params], np.float64)[:, None]
        zp = np.array([p[1] for p in params], np.float64)[:, None]
        q_lo, q_hi = (-128 - zp) * s, (127 - zp) * s
        err = np.where(c > q_hi, (c - q_hi) ** 2, np.where(c < q_lo, (c - q_lo) ** 2, s ** 2 / 12))
        return err @ self.counts


def mse_range(hist: Histogram, activation, steps: int = 48) -> tuple[float, float]:
    """The clipping range [lo', hi'] (lo' = a * min, hi' = b * max, a and b on a grid of
    ``steps`` fractions in (0, 1]) whose parameters, ``activation(lo', hi')``, give the least
    expected squared error over the histogram -- min/max itself is a candidate (a = b = 1)."""
    lo, hi = float(hist.edges[0]), float(hist.edges[-1])
    if hi - lo < 1e-12 or not hist.counts.any():
        return lo, hi
    f = np.linspace(1.0, 1.0 / steps, steps)        # min/max first: it wins ties
    cands = [(a * lo, b * hi) for a in (f if lo < 0 else [1.0]) for b in (f if hi > 0 else [1.0])]
    err = hist.squared_error([activation(a, b) for a, b in cands])
    return cands[int(np.argmin(err))]


WEIGHTED = ("adaptc.conv2d_f32", "adaptc.dense_f32", "adaptc.transpose_conv2d_f32",   # layers with weights
            "adaptc.batch_matmul_f32")   # (a batched matmul when it has a constant operand)


class WeightScheme:
    """How the quantizer codes weighted layers (conv2d, dense) and scales activations. The base
    is QuantizeInt8's TFLite scheme: per-tensor asymmetric activations from min/max,
    per-output-channel symmetric int8 weights (max |w| / 127), rounded to nearest.

    A subclass may ask for each weighted layer's float input over the calibration samples
    (``needs_inputs``) and code the weights as it likes: ``weights`` returns the integer weights
    (same layout), their per-channel scales and the float bias to quantize (bias correction)."""

    needs_inputs = False
    ranges = "minmax"       # activation ranges: "minmax" or "mse" (mse_range over a histogram)

    def __init__(self, ranges: str = "minmax"):
        if ranges not in ("minmax", "mse"):
            raise InputError(f"activation ranges {ranges!r}: 'minmax' or 'mse'")
        self.ranges = ranges

    def activation(self, lo: float, hi: float):
        return _qparams(lo, hi)

    def weights(self, index: int, kind: str, w: np.ndarray, axis: int, attrs: dict, inputs, bias):
        other = tuple(i for i in range(w.ndim) if i != axis)
        w_scale = (np.abs(w).max(axis=other) / 127.0).astype(np.float32)
        w_scale = np.where(w_scale > 0, w_scale, np.float32(1e-8)).astype(np.float32)
        bshape = [1] * w.ndim
        bshape[axis] = -1
        return np.clip(np.round(w / w_scale.reshape(bshape)), -127, 127).astype(np.int8), w_scale, bias


class Quantizer:
    def __init__(self, mod, samples, scheme: WeightScheme | None = None):
        self.mod = mod
        self.func = mod["main"]
        self.scheme = scheme or WeightScheme()
        self.bindings = tvm_compat.bindings(self.func)
        self.index = {b.var: i + 1 for i, b in enumerate(self.bindings)}        # calibration indices
        self.index[self.func.params[0]] = 0
        kept = (*(WEIGHTED if self.scheme.needs_inputs else ()), "adaptc.recurrent_f32")
        keep = {self.index[b.value.args[0]] for b in self.bindings     # the input of every weighted layer
                if composite_name(mod, b.value) in kept}                # (an LSTM's: its cell state's range)
        mse = self.scheme.ranges == "mse"
        self.ranges, self.inputs, hists = calibrate(mod, samples, keep, HISTOGRAM_BINS if mse else 0)
        for i, hist in hists.items():
            self.ranges[i] = mse_range(hist, self.scheme.activation)
        self.layers = 0             # weighted layers seen
        self.q: dict = {}           # float var -> (int8 var, scale, zp)

    def run(self):
        func = self.func
        (param,) = func.params
        shape = tvm_compat.shape_of(param.ty)
        x_q = relax.Var(param.name, tvm_compat.tensor_type(shape, "int8"))
        s_in, zp_in = self.scheme.activation(*self.ranges[0])
        bb = relax.BlockBuilder()
        with bb.function("main", [x_q], attrs={"num_input": 1}):
            with bb.dataflow():
                self.q[param] = (x_q, s_in, zp_in)
                for i, b in enumerate(self.bindings, start=1):
                    self.visit(bb, b, self.ranges[i])
                outs = [self.q[r] for r in tvm_compat.results(func)]
                ret = bb.emit_output(relax.Tuple([y for y, _, _ in outs]) if len(outs) > 1 else outs[0][0])
            bb.emit_func_output(ret)
        mod = bb.get()
        _, s_out, zp_out = outs[-1]
        attrs = {"num_input": 1, "adaptc.input_scale": float(s_in), "adaptc.input_zero_point": zp_in,
                 "adaptc.output_scale": float(s_out), "adaptc.output_zero_point": zp_out}
        if len(outs) > 1:     # every output's parameters (a model with exits: one per head)
            attrs.update({"adaptc.output_scales": [float(s) for _, s, _ in outs],
                          "adaptc.output_zero_points": [int(z) for _, _, z in outs]})
        return tvm_compat.replace_function(mod, "main", mod["main"].with_attrs(attrs))

    def dq(self, bb, var):
        x, s, zp = self.q[var]
        return bb.emit(relax.op.dequantize(x, relax.const(np.float32(s)), relax.const(np.int32(zp)), axis=0))

    def quant(self, bb, expr, var, s, zp):
        out = bb.emit(relax.op.quantize(expr, relax.const(np.float32(s)), relax.const(np.int32(zp)),
                                        axis=0, out_dtype="int8"), name_hint=var.name)
        self.q[var] = (out, s, zp)

    def visit_transpose_conv(self, bb, b, x, consts, a, act, s_out, zp_out):
        """A transposed convolution: the scheme's weights per output channel (axis O of IOHW; axis I
        when depthwise), a weighted layer like conv2d and dense."""
        w = consts[0].astype(np.float64)
        axis = 0 if int(a["groups"]) > 1 else 1
        w_q, w_scale, bias = self.scheme.weights(self.layers, "adaptc.transpose_conv2d_f32", w, axis, a,
                                                 self.inputs.get(self.index[x]),
                                                 consts[1].astype(np.float64) if len(consts) > 1 else None)
        self.layers += 1
        _, s_in, _ = self.q[x]
        w_f = bb.emit(relax.op.dequantize(relax.const(w_q), relax.const(w_scale), relax.const(np.int32(0)), axis=axis))
        y = bb.emit(relax.op.nn.conv2d_transpose(
            self.dq(bb, x), w_f, strides=a["strides"], padding=a["padding"], output_padding=a["output_padding"],
            dilation=a["dilation"], groups=int(a["groups"]), data_layout="NHWC", kernel_layout="IOHW"))
        if bias is not None:
            b_scale = np.float64(s_in) * w_scale.astype(np.float64)
            b_q = relax.const(np.round(bias / b_scale).astype(np.int32))
            b_f = bb.emit(relax.op.dequantize(b_q, relax.const(b_scale.astype(np.float32)), relax.const(np.int32(0)),
                                              axis=0))
            y = bb.emit(relax.op.add(y, b_f))
        self.quant(bb, act(y), b.var, s_out, zp_out)

    def visit(self, bb, b, rng):
        value = b.value
        if isinstance(value, relax.Var):
            self.q[b.var] = self.q[value]
            return
        kind = composite_name(self.mod, value)
        if tvm_compat.op_name(value) == "relax.concat":   # its own parameters; LegalizeQDQ requantizes inputs
            parts = [self.dq(bb, f) for f in value.args[0].fields]
            y = bb.emit(relax.op.concat(parts, axis=int(value.attrs.axis)))
            self.quant(bb, y, b.var, *self.scheme.activation(*rng))
            return
        if kind is None:  # reshape-like on the int8 value
            x, s, zp = self.q[value.args[0]]
            out = bb.emit(relax.Call(value.op, [x] + list(value.args[1:]), value.attrs), name_hint=b.var.name)
            self.q[b.var] = (out, s, zp)
            return
        callee = self.mod[value.op]
        a = {k: (v.value if hasattr(v, "value") else v) for k, v in tvm_compat.attrs_dict(callee).items()}
        acts = [x for x in value.args if not tvm_compat.is_constant(x)]
        consts = [tvm_compat.constant_value(x) for x in value.args if tvm_compat.is_constant(x)]
        s_out, zp_out = self.scheme.activation(*rng)
        lo, hi = float(a.get("act_min", -np.inf)), float(a.get("act_max", np.inf))

        def act(y):
            if lo == 0.0 and hi == np.inf:
                return bb.emit(relax.op.nn.relu(y))
            if np.isfinite(lo) or np.isfinite(hi):
                return bb.emit(relax.op.clip(y, max(lo, -3.0e38), min(hi, 3.0e38)))
            return y

        if kind == "adaptc.transpose_conv2d_f32":
            self.visit_transpose_conv(bb, b, acts[0], consts, a, act, s_out, zp_out)
        elif kind in ("adaptc.conv2d_f32", "adaptc.dense_f32"):
            w = consts[0].astype(np.float64)
            axis = w.ndim - 1 if kind == "adaptc.dense_f32" or a.get("kernel_layout") == "HWIO" else 2
            inputs = self.inputs.get(self.index[acts[0]])
            bias = consts[1].astype(np.float64) if len(consts) > 1 else None
            w_q, w_scale, bias = self.scheme.weights(self.layers, kind, w, axis, a, inputs, bias)
            self.layers += 1
            _, s_in, _ = self.q[acts[0]]
            w_f = bb.emit(relax.op.dequantize(relax.const(w_q), relax.const(w_scale), relax.const(np.int32(0)),
                                              axis=axis))
            x_f = self.dq(bb, acts[0])
            if kind == "adaptc.conv2d_f32":
                y = bb.emit(relax.op.nn.conv2d(x_f, w_f, strides=a["strides"], padding=a["padding"],
                                               dilation=a["dilation"], groups=int(a["groups"]),
                                               data_layout="NHWC", kernel_layout=str(a["kernel_layout"])))
            else:
                y = bb.emit(relax.op.matmul(x_f, w_f))
            if bias is not None:
                b_scale = (np.float64(s_in) * w_scale.astype(np.float64))
                b_q = np.round(bias / b_scale).astype(np.int32)
                b_f = bb.emit(relax.op.dequantize(relax.const(b_q), relax.const(b_scale.astype(np.float32)),
                                                  relax.const(np.int32(0)), axis=0))
                y = bb.emit(relax.op.add(y, b_f))
            self.quant(bb, act(y), b.var, s_out, zp_out)
        elif kind in ("adaptc.add_f32", "adaptc.mul_f32"):
            op = relax.op.add if kind == "adaptc.add_f32" else relax.op.multiply
            if consts:                          # a constant operand: int8, per tensor, symmetric
                c = consts[0].astype(np.float64)
                c_scale = np.float32(max(float(np.abs(c).max()), 1e-30) / 127.0)
                c_q = np.clip(np.round(c / np.float64(c_scale)), -127, 127).astype(np.int8)
                other = bb.emit(relax.op.dequantize(relax.const(c_q), relax.const(c_scale), relax.const(np.int32(0))))
            else:
                other = self.dq(bb, acts[1])
            y = bb.emit(op(self.dq(bb, acts[0]), other))
            self.quant(bb, act(y), b.var, s_out, zp_out)
        elif kind == "adaptc.binary_f32":   # TFLite's int8 ADD / SUB / SQUARED_DIFFERENCE / MAXIMUM / MINIMUM
            function = str(a["function"])
            c = consts[0].astype(np.float64) if consts else None
            if function == "divide" and c is not None and np.all(c != 0):
                function, c = "multiply", 1.0 / c        # x / c = x * (1 / c): an int8 MUL by a constant
            if function.endswith("divide"):
                raise InputError(f"post-training quantization of {b.var.name}: int8 division (Div / DIV) is not "
                                 "supported, only a division by a nonzero constant (a multiplication by its "
                                 "reciprocal)")
            same = function in ("maximum", "minimum")   # TFLM compares raw int8: inputs at the output's parameters

            def operand(var):
                x = self.dq(bb, var)
                if same and (float(np.float32(self.q[var][1])), int(self.q[var][2])) != (float(np.float32(s_out)),
                                                                                         int(zp_out)):
                    x = bb.emit(relax.op.dequantize(bb.emit(relax.op.quantize(
                        x, relax.const(np.float32(s_out)), relax.const(np.int32(zp_out)), axis=0, out_dtype="int8")),
                        relax.const(np.float32(s_out)), relax.const(np.int32(zp_out)), axis=0))
                return x

            if c is None:
                other = operand(acts[1])
            else:                                  # a constant: the output's parameters, else int8 symmetric
                c_scale, c_zp = (np.float32(s_out), int(zp_out)) if same else \
                    (np.float32(max(float(np.abs(c).max()), 1e-30) / 127.0), 0)
                lo_q = -128 if same else -127
                c_q = np.clip(np.round(c / np.float64(c_scale)) + c_zp, lo_q, 127).astype(np.int8)
                other = bb.emit(relax.op.dequantize(relax.const(c_q), relax.const(c_scale),
                                                    relax.const(np.int32(c_zp))))
            x = operand(acts[0])
            if function == "squared_difference":
                d = bb.emit(relax.op.subtract(x, other))
                y = bb.emit(relax.op.multiply(d, d))
            elif function == "reverse_subtract":
                y = bb.emit(relax.op.subtract(other, x))
            else:
                y = bb.emit(getattr(relax.op, function)(x, other))
            self.quant(bb, act(y), b.var, s_out, zp_out)
        elif kind == "adaptc.softmax_f32":   # beta folds into the input scale, as in TFLite; TFLite's
            x, s, zp = self.q[acts[0]]       # output parameters (LOG_SOFTMAX: 16/256, 127)
            s_beta = np.float32(np.float64(s) * float(a.get("beta", 1.0)))
            x_f = bb.emit(relax.op.dequantize(x, relax.const(s_beta), relax.const(np.int32(zp)), axis=0))
            if int(a.get("log", 0)):
                y = bb.emit(relax.op.nn.log_softmax(x_f, axis=-1))
                self.quant(bb, y, b.var, np.float32(fxp.LOG_SOFTMAX_OUTPUT[0]), fxp.LOG_SOFTMAX_OUTPUT[1])
            else:
                y = bb.emit(relax.op.nn.softmax(x_f, axis=-1))
                self.quant(bb, y, b.var, np.float32(1 / 256), -128)
        elif kind == "adaptc.unary_f32":   # the output parameters TFLite requires, else calibrated
            f = unary.FUNCTIONS[str(a["function"])]
            s, zp = f.int8_output or (s_out, zp_out)
            y = bb.emit(unary.build(f.name, self.dq(bb, acts[0]), **a))
            self.quant(bb, y, b.var, np.float32(s), zp)
        elif kind == "adaptc.clamp_f32":
            self.quant(bb, act(self.dq(bb, acts[0])), b.var, s_out, zp_out)
        elif kind == "adaptc.recurrent_f32" and recurrent.CELLS[int(a["cell"])] != "LSTM":
            # a GRU has no int8 form (TFLite has none): it runs in float between a dequantize and a
            # quantize at its calibrated output range
            gv = bb.add_func(callee, "recurrent_f32")
            y = bb.emit(relax.Call(gv, [self.dq(bb, acts[0]), *(relax.const(c) for c in consts)]))
            self.quant(bb, y, b.var, s_out, zp_out)
        elif kind == "adaptc.recurrent_f32":   # an LSTM: TFLite Micro's int8 LSTM
            x, s, zp = self.q[acts[0]]
            names = ("weights", "recurrent_weights", "bias", "initial_state")
            q_consts, q_attrs = recurrent.quantized_lstm(dict(zip(names, consts)), a, b.var.name, (s, zp),
                                                         (s_out, zp_out), self.inputs[self.index[acts[0]]])
            call = CompositeCall("adaptc.qlstm", [], list(q_consts.values()), q_attrs, tvm_compat.shape_of(b.var.ty),
                                 "int8", "lstm", list(q_consts))
            gv = bb.add_func(build_function(call, [x.ty]), "qlstm")
            y = bb.emit(relax.Call(gv, [x, *(relax.const(c) for c in call.consts)]), name_hint=b.var.name)
            self.q[b.var] = (y, s_out, zp_out)
        elif kind == "adaptc.argmax_f32":   # TFLite ARG_MAX of the int8 values: int32 indices (scale 1)
            y = bb.emit(relax.op.argmax(self.q[acts[0]][0], axis=int(a["axis"]), keepdims=False))
            self.q[b.var] = (y, 1.0, 0)
        elif kind == "adaptc.prelu_f32":   # TFLite PRELU: alpha int8, per tensor, symmetric; output calibrated
            c = consts[0].astype(np.float64)
            c_scale = np.float32(max(float(np.abs(c).max()), 1e-30) / 127.0)
            c_q = np.clip(np.round(c / np.float64(c_scale)), -127, 127).astype(np.int8)
            alpha = bb.emit(relax.op.dequantize(relax.const(c_q), relax.const(c_scale), relax.const(np.int32(0))))
            x = self.dq(bb, acts[0])
            y = bb.emit(relax.op.add(bb.emit(relax.op.nn.relu(x)), bb.emit(relax.op.multiply(
                bb.emit(relax.op.minimum(x, relax.const(np.float32(0.0)))), alpha))))
            self.quant(bb, y, b.var, s_out, zp_out)
        elif kind == "adaptc.batch_matmul_f32":   # TFLite BATCH_MATMUL: one scale per operand
            ops = [self.dq(bb, x) for x in acts]
            if consts:                          # a constant operand: int8, per tensor, symmetric
                c = consts[0].astype(np.float64)
                if getattr(self.scheme, "tensor_scale", False):   # a weighted layer: the scheme's format,
                    x_in = self.inputs.get(self.index[acts[0]])   # one scale (axis None)
                    if x_in is not None:
                        x_in = x_in.reshape(-1, *tvm_compat.shape_of(acts[0].ty))
                    c_q, c_scale, _ = self.scheme.weights(self.layers, kind, c, None, a, x_in, None)
                    c_scale = np.float32(c_scale)
                else:
                    c_scale = np.float32(max(float(np.abs(c).max()), 1e-30) / 127.0)
                    c_q = np.clip(np.round(c / np.float64(c_scale)), -127, 127).astype(np.int8)
                self.layers += 1
                ops.append(bb.emit(relax.op.dequantize(relax.const(c_q), relax.const(c_scale),
                                                       relax.const(np.int32(0)))))
            lhs, rhs = ops[::-1] if bool(a.get("swap", False)) else ops
            self.quant(bb, act(bb.emit(relax.op.matmul(lhs, rhs))), b.var, s_out, zp_out)
        elif kind == "adaptc.reduce_f32":   # TFLite MEAN, SUM: their own output parameters;
            reduce = str(a["reduce"])       # REDUCE_MAX: its input's, as TFLite Micro requires
            y = bb.emit(getattr(relax.op, reduce)(self.dq(bb, acts[0]), axis=[int(v) for v in a["axes"]],
                                                  keepdims=bool(a["keep_dims"])))
            s, zp = self.q[acts[0]][1:] if reduce == "max" else (s_out, zp_out)
            self.quant(bb, act(y), b.var, s, zp)
        elif kind == "adaptc.resize_axis_f32":   # weights >= 0 (linear): its input's parameters, as TFLite's
            x, s, zp = self.q[acts[0]]           # bilinear; cubic may overshoot its input: calibrated
            if (consts[1] >= 0).all():
                s_out, zp_out = s, zp
            call = interpolate.qresize_axis(a, consts[0], consts[1], s, zp, s_out, zp_out,
                                            tvm_compat.shape_of(b.var.ty))
            gv = bb.add_func(build_function(call, [x.ty]), "qresize_axis")
            y = bb.emit(relax.Call(gv, [x, *(relax.const(c) for c in call.consts)]), name_hint=b.var.name)
            self.q[b.var] = (y, s_out, zp_out)
        elif kind in ("adaptc.avg_pool2d_f32", "adaptc.max_pool2d_f32", "adaptc.pad_f32"):
            x, s, zp = self.q[acts[0]]          # same parameters in and out, as TFLite requires
            if kind == "adaptc.pad_f32":
                if float(a["pad_value"]) != 0.0:
                    raise InputError(f"pad value {a['pad_value']} is not representable: only zero padding")
                y = bb.emit(relax.op.nn.pad(x, pad_width=[int(v) for v in a["pad_width"]], pad_value=float(zp)))
            elif kind == "adaptc.max_pool2d_f32":
                y = bb.emit(relax.op.nn.max_pool2d(x, pool_size=a["pool_size"], strides=a["strides"],
                                                   padding=a["padding"], layout="NHWC"))
            else:
                y = bb.emit(relax.op.astype(bb.emit(relax.op.nn.avg_pool2d(
                    bb.emit(relax.op.astype(x, "int32")), pool_size=a["pool_size"], strides=a["strides"],
                    padding=a["padding"], layout="NHWC", count_include_pad=False)), "int8"))
            if np.isfinite(lo) or np.isfinite(hi):
                q_lo = max(-128, zp + int(np.round(lo / s))) if np.isfinite(lo) else -128
                q_hi = min(127, zp + int(np.round(hi / s))) if np.isfinite(hi) else 127
                y = bb.emit(relax.op.clip(y, q_lo, q_hi))
            self.q[b.var] = (y, s, zp)
        else:
            raise InputError(f"post-training quantization has no rule for {kind}")


def QuantizeInt8(calibration: np.ndarray, path: str = "<module>", ranges: str = "minmax"):
    """Post-training int8 quantization from calibration data (see module docstring)."""
    scheme = WeightScheme(ranges)

    @tvm_compat.module_pass("adaptc.QuantizeInt8")
    def _pass(mod):
        return Quantizer(mod, calibration_samples(calibration, mod, path), scheme).run()

    return _pass


def calibration_samples(calibration, mod, path: str) -> np.ndarray:
    """The calibration array as (N, *input shape) float32 (``samples_of_shape``)."""
    (param,) = mod["main"].params
    return samples_of_shape(calibration, tvm_compat.shape_of(param.ty), path)


def samples_of_shape(calibration, shape, path: str) -> np.ndarray:
    """``calibration`` as (N, *shape) float32 (samples may omit a leading batch of 1):
    adaptc.validation's check of calibration data -- shape, dtype, every value finite -- the
    one every user of calibration data goes through; InputError naming what is wrong."""
    return validation.calibration_samples(calibration, shape, path)
