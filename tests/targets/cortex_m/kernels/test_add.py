"""ADD (targets/cortex_m/kernels/add.py): add_s8 and add_f32 called directly against the NumPy
references (int8 bit-exact, float32 to ~1e-5) and against TensorFlow Lite Micro; the int8 cases
as one-step programs through every variant of the family (host and emulated cores)."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_programs as programs
import kernel_ref as ref
from kernel_cases import F_ATOL, F_RTOL, add_case, tflite_add_params
from kernel_programs import needs_arm
from tflm_harness import ACT, f32, needs_tflm, tfl, tflm_act_range, tflm_run

pytestmark = harness.needs_cc

FAMILY = "add"

ADD_CASES = [
    dict(id="typical", q=(0.05, 3, 0.04, -7, 0.08, 2)),
    dict(id="equal_scales", q=(0.1, 0, 0.1, 0, 0.2, 0)),
    dict(id="very_different_scales", q=(0.5, -20, 0.003, 10, 0.45, -5)),
    dict(id="zp_extremes", q=(0.02, -128, 0.03, 127, 0.05, -128)),
    dict(id="zp_extremes_out_max", q=(0.02, 127, 0.03, -128, 0.05, 127)),
    dict(id="saturate_small_output_scale", q=(0.1, 0, 0.1, 0, 0.01, 0)),
    dict(id="act_relu", q=(0.05, 3, 0.04, -7, 0.08, -20), act=(-20, 127)),
    dict(id="random_params_positive_output_shift", random=True),
    # a tensor as large as add_s8_dsp's tables (2 KiB): each input rescaled through its table
    dict(id="typical_large", q=(0.05, 3, 0.04, -7, 0.08, 2), size=3000),
    # sums of up to ~2^29 and an output left shift: add_s8_dsp takes the tables (exact for any
    # parameters, where the in-loop rescaling is not) and requantizes by adaptc_rq_exact
    dict(id="sum_bound_not_provable", random=True,
         set=dict(left_shift=20, input1_shift=0, input2_shift=0, input1_multiplier=2**31 - 5, output_shift=2,
                  output_multiplier=2**30 + 12345)),
]

HOST = programs.host_params(FAMILY)
EMULATED = programs.emulated_params()


# ------------------------------------------------------------------------------- reference kernels

@pytest.mark.parametrize("case", ADD_CASES, ids=lambda c: c["id"])
def test_add_s8(lib, case):
    p, x1, x2 = add_case(case)
    size = p["size"]
    got = lib.run("add_s8", p, (size,), input1=x1, input2=x2)
    want = ref.add_s8_ref(x1, x2, **{k: v for k, v in p.items() if k != "size"})
    np.testing.assert_array_equal(got, want)
    if case["id"] == "saturate_small_output_scale":
        assert np.mean((want == -128) | (want == 127)) > 0.5
    if "q" in case:  # and the quantized arithmetic approximates the real sum
        s1, z1, s2, z2, so, zo = case["q"]
        real = (s1 * (x1.astype(float) - z1) + s2 * (x2.astype(float) - z2)) / so + zo
        real = np.clip(np.round(real), p["act_min"], p["act_max"])
        assert np.max(np.abs(real - got)) <= 1


@pytest.mark.parametrize("act", [(-3.4e38, 3.4e38), (0.0, 6.0), (-1.0, 1.0)])
def test_add_f32(lib, act):
    rng = np.random.default_rng(12)
    x1 = (rng.standard_normal(300) * 4).astype(np.float32)
    x2 = (rng.standard_normal(300) * 4).astype(np.float32)
    p = dict(size=300, act_min=act[0], act_max=act[1])
    got = lib.run("add_f32", p, (300,), input1=x1, input2=x2)
    np.testing.assert_allclose(got, ref.add_f32_ref(x1, x2, act_min=act[0], act_max=act[1]),
                               rtol=F_RTOL, atol=F_ATOL)


@needs_tflm
@pytest.mark.parametrize("q,act", [((0.05, 3, 0.04, -7, 0.08, 2), "NONE"),
                                   ((0.5, -128, 0.003, 127, 0.45, -5), "RELU"),
                                   ((0.1, 0, 0.1, 0, 0.02, 127), "RELU6")])
def test_add_matches_tflite_micro(lib, q, act):
    s1, z1, s2, z2, so, zo = q
    s1, s2, so = f32(s1), f32(s2), f32(so)
    rng = np.random.default_rng(z1 + 1000)
    shape = (1, 5, 7, 9)
    x1 = rng.integers(-128, 128, size=shape).astype(np.int8)
    x2 = rng.integers(-128, 128, size=shape).astype(np.int8)
    int8 = tfl.TensorType.INT8
    want = tflm_run(tfl.BuiltinOperator.ADD,
                    [(shape, int8, ([s1], [z1]), False), (shape, int8, ([s2], [z2]), False)],
                    shape, ([so], [zo]), tfl.BuiltinOptions.AddOptions,
                    tfl.AddOptionsT(fusedActivationFunction=ACT[act]), [x1, x2])
    p = tflite_add_params(s1, z1, s2, z2, so, zo)
    p["size"] = x1.size
    p["act_min"], p["act_max"] = tflm_act_range(act, so, zo)
    got = lib.run("add_s8", p, shape, input1=x1, input2=x2)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- every variant

@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case", ADD_CASES, ids=lambda c: f"add-{c['id']}")
def test_host(case, target, variants):
    programs.check_on_host(*programs.compiled(programs.add_program(case), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("case", ADD_CASES, ids=lambda c: f"add-{c['id']}")
def test_emulated(case, target, variants):
    programs.check_emulated(*programs.compiled(programs.add_program(case), target, variants))


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly or selected for some case on the host or
    an emulated core."""
    seen = harness.wrapped_kernels(FAMILY)
    seen |= programs.selected_kernels([programs.add_program(c) for c in ADD_CASES], HOST + EMULATED)
    harness.assert_covered(FAMILY, seen)
