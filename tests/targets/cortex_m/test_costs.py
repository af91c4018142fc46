"""The analytic cycle estimate (adaptc.costs + adaptc.timing) against execution on emulated cores.

The estimate reads only the lowered Program: each step's kernel and shapes give loop counts,
the fitted per-core tables (adaptc/data/cost_tables.json, from synthetic layers only) turn them
into instructions per class, and the per-core timing rules into cycles. The measured figure is
the same timing rules applied to the exact per-step instruction classes of a run on the
emulated core (QEMU). For ResNet-8 int8, KWS int8 and the digits CNN with exits -- none of them
seen by the fit -- on every Cortex-M target and every utilization level, the two must agree
within 10%: with no flash wait states, with the wait states of a typical part at its usual
clock, and on the Cortex-M0+ with the small 32-cycle multiplier.

Also: the timing rules on a hand-made class dict (numbers checked by hand), the loop counts of
a small convolution, that every kernel the compiler can choose has a table entry on every core
that can run it, and that the steps the model treats as inlined (a kernel called from one step)
are those gcc inlined. Needs the Debian packages gcc-arm-none-eabi and qemu-system-arm for the
emulated runs (those tests skip with a reason otherwise).
"""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

import adaptc
import adaptc.data
import paths
from adaptc.errors import TargetError
from adaptc.targets.cortex_m import costs, timing

DATA = paths.DATA
TARGETS = ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55"]
TOLERANCE = 0.10

# Flash wait states of a typical part for each core at its usual clock (datasheets; the
# reference boards of targets/cortex_m.py where they run from flash):
TYPICAL_WAIT_STATES = {
    "cortex-m0plus": 2,      # STM32G0 at 64 MHz: FLASH_ACR.LATENCY = 2
    "cortex-m3": 4,          # SAM3X8E (Arduino Due) at 84 MHz: EEFC FWS = 4
    "cortex-m4": 5,          # STM32F429 at 168-180 MHz, 2.7-3.6 V: 5 wait states
    "cortex-m7": 7,          # STM32F767 at 216 MHz: 7 wait states (behind the ART accelerator / cache)
    "cortex-m55": 0,         # Corstone-300 (AN547): code in the single-cycle ITCM
}

MISSING = [pkg for tool, pkg in (("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm"))
           if shutil.which(tool) is None]
needs_arm = pytest.mark.skipif(bool(MISSING), reason=f"needs the Debian packages {', '.join(MISSING)}")

MODELS = ["resnet8", "kws", "digits"]

# compiled models and emulated runs, shared by the tests of this module: (model, target) ->
# (CompiledModel, [TargetRun per level])
_RUNS: dict = {}


def runs(model: str, target: str):
    key = (model, target)
    if key not in _RUNS:
        if model == "digits":                 # gates that never fire: level L leaves at exit L
            m = adaptc.compile(adaptc.data.path("digits_exits.onnx"), target=target, exits=True,
                               calibration=adaptc.data.digits()[0][:256], thresholds=[1.5, 1.5])
            x = m.quantize_input(adaptc.data.digits()[2][:1])
            rs = [m.run_on_target(x, level=level) for level in range(len(m.levels))]
            assert [r.exit for r in rs] == list(range(len(m.levels)))
        else:
            path = DATA / ("pretrainedResnet_quant.tflite" if model == "resnet8" else "kws_ref_model.tflite")
            m = adaptc.compile(path, target=target)
            x = np.random.default_rng(0).integers(-128, 128, m.input.shape, dtype=np.int8)
            rs = [m.run_on_target(x)]
        _RUNS[key] = (m, rs)
    return _RUNS[key]


def estimate(m, level, wait_states=0, small_multiplier=False) -> float:
    return sum(timing.cycles(c, m.target, wait_states, small_multiplier)
               for c in costs.program_classes(m.scheduled, level))


def settings(target):
    out = [(0, False)]
    if TYPICAL_WAIT_STATES[target]:
        out.append((TYPICAL_WAIT_STATES[target], False))
    if target == "cortex-m0plus":
        out.append((0, True))
    return out


# ------------------------------------------------------------------------ against the emulator


@needs_arm
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", MODELS)
def test_estimate_within_10_percent_of_emulated(model, target):
    """Every level, every setting: |analytic / measured - 1| <= 10%."""
    m, rs = runs(model, target)
    errors = {}
    for level, r in enumerate(rs):
        lv = level if m.program.exits else None
        for ws, small in settings(target):
            measured = timing.measured_cycles(r, ws, small).total
            errors[(level, ws, small)] = estimate(m, lv, ws, small) / measured - 1
    bad = {k: f"{v:+.1%}" for k, v in errors.items() if abs(v) > TOLERANCE}
    assert not bad, f"{model} on {target}: (level, wait states, small multiplier) -> error {bad}"


@needs_arm
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", MODELS)
def test_inlined_steps_are_those_gcc_inlined(model, target):
    """The kernels the cost model treats as inlined (called from one step) are exactly those
    whose function did not run out of line on the emulated core."""
    m, rs = runs(model, target)
    ran = [set(f.split(".")[0] for f in s["functions"]) for s in rs[-1].steps]
    out_of_line = {s.index for s, f in zip(m.scheduled.steps, ran) if s.kernel in f}
    executed = {s["step"] for s in rs[-1].steps if s["instructions"]}
    assert set(costs.inlined_steps(m.scheduled)) == executed - out_of_line


@needs_arm
def test_levels_of_the_digits_model_cost_what_their_steps_cost():
    """Level L runs through exit L: the estimate counts no step past its gate, as the run."""
    m, rs = runs("digits", "cortex-m4")
    for level, r in enumerate(rs):
        pred = costs.program_classes(m.scheduled, level)
        gate = m.program.exits[level].gate
        assert all(sum(p.values()) == 0 for p in pred[gate + 1:])
        assert all(s["instructions"] == 0 for s in r.steps[gate + 1:])
        assert all(sum(p.values()) > 0 for p in pred[:gate + 1])
    costs_per_level = [estimate(m, level) for level in range(len(m.levels))]
    assert costs_per_level == sorted(costs_per_level)


# ------------------------------------------------------------------------------ timing rules


CLASSES = {"load": 10, "store": 5, "mac": 4, "branch_taken": 3, "branch_not_taken": 2, "other": 20}


@pytest.mark.parametrize("core,expected", [
    ("cortex-m0plus", 2 * 10 + 2 * 5 + 1 * 4 + 2 * 3 + 1 * 2 + 20),          # 62
    ("cortex-m3", 2 * 10 + 1 * 5 + 2 * 4 + 3 * 3 + 1 * 2 + 20),              # 64
    ("cortex-m4", 2 * 10 + 1 * 5 + 1 * 4 + 3 * 3 + 1 * 2 + 20),              # 60
    ("cortex-m7", 1 * 10 + 1 * 5 + 1 * 4 + 1 * 3 + 0.5 * 2 + 0.5 * 20),      # 33
    ("cortex-m55", 2 * 10 + 1 * 5 + 2 * 4 + 2 * 3 + 1 * 2 + 20),             # 61
])
def test_timing_rules_by_hand(core, expected):
    assert timing.cycles(CLASSES, core) == expected


def test_wait_states_and_small_multiplier_by_hand():
    # M0+: every 32-bit fetch waits: 44 instructions / 2 + 3 taken branches = 25 fetches
    assert timing.cycles(CLASSES, "cortex-m0plus", wait_states=2) == 62 + 2 * 25
    # M0+ small multiplier: MULS 32 cycles instead of 1
    assert timing.cycles(CLASSES, "cortex-m0plus", small_multiplier=True) == 62 - 4 + 32 * 4
    # M4 behind a prefetch buffer: only the fetch after each taken branch waits
    assert timing.cycles(CLASSES, "cortex-m4", wait_states=5) == 60 + 5 * 3
    assert timing.cycles({"other": 7}, "cortex-m7") == 3.5
    assert timing.cycles({}, "cortex-m4") == 0


def test_timing_rejects_what_it_cannot_time():
    with pytest.raises(TargetError, match="cortex-m85"):
        timing.cycles(CLASSES, "cortex-m85")
    with pytest.raises(TargetError, match="small-multiplier"):
        timing.cycles(CLASSES, "cortex-m4", small_multiplier=True)
    with pytest.raises(TargetError, match="div"):
        timing.cycles({"div": 3}, "cortex-m4")
    with pytest.raises(TargetError, match="wait_states"):
        timing.cycles(CLASSES, "cortex-m4", wait_states=-1)


def test_measured_cycles_per_step_and_total():
    run = SimpleNamespace(target="cortex-m4", steps=[{"classes": CLASSES}, {"classes": {"other": 4}}])
    steps, total = timing.measured_cycles(run, wait_states=1)
    assert steps == [63, 4] and total == 67


# ---------------------------------------------------------------------------- the cost model


def _conv_step(kernel="conv2d_s8"):
    """A conv2d step as scheduled with ``kernel`` (its features read the step only)."""
    from adaptc.program import Step
    from adaptc.schedule import ScheduledStep

    w = np.zeros((3, 3, 2, 5), np.int8)
    step = Step(0, "adaptc.qconv2d", "test", [0], 1,
                {"strides": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1,
                 "kernel_layout": "HWIO", "shift": [-3] * 5, "multiplier": [1 << 30] * 5, "act_min": -128,
                 "act_max": 127, "input_zp": 0, "output_zp": 0}, {"weights": w}, in_shapes=[(1, 4, 4, 2)],
                out_shape=(1, 4, 4, 5))
    return ScheduledStep(step, kernel, "ref", 0)


def test_conv_loop_counts_by_hand():
    """4x4 input, 3x3 filter, SAME: in-bounds taps per row/column 2, 3, 3, 2 -> 10 x 10 = 100
    (pixel, tap) pairs; 5 output channels, 2 input channels."""
    f = costs.step_features(_conv_step())
    assert f == {"call": 1, "rows": 4, "pixels": 16, "outputs": 80, "filter_rows": 240,
                 "filter_cols": 5 * 4 * 3 * 10, "taps": 500, "macs": 1000}
    d = costs.step_features(_conv_step("conv2d_s8_dsp"))
    # four blocks of four pixels; in_c = 2 and k_w * in_c = 6: filter rows padded to 8 bytes
    # (conv2d.row_bytes: 5 channels * 3 rows * 2 bytes <= 8 * 18), so a field is 24 bytes, 6
    # groups; a padded row lies inside its input row only from column 0 (output x = 1): those
    # pixels convert straight from the input, whole (y = 1, 2: path F) or row by row (y = 0, 3:
    # A); the other 12 are gathered (C)
    assert d["blocks"] == 4 and d["cols_f"] == 2 and d["rows_f"] == 6 and d["groups_f"] == 6 * 2
    assert d["cols_a"] == 2 and d["cols_c"] == 12 and d["bytes_c"] == 12 * 24
    # channels 0-3 in two pairs (adaptc_conv_pair twice: six groups, the rest of two first, then
    # one iteration of four; four outputs by the fast form: every shift < 0), channel 4 alone in
    # the assembly of adaptc_row_x4 (six groups: three pairs)
    assert d["row_pairs"] == 4 * 2 and d["pair_groups"] == 4 * 2 * 2 * 6 and d["pair_iters"] == 4 * 2 * 2 * 1
    assert d["pair_rest"] == 4 * 2 * 2 and d["pair_rq_fast"] == 4 * 4 * 4
    assert d["pair_rq_apply"] == 0 and d["pair_rq_exact"] == 0
    assert d["rows_asm"] == 4 and d["groups_asm"] == 4 * 6 and d["pairs_asm"] == 4 * 3
    assert d["rows_c"] == 0 and d["rows_exact"] == 0 and d["tail"] == 0


def test_missing_entry_names_core_and_kernel():
    with pytest.raises(TargetError, match=r"conv2d_s8_mve.*cortex-m0plus"):
        costs.step_classes(_conv_step("conv2d_s8_mve"), "cortex-m0plus")
    with pytest.raises(TargetError, match="conv2d_s9"):
        costs.step_classes(_conv_step("conv2d_s9"), "cortex-m4")


def test_every_kernel_has_features_and_a_table_entry_where_it_can_run():
    from importlib import resources

    from adaptc.targets import get as get_target
    from adaptc.targets.cortex_m.kernels import KERNELS

    stems = {p.name[:-2] for p in (resources.files("adaptc.templates") / "kernels").iterdir()
             if p.name.endswith(".c")}
    assert stems == set(KERNELS), sorted(stems ^ set(KERNELS))          # one record per kernel source
    missing = []
    for target in TARGETS:
        t = get_target(target)
        for k in stems:
            runs_here = not (k.endswith("_mve") and not t.has_mve) and not (k.endswith("_dsp") and not t.has_dsp)
            if runs_here and k not in costs.tables()["cores"][target]:
                missing.append(f"{target}/{k}")
    assert not missing, missing
