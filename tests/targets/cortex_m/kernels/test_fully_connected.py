"""FULLY_CONNECTED (targets/cortex_m/kernels/fully_connected.py): fully_connected_s8 and
fully_connected_f32 called directly against the NumPy references (int8 bit-exact, float32 to
~1e-5) and against TensorFlow Lite Micro; the int8 cases as one-step programs through every
variant of the family (host and emulated cores), and with packed low-bit weights."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_programs as programs
import kernel_ref as ref
from kernel_cases import F_ATOL, F_RTOL, FC_REF_KEYS, fc_case, ref_kwargs
from kernel_programs import needs_arm
from tflm_harness import ACT, f32, needs_tflm, tfl, tflm_act_range, tflm_run

pytestmark = harness.needs_cc

FAMILY = "fully_connected"

FC_CASES = [
    dict(id="basic", B=1, I=16, O=10),
    dict(id="batch2", B=2, I=32, O=7),
    dict(id="batch3_bias_null", B=3, I=20, O=5, bias=False),
    dict(id="filter_offset", B=2, I=12, O=6, filter_offset=5),
    dict(id="zp_in_min_out_min", B=1, I=64, O=12, input_offset=128, output_offset=-128),
    dict(id="zp_in_max_out_max", B=1, I=64, O=12, input_offset=-127, output_offset=127),
    dict(id="saturate", B=2, I=40, O=9, mode="saturate"),
    dict(id="per_tensor_repeated", B=2, I=24, O=8, per_tensor=True),
    dict(id="positive_shift", B=1, I=2, O=6, small=True, mode=[3, 2, 1, 0, -1, -2]),
    dict(id="act_narrow", B=1, I=30, O=10, act=(-128, 0)),
    dict(id="in_features_1", B=4, I=1, O=3),
]

# the cases that also run with packed low-bit weights
PACKED_CASES = ("basic", "batch3_bias_null", "zp_in_max_out_max", "act_narrow", "in_features_1")
PACKED = programs.packed_params("fc", FC_CASES, PACKED_CASES)
HOST = programs.host_params(FAMILY)
EMULATED = programs.emulated_params()
PACKED_EMULATED = programs.packed_emulated_params()


# ------------------------------------------------------------------------------- reference kernels

@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: c["id"])
def test_fully_connected_s8(lib, case):
    params, x, w, bias, mult, shift = fc_case(case)
    B, O = case["B"], case["O"]
    got = lib.run("fully_connected_s8", params, (B, O), input=x, weights=w, bias=bias,
                  out_mult=mult, out_shift=shift)
    want = ref.fully_connected_s8_ref(x, w, bias, mult, shift, **ref_kwargs(params, FC_REF_KEYS))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("B,I,O,has_bias,act", [(1, 16, 10, True, None), (3, 40, 7, False, None),
                                                (2, 8, 12, True, (0.0, 6.0))])
def test_fully_connected_f32(lib, B, I, O, has_bias, act):
    rng = np.random.default_rng(B * 1000 + I)
    x = rng.uniform(-1, 1, size=(B, I)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(O, I)).astype(np.float32)
    bias = rng.uniform(-1, 1, size=O).astype(np.float32) if has_bias else None
    act_min, act_max = act or (-3.4e38, 3.4e38)
    params = dict(batches=B, in_features=I, out_features=O, act_min=act_min, act_max=act_max)
    got = lib.run("fully_connected_f32", params, (B, O), input=x, weights=w, bias=bias)
    want = ref.fully_connected_f32_ref(x, w, bias, act_min=act_min, act_max=act_max)
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@needs_tflm
@pytest.mark.parametrize("B,I,O,zp_in,zp_out,act,has_bias", [
    (1, 32, 10, -128, 5, "NONE", True), (2, 20, 7, 127, -128, "RELU", True),
    (3, 16, 9, 4, 127, "RELU6", False)])
def test_fully_connected_matches_tflite_micro(lib, B, I, O, zp_in, zp_out, act, has_bias):
    rng = np.random.default_rng(B * 100 + I)
    s_in, s_w = f32(0.05), f32(0.01)
    x = rng.integers(-128, 128, size=(B, I)).astype(np.int8)
    w = rng.integers(-127, 128, size=(O, I)).astype(np.int8)
    bias = rng.integers(-2000, 2001, size=O).astype(np.int32) if has_bias else None
    real = ((x.astype(float) - zp_in) * s_in) @ (w.astype(float) * s_w).T
    s_out = f32(np.max(np.abs(real)) / 110.0)
    int8, int32 = tfl.TensorType.INT8, tfl.TensorType.INT32
    inputs = [((B, I), int8, ([s_in], [zp_in]), False), (w, int8, ([s_w], [0]), True),
              (bias, int32, ([s_in * s_w], [0]), True) if has_bias else None]
    opts = tfl.FullyConnectedOptionsT(fusedActivationFunction=ACT[act])
    want = tflm_run(tfl.BuiltinOperator.FULLY_CONNECTED, inputs, (B, O), ([s_out], [zp_out]),
                    tfl.BuiltinOptions.FullyConnectedOptions, opts, [x])
    m, s = ref.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
    act_min, act_max = tflm_act_range(act, s_out, zp_out)
    params = dict(batches=B, in_features=I, out_features=O, input_offset=-zp_in, filter_offset=0,
                  output_offset=zp_out, act_min=act_min, act_max=act_max)
    got = lib.run("fully_connected_s8", params, (B, O), input=x, weights=w, bias=bias,
                  out_mult=np.full(O, m, np.int32), out_shift=np.full(O, s, np.int32))
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- every variant

@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: f"fc-{c['id']}")
def test_host(case, target, variants):
    programs.check_on_host(*programs.compiled(programs.fc_program(case), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: f"fc-{c['id']}")
def test_emulated(case, target, variants):
    programs.check_emulated(*programs.compiled(programs.fc_program(case), target, variants))


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
    seen |= programs.selected_kernels([programs.fc_program(c) for c in FC_CASES], HOST + EMULATED)
    seen |= programs.selected_kernels([programs.packed_program(*p.values[0]) for p in PACKED], HOST)
    harness.assert_covered(FAMILY, seen)
