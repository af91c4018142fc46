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
from adaptc.targets.cortex_m.kernels.fully_connected import fc_dsp_loops
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
    # fully_connected_s8_dsp's paths: in_features % 8 (its column two groups at a time) and % 4,
    # quads of outputs and the last out % 4 rows, eight groups an iteration and single ones
    dict(id="in37_out11", B=1, I=37, O=11),
    dict(id="batch3_in203_out13", B=3, I=203, O=13),
    dict(id="rows_only", B=2, I=64, O=3),
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


# ------------------------------------------------------------------------------- exact general path

def exact_program(case: dict):
    """(Program, input, expected output, supported variants) of a layer whose accumulator bound
    simd.requant_is_exact cannot prove (fully_connected_s8_dsp's rq_mode 0: adaptc_rq_exact):
    "big_bias": a few channels with |bias| > 2^30 (one with a positive shift, so that acc << shift
    wraps as in adaptc_mbqm), the others ordinary; "long_rows": 4500 inputs, weights +-127 and
    shift +4 (with a small multiplier), so that the bound passes 2^26."""
    rng = np.random.default_rng(harness.seed(case["id"]))
    B, I, O = case["B"], case["I"], case["O"]
    w = rng.integers(-127, 128, size=(O, I)).astype(np.int8)
    mult, shift = ref.quantize_multiplier(1.0 / (np.sqrt(I) * 80.0 * 73.0 / 40.0))
    mult, shift = np.full(O, mult, np.int32), np.full(O, shift, np.int32)
    bias = rng.integers(-20000, 20001, size=O).astype(np.int32)
    zp_in = int(rng.integers(-20, 21))
    if case["id"] == "big_bias":
        x = rng.integers(-128, 128, size=(B, I)).astype(np.int8)
        bias[[1, 6]] = [1_100_000_000, -1_100_000_000]         # requantized to about +-33
        mult[[1, 6]], shift[[1, 6]] = 1 << 30, -24
        bias[7], mult[7], shift[7] = 1_500_000_000, 1 << 30, 2    # acc << 2 wraps
        mult[8], shift[8] = 1 << 20, 3                            # a small multiplier, left shift
    else:
        w = np.where(w >= 0, 127, -127).astype(np.int8)
        x = rng.integers(-128, 128, size=(B, I)).astype(np.int8)
        mult[:], shift[:] = 1 << 13, 4                            # about acc / 2^14
    p = dict(input_offset=-zp_in, filter_offset=0, output_offset=int(rng.integers(-10, 11)), act_min=-128,
             act_max=127)
    want = ref.fully_connected_s8_ref(x, w, bias, mult, shift, **ref_kwargs(p, FC_REF_KEYS))
    attrs = {"input_zp": zp_in, "output_zp": p["output_offset"], "act_min": -128, "act_max": 127,
             "multiplier": [int(v) for v in mult], "shift": [int(v) for v in shift], "filter_offset": 0}
    prog = programs.one_step_program("adaptc.qdense", attrs, {"weights": np.ascontiguousarray(w.T), "bias": bias},
                                     [x.shape], want.shape)
    return prog, x, want, set(harness.family_variants(FAMILY))


EXACT_CASES = [dict(id="big_bias", B=2, I=297, O=10), dict(id="long_rows", B=2, I=4500, O=6)]


def _assert_exact_path(m, case):
    """The step runs fully_connected_s8_dsp in rq_mode 0, its features say so, and its
    outputs are not all saturated."""
    step = m.scheduled.steps[0]
    B, O = case["B"], case["O"]
    assert step.kernel == "fully_connected_s8_dsp" and step.call.params["rq_mode"] == 0, step.kernel
    f = fc_dsp_loops(step.step)
    assert f["outputs_exact"] == B * O and f["quads_c"] == B * (O // 4) and f["quads_asm"] == 0, f
    assert f["rows"] == B * (O % 4), f


@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case", EXACT_CASES, ids=lambda c: c["id"])
def test_exact_path_host(case, target, variants):
    m, x, want = programs.compiled(exact_program(case), target, variants)
    if m.scheduled.steps[0].variant == "dsp":
        _assert_exact_path(m, case)
    assert np.count_nonzero(np.abs(want.astype(np.int32)) < 120) > want.size // 3    # mostly unsaturated
    programs.check_on_host(m, x, want)


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("case", EXACT_CASES, ids=lambda c: c["id"])
def test_exact_path_emulated(case, target, variants):
    m, x, want = programs.compiled(exact_program(case), target, variants)
    if m.scheduled.steps[0].variant == "dsp":
        _assert_exact_path(m, case)
    programs.check_emulated(m, x, want)


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly or selected for some case on the host or
    an emulated core."""
    seen = harness.wrapped_kernels(FAMILY)
    seen |= programs.selected_kernels([programs.fc_program(c) for c in FC_CASES], HOST + EMULATED)
    seen |= programs.selected_kernels([programs.packed_program(*p.values[0]) for p in PACKED], HOST)
    harness.assert_covered(FAMILY, seen)
