"""Model loading: .tflite and .onnx files -> Relax IRModule + ModelInfo.

The file is parsed and checked here (format, operators, static shapes, dtypes, finite weights)
before TVM's frontend sees it, so that every failure is a typed error naming the file, the
operator and the node.

Guarantee: ``load``, ``operators`` and ``unsupported`` raise nothing but ``AdaptcError``s,
whatever the bytes of the file. Every read of a model file runs inside ``_reading`` -- the one
place where a fault of the file (a flatbuffer offset past its end, a protobuf that does not
decode, a frontend that trips over a garbage-but-parseable graph) becomes a ``ModelLoadError``
naming the file. Checks before it make the common faults say exactly what is wrong: a table
index out of range, a constant's buffer of the wrong size, a NaN weight, a float64 tensor, an
external data file outside the model's directory, a declared tensor shape its operator
contradicts. ``benchmarks/fuzz_loaders.py`` holds the guarantee to mutated and random files.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import AdaptcError, DynamicShapeError, InputError, ModelLoadError, UnsupportedOperatorError

# Operators adaptc compiles, by source format (what the passes and the C target handle).
TFLITE_OPS = frozenset({
    "ADD", "ARG_MAX", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE", "DEQUANTIZE", "DIV", "ELU", "EXP", "EXPAND_DIMS", "FULLY_CONNECTED", "HARD_SWISH",
    "L2_NORMALIZATION", "LEAKY_RELU", "LOGISTIC", "LOG_SOFTMAX", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM",
    "MIRROR_PAD", "MUL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX", "RELU", "RELU6", "RESHAPE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V",
    "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK",
})
ONNX_OPS = frozenset({
    "Add", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "CastLike", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "ConvTranspose", "Div", "Dropout", "Elu", "Equal", "Exp", "Expand", "Flatten",
    "Gather", "Gemm", "GlobalAveragePool", "Greater", "GreaterOrEqual", "GRU", "HardSigmoid", "HardSwish", "Identity",
    "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "LSTM", "MatMul", "Max", "MaxPool", "Min", "Mul", "Pad",
    "PRelu", "Range", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Shape",
    "Sigmoid", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Upsample",
    "Where",
})
# MEAN, SUM, REDUCE_MAX / ReduceMean, ReduceSum, ReduceMax: over a contiguous range of axes
# (global average pooling of any rank).
REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "ReduceMean", "ReduceSum", "ReduceMax"}
# Most steps of a recurrent layer (LSTM, GRU) adaptc compiles, sequences x time steps: the
# composite's reference body unrolls the recurrence step by step and sequence by sequence, so
# import time grows with the steps (~2 ms each) and compile time faster; keyword spotters run one
# sequence of tens of steps.
MAX_RECURRENT_STEPS = 1024


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None      # per-tensor quantization, if the tensor is quantized
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None


@dataclass(frozen=True)
class ModelInfo:
    path: str
    format: str                      # "tflite" | "onnx" | "relax"
    name: str                        # file stem, used for the C prefix
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True)
class LoadedModel:
    mod: object                      # tvm.IRModule
    info: ModelInfo


def load(path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> LoadedModel:
    """Load a .tflite or .onnx model into Relax.

    Raises ModelLoadError (unreadable, truncated or corrupt file; unknown extension; a dtype
    adaptc does not compile; a NaN or infinite weight; a declared tensor type its operator
    contradicts; anything TVM's frontend refuses), UnsupportedOperatorError (an operator adaptc
    does not compile) or DynamicShapeError -- never another exception.
    """
    path = Path(path)
    fmt = _format(path)
    data = _read(path)
    with _reading(path, fmt):
        if fmt == "TFLite":
            return _load_tflite(path, data)
        return _load_onnx(path, data, input_shapes or {})


def select_outputs(loaded: LoadedModel, indices) -> LoadedModel:
    """The outputs ``indices`` of a multi-output model, in that order (a model's exit heads);
    ``None``: all of them. InputError for an index out of range or repeated."""
    from . import tvm_compat

    outputs = loaded.info.outputs
    if indices is None:
        return loaded
    idx = [int(i) for i in indices]
    for i in idx:
        if not -len(outputs) <= i < len(outputs):
            raise InputError(f"{loaded.info.name}: output {i} out of range; the model has "
                             f"{len(outputs)} output(s): {', '.join(t.name for t in outputs)}")
    idx = [i % len(outputs) for i in idx]
    if len(set(idx)) != len(idx):
        raise InputError(f"{loaded.info.name}: outputs {indices} name an output twice")
    if idx == list(range(len(outputs))):
        return loaded
    if len(idx) < 2:
        return select_output(loaded, idx[0]) if idx else loaded
    mod = tvm_compat.select_output(loaded.mod, idx)
    info = ModelInfo(loaded.info.path, loaded.info.format, loaded.info.name, loaded.info.inputs,
                     tuple(outputs[i] for i in idx))
    return LoadedModel(mod, info)


def select_output(loaded: LoadedModel, index: int | None = None) -> LoadedModel:
    """One output of a multi-output model (default: the last -- a model with exit heads lists
    them shallow to deep, the final head last); the layers only other outputs need are dropped.
    A single-output model comes back unchanged. InputError for an index out of range."""
    from . import tvm_compat

    outputs = loaded.info.outputs
    if index is None and len(outputs) <= 1:
        return loaded
    i = len(outputs) - 1 if index is None else index
    if not -len(outputs) <= i < len(outputs):
        raise InputError(f"{loaded.info.name}: output {index} out of range; the model has "
                         f"{len(outputs)} output(s): {', '.join(t.name for t in outputs)}")
    i %= len(outputs)
    if len(outputs) == 1:
        return loaded
    mod = tvm_compat.select_output(loaded.mod, i)
    info = ModelInfo(loaded.info.path, loaded.info.format, loaded.info.name, loaded.info.inputs, (outputs[i],))
    return LoadedModel(mod, info)


def operators(path) -> list[tuple[str, str]]:
    """(operator, node) of every operator of a .tflite or .onnx file, in graph order -- read
    from the file alone (no TVM): what ``adaptc info`` lists. Raises only ModelLoadError."""
    path = Path(path)
    fmt = _format(path)
    data = _read(path)
    with _reading(path, fmt):
        if fmt == "TFLite":
            return [(name, node) for name, node, _ in _tflite_operators(path, *_tflite_model(path, data))]
        return [(n.op_type, _onnx_node_name(n)) for n in _onnx_model(path, data).graph.node]


def unsupported(path) -> list[tuple[str, str, str]]:
    """Every (operator, node, detail) of a .tflite or .onnx file that adaptc cannot compile --
    the list ``load`` refuses a model with, all at once. Raises only ModelLoadError."""
    path = Path(path)
    fmt = _format(path)
    data = _read(path)
    with _reading(path, fmt):
        if fmt == "TFLite":
            return _tflite_findings(path, *_tflite_model(path, data))
        return _onnx_findings(path, _onnx_model(path, data))


def _format(path: Path) -> str:
    """The format of a model file by its extension, "TFLite" or "ONNX"; ModelLoadError for any other."""
    formats = {".tflite": "TFLite", ".onnx": "ONNX"}
    if path.suffix.lower() not in formats:
        raise ModelLoadError(path, f"unknown model format {path.suffix!r} (expected .tflite or .onnx)")
    return formats[path.suffix.lower()]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ModelLoadError(path, e.strerror or str(e)) from None


@contextmanager
def _reading(path: Path, fmt: str):
    """The boundary around every read of the model file at ``path`` (a ``fmt`` file): an
    AdaptcError passes; any other exception -- IndexError / struct.error from a flatbuffer
    offset past the end, a protobuf DecodeError, UnicodeDecodeError, ValueError, KeyError,
    MemoryError, a tvm.error from a frontend -- becomes ModelLoadError(path, what happened),
    the original kept as its ``__cause__``. Nothing else leaves it."""
    try:
        yield
    except AdaptcError:
        raise
    except Exception as e:
        raise ModelLoadError(path, f"corrupt or truncated {fmt} file ({_what(e)})") from e


def _what(e: BaseException) -> str:
    """``Type: message`` of an exception, its message on one line and at most 300 characters."""
    text = " ".join(str(e).split())
    kind = type(e).__name__ if type(e).__module__ == "builtins" else f"{type(e).__module__}.{type(e).__name__}"
    return f"{kind}: {text[:300]}{'...' if len(text) > 300 else ''}" if text else kind


def _first_bad(values, allow_inf: bool = False):
    """(flat index, value) of the first NaN (or infinity, unless ``allow_inf``) in the float
    array ``values``, or None when every element is finite."""
    import numpy as np

    flat = np.asarray(values).reshape(-1)
    bad = np.isnan(flat) if allow_inf else ~np.isfinite(flat)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    return i, flat[i]


def _bad_weight(name: str, shape, found) -> str:
    """The refusal of a constant ``name`` of ``shape`` holding ``found`` = (flat index, value)."""
    import numpy as np

    i, value = found
    where = f"index {[int(k) for k in np.unravel_index(i, shape)]}" if len(shape) > 1 else f"index {i}"
    what = "NaN" if np.isnan(value) else "+inf" if value > 0 else "-inf"
    return f"weight tensor {name!r} holds {what} at {where} (the first); a model's weights must be finite numbers"


def _mean_axes_problem(op: str, axes, rank) -> str | None:
    """Why a mean over ``axes`` (None: all) of a rank-``rank`` tensor (None: unknown, then only
    the axes are checked) is not compiled, or None when its axes are a contiguous range."""
    if axes is None:
        return None
    if rank is None and min(int(a) for a in axes) < 0:
        return None                 # negative axes of an unknown rank: the passes check them
    resolved = sorted({int(a) % rank if rank else int(a) for a in axes})
    if resolved == list(range(resolved[0], resolved[-1] + 1)):
        return None
    tensor = f"a {rank}-D tensor" if rank is not None else "a tensor of unknown rank"
    return (f"{op} over axes {[int(a) for a in axes]} of {tensor}; only over neighbouring axes "
            "(e.g. [1, 2] of NHWC: global average pooling)")


# ------------------------------------------------------------------------------------- TFLite


# TensorTypes the importer cannot hold or adaptc does not compute in (FLOAT16 stays: fp16 weights
# are dequantized at import).
_TFLITE_REFUSED_TYPES = {"FLOAT64", "COMPLEX64", "COMPLEX128", "STRING", "RESOURCE", "VARIANT", "INT4", "BFLOAT16"}
# Bytes per element of the types whose constant buffers are checked against their shapes.
_TFLITE_ITEMSIZE = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2,
                    "INT8": 1, "UINT64": 8, "UINT32": 4, "UINT16": 2}
# Operators whose constant operands may be infinite: a bound, where infinity means "none".
_TFLITE_BOUND_OPS = {"MAXIMUM", "MINIMUM"}
# Quantized activations and weights: their scales divide and multiply in requantization. (An
# int32 bias's own scale is never read: kernels use input scale x filter scale.)
_TFLITE_Q_TYPES = {"UINT8", "INT16", "INT8"}


def _tflite_model(path: Path, data: bytes):
    """(model, subgraph) of a TFLite flatbuffer after every table the compiler reads has been
    touched and every index in it checked against the table it points into -- so a truncated or
    corrupt file fails here, and the readers after this one can index without checks. Runs
    inside ``_reading`` (a read past the end raises there)."""
    import tflite

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelLoadError(path, "not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise ModelLoadError(path, f"{model.SubgraphsLength()} subgraphs; adaptc supports 1")
    sub = model.Subgraphs(0)
    _tflite_check_tables(path, model, sub)
    return model, sub


def _tflite_check_tables(path: Path, model, sub) -> None:
    """Touch every buffer, tensor, operator and operator code; ModelLoadError for an index out
    of range, a tensor name that is not UTF-8, a constant whose buffer does not hold its shape."""
    import numpy as np

    def fail(what):
        raise ModelLoadError(path, f"corrupt TFLite file: {what}")

    n_buffers, n_tensors, n_codes = model.BuffersLength(), sub.TensorsLength(), model.OperatorCodesLength()
    sizes = []
    for i in range(n_buffers):
        buf = model.Buffers(i)
        if buf.DataLength():
            buf.Data(buf.DataLength() - 1)  # raises if the data runs past the end of the file
        sizes.append(buf.DataLength())
    types = _tflite_type_names()
    for i in range(n_tensors):
        t = sub.Tensors(i)
        try:
            name = t.Name().decode() if t.Name() is not None else ""
        except UnicodeDecodeError:
            fail(f"tensor #{i}'s name is not UTF-8")
        shape = t.ShapeAsNumpy() if t.ShapeLength() else np.zeros(0, np.int32)
        t.ShapeSignatureAsNumpy()
        if not 0 <= t.Buffer() < max(n_buffers, 1):
            fail(f"tensor {name!r} names buffer {t.Buffer()} of {n_buffers}")
        q = t.Quantization()
        if q is not None:
            q.ScaleAsNumpy(), q.ZeroPointAsNumpy()
        item = _TFLITE_ITEMSIZE.get(types.get(t.Type(), ""))
        size = sizes[t.Buffer()] if n_buffers else 0
        if size and item and not (shape < 0).any() and size != item * int(np.prod(shape, dtype=np.int64)):
            fail(f"constant tensor {name!r} of shape {shape.tolist()} ({types[t.Type()].lower()}) holds "
                 f"{size} bytes, not {item * int(np.prod(shape, dtype=np.int64))}")
    for i in range(n_codes):
        code = model.OperatorCodes(i)
        code.BuiltinCode(), code.DeprecatedBuiltinCode(), code.CustomCode()
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if not 0 <= op.OpcodeIndex() < n_codes:
            fail(f"operator #{i} names operator code {op.OpcodeIndex()} of {n_codes}")
        for kind, lo, ids in (("input", -1, op.InputsAsNumpy()), ("output", 0, op.OutputsAsNumpy())):
            bad = [t for t in _ids(ids) if not lo <= t < n_tensors]
            if bad:
                fail(f"operator #{i} names {kind} tensor {bad[0]} of {n_tensors}")
        if op.BuiltinOptions() is not None:
            op.BuiltinOptionsType()
    for kind, ids in (("input", sub.InputsAsNumpy()), ("output", sub.OutputsAsNumpy())):
        bad = [t for t in _ids(ids) if not 0 <= t < n_tensors]
        if bad:
            fail(f"the graph's {kind} names tensor {bad[0]} of {n_tensors}")


def _ids(vector) -> list[int]:
    """A flatbuffer int vector as ints (flatbuffers gives 0 for an absent vector)."""
    return [] if isinstance(vector, int) else [int(v) for v in vector]


def _tflite_type_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}


def _tflite_name(t) -> str:
    return (t.Name() or b"").decode(errors="replace")


def _tflite_tensor_info(t) -> TensorInfo:
    types = _tflite_type_names()
    q = t.Quantization()
    scale = zp = None
    if q is not None and q.ScaleLength() == 1:
        scale, zp = float(q.Scale(0)), int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return TensorInfo(_tflite_name(t), shape, types.get(t.Type(), "unknown").lower(), scale, zp)


def _tflite_tensor_problem(path, model, sub) -> str | None:
    """The first fault of the tensors' contents: a type adaptc does not compile (named with the
    operator that reads or writes it), a NaN or infinite constant (infinity only allowed as an
    operand of MAXIMUM / MINIMUM, a bound), a NaN or infinite quantization scale, a scale of an
    int8 / uint8 / int16 tensor that is not positive."""
    import numpy as np
    import tflite

    types = _tflite_type_names()

    def refused(t: int) -> str | None:
        code = sub.Tensors(t).Type()
        if code in types and types[code] not in _TFLITE_REFUSED_TYPES:
            return None
        return types[code].lower() if code in types else f"unknown type {code}"

    users: dict[int, list[str]] = {}
    for name, node, op in _tflite_operators(path, model, sub):
        for t in _ids(op.InputsAsNumpy()):
            users.setdefault(t, []).append(name)
        for t in (t for t in _ids(op.InputsAsNumpy()) + _ids(op.OutputsAsNumpy()) if t >= 0):
            if kind := refused(t):
                return (f"{node} ({name}) uses {kind} tensor {_tflite_name(sub.Tensors(t))!r}; adaptc compiles "
                        "float32 and integer tensors")
    for t in _ids(sub.InputsAsNumpy()) + _ids(sub.OutputsAsNumpy()):
        if kind := refused(t):
            return (f"graph tensor {_tflite_name(sub.Tensors(t))!r} is {kind}; adaptc compiles float32 and "
                    "integer tensors")
    floats = {tflite.TensorType.FLOAT32: "<f4", tflite.TensorType.FLOAT16: "<f2"}
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        name = _tflite_name(t)
        q = t.Quantization()
        scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.ones(0, np.float32)
        if (found := _first_bad(scales)) is not None:
            return f"tensor {name!r} has quantization scale {found[1]} at index {found[0]}; scales must be finite"
        if types.get(t.Type()) in _TFLITE_Q_TYPES and (scales <= 0).any():
            k = int(np.argmax(scales <= 0))
            return (f"{types[t.Type()].lower()} tensor {name!r} has quantization scale {scales[k]} at index {k}; "
                    "scales must be positive")
        if t.Type() not in floats or not model.Buffers(t.Buffer()).DataLength():
            continue
        values = np.frombuffer(model.Buffers(t.Buffer()).DataAsNumpy().tobytes(), floats[t.Type()])
        bounds_only = bool(users.get(i)) and set(users[i]) <= _TFLITE_BOUND_OPS
        if (found := _first_bad(values, allow_inf=bounds_only)) is not None:
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (values.size,)
            return _bad_weight(name, shape, found)
    return None


def _tflite_mean_problem(model, sub, op, name: str = "MEAN") -> str | None:
    import numpy as np

    x, axis = (sub.Tensors(int(t)) for t in op.InputsAsNumpy()[:2])
    data = model.Buffers(axis.Buffer()).DataAsNumpy()
    if isinstance(data, int) or not len(data):     # flatbuffers gives 0 for an absent vector
        return f"{name} with a computed axis tensor"
    axes = np.frombuffer(data.tobytes(), "<i4")
    return _mean_axes_problem(name, axes, x.ShapeLength())


def _tflite_operators(path, model, sub) -> list[tuple[str, str, object]]:
    """(builtin name, node, operator) of every operator; the node is "operator #i -> <its
    first output's name>"."""
    import tflite

    builtin_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = builtin_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        if name == "CUSTOM":
            name = f"CUSTOM({(code.CustomCode() or b'').decode(errors='replace')})"
        outs = _ids(op.OutputsAsNumpy())
        node = _tflite_name(sub.Tensors(outs[0])) if outs else f"#{i}"
        out.append((name, f"operator #{i} -> {node}", op))
    return out


def _tflite_findings(path, model, sub) -> list[tuple[str, str, str]]:
    from . import lstm, transpose_conv

    findings = []
    for name, node, op in _tflite_operators(path, model, sub):
        if name not in TFLITE_OPS:
            findings.append((name, node, ""))
        elif name in REDUCTIONS and (problem := _tflite_mean_problem(model, sub, op, name)):
            findings.append((name, node, problem))
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and (problem := lstm.tflite_problem(sub, op)
                                                         or _tflite_length_problem(sub, op)):
            findings.append((name, node, problem))
        elif name == "TRANSPOSE_CONV" and (problem := transpose_conv.tflite_problem(model, sub, op)):
            findings.append((name, node, problem))
        elif name in ("L2_NORMALIZATION", "LOG_SOFTMAX") and (problem := _tflite_int8_output_problem(sub, op, name)):
            findings.append((name, node, problem))
        elif name == "RELU6" and (problem := _tflite_relu6_problem(sub, op)):
            findings.append((name, node, problem))
    return findings


def _tflite_relu6_problem(sub, op) -> str | None:
    """An int8 RELU6 whose output quantization is not its input's: TFLite Micro's kernel clamps
    the raw input to [zero point, 6 / scale + zero point] of the input and ignores the output's
    parameters, where LiteRT requantizes -- adaptc refuses rather than match either silently."""
    import tflite

    x, y = (sub.Tensors(int(t)) for t in (op.InputsAsNumpy()[0], op.OutputsAsNumpy()[0]))
    if x.Type() != tflite.TensorType.INT8 or y.Type() != tflite.TensorType.INT8:
        return None
    qx, qy = x.Quantization(), y.Quantization()
    px, py = ((float(q.Scale(0)) if q.ScaleLength() else 0.0, int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0)
              for q in (qx, qy))
    if px != py:
        return (f"int8 output scale {py[0]:g}, zero point {py[1]} unlike the input's ({px[0]:g}, {px[1]}): TFLite "
                "Micro then ignores the output's parameters, LiteRT requantizes; adaptc compiles equal ones")
    return None


def _tflite_length_problem(sub, op) -> str | None:
    """A (checked: one sequence, batch-major) LSTM over more than MAX_RECURRENT_STEPS steps."""
    steps = int(sub.Tensors(int(op.InputsAsNumpy()[0])).ShapeAsNumpy()[1])
    if steps > MAX_RECURRENT_STEPS:
        return f"{steps} time steps; adaptc unrolls up to {MAX_RECURRENT_STEPS}"
    return None


def _tflite_int8_output_problem(sub, op, name: str) -> str | None:
    """The int8 output parameters TFLite Micro's Prepare requires: L2_NORMALIZATION 1/128 and 0
    (and no fused activation), LOG_SOFTMAX 16/256 and 127."""
    import numpy as np
    import tflite

    y = sub.Tensors(int(op.OutputsAsNumpy()[0]))
    if y.Type() != tflite.TensorType.INT8:
        if name == "L2_NORMALIZATION" and y.Type() == tflite.TensorType.FLOAT32:
            from tflite.L2NormOptions import L2NormOptions

            opts = L2NormOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            if opts.FusedActivationFunction():
                return f"fused_activation_function={opts.FusedActivationFunction()}; only NONE"
        return None
    q = y.Quantization()
    scale, zp = float(q.Scale(0)), int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0
    want, text = ((16 / 256, 127), "16/256 and 127") if name == "LOG_SOFTMAX" else ((1 / 128, 0), "1/128 and 0")
    if (np.float32(scale), zp) != (np.float32(want[0]), want[1]):
        return f"int8 output scale {scale:g}, zero point {zp}; TFLite Micro requires {text}"
    return None


def _load_tflite(path: Path, data: bytes) -> LoadedModel:
    from . import composite_import, tvm_compat

    model, sub = _tflite_model(path, data)
    findings = _tflite_findings(path, model, sub)
    if findings:
        raise UnsupportedOperatorError.of(path, findings, TFLITE_OPS)
    if problem := _tflite_tensor_problem(path, model, sub):
        raise ModelLoadError(path, problem)
    inputs = tuple(_tflite_tensor_info(sub.Tensors(int(i))) for i in sub.InputsAsNumpy())
    outputs = tuple(_tflite_tensor_info(sub.Tensors(int(i))) for i in sub.OutputsAsNumpy())
    for t in inputs:  # shape_signature's -1 batch (Keras export) runs as the stored shape, as in TFLM
        if not t.shape or any(d <= 0 for d in t.shape):
            raise DynamicShapeError(path, t.name, t.shape)
    try:
        mod = tvm_compat.from_tflite(data, composite_import.TFLITE)
    except tvm_compat.DeclaredTypeError as e:
        raise ModelLoadError(path, f"{e}; TFLite Micro refuses such a model") from None
    except Exception as e:
        raise ModelLoadError(path, f"TVM's TFLite frontend failed: {_what(e)}") from e
    return LoadedModel(mod, ModelInfo(str(path), "tflite", path.stem, inputs, outputs))


# --------------------------------------------------------------------------------------- ONNX


def _onnx_types(path: Path, model) -> dict:
    """Tensor name -> TypeProto.Tensor of every value whose type is declared or inferable (ONNX
    shape inference; where it fails, the declared ones only). ModelLoadError where a declared
    shape or element type (value_info, a graph output) contradicts what its node computes --
    onnxruntime refuses such a model too."""
    import onnx

    graph = model.graph
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
        for part in re.split(r"(?=\(op_type:)", " ".join(str(e).split())):
            if "differ" in part and (m := re.match(r"\(op_type:(\w*), node name: (.*?)\): (?:\[\w+\] )?(.*)", part)):
                raise ModelLoadError(path, f"node {m[2]!r} ({m[1]}): its output's declared type contradicts what it "
                                     f"computes (ONNX shape inference: {m[3].strip()})") from None
        try:
            inferred = onnx.shape_inference.infer_shapes(model).graph
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
            inferred = graph        # types only sharpen the checks; the passes check again
    return {vi.name: vi.type.tensor_type for vi in (*graph.input, *graph.value_info, *graph.output,
                                                     *inferred.input, *inferred.value_info, *inferred.output)
            if vi.type.HasField("tensor_type")}


def _onnx_dims(types: dict, name: str) -> list[int | None] | None:
    """The dimensions of tensor ``name`` (None for a symbolic one), or None when its rank is unknown."""
    tt = types.get(name)
    if tt is None or not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]


def _onnx_recurrent_length_problems(model, types: dict) -> list[tuple[str, str, str]]:
    """The LSTMs and GRUs of more than MAX_RECURRENT_STEPS steps, sequences x time steps."""
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("LSTM", "GRU") or not node.input:
            continue
        dims = _onnx_dims(types, node.input[0])         # [T, B, I] (layout 0) or [B, T, I]
        if dims and len(dims) == 3 and None not in dims[:2] and dims[0] * dims[1] > MAX_RECURRENT_STEPS:
            problems.append((node.op_type, _onnx_node_name(node),
                             f"input {dims}: {dims[0] * dims[1]} steps (sequences x time steps); adaptc unrolls "
                             f"up to {MAX_RECURRENT_STEPS}"))
    return problems


def _onnx_mean_problems(model, types: dict) -> list[tuple[str, str, str]]:
    """The ReduceMeans, ReduceSums and ReduceMaxes that do not reduce a contiguous range of axes
    (axes from the attribute, or from a constant second input: ReduceSum since opset 13, the
    others since opset 18)."""
    import onnx

    graph = model.graph
    consts = _onnx_constants(graph)
    ranks = {name: len(tt.shape.dim) for name, tt in types.items() if tt.HasField("shape")}
    problems = []
    for node in graph.node:
        if node.op_type not in REDUCTIONS:
            continue
        op = node.op_type
        name = node.name or node.output[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")
        if len(node.input) > 1 and node.input[1]:
            if node.input[1] not in consts:
                problems.append((op, name, f"{op} with computed axes"))
                continue
            axes = consts[node.input[1]].reshape(-1).tolist()
        if not axes and attrs.get("noop_with_empty_axes", 0):
            problems.append((op, name, f"{op} with no axes (identity)"))
        elif problem := _mean_axes_problem(op, axes or None, ranks.get(node.input[0])):
            problems.append((op, name, problem))
    return problems


def _onnx_model(path: Path, data: bytes):
    """The parsed, checked ModelProto of an ONNX file, its external data (if any) read in from
    files in the model's directory. ModelLoadError for bytes that do not decode, a model the
    ONNX checker refuses, and external data that is missing, outside the model's directory or
    shorter than it says. Runs inside ``_reading``."""
    import onnx

    model = onnx.load_from_string(data)         # a DecodeError: _reading's
    _onnx_external_data(path, model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ModelLoadError(path, f"corrupt ONNX file, refused by the ONNX checker ({_what(e)})") from None
    return model


def _onnx_tensors(graph):
    """Every TensorProto of ``graph`` and its subgraphs: initializers, sparse initializers'
    values and indices, and tensor attributes (Constant's value)."""
    import onnx

    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
            elif a.type == onnx.AttributeProto.TENSORS:
                yield from a.tensors
            elif a.type == onnx.AttributeProto.GRAPH:
                yield from _onnx_tensors(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _onnx_tensors(g)


def _onnx_external_data(path: Path, model) -> None:
    """Read the tensors stored outside the model file into ``model``. Each must name a file in
    the model's directory (or below it: no absolute path, no ``..`` out of it, no link that
    leads out) that exists and holds the bytes its offset and length say; ModelLoadError
    naming the tensor otherwise."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    base = path.resolve().parent
    for tensor in _onnx_tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        where = f"external data {location!r} of tensor {tensor.name!r}"
        if not location:
            raise ModelLoadError(path, f"tensor {tensor.name!r} is stored outside the file but names no location")
        target = (base / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(base):
            raise ModelLoadError(path, f"{where} lies outside the model's directory {str(base)!r}")
        if not target.is_file():
            raise ModelLoadError(path, f"{where} is missing (no file {str(target)!r})")
        try:
            offset, length = int(entries.get("offset", 0)), entries.get("length")
            size = target.stat().st_size
            if offset < 0 or offset > size or length is not None and not 0 <= int(length) <= size - offset:
                raise ValueError(f"offset {offset} and length {length} do not fit the file's {size} bytes")
            load_external_data_for_tensor(tensor, str(base))
        except (ValueError, OSError, onnx.checker.ValidationError) as e:
            raise ModelLoadError(path, f"{where} cannot be read: {_what(e)}") from None


# ONNX element types adaptc computes in: float32, the integers, bool. The others (float64, the
# 16- and 8-bit floats, complex, string, 4- and 2-bit integers) are refused at load, by name.
_ONNX_DTYPES = {"FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "BOOL", "UINT32", "UINT64"}
# Operators whose constant operands may be infinite: bounds, where infinity means "none" (Clip's
# min / max may also be NaN, which means the same).
_ONNX_BOUND_OPS = {"Clip", "Max", "Min"}


def _onnx_node_name(node) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _onnx_tensor_problem(model, types: dict) -> str | None:
    """The first fault of the tensors' types and contents: a node that reads or computes a
    tensor of a dtype adaptc does not compile (a Cast reading a float16 / float64 constant is
    fine: fp16 weights are folded at import), a graph input or output of one, a NaN or
    infinite initializer or Constant (infinity allowed as a bound -- an operand of Max or Min,
    Clip's min or max -- and NaN too as Clip's: both mean "no bound")."""
    import onnx

    graph = model.graph
    names = {v: k for k, v in onnx.TensorProto.DataType.items()}
    elem = {t.name: t.data_type for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            elem[node.output[0]] = node.attribute[0].t.data_type
    constants = set(elem)
    for name, tt in types.items():
        if tt.elem_type:
            elem.setdefault(name, tt.elem_type)

    def refused(name: str) -> str | None:
        code = elem.get(name, 0)
        return None if not code or names.get(code) in _ONNX_DTYPES else names.get(code, f"type {code}").lower()

    for node in graph.node:
        if node.op_type == "Constant":
            continue
        reads = [] if node.op_type in ("Cast", "CastLike") else [t for t in node.input if t in elem]
        for t in (*reads, *node.output):
            if kind := refused(t):
                verb = "reads" if t in reads else "computes"
                return (f"node {_onnx_node_name(node)!r} ({node.op_type}) {verb} {_onnx_dtype(kind)} tensor {t!r}; "
                        "adaptc compiles float32 and integer tensors")
    for vi in (*graph.input, *graph.output):
        if vi.name not in constants and (kind := refused(vi.name)):
            return f"graph tensor {vi.name!r} is {_onnx_dtype(kind)}; adaptc compiles float32 and integer tensors"
    uses: dict[str, set[str]] = {}
    for n in graph.node:
        for k, t in enumerate(n.input):
            uses.setdefault(t, set()).add("clip bound" if n.op_type == "Clip" and k else
                                          "bound" if n.op_type in _ONNX_BOUND_OPS else "value")
    for name, value in _onnx_constants(graph).items():
        use = uses.get(name, set())
        if value.dtype.kind != "f" or use == {"clip bound"}:       # NaN or inf: no bound (ONNX Clip)
            continue
        if (found := _first_bad(value, allow_inf="value" not in use)) is not None:
            return _bad_weight(name, value.shape, found)
    return None


def _onnx_dtype(name: str) -> str:
    """ONNX's element-type name as numpy spells it (DOUBLE -> float64, FLOAT16 -> float16)."""
    return {"double": "float64", "float": "float32"}.get(name, name)


def _onnx_constants(graph) -> dict:
    """Values of the graph's initializers and Constant nodes, by name, and of the Identity nodes
    that copy them (as onnx_rewrite.bypass_constant_identities reads them)."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    return consts


def _onnx_batch_norm_problems(model) -> list[tuple[str, str, str]]:
    """BatchNormalization is compiled folded (onnx_rewrite.fold_batch_norms): refused in training
    mode (training_mode=1, or the running mean and variance as outputs) or with parameters
    computed at run time."""
    import onnx

    consts = _onnx_constants(model.graph)
    problems = []
    for node in model.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        name = node.name or node.output[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
            problems.append(("BatchNormalization", name, "training mode: a training op"))
        elif not all(p in consts for p in node.input[1:5]):
            problems.append(("BatchNormalization", name, "scale, bias, mean or variance computed at run time"))
    return problems


def _onnx_dropout_problems(model) -> list[tuple[str, str, str]]:
    """Dropout is compiled as the identity: refused in training mode (or a mode computed at run time)."""
    consts = _onnx_constants(model.graph)
    problems = []
    for node in model.graph.node:
        if node.op_type != "Dropout" or len(node.input) < 3 or not node.input[2]:
            continue
        mode = consts.get(node.input[2])
        if mode is None:
            problems.append(("Dropout", node.name or node.output[0], "training_mode computed at run time"))
        elif bool(mode):
            problems.append(("Dropout", node.name or node.output[0], "training_mode=1: a training op"))
    return problems


def _onnx_resize_problems(model) -> list[tuple[str, str, str]]:
    """Resize is compiled from opset 11 on: mode nearest (a gather per axis) with any coordinate
    rule but tf_crop_and_resize, modes linear and cubic (a weighted gather per axis) with any."""
    import onnx

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    problems = []
    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("mode", b"nearest").decode()
        coord = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
        name = node.name or node.output[0]
        if opset < 11:
            problems.append(("Resize", name, f"Resize of opset {opset} (scales as the second input)"))
        elif mode == "nearest" and coord == "tf_crop_and_resize":
            problems.append(("Resize", name, "mode nearest with coordinate_transformation_mode tf_crop_and_resize "
                             "(linear and cubic take it)"))
    return problems


def _onnx_findings(path, model, types: dict | None = None) -> list[tuple[str, str, str]]:
    """Every (operator, node, detail) adaptc does not compile; ``types``: _onnx_types(path, model),
    computed here when not given and needed."""
    findings = [(n.op_type, _onnx_node_name(n), "") for n in model.graph.node if n.op_type not in ONNX_OPS]
    ops = {node.op_type for node in model.graph.node}
    if types is None and ops & (REDUCTIONS | {"LSTM", "GRU"}):
        types = _onnx_types(path, model)
    if ops & REDUCTIONS:
        findings += _onnx_mean_problems(model, types)
    if "Dropout" in ops:
        findings += _onnx_dropout_problems(model)
    if "BatchNormalization" in ops:
        findings += _onnx_batch_norm_problems(model)
    if "Resize" in ops:
        findings += _onnx_resize_problems(model)
    if "ConvTranspose" in ops:
        from . import transpose_conv

        findings += transpose_conv.onnx_problems(model, _onnx_constants(model.graph))
    if ops & {"LSTM", "GRU"}:
        from . import recurrent

        findings += recurrent.onnx_problems(model, _onnx_constants(model.graph))
        findings += _onnx_recurrent_length_problems(model, types)
    return findings


def _load_onnx(path: Path, data: bytes, input_shapes: dict) -> LoadedModel:
    import onnx

    from . import composite_import, onnx_rewrite, tvm_compat

    model = _onnx_model(path, data)
    graph = model.graph
    types = _onnx_types(path, model)
    findings = _onnx_findings(path, model, types)
    if findings:
        raise UnsupportedOperatorError.of(path, findings, ONNX_OPS)
    if problem := _onnx_tensor_problem(model, types):
        raise ModelLoadError(path, problem)
    initializers = {t.name for t in graph.initializer}
    elem = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}

    def info(vi) -> TensorInfo:
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        return TensorInfo(vi.name, dims, elem.get(tt.elem_type, "unknown"))

    inputs = []
    for vi in graph.input:
        if vi.name in initializers:
            continue
        t = info(vi)
        if vi.name in input_shapes:
            t = TensorInfo(t.name, tuple(input_shapes[vi.name]), t.dtype)
        if any(d <= 0 for d in t.shape):
            raise DynamicShapeError(path, t.name, t.shape)
        inputs.append(t)
    outputs = tuple(info(vi) for vi in graph.output)
    try:
        mod = tvm_compat.from_onnx(onnx_rewrite.rewrite(model), {t.name: list(t.shape) for t in inputs},
                                   composite_import.ONNX)
    except Exception as e:
        raise ModelLoadError(path, f"TVM's ONNX frontend failed: {_what(e)}") from e
    stem = os.path.splitext(path.name)[0]
    return LoadedModel(mod, ModelInfo(str(path), "onnx", stem, tuple(inputs), outputs))
