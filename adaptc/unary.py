"""Element-wise unary functions (sigmoid, tanh, hard swish, ...): one definition of each.

A ``Function`` holds everything the compiler needs of one of them, so adding one is one entry:

* ``build`` -- its float Relax expression in one canonical form. The importers write every model's
  operator that way (``tvm_compat``: TFLite HARD_SWISH / LEAKY_RELU / ELU, ONNX LeakyRelu / Elu;
  TVM's own converters already write sigmoid, tanh, ONNX HardSwish and HardSigmoid so)
  and the passes find it again by ``pattern`` (``adaptc.graph.match_unary``), or by one of
  ``also``: the same function as other exporters write it (ONNX's function bodies: LeakyRelu and
  Elu as a ``where`` of ``x < 0``, HardSigmoid as max(min(...)).
* ``numpy`` -- the float definition (float32 in, float32 out), what onnxruntime and TFLite
  compute; the float C kernel (``unary_f32.c``, function ``code``) computes the same.
* ``table`` -- the int8 operator as a 256-entry table (``adaptc.qlut``): TFLite Micro's integer
  arithmetic for the operators TFLite has (``adaptc.luts``), the float definition rounded for
  the others (``luts.float_table``, TFLite Micro's own recipe for such tables).
* ``int8_output`` -- the output quantization TFLite requires of the int8 operator (LOGISTIC:
  1/256 and -128; TANH: 1/128 and 0); post-training quantization uses it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tvm import relax

from . import luts

X = "x"     # the pattern's input


@dataclass(frozen=True)
class Function:
    name: str
    code: int                                  # unary_f32.c's ``function``
    params: tuple[str, ...]                    # attribute names, in ``build``'s keyword order
    build: Callable                            # (x, **params) -> float Relax expression
    pattern: tuple                             # the expression ``build`` writes (see match_unary)
    numpy: Callable                            # (x float32 array, **params) -> float32 array
    tflm: str | None = None                    # adaptc.luts' table of the TFLite operator, if there is one
    int8_output: tuple[float, int] | None = None
    also: tuple = ()                           # other expressions of the same function (ONNX's function bodies)

    def table(self, in_scale: float, in_zp: int, out_scale: float, out_zp: int, params: dict) -> np.ndarray:
        """The int8 operator's 256 outputs, for inputs -128..127."""
        if self.tflm is None:
            return luts.float_table(lambda x: self.numpy(x, **params), in_scale, in_zp, out_scale, out_zp)
        return getattr(luts, self.tflm)(in_scale, in_zp, out_scale, out_zp, **params)


def _c(v: float):
    return relax.const(np.float32(v))


def _f32(fn):
    def run(x, **params):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return np.asarray(fn(np.asarray(x, np.float32), **params), np.float32)
    return run


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _hard_swish(x):
    return x * np.clip(x + np.float32(3.0), 0, 6) / np.float32(6.0)


def _hard_sigmoid(x, alpha, beta):
    return np.clip(np.float32(alpha) * x + np.float32(beta), 0, 1)


def _leaky_relu(x, alpha):
    return np.where(x >= 0, x, np.float32(alpha) * x)


def _elu(x, alpha):
    return np.where(x > 0, x, np.float32(alpha) * np.expm1(np.minimum(x, 0)))


def _rsqrt(x):                         # TFLM's float RSQRT: 1.f / std::sqrt(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float32(1.0) / np.sqrt(x)


def _reciprocal(x):                    # ONNX Reciprocal
    with np.errstate(divide="ignore"):
        return np.float32(1.0) / x


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("sigmoid", 0, (), lambda x: relax.op.sigmoid(x), ("sigmoid", X), _f32(_sigmoid),
             "logistic", (1.0 / 256, -128)),
    Function("tanh", 1, (), lambda x: relax.op.tanh(x), ("tanh", X), _f32(np.tanh), "tanh", (1.0 / 128, 0)),
    Function("hard_swish", 2, (),
             lambda x: relax.op.multiply(x, relax.op.divide(relax.op.clip(relax.op.add(x, _c(3.0)), 0, 6), _c(6.0))),
             ("multiply", X, ("divide", ("clip", ("add", X, 3.0), 0.0, 6.0), 6.0)), _f32(_hard_swish),
             "hard_swish"),
    Function("hard_sigmoid", 3, ("alpha", "beta"),
             lambda x, alpha, beta: relax.op.clip(relax.op.add(relax.op.multiply(_c(alpha), x), _c(beta)), 0, 1),
             ("clip", ("add", ("multiply", "$alpha", X), "$beta"), 0.0, 1.0), _f32(_hard_sigmoid),
             also=(("maximum", ("minimum", ("add", ("multiply", "$alpha", X), "$beta"), 1.0), 0.0),)),
    Function("leaky_relu", 4, ("alpha",),      # (not nn.leakyrelu: ConvertLayout carries these ops)
             lambda x, alpha: relax.op.add(relax.op.nn.relu(x), relax.op.multiply(relax.op.minimum(x, _c(0.0)),
                                                                                   _c(alpha))),
             ("add", ("nn.relu", X), ("multiply", ("minimum", X, 0.0), "$alpha")), _f32(_leaky_relu), "leaky_relu",
             also=(("where", ("less", X, 0.0), ("multiply", "$alpha", X), X),)),
    Function("elu", 5, ("alpha",),
             lambda x, alpha: relax.op.add(relax.op.nn.relu(x), relax.op.multiply(
                 relax.op.subtract(relax.op.exp(relax.op.minimum(x, _c(0.0))), _c(1.0)), _c(alpha))),
             ("add", ("nn.relu", X), ("multiply", ("subtract", ("exp", ("minimum", X, 0.0)), 1.0), "$alpha")),
             _f32(_elu), "elu",
             also=(("where", ("less", X, 0.0), ("multiply", "$alpha", ("subtract", ("exp", X), 1.0)), X),)),
    Function("exp", 6, (), lambda x: relax.op.exp(x), ("exp", X), _f32(np.exp)),
    Function("rsqrt", 7, (), lambda x: relax.op.rsqrt(x), ("rsqrt", X), _f32(_rsqrt), "rsqrt"),
    Function("sqrt", 8, (), lambda x: relax.op.sqrt(x), ("sqrt", X), _f32(np.sqrt)),
    Function("reciprocal", 9, (), lambda x: relax.op.divide(_c(1.0), x), ("divide", 1.0, X), _f32(_reciprocal)),
    Function("log", 10, (), lambda x: relax.op.log(x), ("log", X), _f32(np.log)),
)}


def build(name: str, x, **params):
    """The canonical float Relax expression of function ``name`` applied to ``x``."""
    f = FUNCTIONS[name]
    return f.build(x, **{k: float(params[k]) for k in f.params})
