"""The Cortex-M cores as targets: what each may use, the board it must fit, the QEMU machine that
runs it, and the operations of the target protocol (targets/base.py) -- schedule, build, cost,
memory -- over the one scheduled program."""
from __future__ import annotations

from dataclasses import dataclass

from adaptc.errors import InputError, TargetError
from adaptc.program import Program, Step
from adaptc.schedule import ScheduledProgram

from ..base import Board, Capabilities, StepCost
from . import costs, sizes, timing
from .model import CortexMModel, build_model
from .schedule import constants, schedule, schedule_widths


@dataclass(frozen=True)
class CortexM:
    """A Cortex-M core: what the generated code may use, the board whose memory a model must fit
    (``board``) and the QEMU machine that runs it (``qemu_machine``, memory ``emulated``)."""

    name: str
    cpu: str                          # gcc -mcpu
    has_dsp: bool
    has_fpu: bool
    has_mve: bool
    gcc_flags: tuple[str, ...]
    board: Board
    qemu_machine: str
    emulated: Board
    objdump_flags: tuple[str, ...] = ()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(dsp=self.has_dsp, fpu=self.has_fpu, mve=self.has_mve, emulated=True)

    @property
    def kernel_variants(self) -> tuple[str, ...]:
        """Kernel variants this core runs, best first (kernels/registry.py)."""
        return ("mve",) * self.has_mve + ("dsp",) * self.has_dsp + ("ref",)

    @property
    def flash_bytes(self) -> int:
        return self.board.flash_bytes

    @property
    def ram_bytes(self) -> int:
        return self.board.ram_bytes

    @property
    def clock_hz(self) -> float:
        return self.board.clock_hz

    def schedule(self, program: Program, kernels: str | None = None) -> ScheduledProgram:
        return schedule(program, self, kernels)

    def schedule_widths(self, programs: list[Program], kernels: str | None = None) -> list[ScheduledProgram]:
        """Each width level's program (adaptc.widths) scheduled on one shared arena."""
        return schedule_widths(programs, self, kernels)

    def constants(self, step: Step, program: Program) -> tuple[int, dict[str, int]]:
        return constants(step, program, self)

    def build(self, model, **options) -> CortexMModel:
        """The C sources (and, where they need the core's instruction set, the same program with
        portable kernels for the host), checked against the reference board's memory."""
        if options:
            raise InputError(f"{', '.join(f'{k}=' for k in options)} does not apply to target {self.name} "
                             "(options of the batched llvm / cuda builds)")
        return build_model(model, self)

    def cost(self, scheduled: ScheduledProgram, level: int | None = None, wait_states: int = 0,
             small_multiplier: bool = False) -> list[StepCost]:
        """Cycles per step of one inference at ``level``: predicted instructions by class
        (costs.py) through the core's timing rules (timing.py) with ``wait_states`` flash wait
        states and, on the Cortex-M0+, the small 32-cycle multiplier."""
        if scheduled.target != self.name:
            raise TargetError(f"a program scheduled for {scheduled.target} costed on {self.name}")
        out = []
        for classes in costs.program_classes(scheduled, level):
            cycles = timing.cycles(classes, self.name, wait_states=wait_states, small_multiplier=small_multiplier)
            out.append(StepCost(cycles, {"classes": classes}, float(sum(classes.values()))))
        return out

    def memory(self, scheduled: ScheduledProgram) -> sizes.SizeEstimate:
        return sizes.estimate(scheduled, self)


_MPS2 = Board("MPS2 FPGA image (QEMU)", 4 << 20, 4 << 20)
_AN547 = Board("MPS3 AN547 Corstone-300 (QEMU; ITCM + DTCM)", 512 << 10, 512 << 10, clock_hz=32e6)

TARGETS = CORES = (
    CortexM("cortex-m0plus", "cortex-m0plus", False, False, False, ("-mcpu=cortex-m0plus", "-mthumb"),
            Board("Raspberry Pi RP2040", 2 << 20, 264 << 10, clock_hz=133e6), "mps2-an385", _MPS2),
    CortexM("cortex-m3", "cortex-m3", False, False, False, ("-mcpu=cortex-m3", "-mthumb"),
            Board("Arduino Due (SAM3X8E)", 512 << 10, 96 << 10, clock_hz=84e6, flash_wait_states=4), "mps2-an385",
            _MPS2),
    CortexM("cortex-m4", "cortex-m4", True, True, False,
            ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
            Board("STM32F429ZI", 2 << 20, 256 << 10, clock_hz=180e6, flash_wait_states=5), "mps2-an386", _MPS2),
    CortexM("cortex-m7", "cortex-m7", True, True, False,
            ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
            Board("STM32F767ZI", 2 << 20, 512 << 10, clock_hz=216e6, flash_wait_states=7), "mps2-an500", _MPS2),
    CortexM("cortex-m55", "cortex-m55", True, True, True, ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
            _AN547, "mps3-an547", _AN547, ("-m", "armv8.1-m.main")),
)
