"""The batched target family: the integer program as batched segments, built by TVM for a CPU
(``llvm``) or an NVIDIA GPU (``cuda``), with the samples that leave at an exit compacted out of
the deeper segments.

batched.py                 segments over a symbolic batch, BatchedModel, the TVM build, CUDA source
schedule_fused_kernels.py  the TIR schedule: one kernel per fused group (a Relax/TIR pass)
tuning.py                  MetaSchedule tuning with records reused across builds
runtime.py                 the host orchestration on TVM's runtime alone (deployment)
roofline.py                the cost model: a roofline per step on an H100 / H200 preset

Importing this package imports neither TVM's compiler nor its runtime: ``build`` loads
batched.py (the TVM compiler) when a model is built, so that an exported build runs with the
runtime alone (runtime.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from adaptc.errors import InputError
from adaptc.program import Program, Step
from adaptc.schedule import ScheduledProgram

from ..base import Board, Capabilities, MemoryFigures, StepCost
from . import roofline
from .schedule import constants, schedule


@dataclass(frozen=True)
class MemoryEstimate(MemoryFigures):
    """Device memory of one sample's program: constants and activations (no code, no stack)."""

    weight_bytes: int
    arena_bytes: int
    code_bytes: int = 0
    stack_bytes: int = 0

    @property
    def static_ram_bytes(self) -> int:
        return self.arena_bytes


@dataclass(frozen=True)
class BatchedTarget:
    """``llvm`` or ``cuda``: the program in batched segments, compiled by TVM (batched.py)."""

    name: str
    needs_gpu: bool
    board: Board | None = None       # no memory budget applies
    clock_hz: float = 1.0            # costs are seconds

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batched=True, needs_gpu=self.needs_gpu, tunable=True, cost_unit="seconds")

    @property
    def kernel_variants(self) -> tuple[str, ...]:
        return ("tvm",)

    def constants(self, step: Step, program: Program) -> tuple[int, dict[str, int]]:
        """The constants the TVM module holds for ``step``: its arrays as they are."""
        return constants(step), {}

    def schedule(self, program: Program, kernels: str | None = None) -> ScheduledProgram:
        """schedule.py: every step computed by its composite's Relax body."""
        if kernels is not None:
            raise InputError(f"kernels= chooses Cortex-M kernel variants; it does not apply to target {self.name!r}")
        return schedule(program, self.name)

    def build(self, model, arch: str | None = None, tune=None, batch: int | None = None):
        """A ``BatchedModel`` (batched.py): the segments compiled by TVM for this target; ``arch``
        the CUDA architecture (default sm_90), ``tune`` a ``tuning.Tuning`` (or a dict of its
        fields), ``batch`` a static batch size (default: symbolic)."""
        from .batched import build  # the TVM compiler: only when a model is built
        from .tuning import Tuning

        if isinstance(tune, dict):
            tune = Tuning(**tune)
        return build(model, self.name, arch or "sm_90", batch=batch, tune=tune)

    def cost(self, scheduled: ScheduledProgram, level: int | None = None, device: str = "h100") -> list[StepCost]:
        return roofline.step_costs(scheduled, level, device)

    def memory(self, scheduled: ScheduledProgram) -> MemoryEstimate:
        return MemoryEstimate(scheduled.weight_bytes, scheduled.arena_bytes)


TARGETS = (BatchedTarget("llvm", needs_gpu=False), BatchedTarget("cuda", needs_gpu=True))
