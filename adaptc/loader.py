"""Model loading: .tflite and .onnx files -> Relax IRModule + ModelInfo.

The file is parsed and checked here (format, operators, static shapes) before TVM's frontend
sees it, so that every failure is a typed error naming the file, the operator and the node.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DynamicShapeError, InputError, ModelLoadError, UnsupportedOperatorError

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

    Raises ModelLoadError (unreadable, truncated or corrupt file; unknown extension),
    UnsupportedOperatorError (an operator adaptc does not compile) or DynamicShapeError.
    """
    path = Path(path)
    data = _read(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return _load_tflite(path, data)
    if suffix == ".onnx":
        return _load_onnx(path, data, input_shapes or {})
    raise ModelLoadError(path, f"unknown model format {suffix!r} (expected .tflite or .onnx)")


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
    from the file alone (no TVM): what ``adaptc info`` lists."""
    path, data = Path(path), _read(Path(path))
    if path.suffix.lower() == ".tflite":
        return [(name, node) for name, node, _ in _tflite_operators(path, *_tflite_model(path, data))]
    if path.suffix.lower() == ".onnx":
        return [(n.op_type, n.name or n.output[0]) for n in _onnx_model(path, data).graph.node]
    raise ModelLoadError(path, f"unknown model format {path.suffix!r} (expected .tflite or .onnx)")


def unsupported(path) -> list[tuple[str, str, str]]:
    """Every (operator, node, detail) of a .tflite or .onnx file that adaptc cannot compile --
    the list ``load`` refuses a model with, all at once."""
    path, data = Path(path), _read(Path(path))
    if path.suffix.lower() == ".tflite":
        return _tflite_findings(path, *_tflite_model(path, data))
    if path.suffix.lower() == ".onnx":
        return _onnx_findings(path, _onnx_model(path, data))
    raise ModelLoadError(path, f"unknown model format {path.suffix!r} (expected .tflite or .onnx)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ModelLoadError(path, e.strerror or str(e)) from None


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


def _tflite_model(path: Path, data: bytes):
    import tflite

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelLoadError(path, "not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() != 1:
            raise ModelLoadError(path, f"{model.SubgraphsLength()} subgraphs; adaptc supports 1")
        sub = model.Subgraphs(0)
        # Touch every table the compiler will read, so truncation shows up here.
        for i in range(model.BuffersLength()):
            buf = model.Buffers(i)
            if buf.DataLength():
                buf.Data(buf.DataLength() - 1)  # raises if the data runs past the end of the file
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            t.Name(), t.ShapeAsNumpy(), t.Type()
        for i in range(sub.OperatorsLength()):
            sub.Operators(i).InputsAsNumpy()
    except ModelLoadError:
        raise
    except Exception as e:  # flatbuffers raises IndexError/struct.error on truncated data
        raise ModelLoadError(path, f"corrupt or truncated TFLite file ({type(e).__name__}: {e})") from None
    return model, sub


def _tflite_tensor_info(t) -> TensorInfo:
    import tflite

    types = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    q = t.Quantization()
    scale = zp = None
    if q is not None and q.ScaleLength() == 1:
        scale, zp = float(q.Scale(0)), int(q.ZeroPoint(0))
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return TensorInfo(t.Name().decode(errors="replace"), shape, types.get(t.Type(), "unknown"), scale, zp)


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
        try:
            code = model.OperatorCodes(op.OpcodeIndex())
            name = builtin_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            if name == "CUSTOM":
                name = f"CUSTOM({code.CustomCode().decode(errors='replace')})"
            outs = op.OutputsAsNumpy()
            node = sub.Tensors(int(outs[0])).Name().decode(errors="replace") if len(outs) else f"#{i}"
        except Exception as e:  # the operator-code tables sit at the end of the file
            raise ModelLoadError(path, f"corrupt or truncated TFLite file ({type(e).__name__}: {e})") from None
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
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and (problem := lstm.tflite_problem(sub, op)):
            findings.append((name, node, problem))
        elif name == "TRANSPOSE_CONV" and (problem := transpose_conv.tflite_problem(model, sub, op)):
            findings.append((name, node, problem))
        elif name in ("L2_NORMALIZATION", "LOG_SOFTMAX") and (problem := _tflite_int8_output_problem(sub, op, name)):
            findings.append((name, node, problem))
    return findings


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
    inputs = tuple(_tflite_tensor_info(sub.Tensors(int(i))) for i in sub.InputsAsNumpy())
    outputs = tuple(_tflite_tensor_info(sub.Tensors(int(i))) for i in sub.OutputsAsNumpy())
    for t in inputs:  # shape_signature's -1 batch (Keras export) runs as the stored shape, as in TFLM
        if not t.shape or any(d <= 0 for d in t.shape):
            raise DynamicShapeError(path, t.name, t.shape)
    try:
        mod = tvm_compat.from_tflite(data, composite_import.TFLITE)
    except Exception as e:
        raise ModelLoadError(path, f"TVM's TFLite frontend failed: {type(e).__name__}: {e}") from None
    return LoadedModel(mod, ModelInfo(str(path), "tflite", path.stem, inputs, outputs))


# --------------------------------------------------------------------------------------- ONNX


def _onnx_mean_problems(model) -> list[tuple[str, str, str]]:
    """The ReduceMeans, ReduceSums and ReduceMaxes that do not reduce a contiguous range of axes
    (axes from the attribute, or from a constant second input: ReduceSum since opset 13, the
    others since opset 18)."""
    import onnx

    graph = model.graph
    consts = _onnx_constants(graph)
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
        ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
                 for vi in (*inferred.input, *inferred.value_info, *inferred.output)
                 if vi.type.tensor_type.HasField("shape")}
    except onnx.shape_inference.InferenceError:   # ranks only sharpen the check; the passes check again
        ranks = {}
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
    import onnx

    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:
        raise ModelLoadError(path, f"corrupt or truncated ONNX file ({type(e).__name__}: {e})") from None
    return model


def _onnx_constants(graph) -> dict:
    """Values of the graph's initializers and Constant nodes, by name."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return consts


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


def _onnx_findings(path, model) -> list[tuple[str, str, str]]:
    findings = [(n.op_type, n.name or n.output[0], "") for n in model.graph.node if n.op_type not in ONNX_OPS]
    ops = {node.op_type for node in model.graph.node}
    if ops & REDUCTIONS:
        findings += _onnx_mean_problems(model)
    if "Dropout" in ops:
        findings += _onnx_dropout_problems(model)
    if "Resize" in ops:
        findings += _onnx_resize_problems(model)
    if "ConvTranspose" in ops:
        from . import transpose_conv

        findings += transpose_conv.onnx_problems(model, _onnx_constants(model.graph))
    if ops & {"LSTM", "GRU"}:
        from . import recurrent

        findings += recurrent.onnx_problems(model, _onnx_constants(model.graph))
    return findings


def _load_onnx(path: Path, data: bytes, input_shapes: dict) -> LoadedModel:
    import onnx

    from . import composite_import, onnx_rewrite, tvm_compat

    model = _onnx_model(path, data)
    graph = model.graph
    findings = _onnx_findings(path, model)
    if findings:
        raise UnsupportedOperatorError.of(path, findings, ONNX_OPS)
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
        mod = tvm_compat.from_onnx(onnx_rewrite.fold_batch_norms(model), {t.name: list(t.shape) for t in inputs},
                                   composite_import.ONNX)
    except Exception as e:
        raise ModelLoadError(path, f"TVM's ONNX frontend failed: {type(e).__name__}: {e}") from None
    stem = os.path.splitext(path.name)[0]
    return LoadedModel(mod, ModelInfo(str(path), "onnx", stem, tuple(inputs), outputs))
