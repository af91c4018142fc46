"""The Relax passes that take a loaded model to the integer (or float) composite module.

``pipeline(loaded, calibration, quantize)`` lists them in order, with the numeric format they
produce and -- for the low-bit modes -- the CodedWeights scheme whose ``report`` lists each
layer after the passes ran:

* an int8 model (QDQ ops, or an int8 input): LegalizeQDQ -- its quantization is kept;
* a float model without calibration data: ToNHWC, FuseFloatOps -- float32 composites;
* a float model with calibration data: ToNHWC, FuseFloatOps, then QuantizeInt8 (TFLite's
  scheme) or QuantizeWeights (int4, power-of-two), then LegalizeQDQ.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from . import tvm_compat
from .errors import InputError
from .loader import LoadedModel
from .passes.fuse_float_ops import FuseFloatOps
from .passes.legalize_qdq import LegalizeQDQ
from .passes.quantize_int8 import QuantizeInt8
from .passes.quantize_weights import CodedWeights, QuantizeWeights
from .passes.to_nhwc import ToNHWC
from .quantization import Int4, Int8, PoT


def is_quantized(mod) -> bool:
    """True for int8 models: QDQ ops anywhere, or an int8 input."""
    found = any(tvm_compat.dtype_of(p.ty) == "int8" for p in mod["main"].params)

    def visit(expr):
        nonlocal found
        if tvm_compat.op_name(expr) in ("relax.quantize", "relax.dequantize"):
            found = True

    relax.analysis.post_order_visit(mod["main"], visit)
    return found


def pipeline(loaded: LoadedModel, calibration: np.ndarray | None = None, quantize=None) -> tuple[list, str, object]:
    """(passes, format, scheme) for a model (module docstring). ``quantize``: a parsed
    adaptc.quantization config (None: int8 when there is calibration data)."""
    path = loaded.info.path
    scheme = None
    if is_quantized(loaded.mod):
        if quantize is not None and not isinstance(quantize, Int8):
            raise InputError(f"{loaded.info.name} is an int8 model already; quantize={quantize!r} needs a float model")
        return [LegalizeQDQ(path)], "int8", None
    if quantize is not None and calibration is None:
        raise InputError(f"{loaded.info.name}: quantizing needs calibration data (calibration=, --calibration)")
    if calibration is None:
        return [ToNHWC(), FuseFloatOps(path)], "float32", None
    if quantize is None or isinstance(quantize, Int8):
        quant = QuantizeInt8(calibration, path)
    elif isinstance(quantize, Int4):
        scheme = CodedWeights("int4", pot_activations=False)
        quant = QuantizeWeights(calibration, "int4", path, scheme=scheme)
    elif isinstance(quantize, PoT):
        scheme = CodedWeights(quantize.format)
        quant = QuantizeWeights(calibration, quantize.format, path, scheme=scheme)
    else:
        raise InputError(f"unknown quantization {quantize!r}")
    return [ToNHWC(), FuseFloatOps(path), quant, LegalizeQDQ(path, weight_formats=scheme is not None)], "int8", scheme
