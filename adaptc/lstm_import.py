"""The TFLite importer's UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state): TVM 0.27 refuses
the quantized operator, so ``convert`` (installed by the loader into tvm_compat.from_tflite's
converter) emits one ``adaptc.qlstm`` composite call, its parameters from adaptc.lstm."""
from __future__ import annotations

import numpy as np
from tvm import relax

from .lstm import BIASES, CELL_STATE, HIDDEN_STATE, INPUT_WEIGHTS, RECURRENT_WEIGHTS, options, params
from .qops import CompositeCall, build_function


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



def convert(converter, op):
    """TVM TFLite converter method: the composite call of the operator."""
    x = converter.get_input_tensors(op)[0]
    call = tflite_call(converter, op)
    expr = converter.get_expr(x.tensor_idx)
    gv = converter.bb.add_func(build_function(call, [converter.bb.normalize(expr).ty]), "qlstm")
    return relax.Call(gv, [expr] + [relax.const(c) for c in call.consts])
