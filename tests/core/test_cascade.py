"""Network cascades: compile([small, big], cascade=True) -- the members as the exits of one model.

References: onnxruntime for the joined ONNX model (each output equals its member's), the Relax
module on llvm for the C at every level, the emulated Cortex-M4 for the cost against the big
model compiled alone. Thresholds are calibrated on the first half of MNIST-1D's test split
(neither member was trained on it) and measured on the second half.
"""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import adaptc
import adaptc.data as D
from adaptc.cascade import combine
from adaptc.errors import InputError
from emulated import accuracy_and_instructions

needs_arm = pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                               reason="needs the Debian packages gcc-arm-none-eabi and qemu-system-arm")
SMALL, BIG = D.path("mnist1d_small.onnx"), D.path("mnist1d_cnn.onnx")
X, Y, X_TEST, Y_TEST = D.mnist1d()
CAL = (X_TEST[:500], Y_TEST[:500])
HELD_X, HELD_Y = X_TEST[500:], Y_TEST[500:]


@pytest.fixture(scope="module")
def cascade():
    return adaptc.compile([SMALL, BIG], cascade=True, target="cortex-m4", calibration=CAL, budget_confidence=0.9)


def run(path, x) -> list[np.ndarray]:
    s = ort.InferenceSession(str(path))
    name = s.get_inputs()[0].name
    return [np.concatenate(o) for o in zip(*[s.run(None, {name: xi[None]}) for xi in x])]


def test_joined_model_computes_each_member(tmp_path):
    path = combine([SMALL, BIG], tmp_path)
    joined = run(path, X_TEST[:8])
    assert len(joined) == 2
    np.testing.assert_array_equal(joined[0], run(SMALL, X_TEST[:8])[0])
    np.testing.assert_array_equal(joined[1], run(BIG, X_TEST[:8])[0])
    names = [o.name for o in onnx.load(path).graph.output]
    assert names[0].startswith("member0_") and names[1].startswith("member1_")


def test_c_is_bit_exact_with_relax_at_every_level(cascade):
    xs = cascade.quantize_input(HELD_X[:30])
    seen = set()
    for level in range(len(cascade.levels)):
        for x in xs:
            r, ref = cascade.run(x[None], level=level), cascade.reference(x[None], level=level)
            assert (r.exit, r.label, r.confidence) == (ref.exit, ref.label, ref.confidence)
            np.testing.assert_array_equal(r.logits, ref.logits)
            seen.add(r.exit)
    assert seen == {0, 1}


@needs_arm
def test_cascade_costs_half_the_big_model_at_equal_accuracy(cascade):
    """On the emulated Cortex-M4 over the held-out half of the test split: accuracy within 1
    point of the big model alone, mean executed instructions at most half of its; the arena is
    shared (no larger than the bigger member's)."""
    big = adaptc.compile(BIG, target="cortex-m4", calibration=CAL[0])
    acc, instructions = accuracy_and_instructions(cascade, HELD_X, HELD_Y)
    acc_big, instructions_big = accuracy_and_instructions(big, HELD_X, HELD_Y)
    assert acc >= acc_big - 0.01, (acc, acc_big)
    ratio = instructions / instructions_big
    assert ratio <= 0.5, ratio
    assert cascade.report(memory=False)["arena_bytes"] <= big.report(memory=False)["arena_bytes"]
    print(f"cascade: accuracy {acc_big:.4f} -> {acc:.4f}, instructions {instructions_big:.0f} -> "
          f"{instructions:.0f} ({ratio:.3f}x)")


def test_bad_cascades(tmp_path):
    with pytest.raises(InputError, match="two or more models"):
        adaptc.compile([BIG], cascade=True, calibration=CAL)
    with pytest.raises(InputError, match="compiles as a cascade"):
        adaptc.compile([SMALL, BIG], calibration=CAL)
    with pytest.raises(InputError, match="input differs"):
        adaptc.compile([SMALL, D.path("digits_cnn.onnx")], cascade=True, calibration=CAL)
    with pytest.raises(InputError, match="one input and one output"):
        adaptc.compile([SMALL, D.path("digits_exits.onnx")], cascade=True, calibration=CAL)


def test_warns_when_calibrated_on_training_data():
    """The big member is (nearly) always right on its own training data: thresholds calibrated
    there would be too lenient on new data, and compile says so; on held-out data it does not."""
    with pytest.warns(UserWarning, match="calibrate on held-out data"):
        adaptc.compile([SMALL, BIG], cascade=True, target="cortex-m4", calibration=(X[:400], Y[:400]))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        adaptc.compile([SMALL, BIG], cascade=True, target="cortex-m4", calibration=CAL)


def test_members_in_different_formats():
    """quantize=["pot4", "int8"]: the small member's layers power-of-two, the big one's int8
    (the compile report's per-layer formats, member by member); the C equals Relax at every level."""
    from adaptc.cascade import member_layers

    m = adaptc.compile([SMALL, BIG], cascade=True, target="cortex-m4", calibration=CAL, quantize=["pot4", "int8"])
    small, big = member_layers([SMALL, BIG])
    assert [layer["format"] for layer in m.quantization["layers"]] == ["pot4"] * small + ["int8"] * big
    xs = m.quantize_input(HELD_X[:20])
    for level in range(len(m.levels)):
        for x in xs:
            r, ref = m.run(x[None], level=level), m.reference(x[None], level=level)
            assert (r.exit, r.label, r.confidence) == (ref.exit, ref.label, ref.confidence)
    with pytest.raises(InputError, match="one format per member"):
        adaptc.compile([SMALL, BIG], cascade=True, calibration=CAL, quantize=["pot4"])
    with pytest.raises(InputError, match="'int8' or 'pot2'"):
        adaptc.compile([SMALL, BIG], cascade=True, calibration=CAL, quantize=["int4", "int8"])
