"""Activations (targets/cortex_m/kernels/activation.py): lut_s8 (any int8 -> int8 function as a
256-entry table) exactly, and clamp_f32, called directly; the int8 table lookup also as one-step
programs through every variant of the family (lut_s8, its DSP drop-in lut_s8_dsp) on the host and
the emulated cores."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_programs as programs
import kernel_ref as ref
from adaptc import api
from adaptc.targets.cortex_m.kernels import KERNELS
from kernel_harness import family_variants, seed
from kernel_programs import needs_arm

pytestmark = harness.needs_cc

FAMILY = "activation"


def test_lut_s8(lib):
    rng = np.random.default_rng(11)
    table = rng.integers(-128, 128, size=256).astype(np.int8)
    x = np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, size=500)]).astype(np.int8)
    got = lib.run("lut_s8", dict(size=x.size, table=table), x.shape, input=x)
    np.testing.assert_array_equal(got, ref.lut_s8_ref(x, table))
    relu6 = np.clip(np.arange(-128, 128), -10, 50).astype(np.int8)  # zp -10, 6.0 -> 50
    got = lib.run("lut_s8", dict(size=x.size, table=relu6), x.shape, input=x)
    np.testing.assert_array_equal(got, np.clip(x, -10, 50))


@pytest.mark.parametrize("act", [(-3.4e38, 3.4e38), (0.0, 6.0), (-1.0, 1.0)])
def test_clamp_f32(lib, act):
    rng = np.random.default_rng(12)
    x1 = (rng.standard_normal(300) * 4).astype(np.float32)
    p = dict(size=300, act_min=act[0], act_max=act[1])
    got = lib.run("clamp_f32", p, (300,), input=x1)
    np.testing.assert_array_equal(got, np.clip(x1, np.float32(act[0]), np.float32(act[1])))


# ------------------------------------------------------------------------------- every variant

# (id, size, table): lut_s8_dsp takes words of four two at a time and the last size % 8 one by one
LUT_CASES = [
    ("every_value_random_table", 256 + 500, "random"),
    ("one", 1, "random"),
    ("seven", 7, "random"),
    ("eight", 8, "identity"),
    ("odd_1003_extremes", 1003, "extremes"),
    ("relu6_zp_minus_10", 300, "relu6"),
]


def lut_program(case):
    """(Program, input, expected output, supported variants): every int8 value once (where the
    size allows), then random values and both extremes, through a table of the case's kind."""
    cid, size, kind = case
    rng = np.random.default_rng(seed(cid))
    values = np.arange(-128, 128)
    table = {"random": rng.integers(-128, 128, size=256), "identity": values,
             "extremes": np.where(values % 2 == 0, -128, 127), "relu6": np.clip(values, -10, 50)}[kind]
    table = table.astype(np.int8)
    x = np.concatenate([rng.permutation(values), rng.integers(-128, 128, size=size)])[:size]
    x[rng.integers(0, size, size=min(size, 4))] = [-128, 127, -128, 127][:min(size, 4)]
    x = x.astype(np.int8).reshape(1, size)
    prog = programs.one_step_program("adaptc.qlut", {}, {"table": table}, [x.shape], x.shape)
    return prog, x, ref.lut_s8_ref(x, table), set(family_variants(FAMILY))


HOST = programs.host_params(FAMILY)
EMULATED = programs.emulated_params()


@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("case", LUT_CASES, ids=lambda c: f"lut-{c[0]}")
def test_host(case, target, variants):
    programs.check_on_host(*programs.compiled(lut_program(case), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("case", LUT_CASES, ids=lambda c: f"lut-{c[0]}")
def test_emulated(case, target, variants):
    programs.check_emulated(*programs.compiled(lut_program(case), target, variants))


def test_lut_dsp_table_is_rotated():
    """lut_s8_dsp's table is indexed by the input byte read as unsigned: entry u is lut_s8's entry
    of the int8 value u (u < 128) or u - 256, i.e. its index + 128."""
    prog, *_ = lut_program(LUT_CASES[0])
    table = prog.steps[0].consts["table"]
    call = KERNELS["lut_s8_dsp"].build(prog.steps[0], prog)
    [(role, rotated)] = call.arrays
    u = np.arange(256)
    np.testing.assert_array_equal(rotated[u], table[(u.astype(np.uint8).view(np.int8).astype(int) + 128)])


def test_lut_dsp_features_by_hand():
    """1003 lookups: 125 iterations of two words, 3 one at a time."""
    prog, *_ = lut_program(LUT_CASES[4])
    assert KERNELS["lut_s8_dsp"].features(prog.steps[0]) == {"call": 1, "octets": 125, "elements": 3}


@needs_arm
def test_lut_s8_dsp_fewer_instructions():
    """On the Cortex-M4 the DSP kernel looks up 8192 values in three quarters of the reference
    kernel's instructions or fewer (measured: 5.0 per element against 3.75)."""
    prog, x, want, _ = lut_program(("m4_8192", 8192, "random"))
    runs = {k: api.compile_program(prog, "cortex-m4", kernels=k).run_on_target(x) for k in ("ref", "dsp,ref")}
    for r in runs.values():
        np.testing.assert_array_equal(r.outputs.reshape(want.shape), want)
    insns = {k: r.steps[0]["instructions"] / x.size for k, r in runs.items()}
    assert insns["dsp,ref"] <= 0.75 * insns["ref"], insns


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly or selected for some case on the host or
    an emulated core."""
    seen = harness.wrapped_kernels(FAMILY)
    seen |= programs.selected_kernels([lut_program(c) for c in LUT_CASES], HOST + EMULATED)
    harness.assert_covered(FAMILY, seen)
