"""TRANSPOSE_CONV: transpose_conv_s8 (TFLite's reference_integer_ops::TransposeConv) and
transpose_conv_f32, as one-step programs through the Cortex-M target -- on the host and on an
emulated core -- against numpy references written from TFLite's scatter (with ONNX's dilation
and depthwise grouping)."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
import kernel_programs as programs
import kernel_ref as ref
from adaptc import formats
from adaptc.fixedpoint import quantize_multipliers
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import select
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


def _s8_case(case):
    cid, shape, w_shape, out_hw, strides, pads, dilation, groups = case
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    out_c = w_shape[1] * groups
    w = rng.integers(-127, 128, size=w_shape, dtype=np.int8)
    bias = rng.integers(-3000, 3001, size=out_c).astype(np.int32)
    ws = rng.uniform(0.003, 0.03, size=out_c)
    mult, shift = quantize_multipliers([0.05 * s / 0.2 for s in ws])
    attrs = {**_attrs(case), "input_zp": 3, "output_zp": -5, "act_min": -128, "act_max": 127,
             "multiplier": [int(m) for m in mult], "shift": [int(s) for s in shift]}
    prog = program("adaptc.qtranspose_conv2d", attrs, {"weights": w, "bias": bias}, shape,
                   (shape[0], *out_hw, out_c), "int8")
    xs = [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + [np.full(shape, 127, np.int8)]
    want = []
    for x in xs:
        acc = scatter(x.astype(np.int64) - 3, w.astype(np.int64), out_hw, strides, pads, dilation, groups) + bias
        want.append(np.clip(ref.mbqm(ref.wrap32(acc), mult, shift) - 5, -128, 127).astype(np.int8))
    return prog, xs, want


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_transpose_conv_s8_host(case):
    prog, xs, want = _s8_case(case)
    m = api.compile_program(prog, "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["transpose_conv_s8"]
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(m.run(x).reshape(w.shape), w)
    assert len(np.unique(want)) > 30


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_transpose_conv_s8_on_emulated_m4():
    prog, xs, want = _s8_case(CASES[3])
    m = api.compile_program(prog, "cortex-m4")
    r = m.run_batch_on_target(np.stack(xs))
    for k, w in enumerate(want):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(w.shape), w)


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
