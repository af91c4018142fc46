"""Weight layouts and exactness proofs of the optimized int8 kernels.

DSP extension (Cortex-M4/M7/M55; templates/kernels/*_dsp.c over dsp.h, which also builds on a
host without the extension through portable definitions of the instructions): the kernels
requantize with ``adaptc_rq_apply`` (dsp.h), which equals TFLite's MultiplyByQuantizedMultiplier
while ``|s| + 2^(right_shift-1) < 2^31`` for the value ``s`` after the doubling high multiply, in
particular while ``|acc << max(shift, 0)| < 2^30``; ``requant_is_exact`` proves that for every
channel from the weights and the bias, and a builder whose layer fails the proof declines it.

Helium (Cortex-M55; *_mve.c over mve.h): requantization (``adaptc_mve_requant``) is exact for any
accumulator; the kernels sum w * x and fold the input offset into the bias (``folded_bias``).
"""
from __future__ import annotations

import numpy as np

from adaptc import fixedpoint, formats
from adaptc.program import Step

from .common import bias_array, requant_arrays, weight_format

INT32_MAX = (1 << 31) - 1


def acc_bound(weights: np.ndarray, bias, input_offset: int, filter_offset: int = 0) -> np.ndarray:
    """Per output channel, the largest |accumulator| any int8 input can give: sum over the taps of
    |w + filter_offset| * max|x + input_offset| + |bias|. ``weights``: [out][taps]."""
    x_max = max(abs(-128 + input_offset), abs(127 + input_offset))
    w = np.abs(weights.astype(np.int64) + filter_offset)
    bound = w.sum(axis=1) * x_max
    if bias is not None:
        bound = bound + np.abs(np.asarray(bias, np.int64).reshape(-1))
    return bound


def requant_exact_channels(bound: np.ndarray, mult, shift) -> np.ndarray:
    """Per channel: adaptc_rq_apply (dsp.h) equals adaptc_mbqm for every accumulator with |acc| <=
    bound -- 0 <= mult < 2^31 and |acc << max(shift, 0)| < 2^30."""
    mult = np.broadcast_to(np.asarray(mult, np.int64), bound.shape)
    left = np.maximum(np.broadcast_to(np.asarray(shift, np.int64), bound.shape), 0)
    ok = (mult >= 0) & (mult <= INT32_MAX) & (left <= 30)
    return ok & (np.asarray(bound, np.int64) < (1 << 30) >> np.minimum(left, 30))


def requant_is_exact(bound: np.ndarray, mult, shift) -> bool:
    """True when adaptc_rq_apply (dsp.h) equals adaptc_mbqm for every accumulator with
    |acc| <= bound (per channel): requant_exact_channels for every channel."""
    return bool(np.all(requant_exact_channels(bound, mult, shift)))


def constant_channels(rows: np.ndarray, bias, mult, shift, output_offset: int):
    """(bias, mult, shift) as int64 arrays, except that a channel whose weights (``rows``: [out][taps])
    are all zero -- its accumulator is its bias whatever the input, its output a constant c --
    takes bias 4 (c - output_offset), mult 2^30, shift -1: requantized to exactly c by adaptc_mbqm
    (4 v, 2^30, -1) = v for |v| < 2^28, and by the fast forms, where the layer's own bias (a pruned
    channel's is often near 2^30) would defeat the accumulator bound."""
    n = rows.shape[0]
    bias = np.zeros(n, np.int64) if bias is None else np.array(bias, np.int64).reshape(-1)
    mult, shift = np.array(mult, np.int64).reshape(-1), np.array(shift, np.int64).reshape(-1)
    dead = ~np.asarray(rows).any(axis=1)
    if dead.any():
        c = np.clip(fixedpoint.mbqm(bias[dead], mult[dead], shift[dead]) + output_offset, -128, 127)
        bias[dead], mult[dead], shift[dead] = 4 * (c - output_offset), 1 << 30, -1
    return bias, mult, shift


def pack_words(data: np.ndarray) -> np.ndarray:
    """int8 bytes (a multiple of 4) -> int32 words of four, the first byte in the low byte
    (little-endian, as the cores and the host read them)."""
    return np.ascontiguousarray(data, np.int8).view("<i4").astype(np.int32)


def pack_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """[out][depth] int8 -> (weight words as adaptc_rows_x4 reads them, groups): each row
    zero-padded to groups = ceil(depth / 4) words of four bytes, the first in the low byte
    (little-endian, as the cores and the host read them)."""
    out, depth = rows.shape
    groups = -(-depth // 4)
    padded = np.zeros((out, groups * 4), np.int8)
    padded[:, :depth] = rows
    return pack_words(padded.reshape(-1)), groups


def conv_blocks(words: np.ndarray, groups: int, bias, mult, shift, modes: np.ndarray, output_offset: int) -> np.ndarray:
    """conv2d_s8_dsp's channel blocks (templates/kernels/conv2d_s8_dsp.c) of weight words
    [out][groups] (pack_rows), the biases (None: 0) and requantization, by each channel's
    requantization mode (fast_rq_modes): per pair of channels {bias 2k, bias 2k + 1}, the two rows
    interleaved word by word, {m0, k0, m1, k1, rr} -- in a pair of fast channels (mode 2) k =
    2^(r - 1) + output_offset * 2^r and rr = r0 | r1 << 8 | 2 << 16 (r = -shift), otherwise k =
    shift and rr = (the pair's mode: the lower of the two) << 16 --; then an odd last channel as
    {bias, mult, shift, 1 if its mode is 0} and its row."""
    rows = words.reshape(-1, groups).astype(np.int64)
    n = rows.shape[0]
    bias = np.zeros(n, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    mult, shift = np.asarray(mult, np.int64), np.asarray(shift, np.int64)
    r = np.maximum(-shift, 1)
    folded = (1 << (r - 1)) + output_offset * (1 << r)
    out = []
    for c in range(0, n - 1, 2):
        pair = int(min(modes[c], modes[c + 1]))
        if pair == 2:
            rq = [mult[c], folded[c], mult[c + 1], folded[c + 1], r[c] | r[c + 1] << 8 | 2 << 16]
        else:
            rq = [mult[c], shift[c], mult[c + 1], shift[c + 1], pair << 16]
        out += [bias[c:c + 2], rows[c:c + 2].T.reshape(-1), rq]
    if n % 2:
        out += [[bias[-1], mult[-1], shift[-1], int(modes[-1] == 0)], rows[-1]]
    flat = np.concatenate([np.asarray(a, np.int64).reshape(-1) for a in out])
    return ((flat + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


# The requantization a DSP kernel's rq_mode selects, as the report and `adaptc run` name it
RQ_NOTES = {2: "fast requantization", 1: "requantization proven exact (a shift >= 0 or a large output offset)",
            0: "exact 64-bit requantization (the accumulator bound is not provable)"}
MVE_NOTE = "exact vector requantization (any accumulator)"


def fast_rq_modes(proven: np.ndarray, shift, output_offset: int) -> np.ndarray:
    """Per channel, the requantization mode of the DSP kernels (rq_mode): 2 -- the fast form, its
    rounding and output offset folded into one constant -- where it is ``proven``
    (requant_exact_channels), the shift is < 0 and the folded constant 2^(r - 1) + output_offset *
    2^r (r = -shift) lies below 2^30 in magnitude, so that adding it to a value below 2^30 cannot
    overflow; 1 where only the bound is proven; 0 otherwise (adaptc_rq_exact)."""
    shift = np.asarray(shift, np.int64)
    r = np.clip(-shift, 1, 31)
    folded = (1 << (r - 1)) + output_offset * (1 << r)
    fast = proven & (shift < 0) & (shift >= -31) & (np.abs(folded) < 1 << 30)
    return np.where(fast, 2, np.where(proven, 1, 0))


def fast_rq_mode(exact: bool, shift, output_offset: int) -> int:
    """fast_rq_modes for a layer whose bound is proven (``exact``) or not as a whole: the lowest
    of its channels' modes."""
    shift = np.asarray(shift, np.int64).reshape(-1)
    return int(fast_rq_modes(np.full(shift.shape, exact), shift, output_offset).min())


def channel_records(step: Step, n: int, rounding: bool = False) -> np.ndarray:
    """Per output channel {bias, mult, shift} (int32 each; bias 0 when the layer has none) as one
    flat int32 array -- the same bytes the reference kernels' three arrays hold; ``rounding``
    adds a fourth, round = 2^(-shift - 1) for shift < 0 else 0 (dsp.h adaptc_rq_record)."""
    bias = bias_array(step, n, np.int32)[1]
    mult, shift = (a.astype(np.int64) for _, a in requant_arrays(step, n))
    fields = [np.zeros_like(mult) if bias is None else bias.astype(np.int64), mult, shift]
    if rounding:
        fields.append(np.where(shift < 0, np.left_shift(1, np.maximum(-shift - 1, 0)), 0))
    return np.ascontiguousarray(np.stack(fields, axis=1).astype(np.int32).reshape(-1))


def depthwise_quads(taps: np.ndarray) -> np.ndarray:
    """Depthwise filter [taps][C] int8 -> the words depthwise_conv2d_s8_dsp reads: for each group
    of four channels its taps, four channel bytes a word; then the last C % 4 channels as
    [taps][C % 4] bytes, zero-padded to a whole word."""
    n_taps, c = taps.shape
    quads = c // 4
    head = taps[:, :4 * quads].reshape(n_taps, quads, 4).transpose(1, 0, 2).reshape(-1)
    data = np.concatenate([head, taps[:, 4 * quads:].reshape(-1)]).astype(np.int8)
    return pack_words(np.concatenate([data, np.zeros(-len(data) % 4, np.int8)]))


def exact_requant(step: Step, rows: np.ndarray, input_offset: int) -> bool:
    """requant_is_exact for a layer with weight rows [out][taps] and its bias / requantization."""
    n = rows.shape[0]
    bias = bias_array(step, n, np.int32)[1]
    mult, shift = (a for _, a in requant_arrays(step, n))
    return requant_is_exact(acc_bound(rows, bias, input_offset), mult, shift)


def coded_weights(step: Step, rows: np.ndarray) -> tuple[dict, np.ndarray, dict, int] | None:
    """(packed-format params, filter array, shared tables, groups) of a layer's weight rows
    [out][depth]: int8 as words (pack_rows; no params), a packed format of int8-sized values as
    its bitstream (decoded a row at a time through a byte table for 2- and 4-bit codes); None for
    wider values (pot5)."""
    fmt = weight_format(step)
    groups = -(-rows.shape[1] // 4)
    if not fmt.packed:
        return {}, pack_rows(rows.astype(np.int8))[0], {}, groups
    if fmt.max_value > 127:
        return None
    shared = {f"values_{fmt.name}": formats.decode_table(fmt).astype(np.int8)}
    params = {"bits": fmt.bits, "lut": 0, "values": ("shared", f"values_{fmt.name}")}
    if fmt.bits in (2, 4):
        shared[f"lut_{fmt.name}"] = byte_table(fmt)
        params["lut"] = ("shared", f"lut_{fmt.name}")
    return params, formats.pack(rows, fmt), shared, groups


def byte_table(fmt) -> np.ndarray:
    """For every byte of a 2- or 4-bit stream, its codes' int8 values packed little-endian:
    uint16 (two values) or uint32 (four)."""
    per = 8 // fmt.bits
    codes = (np.arange(256)[:, None] >> (np.arange(per) * fmt.bits)) & ((1 << fmt.bits) - 1)
    values = formats.decode_table(fmt)[codes].astype(np.int64) & 0xFF
    word = (values << (8 * np.arange(per))).sum(axis=1)
    return word.astype(np.uint16 if per == 2 else np.uint32)


def folded_bias(step: Step, rows: np.ndarray, input_offset: int) -> np.ndarray:
    """bias + input_offset * (sum of each row of weights [out][taps]), modulo 2^32: the kernels
    sum w * x (the zero point at padded taps) and get the reference's sum of w * (x + offset),
    equal modulo 2^32 and so equal as int32."""
    b = bias_array(step, rows.shape[0], np.int32)[1]
    total = rows.astype(np.int64).sum(axis=1) * input_offset + (0 if b is None else b.astype(np.int64))
    return ((total + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)

