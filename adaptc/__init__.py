"""adaptc: adaptive-inference compiler on Apache TVM.

    import adaptc
    m = adaptc.compile("model.tflite", target="cortex-m4")
    y = m.run(x)
    m.export("out/")
    s = adaptc.simulate(m, target="cortex-m4", clock_hz=120e6)   # cycles per level, before flashing
    adaptc.inspect("model.onnx").fits("cortex-m0plus")          # the file's layers, MACs, fit; no compile
    m = adaptc.add_exits("model.onnx", data=(x, y))              # early exits attached to a trained model

``compile``, ``load`` and ``CompiledModel`` import TVM on first use, so ``import adaptc`` (and
``adaptc --help``) stays fast; ``inspect`` reads a model file without TVM.
"""
from .errors import (
    AdaptcError,
    CacheError,
    DynamicShapeError,
    InputError,
    MemoryBudgetError,
    ModelLoadError,
    TargetError,
    ToolchainError,
    UnsupportedOperatorError,
)

__version__ = "0.1.0"

from .quantization import Int4, Int8, PoT

_LAZY = {"compile": ("api", "compile"), "CompiledModel": ("model", "CompiledModel"),
         "load": ("loader", "load"), "LoadedModel": ("loader", "LoadedModel"),
         "simulate": ("sim", "simulate"), "inspect": ("summary", "inspect"), "add_exits": ("augment", "add_exits")}

__all__ = ["compile", "add_exits", "simulate", "load", "inspect", "CompiledModel", "LoadedModel", "PoT", "Int4", "Int8",
           "AdaptcError", "ModelLoadError",
           "UnsupportedOperatorError", "DynamicShapeError", "InputError", "TargetError", "ToolchainError",
           "MemoryBudgetError", "CacheError"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'adaptc' has no attribute {name!r}")
