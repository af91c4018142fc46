"""Operators the importers emit as one composite call each, where no Relax operator of TVM 0.27
expresses them (or its frontend refuses them). The loader installs these converters into
tvm_compat.from_tflite / from_onnx; FuseFloatOps and LegalizeQDQ keep the calls as they are.

* TFLite UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state): one ``adaptc.qlstm``, its
  parameters from adaptc.lstm (``convert_unidirectional_sequence_lstm``);
* TFLite L2_NORMALIZATION: int8 one ``adaptc.ql2norm`` (``convert_l2_normalization``);
* ONNX LSTM and GRU: one ``adaptc.recurrent_f32`` per direction (``recurrent_converter``, adaptc.recurrent).
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from . import recurrent
from .lstm import BIASES, CELL_STATE, HIDDEN_STATE, INPUT_WEIGHTS, RECURRENT_WEIGHTS, options, params
from .qops import CompositeCall, build_function
from .tvm_compat import constant_value, is_constant, shape_of


def tflite_call(converter, op):
    """The ``adaptc.qlstm`` CompositeCall of a (checked) TFLite operator, read through TVM's TFLite
    converter (its tensor wrappers and constant values)."""
    ins = converter.get_input_tensors(op)
    x = ins[0]

    def q(t):
        qp = t.tensor.Quantization()
        return float(qp.Scale(0)), int(qp.ZeroPoint(0)) if qp.ZeroPointLength() else 0

    in_scale, in_zp = q(x)
    h_scale, h_zp = q(ins[HIDDEN_STATE])
    cell_scale, _ = q(ins[CELL_STATE])
    opts = options(op)
    w_in = [converter.get_tensor_value(ins[i]).astype(np.int8) for i in INPUT_WEIGHTS]
    w_rec = [converter.get_tensor_value(ins[i]).astype(np.int8) for i in RECURRENT_WEIGHTS]
    bias = [converter.get_tensor_value(ins[i]).astype(np.int32) for i in BIASES]
    attrs = params(in_scale, in_zp, h_scale, h_zp, cell_scale, opts.CellClip(),
                   [q(ins[i])[0] for i in INPUT_WEIGHTS], [q(ins[i])[0] for i in RECURRENT_WEIGHTS])
    _, steps, _ = (int(d) for d in x.tensor.ShapeAsNumpy())
    units = int(w_in[0].shape[0])
    attrs.update(time_steps=steps, units=units)
    consts = [np.ascontiguousarray(np.concatenate(w_in, 0).T), np.ascontiguousarray(np.concatenate(w_rec, 0).T),
              np.concatenate(bias)]
    return CompositeCall("adaptc.qlstm", [], consts, attrs, (1, steps, units), "int8",
                         "unidirectional_sequence_lstm", ["input_weights", "recurrent_weights", "bias"])


def convert_unidirectional_sequence_lstm(self, op):
    """TVM TFLite converter method: the ``adaptc.qlstm`` composite call of the operator."""
    x = self.get_input_tensors(op)[0]
    call = tflite_call(self, op)
    expr = self.get_expr(x.tensor_idx)
    gv = self.bb.add_func(build_function(call, [self.bb.normalize(expr).ty]), "qlstm")
    return relax.Call(gv, [expr] + [relax.const(c) for c in call.consts])


def convert_l2_normalization(self, op):
    """TFLite L2_NORMALIZATION. Float: x / max(sqrt(sum(x^2)), 1e-6) over the last axis, TFLite
    Micro's epsilon (0.27: x / sqrt(sum + 1e-12)); int8: one adaptc.ql2norm composite call (0.27:
    refused)."""
    (x,) = self.get_input_tensors(op)
    expr = self.get_expr(x.tensor_idx)
    shape = [int(d) for d in x.tensor.ShapeAsNumpy()]
    if x.qnn_params:
        zp = int(constant_value(x.qnn_params["zero_point"]))
        call = CompositeCall("adaptc.ql2norm", [], [], {"input_zp": zp}, tuple(shape), "int8",
                             "l2_normalization")
        gv = self.bb.add_func(build_function(call, [self.bb.normalize(expr).ty]), "ql2norm")
        return relax.Call(gv, [expr])
    norm = relax.op.sqrt(relax.op.sum(relax.op.multiply(expr, expr), axis=[len(shape) - 1], keepdims=True))
    return relax.op.divide(expr, relax.op.maximum(norm, relax.const(np.float32(1e-6))))


def recurrent_converter(cell: str):
    """ONNX LSTM / GRU (0.27 has neither): a function of the frontend module giving the converter
    class -- one ``adaptc.recurrent_f32`` composite call (adaptc.recurrent) per direction, the
    reverse direction on the time-reversed sequence (a gather) and its outputs reversed back."""

    def make(fe):
        class Recurrent(fe.OnnxOpConverter):
            @classmethod
            def _impl_v7(cls, bb, inputs, attr, params):
                x = inputs[0]
                names = ("W", "R", "B", "sequence_lens", "initial_h", "initial_c")
                for name, v in zip(names, list(inputs)[1:7]):
                    if v is not None and not is_constant(v):
                        raise ValueError(f"{cell}'s {name} is computed at run time; adaptc compiles constant "
                                         "weights and initial states only")
                const = [None if v is None else constant_value(v) for v in list(inputs)[1:7]]
                w, r, b, _, h0, c0 = const + [None] * (6 - len(const))
                layout = int(attr.get("layout", 0))
                direction = attr.get("direction", b"forward").decode()
                if layout == 0:                 # [T, B, I] -> [B, T, I]
                    x = bb.normalize(relax.op.permute_dims(x, [1, 0, 2]))
                batch, steps, n_in = shape_of(x.ty)
                units = int(attr["hidden_size"])
                attrs = {"cell": recurrent.CELLS.index(cell), "batch": batch, "time_steps": steps, "units": units,
                         "linear_before_reset": int(attr.get("linear_before_reset", 0))}
                backwards = relax.const(np.arange(steps - 1, -1, -1, dtype=np.int32))   # time reversed
                ys, hs_last = [], []
                reverses = [False, True] if direction == "bidirectional" else [direction == "reverse"]
                for d, reverse in enumerate(reverses):
                    def one(v, state=False):    # direction d's slice: [dirs, ...]; a state [B, dirs, H] (layout 1)
                        return None if v is None else (v[:, d:d + 1] if state and layout else v[d:d + 1])
                    consts = recurrent.constants_of(cell, batch, units, n_in, one(w), one(r), one(b), one(h0, True),
                                                    one(c0, True))
                    call = CompositeCall("adaptc.recurrent_f32", [], list(consts.values()), attrs,
                                         (batch, steps, units), "float32", cell.lower(), list(consts))
                    seq = bb.normalize(relax.op.take(x, backwards, axis=1)) if reverse else x
                    gv = bb.add_func(build_function(call, [seq.ty]), "recurrent_f32")
                    hs = bb.emit(relax.Call(gv, [seq] + [relax.const(c) for c in call.consts]))   # [B, T, H]
                    hs_last.append(bb.normalize(relax.op.strided_slice(hs, axes=[1], begin=[steps - 1],
                                                                       end=[steps])))           # [B, 1, H]
                    ys.append(bb.normalize(relax.op.take(hs, backwards, axis=1)) if reverse else hs)
                def stack(parts, axis):         # (one direction: no concat, which would be a copy)
                    return bb.normalize(parts[0] if len(parts) == 1 else relax.op.concat(parts, axis=axis))

                if layout == 0:                 # Y [T, dirs, B, H], Y_h [dirs, B, H]
                    y = stack([relax.op.expand_dims(relax.op.permute_dims(v, [1, 0, 2]), 1) for v in ys], 1)
                    y_h = stack([relax.op.permute_dims(v, [1, 0, 2]) for v in hs_last], 0)
                else:                           # Y [B, T, dirs, H], Y_h [B, dirs, H]
                    y = stack([relax.op.expand_dims(v, 2) for v in ys], 2)
                    y_h = stack(hs_last, 1)
                n_out = int(attr["tvm_custom"]["num_outputs"])
                # Y_c (LSTM's third output) is refused by the loader where it is used; unused, it is dropped
                return relax.Tuple([y, y_h, y_h][:n_out]) if n_out > 1 else y

            _impl_v14 = _impl_v7
        return Recurrent
    return make


TFLITE = {"convert_unidirectional_sequence_lstm": convert_unidirectional_sequence_lstm,
          "convert_l2_normalization": convert_l2_normalization}
ONNX = {"LSTM": recurrent_converter("LSTM"), "GRU": recurrent_converter("GRU")}
