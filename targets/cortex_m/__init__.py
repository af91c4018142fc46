"""The Cortex-M target family: standalone C99 for Cortex-M0+/M3/M4/M7/M55.

target.py    the cores (``CORES``) and the target protocol's operations
kernels/     one record per C kernel (builder, loop-count features, struct, template), by operator
schedule.py  kernel per step, scratch, arena plan, flash per step: the ScheduledProgram
emit.py      the C renderer (templates/model.{c,h}.j2, templates/kernels/)
model.py     CortexMModel: host build, stream controller, export, measured memory
host.py      the C built with the host compiler, called through ctypes
firmware.py  firmware project, cross build, ELF sizes, stack
emulator.py  QEMU runs with exact instruction counts per step and class
costs.py     predicted instructions per step (fitted tables, data/cost_tables.json)
timing.py    per-core timing rules: instructions by class -> cycles
sizes.py     flash / RAM / stack estimates (measured code sizes, data/code_sizes.json)
"""
from __future__ import annotations

from .target import CORES, TARGETS, CortexM

__all__ = ["CORES", "TARGETS", "CortexM"]
