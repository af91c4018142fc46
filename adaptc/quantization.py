"""How a float model is quantized: the ``quantize=`` argument of ``adaptc.compile``.

    "int8" / Int8()      TFLite's scheme: min/max activation scales, int8 weights rounded to
                         nearest (QuantizeInt8; bit-exact with TFLite Micro's arithmetic).
    Int4()               4-bit uniform weights (per-channel scale), int8 activations (TFLite
                         min/max scales), error-correcting rounding.
    PoT(bits=4)          power-of-two weights, ``bits`` = 2 (ternary) .. 5 per weight, and
                         power-of-two activation scales: every conv2d / dense layer needs no
                         multiplier; ``layers={i: bits}`` sets single layers (index: the
                         model's conv2d / dense layers in order, as the compile report lists
                         them; bits 2 .. 5, or a format name such as "int8").
    "pot2" .. "pot5", "int4"   the same as strings (the CLI's spelling).

With ``weight_budget=<bytes>`` the bit width of every layer is searched instead (mixed precision,
adaptc.mixed): the quantize argument then only fixes the activation scheme (PoT).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError
from .formats import FORMATS


@dataclass(frozen=True)
class Int8:
    """TFLite's int8 scheme (the default for a float model with calibration data)."""


@dataclass(frozen=True)
class Int4:
    """4-bit uniform weights, int8 activations."""


@dataclass(frozen=True)
class PoT:
    """Power-of-two weights of ``bits`` bits (2..5) and power-of-two activation scales;
    ``layers``: per-layer bit widths (or format names) by layer index."""

    bits: int = 4
    layers: dict = field(default_factory=dict)

    def __post_init__(self):
        for b in [self.bits, *self.layers.values()]:
            if not (isinstance(b, int) and 2 <= b <= 5) and b not in FORMATS:
                raise InputError(f"PoT bits must be 2..5 or a weight format ({', '.join(FORMATS)}); got {b!r}")

    def format(self, layer: int) -> str:
        b = self.layers.get(layer, self.bits)
        return b if isinstance(b, str) else f"pot{b}"


CHOICES = ("int8", "int4", "pot2", "pot3", "pot4", "pot5", "mixed")


def parse(quantize):
    """``quantize`` as given (None, a string of CHOICES, or a config) -> a config or None;
    "mixed" -> PoT() (the budget search picks each layer's width)."""
    if quantize is None or isinstance(quantize, (Int8, Int4, PoT)):
        return quantize
    if isinstance(quantize, str):
        key = quantize.lower()
        if key == "int8":
            return Int8()
        if key == "int4":
            return Int4()
        if key == "mixed":
            return PoT()
        if key.startswith("pot") and key[3:].isdigit():
            return PoT(bits=int(key[3:]))
    raise InputError(f"unknown quantization {quantize!r}: use one of {', '.join(CHOICES)}, adaptc.PoT(bits=...) "
                     "or adaptc.Int4()")


def name(quantize) -> str:
    """A short name for reports: int8, int4, pot4, pot4+layers, mixed."""
    if isinstance(quantize, Int8):
        return "int8"
    if isinstance(quantize, Int4):
        return "int4"
    if isinstance(quantize, PoT):
        return f"pot{quantize.bits}" + ("+layers" if quantize.layers else "")
    return str(quantize)
