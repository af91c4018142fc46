"""TRANSPOSE_CONV: transpose_conv_s8 (TFLite's reference_integer_ops::TransposeConv), its DSP
drop-in transpose_conv_s8_dsp and transpose_conv_f32, as one-step programs through the Cortex-M
target -- on the host and on emulated cores -- against numpy references written from TFLite's
scatter (with ONNX's dilation and depthwise grouping)."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
import kernel_programs as programs
import kernel_ref as ref
from adaptc import formats
from adaptc.errors import TargetError
from adaptc.fixedpoint import quantize_multipliers
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS, select
from kernel_programs import needs_arm

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def scatter(x: np.ndarray, w_iohw: np.ndarray, out_hw, strides, pads, dilation, groups) -> np.ndarray:
    """TFLite's TransposeConv scatter: every input element times the filter added into the
    outputs it reaches (out = in * stride - pad + tap * dilation), out-of-bounds ones dropped."""
    n, in_h, in_w, in_c = x.shape
    out_group = w_iohw.shape[1]
    out = np.zeros((n, *out_hw, out_group * groups), np.float64 if x.dtype.kind == "f" else np.int64)
    in_group = in_c // groups
    for ic in range(in_c):
        first = ic // in_group * out_group
        for fy in range(w_iohw.shape[2]):
            for fx in range(w_iohw.shape[3]):
                for iy in range(in_h):
                    oy = iy * strides[0] - pads[0] + fy * dilation[0]
                    if not 0 <= oy < out_hw[0]:
                        continue
                    for ix in range(in_w):
                        ox = ix * strides[1] - pads[1] + fx * dilation[1]
                        if 0 <= ox < out_hw[1]:
                            out[:, oy, ox, first:first + out_group] += x[:, iy, ix, ic:ic + 1] * w_iohw[ic, :, fy, fx]
    return out


# (id, input shape, filter IOHW shape, output hw, strides, pads (top, left), dilation, groups)
CASES = [
    ("s2_same_3x3", (1, 4, 5, 3), (3, 4, 3, 3), (8, 10), (2, 2), (0, 0), (1, 1), 1),
    ("s2_pad1", (1, 4, 4, 2), (2, 3, 3, 3), (7, 7), (2, 2), (1, 1), (1, 1), 1),
    ("s1_dilated", (1, 3, 4, 2), (2, 2, 3, 2), (7, 6), (1, 1), (0, 0), (2, 3), 1),
    ("depthwise_s2", (1, 4, 4, 5), (5, 1, 3, 3), (7, 7), (2, 2), (1, 1), (1, 1), 5),
    ("batch2_s3_cropped", (2, 3, 3, 3), (3, 2, 2, 2), (7, 8), (3, 3), (1, 0), (1, 1), 1),
]


def program(op, attrs, consts, shape, out_shape, dtype) -> Program:
    x = Tensor(0, "x", tuple(shape), dtype, "input")
    y = Tensor(1, "y", tuple(out_shape), dtype, "output")
    step = Step(0, op, "test case", [0], 1, attrs, consts, in_shapes=[tuple(shape)], out_shape=tuple(out_shape))
    return Program("transpose_conv_case", [x, y], [step], [0], [1])


def _attrs(case):
    _, _, _, _, strides, pads, dilation, groups = case
    return {"strides": list(strides), "padding": [*pads, 0, 0], "output_padding": [0, 0],
            "dilation": list(dilation), "groups": groups, "kernel_layout": "IOHW"}


# int8 extremes and exactness: (id of a CASES geometry, new id, options of _s8_case)
S8_EXTRA = [
    ("s2_same_3x3", "zp_max_in_min_out_w_minmax", dict(input_zp=127, output_zp=-128, weights="extreme")),
    ("s2_pad1", "zp_min_in_max_out", dict(input_zp=-128, output_zp=127)),
    ("depthwise_s2", "act_narrow_no_bias", dict(act=(-40, 90), bias=False)),
    ("s2_same_3x3", "mbqm_path_huge_bias", dict(huge_bias=True)),
    ("batch2_s3_cropped", "batch2_act_relu_zp_min", dict(act=(-128, 127), input_zp=-128, output_zp=-128)),
    ("s1_dilated", "mbqm_path_left_shift", dict(left_shift=True)),
    ("s2_pad1", "rq_shifts_0_1_act_narrow", dict(small_shifts=True, act=(-100, 100))),
]
GEOMETRY = {c[0]: c for c in CASES}
S8_CASES = [(c, {}) for c in CASES] + [((new, *GEOMETRY[base][1:]), opts) for base, new, opts in S8_EXTRA]
S8_IDS = [c[0] for c, _ in S8_CASES]


def _s8_case(case, opts=None):
    """(Program, inputs, expected outputs) of an int8 case: random inputs, then every input at
    -128 and at 127. ``opts``: input_zp / output_zp, act (min, max), bias=False, weights="extreme"
    (only -128 and 127), huge_bias (a channel's bias past what adaptc_rq takes: the exact
    general requantization), left_shift (positive shifts with tiny multipliers: likewise),
    small_shifts (shifts 0 and 1 that adaptc_rq_record takes)."""
    opts = opts or {}
    cid, shape, w_shape, out_hw, strides, pads, dilation, groups = case
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    out_c = w_shape[1] * groups
    in_zp, out_zp = opts.get("input_zp", 3), opts.get("output_zp", -5)
    act_min, act_max = opts.get("act", (-128, 127))
    w = rng.integers(-127, 128, size=w_shape, dtype=np.int8)
    if opts.get("weights") == "extreme":
        w = rng.choice(np.array([-128, 127], np.int8), size=w_shape)
    bias = rng.integers(-3000, 3001, size=out_c).astype(np.int32)
    if opts.get("huge_bias"):
        bias[0] = (1 << 30) + 12345
        bias[-1] = -(1 << 30) - 6789
    ws = rng.uniform(0.003, 0.03, size=out_c)
    mult, shift = (np.asarray(v) for v in quantize_multipliers([0.05 * s / 0.2 for s in ws]))
    if opts.get("left_shift"):                         # acc * 2^shift * mult / 2^31 with |acc << shift| >= 2^30
        mult, shift = rng.integers(1 << 5, 1 << 7, size=out_c), rng.integers(15, 17, size=out_c)
    if opts.get("small_shifts"):                       # shifts 0 and 1, still provably exact for adaptc_rq_record
        mult, shift = rng.integers(1 << 20, 1 << 21, size=out_c), rng.integers(0, 2, size=out_c)
    attrs = {**_attrs(case), "input_zp": in_zp, "output_zp": out_zp, "act_min": act_min, "act_max": act_max,
             "multiplier": [int(m) for m in mult], "shift": [int(s) for s in shift]}
    consts = {"weights": w, "bias": bias} if opts.get("bias", True) else {"weights": w}
    prog = program("adaptc.qtranspose_conv2d", attrs, consts, shape, (shape[0], *out_hw, out_c), "int8")
    xs = [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]
    want = []
    for x in xs:
        acc = scatter(x.astype(np.int64) - in_zp, w.astype(np.int64), out_hw, strides, pads, dilation, groups)
        acc = acc + bias if opts.get("bias", True) else acc
        want.append(np.clip(ref.mbqm(ref.wrap32(acc), mult, shift) + out_zp, act_min, act_max).astype(np.int8))
    return prog, xs, want


HOST = programs.host_params("transpose_conv")
EMULATED = programs.emulated_params()


def _compiled(case, opts, target, variants):
    """The case compiled for ``target`` with ``variants``; the kernel that runs is
    transpose_conv_s8_dsp where the list has "dsp" before "ref", else transpose_conv_s8."""
    prog, xs, want = _s8_case(case, opts)
    m = api.compile_program(prog, target, kernels=",".join(variants))
    dsp = "dsp" in variants and ("ref" not in variants or variants.index("dsp") < variants.index("ref"))
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_conv_s8_dsp" if dsp else "transpose_conv_s8"]
    return m, xs, want


@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case,opts", S8_CASES, ids=S8_IDS)
def test_transpose_conv_s8_host(case, opts, target, variants):
    m, xs, want = _compiled(case, opts, target, variants)
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(m.run(x).reshape(w.shape), w)
    assert len(np.unique(want)) > (20 if not opts else 5)                # not saturated to a constant


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target,variants", [*EMULATED, pytest.param("cortex-m4", ("ref",), id="ref")])
@pytest.mark.parametrize("case,opts", S8_CASES, ids=S8_IDS)
def test_transpose_conv_s8_emulated(case, opts, target, variants):
    m, xs, want = _compiled(case, opts, target, variants)
    r = m.run_batch_on_target(np.stack(xs))
    for k, w in enumerate(want):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(w.shape), w)


def test_dsp_requantization_path():
    """The DSP builder requantizes by adaptc_rq_record exactly where requant_is_exact proves it
    (rq_mode 2 where every shift is < 0, 1 otherwise): not a bias past 2^30 or left shifts of
    large sums (0: adaptc_mbqm)."""
    for (case, opts), cid in zip(S8_CASES, S8_IDS):
        prog = _s8_case(case, opts)[0]
        call = select(prog.steps[0], prog, ("dsp",))
        assert call.function == "transpose_conv_s8_dsp"
        want = 0 if opts.get("huge_bias") or opts.get("left_shift") else 1 if opts.get("small_shifts") else 2
        assert call.params["rq_mode"] == want, cid


def test_dsp_declines_packed_weights():
    """Packed low-bit weights go to transpose_conv_s8_packed: the DSP builder declines them."""
    for fmt in programs.PACKED_FORMATS:
        prog = _packed_case(CASES[0], fmt, False)[0]
        assert KERNELS["transpose_conv_s8_dsp"].build(prog.steps[0], prog) is None
        with pytest.raises(TargetError):
            select(prog.steps[0], prog, ("dsp",))
        assert select(prog.steps[0], prog, ("dsp", "ref")).function == "transpose_conv_s8_packed"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_transpose_conv_f32_host(case):
    cid, shape, w_shape, out_hw, strides, pads, dilation, groups = case
    rng = np.random.default_rng(zlib.crc32(cid.encode()) + 1)
    out_c = w_shape[1] * groups
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(out_c).astype(np.float32)
    attrs = {**_attrs(case), "act_min": -1.5, "act_max": float("inf")}
    prog = program("adaptc.transpose_conv2d_f32", attrs, {"weights": w, "bias": bias}, shape,
                   (shape[0], *out_hw, out_c), "float32")
    m = api.compile_program(prog, "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_conv_f32"]
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        want = np.maximum(scatter(x.astype(np.float64), w.astype(np.float64), out_hw, strides, pads, dilation,
                                  groups) + bias, -1.5)
        np.testing.assert_allclose(m.run(x).reshape(want.shape), want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- packed weights

PACKED = [pytest.param((c, fmt, pot), id=f"{c[0]}-{fmt}-{'pot' if pot else 'mbqm'}")
          for c in CASES for fmt in programs.PACKED_FORMATS for pot in (False, True)]


def _packed_case(case, fmt_name: str, pot_requant: bool):
    """A case of _s8_case with weights drawn from format ``fmt_name``'s grid and that format
    marked (LegalizeQDQ's weight_format), with TFLite multipliers or power-of-two requantization
    (every multiplier 2^30, shifts that fit the sums)."""
    cid, shape, w_shape, out_hw, strides, pads, dilation, groups = case
    fmt = formats.get(fmt_name)
    rng = np.random.default_rng(zlib.crc32(f"{cid}{fmt_name}{pot_requant}".encode()))
    out_c = w_shape[1] * groups
    w = rng.choice(fmt.grid, size=w_shape).astype(np.int16 if fmt.max_value > 127 else np.int8)
    bias = rng.integers(-3000, 3001, size=out_c).astype(np.int32)
    per_out = np.abs(w.astype(np.float64)).transpose(1, 0, 2, 3).reshape(w_shape[1], -1).sum(axis=1)
    spread = np.log2(np.tile(per_out, groups) * 128 + 1)          # bits of the largest possible sum
    if pot_requant:
        mult = np.full(out_c, 1 << 30)
        shift = (7 - np.ceil(spread)).astype(np.int64) + rng.integers(-1, 2, size=out_c)
    else:
        ratios = 2.0 ** (8 - np.ceil(spread)) * rng.uniform(0.5, 1.5, size=out_c)
        mult, shift = (np.asarray(v) for v in quantize_multipliers([float(r) for r in ratios]))
    attrs = {**_attrs(case), "input_zp": 3, "output_zp": -5, "act_min": -128, "act_max": 127,
             "multiplier": [int(m) for m in mult], "shift": [int(s) for s in shift], "weight_format": fmt_name}
    prog = program("adaptc.qtranspose_conv2d", attrs, {"weights": w, "bias": bias}, shape,
                   (shape[0], *out_hw, out_c), "int8")
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    acc = scatter(x.astype(np.int64) - 3, w.astype(np.int64), out_hw, strides, pads, dilation, groups) + bias
    want = np.clip(ref.mbqm(ref.wrap32(acc), mult, shift) - 5, -128, 127).astype(np.int8)
    return prog, x, want


@pytest.mark.parametrize("packed", PACKED)
def test_transpose_conv_s8_packed_host(packed):
    prog, x, want = _packed_case(*packed)
    m = api.compile_program(prog, "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_conv_s8_packed"]
    np.testing.assert_array_equal(m.run(x).reshape(want.shape), want)
    assert len(np.unique(want)) > 5                  # not saturated to a constant


@needs_arm
@pytest.mark.parametrize("target,variants", programs.packed_emulated_params())
@pytest.mark.parametrize("packed", PACKED)
def test_transpose_conv_s8_packed_emulated(packed, target, variants):
    """On every emulated core as on the host; on the Cortex-M0+ a power-of-two layer with
    power-of-two requantization executes no multiply instruction at all."""
    _, fmt, pot = packed
    prog, x, want = _packed_case(*packed)
    m = api.compile_program(prog, target, kernels=",".join(variants))
    assert m.scheduled.steps[0].kernel == "transpose_conv_s8_packed"
    r = m.run_on_target(x)
    np.testing.assert_array_equal(r.outputs.reshape(want.shape), want)
    if target == "cortex-m0plus" and fmt.startswith("pot") and pot:
        assert r.steps[0]["classes"]["mac"] == 0, r.steps[0]["classes"]


def test_packed_weights_take_their_bits():
    """The flash array of a packed transposed layer is the format's bitstream: ceil(n * bits / 8)
    bytes plus at most one of padding, against n bytes of int8."""
    for fmt in programs.PACKED_FORMATS:
        prog = _packed_case(CASES[0], fmt, True)[0]
        call = select(prog.steps[0], prog, ("ref",))
        codes, n, bits = dict(call.arrays)["weights"], prog.steps[0].consts["weights"].size, formats.get(fmt).bits
        assert call.function == "transpose_conv_s8_packed"
        assert codes.dtype == np.uint8 and -(-n * bits // 8) <= codes.size <= -(-n * bits // 8) + 1, (fmt, codes.size)
