"""UNIDIRECTIONAL_SEQUENCE_LSTM end to end: int8 activations, int16 cell state (TFLite Micro's
integer LSTM, lstm_eval.h), as one ``adaptc.qlstm`` composite.

Single-op LSTMs built in memory the way the TFLite converter writes a Keras LSTM
(``tflite_ops.lstm_model``: per-tensor int8 weights, int32 biases, variable int8 hidden and int16
cell states at power-of-two scales), and the zoo's keyword spotter (tests/data/zoo/lstm_kws.tflite):
the Relax module on llvm and the generated C, on the host and on the emulated Cortex-M4, equal
TFLite Micro bit for bit, each inference from reset states (a new interpreter). The parameters
are TFLM's prepare's (checked against an independent computation here); the forms adaptc does
not compile are refused by the loader, naming the operator and the attribute.
"""
from __future__ import annotations

import math
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from tvm import relax

import adaptc
import kernel_ref as ref
import tflite_ops as T
from adaptc import composite_import, tvm_compat
from adaptc.errors import UnsupportedOperatorError
from adaptc.loader import unsupported
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.qops import composite_name
from paths import DATA

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
ZOO_LSTM = DATA / "zoo" / "lstm_kws.tflite"

# (id, input shape, units, input q, hidden q, cell scale, cell clip, seed, weight std)
CASES = [
    ("kws_like", (1, 6, 5), 8, (0.02, 3), (0.008, -5), 2.0 ** -12, 10.0, 0, 0.4),
    ("no_clip_cell_2e-11", (1, 4, 3), 4, (0.05, 0), (1 / 128, 0), 2.0 ** -11, 0.0, 1, 0.4),
    ("cell_2e-16_shifted_tanh", (1, 5, 7), 6, (0.03, -2), (0.01, 2), 2.0 ** -16, 10.0, 3, 0.4),
    ("clip_3_cell_2e-8_saturating", (1, 3, 4), 5, (0.03, -2), (0.01, 2), 2.0 ** -8, 3.0, 4, 1.5),
    ("one_step", (1, 1, 6), 3, (0.04, 10), (0.02, -20), 2.0 ** -12, 10.0, 5, 0.6),
]


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _model(case) -> bytes:
    _, shape, units, in_q, h_q, cell_scale, clip, seed, std = case
    return T.lstm_model(shape, units, in_q, h_q, seed=seed, cell_scale=cell_scale, cell_clip=clip, weight_std=std)


def _int8(rng, shape, n=4) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


def _qlstm(mod):
    calls = [b.value for b in tvm_compat.bindings(mod["main"]) if isinstance(b.value, relax.Call)
             and composite_name(mod, b.value) == "adaptc.qlstm"]
    assert len(calls) == 1
    return tvm_compat.plain_attrs(mod[calls[0].op])


def _expected_params(in_q, h_q, cell_scale, clip, w_in_scales, w_rec_scales):
    """TFLM's PrepareGateParametersInteger, computed independently: FC multipliers from the
    float32 product of the scales over 2^-12, element-wise products at 2^-15 each."""
    def qm(real):
        return ref.quantize_multiplier(real)
    f32 = np.float32
    return {
        "input_multiplier": [qm(float(f32(in_q[0]) * f32(s)) * 4096.0)[0] for s in w_in_scales],
        "recurrent_multiplier": [qm(float(f32(h_q[0]) * f32(s)) * 4096.0)[0] for s in w_rec_scales],
        "forget_mul": list(qm(2.0 ** -15)),
        "input_mul": list(qm(2.0 ** -30 / float(f32(cell_scale)))),
        "output_mul": list(qm(2.0 ** -30 / float(f32(h_q[0])))),
        "cell_clip": int(min(clip / cell_scale, 32767)) if clip > 0 else 0,
        "cell_scale_power": round(math.log2(cell_scale)),
    }


def _weight_scales(buf: bytes) -> tuple[list[float], list[float]]:
    import tflite

    sub = tflite.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    ins = sub.Operators(0).InputsAsNumpy()
    scale = [float(sub.Tensors(int(ins[i])).Quantization().Scale(0)) for i in range(1, 9)]
    return scale[:4], scale[4:]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_int8_lstm_composite_bit_exact_with_tflm(case):
    """TVM's importer (adaptc's override) then LegalizeQDQ: one adaptc.qlstm with TFLM's
    parameters; on llvm, TFLM's output (every step's hidden state) bit for bit."""
    cid, shape, units, in_q, h_q, cell_scale, clip = case[:7]
    buf = _model(case)
    mod = tvm_compat.apply(LegalizeQDQ("m.tflite"), tvm_compat.from_tflite(buf, {
        "convert_unidirectional_sequence_lstm": composite_import.convert_unidirectional_sequence_lstm}))
    assert tvm_compat.well_formed(mod)
    a = _qlstm(mod)
    w_in, w_rec = _weight_scales(buf)
    for k, v in _expected_params(in_q, h_q, cell_scale, clip, w_in, w_rec).items():
        assert a[k] == v, k
    assert (a["input_zp"], a["hidden_zp"], a["time_steps"], a["units"]) == (in_q[1], h_q[1], shape[1], units)
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    outs = []
    for x in _int8(rng, shape):
        got = tvm_compat.run_vm(vm, x)[0]
        np.testing.assert_array_equal(got, T.run_tflm(buf, x))
        outs.append(got)
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 8


def test_zoo_lstm_composite_bit_exact_with_tflm():
    """The zoo's keyword spotter (49 steps, 10 features, 64 units, hidden zero point -1, cell
    clip 10 at 2^-12): the whole model's Relax module equals TFLM (reset before each inference)
    on its 32 stored inputs and 8 random ones."""
    from tflite_micro import runtime

    buf = ZOO_LSTM.read_bytes()
    m = adaptc.load(ZOO_LSTM)
    mod = tvm_compat.apply(LegalizeQDQ(str(ZOO_LSTM)), m.mod)
    a = _qlstm(mod)
    assert (a["time_steps"], a["units"], a["hidden_zp"], a["cell_clip"]) == (49, 64, -1, 32767)
    vm = tvm_compat.build_llvm(mod)
    interp = runtime.Interpreter.from_bytes(buf)
    stored = np.load(DATA / "zoo" / "lstm_kws.npz")["x_q"]
    xs = np.concatenate([stored, np.random.default_rng(16).integers(-128, 128, (8, 49, 10), dtype=np.int8)])
    for x in xs:
        interp.reset()
        interp.set_input(x[None], 0)
        interp.invoke()
        np.testing.assert_array_equal(tvm_compat.run_vm(vm, x[None])[0], interp.get_output(0))


# (variant keyword arguments, what the refusal must name)
REFUSED = [
    ({"time_major": True, "shape": (3, 1, 4)}, "time_major=True"),
    ({"shape": (2, 3, 4)}, "only batch 1"),
    ({"variant": "peephole"}, "peephole"),
    ({"variant": "projection"}, "projection"),
    ({"variant": "layer_norm"}, "layer normalization"),
    ({"variant": "cifg"}, "no input gate"),
    ({"activation": "RELU"}, "fused_activation_function=1"),
    ({"dtype": np.float32}, "only int8 activations"),
]


@pytest.mark.parametrize("kw,detail", REFUSED, ids=lambda v: v if isinstance(v, str) else None)
def test_unsupported_lstm_forms_are_refused(kw, detail, tmp_path):
    kw = dict(kw)
    shape = kw.pop("shape", (1, 3, 4))
    buf = T.lstm_model(shape, 4, (0.02, 0), (0.01, 0), **kw)
    path = _save(tmp_path, "lstm.tflite", buf)
    [(op, _node, found)] = unsupported(path)
    assert op == "UNIDIRECTIONAL_SEQUENCE_LSTM" and detail in found
    with pytest.raises(UnsupportedOperatorError, match="UNIDIRECTIONAL_SEQUENCE_LSTM"):
        adaptc.load(path)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_int8_lstm_c_bit_exact_with_tflm(case, tmp_path):
    """The generated C (lstm_s8: flash weights as rows [4][units][in], the int16 cell state and
    gate values as arena scratch) on the host: TFLM's output bit for bit."""
    buf = _model(case)
    m = adaptc.compile(_save(tmp_path, f"{case[0]}.tflite", buf), target="cortex-m4", kernels="ref")
    [step] = m.program.steps
    assert (step.op, m.scheduled.steps[0].kernel) == ("adaptc.qlstm", "lstm_s8")   # (lstm_s8_dsp: test_lstm.py
    # of the kernels, against TFLite Micro too)
    assert m.scheduled.steps[0].scratch_bytes == 10 * case[2]
    rng = np.random.default_rng(zlib.crc32(case[0].encode()) + 1)
    for x in _int8(rng, case[1]):
        np.testing.assert_array_equal(m.run(x), T.run_tflm(buf, x))


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_int8_lstm_on_emulated_cortex_m4_bit_exact_with_tflm(tmp_path):
    """Cross-built for the Cortex-M4 and run on the emulated core: TFLM's outputs."""
    case = CASES[0]
    buf = _model(case)
    m = adaptc.compile(_save(tmp_path, "m4.tflite", buf), target="cortex-m4")
    rng = np.random.default_rng(7)
    xs = np.stack(_int8(rng, case[1], n=2))
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(m.output.shape), T.run_tflm(buf, x))
