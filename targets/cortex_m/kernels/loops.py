"""Loop counts the kernels' cost features share: the in-bounds taps of a convolution window,
the im2col columns of the DSP / MVE kernels, the row dot products of adaptc_rows_x4, the decoded
codes of packed weights, power-of-two MACs. Each helper mirrors a loop nest of the C in
templates/kernels/ and counts exactly, from the step's shapes and parameters
(targets/cortex_m/costs.py explains how the counts become instructions)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from adaptc.program import Step


def axis_taps(size: int, out: int, k: int, stride: int, dil: int, pad: int) -> np.ndarray:
    """Per output coordinate, how many of the k window taps (dil apart) fall inside [0, size)."""
    origin = np.arange(out) * stride - pad
    pos = origin[:, None] + dil * np.arange(k)[None, :]
    return ((pos >= 0) & (pos < size)).sum(axis=1)


@dataclass
class ConvLoops:
    b: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    s_h: int
    s_w: int
    d_h: int
    d_w: int
    p_t: int
    p_l: int

    @property
    def pixels(self) -> int:
        return self.b * self.out_h * self.out_w

    @functools.cached_property
    def ty(self) -> np.ndarray:          # in-bounds filter rows per output row
        return axis_taps(self.in_h, self.out_h, self.k_h, self.s_h, self.d_h, self.p_t)

    @functools.cached_property
    def tx(self) -> np.ndarray:          # in-bounds filter columns per output column
        return axis_taps(self.in_w, self.out_w, self.k_w, self.s_w, self.d_w, self.p_l)

    @property
    def valid_taps(self) -> int:         # in-bounds (pixel, tap) pairs
        return self.b * int(self.ty.sum()) * int(self.tx.sum())

    def pixel_taps(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output pixel (row-major over batch, y, x): in-bounds rows and columns, each 0
        when the other is (the kernels' taps_y / taps_x of adaptc_tap_first / _end)."""
        ty = np.repeat(np.tile(self.ty, self.b), self.out_w)
        tx = np.tile(self.tx, self.b * self.out_h)
        empty = (ty == 0) | (tx == 0)
        return np.where(empty, 0, ty), np.where(empty, 0, tx)


def conv_loops(step: Step) -> ConvLoops:
    n, in_h, in_w, in_c = step.in_shapes[0]
    _, out_h, out_w, out_c = step.out_shape
    a = step.attrs
    w = step.consts["weights"]
    return ConvLoops(int(n), int(in_h), int(in_w), int(in_c), int(out_h), int(out_w), int(out_c), int(w.shape[0]),
                 int(w.shape[1]), int(a["strides"][0]), int(a["strides"][1]), int(a["dilation"][0]),
                 int(a["dilation"][1]), int(a["padding"][0]), int(a["padding"][1]))


def pool_loops(step: Step) -> ConvLoops:
    n, in_h, in_w, c = step.in_shapes[0]
    _, out_h, out_w, _ = step.out_shape
    a = step.attrs
    return ConvLoops(int(n), int(in_h), int(in_w), int(c), int(out_h), int(out_w), int(c), int(a["pool_size"][0]),
                 int(a["pool_size"][1]), int(a["strides"][0]), int(a["strides"][1]), 1, 1, int(a["padding"][0]),
                 int(a["padding"][1]))


def shifts(step: Step, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(step.attrs["shift"], np.int64).reshape(-1), (n,))


def clamps(step: Step) -> bool:
    """An int8 activation range narrower than [-128, 127]: the optimized kernels clamp again."""
    return int(step.attrs["act_min"]) > -128 or int(step.attrs["act_max"]) < 127


def straddles(n_codes: int, bits: int, start: int = 0) -> int:
    """Codes of a bitstream (from bit ``start``) that straddle a byte boundary."""
    if 8 % bits == 0 or n_codes == 0:
        return 0
    pos = (start + np.arange(n_codes, dtype=np.int64) * bits) % 8
    return int((pos + bits > 8).sum())


def unpack_rows(rows: int, depth: int, fmt) -> dict[str, float]:
    """Loop counts of adaptc_unpack_row (dsp.h) over ``rows`` rows of ``depth`` codes read in
    sequence from bit 0: byte-table items (2- and 4-bit codes from a byte boundary), codes
    decoded one at a time (and the buffer refills among them), zero-padding bytes."""
    lut = fmt.bits in (2, 4)
    per = 8 // fmt.bits if lut else 0
    starts = (np.arange(rows, dtype=np.int64) * depth * fmt.bits) % 8
    aligned = int((starts == 0).sum()) if lut else 0
    table = aligned * (depth // per) if lut else 0
    codes = rows * depth - table * per
    return {"unpack_rows": rows, "unpack_table": table, "unpack_codes": codes,
            "unpack_refills": codes * fmt.bits / 8, "unpack_pad": rows * (-depth % 4)}


def columns(g: ConvLoops) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(blocks, iy0, ix0, pixel) of the im2col columns of the DSP / MVE kernels: four per
    block of four output pixels, the spare columns of a last, partial block repeating its last
    pixel; each column's input origin."""
    blocks = -(-g.pixels // 4)
    q = np.minimum(np.arange(4 * blocks), g.pixels - 1)
    oy = (q // g.out_w) % g.out_h
    ox = q % g.out_w
    return blocks, oy * g.s_h - g.p_t, ox * g.s_w - g.p_l, q


def inside(origin: np.ndarray, k: int, dil: int, size: int) -> np.ndarray:
    """[columns, k]: tap t of each column's window lies inside [0, size)."""
    pos = origin[:, None] + dil * np.arange(k)[None, :]
    return (pos >= 0) & (pos < size)


def in_place_delta(g: ConvLoops, block: int = 4) -> int:
    """Bytes the output of a convolution computed ``block`` pixels at a time -- the block's
    inputs all read before any of its outputs is written (adaptc_im2col_x4, then the rows) --
    may start before its input, so that no output overwrites an input byte a later block reads:
    the largest, over the blocks, of (the end of the block's outputs) - (the first input byte
    any later pixel reads), and at least 0 (starting later never makes the two smaller). Pixels
    are in raster order over the batch; an output pixel reads its in-bounds taps, the first of
    them in memory order the smallest (row, column)."""
    oy, ox = np.divmod(np.arange(g.out_h * g.out_w), g.out_w)
    rows = inside(oy * g.s_h - g.p_t, g.k_h, g.d_h, g.in_h)
    cols = inside(ox * g.s_w - g.p_l, g.k_w, g.d_w, g.in_w)
    reads = rows.any(axis=1) & cols.any(axis=1)
    first_y = oy * g.s_h - g.p_t + g.d_h * rows.argmax(axis=1)
    first_x = ox * g.s_w - g.p_l + g.d_w * cols.argmax(axis=1)
    image = np.where(reads, first_y * g.in_w + first_x, np.iinfo(np.int64).max // 4)
    first_read = (np.arange(g.b)[:, None] * g.in_h * g.in_w + image[None, :]).reshape(-1)
    later = np.minimum.accumulate(first_read[::-1])[::-1]             # the first byte read from pixel q on
    ends = np.arange(block, g.pixels, block)
    return int(max(0, np.max(ends * g.out_c - later[ends] * g.in_c, initial=0)))


def pointwise(g: ConvLoops) -> bool:
    """1x1, stride 1, no padding, in_c a multiple of 4: conv2d_s8_dsp's adaptc_im2col_1x1."""
    return (g.k_h == g.k_w == 1 and g.s_h == g.s_w == 1 and g.p_t == g.p_l == 0 and g.in_h == g.out_h
            and g.in_w == g.out_w and g.in_c % 4 == 0)


def im2col_dsp(g: ConvLoops, row_bytes: int, one_by_one: bool = False) -> dict[str, float]:
    """Loop counts of adaptc_im2col_x4 (dsp.h) over all columns, filter rows of ``row_bytes``
    (k_w * in_c, or padded to whole groups) -- or, ``one_by_one`` (conv2d_s8_dsp) for a
    pointwise convolution, of adaptc_im2col_1x1 (path P) --: path F (the whole field inside: adaptc_col_rows),
    A (whole filter rows converted straight from the input, padded rows cleared), B (in_c a
    multiple of 4: tap by tap), C (gathered as bytes, then converted); groups of four values
    converted or cleared."""
    blocks, iy0, ix0, _ = columns(g)
    if one_by_one and pointwise(g):                    # adaptc_im2col_1x1: four columns a block
        per = 4 if g.in_c % 16 == 0 else 2 if g.in_c % 8 == 0 else 1
        return {"blocks": blocks, "cols_p": 4 * blocks, "groups_p": 4 * blocks * (g.in_c // 4),
                "iters_p": 4 * blocks * (g.in_c // 4 // per)}
    vy = inside(iy0, g.k_h, g.d_h, g.in_h).sum(axis=1)
    vxm = inside(ix0, g.k_w, g.d_w, g.in_w)
    vx = vxm.sum(axis=1)
    whole_rows = g.d_w == 1 and row_bytes % 4 == 0
    rows_inside = whole_rows & (ix0 >= 0) & (ix0 * g.in_c + row_bytes <= g.in_w * g.in_c)
    f = rows_inside & (vy == g.k_h)
    a = rows_inside & ~f
    b = ~rows_inside & (g.in_c % 4 == 0)
    c = ~rows_inside & ~b
    row_groups = row_bytes // 4
    depth = g.k_h * row_bytes
    nf, na, nb, nc = int(f.sum()), int(a.sum()), int(b.sum()), int(c.sum())
    conv_a = int(vy[a].sum()) * row_groups
    conv_b = int((vy[b] * vx[b]).sum()) * (g.in_c // 4)
    clear_a = (na * g.k_h - int(vy[a].sum())) * row_groups
    clear_b = (nb * g.k_h - int(vy[b].sum())) * row_groups + int((vy[b] * (g.k_w - vx[b])).sum()) * (g.in_c // 4)
    per = 4 if row_groups % 4 == 0 else 2 if row_groups % 2 == 0 else 1   # adaptc_col_rows: groups an iteration
    return {"blocks": blocks, "cols_f": nf, "rows_f": nf * g.k_h, "groups_f": nf * g.k_h * row_groups,
            "iters_f": nf * g.k_h * (row_groups // per),
            "cols_a": na, "rows_a": na * g.k_h, "cols_b": nb, "rows_b": nb * g.k_h,
            "taps_b": int(vy[b].sum()) * g.k_w, "cols_c": nc, "taps_c": nc * g.k_h * g.k_w, "bytes_c": nc * depth,
            "convert_groups": conv_a + conv_b + nc * (depth // 4), "convert_tails": nc * (depth % 4 > 0),
            "clear_groups": clear_a + clear_b}


def rows_x4(step: Step, g: ConvLoops, blocks: int, groups: int, mode: int, paired: bool,
            modes: np.ndarray | None = None) -> dict[str, float]:
    """The rows of the DSP convolutions, per block of four columns. With ``paired`` rows
    (conv2d_s8_dsp's adaptc_conv_rows; ``mode`` its rq_mode, ``modes`` each channel's), each pair
    of output channels twice through adaptc_conv_pair -- columns 0, 1 and 2, 3 (a last block of
    1-2 pixels: 0, 1 only): the bias, groups % 4 first (the "rest": skipped by a fast pair of a
    layer in mode 2 for groups a multiple of 4), four groups an iteration, four requantizations
    (a fast pair's in its assembly, the others' in C, a function call each) --, in mode 3 a check
    of each pair's mode; an odd last channel through adaptc_row_x4. Without (a packed layer's
    adaptc_rows_x4_packed; ``mode`` 0: exact, 1: proven) every channel through adaptc_row_x4: the
    assembly with its requantization for shift < 0 of a layer whose bound is proven, otherwise
    adaptc_dot_x4 and the requantization in C. Then the clamp pass when the activation range is
    narrower than int8; the partial last block's copy."""
    sh = shifts(step, g.out_c)
    n_pairs = g.out_c // 2 if paired else 0
    pairs = np.minimum(modes[0:2 * n_pairs:2], modes[1:2 * n_pairs:2]) if paired else np.zeros(0, int)
    single = np.arange(g.out_c) >= 2 * n_pairs
    exact = (modes[-1] == 0) if paired and g.out_c % 2 else mode == 0
    neg = 0 if exact else int((sh[single] < 0).sum())
    pos = int(single.sum()) - neg
    tail = g.pixels % 4
    short = int(0 < tail <= 2)                          # a last block of 1-2 pixels: columns 0, 1 only
    halves = 2 * blocks - short
    fast, in_c = int((pairs == 2).sum()), int((pairs < 2).sum())
    rest_fast = short if mode == 2 and groups % 4 == 0 else halves   # fast halves through the prologue
    return {"rows_asm": blocks * neg, "groups_asm": blocks * neg * groups, "pairs_asm": blocks * neg * (groups // 2),
            "rows_c": blocks * pos * (not exact), "rows_exact": blocks * pos * exact,
            "groups_c": blocks * pos * groups, "pairs_c": blocks * pos * (groups // 2),
            "row_pairs": blocks * n_pairs, "pair_groups": halves * n_pairs * groups,
            "pair_iters": halves * n_pairs * (groups // 4), "pair_rest": fast * rest_fast + in_c * halves,
            "pair_checks": blocks * n_pairs * (mode == 3), "pair_calls": halves * in_c,
            "pair_rq_fast": halves * 4 * fast, "pair_rq_apply": halves * 4 * int((pairs == 1).sum()),
            "pair_rq_exact": halves * 4 * int((pairs == 0).sum()),
            "clamp": blocks * 4 * g.out_c * clamps(step), "tail": int(tail > 0), "tail_bytes": tail * g.out_c}


def pot_macs(step: Step, g: ConvLoops | None, batches: int = 1) -> tuple[float, float]:
    """(zero, non-zero) power-of-two weight MACs the packed kernels execute: adaptc_pot_mac
    branches on the weight's sign and tests for 0. Conv: each weight tap (ky, kx) once per
    pixel where it is in bounds."""
    w = np.asarray(step.consts["weights"])
    zero = w == 0
    if g is None:                                    # dense [IN, OUT]
        return float(batches * zero.sum()), float(batches * (~zero).sum())
    in_y = inside(np.arange(g.out_h) * g.s_h - g.p_t, g.k_h, g.d_h, g.in_h).sum(axis=0)   # per ky: rows in bounds
    in_x = inside(np.arange(g.out_w) * g.s_w - g.p_l, g.k_w, g.d_w, g.in_w).sum(axis=0)
    uses = g.b * in_y[:, None] * in_x[None, :]                                              # [k_h, k_w]
    zero_uses = float((zero.sum(axis=(2, 3)) * uses).sum())                                 # HWIO
    return zero_uses, float(uses.sum() * g.in_c * g.out_c - zero_uses)


def dense_dims(step: Step) -> tuple[int, int, int]:
    """(batches, in_features, out_features)."""
    return int(np.prod(step.in_shapes[0][:-1])), int(step.in_shapes[0][-1]), int(step.out_shape[-1])


def fc_columns(step: Step, b: int, i: int, o: int) -> dict[str, float]:
    """The DSP fully connected kernels' per-batch input conversion and per-output requantization
    (adaptc_rq: the cheaper form for shift < 0)."""
    neg = int((shifts(step, o) < 0).sum())
    return {"call": 1, "batches": b, "convert_groups": b * (i // 4), "convert_tails": b * (i % 4 > 0),
            "outputs_neg": b * neg, "outputs_pos": b * (o - neg), "groups": b * o * (-(-i // 4))}


def dims4(shape) -> list[int]:
    return [1] * (4 - len(shape)) + [int(d) for d in shape]

