"""Arrays at the API boundary (adaptc.validation): calibration data, its labels and run inputs
are checked for shape, dtype and finite values before any work, and an InputError names the
array and the first bad element -- through adaptc.compile, every quantization path behind it,
the CLI's --calibration file, and m.run / m.reference / m.run_on_target / m.quantize_input."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import adaptc
import adaptc.data
import tflite_ops as T
from adaptc import tvm_compat
from adaptc.cli import main
from adaptc.errors import InputError
from adaptc.loader import load
from adaptc.passes.quantize_int8 import samples_of_shape
from adaptc.pipeline import pipeline

DIGITS = adaptc.data.path("digits_exits.onnx")       # float, three exit heads, input (1, 1, 8, 8)


@pytest.fixture(scope="module")
def conv_f32(tmp_path_factory):
    """A float TFLite conv: input (1, 6, 6, 2) NHWC, output (1, 6, 6, 3)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("conv") / "conv.tflite"
    path.write_bytes(T.conv2d_model_f32((1, 6, 6, 2), rng.standard_normal((3, 3, 3, 2)).astype(np.float32)))
    return path


@pytest.fixture(scope="module")
def dense_f32(tmp_path_factory):
    """A float TFLite dense layer: input (1, 8), output (1, 4) -- four classes."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("dense") / "dense.tflite"
    path.write_bytes(T.fully_connected_model_f32((1, 8), rng.standard_normal((4, 8)).astype(np.float32)))
    return path


def _cal(shape, n=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _raises(fn, *fragments) -> str:
    with pytest.raises(InputError) as exc:
        fn()
    for f in fragments:
        assert f in str(exc.value), str(exc.value)
    return str(exc.value)


# ------------------------------------------------------------------------------ calibration

@pytest.mark.parametrize("value, text", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_nonfinite_calibration_names_the_element(conv_f32, value, text):
    cal = _cal((6, 6, 2))
    cal[3, 2, 4, 1] = value
    msg = _raises(lambda: adaptc.compile(conv_f32, calibration=cal), f"calibration[3, 2, 4, 1] is {text}")
    assert str(conv_f32) in msg


def test_nonfinite_calibration_indexed_as_given(conv_f32):
    """With the batch axis of 1 kept, the index is into the array the user passed."""
    cal = _cal((1, 6, 6, 2))
    cal[5, 0, 1, 2, 0] = np.nan
    cal[6, 0, 0, 0, 0] = np.nan                     # not the first
    _raises(lambda: adaptc.compile(conv_f32, calibration=cal), "calibration[5, 0, 1, 2, 0] is nan")


def test_float64_calibration_beyond_float32(conv_f32):
    cal = _cal((6, 6, 2)).astype(np.float64)
    cal[1, 0, 0, 0] = 1e300
    _raises(lambda: adaptc.compile(conv_f32, calibration=cal), "calibration[1, 0, 0, 0] is 1e+300", "float32")


def test_integer_calibration_is_accepted(dense_f32):
    cal = np.random.default_rng(2).integers(0, 256, (16, 8), dtype=np.uint8)
    m = adaptc.compile(dense_f32, calibration=cal)
    assert m.format == "int8"


@pytest.mark.parametrize("cal, fragments", [
    (np.zeros((8, 6, 6, 3), np.float32), ["calibration data must have shape (N, 1, 6, 6, 2)", "[8, 6, 6, 3]"]),
    (np.zeros((0, 6, 6, 2), np.float32), ["N >= 1", "[0, 6, 6, 2]"]),
    (np.zeros((6, 6, 2), np.float32), ["calibration data must have shape"]),
    (np.zeros((8, 6, 6, 2), np.complex64), ["calibration must hold real numbers", "complex64"]),
    (np.full((8, 6, 6, 2), "a"), ["calibration must hold real numbers", "<U1"]),
    ([np.zeros((6, 6, 2)), np.zeros((6, 6))], ["calibration"]),
])
def test_bad_calibration(conv_f32, cal, fragments):
    _raises(lambda: adaptc.compile(conv_f32, calibration=cal), *fragments)


@pytest.mark.parametrize("labels, fragments", [
    (np.arange(8, dtype=np.float32) % 4, ["calibration labels must be integer class indices", "float32"]),
    (np.zeros(7, np.int64), ["calibration has 8 samples but calibration labels has 7"]),
    (np.zeros((8, 2), np.int64), ["calibration labels must have shape (N,)", "[8, 2]"]),
    (np.array([0, 1, 4, 0, 0, 0, 0, 0]), ["calibration labels[2] is 4", "[0, 4)"]),
    (np.array([0, 1, 2, -1, 0, 0, 0, 0]), ["calibration labels[3] is -1"]),
    (np.full(8, "cat"), ["calibration labels must be integer class indices"]),
])
def test_bad_labels(dense_f32, labels, fragments):
    _raises(lambda: adaptc.compile(dense_f32, calibration=(_cal((8,)), labels)), *fragments)


def test_labels_column_and_none_accepted(dense_f32):
    cal = _cal((8,))
    assert adaptc.compile(dense_f32, calibration=(cal, np.arange(8).reshape(8, 1) % 4)).format == "int8"
    assert adaptc.compile(dense_f32, calibration=(cal, None)).format == "int8"


def test_labels_without_inputs(dense_f32):
    _raises(lambda: adaptc.compile(dense_f32, calibration=(None, np.zeros(8, np.int64))), "without calibration inputs")


@pytest.mark.parametrize("kwargs", [{}, {"quantize": "pot4"}, {"quantize": "int4"}, {"weight_budget": 5000},
                                    {"exits": True}, {"exits": True, "quantize": "pot3"}])
def test_every_quantization_path_checks(kwargs):
    """int8, low-bit, the mixed-precision search, calibrated exits: one check, before any work
    (NaN used to fail deep in quantization with a ValueError)."""
    x, y, _, _ = adaptc.data.digits()
    x, y = x[:16].copy(), y[:16]
    x[9, 0, 7, 3] = np.nan
    _raises(lambda: adaptc.compile(DIGITS, calibration=(x, y), **kwargs), "calibration[9, 0, 7, 3] is nan")


def test_quantize_pass_checks_on_its_own(conv_f32):
    """QuantizeInt8 used without adaptc.compile goes through the same check (samples_of_shape)."""
    cal = _cal((6, 6, 2))
    cal[0, 0, 0, 1] = np.inf
    _raises(lambda: samples_of_shape(cal, (1, 6, 6, 2), "cal"), "calibration[0, 0, 0, 1] is inf")
    loaded = load(conv_f32)
    passes, _, _ = pipeline(loaded, cal)
    _raises(lambda: tvm_compat.apply(passes, loaded.mod), "calibration[0, 0, 0, 1] is inf")


def test_cli_calibration_file(conv_f32, tmp_path):
    cal = _cal((6, 6, 2))
    cal[2, 1, 1, 0] = np.nan
    np.save(tmp_path / "cal.npy", cal)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["compile", str(conv_f32), "--calibration", str(tmp_path / "cal.npy"),
                                  "-o", str(out)])
    assert r.exit_code == 1
    assert "calibration[2, 1, 1, 0] is nan" in r.output
    assert not out.exists()

    x, y, _, _ = adaptc.data.digits()
    np.savez(tmp_path / "cal.npz", x=x[:8], y=y[:8].astype(np.float64))
    r = CliRunner().invoke(main, ["compile", str(DIGITS), "--exits", "--calibration", str(tmp_path / "cal.npz"),
                                  "-o", str(out)])
    assert r.exit_code == 1
    assert "calibration labels must be integer class indices" in r.output
    assert not out.exists()


# ---------------------------------------------------------------------------------- inputs

@pytest.fixture(scope="module")
def float_model(dense_f32):
    return adaptc.compile(dense_f32)


@pytest.fixture(scope="module")
def int8_model(dense_f32):
    return adaptc.compile(dense_f32, calibration=_cal((8,), n=32))


@pytest.mark.parametrize("run", ["run", "reference", "run_on_target", "quantize_input"])
def test_nonfinite_input(float_model, run):
    x = np.zeros((1, 8), np.float32)
    x[0, 5] = np.nan
    _raises(lambda: getattr(float_model, run)(x), "input[0, 5] is nan", float_model.info.name)


def test_quantize_input_checks(int8_model):
    xs = _cal((8,), n=5)
    assert int8_model.quantize_input(xs).shape == (5, 8)                     # a stack
    assert int8_model.quantize_input(xs[:1]).dtype == np.int8               # one input
    xs[4, 6] = -np.inf
    _raises(lambda: int8_model.quantize_input(xs), "input[4, 6] is -inf")
    _raises(lambda: int8_model.quantize_input(np.zeros((5, 7))), "input must have shape [1, 8]", "[5, 7]")
    _raises(lambda: int8_model.quantize_input(np.zeros(8, complex)), "input must hold real numbers")


def test_run_input_dtype_and_shape(int8_model):
    _raises(lambda: int8_model.run(np.zeros((1, 8), np.float32)), "input must be int8", "quantize_input")
    _raises(lambda: int8_model.run(np.zeros((1, 9), np.int8)), "input shape must be [1, 8]")
    _raises(lambda: int8_model.reference([[1, 2], [3]]), "input is not an array of numbers")
