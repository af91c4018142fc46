"""Analytic instruction counts of a scheduled program on Cortex-M cores, per step and class.

No model runs here. A step's executed instructions of each class (load, store, mac,
branch_taken, branch_not_taken, other -- emulator.py) are predicted as a linear function
of a few **loop counts** of the C kernel the schedule chose for it (``ScheduledStep.kernel``): how often
each loop body of templates/kernels/<kernel>.c runs for the step's shapes and parameters --
calls, output pixels, filter rows, in-bounds taps, MACs, im2col columns by the path they take,
dot-product groups, decoded weight codes, copied bytes... The features of each kernel
mirror its loop nest (the ``features`` of its record, kernels/registry.py), and are exact
counts, not estimates: padding, partial pixel blocks, channel remainders, per-channel
requantization paths and power-of-two weights equal to zero are counted from the step.

The coefficients -- instructions of each class per execution of each loop body, per (core,
kernel function) -- are fitted by non-negative least squares on synthetic single-layer
programs run on the emulated cores (benchmarks/fit_cost_tables.py; never on the evaluation
models) and stored in targets/cortex_m/data/cost_tables.json. Each fitted entry also holds its fit
residuals. The intercept ("call") absorbs the per-step glue of ``<prefix>_run``: argument set-up
and the call (and, in the profiled build the emulator counts, the two instructions of the step
marker call). Leaving at an exit costs the ``<prefix>_leave`` epilogue (arg-max over the head's
classes): the gate features ``taken`` and ``taken_classes``, set for the gate of the exit
taken (``exit_taken``).

A kernel that a program calls from one step only is inlined by gcc into ``<prefix>_run`` and
specialised to that step's constant parameters (strength-reduced index arithmetic, unrolled
fixed-size loops); those steps (``inlined_steps``) use coefficients of their own over the same
features, fitted on programs that call each kernel once and pulled towards the out-of-line ones
where those samples leave them undetermined. Data-dependent branches (clamps, max comparisons,
soft-float normalisation, softmax entries that underflow) are fitted on random data: the
estimate is that of a typical input.

A feature function returns every count its kernel has (zeros included), so that a table entry
covers every path of the kernel; a path the synthetic layers never took has coefficient 0
(benchmarks/fit_cost_tables.py lists them).
"""
from __future__ import annotations

import functools
import json
from collections import Counter
from importlib import resources

import numpy as np

from adaptc.errors import TargetError
from adaptc.program import GATE_OPS
from adaptc.schedule import ScheduledProgram, ScheduledStep

from .kernels import KERNELS
from .timing import CLASSES


def step_features(sstep: ScheduledStep, exit_taken: bool = False) -> dict[str, float]:
    """The loop counts of the kernel the schedule chose for a step (its record's features)."""
    record = KERNELS.get(sstep.kernel)
    if record is None:
        raise TargetError(f"no kernel record {sstep.kernel!r} for step {sstep.index} ({sstep.op}); "
                          f"known: {', '.join(sorted(KERNELS))}")
    if sstep.op in GATE_OPS:
        return {k: float(v) for k, v in record.features(sstep.step, exit_taken).items()}
    return {k: float(v) for k, v in record.features(sstep.step).items()}


TABLES = "cost_tables.json"


@functools.cache
def tables() -> dict:
    """targets/cortex_m/data/cost_tables.json: {"cores": {core: {kernel: entry}}, ...}; an entry holds
    ``features`` (names, in order), ``coef`` (class -> one coefficient per feature), the number
    of fitted ``samples`` and the fit's ``residuals`` -- and under ``inlined`` the same for the
    kernel called from one step only."""
    return json.loads((resources.files("adaptc.targets.cortex_m") / "data" / TABLES).read_text())


def entry(core: str, kernel: str) -> dict:
    cores = tables()["cores"]
    if core not in cores:
        raise TargetError(f"no cost tables for core {core!r}; tables exist for {', '.join(sorted(cores))}")
    if kernel not in cores[core]:
        raise TargetError(f"no cost table entry for kernel {kernel!r} on {core}: refit with "
                          f"benchmarks/fit_cost_tables.py (entries for {core}: {', '.join(sorted(cores[core]))})")
    return cores[core][kernel]


def predict(e: dict, f: dict[str, float], inlined: bool = False) -> dict[str, float]:
    """Instructions by class of table entry ``e`` for features ``f``; ``inlined``: for a kernel
    called from one step only, the entry's inlined coefficients (when it has them)."""
    x = np.array([f.get(name, 0.0) for name in e["features"]])
    coef = e["inlined"]["coef"] if inlined and "inlined" in e else e["coef"]
    return {cls: max(float(np.dot(coef[cls], x)), 0.0) for cls in CLASSES}


def step_classes(step: ScheduledStep, core: str, exit_taken: bool = False, inlined: bool = False) -> dict[str, float]:
    """Predicted executed instructions of a scheduled step on ``core`` by class (the classes of
    ``TargetRun.steps``). ``exit_taken``: the step is the gate of the exit the inference leaves
    at (adds the leave epilogue); ``inlined``: no other step of the program calls its kernel
    (``inlined_steps``; ``program_classes`` sets both)."""
    e = entry(core, step.kernel)
    f = step_features(step, exit_taken)
    missing = set(f) - set(e["features"])
    if missing:
        raise TargetError(f"cost table entry {core}/{step.kernel} lacks features {sorted(missing)}: refit with "
                          "benchmarks/fit_cost_tables.py")
    return predict(e, f, inlined)


def program_classes(prog: ScheduledProgram, level: int | None = None) -> list[dict[str, float]]:
    """Per step of ``prog`` (scheduled for a core) the predicted instructions by class for one
    inference at ``level`` (a program with exits: running through exit ``level``, default the
    top; the steps after its gate count zero, as in ``TargetRun.steps``)."""
    core = prog.target
    last, taken = len(prog.steps) - 1, None
    if prog.exits:
        level = len(prog.exits) - 1 if level is None else int(level)
        if not 0 <= level < len(prog.exits):
            raise TargetError(f"level {level} out of range 0..{len(prog.exits) - 1}")
        last = taken = prog.exits[level].gate
    once = set(inlined_steps(prog))
    zero = dict.fromkeys(CLASSES, 0.0)
    return [step_classes(s, core, exit_taken=s.index == taken, inlined=s.index in once) if s.index <= last
            else dict(zero) for s in prog.steps]


def inlined_steps(prog: ScheduledProgram) -> list[int]:
    """Steps whose kernel no other step calls: gcc inlines such a kernel into ``<prefix>_run``
    and specialises it to the step's constants (the tables' ``inlined`` coefficients)."""
    calls = Counter(s.kernel for s in prog.steps)
    return [s.index for s in prog.steps if calls[s.kernel] == 1]
