"""Where a search evaluates its candidates: in this process, or on a Ray cluster.

``get(None)`` maps in-process; ``get("ray")`` starts (or joins, with ``RAY_ADDRESS`` set) a local
Ray instance, ``get("auto")`` joins a running cluster, ``get("ADDRESS")`` the one at ADDRESS.
Every executor's ``map(fn, items)`` returns the results in the order of ``items``, so a search
gives the same answer on either. ``fn`` must be a module-level function (Ray pickles it by
reference) and ``items`` picklable.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .errors import InputError


class InProcess:
    name = "in-process"

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        return map(fn, items)


class Ray:
    """Items in chunks, one Ray task per chunk (``chunk`` items: a task costs milliseconds)."""

    name = "ray"

    def __init__(self, address: str | None, chunk: int = 16):
        try:
            import ray
        except ImportError:
            raise InputError("the Ray executor needs the ray package: pip install 'adaptc[ray]'") from None
        self.ray = ray
        self.chunk = chunk
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        items = list(items)
        remote = self.ray.remote(_chunk)
        refs = [remote.remote(fn, items[i:i + self.chunk]) for i in range(0, len(items), self.chunk)]
        for ref in refs:
            yield from self.ray.get(ref)


def _chunk(fn, items):
    return [fn(item) for item in items]


def get(spec=None):
    """An executor: None / "local" (in-process), "ray" (a local instance), "auto" or an address
    ("HOST:PORT", "ray://HOST:PORT") of a Ray cluster; an executor object passes through."""
    if spec is None or spec == "local":
        return InProcess()
    if hasattr(spec, "map"):
        return spec
    if isinstance(spec, str):
        return Ray(None if spec == "ray" else spec)
    raise InputError(f"executor {spec!r}: choose None (in-process), 'ray', 'auto' or a Ray address")
