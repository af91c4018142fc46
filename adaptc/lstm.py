"""TFLite UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations with an int16 cell state (TFLite Micro's
"int8x8_16" LSTM), as one ``adaptc.qlstm`` composite.

TVM 0.27's TFLite frontend refuses the quantized operator, so adaptc reads it here: ``params``
computes from the tensors' scales what TFLite Micro's ``UnidirectionalSequenceLstmPrepare``
computes (``PrepareGateParametersInteger``, ``CreateGateParams``, ``CreateInterGateMulParams``,
``CreateLstmCellStateInfo`` in tensorflow/lite/micro/kernels/lstm_eval_common.cc), and ``body``
builds the composite's Relax body from plain integer ops, the arithmetic of ``LstmStep``
(lstm_eval.h) unrolled over the time steps. Per step:

* gate pre-activation = sat16(FC(x_t) + FC(h)): each FC int8 x int8 -> int32 (+ bias for the
  input part) -> MultiplyByQuantizedMultiplier to the 2^-12 scale -> clamp to int16; the input
  part does not depend on h, so it is computed for every step at once;
* sigmoid (input, forget, output gates) and the cell gate's tanh: TFLite's int16
  ``reference_integer_ops::Logistic`` / ``Tanh``, an interpolated 256-entry table
  (``SIGMOID_TABLE_UINT16``), output scale 2^-15;
* cell = clip(sat16(Mul(f, cell) + Mul(i, g))): int16 ``MulElementwise`` each;
* hidden = out = clamp(zp + Mul(o, tanh(cell))) int8, tanh at the cell's scale 2^p.

The four gates are laid side by side (input, forget, cell, output) so that a step is one
recurrent matmul and one activation; per-channel constants select sigmoid or tanh.
``tflite_problem`` names what adaptc does not compile (time-major, batches, peephole, projection,
layer norm, CIFG, float, per-channel weights, a cell activation other than TANH -- the flatbuffer's
ActivationFunctionType has no sigmoid).
"""
from __future__ import annotations

import math

import numpy as np

from .fixedpoint import quantize_multiplier

# tensorflow/lite/kernels/internal/common.h: sigmoid(x / 32) * 2^16 for x in 0..255 (clamped)
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498,
    40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255,
    46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865,
    52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174,
    56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288,
    59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441,
    61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886,
    62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835,
    63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450,
    64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845,
    64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097,
    65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465,
    65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508,
    65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518,
    65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525,
    65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529,
    65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531,
    65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533,
    65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65535], np.uint16)

GATES = ("input", "forget", "cell", "output")      # their order side by side in the composite
# TFLite tensor indices (lstm_shared.h): input->gate weights, recurrent->gate weights, biases
INPUT_WEIGHTS = (1, 2, 3, 4)
RECURRENT_WEIGHTS = (5, 6, 7, 8)
BIASES = (12, 13, 14, 15)
PEEPHOLE, PROJECTION, LAYER_NORM = (9, 10, 11), (16, 17), (20, 21, 22, 23)
HIDDEN_STATE, CELL_STATE = 18, 19
ACT_TANH = 4                                        # TFLite ActivationFunctionType
GATE_SCALE = 2.0 ** -12                             # Q3.12 pre-activations
ACT_SCALE = 2.0 ** -15                              # Q0.15 activations

# Per-channel constants of the int16 activation (reference_integer_ops::Logistic / Tanh, int16):
# index bits k, saturated value, bias of the positive / negative branch, final right shift.
SIGMOID_CONSTANTS = (9, 0x7FFF << 10, 1 << 9, (1 << 25) + (1 << 9) - 1, 10)
TANH_CONSTANTS = (8, 0xFFFF << 8, -(1 << 23) + (1 << 7), (1 << 23) + (1 << 7) - 1, 8)


def _f32(v) -> float:
    return float(np.float32(v))


def tanh_input_scaling(cell_scale_power: int) -> tuple[int, int]:
    """(multiplier, right shift) of TFLM's integer tanh of the cell state at scale 2^power
    (``lstm_internal::Tanh`` then ``reference_integer_ops::Tanh``'s power-of-two case):
    input = (x * multiplier + round) >> shift."""
    left = 15 + cell_scale_power - 3
    if left < 0:
        return 3, -left
    return 3 << left, 0


def params(input_scale, input_zp, hidden_scale, hidden_zp, cell_scale, cell_clip,
           input_weight_scales, recurrent_weight_scales) -> dict:
    """The composite's attributes, as TFLite Micro's prepare computes them (module docstring).
    Weight scales: one per gate in GATES order."""
    def gate_multiplier(in_scale, w_scale):   # GetQuantizedConvolutionMultipler: float product
        return quantize_multiplier(float(np.float32(in_scale) * np.float32(w_scale)) / GATE_SCALE)

    def mul(s1, s2, s_out):                   # CreateInterGateMulParams
        return quantize_multiplier(s1 * s2 / _f32(s_out))

    in_q = [gate_multiplier(input_scale, s) for s in input_weight_scales]
    rec_q = [gate_multiplier(hidden_scale, s) for s in recurrent_weight_scales]
    cs = _f32(cell_scale)
    power = int(round(math.log(cs) * (1.0 / _f32(math.log(2.0)))))   # CheckedLog2
    clip = _f32(cell_clip)
    qclip = int(min(max(clip / cs, -32768.0), 32767.0)) if clip > 0 else 0
    tanh_mult, tanh_shift = tanh_input_scaling(power)
    fc, im, om = mul(ACT_SCALE, cs, cs), mul(ACT_SCALE, ACT_SCALE, cs), mul(ACT_SCALE, ACT_SCALE, hidden_scale)
    return {"input_zp": int(input_zp), "hidden_zp": int(hidden_zp),
            "input_multiplier": [m for m, _ in in_q], "input_shift": [s for _, s in in_q],
            "recurrent_multiplier": [m for m, _ in rec_q], "recurrent_shift": [s for _, s in rec_q],
            "forget_mul": list(fc), "input_mul": list(im), "output_mul": list(om),
            "cell_clip": qclip, "cell_scale_power": power, "tanh_multiplier": tanh_mult, "tanh_shift": tanh_shift}


# ------------------------------------------------------------------------------- TFLite


def _tensor(sub, idx):
    return None if idx < 0 else sub.Tensors(int(idx))


def _scales(t) -> np.ndarray:
    q = t.Quantization()
    return np.asarray(q.ScaleAsNumpy(), np.float32).reshape(-1) if q is not None and q.ScaleLength() else \
        np.zeros(0, np.float32)


def options(op):
    from tflite.UnidirectionalSequenceLSTMOptions import UnidirectionalSequenceLSTMOptions

    opts = UnidirectionalSequenceLSTMOptions()
    opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    return opts


def tflite_problem(sub, op) -> str | None:
    """Why adaptc does not compile this UNIDIRECTIONAL_SEQUENCE_LSTM (naming the attribute), or None."""
    import tflite

    ins = [int(i) for i in op.InputsAsNumpy()]
    ins += [-1] * (24 - len(ins))
    opts = options(op)
    x = sub.Tensors(ins[0])
    if x.Type() != tflite.TensorType.INT8:
        return "only int8 activations with an int16 cell state (full-integer quantization); float or int16 LSTMs " \
               "are not compiled"
    if opts.TimeMajor():
        return "time_major=True; only batch-major input [batch, time, features]"
    if x.ShapeLength() != 3 or int(x.ShapeAsNumpy()[0]) != 1:
        return f"input shape {list(x.ShapeAsNumpy())}; only batch 1 ([1, time, features])"
    for name, idx in (("peephole (cell_to_gate) weights", PEEPHOLE), ("projection", PROJECTION),
                      ("layer normalization", LAYER_NORM)):
        if any(ins[i] >= 0 for i in idx):
            return f"{name}; only the standard (Keras) LSTM"
    if ins[1] < 0 or ins[5] < 0 or ins[12] < 0:
        return "no input gate (coupled input-forget, CIFG); only the standard (Keras) LSTM"
    for i in INPUT_WEIGHTS + RECURRENT_WEIGHTS:
        w = sub.Tensors(ins[i])
        if w.Type() != tflite.TensorType.INT8 or _scales(w).size != 1:
            return "weights not int8 per-tensor"
    cell, hidden = _tensor(sub, ins[CELL_STATE]), _tensor(sub, ins[HIDDEN_STATE])
    if cell is None or cell.Type() != tflite.TensorType.INT16:
        return "cell state not int16"
    if hidden is None or hidden.Type() != tflite.TensorType.INT8:
        return "hidden state not int8"
    if int(opts.FusedActivationFunction()) != ACT_TANH:
        return f"fused_activation_function={int(opts.FusedActivationFunction())}; only TANH (4)"
    return None


# ------------------------------------------------------------------------------- Relax body


def _per_gate(values, units: int) -> np.ndarray:
    return np.repeat(np.asarray(values, np.int64), units)


def activation_constants(units: int) -> list[np.ndarray]:
    """Per channel of the four gates side by side (sigmoid, sigmoid, tanh, sigmoid): (k, saturated,
    positive bias, negative base, shift)."""
    rows = [SIGMOID_CONSTANTS, SIGMOID_CONSTANTS, TANH_CONSTANTS, SIGMOID_CONSTANTS]
    return [np.repeat(np.asarray([r[j] for r in rows], np.int64), units) for j in range(5)]


def body(F, p, a, n_in: int):
    """The composite body (module docstring): p = (x int8 [1, T, IN], input_weights int8
    [IN, 4U], recurrent_weights int8 [U, 4U], bias int32 [4U]); ``n_in`` = IN."""
    from tvm import relax

    op = relax.op
    x, w_in, w_rec, bias = p
    steps, units = int(a["time_steps"]), int(a["units"])
    table = F.const(SIGMOID_TABLE_UINT16.astype(np.int32))

    def clamp16(v):
        return F.emit(op.clip(v, -32768, 32767))

    def activation(v, consts, mult=3, shift=0):
        """TFLite int16 Logistic / Tanh on v (int32 holding int16), per-channel constants."""
        k, sat, pos, neg, out_shift = (F.const(c.astype(np.int32)) if isinstance(c, np.ndarray) else F.const(c)
                                       for c in consts)
        v = F.emit(op.multiply(v, F.const(mult)))
        if shift:
            v = F.emit(op.right_shift(op.add(v, F.const(1 << (shift - 1))), F.const(shift)))
        mag = F.emit(op.abs(v))
        uh = F.emit(op.right_shift(mag, k))
        idx = F.emit(op.minimum(uh, F.const(254)))
        ua = F.emit(op.take(table, idx, axis=0))
        ub = F.emit(op.take(table, op.add(idx, F.const(1)), axis=0))
        ut = F.emit(op.bitwise_and(mag, op.subtract(op.left_shift(F.const(1), k), F.const(1))))
        r = F.emit(op.add(op.left_shift(ua, k), op.multiply(ut, op.subtract(ub, ua))))
        r = F.where(F.emit(op.greater_equal(uh, F.const(255))), sat, r)
        r = F.where(F.emit(op.greater_equal(v, F.const(0))), F.emit(op.add(r, pos)), F.emit(op.subtract(neg, r)))
        return F.emit(op.right_shift(r, out_shift))

    def mul16(v1, v2, mult_shift, lo=-32768, hi=32767, offset=0):
        y = F.mbqm(F.emit(op.multiply(v1, v2)), np.int32(mult_shift[0]), np.int32(mult_shift[1]))
        if offset:
            y = F.emit(op.add(y, F.const(offset)))
        return F.emit(op.clip(y, lo, hi))

    # Input part of every gate, every step: [T, 4U] int16 values.
    xi = F.emit(op.reshape(x, [steps, n_in]))
    xi = F.cast(xi, "int32")
    if int(a["input_zp"]):
        xi = F.emit(op.subtract(xi, F.const(int(a["input_zp"]))))
    acc = F.emit(op.add(op.matmul(xi, F.cast(w_in, "int32"), out_dtype="int32"), bias))
    pre_in = clamp16(F.mbqm(acc, _per_gate(a["input_multiplier"], units), _per_gate(a["input_shift"], units)))
    w_rec32 = F.cast(w_rec, "int32")
    rec_mult, rec_shift = _per_gate(a["recurrent_multiplier"], units), _per_gate(a["recurrent_shift"], units)
    act = activation_constants(units)
    hidden_zp = int(a["hidden_zp"])
    cell = F.const(np.zeros((1, units), np.int32))
    h_offset = F.const(np.zeros((1, units), np.int32))        # h - hidden_zp; h starts at hidden_zp
    outs = []
    for t in range(steps):
        rec = F.emit(op.matmul(h_offset, w_rec32, out_dtype="int32"))
        pre = clamp16(F.mbqm(rec, rec_mult, rec_shift))
        row = F.emit(op.strided_slice(pre_in, axes=[0], begin=[t], end=[t + 1]))
        gates = activation(clamp16(F.emit(op.add(row, pre))), act)
        i, f, g, o = (F.emit(op.strided_slice(gates, axes=[1], begin=[j * units], end=[(j + 1) * units]))
                      for j in range(4))
        cell = clamp16(F.emit(op.add(mul16(f, cell, a["forget_mul"]), mul16(i, g, a["input_mul"]))))
        if int(a["cell_clip"]):
            cell = F.emit(op.clip(cell, -int(a["cell_clip"]), int(a["cell_clip"])))
        tanh_cell = activation(cell, TANH_CONSTANTS, int(a["tanh_multiplier"]), int(a["tanh_shift"]))
        h = mul16(tanh_cell, o, a["output_mul"], -128, 127, hidden_zp)
        outs.append(h)
        h_offset = F.emit(op.subtract(h, F.const(hidden_zp))) if hidden_zp else h
    y = F.emit(op.concat(outs, axis=0)) if len(outs) > 1 else outs[0]
    return op.astype(op.reshape(y, [1, steps, units]), "int8")
