"""Low-bit weights: formats, post-training quantization, mixed precision, on the bundled digits CNN.

* adaptc.formats: every format's codes round-trip; packed bytes are the theoretical
  ceil(n * bits / 8), plus one padding byte for the formats whose codes straddle bytes.
* adaptc.ptq: error-correcting rounding beats nearest rounding on the layer output; power-of-two
  activation parameters cover the range.
* End to end on the digits model's final head (adaptc/data/digits_exits.onnx, test split of
  adaptc.data.digits): for every format the generated C is bit-exact with the Relax module on
  llvm; pot-4 loses at most 1.0 point of accuracy against float, mixed precision at 50% of
  int8's weight bytes at most 1.5; on emulated cores the firmware gives the host's outputs and,
  on the Cortex-M0+, the power-of-two layers execute no multiply instruction.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import adaptc
from adaptc import formats as F
from adaptc import ptq
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.targets.cortex_m.kernels import select

MODEL = data_path("digits_exits.onnx")
X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = digits()
CAL = (X_TRAIN[:256], Y_TRAIN[:256])
ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(not ARM, reason="needs the Debian packages gcc-arm-none-eabi and qemu-system-arm")

_MODELS: dict = {}


def compiled(quantize, target="cortex-m4", **kw):
    key = (str(quantize), target, tuple(sorted(kw.items())))
    if key not in _MODELS:
        cal = None if quantize == "float" else CAL
        _MODELS[key] = adaptc.compile(MODEL, target=target, calibration=cal, output=-1,   # the final head
                                      quantize=None if quantize in ("float", "mixed") else quantize, **kw)
    return _MODELS[key]


def accuracy(m) -> float:
    xs = m.quantize_input(X_TEST) if m.input_quantization is not None else X_TEST
    return float(np.mean([np.argmax(m.run(x[None])) == y for x, y in zip(xs, Y_TEST)]))


# ------------------------------------------------------------------------------- formats

@pytest.mark.parametrize("name", list(F.FORMATS))
def test_format_round_trip_and_size(name):
    fmt = F.get(name)
    rng = np.random.default_rng(len(name))
    for n in (1, 7, 64, 333):
        v = rng.choice(fmt.grid, n)
        packed = F.pack(v, fmt)
        np.testing.assert_array_equal(F.unpack(packed, fmt, n), v)
        theoretical = -(-n * fmt.bits // 8)
        assert theoretical <= len(packed) <= theoretical + 1
        assert len(packed) == fmt.packed_bytes(n)
    np.testing.assert_array_equal(F.decode_table(fmt)[F.encode(fmt.grid, fmt)], fmt.grid)


def test_format_grids_and_choice():
    assert list(F.get("pot2").grid) == [-1, 0, 1]
    assert list(F.get("pot3").grid) == [-4, -2, -1, 0, 1, 2, 4]
    assert F.get("pot4").max_value == 64 and F.get("pot5").max_value == 2 ** 14
    assert F.format_of([0, 1, -1]).name == "pot2"
    assert F.format_of([0, 4, -2]).name == "pot3"
    assert F.format_of([64, -1]).name == "pot4"          # pot4 before int4 at 4 bits
    assert F.format_of([3, -8]).name == "int4"
    assert F.format_of([100, 1]).name == "int8"
    assert F.format_of([1 << 14]).name == "pot5"
    with pytest.raises(ValueError, match="fit no weight format"):
        F.format_of([300])


# ------------------------------------------------------------------------------------ ptq

def test_error_correcting_rounding_beats_nearest():
    rng = np.random.default_rng(0)
    X = np.maximum(rng.standard_normal((4000, 72)) @ rng.standard_normal((72, 72)) * 0.3, 0)
    W = rng.standard_normal((16, 72)) * 0.1
    for name in ("pot2", "pot3", "pot4", "int4"):
        fmt = F.get(name)
        Q, s, facts = ptq.quantize_matrix(W, fmt, X, pot_scale=fmt.kind == "pot")
        assert F.fits(Q, fmt)
        if fmt.kind == "pot":
            np.testing.assert_array_equal(np.log2(s), np.round(np.log2(s)))   # power-of-two scales
        err = lambda A: np.mean((X @ W.T - X @ A.T) ** 2)                    # noqa: E731
        Qn, sn, _ = ptq.quantize_matrix(W, fmt, None, pot_scale=fmt.kind == "pot", method="nearest")
        assert err(Q * s[:, None]) < err(Qn * sn[:, None])
        assert facts["error"] < facts["nearest_error"]


def test_pot_activation_parameters_cover_the_range():
    for lo, hi in ((0.0, 1.0), (-3.0, 5.0), (0.0, 200.0), (-0.01, 0.0)):
        s, zp = ptq.pot_qparams(lo, hi)
        assert np.log2(s) == np.round(np.log2(s))
        assert (-128 - zp) * s <= lo + 1e-9 and (127 - zp) * s >= hi - s


def test_im2col_matches_a_convolution():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6, 3))
    w = rng.standard_normal((4, 3, 2, 3))                  # OHWI
    cols = ptq.im2col(x, 3, 2, (2, 1), (1, 2), (1, 0, 1, 2))
    y = (cols @ w.reshape(4, -1).T).reshape(2, -1, 4)
    xp = np.pad(x, ((0, 0), (1, 1), (0, 2), (0, 0)))
    want = [[np.sum(xp[n, oy * 2:oy * 2 + 3, ox:ox + 4:2, :][None] * w, axis=(1, 2, 3))
             for oy in range(3) for ox in range(6)] for n in range(2)]
    np.testing.assert_allclose(y, np.array(want), rtol=1e-12)


# --------------------------------------------------------------------------- end to end

def test_quantized_layers_are_on_their_grids():
    m = compiled("pot3")
    layers = [s for s in m.scheduled.steps if s.op in ("adaptc.qconv2d", "adaptc.qdense")]
    assert [r["format"] for r in m.quantization["layers"]] == ["pot3"] * len(layers)
    for s in layers:
        assert F.fits(s.step.consts["weights"], F.get(s.step.attrs["weight_format"]))
        assert np.all(np.asarray(s.step.attrs["multiplier"]) == 1 << 30)      # power-of-two requantization
        assert s.kernel in ("conv2d_s8_packed_dsp", "fully_connected_s8_packed_dsp")
    # the flash array the C holds: the theoretical ceil(n * 3 / 8) bytes plus at most one of padding
    for variants in (("ref",), ("dsp", "ref")):
        for s in layers:
            call = select(s.step, m.program, variants)
            codes = dict(call.arrays)["weights"]
            theoretical = -(-s.step.consts["weights"].size * 3 // 8)
            assert codes.dtype == np.uint8 and theoretical <= codes.size <= theoretical + 1, (call.function, codes.size)


@pytest.mark.parametrize("quantize", ["int8", "int4", "pot2", "pot3", "pot4", "pot5"])
def test_generated_c_is_bit_exact_with_relax(quantize):
    m = compiled(quantize)
    for x in m.quantize_input(X_TEST[:12]):
        np.testing.assert_array_equal(m.run(x[None]), m.reference(x[None]))


def test_accuracy_and_flash():
    """pot-4 within 1.0 point of float; mixed precision at half of int8's weight bytes within 1.5;
    the weight bytes fall with the bits."""
    acc = {q: accuracy(compiled(q)) for q in ("float", "int8", "pot4", "pot3", "pot2")}
    assert acc["float"] >= 0.97
    assert acc["pot4"] >= acc["float"] - 0.010
    size = {q: compiled(q).report["weight_bytes"] for q in ("int8", "pot4", "pot3", "pot2")}
    assert size["int8"] > size["pot4"] > size["pot3"] > size["pot2"]
    budget = size["int8"] // 2
    mixed = compiled("mixed", weight_budget=budget)
    assert mixed.report["weight_bytes"] <= budget
    assert accuracy(mixed) >= acc["float"] - 0.015
    table = mixed.report["quantization"]["search"]
    assert [r["layer"] for r in table] == list(range(5)) and all(r["chosen"] for r in table)


def test_unreachable_budget_names_the_smallest_size():
    with pytest.raises(adaptc.InputError,
                       match=r"weight budget 5,000 bytes cannot be met: the smallest .* is about [\d,]+ bytes"):
        adaptc.compile(MODEL, calibration=CAL, weight_budget=5000)


def test_quantize_needs_calibration_and_a_float_model():
    with pytest.raises(adaptc.InputError, match="needs calibration"):
        adaptc.compile(MODEL, quantize="pot4")
    with pytest.raises(adaptc.InputError, match="int8 model already"):
        adaptc.compile(adaptc.data.path("kws_ref_model.tflite"), quantize=adaptc.PoT(bits=3))
    with pytest.raises(adaptc.InputError, match=r"PoT bits must be 2\.\.5"):
        adaptc.compile(MODEL, calibration=CAL, quantize="pot9")
    with pytest.raises(adaptc.InputError, match="unknown quantization"):
        adaptc.compile(MODEL, calibration=CAL, quantize="int3")


def test_per_layer_override():
    m = compiled(adaptc.PoT(bits=3, layers={0: "int8", 4: 5}))
    assert [r["format"] for r in m.quantization["layers"]] == ["int8", "pot3", "pot3", "pot3", "pot5"]


@needs_arm
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
@pytest.mark.parametrize("quantize", ["int4", "pot4", "pot3", "pot2"])
def test_emulated_cores(quantize, target):
    """Firmware outputs equal the host build's; on the M0+ (no DSP: the shift-and-add kernels)
    the power-of-two layers execute no multiply, and the whole inference fewer than int8's."""
    m = compiled(quantize, target)
    x = m.quantize_input(X_TEST[:1])
    r = m.run_on_target(x)
    np.testing.assert_array_equal(r.outputs, m.run(x))
    if target == "cortex-m0plus" and quantize.startswith("pot"):
        weighted = [s for s in r.steps if s["macs"]]
        assert all(s["kernel"].endswith("_packed") and s["classes"]["mac"] == 0 for s in weighted), weighted
        int8 = compiled("int8", target).run_on_target(compiled("int8", target).quantize_input(X_TEST[:1]))
        assert r.classes["mac"] < int8.classes["mac"]


def test_cli_quantize_and_budget(tmp_path):
    from click.testing import CliRunner

    from adaptc.cli import main

    cal = tmp_path / "cal.npz"
    np.savez(cal, x=CAL[0][:64], y=CAL[1][:64])
    out = tmp_path / "pot"
    res = CliRunner().invoke(main, ["compile", str(MODEL), "--calibration", str(cal), "--quantize", "pot4",
                                    "--model-output", "-1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["quantization"]["scheme"] == "pot4"
    assert [r["format"] for r in report["quantization"]["layers"]] == ["pot4"] * 5
    res = CliRunner().invoke(main, ["compile", str(MODEL), "--calibration", str(cal), "--weight-budget", "100",
                                    "-o", str(tmp_path / "no")])
    assert res.exit_code != 0 and "cannot be met" in res.output
    assert not (tmp_path / "no").exists()
    res = CliRunner().invoke(main, ["compile", str(MODEL), "--quantize", "mixed", "-o", str(tmp_path / "no")])
    assert res.exit_code != 0 and "--weight-budget" in res.output
    if shutil.which("make") and ARM:
        assert subprocess.run(["make", "-C", str(out)], capture_output=True).returncode == 0


# ---------------------------------------------------------------- depthwise layers, every format

def _depthwise_net(path, mult: int):
    """conv 3x3 -> depthwise 3x3 (depth multiplier ``mult``) -> pointwise -> GAP -> dense, ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(mult)
    c = 8
    weights = {"w1": rng.normal(0, .3, (c, 3, 3, 3)), "wdw": rng.normal(0, .3, (c * mult, 1, 3, 3)),
               "bdw": rng.normal(0, .1, (c * mult,)), "wpw": rng.normal(0, .3, (16, c * mult, 1, 1)),
               "wfc": rng.normal(0, .3, (16, 10))}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "wdw", "bdw"], ["c"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("Relu", ["c"], ["d"]), helper.make_node("Conv", ["d", "wpw"], ["e"]),
             helper.make_node("Relu", ["e"], ["f"]), helper.make_node("GlobalAveragePool", ["f"], ["g"]),
             helper.make_node("Flatten", ["g"], ["h"]), helper.make_node("MatMul", ["h", "wfc"], ["y"])]
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("mult", [1, 2])
@pytest.mark.parametrize("quantize", ["pot4", "int4", "pot2", "mixed"])
def test_every_weight_format_on_a_network_with_depthwise_layers(quantize, mult, tmp_path):
    """Power-of-two, int4 and mixed precision compile a network with a depthwise convolution (any
    depth multiplier): every layer, the depthwise one too, takes the format (its packed kernels,
    depthwise_conv2d_s8_packed and its DSP drop-in); the C equals the Relax module bit for bit."""
    path = _depthwise_net(tmp_path / "dw.onnx", mult)
    cal = np.random.default_rng(3).normal(0, 1, (48, 1, 3, 12, 12)).astype(np.float32)
    budget = int(0.7 * adaptc.compile(path, calibration=cal).report["weight_bytes"])
    kw = {"weight_budget": budget} if quantize == "mixed" else {"quantize": quantize}
    m = adaptc.compile(path, calibration=cal, **kw)
    kinds = [r["kind"] for r in m.quantization["layers"]]
    fmts = [r["format"] for r in m.quantization["layers"]]
    assert kinds == ["conv2d", "depthwise_conv2d", "conv2d", "dense"]
    assert quantize == "mixed" or fmts == [quantize] * 4
    dw = next(s for s in m.scheduled.steps if s.op == "adaptc.qconv2d" and int(s.step.attrs["groups"]) > 1)
    assert dw.step.attrs["weight_format"] == fmts[1]
    assert ("_packed" in dw.kernel) == F.get(fmts[1]).packed, (dw.kernel, fmts[1])
    if quantize == "mixed":
        chosen = [r["chosen"] for r in m.quantization["search"]]
        assert chosen == fmts and set(chosen) != {"int8"}              # the budget needs low-bit layers
        assert m.report["weight_bytes"] <= budget
    for x in m.quantize_input(cal[:6]):
        np.testing.assert_array_equal(m.run(x), m.reference(x))
