"""The zoo of public architectures (tests/data/zoo, scripts/build_zoo.py) through adaptc.

Every model is either compiled and checked against an independent reference -- int8 TFLite bit
for bit with TensorFlow Lite Micro, float ONNX within 1e-4 of onnxruntime, its post-training int8
build bit-exact with the Relax module and within a measured SNR of onnxruntime, on the emulated
Cortex-M4 / M7 bit-exact with the host build -- or refused, before any work, for exactly the
operators ``MISSING`` lists (issue 16's to-do list: an entry goes when its operators land, and
the test of that model then runs in full). The mixed-precision search: test_zoo_mixed.py.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from tflite_micro import runtime

import adaptc
from adaptc.loader import unsupported
from zoo_models import (
    COMPILED,
    EMULATOR,
    MIN_SNR_DB,
    MISSING,
    MODELS,
    ONNX,
    TFLITE,
    calibration,
    compiled,
    inputs,
    path_of,
    recurrent,
)


@pytest.mark.parametrize("name", list(MODELS))
def test_refused_for_exactly_the_missing_operators(name):
    found = {op for op, _node, _detail in unsupported(path_of(name))}
    assert found == MISSING.get(name, set())
    if found:
        with pytest.raises(adaptc.UnsupportedOperatorError) as e:
            adaptc.load(path_of(name))
        assert {op for op, _, _ in e.value.findings} == found


@pytest.mark.parametrize("name", TFLITE)
def test_int8_tflite_bit_exact_with_tflite_micro(name):
    m = compiled(name)
    interp = runtime.Interpreter.from_bytes(path_of(name).read_bytes())
    xs = inputs(name, n_random=5)           # the stored inputs and 5 uniformly random int8 ones
    assert len(xs) >= 5
    for x in xs:
        interp.reset()          # an LSTM's state tensors: each inference from reset states
        interp.set_input(x, 0)
        interp.invoke()
        np.testing.assert_array_equal(m.run(x), interp.get_output(0))


@pytest.mark.parametrize("name", ONNX)
def test_float_onnx_within_1e4_of_onnxruntime(name):
    m = compiled(name)
    sess = ort.InferenceSession(str(path_of(name)))
    for x in inputs(name):
        np.testing.assert_allclose(m.run(x), sess.run(None, {sess.get_inputs()[0].name: x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ONNX)
def test_post_training_int8_snr(name):
    q = compiled(name, calibration=calibration(name))
    sess = ort.InferenceSession(str(path_of(name)))
    scale, zp = q.output_quantization
    ref, out = [], []
    for x in inputs(name):
        xq = q.quantize_input(x)
        y = q.run(xq)
        np.testing.assert_array_equal(y, q.reference(xq))
        out.append((y.astype(np.float64) - zp) * scale)
        ref.append(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    ref, out = np.stack(ref), np.stack(out)
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((out - ref) ** 2))
    assert snr >= MIN_SNR_DB[name], snr


@pytest.mark.parametrize("name", ONNX)
def test_power_of_two_weights(name):
    p = compiled(name, calibration=calibration(name), quantize="pot4")
    assert {row["format"] for row in p.quantization["layers"]} == {"pot4"}
    if not recurrent(p):    # a recurrent keyword spotter: one 32x12 dense layer, packed no smaller (its tables)
        assert p.report["weight_bytes"] < compiled(name, calibration=calibration(name)).report["weight_bytes"]
    for x in inputs(name, 1)[-2:]:
        xq = p.quantize_input(x)
        np.testing.assert_array_equal(p.run(xq), p.reference(xq))


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
@pytest.mark.parametrize("name", COMPILED)
def test_emulated_core_equals_the_host_build(name, target):
    """The int8 build (TFLite as it is, ONNX by post-training quantization) on the emulated core
    gives the host build's outputs."""
    kw = {} if MODELS[name]["format"] == "tflite" else {"calibration": calibration(name)}
    m = compiled(name, target, **kw)
    xs = inputs(name, 1)[-2:]
    xs = np.stack([m.quantize_input(x) for x in xs]) if MODELS[name]["format"] == "onnx" else xs
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(m.output.shape), m.run(x))
