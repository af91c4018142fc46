"""Writing outputs: the atomic output directory every export writes through, and the plots and
one-page report of a simulation (matplotlib, PNG; Markdown).

``atomic_directory(directory)`` gives a fresh directory next to ``directory`` to write into and
moves what was written into place only when the writing succeeded, so a failed export leaves
nothing behind. The directory is made by a plain ``os.mkdir`` (mode 0o777 & ~umask, not
``tempfile.mkdtemp``'s 0o700) and files written into it get what the umask gives them
(0o666 & ~umask), so an output directory's permissions are the ones ``mkdir`` and the
user's umask would give.
"""
from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _fresh_directory(parent: Path, stem: str) -> Path:
    """A new, empty directory ``parent/.<stem>.tmp-<random>`` made by ``os.mkdir`` (the umask's
    mode)."""
    for _ in range(100):
        path = parent / f".{stem}.tmp-{secrets.token_hex(4)}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary directory name in {parent}")


@contextmanager
def atomic_directory(directory) -> Iterator[Path]:
    """Write into the yielded directory; on success its files replace those of ``directory``
    (which becomes it when it does not exist yet: the parents are created), on any failure it
    is removed and ``directory`` is untouched. Modes: the module docstring's."""
    directory = Path(directory)
    parent = directory.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_directory(parent, directory.name)
    try:
        yield tmp
        if directory.exists():
            for f in sorted(tmp.iterdir()):
                os.replace(f, directory / f.name)
            tmp.rmdir()
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_levels(sim, path: Path) -> Path:
    """Cycles per utilization level: worst case (through the level's deepest exit), leaving at
    exit 0, and -- with data -- the expected figure."""
    plt = _pyplot()
    gpu = sim.unit == "seconds"
    scale = 1e6 if gpu else 1.0
    levels = [lv.level for lv in sim.levels]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.bar([x - 0.2 for x in levels], [lv.cycles * scale for lv in sim.levels], width=0.4, label="worst (deepest exit)")
    ax.bar([x + 0.2 for x in levels], [lv.cycles_min * scale for lv in sim.levels], width=0.4,
           label="leaving at exit 0")
    if all(lv.cycles_expected is not None for lv in sim.levels):
        ax.plot(levels, [lv.cycles_expected * scale for lv in sim.levels], "o-", color="C3", label="expected (data)")
    ax.set_xticks(levels)
    ax.set_xlabel("utilization level")
    ax.set_ylabel("simulated latency (us)" if gpu else f"simulated cycles ({sim.target})")
    ax.set_title(f"{sim.model}: simulated cost per level")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(plt, fig, path)


def plot_accuracy(sim, accuracy: list[float], path: Path) -> Path:
    """Accuracy against cost per level: expected cost with data, else the worst case."""
    plt = _pyplot()
    gpu = sim.unit == "seconds"
    scale = 1e6 if gpu else 1.0
    cost = [(lv.cycles_expected if lv.cycles_expected is not None else lv.cycles) * scale for lv in sim.levels]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.plot(cost, [100 * a for a in accuracy], "o-", color="C0")
    for lv, c, a in zip(sim.levels, cost, accuracy):
        ax.annotate(f"level {lv.level}", (c, 100 * a), textcoords="offset points", xytext=(6, -10 - 9 * lv.level),
                    fontsize=8)
    ax.set_xlabel(("expected " if sim.levels[0].cycles_expected is not None else "worst-case ")
                  + ("simulated latency (us)" if gpu else f"simulated cycles ({sim.target})"))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{sim.model}: accuracy against simulated cost per level")
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def plot_steps(sim, path: Path) -> Path:
    """Cycles per step, stacked by instruction class (Cortex-M) or seconds per step (CUDA)."""
    plt = _pyplot()
    steps = sim.steps
    fig, ax = plt.subplots(figsize=(max(6.4, 0.35 * len(steps)), 4.0), dpi=110)
    x = range(len(steps))
    if sim.unit == "seconds":
        ax.bar(x, [s["seconds"] * 1e6 for s in steps], color="C0")
        ax.set_ylabel("simulated latency (us)")
    else:
        share = [s["cycles"] / max(s["instructions"], 1e-9) for s in steps]       # cycles per instruction
        bottom = [0.0] * len(steps)
        for k, cls in enumerate(("load", "store", "mac", "branch_taken", "branch_not_taken", "other")):
            part = [s["classes"].get(cls, 0.0) * f for s, f in zip(steps, share)]
            ax.bar(x, part, bottom=bottom, label=cls, color=f"C{k}")
            bottom = [b + p for b, p in zip(bottom, part)]
        ax.set_ylabel("simulated cycles (by instruction class)")
        ax.legend(fontsize=7, ncol=3)
    for e in sim.exits[:-1]:
        ax.axvline(e.step + 0.5, color="k", lw=1, ls="--")
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{s['step']} {s['kernel'] or s['op']}" for s in steps], rotation=75, fontsize=7)
    ax.set_title(f"{sim.model} on {sim.target}: simulated cost per step (dashed: exit gates)")
    return _save(plt, fig, path)


def plot_memory(program, path: Path) -> Path:
    """The arena plan: each buffer a box over its lifetime (steps) and bytes (offset)."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    planner = program.planner
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    top = 1
    for i, b in enumerate(planner.buffers):
        if b.size == 0:
            continue
        off = planner.offset(i)
        ax.add_patch(Rectangle((b.first - 0.4, off), b.last - b.first + 0.8, b.size, alpha=0.6,
                               color=f"C{i % 10}", ec="k", lw=0.5))
        top = max(top, off + b.size)
    ax.set_xlim(-1, max(len(program.steps), 1))
    ax.set_ylim(0, top * 1.05)
    ax.set_xlabel("step")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"{program.name}: arena plan, {program.arena_bytes:,} bytes")
    return _save(plt, fig, path)


def plot_exit_search(search: dict, path: Path) -> Path:
    """adaptc.add_exits' Pareto front: expected simulated cost against accuracy on the held-out
    samples, the chosen placement marked."""
    plt = _pyplot()
    front = search["pareto"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.plot([p["expected_cost"] for p in front], [100 * p["accuracy"] for p in front], "o-", color="C0",
            label="Pareto front (placements)")
    chosen = search["chosen"]
    ax.plot([chosen["expected_cost"]], [100 * chosen["accuracy"]], "*", color="C3", markersize=14, label="chosen")
    ax.set_xlabel(f"expected {search['cost_unit']}")
    ax.set_ylabel("accuracy on the held-out samples (%)")
    ax.set_title(f"exit placements: {search['placements_evaluated']:,} evaluated")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def exit_search_lines(search: dict) -> list[str]:
    """adaptc.add_exits' search as Markdown: candidates, then the Pareto front."""
    lines = ["## Exit placement search", "", f"{search['placements_evaluated']:,} placements of at most "
             f"{max(len(p['heads']) for p in search['pareto'])} heads over {len(search['candidates'])} candidates; "
             f"thresholds on {search['samples']['thresholds']:,} held-out samples, heads trained on "
             f"{search['samples']['heads']:,}.", "", "| candidate | after | shape |", "|---|---|---|"]
    lines += [f"| {c['index']} | {c['after']} | {c['shape']} |" for c in search["candidates"]]
    lines += ["", f"| heads (candidate: kind) | expected {search['cost_unit']} | accuracy | speedup |",
              "|---|---|---|---|"]
    for p in search["pareto"]:
        heads = ", ".join(f"{h['candidate']}: {h['kind']}" for h in p["heads"]) or "(none)"
        mark = " **(chosen)**" if p["heads"] == search["chosen"]["heads"] else ""
        lines.append(f"| {heads}{mark} | {p['expected_cost']:,.0f} | {p['accuracy']:.2%} | {p['speedup']:.2f}x |")
    return lines + [""]


def write_report(m, sim, directory: Path, accuracy: list[float] | None = None) -> Path:
    """``directory/report.md`` with the simulation's tables and plots (cost per level, per step,
    the memory plan); ``accuracy`` per level, when known, joins the level table and gets a plot
    of accuracy against cost; a model from adaptc.add_exits adds its placement search (the
    Pareto front, table and plot). Written atomically (``atomic_directory``)."""
    gpu = sim.unit == "seconds"
    unit = "simulated latency (us)" if gpu else "simulated cycles"
    f = (lambda v: "-" if v is None else f"{v * 1e6:,.1f}") if gpu else (lambda v: "-" if v is None else f"{v:,.0f}")
    lines = [f"# {sim.model} on {sim.target}", ""]
    settings = ", ".join(f"{k}: {v}" for k, v in sim.settings.items())
    if not gpu:
        lines += [f"Clock {sim.clock_hz / 1e6:g} MHz, {settings}. Flash {sim.flash_bytes:,} B "
                  f"(code {sim.code_bytes:,}, constants {sim.weight_bytes:,}); RAM {sim.ram_bytes:,} B "
                  f"(arena {sim.arena_bytes:,}, stack {sim.stack_bytes:,}).", ""]
    else:
        lines += [f"{settings}; roofline at batch 1.", ""]
    lines += ["## Utilization levels", "",
              f"| level | {unit}, worst | {unit}, leaving at exit 0 | expected | latency, worst | MACs |"
              + (" accuracy |" if accuracy else ""),
              "|---|---|---|---|---|---|" + ("---|" if accuracy else "")]
    for lv in sim.levels:
        lines.append(f"| {lv.level} | {f(lv.cycles)} | {f(lv.cycles_min)} | {f(lv.cycles_expected)} | "
                     f"{lv.latency_s * 1e3:,.3f} ms | {lv.macs:,} |"
                     + (f" {accuracy[lv.level]:.2%} |" if accuracy else ""))
    lines += ["", "## Exits", "", f"| exit | {unit} | MACs | constants read (B) |", "|---|---|---|---|"]
    for e in sim.exits:
        lines.append(f"| {e.exit} | {f(e.cycles)} | {e.macs:,} | {e.weight_bytes:,} |")
    lines += ["", "## Steps", "", f"| step | kernel | MACs | {unit} | why |", "|---|---|---|---|---|"]
    for s in sim.steps:
        lines.append(f"| {s['step']} | {s['kernel'] or s['op']} | {s['macs']:,} | "
                     f"{f(s[sim.unit])} | {s.get('note', '')} |")
    search = (getattr(m, "augmentation", None) or {}).get("search")
    if search:
        lines += [""] + exit_search_lines(search)
    lines += ["", "## Plots", "", "![cost per level](levels.png)", ""]
    if accuracy:
        lines += ["![accuracy against cost](accuracy.png)", ""]
    if search:
        lines += ["![exit placements](exit_search.png)", ""]
    lines += ["![per step](steps.png)", "", "![arena plan](memory.png)", ""]
    with atomic_directory(directory) as tmp:
        plot_levels(sim, tmp / "levels.png")
        plot_steps(sim, tmp / "steps.png")
        plot_memory(m.scheduled, tmp / "memory.png")
        if accuracy:
            plot_accuracy(sim, accuracy, tmp / "accuracy.png")
        if search:
            plot_exit_search(search, tmp / "exit_search.png")
        (tmp / "report.md").write_text("\n".join(lines))
    return Path(directory) / "report.md"
