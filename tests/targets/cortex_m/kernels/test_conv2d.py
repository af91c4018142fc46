"""CONV_2D (targets/cortex_m/kernels/conv2d.py): conv2d_s8 and conv2d_f32 called directly against
the NumPy references (int8 bit-exact, float32 to ~1e-5) and against TensorFlow Lite Micro; the
int8 cases as one-step programs through every variant of the family (host and emulated cores),
and with packed low-bit weights."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_programs as programs
import kernel_ref as ref
from adaptc import api
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

FAMILY = "conv2d"

CONV_CASES = [
    dict(id="3x3_valid"),
    dict(id="same_stride2_even_input", H=8, W=8, KH=3, KW=3, sh=2, sw=2, padding="same"),
    dict(id="same_k4_asymmetric", H=5, W=7, KH=4, KW=4, padding="same"),
    dict(id="explicit_pad_top2_left0", H=5, W=6, pad_h=(2, 1), pad_w=(0, 2), sh=2, sw=1),
    dict(id="explicit_pad_left1_only", H=6, W=5, pad_h=(0, 0), pad_w=(1, 0)),
    dict(id="stride2_valid", H=9, W=7, sh=2, sw=2),
    dict(id="dilation2_same", H=9, W=8, dh=2, dw=2, padding="same"),
    dict(id="dilation_2x1_stride_1x2", H=9, W=10, dh=2, dw=1, sh=1, sw=2, padding="same"),
    dict(id="1x1", KH=1, KW=1, C=8, OC=5),
    dict(id="1x1_stride2", KH=1, KW=1, C=4, OC=3, sh=2, sw=2, H=7, W=6),
    dict(id="nonsquare_3x1_stride_2x1", KH=3, KW=1, sh=2, sw=1, padding="same", H=8, W=5),
    dict(id="nonsquare_1x5_same", KH=1, KW=5, padding="same", H=4, W=9),
    dict(id="kernel_covers_input", H=3, W=3, KH=3, KW=3, padding="same", sh=2, sw=2),
    dict(id="batch2", N=2, padding="same", sh=2, sw=2),
    dict(id="bias_null", bias=False, padding="same"),
    dict(id="zp_in_min_out_min", input_offset=128, output_offset=-128, padding="same"),
    dict(id="zp_in_max_out_max", input_offset=-127, output_offset=127, padding="same"),
    dict(id="zp_in_min_out_max", input_offset=128, output_offset=127, sh=2, sw=2, padding="same"),
    dict(id="saturate", mode="saturate", padding="same"),
    dict(id="act_narrow_relu6_like", act=(-128 + 3, 60), padding="same"),
    dict(id="positive_and_negative_shifts", small=True, mode=[3, 1, 0, -1, 2, -4], OC=6, C=2),
    dict(id="deep_channels", C=32, OC=16, H=4, W=4),
    # first convolutions: filter rows of 9 / 5 bytes padded to whole groups by conv2d_s8_dsp
    # (conv2d.row_bytes; the right-edge pixels gathered), 4 bytes as they are, and 9 bytes kept
    # unpadded where the padding would cost many output channels more than gathering
    dict(id="c3_3x3_padded_rows", C=3, OC=8, H=7, W=6, padding="same"),
    dict(id="c1_5x5_padded_rows", C=1, OC=5, KH=5, KW=5, H=9, W=8, padding="same", sh=2, sw=1),
    dict(id="c1_10x4_stride2", C=1, OC=6, KH=10, KW=4, H=13, W=9, padding="same", sh=2, sw=2),
    dict(id="c3_3x3_many_channels", C=3, OC=40, H=5, W=5, padding="same"),
    # an accumulator bound the fast requantization cannot take: the optimized kernels requantize
    # exactly (adaptc_rq_exact) rather than decline the layer
    dict(id="bound_not_provable", C=8, OC=6, padding="same", huge_bias=True),
    # pruned channels (all-zero weights, |bias| ~ 2^30): conv2d_s8_dsp requantizes their constant
    # output by the fast form (conv2d.dsp_requant); an odd last one dead too
    dict(id="dead_channels", C=8, OC=7, padding="same", huge_bias=True, dead=True),
    # every other pair of channels unprovable: conv2d_s8_dsp's rq_mode 3 (fast pairs in assembly,
    # the others exactly in C) on a block of four pixels and a last one of one pixel
    dict(id="bound_not_provable_pairs", C=8, OC=9, H=3, W=3, padding="same", huge_bias=True, huge_pairs=True),
]

TFLM_CASES = [
    dict(id="conv_same_s2_even", H=8, W=8, C=3, OC=4, K=(3, 3), S=(2, 2), padding="SAME",
         zp=(-128, 5), act="NONE"),
    dict(id="conv_valid_dil2_relu6", H=9, W=8, C=2, OC=3, K=(3, 3), D=(2, 2), padding="VALID",
         zp=(127, -128), act="RELU6"),
    dict(id="conv_1x1_batch2_relu", N=2, H=4, W=5, C=6, OC=5, K=(1, 1), padding="SAME",
         zp=(3, -100), act="RELU"),
    dict(id="conv_3x1_s21_same", H=7, W=5, C=2, OC=3, K=(3, 1), S=(2, 1), padding="SAME",
         zp=(-7, -3), act="NONE", bias=False),
    dict(id="conv_k4_same_asym", H=5, W=6, C=2, OC=2, K=(4, 4), padding="SAME", zp=(0, 0),
         act="NONE", out_scale_div=4.0),
]

# the cases that also run with packed low-bit weights
PACKED_CASES = ("3x3_valid", "same_stride2_even_input", "explicit_pad_top2_left0", "dilation2_same", "1x1",
                "batch2", "bias_null", "zp_in_min_out_min", "act_narrow_relu6_like", "deep_channels")
PACKED = programs.packed_params("conv", CONV_CASES, PACKED_CASES)
HOST = programs.host_params(FAMILY)
EMULATED = programs.emulated_params()
PACKED_EMULATED = programs.packed_emulated_params()


# ------------------------------------------------------------------------------- reference kernels

@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c["id"])
def test_conv2d_s8(lib, case):
    params, x, f, bias, mult, shift, mode = conv_case(case, seed=seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("conv2d_s8", params, shape, input=x, filter=f, bias=bias, out_mult=mult,
                  out_shift=shift)
    want = ref.conv2d_s8_ref(x, f, bias, mult, shift, **ref_kwargs(params, CONV_REF_KEYS))
    np.testing.assert_array_equal(got, want)
    if "act" not in case:
        check_saturation(want, mode)


def test_conv_padding_is_input_zero_point(lib):
    """SAME padding: a constant input equal to the zero point gives bias-only
    outputs everywhere, including the border."""
    rng = np.random.default_rng(7)
    zp = -37
    x = np.full((1, 4, 4, 2), zp, dtype=np.int8)
    f = rng.integers(-127, 128, size=(3, 3, 3, 2)).astype(np.int8)
    bias = np.array([100, -200, 0], dtype=np.int32)
    mult = np.full(3, 2**30, dtype=np.int32)
    shift = np.full(3, 1, dtype=np.int32)
    params = dict(batches=1, in_h=4, in_w=4, in_c=2, out_h=4, out_w=4, out_c=3, k_h=3, k_w=3,
                  stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_top=1, pad_left=1,
                  input_offset=-zp, output_offset=0, act_min=-128, act_max=127)
    got = lib.run("conv2d_s8", params, (1, 4, 4, 3), input=x, filter=f, bias=bias,
                  out_mult=mult, out_shift=shift)
    np.testing.assert_array_equal(got, np.broadcast_to(np.array([100, -128, 0], np.int8), got.shape))


@pytest.mark.parametrize("case", F_CONV_CASES, ids=lambda c: c["id"])
def test_conv2d_f32(lib, case):
    params, x, f, bias = f32_conv_case(case, False, seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("conv2d_f32", params, shape, input=x, filter=f, bias=bias)
    want = ref.conv2d_f32_ref(x, f, bias, **ref_kwargs(params, F_CONV_REF_KEYS))
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@needs_tflm
@pytest.mark.parametrize("case", TFLM_CASES, ids=lambda c: c["id"])
def test_conv_matches_tflite_micro(lib, case):
    check_conv_matches_tflite_micro(lib, case)


# ---------------------------------------------------------------------------------- in place

IN_PLACE_CASES = [c for c in CONV_CASES if c.get("N", 1) == 1]


def _in_place_plan(case):
    """(program, input, want, model, whether the case's conv output overlaps its input)."""
    prog, x, want = programs.conv_in_place_program(case)
    m = api.compile_program(prog, "cortex-m4", kernels="dsp")
    assert m.scheduled.steps[1].kernel == "conv2d_s8_dsp"
    offsets, size = m.scheduled.offsets, {t.id: t.nbytes for t in prog.tensors}
    overlap = offsets[2] < offsets[1] + size[1] and offsets[1] < offsets[2] + size[2]
    assert not overlap or offsets[2] <= offsets[1] - m.scheduled.steps[1].call.in_place[0]
    return prog, x, want, m, overlap


@pytest.mark.parametrize("case", IN_PLACE_CASES, ids=lambda c: c["id"])
def test_dsp_in_place(case):
    """conv2d_s8_dsp writing its output over its dying input (the arena planner's chain, at the
    kernel's in_place delta) gives the results of separate buffers, for every geometry."""
    _, x, want, m, _ = _in_place_plan(case)
    np.testing.assert_array_equal(m.run(x), want)


def test_dsp_in_place_overlaps():
    """The planner does take the chain for most of those cases (else the test above proves nothing)."""
    overlaps = [_in_place_plan(c)[4] for c in IN_PLACE_CASES]
    assert sum(overlaps) >= len(overlaps) // 2, overlaps


# ------------------------------------------------------------------------------- every variant

@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"conv-{c['id']}")
def test_host(case, target, variants):
    programs.check_on_host(*programs.compiled(programs.conv_program(case, False), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"conv-{c['id']}")
def test_emulated(case, target, variants):
    programs.check_emulated(*programs.compiled(programs.conv_program(case, False), target, variants))


@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"conv-{c['id']}")
def test_prefix_host(case, target, variants):
    """A width level's step -- its filter a channel prefix of a wider stored one -- gives the
    case's own results (conv2d_s8 reading with the stored stride; conv2d_s8_prefix_dsp)."""
    programs.check_on_host(*programs.compiled(programs.prefix_conv_program(case), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("case", CONV_CASES[::3], ids=lambda c: f"conv-{c['id']}")
def test_prefix_emulated(case, target, variants):
    programs.check_emulated(*programs.compiled(programs.prefix_conv_program(case), target, variants))


@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("packed", PACKED)
def test_packed_host(packed, target, variants):
    programs.check_on_host(*programs.compiled_packed(programs.packed_program(*packed), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", PACKED_EMULATED)
@pytest.mark.parametrize("packed", PACKED)
def test_packed_emulated(packed, target, variants):
    """On the emulated cores as on the host; on the Cortex-M0+ a power-of-two layer with
    power-of-two requantization executes no multiply instruction at all."""
    _, _, fmt, pot = packed
    r = programs.check_emulated(*programs.compiled_packed(programs.packed_program(*packed), target, variants))
    if target == "cortex-m0plus" and fmt.startswith("pot") and pot:
        assert r.steps[0]["classes"]["mac"] == 0, r.steps[0]["classes"]


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly or selected for some case on the host or
    an emulated core."""
    seen = harness.wrapped_kernels(FAMILY)
    seen |= programs.selected_kernels([programs.conv_program(c, False) for c in CONV_CASES], HOST + EMULATED)
    seen |= programs.selected_kernels([programs.prefix_conv_program(c) for c in CONV_CASES], HOST)
    seen |= programs.selected_kernels([programs.packed_program(*p.values[0]) for p in PACKED], HOST)
    harness.assert_covered(FAMILY, seen)
