"""PReLU (TFLite PRELU, ONNX PRelu) with a constant alpha: its one Relax form and its int8
arithmetic.

alpha is a tensor (per channel, per element or one value) broadcasting to the input, so PReLU
is not an adaptc.unary function. The importers write it as ``build`` does --
``relu(x) + minimum(x, 0) * alpha``, alpha reshaped to the input's rank (ConvertLayout then
carries it to NHWC with the rest) -- and the passes find it again by ``adaptc.graph.match_prelu``: FuseFloatOps
makes ``adaptc.prelu_f32`` of it, LegalizeQDQ ``adaptc.qprelu`` of
``quantize(build(dequantize(x), dequantize(alpha)))``.

The int8 arithmetic is TFLite Micro's ``reference_ops::BroadcastPrelu4DSlow`` with the
multipliers of ``CalculatePreluParams`` (micro/kernels/prelu_common.cc): x - zp_x >= 0 is
requantized by s_x / s_out ("identity"), a negative one is multiplied by alpha - zp_alpha and
requantized by s_x * s_alpha / s_out ("alpha"), both as doubles of the float32 scales.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from . import fixedpoint as fxp


def full_rank(alpha: np.ndarray, rank: int) -> np.ndarray:
    """alpha with leading axes of 1 up to the input's rank (NumPy's right-aligned broadcast)."""
    alpha = np.asarray(alpha)
    return alpha.reshape((1,) * (rank - alpha.ndim) + alpha.shape)


def build(x, alpha):
    """The canonical float expression: relu(x) + minimum(x, 0) * alpha (x >= 0: x + 0 = x;
    x < 0: 0 + x * alpha -- TFLite's ``x >= 0 ? x : x * alpha`` exactly)."""
    zero = relax.const(np.float32(0.0))
    return relax.op.add(relax.op.nn.relu(x), relax.op.multiply(relax.op.minimum(x, zero), alpha))


def multipliers(in_scale, alpha_scale, out_scale) -> dict:
    """CalculatePreluParams: the identity and alpha multipliers (doubles of the float32 scales)."""
    s_in, s_a, s_out = (float(np.float32(s)) for s in (in_scale, alpha_scale, out_scale))
    m1, sh1 = fxp.quantize_multiplier(s_in / s_out)
    m2, sh2 = fxp.quantize_multiplier(s_in * s_a / s_out)
    return {"identity_multiplier": m1, "identity_shift": sh1, "alpha_multiplier": m2, "alpha_shift": sh2}


def reference_s8(x: np.ndarray, alpha: np.ndarray, a: dict) -> np.ndarray:
    """BroadcastPrelu4DSlow on int8 arrays (NumPy broadcasting), attributes as adaptc.qprelu's."""
    xv = x.astype(np.int64) - int(a["input_zp"])
    av = np.broadcast_to(alpha.astype(np.int64) - int(a["alpha_zp"]), np.broadcast_shapes(x.shape, alpha.shape))
    xv = np.broadcast_to(xv, av.shape)
    pos = fxp.mbqm(xv, a["identity_multiplier"], a["identity_shift"])
    neg = fxp.mbqm(fxp.wrap32(xv * av), a["alpha_multiplier"], a["alpha_shift"])
    return np.clip(np.where(xv >= 0, pos, neg) + int(a["output_zp"]), -128, 127).astype(np.int8)
