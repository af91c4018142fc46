"""The target registry and protocol: every target answers the same questions, scheduling is a
pure function of the program, and what reads a scheduled program does not change it."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import adaptc
from adaptc import targets
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.errors import InputError, TargetError
from adaptc.targets.base import Target

X, Y, _, _ = digits()


@pytest.fixture(scope="module")
def gated():
    """The digits CNN with three exits, int8, for the Cortex-M4 (the program every target schedules)."""
    return adaptc.compile(data_path("digits_exits.onnx"), exits=True, calibration=X[:128], thresholds=[0.9, 0.9])


def test_registry_names_and_capabilities():
    assert targets.names() == ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55", "llvm", "cuda"]
    assert targets.names(emulated=True) == targets.names()[:5]
    assert targets.names(batched=True) == ["llvm", "cuda"]
    assert targets.names(needs_gpu=True) == ["cuda"]
    assert targets.get("cortex-m55").capabilities.mve and not targets.get("cortex-m4").capabilities.mve
    assert targets.get(targets.DEFAULT).name == "cortex-m4"


def test_unknown_target_names_the_known_ones():
    with pytest.raises(TargetError, match="unknown target 'cortex-m33'; known: cortex-m0plus, .*cuda"):
        targets.get("cortex-m33")
    with pytest.raises(TargetError, match="unknown target"):
        adaptc.compile(data_path("digits_exits.onnx"), target="rocm")


@pytest.mark.parametrize("name", targets.names())
def test_every_target_implements_the_protocol(name, gated):
    t = targets.get(name)
    assert isinstance(t, Target)
    assert t.kernel_variants and t.clock_hz > 0
    assert t.capabilities.cost_unit in ("cycles", "seconds")
    assert (t.board is not None) == t.capabilities.emulated      # Cortex-M boards bound the memory
    before = pickle.dumps(gated.program)
    s = t.schedule(gated.program)
    again = t.schedule(gated.program)
    assert pickle.dumps(gated.program) == before                  # the program is not changed
    assert [(x.kernel, x.variant, x.flash_bytes, x.scratch_offset) for x in s.steps] == \
           [(x.kernel, x.variant, x.flash_bytes, x.scratch_offset) for x in again.steps]
    assert s.offsets == again.offsets and s.arena_bytes == again.arena_bytes > 0
    assert s.target == name and len(s.steps) == len(gated.program.steps)
    # per level: one cost per step; the steps past the level's exit cost nothing, the others something
    for level, e in enumerate(gated.program.exits):
        costs = t.cost(s, level)
        assert len(costs) == len(s.steps)
        assert all(c.cost == 0 for c in costs[e.gate + 1:]) and all(c.cost > 0 for c in costs[:e.gate + 1])
    mem = t.memory(s)
    assert mem.flash_bytes >= mem.weight_bytes >= s.weight_bytes and mem.ram_bytes >= mem.arena_bytes == s.arena_bytes
    # the constants of one step as the schedule counts them (without the tables it shares)
    step = gated.program.steps[0]
    own, shared = t.constants(step, gated.program)
    assert own + sum(shared.values()) == s.steps[0].flash_bytes


def test_rendering_reads_the_schedule_without_changing_it(gated):
    from adaptc.targets.cortex_m.emit import emit_c

    core = targets.get("cortex-m4")
    s = core.schedule(gated.program)
    before = pickle.dumps(s)
    files = emit_c(s, core, gated.options, gated.io_quantization)
    assert pickle.dumps(s) == before
    assert files == gated.files                                   # byte-identical for identical inputs


def test_weights_and_flash_are_known_before_any_code(gated):
    """The schedule holds every figure the report gives: weight bytes per step, arena."""
    for name in ("cortex-m0plus", "cortex-m55"):
        s = targets.get(name).schedule(gated.program)
        m = adaptc.compile(data_path("digits_exits.onnx"), target=name, exits=True, calibration=X[:128],
                           thresholds=[0.9, 0.9])
        assert (s.weight_bytes, s.arena_bytes) == (m.report["weight_bytes"], m.report["arena_bytes"])
        assert [x.flash_bytes for x in s.steps] == [r["weight_bytes"] for r in m.report["layers"]]


def test_kernels_option_belongs_to_targets_with_variants(gated):
    with pytest.raises(TargetError, match="kernels='mve': cortex-m4 runs dsp, ref"):
        targets.get("cortex-m4").schedule(gated.program, "mve")
    with pytest.raises(InputError, match="kernels= chooses Cortex-M kernel variants"):
        targets.get("llvm").schedule(gated.program, "ref")
    with pytest.raises(InputError, match="does not apply to target cortex-m4"):
        adaptc.compile(data_path("digits_exits.onnx"), target="cortex-m4", tune={"records": "r"})


def test_simulate_settings_belong_to_their_target(gated):
    s = adaptc.simulate(gated)
    assert s.settings == {"wait_states": 0, "small_multiplier": False} and s.unit == "cycles"
    g = adaptc.simulate(gated, target="cuda", device="h200")
    assert g.settings == {"device": "h200"} and g.unit == "seconds"
    assert np.isclose(g.levels[0].latency_s, g.levels[0].cycles)
    with pytest.raises(InputError, match="simulate on cortex-m4: .*device"):
        adaptc.simulate(gated, device="h100")
