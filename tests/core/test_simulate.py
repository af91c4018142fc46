"""adaptc.simulate / adaptc simulate: the interface over the cost model (tests/test_costs.py) and
the size model (tests/test_sizes.py).

* Per level, on the digits model with gates that never fire (level L runs through exit L):
  ``s.levels[L].cycles`` within 10% of the cycles measured on the emulated Cortex-M4 (the same
  timing rules on the executed instruction classes), flash / RAM within 2% of the ELF's.
* With data: the expected cycles are the per-exit costs weighted by where the host build of the
  C lets each input leave.
* A model compiled for one core simulated on another equals the model compiled for that one.
* CLI: --json parses and carries every level and exit; --report writes report.md whose tables
  list every level, exit and step, and PNG plots that decode.
* CUDA roofline: per level, monotone in depth; H200 (more bandwidth) no slower than H100.
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import adaptc
from adaptc.cli import main
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.targets.cortex_m import timing

MODEL = data_path("digits_exits.onnx")
X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = digits()
ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(not ARM, reason="needs the Debian packages gcc-arm-none-eabi, libnewlib-arm-none-eabi "
                                               "and qemu-system-arm")
_CACHE: dict = {}


def model(target="cortex-m4", thresholds=(1.5, 1.5)):
    """int8 digits with exits; max_prob can never reach 1.5: level L always runs through exit L."""
    key = (target, thresholds)
    if key not in _CACHE:
        _CACHE[key] = adaptc.compile(MODEL, target=target, exits=True, calibration=X_TRAIN[:256],
                                     thresholds=list(thresholds))
    return _CACHE[key]


@needs_arm
def test_levels_against_the_emulated_core():
    m = model()
    s = adaptc.simulate(m, clock_hz=120e6)
    assert [lv.level for lv in s.levels] == [0, 1, 2] and s.clock_hz == 120e6
    x = m.quantize_input(X_TEST[:1])
    for lv in s.levels:
        run = m.run_on_target(x, level=lv.level)
        assert run.exit == lv.level
        measured = timing.measured_cycles(run).total
        assert abs(lv.cycles - measured) <= 0.10 * measured, (lv.level, lv.cycles, measured)
        assert lv.latency_s == pytest.approx(lv.cycles / 120e6)
    assert s.levels[0].cycles < s.levels[1].cycles < s.levels[2].cycles
    assert all(lv.cycles_min == s.levels[0].cycles for lv in s.levels)
    elf = m.cross_build().model_sizes()
    assert abs(s.levels[0].flash_bytes - elf.flash) <= 0.02 * elf.flash
    assert s.arena_bytes == m.scheduled.arena_bytes


def test_expected_cycles_follow_the_exits():
    m = model(thresholds=(0.9, 0.9))
    xs = m.quantize_input(X_TEST[:60])
    s = adaptc.simulate(m, data=xs)
    cost = np.array([e.cycles for e in s.exits])
    for lv in s.levels:
        taken = np.array([m.run(x[None], level=lv.level).exit for x in xs])
        assert lv.exit_shares == [float(np.mean(taken == i)) for i in range(3)]
        assert lv.cycles_expected == pytest.approx(cost[taken].mean())
        assert lv.cycles_min * (1 - 1e-9) <= lv.cycles_expected <= lv.cycles * (1 + 1e-9)


def test_other_target_equals_compiling_for_it():
    a = adaptc.simulate(model("cortex-m4"), target="cortex-m0plus")
    b = adaptc.simulate(model("cortex-m0plus"))
    assert [lv.cycles for lv in a.levels] == [lv.cycles for lv in b.levels]
    assert a.flash_bytes == b.flash_bytes and a.target == "cortex-m0plus"
    slow = adaptc.simulate(model("cortex-m0plus"), small_multiplier=True)
    assert all(s.cycles > f.cycles for s, f in zip(slow.levels, b.levels))
    waits = adaptc.simulate(model("cortex-m0plus"), wait_states=2)
    assert all(w.cycles > f.cycles for w, f in zip(waits.levels, b.levels))


def test_cli_json_and_report(tmp_path):
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=X_TRAIN[:256], y=Y_TRAIN[:256])
    data = tmp_path / "test.npz"
    np.savez(data, x=X_TEST[:40], y=Y_TEST[:40])
    res = CliRunner().invoke(main, ["simulate", str(MODEL), "--exits", "--calibration", str(cal), "--target",
                                    "cortex-m7", "--clock", "216e6", "--wait-states", "typical", "--json",
                                    "--data", str(data), "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["target"] == "cortex-m7" and out["settings"]["wait_states"] == 7
    assert [lv["level"] for lv in out["levels"]] == [0, 1, 2] and len(out["exits"]) == 3
    assert all(lv["cycles_expected"] is not None and len(lv["exit_shares"]) == 3 for lv in out["levels"])
    md = (tmp_path / "rep" / "report.md").read_text()
    levels = re.findall(r"^\| (\d) \| [\d,]+ \| [\d,]+ \| [\d,]+ \| [\d.,]+ ms \| [\d,]+ \| ([\d.]+)% \|$", md, re.M)
    assert [int(lv) for lv, _ in levels] == [0, 1, 2]
    assert len(re.findall(r"^\| (\d) \| [\d,]+ \| [\d,]+ \| [\d,]+ \|$", md, re.M)) == 3          # exits
    steps = re.findall(r"^\| (\d+) \| (\w+) \| [\d,]+ \| [\d,]+ \| ([^|]*) \|$", md, re.M)
    assert len(steps) == len(out["steps"])
    import matplotlib.image

    assert "![accuracy against cost](accuracy.png)" in md
    for png in ("levels.png", "accuracy.png", "steps.png", "memory.png"):
        img = matplotlib.image.imread(tmp_path / "rep" / png)
        assert img.ndim == 3 and min(img.shape[:2]) > 200
    res = CliRunner().invoke(main, ["simulate", str(MODEL), "--wait-states", "many"])
    assert res.exit_code != 0 and "a number or 'typical'" in res.output


def test_gpu_roofline():
    m = model(thresholds=(0.9, 0.9))
    h100 = adaptc.simulate(m, target="cuda")
    h200 = adaptc.simulate(m, target="cuda", device="h200")
    assert h100.levels[0].latency_s < h100.levels[1].latency_s < h100.levels[2].latency_s
    assert all(b.latency_s <= a.latency_s for a, b in zip(h100.levels, h200.levels))
    with pytest.raises(adaptc.InputError, match="unknown GPU 'a100'"):
        adaptc.simulate(m, target="cuda", device="a100")
