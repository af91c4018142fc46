"""Scheduling a program for a batched target: every step is computed by its composite's Relax
body (fused and scheduled by TVM when built), its constants stored as they are; the arena plan
is one sample's activations."""
from __future__ import annotations

from adaptc.program import Program, Step
from adaptc.schedule import ScheduledProgram, ScheduledStep, plan_arena


def constants(step: Step) -> int:
    """Bytes of the constants the TVM module holds for ``step``."""
    return sum(int(c.nbytes) for c in step.consts.values())


def schedule(program: Program, target: str) -> ScheduledProgram:
    planner, offsets, _ = plan_arena(program)
    steps = [ScheduledStep(s, s.op, "tvm", constants(s)) for s in program.steps]
    return ScheduledProgram(program, target, steps, planner, offsets)
