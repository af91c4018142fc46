"""ONNX LSTM and GRU (adaptc.recurrent) end to end, in the forms torch.onnx.export writes
``nn.LSTM`` / ``nn.GRU`` (batch_first: Transpose -> LSTM -> Squeeze -> Transpose; the last hidden
state Y_h as a second output; GRU with linear_before_reset=1): the float C within 1e-4 of
onnxruntime (layout=1, which onnxruntime refuses: onnx's reference implementation); by
post-training quantization an LSTM TFLite Micro's int8 LSTM, a GRU a float island in the int8
model, bit-exact with their Relax module and close to onnxruntime; the forms adaptc does not
compile refused by name."""
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import adaptc.api as api
from adaptc.errors import InputError, UnsupportedOperatorError

T, I, H, CLASSES = 7, 5, 9, 4
EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def _model(path, cell, *, layout=0, batch=1, lbr=1, initial=False, head="Y", direction="forward", y_c=False):
    """x [batch, T, I] -> cell -> (Y: every step's h through a dense layer | Y_h: the last h);
    bidirectional: both directions' h side by side, as torch exports them (Transpose, Reshape)."""
    rng = np.random.default_rng(len(str(path)))
    g, dirs = (4 if cell == "LSTM" else 3), (2 if direction == "bidirectional" else 1)
    inits = {"W": rng.normal(0, .4, (dirs, g * H, I)), "R": rng.normal(0, .4, (dirs, g * H, H)),
             "B": rng.normal(0, .2, (dirs, 2 * g * H)), "fc": rng.normal(0, .4, (dirs * H, CLASSES)),
             "ax1": np.array([1], np.int64), "ax0": np.array([0], np.int64)}
    ins = ["xt" if layout == 0 else "x", "W", "R", "B"]
    if initial:                          # [directions, batch, H]; layout=1: [batch, directions, H]
        state = (batch, dirs, H) if layout else (dirs, batch, H)
        inits["h0"] = rng.normal(0, .5, state)
        ins += ["", "h0"]
        if cell == "LSTM":
            inits["c0"] = rng.normal(0, .5, state)
            ins.append("c0")
    attrs = {"hidden_size": H, "direction": direction, **({"layout": 1} if layout else {})}
    if cell == "GRU":
        attrs["linear_before_reset"] = lbr
    outs = ["Y", "Yh"] + (["Yc"] if y_c else [])
    nodes = ([helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2])] if layout == 0 else []) + \
        [helper.make_node(cell, ins, outs, **attrs)]
    if dirs == 2:                        # [.., dirs, .., H] -> [B, (T,) dirs * H]
        inits["flat"] = np.array([batch, T, dirs * H] if head == "Y" else [batch, dirs * H], np.int64)
        perm = ([2, 0, 1, 3] if head == "Y" else [1, 0, 2]) if layout == 0 else None
        src = "Y" if head == "Y" else "Yh"
        if perm:
            nodes.append(helper.make_node("Transpose", [src], ["yt"], perm=perm))
            src = "yt"
        nodes.append(helper.make_node("Reshape", [src, "flat"], ["yb"]))
        y_shape = [batch, T, CLASSES] if head == "Y" else [batch, CLASSES]
    elif head == "Y" and layout == 0:    # Y [T, 1, B, H] -> [B, T, H]
        nodes += [helper.make_node("Squeeze", ["Y", "ax1"], ["ys"]),
                  helper.make_node("Transpose", ["ys"], ["yb"], perm=[1, 0, 2])]
        y_shape = [batch, T, CLASSES]
    elif head == "Y":                    # Y [B, T, 1, H]
        inits["ax2"] = np.array([2], np.int64)
        nodes += [helper.make_node("Squeeze", ["Y", "ax2"], ["yb"])]
        y_shape = [batch, T, CLASSES]
    else:                                # Y_h [1, B, H] -> [B, H]
        nodes += [helper.make_node("Squeeze", ["Yh" if not y_c else "Yc", "ax0"], ["yb"])]
        y_shape = [batch, CLASSES]
    nodes.append(helper.make_node("MatMul", ["yb", "fc"], ["y"]))
    graph = helper.make_graph(nodes, "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, T, I])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(v, np.int64 if v.dtype.kind == "i" else np.float32),
                                                       k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


FORMS = [
    dict(cell="LSTM"), dict(cell="LSTM", head="Y_h"), dict(cell="LSTM", layout=1), dict(cell="LSTM", batch=2),
    dict(cell="LSTM", initial=True, batch=2), dict(cell="GRU"), dict(cell="GRU", lbr=0), dict(cell="GRU", head="Y_h"),
    dict(cell="GRU", layout=1, batch=3, initial=True), dict(cell="LSTM", direction="reverse"),
    dict(cell="GRU", direction="reverse", lbr=0), dict(cell="LSTM", direction="bidirectional", initial=True, batch=2),
    dict(cell="GRU", direction="bidirectional", head="Y_h"),
    dict(cell="LSTM", direction="bidirectional", layout=1, batch=2, initial=True),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: "-".join(f"{k}{v}" for k, v in f.items()))
def test_float_matches_onnxruntime(form, tmp_path):
    path = _model(tmp_path / "rnn.onnx", **form)
    m = api.compile(path)
    assert "adaptc.recurrent_f32" in [s.op for s in m.program.steps]
    # (onnxruntime refuses layout=1, "batchwise recurrent operations": onnx's reference implementation)
    sess = ReferenceEvaluator(str(path)) if form.get("layout") else ort.InferenceSession(str(path))
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = rng.normal(0, 1.5, (form.get("batch", 1), T, I)).astype(np.float32)
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell,head,direction", [("LSTM", "Y", "forward"), ("LSTM", "Y_h", "forward"),
                                                 ("GRU", "Y", "forward"), ("LSTM", "Y", "bidirectional")])
def test_post_training_int8(cell, head, direction, tmp_path):
    """By post-training quantization an LSTM becomes TFLite Micro's int8 LSTM (adaptc.qlstm, the
    int16 cell state at the calibrated power-of-two scale); a GRU, which has no int8 form, runs in
    float between a dequantize and a quantize. The C equals its Relax module bit for bit, and
    the dequantized output is within 25 dB SNR of onnxruntime (inputs drawn like the calibration)."""
    path = _model(tmp_path / "rnn.onnx", cell, head=head, direction=direction)
    rng = np.random.default_rng(4)
    q = api.compile(path, calibration=rng.normal(0, 1, (64, 1, T, I)).astype(np.float32))
    ops = [s.op for s in q.program.steps]
    if cell == "LSTM":                   # one per direction
        assert ops.count("adaptc.qlstm") == (2 if direction == "bidirectional" else 1), ops
    else:
        assert ops[:3] == ["adaptc.dequantize", "adaptc.recurrent_f32", "adaptc.quantize"], ops
    sess = ort.InferenceSession(str(path))
    scale, zp = q.output_quantization
    signal = noise = 0.0
    for _ in range(16):
        x = rng.normal(0, 1, (1, T, I)).astype(np.float32)
        xq = q.quantize_input(x)
        y = q.run(xq)
        np.testing.assert_array_equal(y, q.reference(xq))
        want = sess.run(None, {"x": x})[0].astype(np.float64)
        signal += (want ** 2).sum()
        noise += (((y.astype(np.float64) - zp) * scale - want) ** 2).sum()
    assert 10 * np.log10(signal / noise) >= 25.0


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_gru_int8_float_island_emulated(tmp_path):
    """The int8 model with its float GRU on the emulated Cortex-M4: the host build's outputs."""
    path = _model(tmp_path / "gru.onnx", "GRU")
    rng = np.random.default_rng(5)
    q = api.compile(path, calibration=rng.normal(0, 1, (32, 1, T, I)).astype(np.float32))
    xs = q.quantize_input(rng.normal(0, 1, (3, 1, T, I)).astype(np.float32))
    r = q.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(q.run(x).shape), q.run(x))


@pytest.mark.parametrize("form,match", [
    (dict(cell="LSTM", batch=2), "batch 2"),
    (dict(cell="LSTM", initial=True), "initial states")])
def test_int8_refusals(form, match, tmp_path):
    path = _model(tmp_path / "rnn.onnx", **form)
    x = np.zeros((4, form.get("batch", 1), T, I), np.float32)
    with pytest.raises(InputError, match=match):
        api.compile(path, calibration=x)


@pytest.mark.parametrize("form,match", [(dict(cell="LSTM", head="Y_h", y_c=True), "Y_c")])
def test_refused_forms_named(form, match, tmp_path):
    path = _model(tmp_path / "rnn.onnx", **form)
    with pytest.raises(UnsupportedOperatorError, match=match):
        api.compile(path)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_raw_torch_exports(cell):
    """nn.LSTM / nn.GRU exported by torch.onnx.export and not folded (scripts/export_torch_rnn.py):
    zero initial states computed by Expand(Constant, Concat(Shape(x), ..)), the last step taken
    by a Gather of a scalar index. Float within 1e-4 of onnxruntime; int8 C == Relax."""
    path = Path(__file__).resolve().parents[1] / "data" / "torch_rnn" / f"{cell}.onnx"
    rng = np.random.default_rng(6)
    xs = rng.normal(0, 1, (4, 1, 12, 10)).astype(np.float32)
    m = api.compile(path)
    sess = ort.InferenceSession(str(path))
    for x in xs:
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
    q = api.compile(path, calibration=rng.normal(0, 1, (16, 1, 12, 10)).astype(np.float32))
    for x in q.quantize_input(xs):
        np.testing.assert_array_equal(q.run(x), q.reference(x))
