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
    """The model uses an operator (or an operator variant) that adaptc cannot compile."""

    def __init__(self, path, op: str, node: str, supported, detail: str = ""):
        self.path, self.op, self.node, self.supported = str(path), op, node, sorted(supported)
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{self.path}: unsupported operator {op} at node {node!r}{extra}; "
                         f"supported: {', '.join(self.supported)}")


class DynamicShapeError(AdaptcError):
    """A model input has a dynamic (unknown) dimension."""

    def __init__(self, path, tensor: str, shape):
        self.path, self.tensor, self.shape = str(path), tensor, tuple(shape)
        super().__init__(f"{self.path}: input {tensor!r} has a dynamic shape {list(self.shape)}; "
                         "adaptc needs static shapes (pass input_shapes={name: shape} to adaptc.load)")


class InputError(AdaptcError):
    """An array passed to a compiled model does not match the model's input."""


class TargetError(AdaptcError):
    """Unknown target, or a target that cannot run the model."""


class ToolchainError(AdaptcError):
    """A compiler needed to build generated code is missing or failed."""


class MemoryBudgetError(TargetError):
    """The model does not fit the flash or RAM of the target's reference board."""
