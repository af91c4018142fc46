"""Scheduling a program for a Cortex-M core: a kernel per step, scratch, the arena, the flash.

``schedule(program, core, kernels)`` picks for every step the first kernel record, over the
core's variants best first (or those ``kernels`` allows), whose builder accepts it
(kernels/registry.py ``select``); plans the arena with each kernel's scratch (one buffer live
during its step only); and counts each step's flash: its own arrays, plus each shared table the
first time a step uses it. The result is the ``ScheduledProgram`` the C renderer, the cost
model, the size estimate and the report read; the program itself is not changed.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from adaptc.errors import TargetError
from adaptc.program import Program, Step
from adaptc.schedule import ScheduledProgram, ScheduledStep, plan_arena, shared_arena

from .kernels import select


def variants(core, kernels: str | None = None) -> tuple[str, ...]:
    """The kernel variants a step may use on ``core``, best first: all it runs, or those named
    in ``kernels`` (comma-separated, e.g. "ref")."""
    if not kernels:
        return core.kernel_variants
    allowed = tuple(v for v in core.kernel_variants if v in str(kernels).split(","))
    if not allowed:
        raise TargetError(f"kernels={kernels!r}: {core.name} runs {', '.join(core.kernel_variants)}")
    return allowed


def schedule(program: Program, core, kernels: str | None = None) -> ScheduledProgram:
    allowed = variants(core, kernels)
    calls = [select(step, program, allowed) for step in program.steps]
    planner, offsets, scratch = plan_arena(program, {s.index: c.scratch_bytes for s, c in zip(program.steps, calls)},
                                           {s.index: c.in_place for s, c in zip(program.steps, calls)})
    shared: dict[str, np.ndarray] = {}
    steps = []
    for step, call in zip(program.steps, calls):
        flash = call.array_bytes
        for key, data in sorted(call.shared.items()):
            if key in shared:
                if not np.array_equal(shared[key], data):
                    raise TargetError(f"shared table {key!r} differs between steps")
                continue
            shared[key] = data
            flash += int(data.nbytes)
        steps.append(ScheduledStep(step, call.function, call.variant, flash, call.scratch_bytes,
                                   scratch.get(step.index), call, call.why))
    return ScheduledProgram(program, core.name, steps, planner, offsets)


def constants(step: Step, program: Program, core) -> tuple[int, dict[str, int]]:
    """(bytes of the step's own flash arrays, {shared table: bytes}) of the kernel ``core``
    would run for ``step``."""
    call = select(step, program, core.kernel_variants)
    return call.array_bytes, {k: int(v.nbytes) for k, v in call.shared.items()}


def schedule_widths(programs: list[Program], core, kernels: str | None = None) -> list[ScheduledProgram]:
    """The program of each width level (adaptc.widths; narrowest first) scheduled for ``core``
    on one shared arena (adaptc.schedule.shared_arena). The C stores an array once however many
    steps or widths use it (emit.py), so a step's flash counts only the arrays no wider width
    and no earlier step stored: the shared weights once, at the widest."""
    scheduled = shared_arena([schedule(p, core, kernels) for p in programs])
    stored: set = set()
    out = []
    for sp in reversed(scheduled):
        steps = []
        for st in sp.steps:
            flash = 0
            for data in [d for _, d in st.call.arrays] + list(st.call.shared.values()):
                key = array_key(data)
                if data is not None and key not in stored:
                    stored.add(key)
                    flash += int(data.nbytes)
            steps.append(replace(st, flash_bytes=flash))
        out.append(replace(sp, steps=steps))
    return out[::-1]


def array_key(data: np.ndarray | None):
    """What makes two flash arrays one in a width-level build: type and bytes."""
    return None if data is None else (str(data.dtype), data.tobytes())
