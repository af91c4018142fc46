"""Cortex-M C kernels: one record per kernel, registered in one table (``KERNELS``).

A ``Kernel`` record is everything adaptc knows of one C kernel function, in one place:

* ``name``     -- the C function; its source is ``templates/kernels/<name>.c`` (``files`` lists
  the headers it needs first); also the key of its entries in the fitted cost tables
  (``data/cost_tables.json``) and the measured code sizes (``data/code_sizes.json``);
* ``op`` and ``variant`` -- the composite it implements (``adaptc.qconv2d``...) and how:
  ``"ref"`` (portable C mirroring TFLite's reference kernels), ``"dsp"`` (Armv7E-M DSP
  extension) or ``"mve"`` (Helium);
* ``build``    -- turns a lowered ``Step`` into a ``KernelCall`` (parameter struct values, flash
  arrays in argument order, arena scratch, shared tables), or returns None for a step it does
  not handle (a geometry, weight format or exactness bound it cannot meet): the next record or
  variant takes it. Layout changes the C wants (OHWI filters, [out][in] weights) and every
  requantization constant are computed here, in Python, once -- never in C;
* ``features`` -- the loop counts of the kernel for a step (the cost model's inputs,
  ``targets/cortex_m/costs.py``);
* ``params_type`` -- its parameter struct typedef (common.h or the variant's header);
* ``widths``   -- it reads a channel prefix of a wider stored filter (a step with
  ``prefix_weights``: width levels, adaptc.widths); ``select`` passes such steps only to these.

``select(step, program, variants)`` takes the first record, over the variants best first, whose
builder accepts the step. Records of one (op, variant) accept disjoint sets of steps, so their
order does not matter. One module per operator family registers its records (conv2d.py,
depthwise_conv2d.py, ...); adding a kernel is one ``@kernel`` entry, one template, one test
(CONTRIBUTING.md).

An optimized kernel takes the reference kernel's arguments; its parameter struct may differ and
may ask for arena scratch: ``scratch_bytes`` > 0 and a struct field whose value is ``SCRATCH``,
rendered as a pointer to a planned arena buffer live during that step only.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from adaptc.errors import TargetError
from adaptc.program import Program, Step

SCRATCH = ("scratch",)   # parameter value: pointer to this step's arena scratch buffer

# Variants whose C builds with any C99 compiler: "dsp" kernels fall back to portable definitions
# of the instructions (templates/kernels/dsp.h); "mve" kernels build only for a Helium core.
PORTABLE_VARIANTS = ("dsp", "ref")


@dataclass
class KernelCall:
    """What a builder returns: one step's call of its kernel."""

    params: dict                           # struct field -> int | float | list | ("array", name) | SCRATCH
    arrays: list[tuple[str, np.ndarray]]   # (role, data) flash arrays, in argument order
    scratch_bytes: int = 0                 # arena scratch the kernel needs during its step
    shared: dict = field(default_factory=dict)   # name -> flash table several steps may share,
                                                 # referred to as ("shared", name); emitted once
    in_place: dict = field(default_factory=dict)  # input position -> delta: the kernel is correct with
                                                  # its output starting delta bytes before that input
                                                  # (adaptc.schedule.plan_arena may overlap them)
    note: str = ""                         # why this form of the kernel: its builder's choices
                                           # (requantization, layout), for the report and `adaptc run`
    declined: tuple[str, ...] = ()         # better-ranked variants (their kernels for the op) that declined
    kernel: Kernel | None = None           # the record that built it (set by select)

    @property
    def function(self) -> str:
        return self.kernel.name

    @property
    def params_type(self) -> str:
        return self.kernel.params_type

    @property
    def files(self) -> tuple[str, ...]:
        return self.kernel.files

    @property
    def variant(self) -> str:
        return self.kernel.variant

    @property
    def why(self) -> str:
        """The builder's note, and the better-ranked variants whose kernels declined the step."""
        declined = f"{', '.join(self.declined)} kernel declined" if self.declined else ""
        return "; ".join(t for t in (self.note, declined) if t)

    @property
    def array_bytes(self) -> int:
        """Bytes of the step's own flash arrays (not the shared tables)."""
        return sum(int(data.nbytes) for _, data in self.arrays if data is not None)


@dataclass(frozen=True)
class Kernel:
    name: str
    op: str
    variant: str
    build: Callable[[Step, Program], KernelCall | None]
    features: Callable[..., dict[str, float]]
    params_type: str
    files: tuple[str, ...]
    widths: bool = False


KERNELS: dict[str, Kernel] = {}


def kernel(name: str, op: str, variant: str = "ref", *, features, params_type: str = "",
           headers: tuple[str, ...] = (), widths: bool = False):
    """Register the decorated builder as kernel ``name`` (the module docstring); ``headers``:
    the kernel headers its source needs, included before it."""
    def register(build):
        assert name not in KERNELS, f"kernel {name} registered twice"
        KERNELS[name] = Kernel(name, op, variant, build, features, params_type or f"{name}_params",
                               (*headers, name), widths)
        return build
    return register


def records(op: str, variant: str) -> list[Kernel]:
    return [k for k in KERNELS.values() if k.op == op and k.variant == variant]


def select(step: Step, prog: Program, variants=("ref",)) -> KernelCall:
    """The KernelCall for a step: the first record of ``variants`` (best first) whose builder
    accepts it; TargetError naming the op, dtype and variants if none does."""
    declined = []
    for variant in variants:
        tried = False
        for record in records(step.op, variant):
            tried = True
            if step.prefix_weights and not record.widths:
                continue
            call = record.build(step, prog)
            if call is not None:
                call.kernel = record
                call.declined = tuple(declined)
                return call
        if tried:
            declined.append(variant)
    dtype = prog.tensors[step.output].dtype
    known = sorted({k.op for k in KERNELS.values()})
    raise TargetError(f"no C kernel for {step.op} ({dtype}, variants {', '.join(variants)}) at step "
                      f"{step.index} [{step.source}]; kernels exist for: {', '.join(known)}")
