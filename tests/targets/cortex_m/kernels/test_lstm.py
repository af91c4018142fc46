"""UNIDIRECTIONAL_SEQUENCE_LSTM, int8 with an int16 cell state: lstm_s8 (TFLite Micro's integer
LSTM, lstm_eval.h) and its DSP drop-in lstm_s8_dsp (the gate dot products by SMLAD; it takes
every step), as one-step programs through the Cortex-M target -- on the host and on an emulated
core.

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
    ("whole_words_8_in_12_units", (1, 5, 8), 12, (0.04, -128), (0.01, 127), 2.0 ** -11, 0.0, 7, 0.8),
]

VARIANTS = [pytest.param(("ref",), id="ref"), pytest.param(("dsp", "ref"), id="dsp")]


def scratch_bytes(variants: tuple, n_in: int, units: int) -> int:
    """lstm_s8: the int16 cell state and four gate values per unit; lstm_s8_dsp also the input and
    hidden columns, two words per four values."""
    columns = 8 * (-(-n_in // 4) + -(-units // 4)) if variants[0] == "dsp" else 0
    return columns + 10 * units


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


@pytest.mark.parametrize("variants", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_lstm_s8_host_equals_tflite_micro_and_the_composite(case, built, variants):
    buf, model, prog = built[case[0]]
    m = api.compile_program(prog, "cortex-m4", kernels=",".join(variants))
    [step] = m.scheduled.steps
    assert step.kernel == {"ref": "lstm_s8", "dsp": "lstm_s8_dsp"}[variants[0]]
    assert step.scratch_bytes == scratch_bytes(variants, case[1][2], case[2])
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


def test_dsp_cost_features_by_hand(built):
    """lstm_s8_dsp's: words of four weights instead of MACs, the columns' groups of four values."""
    step = built["kws_like"][2].steps[0]
    # 6 steps, 8 units, 5 features: input rows of 2 words, recurrent rows of 2 words;
    # columns 6 * 2 + 5 * 2 groups
    assert KERNELS["lstm_s8_dsp"].features(step) == {
        "call": 1, "steps": 6, "rows": 0, "rows_rec": 0, "rows_rq": 192, "rows_rec_rq": 160, "col_groups": 22,
        "groups_in": 384, "groups_rec": 320, "elements": 48}
    step = built["clip_3_saturating"][2].steps[0]
    # 3 steps, 5 units (20 rows), 4 features: 1 word an input row, 2 a recurrent one
    assert KERNELS["lstm_s8_dsp"].features(step) == {
        "call": 1, "steps": 3, "rows": 0, "rows_rec": 0, "rows_rq": 60, "rows_rec_rq": 40, "col_groups": 7,
        "groups_in": 60, "groups_rec": 80, "elements": 15}
    # the same with a shift that makes the cheaper requantization inexact: adaptc_mbqm's rows
    assert KERNELS["lstm_s8_dsp"].features(_with_wide_shift(step)) == {
        "call": 1, "steps": 3, "rows": 60, "rows_rec": 40, "rows_rq": 0, "rows_rec_rq": 0, "col_groups": 7,
        "groups_in": 60, "groups_rec": 80, "elements": 15}


def _with_wide_shift(step: Step) -> Step:
    """The step with the forget gate's recurrent shift raised to 16: its sums (up to 128 * 255
    * units) shifted left by 16 reach 2^30, where adaptc_rq is no longer exact (the outputs are
    then mostly saturated gates, but any int32 sum must still give TFLite's)."""
    attrs = dict(step.attrs)
    attrs["recurrent_shift"] = [16 if g == 1 else s for g, s in enumerate(attrs["recurrent_shift"])]
    return Step(step.index, step.op, step.source, step.inputs, step.output, attrs, step.consts,
                in_shapes=step.in_shapes, out_shape=step.out_shape)


def exact_rq(step: Step) -> bool:
    """lstm_s8_dsp requantizes the gate rows by dsp.h's adaptc_rq where that equals
    MultiplyByQuantizedMultiplier for every row's largest sum: |sum << max(shift, 0)| < 2^30."""
    a, u = step.attrs, int(step.attrs["units"])
    rows_in = step.consts["input_weights"].T.astype(np.int64)
    rows_rec = step.consts["recurrent_weights"].T.astype(np.int64)
    x_max, h_max = 128 + abs(int(a["input_zp"])), 128 + abs(int(a["hidden_zp"]))
    ok = True
    for g in range(4):
        r = slice(g * u, (g + 1) * u)
        in_sum = np.abs(rows_in[r]).sum(axis=1) * x_max + np.abs(np.asarray(step.consts["bias"], np.int64)[r])
        rec_sum = np.abs(rows_rec[r]).sum(axis=1) * h_max
        ok &= bool(np.all(in_sum << max(a["input_shift"][g], 0) < 2**30))
        ok &= bool(np.all(rec_sum << max(a["recurrent_shift"][g], 0) < 2**30))
    return ok


def test_dsp_exact_requantization_flag(built):
    """Every case's gate rows are exactly requantized by the cheaper form; the widened shift's are not."""
    for case in CASES:
        step = built[case[0]][2].steps[0]
        assert exact_rq(step)
        prog = built[case[0]][2]
        assert KERNELS["lstm_s8_dsp"].build(step, prog).params["exact_rq"] == 1
        wide = _with_wide_shift(step)
        assert not exact_rq(wide)
        assert KERNELS["lstm_s8_dsp"].build(wide, prog).params["exact_rq"] == 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_dsp_with_mbqm_rows_equals_the_reference(case, built):
    """With exact_rq 0 (a shift adaptc_rq cannot take) lstm_s8_dsp still gives lstm_s8's outputs."""
    prog = built[case[0]][2]
    wide = Program("lstm_wide", prog.tensors, [_with_wide_shift(prog.steps[0])], prog.inputs, prog.outputs)
    ms = {k: api.compile_program(wide, "cortex-m4", kernels=k) for k in ("ref", "dsp,ref")}
    assert ms["dsp,ref"].scheduled.steps[0].call.params["exact_rq"] == 0
    for x in _int8(case[0], case[1]):
        np.testing.assert_array_equal(ms["dsp,ref"].run(x), ms["ref"].run(x))


def test_dsp_weights_are_rows_of_words(built):
    """lstm_s8_dsp's weight arrays: lstm_s8's rows [4 units][in], each zero-padded to whole words
    of four int8, the first in the low byte."""
    prog = built["clip_3_saturating"][2]
    ref_arrays = dict(KERNELS["lstm_s8"].build(prog.steps[0], prog).arrays)
    dsp_arrays = dict(KERNELS["lstm_s8_dsp"].build(prog.steps[0], prog).arrays)
    for role, width in (("input_weights", 4), ("recurrent_weights", 8)):
        rows = ref_arrays[role]
        padded = np.zeros((rows.shape[0], width), np.int8)
        padded[:, :rows.shape[1]] = rows
        assert dsp_arrays[role].dtype == np.int32
        np.testing.assert_array_equal(dsp_arrays[role].view(np.int8).reshape(padded.shape), padded)
    np.testing.assert_array_equal(dsp_arrays["bias"], ref_arrays["bias"])


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("variants", VARIANTS)
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3]], ids=lambda c: c[0])
def test_lstm_s8_emulated(built, case, variants):
    """Cross-built for the Cortex-M4, run on the emulated core: TFLite Micro's outputs."""
    buf, _, prog = built[case[0]]
    xs = np.stack(_int8(case[0], case[1]))
    m = api.compile_program(prog, "cortex-m4", kernels=",".join(variants))
    assert m.scheduled.steps[0].kernel == {"ref": "lstm_s8", "dsp": "lstm_s8_dsp"}[variants[0]]
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(1, *prog.tensors[1].shape[1:]), T.run_tflm(buf, x))


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_lstm_s8_dsp_fewer_instructions(tmp_path):
    """On the Cortex-M4 the DSP kernel runs a 10-step LSTM of 40 features and 32 units in under
    two thirds of the reference kernel's instructions (measured: 8.4 per MAC against 3.55)."""
    shape, units = (1, 10, 40), 32
    buf = T.lstm_model(shape, units, (0.02, 3), (0.008, -5), seed=3, cell_scale=2.0 ** -12, cell_clip=10.0,
                       weight_std=0.4)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(buf)
    x = _int8("m4", shape)[0]
    runs = {}
    for kernels, kernel in (("ref", "lstm_s8"), ("dsp,ref", "lstm_s8_dsp")):
        m = adaptc.compile(path, target="cortex-m4", kernels=kernels)
        assert [s.kernel for s in m.scheduled.steps] == [kernel]
        runs[kernels] = m.run_on_target(x)
        np.testing.assert_array_equal(runs[kernels].outputs.reshape(-1), T.run_tflm(buf, x).reshape(-1))
    insns = {k: sum(s["instructions"] for s in r.steps) for k, r in runs.items()}
    assert insns["dsp,ref"] < 2 / 3 * insns["ref"], insns


def test_lstm_records():
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op == "adaptc.qlstm"}
    assert records == {"lstm_s8": ("adaptc.qlstm", "ref"), "lstm_s8_dsp": ("adaptc.qlstm", "dsp")}
