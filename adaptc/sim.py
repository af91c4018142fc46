"""``adaptc.simulate``: cycles, latency, flash and RAM per utilization level and per exit,
estimated from the scheduled program -- the steps the target executes -- without running the
model.

The figures come from the target (adaptc.targets): ``cost`` per step of one inference at a
level, ``memory`` for flash, RAM and stack. Cortex-M: each step's executed instructions per
class from per-core, per-kernel tables fitted on synthetic layers on the emulated cores, turned
into cycles by per-core timing rules (flash wait states and the Cortex-M0+ multiplier as
settings); flash and RAM from measured code sizes, the exact constants, the arena plan and
kernel frames (targets/cortex_m: costs.py, timing.py, sizes.py). The same timing rules applied
to the per-step counts measured on the emulated core are what the estimate is tested against.

Levels: level L runs at most through exit L (a width-level build, adaptc.widths: width L // exits
up to exit L % exits, and ``exits`` lists every width's). ``cycles`` of a level is the cost of
running through its deepest exit (the worst case), ``cycles_min`` that of leaving at its width's
exit 0; with
``data`` the inputs are run (the host build of the C) to measure at which exit each leaves,
giving ``cycles_expected``. A model without exits has one level.

Batched targets (``target="cuda"`` / ``"llvm"``): a roofline per step in seconds -- 2 x MACs
(plus one op per element for the rest) against the device's peak, bytes moved against its memory
bandwidth, plus a kernel launch -- on an H100 or H200 preset (``device=``;
targets/cuda/roofline.py). Their "cycles" are seconds at a 1 Hz clock: ``unit`` says which.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from . import targets
from .errors import InputError


@dataclass
class ExitSim:
    exit: int
    step: int                        # its gate (the last step of its segment)
    cycles: float                    # running to this exit and leaving there (its gate included)
    instructions: float
    macs: int
    weight_bytes: int                # constants the steps up to here read
    width: float = 1.0               # a width-level build: the width this exit runs at


@dataclass
class LevelSim:
    level: int
    cycles: float                    # through the level's deepest exit: the worst case
    cycles_min: float                # leaving at exit 0
    latency_s: float                 # cycles / clock
    flash_bytes: int                 # the whole image's model part: code + constants (every level)
    ram_bytes: int                   # arena + static data + stack
    macs: int                        # through the deepest exit
    cycles_expected: float | None = None      # with data: under the measured exit distribution
    latency_expected_s: float | None = None
    exit_shares: list[float] | None = None    # with data: share of inputs leaving at each exit
    width: float = 1.0               # a width-level build (adaptc.widths): the level's width


@dataclass
class Simulation:
    model: str
    target: str
    clock_hz: float
    levels: list[LevelSim]
    exits: list[ExitSim]
    steps: list[dict]                # per step: kernel, op, macs, its cost under the unit's name, breakdown
    flash_bytes: int
    code_bytes: int
    weight_bytes: int
    ram_bytes: int
    arena_bytes: int
    stack_bytes: int
    settings: dict = field(default_factory=dict)     # the target's cost settings (wait_states, device...)
    unit: str = "cycles"                             # of ``cycles``: "cycles", or "seconds" (batched targets)

    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=_plain)


def _plain(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    raise TypeError(f"not JSON: {type(v).__name__}")


def simulate(compiled, target: str | None = None, clock_hz: float | None = None, data=None,
             **settings) -> Simulation:
    """Simulate ``compiled`` (a CompiledModel) on ``target`` (default: the one it was compiled
    for; another target schedules the same program with its own kernels) at ``clock_hz``
    (default: the target's typical clock). ``data``: inputs (N, *input shape) in the model's
    input type, run through the model's build to measure the exit distribution. ``settings``:
    the target's cost settings -- Cortex-M: ``wait_states`` (flash wait states, default 0),
    ``small_multiplier`` (the Cortex-M0+'s 32-cycle multiplier); batched targets: ``device``
    ("h100" or "h200")."""
    tgt = targets.get(target or compiled.target)
    widths = compiled.width_levels
    if widths and tgt.name != compiled.target:
        raise InputError(f"a width-level build simulates on the target it was built for ({compiled.target})")
    scheduled = compiled.scheduled if tgt.name == compiled.target else tgt.schedule(compiled.program)
    sim = estimate(scheduled, tgt, clock_hz, **settings)
    if widths:
        sim = _width_levels(sim, [estimate(sp, tgt, clock_hz, **settings) for sp in widths.scheduled],
                            widths.fractions, compiled.weight_bytes)
    sim.model = compiled.info.name
    if data is not None:
        _expected(compiled, data, sim)
    return sim


def estimate(scheduled, target, clock_hz: float | None = None, **settings) -> Simulation:
    """The simulation of a program scheduled for ``target`` (a target object): per step, per
    exit and per level, from the target's cost and memory estimates; no data."""
    clock = float(clock_hz or target.clock_hz)
    if clock <= 0:
        raise InputError(f"clock_hz must be positive, got {clock_hz}")
    prog = scheduled.program
    unit = target.capabilities.cost_unit
    try:
        runs = [target.cost(scheduled, level if prog.exits else None, **settings)
                for level in range(max(len(prog.exits), 1))]
    except TypeError as e:             # a setting the target does not take
        raise InputError(f"simulate on {target.name}: {e}") from None
    steps = []
    for s, c in zip(scheduled.steps, runs[-1]):     # the top level: every step runs
        steps.append({"step": s.index, "kernel": s.kernel, "note": s.note, "op": s.op, "macs": int(s.macs),
                      unit: c.cost,
                      **({"instructions": c.instructions} if c.instructions is not None else {}), **c.detail})
    size = target.memory(scheduled)
    effective = {k: p.default for k, p in inspect.signature(target.cost).parameters.items()
                 if p.default is not inspect.Parameter.empty and k != "level"}
    effective.update(settings)
    gates = [e.gate for e in prog.exits] or [len(prog.steps) - 1]
    exits = []
    for i, (g, run) in enumerate(zip(gates, runs)):   # leaving at exit i = running through it
        exits.append(ExitSim(i, g, float(sum(c.cost for c in run)),
                             float(sum(c.instructions or 0.0 for c in run)) if unit == "cycles" else float("nan"),
                             int(sum(st.macs for st in prog.steps[:g + 1])),
                             int(sum(st.flash_bytes for st in scheduled.steps[:g + 1]))))
    levels = [LevelSim(level, e.cycles, exits[0].cycles, e.cycles / clock, size.flash_bytes, size.ram_bytes, e.macs)
              for level, e in enumerate(exits)]
    return Simulation(prog.name, target.name, clock, levels, exits, steps, size.flash_bytes, size.code_bytes,
                      size.weight_bytes, size.ram_bytes, size.arena_bytes, size.stack_bytes, effective, unit)


def _width_levels(wide: Simulation, sims: list[Simulation], fractions: list[float], weight_bytes: int) -> Simulation:
    """One simulation of a width-level build from each width's: the levels and exits width-major
    (level ``w * exits + e``: width ``w``'s exit ``e``), the flash with every width's constants
    (the weights once: ``weight_bytes``) over the widest's code estimate."""
    exits, levels = [], []
    flash = wide.flash_bytes - wide.weight_bytes + weight_bytes
    for sim, f in zip(sims, fractions):
        for e, lv in zip(sim.exits, sim.levels):
            exits.append(ExitSim(len(exits), e.step, e.cycles, e.instructions, e.macs, e.weight_bytes, f))
            levels.append(LevelSim(len(levels), lv.cycles, lv.cycles_min, lv.latency_s, flash, lv.ram_bytes, lv.macs,
                                   width=f))
    return Simulation(wide.model, wide.target, wide.clock_hz, levels, exits, wide.steps, flash,
                      wide.code_bytes, weight_bytes, wide.ram_bytes, wide.arena_bytes, wide.stack_bytes,
                      wide.settings, wide.unit)


def _expected(m, data, sim: Simulation) -> None:
    """Run ``data`` through the model's build at every level: the exit distribution per level."""
    xs = np.asarray(data)
    if xs.shape[1:] != tuple(m.input.shape) and xs.shape[1:] == tuple(m.input.shape[1:]):
        xs = xs[:, None]
    cost = np.array([e.cycles for e in sim.exits])
    per_width = len(m.program.exits) or 1
    for lv in sim.levels:
        taken = m.exits_taken(xs, lv.level)
        lv.exit_shares = [float(np.mean(taken == i)) for i in range(per_width)]
        lv.cycles_expected = float(cost[lv.level // per_width * per_width + taken].mean())
        lv.latency_expected_s = lv.cycles_expected / sim.clock_hz
