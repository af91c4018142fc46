"""Typed errors. Every message names the file, operator, node or limit concerned."""
from __future__ import annotations


class AdaptcError(Exception):
    """Base class of every error adaptc raises on bad input."""


class ModelLoadError(AdaptcError):
    """The model file cannot be read or parsed (missing, truncated, corrupt, wrong format)."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: cannot load model: {reason}")


class UnsupportedOperatorError(AdaptcError):
    """The model uses operators (or operator variants) that adaptc cannot compile. ``findings``
    lists every one found -- (op, node, detail) -- and the message groups them by operator, with
    counts and node names, so one error says all that stands in the way; ``op`` and ``node`` are
    the first."""

    def __init__(self, path, op: str, node: str, supported, detail: str = "", findings=()):
        self.path, self.op, self.node, self.supported = str(path), op, node, sorted(supported)
        self.findings = [tuple(f) for f in findings] or [(op, node, detail)]
        if len(self.findings) == 1:
            extra = f" ({detail})" if detail else ""
            what = f"unsupported operator {op} at node {node!r}{extra}"
        else:
            groups: dict[tuple[str, str], list[str]] = {}
            for f_op, f_node, f_detail in self.findings:
                groups.setdefault((f_op, f_detail), []).append(f_node)
            parts = []
            for (g_op, g_detail), nodes in groups.items():
                shown = ", ".join(repr(n) for n in nodes[:3])
                shown += f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
                parts.append(f"{g_op} x{len(nodes)} at {shown}" + (f" ({g_detail})" if g_detail else ""))
            what = f"{len(self.findings)} unsupported operators: " + "; ".join(parts)
        super().__init__(f"{self.path}: {what}; supported: {', '.join(self.supported)}")

    @classmethod
    def of(cls, path, findings, supported) -> UnsupportedOperatorError:
        """The error for ``findings`` [(op, node, detail), ...] (at least one)."""
        op, node, detail = findings[0]
        return cls(path, op, node, supported, detail, findings)


class DynamicShapeError(AdaptcError):
    """A model input has a dynamic (unknown) dimension. The message says how to give it a static
    shape, on the command line and from Python (with the dynamic sizes as 1 for an example)."""

    def __init__(self, path, tensor: str, shape):
        self.path, self.tensor, self.shape = str(path), tensor, tuple(shape)
        example = tuple(d if d > 0 else 1 for d in self.shape)
        super().__init__(f"{self.path}: input {tensor!r} has a dynamic shape {list(self.shape)}; adaptc needs static "
                         f"shapes: give it one with --input-shape {tensor}={','.join(map(str, example))} (adaptc "
                         f"compile, simulate, run, info) or input_shapes={{{tensor!r}: {example}}} "
                         "(adaptc.compile, adaptc.load)")


class InputError(AdaptcError):
    """An array passed to a compiled model does not match the model's input."""


class TargetError(AdaptcError):
    """Unknown target, or a target that cannot run the model."""


class ToolchainError(AdaptcError):
    """A compiler needed to build generated code is missing or failed."""


class MemoryBudgetError(TargetError):
    """The model does not fit the flash or RAM of the target's reference board."""


class CacheError(AdaptcError):
    """adaptc's build cache cannot be trusted: its directory is not private to this user, or an
    entry in it differs from the record adaptc wrote when it built the entry. The message names
    the directory or file, what is wrong with it and how to fix it."""
