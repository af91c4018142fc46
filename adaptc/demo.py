"""``adaptc demo``: the bundled multi-exit digits CNN, compiled with calibrated exits for a
Cortex-M core and measured.

1. Compile ``adaptc/data/digits_exits.onnx`` (3 exits) to int8 (or ``quantize=``) with gate
   thresholds calibrated on half the labelled test split, stratified (the network was trained on
   the training split: every head is nearly always right there), for ``target``.
2. Run the generated C (host build) on the other 225 test images at every utilization level; check
   every result bit for bit against the Relax module on TVM's llvm, and each class against
   onnxruntime's output of the same head of the original float model.
3. Run the whole test split at every level on the emulated core (one QEMU launch,
   targets.emulator.run_batch_on_target) for exact instruction counts per inference, and check
   the emulated results equal the host build's.
4. Print per level and per exit: accuracy, share of inputs, simulated cycles and latency,
   emulated instructions, MACs, flash, RAM, and each level's speedup over the network without
   exits in both figures; plot accuracy against simulated cycles (matplotlib, PNG).
5. Stream: test digits with noise rising and falling, run through the C controller; print the
   level trace, its accuracy and simulated cycles against the top level.

Two figures of cost, each named as such wherever it is printed, plotted or stored:

* simulated cycles -- adaptc.simulate's estimate for the target (zero flash wait states): the
  cycles of running to an exit and leaving there; a level's figure on a set of inputs is the
  mean over the inputs of the exit each takes (the cost the gate thresholds were calibrated
  against; ``report.json``: ``exit_calibration.speedup_simulated_cycles`` on the calibration
  inputs);
* emulated instructions -- instructions QEMU counts while the cross-built firmware runs one
  inference on the emulated core, a mean over the inputs.

A speedup is the network without exits' figure over a level's, on the data named with it.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .augment import split
from .data import digits
from .data import path as data_path
from .errors import AdaptcError

MODEL = "digits_exits.onnx"


@dataclass
class LevelFigures:
    """One utilization level on the test split (figures: the module docstring)."""

    level: int
    accuracy: float
    shares: list[float]               # per exit: share of the test inputs leaving there
    simulated_cycles: float           # mean over the test inputs of the simulated cycles of the exit each takes
    emulated_instructions: float | None   # mean over the test inputs on the emulated core (None without QEMU)
    exact_host: int                   # inputs whose C result equals the Relax module's
    agree_onnx: int                   # inputs whose class equals onnxruntime's for the exit taken


def noisy_stream(x, y, seed: int = 1, sigma: float = 0.6):
    """Images with Gaussian noise rising from none to ``sigma``, held, and falling back (350,
    drawn from ``x``; with replacement when it holds fewer)."""
    rng = np.random.default_rng(seed)
    sig = np.concatenate([np.zeros(100), np.linspace(0, sigma, 50), np.full(50, sigma),
                          np.linspace(sigma, 0, 50), np.zeros(100)]).astype(np.float32)
    idx = rng.choice(len(x), len(sig), replace=len(x) < len(sig))
    noise = rng.standard_normal(x[idx].shape).astype(np.float32) * sig[:, None, None, None]
    return np.clip(x[idx] + noise, 0, 1).astype(np.float32), y[idx], sig


def run(target: str, out_dir: Path, quantize=None, echo=print, progress=None):
    """The demo; returns (compiled model, per-level figures, stream summary). ``echo`` prints a
    line, ``progress(iterable, desc)`` wraps a loop in a progress bar."""
    from . import compile as compile_model

    progress = progress or (lambda it, desc, total=None: it)
    x_train, y_train, x_test, y_test = digits()
    # thresholds on half the test split (the network never saw it; on its training images every
    # head is nearly always right, which would let too many inputs leave early), figures on the other
    x_test, y_test, x_cal, y_cal = split(x_test, y_test, share=0.5)
    model = data_path(MODEL)
    echo(f"compiling {MODEL} for {target}: {quantize or 'int8'}, 3 exits, thresholds calibrated on "
         f"{len(y_cal)} labelled test images the network was not trained on (figures: the other {len(y_test)}) ...")
    m = compile_model(model, target=target, exits=True, calibration=(x_cal, y_cal), quantize=quantize,
                      budget_confidence=0.9)
    dest = m.export(out_dir / m.prefix)
    xs = m.quantize_input(x_test) if m.format == "int8" else x_test
    n_exits = len(m.levels)

    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(model))
        name = sess.get_inputs()[0].name
        onnx_heads = [np.concatenate(h) for h in zip(*[sess.run(None, {name: v[None]}) for v in x_test])]
    except ImportError:
        echo("(onnxruntime not installed: no comparison with the original model's heads)")
        onnx_heads = None

    host = {}
    for level in progress(range(n_exits), "host C vs Relax, every level"):
        host[level] = [m.run(v[None], level=level) for v in xs]
    heads = [m.heads(v[None]) for v in xs]
    correct = np.array([[int(np.argmax(h[e])) == t for h, t in zip(heads, y_test)] for e in range(n_exits)])
    head_accuracy = [float(a) for a in correct.mean(axis=1)]
    conf = _confidences(m, heads)
    exact = {}
    for level in range(n_exits):
        ref = [m.reference(v[None], level=level) for v in xs]
        exact[level] = sum(_same(a, b, m.format) for a, b in zip(host[level], ref))

    from .sim import simulate

    costs = np.array([e["cost"] for e in m.exits["calibration"]["exits"]])      # simulated cycles per exit
    static = compile_model(model, target=target, calibration=x_train, quantize=quantize, output=-1)
    full = {"simulated_cycles": simulate(static).levels[0].cycles, "emulated_instructions": None, "accuracy": None}
    emulated = None
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        echo(f"running the test split at every level on an emulated {target}, and the network without exits ...")
        emulated = m.run_batch_on_target(xs, levels=list(range(n_exits)))
        plain = static.run_batch_on_target(xs)
        full.update(emulated_instructions=float(plain.instructions.mean()),
                    accuracy=float(np.mean(plain.logits[0].reshape(len(xs), -1).argmax(axis=-1) == y_test)))
        for i, level in enumerate(range(n_exits)):
            for k, r in enumerate(host[level]):
                if not _same(emulated.result(i, k), r, m.format):
                    raise AdaptcError(f"input {k}, level {level}: the emulated core's result differs from the "
                                      f"host build's (exit {int(emulated.exit[i, k])} vs {r.exit})")
    else:
        echo("(qemu-system-arm / gcc-arm-none-eabi not installed: no emulated run, simulated cycles only)")

    figures = []
    for i, level in enumerate(range(n_exits)):
        rs = host[level]
        ex = np.array([r.exit for r in rs])
        figures.append(LevelFigures(
            level, float(np.mean([r.label == t for r, t in zip(rs, y_test)])),
            [float(np.mean(ex == e)) for e in range(n_exits)], float(costs[ex].mean()),
            float(emulated.instructions[i].mean()) if emulated is not None else None, exact[level],
            sum(r.label == int(np.argmax(onnx_heads[r.exit][k])) for k, r in enumerate(rs)) if onnx_heads else -1))

    # stream: the controller against the top level
    xn, yn, sig = noisy_stream(x_test, y_test)
    qn = m.quantize_input(xn) if m.format == "int8" else xn
    stream = m.run_stream(qn)
    top = [m.run(v[None]) for v in qn]
    summary = {"inputs": len(yn), "sigma": sig, "levels": stream.levels, "exits": stream.exits,
               "accuracy": float(np.mean(stream.labels == yn)),
               "accuracy_top": float(np.mean(np.array([r.label for r in top]) == yn)),
               "simulated_cycles": float(costs[stream.exits].mean()),
               "simulated_cycles_top": float(costs[[r.exit for r in top]].mean())}
    _report(m, dest, figures, len(xs), head_accuracy, full, summary, echo)
    png = plot(m, figures, correct, conf, dest / "accuracy_vs_simulated_cycles.png")
    echo(f"  plot           {png}")
    bad = [f for f in figures if f.exact_host != len(xs)]
    if bad:
        raise AdaptcError(f"the generated C differs from the Relax module at level {bad[0].level}: "
                          f"{bad[0].exact_host}/{len(xs)} identical")
    return m, figures, summary


def _same(a, b, fmt) -> bool:
    if (a.exit, a.label) != (b.exit, b.label):
        return False
    if fmt == "int8":
        return a.confidence == b.confidence and np.array_equal(a.logits, b.logits)
    return bool(np.allclose(a.logits, b.logits, rtol=1e-5, atol=1e-5))


def _report(m, dest, figures, count, head_accuracy, full, stream, echo):
    """Print the demo's figures (``count``: the test inputs the level figures are over)."""
    from . import targets

    r = m.report()
    mem = r.get("memory", {}).get("model")
    cal = m.exits["calibration"]
    clock = targets.get(m.target).clock_hz
    echo(f"\n{m.info.name} -> {dest}/ ({m.target}, {r['format']}, gate {m.exits['criterion']})")
    echo("  thresholds     " + ", ".join(f"exit {e['exit']}: {e['threshold']:.3f}" for e in m.exits["exits"][:-1])
         + f" (calibrated on {cal['samples']:,} inputs, accuracy budget {cal['accuracy_budget']:.0%})")
    flash = f"{mem['flash_bytes']:,} B" if mem else f"{r['weight_bytes']:,} B weights"
    ram = f"{mem['ram_bytes']:,} B + stack {mem['stack_bytes']:,} B" if mem else f"arena {r['arena_bytes']:,} B"
    echo(f"  memory         flash {flash}, RAM {ram} (every level: one firmware image)")
    emulated = figures[0].emulated_instructions is not None
    echo(f"  figures        simulated cycles: adaptc.simulate's estimate ({m.target}, 0 wait states); "
         "emulated instructions: " + ("counted by QEMU on the cross-built firmware" if emulated else
                                      "none (no emulator installed)"))
    echo("\n  per exit (running to it and leaving there)")
    echo(f"    {'exit':>4}  {'simulated cycles':>16}  {'MACs':>9}  {'weights read':>12}  {'head accuracy':>13}")
    for e, row in zip(m.exits["exits"], cal["exits"]):
        echo(f"    {e['exit']:>4}  {row['cost']:>16,.0f}  {e['macs']:>9,}  {e['weight_bytes']:>10,} B  "
             f"{head_accuracy[e['exit']]:>13.2%}")
    echo("    (head accuracy: every test input leaving there)")
    tests = f"the {count:,} test images"
    echo(f"\n  per utilization level (level L: no exit deeper than L; {tests})")
    echo(f"    {'level':>5}  {'accuracy':>8}  {'exits taken':>16}  {'simulated cycles':>16}  {'latency':>9}  "
         f"{'emulated instructions':>21}  {'C = Relax':>9}  {'= onnxruntime':>13}")
    for f in figures:
        shares = " / ".join(f"{s:.0%}" for s in f.shares)
        instr = "-" if f.emulated_instructions is None else f"{f.emulated_instructions:,.0f}"
        echo(f"    {f.level:>5}  {f.accuracy:>8.2%}  {shares:>16}  {f.simulated_cycles:>16,.0f}  "
             f"{f.simulated_cycles / clock * 1e3:>6.3f} ms  {instr:>21}  {f.exact_host:>5}/{count}  "
             f"{f.agree_onnx:>9}/{count}")
    echo(f"    (per level a mean over the test images; latency: the simulated cycles at {clock / 1e6:g} MHz)")
    line = f"    the network without exits: {full['simulated_cycles']:,.0f} simulated cycles"
    if full["emulated_instructions"] is not None:
        line += f", {full['emulated_instructions']:,.0f} emulated instructions, {full['accuracy']:.2%} accuracy"
    echo(line)
    echo(f"\n  speedup over the network without exits, on {tests}")
    for f in figures:
        emu = "" if f.emulated_instructions is None else \
            f", {full['emulated_instructions'] / f.emulated_instructions:.2f}x in emulated instructions"
        echo(f"    level {f.level}: {full['simulated_cycles'] / f.simulated_cycles:.2f}x in simulated cycles{emu}")
    echo(f"    the thresholds' objective, on the {cal['samples']:,} calibration images over every one leaving at the "
         f"last exit: {cal['speedup_simulated_cycles']:.2f}x in simulated cycles (report.json: "
         "exit_calibration.speedup_simulated_cycles)")
    trace = "".join(str(v) for v in stream["levels"][::5])
    echo(f"\n  stream: {stream['inputs']} test digits, noise rising to sigma 0.6 and back, through "
         f"{m.prefix}_controller_run")
    echo(f"    level every 5th input: {trace}")
    echo(f"    controller: accuracy {stream['accuracy']:.2%}, {stream['simulated_cycles']:,.0f} simulated cycles per "
         f"input; top level: {stream['accuracy_top']:.2%}, {stream['simulated_cycles_top']:,.0f} "
         f"(speedup {stream['simulated_cycles_top'] / stream['simulated_cycles']:.3f}x in simulated cycles)")


def _confidences(m, heads) -> np.ndarray:
    """[exits, inputs]: each head's confidence as its gate computes it."""
    from . import gates

    criterion = m.exits["criterion"]
    out = []
    for e, info in enumerate(m.exits["exits"]):
        logits = np.concatenate([h[e] for h in heads])
        out.append(gates.confidence_int(logits, criterion, info["scale"]) if "scale" in info
                   else gates.confidence_float(logits, criterion))
    return np.array(out)


def plot(m, figures, correct, conf, path: Path) -> Path:
    """Write ``figure(...)`` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = figure(m, figures, correct, conf)
    fig.savefig(path)
    plt.close(fig)
    return path


def figure(m, figures, correct, conf):
    """Test accuracy against simulated cycles per inference (the module docstring's figure): the
    threshold trade-off (each calibration candidate evaluated on the test inputs), each exit
    alone, and the utilization levels at the calibrated thresholds. Text never overlaps: only
    the exits -- far apart on the cycle axis -- are labelled on the plot; the levels, which
    share points with the exits and one another, each get a marker of their own, a ring sized
    so that coinciding ones stay visible, and a legend line with their figures, below the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .exits import assign

    cal = m.exits["calibration"]
    cost = np.array([e["cost"] for e in cal["exits"]])
    rows = np.arange(correct.shape[1])
    never = np.inf if conf.dtype.kind == "f" else np.iinfo(np.int64).max
    points = []
    for c in cal["curve"]:
        taken = assign(conf, [never if t is None or t >= 2**31 - 1 else t for t in c["thresholds"]])
        points.append((cost[taken].mean(), 100 * correct[taken, rows].mean()))
    points.sort()
    fig, ax = plt.subplots(figsize=(7.2, 5.4), dpi=110, layout="constrained")
    ax.plot(*zip(*points), ".-", color="0.7", label="threshold trade-off (calibration candidates)")
    alone = 100 * correct.mean(axis=1)
    ax.plot(cost, alone, "s", color="C2", label="every input through one exit")
    for e, (x, y) in enumerate(zip(cost, alone)):
        ax.annotate(f"exit {e}", (x, y), textcoords="offset points", xytext=(0, -10), ha="center", va="top",
                    fontsize=8, color="C2")   # below the largest level ring (13 pt across); the trade-off rises
    markers = "oD^vPX*"
    for f in figures:
        label = f"level {f.level}, calibrated gates: {f.accuracy:.2%}, {f.simulated_cycles:,.0f} simulated cycles"
        ax.plot([f.simulated_cycles], [100 * f.accuracy], markers[f.level % len(markers)], mfc="none", mew=1.5,
                ms=max(13 - 3 * f.level, 5), color=f"C{(f.level + 3) % 10}", label=label)
    ax.set_xscale("log")
    lo, hi = min(cost.min(), *(f.simulated_cycles for f in figures)), cost.max()
    ax.set_xlim(lo / 1.4, hi * 1.4)
    accuracies = [*alone, *(100 * f.accuracy for f in figures), *(a for _, a in points)]
    span = max(max(accuracies) - min(accuracies), 0.5)
    ax.set_ylim(min(accuracies) - 0.25 * span, max(accuracies) + 0.1 * span)     # room for the exits' labels
    ax.set_xlabel(f"simulated cycles per inference (adaptc.simulate, {m.target}; log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{m.info.name} ({m.format}, gate {m.exits['criterion']}): accuracy against simulated cycles, "
                 f"{correct.shape[1]} test images", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, fontsize=8, frameon=False)
    ax.grid(alpha=0.3, which="both")
    return fig


if __name__ == "__main__":       # pragma: no cover
    run("cortex-m4", Path("adaptc-out"), echo=lambda s: print(s, file=sys.stderr))


WIDTH_MODELS = [f"slimmable_w{w}.onnx" for w in ("025", "050", "075", "100")]


def run_widths(target: str, out_dir: Path, echo=print, progress=None, emulated_inputs: int = 12):
    """``adaptc demo --width``: the bundled slimmable digits network (examples/slimmable: widths
    0.25 / 0.5 / 0.75 / 1.0 of one set of weights, three exits each) as one width-level build.
    Thresholds calibrated on half the test split, per width; on the other half, per (width, exit)
    level: accuracy, simulated cycles, and -- on ``emulated_inputs`` of them, on the emulated
    core -- instructions, checked equal to the host build's; each level bit for bit against that
    width compiled alone. Then the stream of ``run``, through the C controller from level 0,
    against the top level. Returns (model, per-level rows, stream summary)."""
    from . import compile as compile_model
    from .sim import simulate
    from .widths import stream_cost

    progress = progress or (lambda it, desc, total=None: it)
    _, _, x_test, y_test = digits()
    x_test, y_test, x_cal, y_cal = split(x_test, y_test, share=0.5)
    echo(f"compiling the slimmable digits network for {target}: {', '.join(WIDTH_MODELS)} (int8, 3 exits each; "
         f"thresholds calibrated per width on {len(y_cal)} labelled test images, figures on the other "
         f"{len(y_test)}) ...")
    m = compile_model([data_path(f) for f in WIDTH_MODELS], width_levels=True, target=target,
                      calibration=(x_cal, y_cal), budget_confidence=0.9)
    dest = m.export(out_dir / m.prefix)
    xs = m.quantize_input(x_test)[:, None]
    exits = len(m.program.exits)
    sim = simulate(m)
    cost = [e.cycles for e in sim.exits]
    rows = []
    for level in progress(range(len(m.levels)), "host C vs each width alone, every level"):
        width, cap = m.levels[level]
        alone = m.width_levels.models[level // exits]
        rs = [m.run(v, level=level) for v in xs]
        same = sum(_same(r, alone.run(v, level=cap), "int8") for r, v in zip(rs, xs))
        rows.append({"level": level, "width": width, "exit": cap,
                     "accuracy": float(np.mean([r.label == t for r, t in zip(rs, y_test)])),
                     "simulated_cycles": float(np.mean([cost[level - cap + r.exit] for r in rs])),
                     "same_as_alone": same, "emulated_instructions": None})
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        n = min(emulated_inputs, len(xs))
        echo(f"running {n} test images at every level on an emulated {target} ...")
        batch = m.run_batch_on_target(xs[:n])
        for i, row in enumerate(rows):
            for k in range(n):
                if not _same(batch.result(i, k), m.run(xs[k], level=i), "int8"):
                    raise AdaptcError(f"input {k}, level {i}: the emulated core's result differs from the host build's")
            row["emulated_instructions"] = float(batch.instructions[i].mean())
    xn, yn, _ = noisy_stream(x_test, y_test)
    qn = m.quantize_input(xn)[:, None]
    top_level = len(m.levels) - 1
    top = [m.run(v, level=top_level) for v in qn]
    stream = m.run_stream(qn)
    summary = {"inputs": len(yn), "levels": stream.raised, "accuracy": float(np.mean(stream.labels == yn)),
               "accuracy_top": float(np.mean(np.array([r.label for r in top]) == yn)),
               "simulated_cycles": float(np.mean([stream_cost(cost, exits, m.ladder, a, b,
                                                              lambda lv, q=q: m.run(q, level=lv).exit)
                                                  for a, b, q in zip(stream.levels, stream.raised, qn)])),
               "simulated_cycles_top": float(np.mean([cost[top_level - exits + 1 + r.exit] for r in top]))}
    r = m.report()
    mem = r.get("memory", {}).get("model")
    alone = m.width_levels.models[-1].memory_report().get("model")
    echo(f"\n{m.info.name} and its narrower widths -> {dest}/ ({target}, int8, gate {m.exits['criterion']})")
    if mem and alone:
        echo(f"  flash          {mem['flash_bytes']:,} B for every level, the widest alone {alone['flash_bytes']:,} B "
             f"({mem['flash_bytes'] / alone['flash_bytes']:.2f}x; weights stored once)")
    echo(f"\n  per level (width, deepest exit; the {len(y_test)} test images; emulated: a mean over the first "
         f"{emulated_inputs})")
    echo(f"    {'level':>5}  {'width':>5}  {'exit':>4}  {'accuracy':>8}  {'simulated cycles':>16}  "
         f"{'emulated instructions':>21}  {'= width alone':>13}")
    for row in rows:
        instr = "-" if row["emulated_instructions"] is None else f"{row['emulated_instructions']:,.0f}"
        echo(f"    {row['level']:>5}  {row['width']:>5g}  {row['exit']:>4}  {row['accuracy']:>8.2%}  "
             f"{row['simulated_cycles']:>16,.0f}  {instr:>21}  {row['same_as_alone']:>9}/{len(xs)}")
    trace = "".join("0123456789ab"[v] if v < 12 else "+" for v in stream.raised[::5])
    echo(f"\n  stream: {summary['inputs']} test digits, noise rising to sigma 0.6 and back, through "
         f"{m.prefix}_controller_run from level 0 (a raise to a wider width runs the input again)")
    echo(f"    ladder (the levels the controller steps through, chosen on the calibration images): "
         f"{', '.join(map(str, m.ladder))}")
    echo(f"    level every 5th input (a = 10, b = 11): {trace}")
    echo(f"    controller: accuracy {summary['accuracy']:.2%}, {summary['simulated_cycles']:,.0f} simulated cycles per "
         f"input; top level: {summary['accuracy_top']:.2%}, {summary['simulated_cycles_top']:,.0f} "
         f"({summary['simulated_cycles_top'] / summary['simulated_cycles']:.2f}x in simulated cycles)")
    bad = [row for row in rows if row["same_as_alone"] != len(xs)]
    if bad:
        raise AdaptcError(f"level {bad[0]['level']}: the build differs from that width compiled alone on "
                          f"{len(xs) - bad[0]['same_as_alone']} of {len(xs)} inputs")
    return m, rows, summary
