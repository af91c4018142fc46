"""Arena memory planning for intermediate tensors.

This is the single memory planner shared by the C code generator and the
simulator.  Each buffer is described by a byte ``size`` and an inclusive
lifetime ``[first, last]`` of step (operator) indices.  Two buffers *conflict*
when their lifetimes intersect, i.e. ``a.first <= b.last and b.first <= a.last``;
conflicting buffers must not share any byte of the arena.  Zero-size buffers
conflict with nothing and are always given offset 0.

``MemoryPlanner`` -- greedy by size, as in TensorFlow Lite Micro's
``GreedyMemoryPlanner``:

1. Sort the buffers by size, largest first; ties are broken by first use
   (earlier first), then by buffer id (lower first), so the plan is fully
   deterministic.
2. Take the buffers in that order.  For each one, collect the already-placed
   buffers whose lifetimes intersect its own, sorted by offset, and place it
   at the lowest offset that is a multiple of ``alignment`` and whose range
   ``[offset, offset + size)`` overlaps none of them.  (Scan the conflicts in
   offset order keeping a candidate, starting at 0: if the buffer fits below
   the next conflict, stop; otherwise move the candidate to the end of that
   conflict rounded up to ``alignment``.)

``LinearPlanner`` -- the no-reuse baseline: buffers are laid out one after
another in id order, each at the running sum of the aligned sizes before it.

For both, ``peak`` (the arena size required) is ``max(offset + size)``
rounded up to ``alignment``, or 0 when there are no non-empty buffers.
``check_plan`` verifies any plan independently of how it was produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Buffer", "MemoryPlanner", "LinearPlanner", "check_plan"]

_TIMELINE_BINS = 64
_ORDINALS = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _live_together(a_first: int, a_last: int, b_first: int, b_last: int) -> bool:
    return a_first <= b_last and b_first <= a_last


@dataclass(frozen=True)
class Buffer:
    """One planned buffer: ``size`` bytes live over steps ``first..last``."""

    size: int
    first: int
    last: int
    name: str = ""


class MemoryPlanner:
    """Greedy-by-size arena planner (TFLM ``GreedyMemoryPlanner`` style)."""

    def __init__(self, alignment: int = 16) -> None:
        if not isinstance(alignment, int) or alignment < 1:
            raise ValueError(f"alignment must be a positive integer, got {alignment!r}")
        self.alignment = alignment
        self._buffers: list[Buffer] = []
        self._offsets: list[int] | None = None

    # -- building -----------------------------------------------------------

    def add_buffer(self, size: int, first: int, last: int, name: str = "") -> int:
        """Register a buffer and return its id (0, 1, 2, ... in call order)."""
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an integer >= 0, got {size!r}")
        if not isinstance(first, int) or first < 0:
            raise ValueError(f"first must be an integer >= 0, got {first!r}")
        if not isinstance(last, int) or last < first:
            raise ValueError(f"last must be an integer >= first ({first}), got {last!r}")
        self._buffers.append(Buffer(size, first, last, str(name)))
        self._offsets = None
        return len(self._buffers) - 1

    @property
    def buffers(self) -> list[Buffer]:
        """The registered buffers, indexed by id (a copy)."""
        return list(self._buffers)

    def __len__(self) -> int:
        return len(self._buffers)

    # -- planning -----------------------------------------------------------

    def _compute(self) -> list[int]:
        bufs = self._buffers
        order = sorted(range(len(bufs)), key=lambda i: (-bufs[i].size, bufs[i].first, i))
        offsets = [0] * len(bufs)
        placed: list[int] = []
        for i in order:
            b = bufs[i]
            if b.size == 0:
                continue
            conflicts = sorted(
                (offsets[j], bufs[j].size)
                for j in placed
                if _live_together(b.first, b.last, bufs[j].first, bufs[j].last)
            )
            candidate = 0
            for off, size in conflicts:
                if candidate + b.size <= off:
                    break
                candidate = max(candidate, _align_up(off + size, self.alignment))
            offsets[i] = candidate
            placed.append(i)
        return offsets

    def plan(self) -> list[int]:
        """Offsets indexed by buffer id (computed once, cached until a buffer is added)."""
        if self._offsets is None:
            self._offsets = self._compute()
        return list(self._offsets)

    def offset(self, buffer_id: int) -> int:
        if not 0 <= buffer_id < len(self._buffers):
            raise IndexError(f"no buffer with id {buffer_id}")
        self.plan()
        assert self._offsets is not None
        return self._offsets[buffer_id]

    @property
    def peak(self) -> int:
        """Arena bytes needed: max(offset + size) rounded up to the alignment."""
        offsets = self.plan()
        end = max((o + b.size for o, b in zip(offsets, self._buffers)), default=0)
        return _align_up(end, self.alignment)

    # -- printing -----------------------------------------------------------

    def __str__(self) -> str:
        offsets = self.plan()
        peak = self.peak
        bufs = self._buffers
        lines = [f"{type(self).__name__} (alignment {self.alignment})"]
        header = ("id", "name", "size", "first", "last", "offset")
        rows = [
            (str(i), b.name, str(b.size), str(b.first), str(b.last), str(offsets[i]))
            for i, b in enumerate(bufs)
        ]
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
        for r in [header, *rows]:
            lines.append("  ".join(
                cell.ljust(w) if c == 1 else cell.rjust(w)
                for c, (cell, w) in enumerate(zip(r, widths))
            ).rstrip())
        if bufs and peak > 0:
            bins = _TIMELINE_BINS
            lines.append(f"timeline (each column = {peak / bins:g} bytes; "
                         "buffer ids 0-9, a-z, A-Z, then '*')")
            for step in range(max(b.last for b in bufs) + 1):
                row = ["."] * bins
                for i, b in enumerate(bufs):
                    if b.size == 0 or not b.first <= step <= b.last:
                        continue
                    ch = _ORDINALS[i] if i < len(_ORDINALS) else "*"
                    lo = offsets[i] * bins // peak
                    hi = max(lo + 1, -(-(offsets[i] + b.size) * bins // peak))
                    for k in range(lo, min(hi, bins)):
                        if row[k] == ".":
                            row[k] = ch
                live = sum(b.size for b in bufs if b.first <= step <= b.last)
                lines.append(f"{step:>4} |{''.join(row)}| {live}")
        lines.append(f"peak: {peak} bytes")
        return "\n".join(lines)


class LinearPlanner(MemoryPlanner):
    """Baseline without reuse: each buffer follows the previous one (aligned)."""

    def _compute(self) -> list[int]:
        offsets = []
        running = 0
        for b in self._buffers:
            if b.size == 0:
                offsets.append(0)
                continue
            offsets.append(running)
            running += _align_up(b.size, self.alignment)
        return offsets


def check_plan(
    sizes: Sequence[int],
    lifetimes: Sequence[tuple[int, int]],
    offsets: Sequence[int],
) -> None:
    """Raise AssertionError unless the plan is valid.

    Valid means: equal lengths, non-negative offsets, and no two buffers with
    intersecting inclusive lifetimes ``(first, last)`` overlapping in
    ``[offset, offset + size)``.  Zero-size buffers never conflict.
    """
    if not len(sizes) == len(lifetimes) == len(offsets):
        raise AssertionError(
            f"length mismatch: {len(sizes)} sizes, {len(lifetimes)} lifetimes, "
            f"{len(offsets)} offsets")
    for i, off in enumerate(offsets):
        if off < 0:
            raise AssertionError(f"buffer {i} has negative offset {off}")
    n = len(sizes)
    for i in range(n):
        if sizes[i] == 0:
            continue
        fi, li = lifetimes[i]
        for j in range(i + 1, n):
            if sizes[j] == 0:
                continue
            fj, lj = lifetimes[j]
            if (_live_together(fi, li, fj, lj)
                    and offsets[i] < offsets[j] + sizes[j]
                    and offsets[j] < offsets[i] + sizes[i]):
                raise AssertionError(
                    f"buffers {i} [{offsets[i]}, {offsets[i] + sizes[i]}) live {fi}..{li} and "
                    f"{j} [{offsets[j]}, {offsets[j] + sizes[j]}) live {fj}..{lj} overlap")
