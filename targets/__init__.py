"""Targets: the registry, by name, of everything adaptc compiles for.

``get(name)`` returns a target (the protocol in ``adaptc.targets.base``); ``names()`` lists them,
optionally only those with given capabilities (``names(emulated=True)``: the Cortex-M cores).
One package per family, each exporting its ``TARGETS``: ``cortex_m`` (C99 for Cortex-M cores:
kernels, schedule, C emitter, firmware, emulator, costs, sizes, timing) and ``cuda`` (batched
segments with exit compaction, built by TVM for ``llvm`` or ``cuda``). The families are imported
when the registry is first asked, so that importing one module of a family (the batched
runtime on a serving host, say) does not import the others; none imports TVM.
"""
from __future__ import annotations

import functools
import importlib

from adaptc.errors import TargetError

from .base import Board, Capabilities, StepCost, Target

FAMILIES = ("cortex_m", "cuda")
DEFAULT = "cortex-m4"

__all__ = ["Board", "Capabilities", "StepCost", "Target", "FAMILIES", "DEFAULT", "get", "names", "all_targets"]


@functools.cache
def all_targets() -> dict[str, Target]:
    """Every target by name, in family order."""
    return {t.name: t for family in FAMILIES for t in importlib.import_module(f"{__name__}.{family}").TARGETS}


def get(name: str) -> Target:
    """The target called ``name``; TargetError listing the known ones otherwise."""
    targets = all_targets()
    try:
        return targets[name]
    except (KeyError, TypeError):
        raise TargetError(f"unknown target {name!r}; known: {', '.join(targets)}") from None


def names(**capabilities: bool) -> list[str]:
    """Target names in registry order, those whose capabilities have the given values."""
    return [n for n, t in all_targets().items()
            if all(getattr(t.capabilities, k) == v for k, v in capabilities.items())]
