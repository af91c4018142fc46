"""Early exits end to end on the bundled digits model (adaptc/data/digits_exits.onnx, 3 exits).

* Float: for every level and the whole test split, the generated C returns the exit the Relax
  module takes, and its logits equal onnxruntime's output of that head.
* int8: for every level and the whole test split, the C equals the Relax module on llvm bit for
  bit (class, exit, logits, confidence); its classes agree with onnxruntime's head.
* Calibrated thresholds (labelled training split, per-exit costs from adaptc.simulate): on the
  emulated Cortex-M4 over the whole test split, accuracy within 1 point of the network without
  exits, and at least 2.5x fewer instructions.
* On emulated cores an input that leaves at gate i executes no step after it; outputs equal
  the host build's.
* Bad uses: a single-output model, unlabelled calibration, a wrong number of thresholds.
"""
from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path

MODEL = data_path("digits_exits.onnx")
X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = digits()
ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(not ARM, reason="needs the Debian packages gcc-arm-none-eabi and qemu-system-arm")

_CACHE: dict = {}


def compiled(kind: str, target: str = "cortex-m4"):
    key = (kind, target)
    if key not in _CACHE:
        if kind == "float":
            _CACHE[key] = adaptc.compile(MODEL, target=target, exits=True, thresholds=[0.95, 0.9])
        elif kind == "int8-fixed":      # thresholds given: quantization from unlabelled data
            _CACHE[key] = adaptc.compile(MODEL, target=target, exits=True, calibration=X_TRAIN[:256],
                                         thresholds=[0.95, 0.9])
        else:
            _CACHE[key] = adaptc.compile(MODEL, target=target, exits=True, calibration=(X_TRAIN, Y_TRAIN),
                                         quantize=None if kind == "int8" else kind)
    return _CACHE[key]


@pytest.fixture(scope="module")
def onnx_heads():
    sess = ort.InferenceSession(str(MODEL))
    name = sess.get_inputs()[0].name
    return [np.concatenate(h) for h in zip(*[sess.run(None, {name: x[None]}) for x in X_TEST])]


def test_float_exits_match_onnxruntime(onnx_heads):
    m = compiled("float")
    assert m.format == "float32" and len(m.levels) == 3
    taken = set()
    for level in range(3):
        for k, x in enumerate(X_TEST):
            r, ref = m.run(x[None], level=level), m.reference(x[None], level=level)
            assert (r.exit, r.label) == (ref.exit, ref.label) and r.exit <= level, (k, level)
            np.testing.assert_allclose(r.logits, ref.logits, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(r.logits[0], onnx_heads[r.exit][k], rtol=1e-4, atol=1e-4)
            assert r.label == int(np.argmax(onnx_heads[r.exit][k]))
            assert abs(r.confidence - ref.confidence) < 1e-5
            taken.add(r.exit)
    assert taken == {0, 1, 2}


@pytest.mark.parametrize("kind", ["int8-fixed", "int8"])
def test_int8_exits_bit_exact_with_relax(onnx_heads, kind):
    m = compiled(kind)
    xs = m.quantize_input(X_TEST)
    taken, agree = set(), []
    for level in range(3):
        for k, x in enumerate(xs):
            r, ref = m.run(x[None], level=level), m.reference(x[None], level=level)
            assert (r.exit, r.label, r.confidence) == (ref.exit, ref.label, ref.confidence), (k, level)
            np.testing.assert_array_equal(r.logits, ref.logits)
            agree.append(r.label == int(np.argmax(onnx_heads[r.exit][k])))
            taken.add(r.exit)
    if kind == "int8-fixed":            # (calibrated thresholds may leave the final exit unused)
        assert taken == {0, 1, 2}
    assert np.mean(agree) >= 0.97
    report = m.report(memory=False)
    assert [e["criterion"] for e in report["exits"]] == ["max_prob"] * 3
    assert all(0 < e["threshold"] <= 1 for e in report["exits"][:2]) and report["exits"][2]["threshold"] is None


@needs_arm
@pytest.mark.parametrize("kind", ["int8", "pot4"])
def test_calibrated_exits_are_cheaper_at_equal_accuracy(kind):
    """The whole test split on the emulated Cortex-M4: the adaptive model at the top level
    against the same network compiled without exits (its final head alone): accuracy within 1
    point, mean executed instructions at least 2.5x lower."""
    m = compiled(kind)
    full = adaptc.compile(MODEL, target="cortex-m4", calibration=X_TRAIN, quantize=None if kind == "int8" else kind)
    xs = m.quantize_input(X_TEST)
    assert np.array_equal(full.quantize_input(X_TEST), xs)
    adaptive = m.run_batch_on_target(xs, levels=[len(m.levels) - 1])
    static = full.run_batch_on_target(xs)
    acc = np.mean(adaptive.label[0] == Y_TEST)
    acc_full = np.mean(static.logits[0].reshape(len(xs), -1).argmax(axis=-1) == Y_TEST)
    assert acc >= acc_full - 0.01, (acc, acc_full)
    ratio = static.instructions.mean() / adaptive.instructions.mean()
    assert ratio >= 2.5, ratio
    # the calibration's costs are the simulator's; its instruction counts predict the measured mean
    assert m.exits["calibration"]["cost_unit"] == "cycles (cortex-m4, simulated)"
    sim = adaptc.simulate(m)
    assert [e["cost"] for e in m.exits["calibration"]["exits"]] == [e.cycles for e in sim.exits]
    predicted = np.array([e.instructions for e in sim.exits])
    np.testing.assert_allclose(predicted[adaptive.exit[0]].mean(), adaptive.instructions.mean(), rtol=0.05)


@needs_arm
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_no_step_runs_after_the_exit_taken(target):
    m = compiled("int8-fixed", target)
    xs = m.quantize_input(X_TEST)
    for want in range(3):
        # an input that reaches exit `want` at level `want`: its earlier gates do not fire
        k = next(k for k, x in enumerate(xs[:60]) if m.run(x[None], level=want).exit == want)
        r = m.run_on_target(xs[k:k + 1], level=want)
        h = m.run(xs[k:k + 1], level=want)
        assert (r.exit, r.label, r.confidence) == (h.exit, h.label, h.confidence)
        np.testing.assert_array_equal(r.logits, h.logits)
        gate = m.program.exits[want].gate
        assert all(s["instructions"] > 0 for s in r.steps[:gate + 1])
        assert all(s["instructions"] == 0 for s in r.steps[gate + 1:]), [s["instructions"] for s in r.steps]


def test_bad_uses():
    with pytest.raises(adaptc.InputError, match="at least two outputs"):
        adaptc.compile(data_path("kws_ref_model.tflite"), exits=True, thresholds=[])
    with pytest.raises(adaptc.InputError, match=r"needs labelled data: calibration=\(x, y\)"):
        adaptc.compile(MODEL, exits=True, calibration=X_TRAIN[:64])
    with pytest.raises(adaptc.InputError, match="3 exits take 2 thresholds"):
        adaptc.compile(MODEL, exits=True, thresholds=[0.5])
    with pytest.raises(adaptc.InputError, match="unknown gate criterion 'confidence'"):
        adaptc.compile(MODEL, exits=True, thresholds=[0.5, 0.5], gate="confidence")
    m = compiled("float")
    with pytest.raises(adaptc.InputError, match=r"level 3 out of range: .* levels 0\.\.2"):
        m.run(X_TEST[:1], level=3)


# ----------------------------------------------------------------------------
# The stream controller (templates/model.h.j2): its level trace against the documented policy,
# computed here from the un-gated heads on llvm; its cost and accuracy against the top level
# ----------------------------------------------------------------------------

def policy(conf, thresholds, target, comfort, patience, start, top):
    """The controller as documented, on per-input confidences of every head ([N, exits]):
    (level each input starts at, exit it leaves at)."""
    level, calm, levels, exits = start, 0, [], []
    for c in conf:
        levels.append(level)

        def leave(first, cap):          # the first exit from `first` whose gate fires, else the cap
            return next(i for i in range(first, cap + 1) if i == cap or c[i] >= thresholds[i])

        e, raised = leave(0, level), False
        while e == level and level < top and c[e] < target:
            level, raised = level + 1, True
            e = leave(e + 1, level)
        if not raised and c[e] >= comfort:
            calm += 1
            if calm >= patience:
                calm, level = 0, max(level - 1, 0)
        else:
            calm = 0
        exits.append(e)
    return np.array(levels), np.array(exits)


def noisy_stream(seed=1, sigma=0.6):
    """Test digits with noise rising from none to ``sigma``, held, and falling back: 350 inputs."""
    rng = np.random.default_rng(seed)
    sig = np.concatenate([np.zeros(100), np.linspace(0, sigma, 50), np.full(50, sigma), np.linspace(sigma, 0, 50),
                          np.zeros(100)])
    idx = rng.permutation(len(X_TEST))[:len(sig)]
    noise = rng.standard_normal(X_TEST[idx].shape).astype(np.float32) * sig[:, None, None, None].astype(np.float32)
    return np.clip(X_TEST[idx] + noise, 0, 1).astype(np.float32), Y_TEST[idx]


@pytest.mark.parametrize("settings", [{}, {"level": 0, "patience": 3, "comfort": 24000}], ids=["defaults", "runtime"])
def test_controller_follows_its_policy(settings):
    m = compiled("int8")
    x, _ = noisy_stream()
    xs = m.quantize_input(x)
    s = m.run_stream(xs, **settings)
    ex = m.exits["exits"]
    scales = [e["scale"] for e in ex]
    heads = [m.heads(v[None]) for v in xs]
    from adaptc import gates

    conf = np.array([[gates.confidence_int(h[i], "max_prob", scales[i])[0] for i in range(3)] for h in heads])
    ctl = {**{"target": m.exits["controller"]["target_int"], "comfort": m.exits["controller"]["comfort_int"],
              "patience": m.exits["controller"]["patience"], "level": m.exits["controller"]["start"]}, **settings}
    levels, exits = policy(conf, [e["threshold_int"] for e in ex], ctl["target"], ctl["comfort"], ctl["patience"],
                           ctl["level"], 2)
    np.testing.assert_array_equal(s.levels, levels)
    np.testing.assert_array_equal(s.exits, exits)
    for r, h, e, c in zip(s.results, heads, exits, conf):
        np.testing.assert_array_equal(r.logits, h[e])
        assert (r.label, r.confidence) == (int(np.argmax(h[e][0])), c[e])
    assert len(set(levels.tolist())) == 3          # the trace visits every level


def test_controller_is_cheaper_than_the_top_level_at_equal_accuracy():
    """Twelve scripted streams (seeds 1..6, noise up to 0.3 and 0.6; 4,200 inputs), default
    settings: together, the controller is right at least as often as the top level and costs
    less on every stream (costs: the calibration's per-exit instruction counts)."""
    m = compiled("int8")
    cost = np.array([e["cost"] for e in m.exits["calibration"]["exits"]])
    right = right_top = 0
    for seed in range(1, 7):
        for sigma in (0.3, 0.6):
            x, y = noisy_stream(seed, sigma)
            xs = m.quantize_input(x)
            top = [m.run(v[None]) for v in xs]
            s = m.run_stream(xs)
            right_top += int(np.sum(np.array([r.label for r in top]) == y))
            right += int(np.sum(s.labels == y))
            assert cost[s.exits].mean() < cost[[r.exit for r in top]].mean(), (seed, sigma)
    assert right >= right_top, (right, right_top)


def test_controller_errors():
    m = compiled("int8")
    x = m.quantize_input(X_TEST[:2])
    with pytest.raises(adaptc.AdaptcError, match="controller levels out of range"):
        m.run_stream(x, level=3)
    with pytest.raises(adaptc.InputError, match="unknown controller setting 'speed'"):
        m.run_stream(x, speed=1)


def test_explicit_exit_list():
    """exits=[i, j]: those outputs, in that order, are the exits; the others are dropped."""
    m = adaptc.compile(MODEL, exits=[0, 2], thresholds=[0.9])
    assert len(m.levels) == 2
    onnx_out = ort.InferenceSession(str(MODEL))
    name = onnx_out.get_inputs()[0].name
    for x in X_TEST[:30]:
        heads = onnx_out.run(None, {name: x[None]})
        r = m.run(x[None])
        np.testing.assert_allclose(r.logits, heads[[0, 2][r.exit]], rtol=1e-4, atol=1e-4)
    all_three = compiled("float").report(memory=False)
    assert m.report(memory=False)["macs"] == all_three["macs"] - 1280     # exit 1's fc 128->10 is dropped
    with pytest.raises(adaptc.InputError, match=r"exit 1 \(\w+\) runs \d+ layers, exit 0 \(\w+\) \d+; exits must be "
                                                "ordered shallow to deep"):
        adaptc.compile(MODEL, exits=[2, 0], thresholds=[0.9])
    with pytest.raises(adaptc.InputError, match="output 5 out of range; the model has 3 output"):
        adaptc.compile(MODEL, exits=[0, 5], thresholds=[0.9])
