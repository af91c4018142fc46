"""A scheduled program: a lowered Program with one target's choices, made before any code exists.

``target.schedule(program)`` (adaptc.targets) returns a ``ScheduledProgram``: per step the
kernel the target runs and its variant, the scratch it needs and the flash its constants take
as the target stores them, and the arena plan of every intermediate tensor and scratch buffer
(``plan_arena``: one ``MemoryPlanner`` shared by code generation and the simulator). It is a
pure function of the program and the target: the program is not changed, and the C renderer,
the simulator, the size estimate and the report all read the same scheduled program without
changing it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .errors import TargetError
from .memory import MemoryPlanner
from .program import Program, Step

ALIGNMENT = 16                       # arena offsets are multiples of this


@dataclass(frozen=True)
class ScheduledStep:
    step: Step                       # the lowered step
    kernel: str                      # what runs it: a C function (Cortex-M), a composite (batched)
    variant: str                     # its kernel variant: "ref", "dsp", "mve", ...
    flash_bytes: int                 # constant bytes the target stores for it (shared tables: first user)
    scratch_bytes: int = 0           # arena scratch live during this step only
    scratch_offset: int | None = None
    call: Any = None                 # the target's own description of the call (Cortex-M: KernelCall)
    note: str = ""                   # why this kernel, in this form (requantization, layout, declined variants)

    @property
    def index(self) -> int:
        return self.step.index

    @property
    def op(self) -> str:
        return self.step.op

    @property
    def macs(self) -> int:
        return self.step.macs


@dataclass(frozen=True)
class ScheduledProgram:
    program: Program
    target: str                      # the target's name
    steps: list[ScheduledStep]
    planner: MemoryPlanner = field(repr=False)
    offsets: dict[int, int]          # arena tensor id -> byte offset

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def exits(self):
        return self.program.exits

    @property
    def arena_bytes(self) -> int:
        return self.planner.peak

    @property
    def weight_bytes(self) -> int:
        """Constant data in flash (weights, biases, requantization arrays, tables), as the
        target's kernels store it."""
        return sum(s.flash_bytes for s in self.steps)

    @property
    def macs(self) -> int:
        return self.program.macs


def plan_arena(program: Program, scratch: dict[int, int] | None = None,
               in_place: dict[int, dict[int, int]] | None = None) -> tuple[MemoryPlanner, dict, dict]:
    """Plan the arena: (planner, {tensor id: offset}, {step index: scratch offset}).

    Lifetimes are step indices: a tensor lives from the step that writes it to the last step
    that reads it; every arena tensor a step writes gets a planned offset. ``scratch``: {step
    index: bytes} of kernel scratch buffers, live during that step only (zero: none).

    ``in_place``: {step index: {input position: delta}} -- the step's kernel computes correctly
    when its output starts ``delta`` bytes before that input (delta <= 0: at or after it), the
    two overlapping (the kernel reads what it needs of the input before it overwrites it). Where
    that input is an arena tensor the step reads last, the output joins it: a chain of such
    tensors, each born at the step its predecessor dies, is one planner buffer over the chain's
    lifetime, each member at its offset within it (only a dying input and its successor are
    ever live together, and those overlap as the kernel allows). A chain holds its bytes for
    its whole lifetime, which can cost more than it saves: the plan with the chains is taken only
    where its arena is smaller than the plan without."""
    plain = _plan(program, scratch, None)
    if in_place:
        chained = _plan(program, scratch, in_place)
        if chained[0].peak < plain[0].peak:
            return chained
    return plain


def _plan(program: Program, scratch: dict[int, int] | None,
          in_place: dict[int, dict[int, int]] | None) -> tuple[MemoryPlanner, dict, dict]:
    first, last = {}, {}
    for s in program.steps:
        first.setdefault(s.output, s.index)
        last[s.output] = max(last.get(s.output, s.index), s.index)
        for t in s.inputs:
            last[t] = s.index
    arena = {t.id: t for t in program.tensors if t.kind == "arena" and t.id in first}
    chain: dict[int, tuple[int, int]] = {t: (t, 0) for t in arena}       # tensor -> (chain head, offset in it)
    continued: set[int] = set()
    for s in program.steps:
        out = s.output
        if out not in arena or first[out] != s.index:
            continue
        for pos, delta in sorted((in_place or {}).get(s.index, {}).items()):
            a = s.inputs[pos]
            if a in arena and last[a] == s.index and a not in continued and a != out:
                head, rel = chain[a]
                chain[out] = (head, rel - -(-delta // ALIGNMENT) * ALIGNMENT)
                continued.add(a)
                break
    members: dict[int, list[int]] = {}
    for t, (head, _) in chain.items():
        members.setdefault(head, []).append(t)
    planner = MemoryPlanner(alignment=ALIGNMENT)
    ids, base = {}, {}
    for head in sorted(members):
        group = members[head]
        low = min(chain[t][1] for t in group)
        size = max(chain[t][1] + arena[t].nbytes for t in group) - low
        ids[head] = planner.add_buffer(size, min(first[t] for t in group), max(last[t] for t in group),
                                       " + ".join(arena[t].name for t in sorted(group, key=first.get)))
        base.update({t: chain[t][1] - low for t in group})
    scratch_ids = {i: planner.add_buffer(n, i, i, f"scratch of step {i}")
                   for i, n in sorted((scratch or {}).items()) if n > 0}
    offsets = planner.plan()
    return (planner, {t: offsets[ids[head]] + base[t] for t, (head, _) in chain.items()},
            {i: offsets[bid] for i, bid in scratch_ids.items()})


def shared_arena(widths: list[ScheduledProgram]) -> list[ScheduledProgram]:
    """One arena for the programs of every width level (adaptc.widths), narrowest first: the
    widest's tensors -- each at least a narrower width's size, with the same lifetimes -- and
    each step's largest scratch over the widths, without in-place chains (their deltas hold for
    one geometry); each width's scheduled program on that plan."""
    wide = widths[-1].program
    for sp in widths[:-1]:
        for t, u in zip(sp.program.tensors, wide.tensors):
            if t.kind == "arena" and t.nbytes > u.nbytes:
                raise TargetError(f"tensor {t.name} of a narrower width ({t.nbytes} B) outgrows the widest's "
                                 f"({u.nbytes} B)")
    scratch = {i: max(sp.steps[i].scratch_bytes for sp in widths) for i in range(len(wide.steps))}
    planner, offsets, at = plan_arena(wide, scratch)
    return [replace(sp, planner=planner, offsets=offsets,
                    steps=[replace(st, scratch_offset=at.get(st.index) if st.scratch_bytes else None)
                           for st in sp.steps])
            for sp in widths]
