"""The bundled slimmable digits network (adaptc/data/slimmable_w*.onnx, examples/slimmable) as
one width-level build: every (width, exit) level bit-exact with that width compiled alone (host
and emulated Cortex-M4), its classes against onnxruntime on the width's own file, the narrowest
width's instructions and the build's flash against the widest alone, and the controller on a
stream whose difficulty rises and falls."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import adaptc
import adaptc.data
from adaptc.data import digits
from adaptc.demo import noisy_stream
from adaptc.widths import stream_cost

WIDTHS = ("025", "050", "075", "100")
PATHS = [adaptc.data.path(f"slimmable_w{w}.onnx") for w in WIDTHS]
EXITS = 3


@pytest.fixture(scope="module")
def split():
    return digits()


@pytest.fixture(scope="module")
def built(split):
    x_train, y_train, _, _ = split
    return adaptc.compile(PATHS, width_levels=True, target="cortex-m4", calibration=(x_train[:300], y_train[:300]))


def test_every_level_is_bit_exact_with_its_width_alone_and_agrees_with_onnxruntime(built, split):
    _, _, x_test, y_test = split
    xq = built.quantize_input(x_test)[:, None]             # [N, 1, 1, 8, 8]: each input [1, 1, 8, 8]
    assert [lv.width for lv in built.levels] == [f for f in (0.25, 0.5, 0.75, 1.0) for _ in range(EXITS)]
    for level, (_, cap) in enumerate(built.levels):
        width = level // EXITS
        alone = built.width_levels.models[width]
        if cap == 0:                                           # the width's float heads, per input
            session = ort.InferenceSession(str(PATHS[width]))
            heads = [session.run(None, {"image": x[None].astype(np.float32)}) for x in x_test]
        agree = []
        for k in range(len(x_test)):
            got = built.run(xq[k], level=level)
            want = alone.run(alone.quantize_input(x_test[k:k + 1]), level=cap)
            assert (got.exit, got.label, got.confidence) == (want.exit, want.label, want.confidence), (level, k)
            np.testing.assert_array_equal(got.logits, want.logits)
            agree.append(got.label == int(np.argmax(heads[k][got.exit])))
        assert np.mean(agree) >= 0.97, (level, np.mean(agree))


def test_levels_match_the_relax_reference(built, split):
    """The build against each width's Relax module on llvm (TVM), a sample of the test split."""
    xq = built.quantize_input(split[2][:12])[:, None]
    for level in range(len(built.levels)):
        for q in xq:
            got, ref = built.run(q, level=level), built.reference(q, level=level)
            assert (got.exit, got.label) == (ref.exit, ref.label)
            np.testing.assert_array_equal(got.logits, ref.logits)


def test_emulated_core_budgets(built, split):
    """On the emulated Cortex-M4, every level computes what the host build does; with no input
    leaving early, width 0.25 runs at most 0.15x the instructions of width 1.0; the build's
    flash (code and constants, measured on the firmware) is at most 1.1x the widest's alone."""
    xq = built.quantize_input(split[2][:4])[:, None]
    batch = built.run_batch_on_target(xq)
    for level in range(len(built.levels)):
        for k in range(len(xq)):
            host = built.run(xq[k], level=level)
            assert (batch.exit[level, k], batch.label[level, k], batch.confidence[level, k]) == \
                (host.exit, host.label, host.confidence), (level, k)
            np.testing.assert_array_equal(batch.logits[level, k].reshape(host.logits.shape), host.logits)
    sim = adaptc.simulate(built)
    deepest = [level for level, (_, e) in enumerate(built.levels) if e == EXITS - 1]
    ratio = sim.exits[deepest[0]].instructions / sim.exits[deepest[-1]].instructions
    assert ratio <= 0.15, ratio
    leaving = [level for level, (_, e) in enumerate(built.levels) if e == 0]     # every input leaves at exit 0
    measured = batch.instructions[leaving].mean(axis=1)
    assert measured[0] <= 0.15 * measured[-1], measured
    flash = built.memory_report()["model"]["flash_bytes"]
    alone = built.width_levels.models[-1].memory_report()["model"]["flash_bytes"]
    assert flash <= 1.1 * alone, (flash, alone)


def test_the_controller_spends_less_than_the_top_level_at_its_accuracy(built, split):
    """A stream of test digits whose noise rises to sigma 0.6 and falls back: the C controller,
    from level 0 (the default of a width-level build), against every input at the top level --
    simulated cycles per input (a raise to a wider width runs it again), and accuracy."""
    _, _, x_test, y_test = split
    xn, yn, _ = noisy_stream(x_test, y_test)
    qn = built.quantize_input(xn)[:, None]
    cost = [e.cycles for e in adaptc.simulate(built).exits]
    top_level = len(built.levels) - 1
    top = [built.run(q, level=top_level) for q in qn]
    top_cost = np.mean([cost[top_level - EXITS + 1 + r.exit] for r in top])
    stream = built.run_stream(qn)
    assert built.ladder[0] == 0 and built.ladder[-1] == top_level and built.ladder == sorted(built.ladder)
    assert stream.levels[0] == 0 and stream.raised.max() == top_level and stream.raised.min() < EXITS
    spent = np.mean([stream_cost(cost, EXITS, built.ladder, a, b, lambda level, q=q: built.run(q, level=level).exit)
                     for a, b, q in zip(stream.levels, stream.raised, qn)])
    accuracy, top_accuracy = np.mean(stream.labels == yn), np.mean(np.array([r.label for r in top]) == yn)
    assert accuracy >= top_accuracy, (accuracy, top_accuracy)
    assert spent < 0.95 * top_cost, (spent, top_cost)
