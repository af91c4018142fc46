"""Width levels (slimmable networks): one set of weights run at several widths.

A slimmable network (Yu et al., ICLR 2019) runs each layer on the first k of its channels, k
set by the width; batch-norm statistics, activation ranges and hence every requantization
parameter may differ per width. adaptc takes the models of each width, narrowest first, each
compiled through the ordinary pipeline to its own lowered Program, and joins them:

* ``nest(programs, path)`` checks that every width has the widest's steps (ops, wiring, kernel
  geometry but the channel counts) and that each weighted step's integer weights are a channel
  prefix of the widest's (InputError naming the width, the layer and the first output channel
  that breaks it). It returns the programs with every weighted step reading the widest's
  weights (``Step.prefix_weights``), so the weights are stored once; per-width constants --
  bias, requantization, gate thresholds -- stay each width's own.
* A level is (width, deepest exit), width-major: level ``w * exits + e`` runs width ``w`` up to
  exit ``e`` (``levels``).

The target schedules each width's program (only kernels registered with ``widths`` take a
prefix step) and plans one arena for all (adaptc.schedule.shared_arena); its build emits one
entry point over the levels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import InputError
from .program import Program, Step

WEIGHTED = ("adaptc.qconv2d", "adaptc.qdense")


class Level(NamedTuple):
    """A utilization level: the width (fraction of the widest's channels) and the deepest exit."""

    width: float
    exit: int


@dataclass
class WidthBuild:
    """What a width-level build holds beside its widest program: each width's fraction of the
    channels, the model of each width compiled alone (its module is that width's reference)
    and each width's nested program scheduled on the shared arena (the target's)."""

    fractions: list[float]
    models: list
    scheduled: list
    table: list | None = None        # per level: accuracy and cost on the labelled calibration data (level_table)
    ladder: list | None = None       # the controller's levels, cheapest first (ladder); None: every level


def levels(widths: list[float], exits: int) -> list[Level]:
    """Every (width, exit) level, width-major: level ``w * exits + e``."""
    return [Level(float(w), e) for w in widths for e in range(max(exits, 1))]


def width_fractions(programs: list[Program]) -> list[float]:
    """Each program's width: its channels over the widest's, from the first weighted layer's
    output channels (what slices; the classes of the last layer do not)."""
    wide = programs[-1]
    first = next((i for i, s in enumerate(wide.steps) if s.op in WEIGHTED), None)
    if first is None:
        return [1.0] * len(programs)
    full = wide.steps[first].out_shape[-1]
    return [round(p.steps[first].out_shape[-1] / full, 4) for p in programs]


def nest(programs: list[Program], path: str, names: list[str] | None = None) -> list[Program]:
    """The programs of each width (narrowest first) with their weighted steps reading the
    widest's weights (module docstring); InputError where a width is not a prefix of the widest."""
    names = names or [f"width {i}" for i in range(len(programs))]
    wide = programs[-1]
    for prog, name in zip(programs, names):
        _same_structure(prog, wide, name, names[-1], path)
    for prog, name in zip(programs[:-1], names[:-1]):
        for step, top in zip(prog.steps, wide.steps):
            if step.op in WEIGHTED:
                _check_prefix(step, top, name, names[-1], path)
    return [_sharing(prog, programs) for prog in programs]


def _same_structure(prog: Program, wide: Program, name: str, wide_name: str, path: str) -> None:
    def fail(what: str):
        raise InputError(f"{path}: {name} is not a width of {wide_name}: {what}")

    if len(prog.steps) != len(wide.steps) or len(prog.tensors) != len(wide.tensors):
        fail(f"{len(prog.steps)} steps over {len(prog.tensors)} tensors against {len(wide.steps)} over "
             f"{len(wide.tensors)}")
    if [e.gate for e in prog.exits] != [e.gate for e in wide.exits]:
        fail(f"exits after steps {[e.gate for e in prog.exits]} against {[e.gate for e in wide.exits]}")
    for s, t in zip(prog.steps, wide.steps):
        if s.op != t.op or s.inputs != t.inputs or s.output != t.output:
            fail(f"step {s.index} is {s.op} [{s.source}], the widest's is {t.op} [{t.source}]")
        for a, b in zip(s.in_shapes + [s.out_shape], t.in_shapes + [t.out_shape]):
            if len(a) != len(b) or any(x > y for x, y in zip(a, b)):
                fail(f"step {s.index} [{s.source}] has shape {list(a)} where the widest's has {list(b)}")
        if s.op in WEIGHTED:
            w, v = s.consts["weights"], t.consts["weights"]
            if w.dtype != np.int8 or v.dtype != np.int8:
                raise InputError(f"{path}: width levels take int8 weights; step {s.index} [{s.source}] has "
                                 f"{w.dtype} (quantize the models: calibration=)")
            if w.ndim != v.ndim or any(x > y for x, y in zip(w.shape, v.shape)):
                fail(f"step {s.index} [{s.source}]: weights {list(w.shape)} against the widest's {list(v.shape)}")
            for key in ("strides", "padding", "dilation", "kernel_layout", "filter_offset"):
                if key in s.attrs and s.attrs[key] != t.attrs[key]:
                    fail(f"step {s.index} [{s.source}]: {key} {s.attrs[key]} against {t.attrs[key]}")


def _check_prefix(step: Step, top: Step, name: str, wide_name: str, path: str) -> None:
    """``step``'s weights equal the widest's on their index ranges, or InputError naming the
    first output channel (the weights' last axis: HWIO, HWOI, [in, out]) where they differ."""
    w = step.consts["weights"]
    view = top.consts["weights"][tuple(slice(0, n) for n in w.shape)]
    if np.array_equal(w, view):
        return
    out = w.shape[-1]
    bad = np.flatnonzero((w != view).reshape(-1, out).any(axis=0))[0]
    raise InputError(f"{path}: {name}, layer {step.source}: output channel {bad}'s weights are not the first "
                     f"{list(w.shape)} of {wide_name}'s {list(top.consts['weights'].shape)} -- the weights "
                     "of a width must be a channel prefix of the widest's (int8: quantized with the same "
                     "per-channel scales)")


def _sharing(prog: Program, programs: list[Program]) -> Program:
    """``prog`` with every weighted step reading the widest's weights; its ``prefix_weights``:
    the input channels of that step at every width, ascending (how a kernel may lay out the
    stored filter so that each width's channels are a prefix of every row)."""
    steps = []
    for i, s in enumerate(prog.steps):
        if s.op in WEIGHTED:
            widths = tuple(sorted({int(p.steps[i].in_shapes[0][-1]) for p in programs}))
            s = dataclasses.replace(s, consts={**s.consts, "weights": programs[-1].steps[i].consts["weights"]},
                                    prefix_weights=widths)
        steps.append(s)
    return dataclasses.replace(prog, steps=steps)


def ladder(table: list[dict]) -> list[int]:
    """The levels the C controller steps through, cheapest first: of each width, on the labelled
    data of ``table`` (level_table), the exits more accurate than that width's shallower ones
    (a deeper exit that adds nothing there is skipped; no width is: a wider one may tell inputs
    apart that the data did not), and the top level last -- the network's whole answer stays in
    reach."""
    out, best, width = [], -1.0, None
    for row in sorted(table, key=lambda r: r["level"]):
        if row["width"] != width:
            width, best = row["width"], -1.0
        if row["accuracy"] > best:
            out.append(row["level"])
            best = row["accuracy"]
    top = max(r["level"] for r in table)
    return out if out[-1] == top else out + [top]


def stream_cost(exit_cost, exits: int, ladder, start: int, end: int, exit_at) -> float:
    """The cost of one input under the C controller (templates/model.h.j2) that started at level
    ``start`` and was raised along ``ladder`` (the controller's levels) to ``end``: each width it
    passed ran up to the exit its last level there leaves at -- then the next width started
    again --, the last width up to the exit taken (resumed, no layer twice). ``exit_at(level)``:
    the exit the input leaves at when run at ``level`` (the gates are deterministic: a resumed run
    leaves where a fresh one would); ``exit_cost``: the cost of leaving at each exit of each
    width, width-major (adaptc.sim: ``Simulation.exits``)."""
    ladder = list(ladder)
    visited = ladder[ladder.index(start):ladder.index(end) + 1]
    last = {level // exits: level for level in visited}           # each width's last level
    return float(sum(exit_cost[w * exits + exit_at(level)] for w, level in last.items()))


def level_table(m, x, labels) -> list[dict]:
    """Per level of a width-level build ``m`` (a built CompiledModel): on the labelled inputs
    ``x`` (in the model's input type), run through the build, the accuracy, the share leaving at
    each exit and the expected simulated cost (adaptc.sim, each input at the exit it takes) --
    with the worst case (every input through the level's exit) and the MACs to it."""
    from .sim import simulate

    sim = simulate(m)
    labels = np.asarray(labels).reshape(-1)
    rows = []
    for level, (width, cap) in enumerate(m.levels):
        results = [m.run(v, level=level) for v in x]
        taken = np.array([r.exit for r in results])
        base = level - cap
        rows.append({"level": level, "width": width, "exit": cap,
                     "accuracy": float(np.mean(np.array([r.label for r in results]) == labels)),
                     "exit_shares": [float(np.mean(taken == e)) for e in range(cap + 1)],
                     "expected_cost": float(np.mean([sim.exits[base + e].cycles for e in taken])),
                     "worst_cost": float(sim.exits[level].cycles), "macs": int(sim.exits[level].macs),
                     "cost_unit": sim.unit})
    return rows
