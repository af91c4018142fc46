"""``adaptc.simulate``: cycles, latency, flash and RAM per utilization level and per exit,
estimated from the lowered Program -- the steps the C executes -- without running the model.

Cortex-M: each step's executed instructions per class (load, store, mac, branches, other) from
the per-core, per-kernel tables of adaptc.costs (fitted on synthetic layers on the emulated
cores), turned into cycles by the per-core timing rules of adaptc.timing (flash wait states
and the Cortex-M0+ multiplier as parameters); flash and RAM from adaptc.sizes (code per
kernel, weights and parameter structs exactly, arena from the memory plan, stack from kernel
frames). The same timing rules applied to the per-step counts measured on the emulated core
(``measured``) are what the estimate is tested against.

Levels: level L runs at most through exit L. ``cycles`` of a level is the cost of running
through its deepest exit (the worst case), ``cycles_min`` that of leaving at exit 0; with
``data`` the inputs are run (the host build of the C) to measure at which exit each leaves,
giving ``cycles_expected``. A model without exits has one level.

CUDA (``target="cuda"``): a roofline per step -- 2 x MACs (plus one op per element for the
rest) against the device's peak, bytes moved (inputs, outputs, constants) against its memory
bandwidth, plus a kernel launch overhead -- on an H100 or H200 preset (``device=``).
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError


@dataclass
class ExitSim:
    exit: int
    step: int                        # its gate (the last step of its segment)
    cycles: float                    # running to this exit and leaving there (its gate included)
    instructions: float
    macs: int
    weight_bytes: int                # constants the steps up to here read


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


@dataclass
class Simulation:
    model: str
    target: str
    clock_hz: float
    levels: list[LevelSim]
    exits: list[ExitSim]
    steps: list[dict]                # per step: kernel, macs, cycles, instructions by class
    flash_bytes: int
    code_bytes: int
    weight_bytes: int
    ram_bytes: int
    arena_bytes: int
    stack_bytes: int
    settings: dict = field(default_factory=dict)     # wait_states, small_multiplier / device

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
             wait_states: int = 0, small_multiplier: bool = False, device: str = "h100") -> Simulation:
    """Simulate ``compiled`` (a CompiledModel) on ``target`` (default: the one it was compiled
    for; another Cortex-M core re-renders the same Program with that core's kernels) at
    ``clock_hz`` (default: the target's typical clock). ``data``: inputs (N, *input shape) in
    the model's input type, to measure the exit distribution."""
    target = target or compiled.target
    if target == "cuda":
        return _simulate_gpu(compiled, device, data)
    from .targets.cortex_m import get_target

    core = get_target(target)
    m = compiled if target == compiled.target else _retarget(compiled, target)
    clock = float(clock_hz or core.clock_hz)
    if clock <= 0:
        raise InputError(f"clock_hz must be positive, got {clock_hz}")
    from . import costs, sizes, timing

    def cost(classes):
        return timing.cycles(classes, core.name, wait_states=wait_states, small_multiplier=small_multiplier)

    prog = m.program
    n_levels = max(len(prog.exits), 1)
    runs = [costs.program_classes(prog, core.name, level if prog.exits else None) for level in range(n_levels)]
    steps = []
    for s, classes in zip(prog.steps, runs[-1]):     # the top level: every step runs
        steps.append({"step": s.index, "kernel": s.kernel, "op": s.op, "macs": int(s.macs), "cycles": cost(classes),
                      "instructions": float(sum(classes.values())), "classes": classes})
    size = sizes.estimate(prog, core)
    gates = [e.gate for e in prog.exits] or [len(prog.steps) - 1]
    exits = []
    for i, (g, run) in enumerate(zip(gates, runs)):   # leaving at exit i = running through it
        exits.append(ExitSim(i, g, float(sum(cost(c) for c in run)), float(sum(sum(c.values()) for c in run)),
                             int(sum(st.macs for st in prog.steps[:g + 1])),
                             int(sum(st.flash_bytes for st in prog.steps[:g + 1]))))
    ram = size.ram_bytes                 # static (arena) + stack
    levels = [LevelSim(level, e.cycles, exits[0].cycles, e.cycles / clock, size.flash_bytes, ram, e.macs)
              for level, e in enumerate(exits)]
    if data is not None:
        _expected(m, data, exits, levels, clock)
    return Simulation(m.info.name, core.name, clock, levels, exits, steps, size.flash_bytes, size.code_bytes,
                      size.weight_bytes, size.ram_bytes, size.arena_bytes, size.stack_bytes,
                      {"wait_states": wait_states, "small_multiplier": small_multiplier})


def _retarget(compiled, target: str):
    from .api import compile_program

    return compile_program(copy.deepcopy(compiled.program), target, info=compiled.info, mod=compiled.mod,
                           format=compiled.format, quantization=compiled.program_io_quant)


def _expected(m, data, exits, levels, clock):
    """Run ``data`` through the host build at every level: the exit distribution per level."""
    xs = np.asarray(data)
    if xs.shape[1:] != tuple(m.input.shape) and xs.shape[1:] == tuple(m.input.shape[1:]):
        xs = xs[:, None]
    cost = np.array([e.cycles for e in exits])
    for lv in levels:
        if m.program.exits:
            taken = np.array([m.run(x, level=lv.level).exit for x in xs])
        else:
            taken = np.zeros(len(xs), int)
        lv.exit_shares = [float(np.mean(taken == i)) for i in range(len(exits))]
        lv.cycles_expected = float(cost[taken].mean())
        lv.latency_expected_s = lv.cycles_expected / clock


# ------------------------------------------------------------------------------------ GPU

@dataclass(frozen=True)
class GPU:
    name: str
    int8_ops: float                  # dense int8 tensor-core ops / s
    fp32_flops: float                # non-tensor fp32 / s
    bandwidth: float                 # HBM bytes / s
    launch_s: float                  # per kernel launch (driver + scheduling), measured orders of magnitude


GPUS = {
    # NVIDIA H100 SXM5 / H200 SXM datasheets: 1,979 dense INT8 TOPS, 67 TFLOPS FP32; HBM3 3.35 TB/s, HBM3e 4.8 TB/s
    "h100": GPU("NVIDIA H100 SXM", 1979e12, 67e12, 3.35e12, 4e-6),
    "h200": GPU("NVIDIA H200 SXM", 1979e12, 67e12, 4.8e12, 4e-6),
}


def _simulate_gpu(compiled, device: str, data) -> Simulation:
    """Roofline per step at batch 1: max(ops / peak, bytes / bandwidth) + one launch."""
    if device not in GPUS:
        raise InputError(f"unknown GPU {device!r}; choose one of {', '.join(GPUS)}")
    g = GPUS[device]
    prog = compiled.program
    peak = g.int8_ops if compiled.format == "int8" else g.fp32_flops
    steps, cum = [], []
    total = 0.0
    for s in prog.steps:
        out = int(np.prod(s.out_shape)) if s.out_shape else 1
        ops = 2.0 * s.macs + out
        nbytes = (sum(int(np.prod(sh)) for sh in s.in_shapes) + out) * (1 if compiled.format == "int8" else 4) \
            + s.flash_bytes
        t = max(ops / peak, nbytes / g.bandwidth) + g.launch_s
        total += t
        cum.append(total)
        steps.append({"step": s.index, "kernel": s.kernel, "op": s.op, "macs": int(s.macs), "seconds": t,
                      "ops": ops, "bytes": nbytes})
    gates = [e.gate for e in prog.exits] or [len(prog.steps) - 1]
    exits = [ExitSim(i, gt, cum[gt], float("nan"), int(sum(s.macs for s in prog.steps[:gt + 1])),
                     int(sum(s.flash_bytes for s in prog.steps[:gt + 1]))) for i, gt in enumerate(gates)]
    # on the GPU, "cycles" are seconds x 1 Hz: latency_s carries the figure
    levels = [LevelSim(lv, e.cycles, exits[0].cycles, e.cycles, prog.weight_bytes, prog.arena_bytes, e.macs)
              for lv, e in enumerate(exits)]
    if data is not None:
        _expected(compiled, data, exits, levels, 1.0)
    return Simulation(compiled.info.name, "cuda", 1.0, levels, exits, steps, prog.weight_bytes, 0,
                      prog.weight_bytes, prog.arena_bytes, prog.arena_bytes, 0, {"device": g.name})
