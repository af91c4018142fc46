"""Weight formats: how a layer's integer weights are coded in flash, in one place.

The quantizer puts each layer's weights on one format's grid; the C target packs them; the
mixed-precision search and the reports count their bytes -- all through this module. A format
is a property of the values: ``format_of`` gives the smallest that represents every one exactly.

    format  values                     bits   codes
    pot2    {0, +-1}  (ternary)         2     sign bit, then m: 0 -> 0, m >= 1 -> 2^(m-1)
    pot3    {0, +-1, +-2, +-4}          3     (m has b - 1 bits: 2^(b-1) - 1 magnitudes)
    pot4    {0, +-2^0 .. +-2^6}         4
    pot5    {0, +-2^0 .. +-2^14}        5
    int4    -8 .. 7                     4     two's complement
    int8    -128 .. 127                 8     two's complement, unpacked (TFLite's layout)

A power-of-two value v = +-2^e multiplies by shifting: pot layers need no multiplier. pot4 and
int4 have the same size; pot4 is chosen when both fit.

Packing: the layer's weights in the kernel's order, ``bits`` each, least significant bit first,
one bitstream per layer: ceil(n * bits / 8) bytes. Formats whose codes straddle a byte (pot3,
pot5) get one more byte, so that a kernel may always read the two bytes a code starts in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Format:
    name: str
    bits: int
    kind: str                 # "pot" | "int"

    @property
    def magnitudes(self) -> int:
        """Non-zero magnitudes of a pot format: 2^0 .. 2^(magnitudes - 1)."""
        return (1 << (self.bits - 1)) - 1

    @property
    def max_value(self) -> int:
        return 1 << (self.magnitudes - 1) if self.kind == "pot" else (1 << (self.bits - 1)) - 1

    @property
    def grid(self) -> np.ndarray:
        """Every value the format represents, ascending."""
        if self.kind == "int":
            return np.arange(-(1 << (self.bits - 1)), 1 << (self.bits - 1), dtype=np.int64)
        mags = 1 << np.arange(self.magnitudes, dtype=np.int64)
        return np.concatenate([-mags[::-1], [0], mags])

    @property
    def packed(self) -> bool:
        return self.bits < 8

    def packed_bytes(self, n: int) -> int:
        """Flash bytes of n weights in this format (see the module docstring)."""
        if not self.packed:
            return n
        return -(-n * self.bits // 8) + (1 if 8 % self.bits else 0)


FORMATS = {f.name: f for f in (Format("pot2", 2, "pot"), Format("pot3", 3, "pot"), Format("pot4", 4, "pot"),
                               Format("int4", 4, "int"), Format("pot5", 5, "pot"), Format("int8", 8, "int"))}


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown weight format {name!r}; known: {', '.join(FORMATS)}") from None


def _is_pot(values: np.ndarray, fmt: Format) -> bool:
    a = np.abs(values[values != 0].astype(np.int64))
    return bool(np.all((a & (a - 1)) == 0) and (a.size == 0 or a.max() <= fmt.max_value))


def fits(values, fmt: Format) -> bool:
    """True when every value is exactly representable in ``fmt``."""
    v = np.asarray(values).astype(np.int64)
    if fmt.kind == "pot":
        return _is_pot(v, fmt)
    return bool(v.size == 0 or (v.min() >= -(1 << (fmt.bits - 1)) and v.max() < (1 << (fmt.bits - 1))))


def format_of(values) -> Format:
    """The smallest format that represents every value (pot before int at equal size)."""
    for fmt in FORMATS.values():
        if fits(values, fmt):
            return fmt
    raise ValueError(f"weights in [{int(np.min(values))}, {int(np.max(values))}] fit no weight format "
                     f"(int8 at most, or powers of two up to 2^14)")


def encode(values, fmt: Format) -> np.ndarray:
    """Codes (uint8, one per value) of values that fit ``fmt``."""
    v = np.asarray(values).astype(np.int64).reshape(-1)
    if not fits(v, fmt):
        raise ValueError(f"values do not fit {fmt.name}")
    if fmt.kind == "int":
        return (v & ((1 << fmt.bits) - 1)).astype(np.uint8)
    a = np.abs(v)
    m = np.where(a == 0, 0, np.floor(np.log2(np.maximum(a, 1))).astype(np.int64) + 1)
    return (((v < 0).astype(np.int64) << (fmt.bits - 1)) | m).astype(np.uint8)


def decode_table(fmt: Format) -> np.ndarray:
    """Value of every code 0 .. 2^bits - 1 (int32); for pot, the code with the sign bit and
    m = 0 decodes to 0."""
    codes = np.arange(1 << fmt.bits, dtype=np.int64)
    if fmt.kind == "int":
        return np.where(codes >= (1 << (fmt.bits - 1)), codes - (1 << fmt.bits), codes).astype(np.int32)
    m = codes & ((1 << (fmt.bits - 1)) - 1)
    mag = np.where(m == 0, 0, 1 << np.maximum(m - 1, 0))
    return np.where(codes >> (fmt.bits - 1), -mag, mag).astype(np.int32)


def pack(values, fmt: Format) -> np.ndarray:
    """The bitstream of ``values`` (flattened, in order) as uint8, ``packed_bytes`` long."""
    v = np.asarray(values).reshape(-1)
    if not fmt.packed:
        return v.astype(np.int8).view(np.uint8).copy()
    codes = encode(v, fmt).astype(np.int64)
    bits = ((codes[:, None] >> np.arange(fmt.bits)) & 1).astype(np.uint8).reshape(-1)
    out = np.zeros(fmt.packed_bytes(len(v)), np.uint8)
    packed = np.packbits(bits, bitorder="little")
    out[:len(packed)] = packed
    return out


def unpack(data: np.ndarray, fmt: Format, n: int) -> np.ndarray:
    """Inverse of ``pack``: n values (int32)."""
    data = np.asarray(data, np.uint8)
    if not fmt.packed:
        return data[:n].view(np.int8).astype(np.int32)
    bits = np.unpackbits(data, bitorder="little")[:n * fmt.bits].reshape(n, fmt.bits).astype(np.int64)
    codes = (bits << np.arange(fmt.bits)).sum(axis=1)
    return decode_table(fmt)[codes]
