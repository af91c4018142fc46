"""Cortex-M timing rules: executed instructions by class -> cycles, one small table per core.

The classes are those the emulator counts (emulator.py ``CLASSES``: load, store, mac,
branch_taken, branch_not_taken, other). Each core's table gives the cycles one instruction of a
class costs, from the processor's Technical Reference Manual (TRM) where Arm publishes timings.
These are **documented approximations, not a cycle-accurate model**: a class mixes instructions
of different costs (LDR 2 cycles but LDM 1+N, B 2 but BL 3 on the M0+), back-to-back pipelining,
dual issue, branch prediction and bus contention are folded into one number per class, and
nothing here was checked against silicon (no cycle-accurate simulator is available; see
shared/notes/cortex-m-toolchain.md). What the rules guarantee is consistency: the simulator's
estimate (adaptc.costs) and the figure measured on the emulated core go through the same rules.

Flash wait states (``wait_states``, W) -- how many extra cycles a flash access takes at the
part's clock -- apply to instruction fetches:

* Cortex-M0+ (no prefetch buffer in the core): every 32-bit fetch waits; a fetch brings two
  16-bit Thumb instructions, and a taken branch discards the prefetched word and fetches anew,
  so fetches ~= instructions / 2 + taken branches, each W cycles more.
* Cortex-M3/M4/M7/M55 parts sit behind a prefetch buffer, flash accelerator or cache (e.g. the
  STM32 ART, the Cortex-M7 I-cache): sequential fetches arrive in time, and only the fetch
  after a taken branch stalls -- W cycles per taken branch.

Data loads from flash (weights, tables) see wait states on real parts too; the classes do not
tell flash from RAM addresses, so that is not modelled.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from adaptc.errors import TargetError

CLASSES = ("load", "store", "mac", "branch_taken", "branch_not_taken", "other")


@dataclass(frozen=True)
class CoreTiming:
    """Cycles per instruction of each class on one core, and how flash wait states apply
    (``fetch``: "every_fetch" or "taken_branch"). ``small_mac``: the cost of a multiply with the
    small (iterative) multiplier, where the core offers one as an implementation option."""

    core: str
    load: float
    store: float
    mac: float
    branch_taken: float
    branch_not_taken: float
    other: float
    fetch: str
    small_mac: float | None = None

    def per_class(self, small_multiplier: bool = False) -> dict[str, float]:
        table = {k: getattr(self, k) for k in CLASSES}
        if small_multiplier:
            if self.small_mac is None:
                raise TargetError(f"{self.core} has no small-multiplier option (only the Cortex-M0+ does)")
            table["mac"] = self.small_mac
        return table


TIMINGS: dict[str, CoreTiming] = {t.core: t for t in (
    # Cortex-M0+ TRM (DDI 0484), "Instruction set summary": data processing 1 cycle; LDR/STR
    # (any width) 2; LDM/STM/PUSH/POP 1+N (counted here as one load or store: 2); MULS 1 with
    # the fast single-cycle multiplier, 32 with the small iterative one (an implementation
    # option, see small_multiplier); B<cond> taken 2, not taken 1; B 2, BX/BLX 2, BL 3, POP {pc}
    # 3+N (all taken branches charged 2: the calls and returns are a small share of a kernel).
    CoreTiming("cortex-m0plus", load=2, store=2, mac=1, branch_taken=2, branch_not_taken=1, other=1,
               fetch="every_fetch", small_mac=32),
    # Cortex-M3 TRM (DDI 0337), "Processor instruction timings": ALU 1; LDR 2 (back-to-back
    # loads and stores pipeline their address phases: N in a row take N+1 -- not modelled);
    # STR 1 (the store retires into the write buffer); MUL 1, MLA/MLS 2, [SU]MULL 3..5,
    # [SU]MLAL 4..7 (early termination): the kernels' inner loops are MLA, so 2; B taken 1+P with
    # P = 1..3 cycles of pipeline refill (2 taken here), not taken 1.
    CoreTiming("cortex-m3", load=2, store=1, mac=2, branch_taken=3, branch_not_taken=1, other=1,
               fetch="taken_branch"),
    # Cortex-M4 TRM (DDI 0439), "Instruction set summary" (as the M3) with the single-cycle
    # 32-bit MAC: MUL, MLA, SMLAD, SMLABB, SMMULR, SMULL, SMLAL all 1 cycle; FPU VADD/VMUL 1
    # (VMLA/VFMA 3, VDIV 14: rare in these kernels); LDR/VLDR 2, STR 1, taken branch 1+P (3).
    CoreTiming("cortex-m4", load=2, store=1, mac=1, branch_taken=3, branch_not_taken=1, other=1,
               fetch="taken_branch"),
    # Cortex-M7: Arm publishes no cycle table (TRM DDI 0489 describes a 6-stage, dual-issue
    # superscalar pipeline with a branch target address cache). Modelled per class: two ALU
    # instructions can issue together, so "other" and not-taken branches cost 0.5; one load or
    # store per cycle on the 64-bit AXI/TCM port (1); one MAC pipe, fully pipelined (1); a taken
    # branch the BTAC predicts folds to 1 cycle (loop exits mispredict, ~8 cycles once per
    # loop: not modelled).
    CoreTiming("cortex-m7", load=1, store=1, mac=1, branch_taken=1, branch_not_taken=0.5, other=0.5,
               fetch="taken_branch"),
    # Cortex-M55 TRM (101051) and Software Optimization Guide: a 4-stage in-order scalar pipeline
    # (ALU 1, MUL/MLA 1, taken branch 1 + 1 refill = 2) and a dual-beat Helium unit: a 128-bit
    # vector instruction is 4 beats executed 2 per cycle, so vector loads (VLDRB/VLDRW) and
    # multiply-accumulate reductions (VMLADAV) take 2 cycles -- the load and mac classes are
    # mostly vector instructions in the MVE kernels, hence 2; scalar LDR 1..2, STR 1. A
    # low-overhead-loop LE costs nothing after the first iteration but is counted as a taken
    # branch (2): the classes do not tell it apart.
    CoreTiming("cortex-m55", load=2, store=1, mac=2, branch_taken=2, branch_not_taken=1, other=1,
               fetch="taken_branch"),
)}


def timing(core: str) -> CoreTiming:
    try:
        return TIMINGS[core]
    except KeyError:
        raise TargetError(f"no timing rules for core {core!r}; known: {', '.join(TIMINGS)}") from None


def cycles(classes: Mapping[str, float], core: str, wait_states: int = 0, small_multiplier: bool = False) -> float:
    """Cycles of executed instructions ``classes`` (class -> count, as TargetRun.classes and
    each of TargetRun.steps' "classes") on ``core``, with ``wait_states`` flash wait states on
    instruction fetches and, on the Cortex-M0+, the small 32-cycle multiplier."""
    t = timing(core)
    if wait_states < 0:
        raise TargetError(f"wait_states must be >= 0, got {wait_states}")
    unknown = set(classes) - set(CLASSES)
    if unknown:
        raise TargetError(f"unknown instruction classes {sorted(unknown)}; expected {', '.join(CLASSES)}")
    per = t.per_class(small_multiplier)
    total = sum(per[k] * float(classes.get(k, 0)) for k in CLASSES)
    taken = float(classes.get("branch_taken", 0))
    if t.fetch == "every_fetch":
        fetches = sum(float(classes.get(k, 0)) for k in CLASSES) / 2 + taken
    else:
        fetches = taken
    return total + wait_states * fetches


class Cycles(NamedTuple):
    steps: list[float]               # per step of the run (0 for steps it did not execute)
    total: float


def measured_cycles(run, wait_states: int = 0, small_multiplier: bool = False) -> Cycles:
    """Cycles of a ``TargetRun`` (``model.run_on_target``) per step and in total, from its
    exact per-step instruction classes through the same rules as the estimate."""
    core = run.target
    steps = [cycles(s["classes"], core, wait_states, small_multiplier) for s in run.steps]
    return Cycles(steps, float(sum(steps)))
