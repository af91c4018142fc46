"""ONNX LSTM and GRU (one layer, as torch exports ``nn.LSTM`` / ``nn.GRU``) as one
``adaptc.recurrent_f32`` composite per direction: TVM 0.27's ONNX frontend has no converter for
either. (The importer runs the reverse direction of a bidirectional or reverse layer on the
time-reversed sequence and reverses its outputs back: tvm_compat.)

The composite takes the sequences x [B, T, I] and returns the hidden state of every step
[B, T, H]. Its constants are the node's own, in ONNX's gate order: ``weights`` W [G * H, I],
``recurrent_weights`` R [G * H, H], ``bias`` [Wb; Rb] [2 * G * H], ``initial_state`` [h0] (GRU)
or [h0; c0] (LSTM), each [B, H]; G = 4 gates (i, o, f, c) for an LSTM, 3 (z, r, h) for a GRU.
Per sequence and step t (ONNX's definitions with the default activations):

    LSTM  i, o, f = sigmoid(W x + R h + Wb + Rb) of each gate, c~ = tanh(...)
          c = f * c + i * c~;  h = o * tanh(c)
    GRU   z, r = sigmoid(W x + R h + Wb + Rb) of each gate
          h~ = tanh(Wh x + Wbh + Rh (r * h) + Rbh)     linear_before_reset = 0
          h~ = tanh(Wh x + Wbh + r * (Rh h + Rbh))     linear_before_reset = 1 (torch)
          h = (1 - z) * h~ + z * h

``onnx_problems`` names what is not compiled (the attribute and its value): sequence_lens, clip,
other activations, LSTM's input_forget and peepholes, initial states computed at run time, Y_c
used. (A value some other node computes must fold to a constant: the importer refuses it
otherwise.) By post-training quantization an LSTM becomes TFLite Micro's int8 LSTM (``adaptc.qlstm``,
adaptc.lstm; batch 1); a GRU, which has no int8 form (TFLite has no GRU operator), stays a float
step between a dequantize and a quantize.
"""
from __future__ import annotations

import numpy as np

GATES = {"LSTM": 4, "GRU": 3}
CELLS = ("LSTM", "GRU")             # the composite's ``cell`` attribute: the index here


def onnx_problems(model, constants: dict) -> list[tuple[str, str, str]]:
    """(op, node, why) for each LSTM / GRU node adaptc does not compile."""
    import onnx

    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type not in CELLS:
            continue
        a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        name = node.name or node.output[0]
        ins = list(node.input) + [""] * (8 - len(node.input))
        why = []
        if a.get("clip") is not None:
            why.append(f"clip={a['clip']}")
        if a.get("activations") is not None:
            default = [b"Sigmoid", b"Tanh", b"Tanh"] if node.op_type == "LSTM" else [b"Sigmoid", b"Tanh"]
            if list(a["activations"]) != default:
                why.append(f"activations={[s.decode() for s in a['activations']]}; only the defaults")
        if a.get("input_forget", 0):
            why.append("input_forget=1 (coupled input and forget gates)")
        for index, what in ((1, "W"), (2, "R"), (3, "B"), (5, "initial_h"), (6, "initial_c"), (7, "P")):
            if ins[index] in inputs:         # (computed from shapes, as torch writes zero states, folds)
                why.append(f"{what} is a model input; only constant weights and initial states")
        if ins[7]:
            why.append("peephole weights P")
        if ins[4]:
            why.append("sequence_lens; every sequence runs its full length")
        if len(node.output) > 2 and node.output[2] and node.output[2] in used:
            why.append("the last cell state Y_c is used; only Y and Y_h")
        if why:
            problems.append((node.op_type, name, "; ".join(why)))
    return problems


def constants_of(cell: str, batch: int, units: int, inputs: int, w, r, b=None, h0=None, c0=None) -> dict:
    """The composite's constants from the node's (W [1, G*H, I], R [1, G*H, H], B [1, 2*G*H],
    initial_h / initial_c [1, B, H], or [B, 1, H] with layout=1: the same order; absent ones zero)."""
    g = GATES[cell]
    f32 = lambda v, n: np.zeros(n, np.float32) if v is None else np.asarray(v, np.float32).reshape(n)  # noqa: E731
    state = [f32(h0, batch * units)] + ([f32(c0, batch * units)] if cell == "LSTM" else [])
    return {"weights": np.asarray(w, np.float32).reshape(g * units, inputs),
            "recurrent_weights": np.asarray(r, np.float32).reshape(g * units, units),
            "bias": f32(b, 2 * g * units), "initial_state": np.concatenate(state)}


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def run_numpy(x: np.ndarray, consts: dict, cell: str, linear_before_reset: int = 0,
              with_cell: bool = False):
    """The layer in float64 (the definitions above) on one sequence of a batch of 1: x [T, I] ->
    h of every step [T, H]; with ``with_cell`` also the LSTM's cell state of every step [T, H]."""
    w, r = consts["weights"].astype(np.float64), consts["recurrent_weights"].astype(np.float64)
    units = r.shape[1]
    wb, rb = np.split(consts["bias"].astype(np.float64), 2)
    state = consts["initial_state"].astype(np.float64)
    h, c = state[:units], state[units:]
    hs, cs = [], []
    for xt in np.asarray(x, np.float64):
        if cell == "LSTM":
            i, o, f, cc = np.split(w @ xt + r @ h + wb + rb, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cc)
            h = _sigmoid(o) * np.tanh(c)
            cs.append(c)
        else:
            xz, xr, xh = np.split(w @ xt + wb, 3)
            rz, rr, rh = np.split(r, 3)
            bz, br, bh = np.split(rb, 3)
            z, rg = _sigmoid(xz + rz @ h + bz), _sigmoid(xr + rr @ h + br)
            hh = np.tanh(xh + (rg * (rh @ h + bh) if linear_before_reset else rh @ (rg * h) + bh))
            h = (1 - z) * hh + z * h
        hs.append(h)
    return (np.array(hs), np.array(cs)) if with_cell else np.array(hs)


def body(F, p, a):
    """The Relax body of ``adaptc.recurrent_f32``: p = (x [B, T, I], weights, recurrent_weights,
    bias, initial_state); the sequences and steps unrolled."""
    from tvm import relax

    op = relax.op
    x, w, r, b, state = p
    cell = CELLS[int(a["cell"])]
    batch, steps, units = int(a["batch"]), int(a["time_steps"]), int(a["units"])
    g = GATES[cell]

    def part(v, k, n=1):          # columns k * units .. (k + n) * units of a [1, G * H] row
        return F.emit(op.strided_slice(v, axes=[1], begin=[k * units], end=[(k + n) * units]))

    def row(v, i):                # [1, n] row i of a 2-D v
        return F.emit(op.strided_slice(v, axes=[0], begin=[i], end=[i + 1]))

    wb = F.emit(op.strided_slice(b, axes=[0], begin=[0], end=[g * units]))
    rb = F.emit(op.strided_slice(b, axes=[0], begin=[g * units], end=[2 * g * units]))
    rt = F.emit(op.permute_dims(r, [1, 0]))                                       # [H, G*H]
    states = F.emit(op.reshape(state, [-1, units]))                               # [B (x2 LSTM), H]
    sequences = []
    for s in range(batch):
        xs = F.emit(op.reshape(F.emit(op.strided_slice(x, axes=[0], begin=[s], end=[s + 1])), [steps, -1]))
        xw = F.emit(op.add(op.matmul(xs, op.permute_dims(w, [1, 0])), wb))       # [T, G*H]: every step at once
        h = row(states, s)
        c = row(states, batch + s) if cell == "LSTM" else None
        outs = []
        for t in range(steps):
            xt = row(xw, t)
            if cell == "LSTM":
                pre = F.emit(op.add(op.add(xt, op.matmul(h, rt)), rb))
                c = F.emit(op.add(op.multiply(op.sigmoid(part(pre, 2)), c),
                                  op.multiply(op.sigmoid(part(pre, 0)), op.tanh(part(pre, 3)))))
                h = F.emit(op.multiply(op.sigmoid(part(pre, 1)), op.tanh(c)))
            else:
                rh = F.emit(op.add(op.matmul(h, rt), rb))                            # [1, 3H]
                z = F.emit(op.sigmoid(op.add(part(xt, 0), part(rh, 0))))
                rg = F.emit(op.sigmoid(op.add(part(xt, 1), part(rh, 1))))
                if int(a["linear_before_reset"]):
                    hh = F.emit(op.tanh(op.add(part(xt, 2), op.multiply(rg, part(rh, 2)))))
                else:
                    rt_h = F.emit(op.strided_slice(rt, axes=[1], begin=[2 * units], end=[3 * units]))
                    rb_h = F.emit(op.strided_slice(rb, axes=[0], begin=[2 * units], end=[3 * units]))
                    hh = F.emit(op.tanh(op.add(op.add(part(xt, 2), op.matmul(op.multiply(rg, h), rt_h)), rb_h)))
                h = F.emit(op.add(op.multiply(op.subtract(relax.const(np.float32(1.0)), z), hh),
                                  op.multiply(z, h)))
            outs.append(h)
        sequences.append(F.emit(op.expand_dims(op.concat(outs, axis=0), 0)))
    return op.concat(sequences, axis=0)


# ONNX's gate order (i, o, f, c) -> TFLite's (input, forget, cell, output): the rows of each
ONNX_TO_TFLITE = (0, 2, 3, 1)


def quantized_lstm(consts: dict, attrs: dict, name: str, input_q: tuple[float, int], hidden_q: tuple[float, int],
                   sequences: np.ndarray):
    """The ``adaptc.qlstm`` (TFLite Micro's int8 LSTM with an int16 cell state, adaptc.lstm) of a
    float LSTM by post-training quantization: (constants, attributes). Weights int8 per tensor
    and gate, symmetric; the bias (Wb + Rb) int32 at input scale x weight scale; the cell state
    at the power-of-two scale that holds the largest cell value the ``sequences`` (calibration
    inputs [N, T, I]) reach, as TFLite's quantizer chooses it. InputError for what TFLite's
    LSTM cannot express (a batch, initial states)."""
    from . import lstm
    from .errors import InputError

    if int(attrs["batch"]) != 1:
        raise InputError(f"post-training quantization of {name}: int8 LSTM of batch {attrs['batch']}; only batch 1")
    if np.any(consts["initial_state"] != 0):
        raise InputError(f"post-training quantization of {name}: int8 LSTM with nonzero initial states; "
                         "TFLite Micro's starts from zero")
    units = int(attrs["units"])
    cells = max(float(np.abs(run_numpy(x, consts, "LSTM", with_cell=True)[1]).max()) for x in sequences)
    cell_scale = 2.0 ** (int(np.ceil(np.log2(max(cells, 2.0 ** -10)))) - 15)

    def per_gate(w):              # ONNX rows [4U, n] -> TFLite gates' int8 rows, scales
        gates = [w[k * units:(k + 1) * units].astype(np.float64) for k in ONNX_TO_TFLITE]
        scales = [np.float32(max(float(np.abs(g).max()), 1e-30) / 127.0) for g in gates]
        return [np.clip(np.round(g / s), -127, 127).astype(np.int8) for g, s in zip(gates, scales)], scales

    w_in, s_in = per_gate(consts["weights"])
    w_rec, s_rec = per_gate(consts["recurrent_weights"])
    wb, rb = np.split(consts["bias"].astype(np.float64), 2)
    total = wb + rb
    bias = [np.round(total[k * units:(k + 1) * units] / (np.float64(input_q[0]) * np.float64(s)))
            .astype(np.int32) for k, s in zip(ONNX_TO_TFLITE, s_in)]
    q_attrs = lstm.params(input_q[0], input_q[1], hidden_q[0], hidden_q[1], cell_scale, 0.0, s_in, s_rec)
    q_attrs.update(time_steps=int(attrs["time_steps"]), units=units)
    q_consts = {"input_weights": np.ascontiguousarray(np.concatenate(w_in, 0).T),
                "recurrent_weights": np.ascontiguousarray(np.concatenate(w_rec, 0).T), "bias": np.concatenate(bias)}
    return q_consts, q_attrs
