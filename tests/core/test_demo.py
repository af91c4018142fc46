"""The README's main job, ``adaptc demo`` (the digits CNN with calibrated exits), and
``adaptc compile --exits``: what they print and write, parsed.

* demo: thresholds calibrated on half the test split, the network never trained on (no warning
  about training data); a row per utilization level with the C identical to the Relax module on
  the other half and the classes equal to onnxruntime's; at the top level accuracy within 1 point of the
  network without exits and a speedup of at least 2.5x in simulated cycles and in emulated
  instructions, each speedup the quotient of the figures printed; the stream's level trace; a PNG
  plot that decodes; the plot names its figure and no two of its texts overlap.
* compile --exits: report.json lists each exit's criterion, threshold and cumulative cost; the
  firmware project builds and runs under QEMU, printing the exit taken.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings

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
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)      # e.g. thresholds calibrated on training data
        res = CliRunner().invoke(main, ["demo", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    cal, rest = (int(v) for v in re.search(r"calibrated on (\d+) labelled test images the network was not trained on "
                                            r"\(figures: the other (\d+)\)", res.output).groups())
    assert cal + rest == 450 and abs(cal - rest) <= 10
    out = res.output
    heads = {int(e): float(a) for e, a in re.findall(r"^\s+(\d)\s+[\d,]+\s+[\d,]+\s+[\d,]+ B\s+([\d.]+)%$", out, re.M)}
    assert sorted(heads) == [0, 1, 2]
    levels = re.findall(r"^\s+(\d)\s+([\d.]+)%\s+([\d% /]+?)\s+([\d,]+)\s+([\d.]+) ms\s+([\d,]+)"
                        rf"\s+(\d+)/{rest}\s+(\d+)/{rest}$", out, re.M)
    assert [int(lv[0]) for lv in levels] == [0, 1, 2], out
    for _level, _acc, shares, cycles, ms, _instr, exact, onnx in levels:
        assert int(exact) == rest                      # C == Relax, every input
        assert int(onnx) >= rest - 5                   # int8 classes vs the float model's head
        assert sum(int(s) for s in re.findall(r"(\d+)%", shares)) in (99, 100, 101)
        assert float(ms) == pytest.approx(int(cycles.replace(",", "")) / 180e3, abs=1e-3)   # 180 MHz
    full = re.search(r"without exits: ([\d,]+) simulated cycles, ([\d,]+) emulated instructions, ([\d.]+)% accuracy",
                     out)
    full_cycles, full_instr = (int(full.group(k).replace(",", "")) for k in (1, 2))
    speedups = re.findall(r"^\s+level (\d): ([\d.]+)x in simulated cycles, ([\d.]+)x in emulated instructions$",
                          out, re.M)
    assert [int(s[0]) for s in speedups] == [0, 1, 2], out
    for (_, sim, emu), lv in zip(speedups, levels):         # each speedup: the printed figures' quotient
        assert float(sim) == pytest.approx(full_cycles / int(lv[3].replace(",", "")), abs=0.01)
        assert float(emu) == pytest.approx(full_instr / int(lv[5].replace(",", "")), abs=0.01)
    top = levels[-1]
    assert float(top[1]) >= heads[2] - 1.0 and float(top[1]) >= float(full.group(3)) - 1.0, top
    assert float(speedups[-1][1]) >= 2.5 and float(speedups[-1][2]) >= 2.5, speedups
    trace = re.search(r"level every 5th input: ([012]+)$", out, re.M).group(1)
    assert len(trace) == 70 and set(trace) == {"0", "1", "2"}
    png = tmp_path / "digits_exits" / "accuracy_vs_simulated_cycles.png"
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
    report = json.loads((tmp_path / "digits_exits" / "report.json").read_text())
    calibrated = report["exit_calibration"]["speedup_simulated_cycles"]
    assert len(report["exits"]) == 3 and calibrated >= 2.5
    assert f"{calibrated:.2f}x in simulated cycles (report.json: exit_calibration.speedup_simulated_cycles)" in out


def test_plot_names_its_figure_and_no_text_overlaps():
    """Levels that coincide with an exit and with one another (as the digits model's do: level 0
    is exit 0, the others leave there nearly always) still leave every text apart."""
    from types import SimpleNamespace

    from adaptc.demo import LevelFigures, figure

    rng = np.random.default_rng(0)
    n = 450
    conf = rng.integers(0, 128, size=(3, n))
    correct = np.ones((3, n), bool)
    for e, wrong in enumerate((12, 10, 9)):                 # 97.33 / 97.78 / 98.00 % right
        correct[e, rng.permutation(n)[:wrong]] = False
    cal = {"exits": [{"cost": 76_002.0}, {"cost": 165_095.0}, {"cost": 703_221.0}],
           "curve": [{"thresholds": [t, t]} for t in (10, 40, 80, 120, 2**31 - 1)]}
    m = SimpleNamespace(exits={"calibration": cal, "criterion": "max_prob"}, target="cortex-m4", format="int8",
                        info=SimpleNamespace(name="digits_exits"))
    figures = [LevelFigures(0, 438 / n, [1.0, 0.0, 0.0], 76_002.0, 56_114.0, n, n),     # level 0 is exit 0
               LevelFigures(1, 438 / n, [0.98, 0.02, 0.0], 77_782.0, 57_300.0, n, n),
               LevelFigures(2, 438 / n, [0.97, 0.03, 0.0], 78_560.0, 57_880.0, n, n)]
    fig = figure(m, figures, correct, conf)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("simulated cycles per inference") and "cortex-m4" in ax.get_xlabel()
    legend = ax.get_legend()
    assert [t.get_text().split(",")[0] for t in legend.get_texts()][-3:] == ["level 0", "level 1", "level 2"]
    texts = [*ax.texts, legend, ax.title, ax.xaxis.label, ax.yaxis.label]
    assert [t.get_text() for t in ax.texts] == ["exit 0", "exit 1", "exit 2"]
    boxes = [t.get_window_extent(r) for t in texts]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            assert not a.overlaps(boxes[j]), (texts[i], texts[j])
    ticks = [t.get_window_extent(r) for t in (*ax.get_xticklabels(), *ax.get_yticklabels()) if t.get_text()]
    area = ax.get_window_extent(r)
    for t, box in zip(ax.texts, boxes):                  # the exits' labels: inside the axes, clear of the ticks
        assert area.contains(box.x0, box.y0) and area.contains(box.x1, box.y1), t
        assert not any(box.overlaps(b) for b in ticks), t
    assert not legend.get_window_extent(r).overlaps(area)                           # the legend is off the data
    for box in boxes:
        assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)


def test_compile_exits_cli(tmp_path):
    x, y, _, _ = digits()
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=x[:400], y=y[:400])
    out = tmp_path / "fw"
    res = CliRunner().invoke(main, ["compile", str(data_path("digits_exits.onnx")), "--exits", "--calibration",
                                    str(cal), "--gate", "margin", "-o", str(out)])
    assert res.exit_code == 0, res.output
    said = re.search(r"expected cost [\d,]+ vs [\d,]+ for the whole network: speedup ([\d.]+)x in simulated cycles "
                     r"over the 400 calibration inputs", res.output)
    assert said, res.output
    report = json.loads((out / "report.json").read_text())
    assert float(said.group(1)) == round(report["exit_calibration"]["speedup_simulated_cycles"], 2)
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


@needs_arm
def test_demo_width(tmp_path):
    """``adaptc demo --width``: a row per (width, exit) level, each identical to that width
    compiled alone on every test image, the flash of one build beside the widest alone's, and the
    controller from level 0 at the top level's accuracy for fewer simulated cycles."""
    res = CliRunner().invoke(main, ["demo", "--width", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+(\d)\s+([\d.]+)%\s+([\d,]+)\s+([\d,]+)\s+(\d+)/(\d+)$", res.output, re.M)
    assert [(int(r[0]), float(r[1]), int(r[2])) for r in rows] == \
        [(i, w, e) for i, (w, e) in enumerate((w, e) for w in (0.25, 0.5, 0.75, 1.0) for e in range(3))]
    assert all(r[6] == r[7] for r in rows)                      # = width alone, every input
    flash = re.search(r"flash\s+([\d,]+) B for every level, the widest alone ([\d,]+) B", res.output)
    assert int(flash[1].replace(",", "")) <= 1.1 * int(flash[2].replace(",", ""))
    ctl = re.search(r"controller: accuracy ([\d.]+)%, ([\d,]+) simulated cycles per input; top level: ([\d.]+)%, "
                    r"([\d,]+)", res.output)
    assert float(ctl[1]) >= float(ctl[3]) and int(ctl[2].replace(",", "")) < int(ctl[4].replace(",", ""))
