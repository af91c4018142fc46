"""The float element-wise functions (unary_f32: sigmoid, tanh, hard swish, hard sigmoid, leaky
ReLU, ELU, exp, rsqrt, sqrt, reciprocal) as one-step programs through the Cortex-M target -- on
the host and on emulated cores -- against float64 numpy written from the ONNX operator
definitions. Where a definition gives NaN (sqrt, rsqrt of a negative) or an infinity (rsqrt,
reciprocal of +-0), the C (IEEE expf, sqrtf, 1.0f / ...) gives the same: the comparisons require
NaN where the reference has NaN and the infinity of the same sign."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
from adaptc import unary
from adaptc.program import Program, Step, Tensor

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

def _ieee(f):
    """f() with IEEE's special values and without numpy's warnings: sqrt(-1) = NaN, 1 / +-0 = +-inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return f()


# the ONNX definitions, in float64
REFERENCE = {
    "sigmoid": lambda x, **p: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda x, **p: np.tanh(x),
    "hard_swish": lambda x, **p: x * np.maximum(0.0, np.minimum(1.0, x / 6.0 + 0.5)),
    "hard_sigmoid": lambda x, alpha, beta: np.maximum(0.0, np.minimum(1.0, alpha * x + beta)),
    "leaky_relu": lambda x, alpha: np.where(x < 0, alpha * x, x),
    "elu": lambda x, alpha: np.where(x < 0, alpha * (np.exp(x) - 1.0), x),
    "exp": lambda x, **p: np.exp(x),
    "rsqrt": lambda x, **p: _ieee(lambda: 1.0 / np.sqrt(x)),
    "sqrt": lambda x, **p: _ieee(lambda: np.sqrt(x)),
    "reciprocal": lambda x, **p: _ieee(lambda: 1.0 / x),
    "log": lambda x, **p: _ieee(lambda: np.log(x)),
}
PARAMS = {"hard_sigmoid": {"alpha": 0.2, "beta": 0.5}, "leaky_relu": {"alpha": 0.1}, "elu": {"alpha": 0.7}}


def program(function: str, shape: tuple) -> Program:
    x = Tensor(0, "x", shape, "float32", "input")
    y = Tensor(1, "y", shape, "float32", "output")
    step = Step(0, "adaptc.unary_f32", "test case", [0], 1, {"function": function, **PARAMS.get(function, {})}, {},
                in_shapes=[shape], out_shape=shape)
    return Program("unary_case", [x, y], [step], [0], [1])


def inputs(function: str, shape: tuple) -> np.ndarray:
    """Values across the functions' corners (+-3 of hard swish, large magnitudes, +-0, negatives
under the square roots)."""
    rng = np.random.default_rng(zlib.crc32(function.encode()))
    x = rng.normal(0.0, 4.0, size=shape).astype(np.float32)
    x.flat[:8] = [0.0, -3.0, 3.0, -40.0, 40.0, -1e-7, 1e-7, -0.0]
    return x


def test_references_are_the_onnx_functions_not_ours():
    """Every function of adaptc.unary has a reference here, and ours (float32) agrees with it."""
    assert set(REFERENCE) == set(unary.FUNCTIONS)
    x = inputs("all", (1, 200))
    for name, f in unary.FUNCTIONS.items():
        want = REFERENCE[name](x.astype(np.float64), **PARAMS.get(name, {}))
        got = _ieee(lambda: f.numpy(x, **PARAMS.get(name, {})))     # (np.sqrt of a negative warns)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_inputs_reach_the_special_values():
    """NaN (a square root of a negative) and both infinities (1 / +-0) are among the expected
    outputs, so the comparisons check that the C gives them where the definitions do."""
    x = inputs("all", (1, 200)).astype(np.float64)
    assert np.isnan(REFERENCE["sqrt"](x)).any() and np.isnan(REFERENCE["rsqrt"](x)).any()
    assert np.isnan(REFERENCE["log"](x)).any() and np.isneginf(REFERENCE["log"](x)).any()
    for name in ("rsqrt", "reciprocal"):
        y = REFERENCE[name](x)
        assert np.isposinf(y).any() and np.isneginf(y).any(), name


@pytest.mark.parametrize("function", sorted(unary.FUNCTIONS))
def test_unary_f32_host(function):
    shape = (1, 5, 7, 6)
    m = api.compile_program(program(function, shape), "cortex-m4", format="float32")
    assert [s.kernel for s in m.scheduled.steps] == ["unary_f32"]
    x = inputs(function, shape)
    want = REFERENCE[function](x.astype(np.float64), **PARAMS.get(function, {}))
    np.testing.assert_allclose(m.run(x).reshape(shape), want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4", "cortex-m7"])
def test_unary_f32_emulated(target):
    """Every function on the core (the libm of newlib, soft or hard float) as on the host."""
    shape = (1, 3, 3, 8)
    for function in sorted(unary.FUNCTIONS):
        m = api.compile_program(program(function, shape), target, format="float32")
        x = inputs(function, shape)
        r = m.run_batch_on_target(x[None])
        want = REFERENCE[function](x.astype(np.float64), **PARAMS.get(function, {}))
        np.testing.assert_allclose(r.outputs[0].reshape(shape), want, rtol=1e-5, atol=1e-6, err_msg=function)
