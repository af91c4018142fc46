"""What a target is: the protocol the rest of adaptc talks to, and the facts it declares.

The core (``adaptc.compile``, ``adaptc.simulate``, the mixed-precision search, the CLI) never
names a target: it asks the registry (``adaptc.targets.get``) for one and uses only what is
declared here. A target

* declares its ``name``, its ``capabilities`` (instruction-set extensions, whether it runs on
  an emulated core or on batches, the unit its cost model returns), its kernel variants best
  first, and the memory of its reference board (``board``; ``None`` where no budget applies);
* ``schedule(program, kernels)`` -- a pure function: the lowered Program with the target's
  choices (``adaptc.schedule.ScheduledProgram``: kernel and variant per step, scratch, arena
  plan, flash per step), before any code exists;
* ``constants(step, program)`` -- the flash one step's constants take as the target stores them,
  and the tables it shares with other steps (what the mixed-precision search prices);
* ``build(model)`` -- a ``CompiledModel`` of the target's own class from the target-independent
  one (C sources and a firmware project, or a batched TVM build);
* ``cost(scheduled, level, **settings)`` -- per step, the cost of one inference at a utilization
  level (steps past the level's exit cost nothing), in ``capabilities.cost_unit``;
* ``memory(scheduled)`` -- flash (code + constants), static RAM, arena and stack, estimated
  without building anything (a ``MemoryFigures``).

Adding a target: CONTRIBUTING.md, "Add a target".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from adaptc.model import CompiledModel
    from adaptc.program import Program, Step
    from adaptc.schedule import ScheduledProgram


@dataclass(frozen=True)
class Capabilities:
    dsp: bool = False                # Armv7E-M DSP extension (SMLAD, SXTB16)
    fpu: bool = False                # single-precision FPU
    mve: bool = False                # Helium (M-profile vector extension)
    emulated: bool = False           # runs on an emulated core: exact instruction counts (adaptc run)
    batched: bool = False            # builds batched segments with exit compaction
    needs_gpu: bool = False          # running a build needs a GPU
    tunable: bool = False            # MetaSchedule tuning applies (tune=)
    cost_unit: str = "cycles"        # what cost() returns: "cycles" or "seconds"


@dataclass(frozen=True)
class Board:
    """Memory of a board: the reference board of a core (budget checks) or the emulated one;
    for the reference boards also the usual core clock and the flash wait states it needs there
    (the simulator's defaults, from the parts' datasheets)."""

    name: str
    flash_bytes: int
    ram_bytes: int
    flash_origin: int = 0x0
    ram_origin: int = 0x20000000
    clock_hz: float = 0.0
    flash_wait_states: int = 0


@dataclass(frozen=True)
class StepCost:
    """One step's cost in one inference: ``cost`` in the target's unit, and its breakdown
    (Cortex-M: executed instructions by class; GPU: operations and bytes)."""

    cost: float
    detail: dict = field(default_factory=dict)
    instructions: float | None = None


class MemoryFigures:
    """What ``Target.memory`` returns provides ``code_bytes``, ``weight_bytes``,
    ``static_ram_bytes``, ``arena_bytes`` and ``stack_bytes``; the totals follow from them."""

    @property
    def flash_bytes(self) -> int:
        """Code and constants."""
        return self.code_bytes + self.weight_bytes

    @property
    def ram_bytes(self) -> int:
        """Static RAM and the stack of one inference (the caller's input and output not included)."""
        return self.static_ram_bytes + self.stack_bytes


@runtime_checkable
class Target(Protocol):
    name: str

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def kernel_variants(self) -> tuple[str, ...]: ...

    @property
    def board(self) -> Board | None: ...

    @property
    def clock_hz(self) -> float:
        """The clock latencies are given at by default (1.0 where costs are seconds)."""

    def schedule(self, program: Program, kernels: str | None = None) -> ScheduledProgram: ...

    def constants(self, step: Step, program: Program) -> tuple[int, dict[str, int]]: ...

    def build(self, model: CompiledModel, **options) -> CompiledModel: ...

    def cost(self, scheduled: ScheduledProgram, level: int | None = None, **settings) -> list[StepCost]: ...

    def memory(self, scheduled: ScheduledProgram): ...
