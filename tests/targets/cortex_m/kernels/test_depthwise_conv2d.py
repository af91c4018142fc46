"""DEPTHWISE_CONV_2D (targets/cortex_m/kernels/depthwise_conv2d.py): depthwise_conv2d_s8 and
depthwise_conv2d_f32 called directly against the NumPy references (int8 bit-exact, float32 to
~1e-5) and against TensorFlow Lite Micro; the int8 cases as one-step programs through every
variant of the family (host and emulated cores)."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_programs as programs
import kernel_ref as ref
from adaptc import formats
from adaptc.targets.cortex_m.kernels import select
from kernel_cases import (
    CONV_REF_KEYS,
    F_ATOL,
    F_CONV_CASES,
    F_CONV_REF_KEYS,
    F_RTOL,
    check_saturation,
    conv_case,
    f32_conv_case,
    ref_kwargs,
)
from kernel_harness import seed
from kernel_programs import needs_arm
from tflm_harness import check_conv_matches_tflite_micro, needs_tflm

pytestmark = harness.needs_cc

FAMILY = "depthwise_conv2d"

DW_CASES = [
    dict(id="dm1_3x3_valid", dm=1),
    dict(id="dm2_same_stride2_even", dm=2, H=8, W=8, sh=2, sw=2, padding="same"),
    dict(id="dm3_same", dm=3, C=2, padding="same"),
    dict(id="dm1_k4_asymmetric_same", dm=1, H=5, W=7, KH=4, KW=4, padding="same", C=5),
    dict(id="dm2_explicit_pad", dm=2, pad_h=(2, 0), pad_w=(0, 1)),
    dict(id="dm1_dilation2", dm=1, H=9, W=9, dh=2, dw=2, padding="same", C=4),
    dict(id="dm3_dilation2_stride2", dm=3, H=10, W=9, dh=2, dw=2, sh=2, sw=2, padding="same"),
    dict(id="dm1_1x1", dm=1, KH=1, KW=1, C=6),
    dict(id="dm2_nonsquare_5x3", dm=2, KH=5, KW=3, H=7, W=6, padding="same"),
    dict(id="dm1_batch2", dm=1, N=2, padding="same", C=8),
    dict(id="dm2_bias_null", dm=2, bias=False, padding="same"),
    dict(id="dm1_zp_min_out_min", dm=1, input_offset=128, output_offset=-128, padding="same"),
    dict(id="dm3_zp_max_out_max", dm=3, input_offset=-127, output_offset=127, padding="same"),
    dict(id="dm1_saturate", dm=1, mode="saturate", padding="same", C=6),
    dict(id="dm2_act_narrow", dm=2, act=(-100, 20), padding="same"),
    dict(id="dm1_positive_and_negative_shifts", dm=1, small=True, mode=[4, 2, 0, -1, -3], C=5),
    # depthwise_conv2d_s8_dsp: two-pixel blocks (stride_w 1 and 2, odd widths: a last pixel of its
    # own), channels % 4, padding on every side, other windows, the exact general requantization
    dict(id="dm1_s1_odd_width_c8", dm=1, H=5, W=7, C=8, padding="same"),
    dict(id="dm1_s1_even_width_c12", dm=1, H=4, W=6, C=12, padding="same", input_offset=128),
    dict(id="dm1_s2_odd_width_c6", dm=1, H=9, W=9, sh=2, sw=2, C=6, padding="same"),
    dict(id="dm1_s2_even_width_c4", dm=1, H=7, W=8, sh=2, sw=2, C=4, padding="same"),
    dict(id="dm1_pad_every_side_c7", dm=1, H=5, W=6, C=7, pad_h=(2, 1), pad_w=(1, 2)),
    dict(id="dm1_k5_c8", dm=1, H=7, W=7, KH=5, KW=5, C=8, padding="same"),
    dict(id="dm1_k3x1_s2x1_dil2_c8", dm=1, H=8, W=5, KH=3, KW=1, sh=2, dh=2, C=8, padding="same"),
    dict(id="dm1_dil2_3x3_s1_c8", dm=1, H=8, W=9, dh=2, dw=2, C=8, padding="same"),
    dict(id="dm1_rows_dil3_3x3_c4", dm=1, H=9, W=7, dh=3, C=4, padding="same"),
    dict(id="dm1_exact_huge_bias_c8", dm=1, H=5, W=5, C=8, padding="same", huge_bias=True),
    dict(id="dm1_exact_huge_bias_s2_c6", dm=1, H=7, W=7, sh=2, sw=2, C=6, padding="same", huge_bias=True),
    # pruned channels (all-zero taps, |bias| ~ 2^30): their constant outputs by the fast form
    # (simd.constant_channels), the 3x3 assembly and the window assembly
    dict(id="dm1_dead_channels_c8", dm=1, H=5, W=6, C=8, padding="same", huge_bias=True, dead=True),
    dict(id="dm1_dead_channels_k5_c7", dm=1, H=7, W=7, KH=5, KW=5, C=7, padding="same", huge_bias=True, dead=True),
    dict(id="dm1_exact_left_shifts_c4", dm=1, H=4, W=5, C=4, small=True, mode=[3, 1, 0, 2], padding="same"),
    # many channels, few columns: each input column's groups converted in one loop; a last odd pixel
    dict(id="dm1_narrow_many_channels_c64", dm=1, H=3, W=3, C=64, padding="same"),
    dict(id="dm1_narrow_s2_c40", dm=1, H=6, W=5, sh=2, sw=2, C=40, padding="same"),
    # wide rows: the groups in several blocks (the ring's bytes bounded), stride 2 and channels % 4
    dict(id="dm1_blocks_s1_c24", dm=1, H=4, W=45, C=24, padding="same"),
    dict(id="dm1_blocks_s2_c26", dm=1, H=5, W=50, sh=2, sw=2, C=26, padding="same"),
    dict(id="dm1_blocks_k5_exact_c12", dm=1, H=6, W=60, KH=5, KW=5, C=12, padding="same", huge_bias=True),
    # any other window with dil_w 1, stride_w 1 or 2 (adaptc_dw_rowk): two-pixel blocks over a row
    # table, a last odd pixel, the rows of more than 7 taps in chunks, both requantizations
    dict(id="dm1_k5_s1_even_width_c12", dm=1, H=6, W=8, KH=5, KW=5, C=12, padding="same"),
    dict(id="dm1_k5_s2_odd_width_c10", dm=1, H=11, W=13, KH=5, KW=5, sh=2, sw=2, C=10, padding="same"),
    dict(id="dm1_k5_s2_even_width_c8", dm=1, H=8, W=8, KH=5, KW=5, sh=2, sw=2, C=8, padding="same"),
    dict(id="dm1_k5_pad_every_side_c7", dm=1, H=7, W=8, KH=5, KW=5, C=7, pad_h=(3, 1), pad_w=(1, 4)),
    dict(id="dm1_k5_s2_pad_every_side_c9", dm=1, H=9, W=10, KH=5, KW=5, sh=2, sw=2, C=9, pad_h=(1, 3),
         pad_w=(4, 2)),
    dict(id="dm1_k7_s1_c12", dm=1, H=9, W=11, KH=7, KW=7, C=12, padding="same"),
    dict(id="dm1_k7_s2_c5", dm=1, H=12, W=13, KH=7, KW=7, sh=2, sw=2, C=5, padding="same"),
    dict(id="dm1_k3x1_s1_c8", dm=1, H=7, W=6, KH=3, KW=1, C=8, padding="same"),
    dict(id="dm1_k1x3_s2_c6", dm=1, H=5, W=11, KH=1, KW=3, sh=2, sw=2, C=6, padding="same"),
    dict(id="dm1_k1x1_s2_c4", dm=1, H=5, W=8, KH=1, KW=1, sh=2, sw=2, C=4),
    dict(id="dm1_k2x2_s2_c8", dm=1, H=6, W=9, KH=2, KW=2, sh=2, sw=2, C=8, padding="same"),
    dict(id="dm1_k4x2_s1x2_c4", dm=1, H=7, W=8, KH=4, KW=2, sw=2, C=4, padding="same"),
    dict(id="dm1_k2x9_chunks_c8", dm=1, H=4, W=12, KH=2, KW=9, C=8, padding="same"),
    dict(id="dm1_k3x15_s2_chunks_c4", dm=1, H=5, W=20, KH=3, KW=15, sh=2, sw=2, C=4, padding="same"),
    dict(id="dm1_k5_rows_dil2_c8", dm=1, H=11, W=9, KH=5, KW=5, dh=2, C=8, padding="same"),
    dict(id="dm1_k5_one_pixel_c8", dm=1, H=5, W=5, KH=5, KW=5, C=8),
    dict(id="dm1_k5_batch2_act_narrow_c4", dm=1, N=2, H=6, W=7, KH=5, KW=5, C=4, padding="same", act=(-60, 90)),
    dict(id="dm1_k5_zp_min_c8", dm=1, H=6, W=6, KH=5, KW=5, C=8, input_offset=128, output_offset=-128,
         padding="same"),
    dict(id="dm1_k5_saturate_c8", dm=1, H=6, W=7, KH=5, KW=5, C=8, mode="saturate", padding="same"),
    dict(id="dm1_blocks_k5_s2_c20", dm=1, H=6, W=64, KH=5, KW=5, sh=2, sw=2, C=20, padding="same"),
    dict(id="dm1_exact_k5_s2_c9", dm=1, H=9, W=11, KH=5, KW=5, sh=2, sw=2, C=9, padding="same", huge_bias=True),
    dict(id="dm1_exact_k7_s1_odd_c6", dm=1, H=8, W=9, KH=7, KW=7, C=6, padding="same", huge_bias=True),
    dict(id="dm1_exact_k1x3_c8", dm=1, H=4, W=7, KH=1, KW=3, C=8, padding="same", huge_bias=True),
    dict(id="dm1_exact_left_shifts_k5_c4", dm=1, H=6, W=6, KH=5, KW=5, C=4, small=True, mode=[3, 1, 0, 2],
         padding="same"),
    dict(id="dm1_exact_k2x9_s2_c8", dm=1, H=5, W=14, KH=2, KW=9, sh=2, sw=2, C=8, padding="same", huge_bias=True),
    # the C loop: a dilated row, stride_w 3
    dict(id="dm1_k5_dil_w2_c8", dm=1, H=9, W=12, KH=5, KW=5, dw=2, C=8, padding="same"),
    dict(id="dm1_k3_s3_c8", dm=1, H=7, W=10, sh=3, sw=3, C=8, padding="same"),
]

# float32: the conv2d float cases without an explicit out_c, each with depth multipliers 1, 2, 3
F_DW_CASES = [dict(c, dm=dm, id=f"{c['id']}_dm{dm}") for c in F_CONV_CASES for dm in (1, 2, 3) if "OC" not in c]

TFLM_CASES = [
    dict(id="dw_dm1_same_s2", dw=True, dm=1, H=8, W=8, C=4, K=(3, 3), S=(2, 2),
         padding="SAME", zp=(-128, -128), act="NONE"),
    dict(id="dw_dm2_dil2_relu", dw=True, dm=2, H=9, W=9, C=3, K=(3, 3), D=(2, 2),
         padding="SAME", zp=(20, 10), act="RELU"),
    dict(id="dw_dm3_valid_relu6", dw=True, dm=3, H=6, W=7, C=2, K=(2, 3), padding="VALID",
         zp=(127, 0), act="RELU6"),
]

HOST = programs.host_params(FAMILY)
EMULATED = programs.emulated_params()


# ------------------------------------------------------------------------------- reference kernels

@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: c["id"])
def test_depthwise_conv2d_s8(lib, case):
    params, x, f, bias, mult, shift, mode = conv_case(case, depthwise=True, seed=seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("depthwise_conv2d_s8", params, shape, input=x, filter=f, bias=bias,
                  out_mult=mult, out_shift=shift)
    want = ref.depthwise_conv2d_s8_ref(x, f, bias, mult, shift,
                                       depth_multiplier=params["depth_multiplier"],
                                       **ref_kwargs(params, CONV_REF_KEYS))
    np.testing.assert_array_equal(got, want)
    if "act" not in case:
        check_saturation(want, mode)


def test_depthwise_channel_mapping(lib):
    """oc = ic * depth_multiplier + m reads input channel ic: a 1x1 depthwise
    with unit weights and identity requantization copies channels."""
    C, dm = 3, 2
    x = np.arange(-6, 6, dtype=np.int8).reshape(1, 2, 2, C)
    f = np.ones((1, 1, C * dm), dtype=np.int8)
    mult = np.full(C * dm, 2**30, dtype=np.int32)  # 0.5 * 2^1 = 1.0
    shift = np.full(C * dm, 1, dtype=np.int32)
    params = dict(batches=1, in_h=2, in_w=2, in_c=C, out_h=2, out_w=2, out_c=C * dm, k_h=1,
                  k_w=1, stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_top=0, pad_left=0,
                  input_offset=0, output_offset=0, act_min=-128, act_max=127,
                  depth_multiplier=dm)
    got = lib.run("depthwise_conv2d_s8", params, (1, 2, 2, C * dm), input=x, filter=f,
                  bias=None, out_mult=mult, out_shift=shift)
    np.testing.assert_array_equal(got, np.repeat(x, dm, axis=3))


@pytest.mark.parametrize("case", F_DW_CASES, ids=lambda c: c["id"])
def test_depthwise_conv2d_f32(lib, case):
    params, x, f, bias = f32_conv_case(case, True, seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("depthwise_conv2d_f32", params, shape, input=x, filter=f, bias=bias)
    want = ref.depthwise_conv2d_f32_ref(x, f, bias, depth_multiplier=params["depth_multiplier"],
                                        **ref_kwargs(params, F_CONV_REF_KEYS))
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@needs_tflm
@pytest.mark.parametrize("case", TFLM_CASES, ids=lambda c: c["id"])
def test_depthwise_conv2d_matches_tflite_micro(lib, case):
    check_conv_matches_tflite_micro(lib, case)


# ------------------------------------------------------------------------------- every variant

@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: f"dw-{c['id']}")
def test_host(case, target, variants):
    programs.check_on_host(*programs.compiled(programs.conv_program(case, True), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: f"dw-{c['id']}")
def test_emulated(case, target, variants):
    programs.check_emulated(*programs.compiled(programs.conv_program(case, True), target, variants))


# depthwise_conv2d_s8_dsp on the Cortex-M4: a window other than 3x3 (dil_w 1, stride_w 1 or 2) runs
# in assembly too (adaptc_dw_rowk), at the cost of the 3x3 one: per MAC at most 1.15x the 3x3
# window's on the same input and stride, per output for a window of fewer than 9 taps (the C loop
# takes ~2x); with the exact requantization (its outputs requantized in C) 1.3x.
COST_WINDOWS = [(5, 5, False), (7, 7, False), (1, 9, False), (3, 1, False), (1, 3, False), (2, 2, False),
                (5, 5, True)]


def _dsp_instructions_per_mac(kh: int, kw: int, stride: int, exact: bool) -> float:
    case = dict(id=f"cost_{kh}x{kw}_s{stride}_{exact}", dm=1, H=10, W=11, KH=kh, KW=kw, sh=stride, sw=stride, C=12,
                padding="same", **({"huge_bias": True} if exact else {}))
    m, x, want = programs.compiled(programs.conv_program(case, True), "cortex-m4", ("dsp", "ref"))
    r = programs.check_emulated(m, x, want)
    return r.steps[0]["instructions"] / (want.size * kh * kw)


@needs_arm
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kh,kw,exact", COST_WINDOWS, ids=lambda v: str(v))
def test_dsp_windows_cost_like_3x3(kh, kw, exact, stride):
    base = _dsp_instructions_per_mac(3, 3, stride, False)
    got = _dsp_instructions_per_mac(kh, kw, stride, exact)
    bound = (1.3 if exact else 1.15) * base * max(1.0, 9 / (kh * kw))
    assert got <= bound, f"{kh}x{kw} stride {stride}: {got:.2f} instructions a MAC, the 3x3 window {base:.2f}"


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly or selected for some case on the host or
    an emulated core."""
    seen = harness.wrapped_kernels(FAMILY)
    seen |= programs.selected_kernels([programs.conv_program(c, True) for c in DW_CASES], HOST + EMULATED)
    seen |= programs.selected_kernels([packed_program(*p.values[0]) for p in PACKED], HOST)
    harness.assert_covered(FAMILY, seen)


# ------------------------------------------------------------------------------- packed weights

# the cases that also run with packed low-bit weights (depthwise_conv2d_s8_packed): every depth
# multiplier, padding, dilation, stride, batch, no bias, extreme zero points
PACKED_CASES = ("dm1_3x3_valid", "dm2_same_stride2_even", "dm3_same", "dm1_k4_asymmetric_same", "dm2_explicit_pad",
                "dm1_dilation2", "dm3_dilation2_stride2", "dm1_1x1", "dm1_batch2", "dm2_bias_null",
                "dm1_zp_min_out_min", "dm2_act_narrow")
PACKED = [pytest.param((c, fmt, pot), id=f"dw-{c['id']}-{fmt}-{'pot' if pot else 'mbqm'}")
          for c in DW_CASES if c["id"] in PACKED_CASES for fmt in programs.PACKED_FORMATS for pot in (False, True)]
PACKED_EMULATED = programs.packed_emulated_params()


def packed_program(case: dict, fmt_name: str, pot_requant: bool):
    """(Program, input, expected output, supported variants) of a depthwise case whose weights
    are drawn from format ``fmt_name``'s grid, with TFLite-style multipliers or power-of-two
    requantization (every multiplier 2^30, shifts that fit the values)."""
    fmt = formats.get(fmt_name)
    rng = np.random.default_rng(seed(case["id"] + fmt_name + str(pot_requant)))
    p, x, f, bias, mult, shift, _ = conv_case(case, depthwise=True, seed=seed(case["id"]))
    f = rng.choice(fmt.grid, size=f.shape).astype(np.int16 if fmt.max_value > 127 else np.int8)
    if pot_requant:
        mult = np.full_like(mult, 1 << 30)
        spread = np.log2(np.abs(f.astype(np.float64)).reshape(-1, len(mult)).sum(axis=0) * 128 + 1)
        shift = (7 - np.ceil(spread)).astype(np.int32) + rng.integers(-1, 2, size=len(mult))
    want = ref.depthwise_conv2d_s8_ref(x, f, bias, mult, shift, depth_multiplier=p["depth_multiplier"],
                                       **ref_kwargs(p, CONV_REF_KEYS))
    attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
             "act_max": p["act_max"], "multiplier": [int(v) for v in mult], "shift": [int(v) for v in shift],
             "strides": [p["stride_h"], p["stride_w"]], "padding": [p["pad_top"], p["pad_left"], 0, 0],
             "dilation": [p["dil_h"], p["dil_w"]], "groups": p["in_c"], "kernel_layout": "HWOI",
             "weight_format": fmt_name}
    weights = np.ascontiguousarray(f.reshape(p["k_h"], p["k_w"], p["out_c"], 1))
    prog = programs.one_step_program("adaptc.qconv2d", attrs, {"weights": weights, "bias": bias}, [x.shape],
                                     want.shape)
    # the DSP drop-in (depthwise_conv2d_s8_packed_dsp) takes depth multiplier 1 and int8-range formats
    dsp = p["depth_multiplier"] == 1 and fmt.max_value <= 127
    return prog, x, want, {"ref", "dsp"} if dsp else {"ref"}


@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("packed", PACKED)
def test_packed_host(packed, target, variants):
    programs.check_on_host(*programs.compiled_packed(packed_program(*packed), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", PACKED_EMULATED)
@pytest.mark.parametrize("packed", PACKED)
def test_packed_emulated(packed, target, variants):
    """On the emulated cores as on the host; on the Cortex-M0+ a power-of-two layer with
    power-of-two requantization executes no multiply instruction at all."""
    _, fmt, pot = packed
    r = programs.check_emulated(*programs.compiled_packed(packed_program(*packed), target, variants))
    if target == "cortex-m0plus" and fmt.startswith("pot") and pot:
        assert r.steps[0]["classes"]["mac"] == 0, r.steps[0]["classes"]


def test_packed_weights_take_their_bits():
    """The flash array of a packed depthwise layer is the format's bitstream: ceil(n * bits / 8)
    bytes plus at most one of padding, against n bytes of int8."""
    for fmt in programs.PACKED_FORMATS:
        prog = packed_program(DW_CASES[0], fmt, True)[0]
        call = select(prog.steps[0], prog, ("ref",))
        codes, n = dict(call.arrays)["weights"], prog.steps[0].consts["weights"].size
        bits = formats.get(fmt).bits
        assert call.function == "depthwise_conv2d_s8_packed"
        assert codes.dtype == np.uint8 and -(-n * bits // 8) <= codes.size <= -(-n * bits // 8) + 1, (fmt, codes.size)
