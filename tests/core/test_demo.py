"""The README's main job, ``adaptc demo`` (the digits CNN with calibrated exits), and
``adaptc compile --exits``: what they print and write, parsed.

* demo: a row per utilization level with the C identical to the Relax module on all 450 test
  images and the classes equal to onnxruntime's; at the top level accuracy within 1 point of the
  network without exits and at least 2.5x fewer cycles (simulated) and instructions (measured on
  the emulated core); the stream's level trace; a PNG plot that decodes.
* compile --exits: report.json lists each exit's criterion, threshold and cumulative cost; the
  firmware project builds and runs under QEMU, printing the exit taken.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from adaptc.cli import main
from adaptc.data import digits
from adaptc.data import path as data_path

ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(not ARM, reason="needs the Debian packages gcc-arm-none-eabi, libnewlib-arm-none-eabi "
                                               "and qemu-system-arm")


@needs_arm
def test_demo(tmp_path):
    res = CliRunner().invoke(main, ["demo", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = res.output
    heads = {int(e): float(a) for e, a in re.findall(r"^\s+(\d)\s+[\d,]+\s+[\d,]+\s+[\d,]+ B\s+([\d.]+)%$", out, re.M)}
    assert sorted(heads) == [0, 1, 2]
    levels = re.findall(r"^\s+(\d)\s+([\d.]+)%\s+([\d% /]+?)\s+([\d,]+)\s+([\d.]+) ms\s+([\d.]+)x\s+([\d,]+)"
                        r"\s+(\d+)/450\s+(\d+)/450$", out, re.M)
    assert [int(lv[0]) for lv in levels] == [0, 1, 2], out
    for _level, _acc, shares, cycles, ms, _speedup, _instr, exact, onnx in levels:
        assert int(exact) == 450                       # C == Relax, every input
        assert int(onnx) >= 440                        # int8 classes vs the float model's head
        assert sum(int(s) for s in re.findall(r"(\d+)%", shares)) in (99, 100, 101)
        assert float(ms) == pytest.approx(int(cycles.replace(",", "")) / 180e3, abs=1e-3)   # 180 MHz
    top = levels[-1]
    assert float(top[1]) >= heads[2] - 1.0 and float(top[5]) >= 2.5, top
    full = re.search(r"without exits: [\d,]+ cycles, [\d,]+ instructions \(([\d.]+)x the top level's, measured\), "
                     r"([\d.]+)% accuracy", out)
    assert float(full.group(1)) >= 2.5 and float(top[1]) >= float(full.group(2)) - 1.0, full.group(0)
    trace = re.search(r"level every 5th input: ([012]+)$", out, re.M).group(1)
    assert len(trace) == 70 and set(trace) == {"0", "1", "2"}
    png = tmp_path / "digits_exits" / "accuracy_vs_cycles.png"
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
    report = json.loads((tmp_path / "digits_exits" / "report.json").read_text())
    assert len(report["exits"]) == 3 and report["exit_calibration"]["speedup"] >= 2.5


def test_compile_exits_cli(tmp_path):
    x, y, _, _ = digits()
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=x[:400], y=y[:400])
    out = tmp_path / "fw"
    res = CliRunner().invoke(main, ["compile", str(data_path("digits_exits.onnx")), "--exits", "--calibration",
                                    str(cal), "--gate", "margin", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert re.search(r"expected cost [\d,]+ vs [\d,]+ for the whole network", res.output), res.output
    report = json.loads((out / "report.json").read_text())
    exits = report["exits"]
    assert [e["criterion"] for e in exits] == ["margin"] * 3 and exits[2]["threshold"] is None
    assert exits[0]["macs"] < exits[1]["macs"] < exits[2]["macs"] == report["macs"]
    header = (out / "digits_exits.h").read_text()
    for name in ("digits_exits_run(const int8_t *input, int32_t level, digits_exits_result *result)",
                 "digits_exits_controller_run(", "#define DIGITS_EXITS_EXITS 3"):
        assert name in header
    res = CliRunner().invoke(main, ["compile", str(data_path("digits_exits.onnx")), "--exits", "-o",
                                    str(tmp_path / "no")])
    assert res.exit_code != 0 and "labelled data" in res.output and not (tmp_path / "no").exists()
    if ARM and shutil.which("make"):
        make = subprocess.run(["make", "-C", str(out)], capture_output=True, text=True)
        assert make.returncode == 0, make.stdout + make.stderr
        run = subprocess.run(["make", "-C", str(out), "run"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert re.search(r"^exit [012]$", run.stdout + run.stderr, re.M)
