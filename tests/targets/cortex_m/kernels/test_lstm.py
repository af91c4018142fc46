"""UNIDIRECTIONAL_SEQUENCE_LSTM, int8 with an int16 cell state: lstm_s8 (TFLite Micro's integer
LSTM, lstm_eval.h), as one-step programs through the Cortex-M target -- on the host and on an
emulated core.

The step's parameters are what TFLM's prepare computes: they are read off a single-op LSTM built
the way the TFLite converter writes a Keras LSTM (``tflite_ops.lstm_model``) and imported by
adaptc (tests/models/test_lstm.py checks them against an independent computation). The
one-step program built from them (Program / Step / Tensor) must equal TFLite Micro on that model
bit for bit, and the composite's Relax module on llvm (``reference``)."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc
import adaptc.api as api
import tflite_ops as T
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

# (id, input shape [1, time, features], units, input q, hidden q, cell scale, cell clip, seed, weight std)
CASES = [
    ("kws_like", (1, 6, 5), 8, (0.02, 3), (0.008, -5), 2.0 ** -12, 10.0, 0, 0.4),
    ("no_clip_cell_2e-11", (1, 4, 3), 4, (0.05, 0), (1 / 128, 0), 2.0 ** -11, 0.0, 1, 0.4),
    ("clip_3_saturating", (1, 3, 4), 5, (0.03, -2), (0.01, 2), 2.0 ** -8, 3.0, 4, 1.5),
]


def _int8(case_id: str, shape) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Per case: the TFLite model, the model adaptc compiled from it (its Relax module: the
    reference) and the one-step program rebuilt from its qlstm step."""
    out = {}
    for case in CASES:
        cid, shape, units, in_q, h_q, cell_scale, clip, seed, std = case
        buf = T.lstm_model(shape, units, in_q, h_q, seed=seed, cell_scale=cell_scale, cell_clip=clip, weight_std=std)
        path = tmp_path_factory.mktemp("lstm") / f"{cid}.tflite"
        path.write_bytes(buf)
        model = adaptc.compile(path, target="cortex-m4")
        [s] = model.program.steps
        assert s.op == "adaptc.qlstm"
        out_shape = (1, shape[1], units)
        x = Tensor(0, "x", tuple(shape), "int8", "input")
        y = Tensor(1, "y", out_shape, "int8", "output")
        step = Step(0, "adaptc.qlstm", "test case", [0], 1, dict(s.attrs), dict(s.consts), in_shapes=[tuple(shape)],
                    out_shape=out_shape)
        out[cid] = buf, model, Program("lstm_case", [x, y], [step], [0], [1])
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_lstm_s8_host_equals_tflite_micro_and_the_composite(case, built):
    buf, model, prog = built[case[0]]
    m = api.compile_program(prog, "cortex-m4")
    [step] = m.scheduled.steps
    assert step.kernel == "lstm_s8" and step.scratch_bytes == 10 * case[2]
    outs = []
    for x in _int8(case[0], case[1]):
        got = m.run(x)
        np.testing.assert_array_equal(got, T.run_tflm(buf, x))
        np.testing.assert_array_equal(got, model.reference(x))
        outs.append(got)
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 8


def test_cost_features_by_hand(built):
    """lstm_s8's features: per time step and gate row an input dot product, from the second step
    a recurrent one, per step and unit the cell and hidden updates."""
    step = built["kws_like"][2].steps[0]
    # 6 steps, 8 units (32 gate rows), 5 features: 192 rows, 960 input MACs, 5 * 32 * 8 recurrent
    assert KERNELS["lstm_s8"].features(step) == {"call": 1, "steps": 6, "rows": 192, "macs_in": 960,
                                                 "macs_rec": 1280, "elements": 48}
    step = built["clip_3_saturating"][2].steps[0]
    # 3 steps, 5 units (20 rows), 4 features: 60 rows, 240 input MACs, 2 * 20 * 5 recurrent
    assert KERNELS["lstm_s8"].features(step) == {"call": 1, "steps": 3, "rows": 60, "macs_in": 240,
                                                 "macs_rec": 200, "elements": 15}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_lstm_s8_emulated(built):
    """Cross-built for the Cortex-M4, run on the emulated core: TFLite Micro's outputs."""
    case = CASES[0]
    buf, _, prog = built[case[0]]
    xs = np.stack(_int8(case[0], case[1]))
    r = api.compile_program(prog, "cortex-m4").run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(1, *prog.tensors[1].shape[1:]), T.run_tflm(buf, x))


def test_lstm_has_one_record_and_no_variant():
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op == "adaptc.qlstm"}
    assert records == {"lstm_s8": ("adaptc.qlstm", "ref")}
