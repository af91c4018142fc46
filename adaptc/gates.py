"""Gate criteria: how confident an exit head is, in float and in integer arithmetic.

A gate after exit i lets the sample leave when ``confidence(head_i) >= threshold_i`` (or when
the utilization level allows no deeper exit). Three criteria (``CRITERIA``):

* ``"max_prob"``  -- the largest softmax probability, in [1/C, 1];
* ``"margin"``    -- top-1 minus top-2 logit, >= 0;
* ``"entropy"``   -- the negative entropy of the softmax, sum p ln p, in [-ln C, 0].

Float models compute them in float32 (``confidence_float``). Int8 heads compute them in integer
arithmetic only -- what a Cortex-M0+ without FPU runs, exactly the same in the Relax composite
``adaptc.qgate``, the C kernel and :func:`confidence_int` here. With the head's logits ``l``
(int8, scale ``s``) and ``d_j = max(l) - l_j`` in 0..255:

* max_prob: ``e_j = EXP[d_j] = round(2^15 exp(-s d_j))``, ``Z = sum e_j``; confidence
  ``floor(2^30 / Z)`` -- the probability in Q15 (``/ 32768``);
* margin: ``l_top1 - l_top2`` in logit steps (``* s``);
* entropy: with ``W = sum e_j d_j``, ``-H = -s W / Z - ln(Z / 2^15)``: the first term as
  ``(floor(2^12 W / Z) * S) >> 16`` (``S = round(2^16 s)``), the logarithm as ``k LN2 +
  LN[(m >> 7) - 256]`` for ``Z = m 2^k``, ``m`` in [2^15, 2^16) (``LN[i] = round(2^12
  ln((256 + i + 0.5) / 256))``, ``LN2 = round(2^12 ln 2)``); confidence: negative entropy in
  Q12 (``/ 4096``), 64-bit intermediates.

``int_threshold`` turns a threshold in real units into the integer one the gate compares with:
the smallest integer confidence whose real value is >= the threshold.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InputError

CRITERIA = ("max_prob", "margin", "entropy")
UNIT = {"max_prob": 1 / 32768, "entropy": 1 / 4096}     # real value of one integer step (margin: s)


def check(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise InputError(f"unknown gate criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    return criterion


def exp_table(scale: float) -> np.ndarray:
    """EXP[d] = round(2^15 exp(-scale d)), d in 0..255 (int32)."""
    return np.round(32768.0 * np.exp(-float(scale) * np.arange(256, dtype=np.float64))).astype(np.int32)


LN2_Q12 = 2839           # round(4096 ln 2)


def ln_table() -> np.ndarray:
    """LN[i] = round(2^12 ln((256 + i + 0.5) / 256)), i in 0..255 (int32)."""
    return np.round(4096.0 * np.log((256.0 + np.arange(256) + 0.5) / 256.0)).astype(np.int32)


def scale_q16(scale: float) -> int:
    return int(round(float(scale) * 65536.0))


def tables(criterion: str, scale: float) -> list[np.ndarray]:
    """The flash tables of an integer gate, in the composite's parameter order."""
    if criterion == "margin":
        return []
    if criterion == "max_prob":
        return [exp_table(scale)]
    return [exp_table(scale), ln_table()]


def unit(criterion: str, scale: float) -> float:
    """Real value of one step of the integer confidence."""
    return float(scale) if criterion == "margin" else UNIT[criterion]


def ceiling(criterion: str, int8: bool):
    """The most confident value the criterion takes (integer units for int8 heads): max_prob 1,
    entropy 0; None for the unbounded margin."""
    if criterion == "margin":
        return None
    if criterion == "max_prob":
        return 32768 if int8 else 1.0
    return 0 if int8 else 0.0


def int_threshold(criterion: str, threshold: float, scale: float) -> int:
    """The smallest integer confidence whose real value (``* unit``) is >= ``threshold``,
    clamped to int32."""
    t = math.ceil(float(threshold) / unit(criterion, scale) - 1e-9)
    return int(np.clip(t, -2**31, 2**31 - 1))


def confidence_int(logits: np.ndarray, criterion: str, scale: float) -> np.ndarray:
    """Integer confidence of int8 logits [N, C] (int32 [N]) -- the definition the Relax
    composite and the C kernel implement."""
    l = np.asarray(logits).astype(np.int64)
    top = l.max(axis=-1)
    if criterion == "margin":
        masked = l.copy()
        masked[np.arange(len(l)), l.argmax(axis=-1)] = -256
        return (top - masked.max(axis=-1)).astype(np.int32)
    e = exp_table(scale).astype(np.int64)[top[:, None] - l]
    z = e.sum(axis=-1)
    if criterion == "max_prob":
        return ((1 << 30) // z).astype(np.int32)
    w = (e * (top[:, None] - l)).sum(axis=-1)
    term = (((w << 12) // z) * scale_q16(scale)) >> 16
    k = np.array([int(v).bit_length() - 16 for v in z], np.int64)
    m = z >> k
    ln = k * LN2_Q12 + ln_table().astype(np.int64)[(m >> 7) - 256]
    return (-term - ln).astype(np.int32)


def confidence_float(logits: np.ndarray, criterion: str) -> np.ndarray:
    """Float confidence of logits [N, C] (float64 [N])."""
    l = np.asarray(logits, np.float64)
    if criterion == "margin":
        s = np.sort(l, axis=-1)
        return s[:, -1] - s[:, -2]
    z = l - l.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    p = np.exp(logp)
    if criterion == "max_prob":
        return p.max(axis=-1)
    return (p * logp).sum(axis=-1)
