"""Flash and RAM of a model on a Cortex-M core, estimated from its lowered Program without
cross-compiling: what ``<prefix>.o`` of the firmware build holds (flash = text + data, static RAM
= data + bss) and the stack ``<prefix>_run`` needs (the firmware report's call-graph figure).

``estimate(scheduled, core)`` reads the program scheduled for the core (each step's ``kernel``,
``flash_bytes`` and parameter struct; ``arena_bytes``; ``exits``) and a table of machine-code
figures measured once per core by cross-compiling synthetic one-op programs
(``targets/cortex_m/data/code_sizes.json``, written by benchmarks/measure_code_sizes.py -- never
from the models the estimate is checked against):

* arrays -- the constants each step stores (``ScheduledStep.flash_bytes``): exact.
* parameter structs -- ``static const``, sized from their typedefs in templates/kernels/ with
  the AAPCS layout (each member aligned to its size, pointers 4 bytes, the struct padded to its
  alignment): exact. gcc drops the struct of a step whose kernel it inlines (every field folds
  into the code); the table says, per kernel and mode, whether the struct survives.
* code -- ``<prefix>_run`` alone (``model``), plus per kernel function: called once, gcc inlines it
  into the caller with the step's parameters folded in (``once``: the median over three
  geometries -- the main approximation: folding can drop whole loops or padding branches, the
  table keeps the range); called n > 1 times, its body once plus ``per_call`` bytes at each call
  (``shared``; a small kernel gcc inlines at every call has no body); the ``ADAPTC_NOINLINE``
  helpers of dsp.h once per model; a ``static inline`` helper two kernels call once, less the
  copies their bodies then do not inline (``shared_helpers``); and for a model with exits the
  ``_segments`` switch, the gate tests, ``_leave`` and the controller (``code + per_exit *
  exits``). Not modelled: how bodies inlined into one function change each other (register
  pressure, alias checks): tens of bytes per model.
* static RAM -- the arena, the only static variable: a union with an int64_t, so its size is the
  plan's peak rounded up to 8 bytes (at least 16). Exact.
* stack -- the caller's frame plus the deepest call below it (an out-of-line kernel's frame and
  what it calls, C library and libgcc included), each from the specimens. The calls below are
  exact up to gcc's clones; the caller's frame holding several kernels is approximated
  (``_frame``): they share the saved registers, their locals add up.

Per utilization level (a model with exits) the image is the same, but a level stops at its
exit's gate: ``levels`` gives the weights and code the steps up to there touch.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources

from adaptc.errors import TargetError
from adaptc.schedule import ScheduledProgram

from ..base import MemoryFigures

# AAPCS sizes and alignments of the member types the kernels' parameter structs use
_CTYPES = {"int8_t": 1, "uint8_t": 1, "char": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
           "int": 4, "float": 4, "int64_t": 8, "uint64_t": 8, "double": 8}
# r4-r11 and lr, pushed once by a function that uses them all, 8-byte aligned (AAPCS)
_SAVED = 40


@dataclass
class StepSize:
    index: int
    kernel: str
    inlined: bool              # gcc inlines the kernel at this call (its parameter struct folded away)
    array_bytes: int           # constant arrays the step stores (weights, bias, requantization, tables)
    params_bytes: int          # its static const parameter struct (0 when inlined)
    call_bytes: float          # code at the call: argument set-up and the call, or the inlined body
    stack_bytes: int           # <prefix>_run's stack while this step runs

    @property
    def weight_bytes(self) -> int:
        return self.array_bytes + self.params_bytes


@dataclass
class LevelSize:
    """What utilization level ``level`` touches: the steps up to its exit's gate (``last_step``)."""

    level: int
    last_step: int
    weight_bytes: int
    code_bytes: int


@dataclass
class SizeEstimate(MemoryFigures):
    """The model part of the image (flash: ``text + data`` of the model object; RAM: static and
    the stack of one inference, the caller's input and output not included)."""

    target: str
    code_bytes: int            # machine code (and its literal pools, jump tables)
    array_bytes: int           # weights, biases, requantization arrays, tables
    params_bytes: int          # static const parameter structs
    arena_bytes: int           # the memory plan's peak
    static_ram_bytes: int      # .data + .bss of <prefix>.o: the arena as allocated
    stack_bytes: int           # <prefix>_run's worst-case stack
    steps: list[StepSize]
    kernels: dict[str, int] = field(default_factory=dict)   # out-of-line kernel functions: bytes
    helpers: dict[str, int] = field(default_factory=dict)   # helper functions they call: bytes
    levels: list[LevelSize] = field(default_factory=list)

    @property
    def weight_bytes(self) -> int:
        """Constant data in flash: arrays and parameter structs."""
        return self.array_bytes + self.params_bytes

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(weight_bytes=self.weight_bytes, flash_bytes=self.flash_bytes, ram_bytes=self.ram_bytes)
        return d


@lru_cache(maxsize=1)
def code_table() -> dict:
    """targets/cortex_m/data/code_sizes.json (benchmarks/measure_code_sizes.py)."""
    return json.loads((resources.files("adaptc.targets.cortex_m") / "data" / "code_sizes.json").read_text())


@lru_cache(maxsize=1)
def struct_sizes() -> dict[str, int]:
    """Bytes of every parameter struct typedef of the kernel sources (headers, and the kernels
    that declare their own), AAPCS layout."""
    root = resources.files("adaptc.templates") / "kernels"
    text = "\n".join(f.read_text() for f in sorted(root.iterdir(), key=lambda f: f.name)
                     if f.name.endswith((".h", ".c")))
    return layouts(text)


def layouts(text: str) -> dict[str, int]:
    """``typedef struct { ... } name;`` (and ``typedef name alias;``) in C text -> sizeof, for
    members of fixed-width integer, float and pointer types and arrays of them (AAPCS: each type
    aligned to its size, pointers 4 bytes; the struct padded to its alignment)."""
    sizes = {}
    for body, name in re.findall(r"typedef struct\s*\{(.*?)\}\s*(\w+);", text, re.S):
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        offset, align = 0, 1
        for decl in (d.strip() for d in body.split(";") if d.strip()):
            m = re.fullmatch(r"(?:const\s+)?(\w+)\s*(?:const\s*)?(\*?)\s*\w+\s*((?:\[\d+\])*)", " ".join(decl.split()))
            if m is None:
                raise TargetError(f"struct {name}: cannot lay out member {decl!r}")
            base, pointer, dims = m.groups()
            size = 4 if pointer else _CTYPES.get(base)
            if size is None:
                raise TargetError(f"struct {name}: unknown member type {base!r}")
            count = 1
            for d in re.findall(r"\d+", dims):
                count *= int(d)
            offset = -(-offset // size) * size + size * count
            align = max(align, size)
        sizes[name] = -(-offset // align) * align
    for old, new in re.findall(r"typedef\s+(\w+)\s+(\w+);", text):
        if old in sizes:
            sizes[new] = sizes[old]
    return sizes


def _helpers(core: dict, kernels: dict[str, int]) -> dict[str, float]:
    """Bytes of the helper functions the kernels ({kernel: calls}) need: each ADAPTC_NOINLINE
    helper once; a shared ``static inline`` helper once two of them call it, less the copies
    their bodies then no longer inline."""
    out = {h: core["helpers"][h]["code"] for k in kernels for h in core["kernels"][k]["helpers"]}
    for h, entry in core.get("shared_helpers", {}).items():
        present = [k for k in kernels if k in entry["inlined"]]
        if len(present) > 1:
            out[h] = entry["code"] - sum(entry["inlined"][k]["once" if kernels[k] == 1 else "shared"]
                                         for k in present)
    return out


def _frame(frames: list[int]) -> int:
    """The caller's frame holding several kernels' (inlined bodies, outgoing arguments): they
    share the saved registers; their locals add up -- gcc does not overlap the spill slots of
    bodies it inlines into one function."""
    if not frames:
        return 0
    return max(max(frames), _SAVED + sum(max(f - _SAVED, 0) for f in frames))


def estimate(program: ScheduledProgram, target, table: dict | None = None) -> SizeEstimate:
    """Flash, static RAM and stack of ``program`` as scheduled for ``target`` (a CortexM): see
    the module docstring. ``table``: the measured figures (default: code_sizes.json)."""
    table = table or code_table()
    if target.name not in table["cores"]:
        raise TargetError(f"no code sizes measured for {target.name}: run benchmarks/measure_code_sizes.py")
    core = table["cores"][target.name]
    steps = program.steps
    missing = sorted({s.kernel for s in steps} - set(core["kernels"]))
    if missing:
        raise TargetError(f"no code sizes for kernel(s) {', '.join(missing)} on {target.name}: "
                          "rerun benchmarks/measure_code_sizes.py")
    calls = Counter(s.kernel for s in steps)
    mode = {k: core["kernels"][k]["once" if n == 1 else "shared"] for k, n in calls.items()}
    structs = struct_sizes()

    kernels = {k: mode[k]["code"] for k in calls if calls[k] > 1 and mode[k]["code"]}
    helpers = _helpers(core, calls)
    frame = {k: mode[k]["frame"] for k in calls}
    callee = {k: mode[k]["callee"] for k in calls}
    out = []
    for s in steps:
        m = mode[s.kernel]
        out.append(StepSize(s.index, s.kernel, not m["params"], s.flash_bytes,
                            structs[s.call.params_type] if m["params"] else 0,
                            m["code"] if calls[s.kernel] == 1 else m["per_call"],
                            frame[s.kernel] + callee[s.kernel]))

    fixed, per_exit, stack_extra = core["model"]["code"], 0, 0
    if program.exits:
        head = program.program.tensors[program.exits[0].head].dtype
        ex = core["model"]["exits"]["int8" if head == "int8" else "float32"]
        fixed, per_exit, stack_extra = fixed + ex["code"], ex["per_exit"], ex["stack"]

    def code_of(touched, n_exits):
        used = {s.kernel: calls[s.kernel] for s in touched}
        return (fixed + per_exit * n_exits + sum(s.call_bytes for s in touched)
                + sum(v for k, v in kernels.items() if k in used) + sum(_helpers(core, used).values()))

    code = code_of(out, len(program.exits))
    stack = max(core["model"]["stack"], _frame(list(frame.values())) + max(callee.values(), default=0))
    levels = []
    for e in program.exits or [None]:
        last = len(steps) - 1 if e is None else e.gate
        touched = out[:last + 1]
        levels.append(LevelSize(0 if e is None else e.index, last, sum(s.weight_bytes for s in touched),
                                round(code_of(touched, 0 if e is None else e.index + 1))))
    arena = program.arena_bytes
    return SizeEstimate(target.name, round(code), sum(s.array_bytes for s in out), sum(s.params_bytes for s in out),
                        arena, -(-max(arena, 16) // 8) * 8, stack + stack_extra, out, kernels, helpers, levels)
