"""``adaptc demo``: the bundled multi-exit digits CNN, compiled with calibrated exits for a
Cortex-M core and measured.

1. Compile ``adaptc/data/digits_exits.onnx`` (3 exits) to int8 (or ``quantize=``) with gate
   thresholds calibrated on the labelled training split (adaptc.exits), for ``target``.
2. Run the generated C (host build) on the 450 test images at every utilization level; check
   every result bit for bit against the Relax module on TVM's llvm, and each class against
   onnxruntime's output of the same head of the original float model.
3. Run the whole test split at every level on the emulated core (one QEMU launch,
   targets.emulator.run_batch_on_target) for exact instruction counts per inference, and check
   the emulated results equal the host build's.
4. Print per level and per exit: accuracy, share of inputs, simulated cycles and latency
   (adaptc.simulate), measured instructions, MACs, flash, RAM; plot accuracy against cycles
   (matplotlib, PNG).
5. Stream: test digits with noise rising and falling, run through the C controller; print the
   level trace, its accuracy and cost against the top level.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import digits
from .data import path as data_path
from .errors import AdaptcError

MODEL = "digits_exits.onnx"


@dataclass
class LevelFigures:
    level: int
    accuracy: float
    shares: list[float]               # per exit: share of the test inputs leaving there
    cycles: float                     # mean per inference: simulated per-exit cycles, the measured exits
    instructions: float | None        # mean per inference on the emulated core (None without QEMU)
    exact_host: int                   # inputs whose C result equals the Relax module's
    agree_onnx: int                   # inputs whose class equals onnxruntime's for the exit taken


def noisy_stream(x, y, seed: int = 1, sigma: float = 0.6):
    """Images with Gaussian noise rising from none to ``sigma``, held, and falling back (350)."""
    rng = np.random.default_rng(seed)
    sig = np.concatenate([np.zeros(100), np.linspace(0, sigma, 50), np.full(50, sigma),
                          np.linspace(sigma, 0, 50), np.zeros(100)]).astype(np.float32)
    idx = rng.permutation(len(x))[:len(sig)]
    noise = rng.standard_normal(x[idx].shape).astype(np.float32) * sig[:, None, None, None]
    return np.clip(x[idx] + noise, 0, 1).astype(np.float32), y[idx], sig


def run(target: str, out_dir: Path, quantize=None, echo=print, progress=None):
    """The demo; returns (compiled model, per-level figures, stream summary). ``echo`` prints a
    line, ``progress(iterable, desc)`` wraps a loop in a progress bar."""
    from . import compile as compile_model

    progress = progress or (lambda it, desc, total=None: it)
    x_train, y_train, x_test, y_test = digits()
    model = data_path(MODEL)
    echo(f"compiling {MODEL} for {target}: {quantize or 'int8'}, 3 exits, thresholds calibrated on "
         f"{len(y_train)} labelled training images ...")
    m = compile_model(model, target=target, exits=True, calibration=(x_train, y_train), quantize=quantize)
    dest = m.export(out_dir / m.prefix)
    xs = m.quantize_input(x_test) if m.format == "int8" else x_test
    n_exits = m.levels

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
    static = compile_model(model, target=target, calibration=x_train, quantize=quantize)
    full = {"cycles": simulate(static).levels[0].cycles, "instructions": None, "accuracy": None}
    emulated = None
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        echo(f"running the test split at every level on an emulated {target}, and the network without exits ...")
        emulated = m.run_batch_on_target(xs, levels=list(range(n_exits)))
        plain = static.run_batch_on_target(xs)
        full.update(instructions=float(plain.instructions.mean()),
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
    cost_of = costs
    summary = {"inputs": len(yn), "sigma": sig, "levels": stream.levels, "exits": stream.exits,
               "accuracy": float(np.mean(stream.labels == yn)),
               "accuracy_top": float(np.mean(np.array([r.label for r in top]) == yn)),
               "cost": float(cost_of[stream.exits].mean()),
               "cost_top": float(cost_of[[r.exit for r in top]].mean())}
    _report(m, dest, figures, head_accuracy, full, emulated, summary, echo)
    png = plot(m, figures, correct, conf, dest / "accuracy_vs_cycles.png")
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


def _report(m, dest, figures, head_accuracy, full, emulated, stream, echo):
    from . import targets

    r = m.report()
    mem = r.get("memory", {}).get("model")
    cal = m.exits["calibration"]
    clock = targets.get(m.target).clock_hz
    echo(f"\n{m.info.name} -> {dest}/ ({m.target}, {r['format']}, gate {m.exits['criterion']})")
    echo("  thresholds     " + ", ".join(f"exit {e['exit']}: {e['threshold']:.3f}" for e in m.exits["exits"][:-1])
         + f" (calibrated on {cal['samples']} inputs, accuracy budget {cal['accuracy_budget']:.0%})")
    flash = f"{mem['flash_bytes']:,} B" if mem else f"{r['weight_bytes']:,} B weights"
    ram = f"{mem['ram_bytes']:,} B + stack {mem['stack_bytes']:,} B" if mem else f"arena {r['arena_bytes']:,} B"
    echo(f"  memory         flash {flash}, RAM {ram} (every level: one firmware image)")
    echo("\n  per exit (running to it and leaving there)")
    echo(f"    {'exit':>4}  {'cycles':>10}  {'MACs':>9}  {'weights read':>12}  {'head accuracy':>13}")
    for e, row in zip(m.exits["exits"], cal["exits"]):
        echo(f"    {e['exit']:>4}  {row['cost']:>10,.0f}  {e['macs']:>9,}  {e['weight_bytes']:>10,} B  "
             f"{head_accuracy[e['exit']]:>13.2%}")
    echo(f"    (cycles: adaptc.simulate, {m.target}, 0 wait states; head accuracy: every test input leaving there)")
    echo("\n  per utilization level (level L: no exit deeper than L; the 450 test images)")
    echo(f"    {'level':>5}  {'accuracy':>8}  {'exits taken':>16}  {'cycles':>8}  {'latency':>9}  {'vs full':>7}  "
         f"{'instructions':>12}  {'C = Relax':>9}  {'= onnxruntime':>13}")
    for f in figures:
        shares = " / ".join(f"{s:.0%}" for s in f.shares)
        instr = "-" if f.instructions is None else f"{f.instructions:,.0f}"
        echo(f"    {f.level:>5}  {f.accuracy:>8.2%}  {shares:>16}  {f.cycles:>8,.0f}  "
             f"{f.cycles / clock * 1e3:>6.3f} ms  {full['cycles'] / f.cycles:>6.2f}x  {instr:>12}  "
             f"{f.exact_host:>5}/450  {f.agree_onnx:>9}/450")
    echo(f"    (cycles: simulated per exit, averaged over where the inputs left; latency at {clock / 1e6:g} MHz; "
         f"instructions: {'emulated, mean over the test split' if emulated is not None else 'no emulator'})")
    line = f"    the network without exits: {full['cycles']:,.0f} cycles"
    if full["instructions"] is not None:
        top = figures[-1]
        line += (f", {full['instructions']:,.0f} instructions ({full['instructions'] / top.instructions:.2f}x "
                 f"the top level's, measured), {full['accuracy']:.2%} accuracy")
    echo(line)
    trace = "".join(str(v) for v in stream["levels"][::5])
    echo(f"\n  stream: {stream['inputs']} test digits, noise rising to sigma 0.6 and back, through "
         f"{m.prefix}_controller_run")
    echo(f"    level every 5th input: {trace}")
    echo(f"    controller: accuracy {stream['accuracy']:.2%}, mean cycles {stream['cost']:,.0f}; "
         f"top level: {stream['accuracy_top']:.2%}, {stream['cost_top']:,.0f} "
         f"({stream['cost_top'] / stream['cost']:.3f}x)")


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
    """Accuracy on the test split against cycles per inference: the threshold trade-off
    (each calibration candidate evaluated on the test split), each exit alone, the utilization
    levels at the calibrated thresholds."""
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
    fig, ax = plt.subplots(figsize=(7, 4.4), dpi=110)
    ax.plot(*zip(*points), ".-", color="0.65", label="threshold trade-off")
    ax.plot(cost, 100 * correct.mean(axis=1), "s", color="C2", label="every input through one exit")
    for e, (x, y) in enumerate(zip(cost, 100 * correct.mean(axis=1))):
        ax.annotate(f"exit {e}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8, color="C2")
    ax.plot([f.cycles for f in figures], [100 * f.accuracy for f in figures], "o", color="C0",
            label=f"levels 0..{len(figures) - 1}, calibrated thresholds")
    for f in figures:
        ax.annotate(f"L{f.level}", (f.cycles, 100 * f.accuracy), textcoords="offset points",
                    xytext=(6, -12 - 9 * f.level), fontsize=8, color="C0")
    ax.set_xscale("log")
    ax.set_xlabel(f"cycles per inference, {m.target}, simulated (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{m.info.name} ({m.format}, gate {m.exits['criterion']}): 450 test images")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":       # pragma: no cover
    run("cortex-m4", Path("adaptc-out"), echo=lambda s: print(s, file=sys.stderr))
